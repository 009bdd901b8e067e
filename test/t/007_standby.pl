# test/t/007_standby.pl
#	Reading the feed on a hot standby: eventstore.head() is the head of the
#	newest tick replayed, and read_all, poll and eventstore-follow never
#	return an event above it.
#
# A primary and a streaming hot standby, both with the library preloaded.
# The standby runs no launcher and no ticker.  Once it has replayed the
# primary's WAL, its head equals the primary's newest tick, which is the
# primary's head, and read_all(0, ...) on it returns exactly the primary's
# events up to that head (the same positions and event ids).  A REPEATABLE
# READ transaction on the standby keeps its head while newer ticks are
# replayed.
#
# The ticks table is then locked on the primary, so that its ticker
# cannot record a tick, and more events are appended and committed there:
# the standby replays them (they are in eventstore.events) but its head
# stays at the last tick, below them, and read_all and poll do not return
# them although they are committed and below the primary's head.  Once the
# lock is gone, a tick covers them and, after replay, the standby's head
# advances and read_all returns them.
#
# LISTEN is refused during recovery (a PostgreSQL rule), so standby readers
# poll: eventstore-follow --exit-at-head against the standby prints exactly
# the standby's events, and a follower left running against it prints the
# primary's later appends as they are ticked and replayed.
#
# Promoted, the standby starts its launcher and ticker, and ticks its own
# appends.

use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;
use EsFollow;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
max_worker_processes = 16
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION eventstore');

# --- Helpers -------------------------------------------------------------------

sub append
{
	my ($stream, $n) = @_;
	return $primary->safe_psql('postgres', qq{
		SELECT max(insert_order) FROM eventstore.append('$stream',
			ARRAY(SELECT eventstore.event('Replicated',
						jsonb_build_object('n', g, 'text', E'tab \\t ü'))
					FROM generate_series(1, $n) g))});
}

my $last_tick_sql =
  'SELECT coalesce((SELECT head FROM eventstore.ticks ORDER BY tick_id DESC LIMIT 1), -1)';

sub wait_for_tick_at_head
{
	return $primary->poll_query_until('postgres',
		"SELECT ($last_tick_sql) = eventstore.head()");
}

# Replay everything the primary wrote, asynchronous commits (the ticker's)
# included: up to the insert position, not only the flushed one.
sub catch_up
{
	my ($standby) = @_;
	$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
	return;
}

# "position:event_id" of events, comma-separated, in insert_order.
my $events_up_to_sql = q{
	SELECT coalesce(string_agg(insert_order || ':' || event_id, ',' ORDER BY insert_order), '')
	  FROM eventstore.events WHERE insert_order <= %s};
my $read_all_sql = q{
	SELECT coalesce(string_agg(insert_order || ':' || event_id, ',' ORDER BY ord), '')
	  FROM eventstore.read_all(0, 100000) WITH ORDINALITY AS r(insert_order, stream_id,
			stream_order, event_id, event_type, schema_version, data, metadata,
			recorded_at, partition_key, ord)};

# --- The standby -------------------------------------------------------------------

for my $s (1 .. 4)
{
	append("before-backup-$s", 5);
}
ok(wait_for_tick_at_head(), 'primary: a tick reaches the head');

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

# Events that reach the standby by streaming, not in the backup.
for my $s (1 .. 3)
{
	append("after-backup-$s", 7);
}
ok(wait_for_tick_at_head(), 'primary: a tick reaches the head again');
catch_up($standby);

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't',
	'the standby is in recovery');
is( $standby->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type IN ('eventstore launcher', 'eventstore ticker')}),
	0,
	'the standby runs no launcher and no ticker');

my $primary_head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
my $primary_tick = $primary->safe_psql('postgres', $last_tick_sql);
is($primary_tick, $primary_head, "primary: the newest tick is the head ($primary_head)");
my $standby_head = $standby->safe_psql('postgres', 'SELECT eventstore.head()');
is($standby_head, $primary_tick, 'standby: the head is the newest tick replayed');
is($standby->safe_psql('postgres', $last_tick_sql),
	$standby_head, "standby: which is the standby's own newest tick");

my $expected = $primary->safe_psql('postgres', sprintf($events_up_to_sql, $standby_head));
my $n_expected = scalar(split /,/, $expected);
is($n_expected, 4 * 5 + 3 * 7, 'primary: all events are at or below the head');
is($standby->safe_psql('postgres', $read_all_sql),
	$expected, "standby: read_all returns exactly the primary's $n_expected events");
is($primary->safe_psql('postgres', $read_all_sql),
	$expected, 'and so does read_all on the primary');

# REPEATABLE READ on the standby: the head of the transaction's snapshot
# stays while newer ticks are replayed.
my $rr = $standby->background_psql('postgres');
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($rr->query_safe('SELECT eventstore.head()'), $standby_head,
	'standby, REPEATABLE READ: the head is the newest tick');
my $rr_pos = append('during-rr', 2);
ok(wait_for_tick_at_head(), 'primary: a tick covers an append made meanwhile');
catch_up($standby);
cmp_ok($standby->safe_psql('postgres', 'SELECT eventstore.head()'), '>=', $rr_pos,
	'standby: a new transaction sees the new tick');
is($rr->query_safe('SELECT eventstore.head()'), $standby_head,
	'standby, REPEATABLE READ: the transaction keeps its head');
is($rr->query_safe($read_all_sql), $expected,
	'standby, REPEATABLE READ: and read_all returns what it returned before');
$rr->query_safe('COMMIT');
$rr->quit;
$standby_head = $standby->safe_psql('postgres', 'SELECT eventstore.head()');
$primary_tick = $primary->safe_psql('postgres', $last_tick_sql);
is($standby_head, $primary_tick, 'standby: the head is again the newest tick replayed');
$expected = $primary->safe_psql('postgres', sprintf($events_up_to_sql, $standby_head));

# --- Events replayed before their tick --------------------------------------------------

# While a session holds this lock, the primary's ticker cannot insert a tick
# (appends do not touch the ticks table).  SHARE locks are not replayed, so
# the standby's readers are not blocked.
my $locker = $primary->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE eventstore.ticks IN SHARE MODE');
my $untick_first = append('unticked-1', 3) - 2;
my $untick_last = append('unticked-2', 4);
cmp_ok($primary->safe_psql('postgres', 'SELECT eventstore.head()'),
	'>=', $untick_last, 'primary: the new events are committed and below the head');
catch_up($standby);

is($primary->safe_psql('postgres', $last_tick_sql),
	$primary_tick, 'primary: no tick covers the new events yet');
is( $standby->safe_psql('postgres',
		"SELECT count(*) FROM eventstore.events
		  WHERE insert_order BETWEEN $untick_first AND $untick_last"),
	7,
	'standby: the 7 new events are replayed');
is($standby->safe_psql('postgres', 'SELECT eventstore.head()'),
	$standby_head, 'standby: the head stays at the last tick replayed');
is($standby->safe_psql('postgres', $read_all_sql),
	$expected, 'standby: read_all returns nothing above the tick');
is( $standby->safe_psql('postgres',
		"SELECT count(*) FROM eventstore.read_all($standby_head, 100000)"),
	0,
	'standby: read_all after the tick head returns nothing');

# The lock goes; a subscription created on the primary is polled on the
# standby, with the same limit.
$locker->query_safe('ROLLBACK');
$primary->safe_psql('postgres', q{SELECT eventstore.create_subscription('reporting')});
ok(wait_for_tick_at_head(), 'primary: once the lock is gone, a tick reaches the head');
$primary_tick = $primary->safe_psql('postgres', $last_tick_sql);
cmp_ok($primary_tick, '>=', $untick_last, 'primary: the tick covers the new events');
catch_up($standby);

my $new_head = $standby->safe_psql('postgres', 'SELECT eventstore.head()');
is($new_head, $primary_tick, 'standby: after replay the head advances to the new tick');
$expected = $primary->safe_psql('postgres', sprintf($events_up_to_sql, $new_head));
is($standby->safe_psql('postgres', $read_all_sql),
	$expected, 'standby: read_all now returns the new events too, and the same as the primary');
is( $standby->safe_psql('postgres', q{
		SELECT coalesce(string_agg(insert_order || ':' || event_id, ',' ORDER BY insert_order), '')
		  FROM eventstore.poll('reporting', 100000)}),
	$expected,
	'standby: poll of a subscription returns the same events');

# Once more with poll: lock, append, replay.
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE eventstore.ticks IN SHARE MODE');
my $polled_out = append('unticked-3', 2);
catch_up($standby);
is($standby->safe_psql('postgres', 'SELECT eventstore.head()'),
	$new_head, 'standby: the head stays at the tick again');
is( $standby->safe_psql('postgres',
		"SELECT count(*) FROM eventstore.poll('reporting', 100000) WHERE insert_order > $new_head"),
	0,
	"standby: poll returns nothing above the tick either (event $polled_out is replayed, not ticked)");
is( $standby->safe_psql('postgres',
		"SELECT count(*) FROM eventstore.events WHERE insert_order = $polled_out"),
	1,
	"standby: event $polled_out is there");
$locker->query_safe('ROLLBACK');
$locker->quit;
ok(wait_for_tick_at_head(), 'primary: a tick covers it once the lock is gone');
catch_up($standby);
cmp_ok($standby->safe_psql('postgres', 'SELECT eventstore.head()'),
	'>=', $polled_out, 'standby: and after replay the head covers it');

# --- Followers poll -----------------------------------------------------------------------

my ($rc, $out, $err) = ('', '', '');
$rc = $standby->psql('postgres', 'LISTEN eventstore', stderr => \$err);
isnt($rc, 0, 'standby: LISTEN eventstore is refused');
like($err, qr/cannot execute LISTEN during recovery/, 'standby: because it is in recovery');

my $follow = $EsFollow::follow;
ok(-x $follow, "eventstore-follow is installed ($follow)");
my $connstr = $standby->connstr('postgres');

$standby_head = $standby->safe_psql('postgres', 'SELECT eventstore.head()');
IPC::Run::run([ $follow, '--batch', '10', '--exit-at-head', $connstr ],
	'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
is($? >> 8, 0, 'eventstore-follow --exit-at-head against the standby: exits 0');
is($err, '', 'eventstore-follow against the standby: nothing on stderr');
my ($printed) = parse_output($out);
is_deeply($printed, stored_events($standby, 0, $standby_head),
	'eventstore-follow against the standby: exactly the standby\'s events up to its head');
is( join(',', map { "$_->{position}:$_->{event_id}" } @$printed),
	$primary->safe_psql('postgres', sprintf($events_up_to_sql, $standby_head)),
	'which are the primary\'s events up to that head');

# Left running against the standby, it polls and prints what the primary
# appends once it is ticked and replayed.
my ($fout, $ferr) = ('', '');
my $h = IPC::Run::start([ $follow, '--poll-interval', '100', $connstr ],
	'<', \undef, '>', \$fout, '2>', \$ferr);
my $total = scalar(@$printed);
is(wait_for_lines($h, \$fout, $total), $total,
	'a running follower on the standby prints the history');

my $last = append('live', 6);
ok(wait_for_tick_at_head(), 'primary: a tick covers the live events');
catch_up($standby);
$total += 6;
is(wait_for_lines($h, \$fout, $total), $total,
	'and the events appended on the primary afterwards');
$h->signal('TERM');
$h->finish;
is($h->result(0), 0, 'SIGTERM ends it with exit status 0');
is_deeply((parse_output($fout))[0], stored_events($standby, 0, $last),
	'the follower printed every event once, in insert_order');
is($ferr, '', 'and nothing on stderr (no LISTEN was tried)');

# --- Promotion ---------------------------------------------------------------------------

# The promoted standby starts its launcher, which starts the ticker; the
# head is computed there from now on and a tick reaches it without an
# append.
$primary->stop;
my $old_head = $standby->safe_psql('postgres', 'SELECT eventstore.head()');
$standby->promote;
ok( $standby->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'eventstore ticker' AND datname = 'postgres'}),
	'promoted: the launcher starts a ticker');
ok( $standby->poll_query_until('postgres',
		"SELECT ($last_tick_sql) = eventstore.head()"),
	'promoted: a tick reaches the head without an append');
cmp_ok($standby->safe_psql('postgres', 'SELECT eventstore.head()'),
	'>=', $old_head, 'promoted: the head did not move backwards');
my $promoted_pos = $standby->safe_psql('postgres', q{
	SELECT max(insert_order) FROM eventstore.append('promoted',
		ARRAY[eventstore.event('Promoted', '{}')])});
cmp_ok($promoted_pos, '>', $old_head, 'promoted: a new append lies above every replayed event');
ok( $standby->poll_query_until('postgres',
		"SELECT ($last_tick_sql) >= $promoted_pos"),
	'promoted: and is ticked');

$standby->stop;
done_testing();
