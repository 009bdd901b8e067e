# test/t/006_ticks.pl
#	Ticks: each database's ticker records the head of the feed in
#	eventstore.ticks and announces it with NOTIFY eventstore, coalesced to
#	one tick per eventstore.tick_interval, pruned after
#	eventstore.tick_retention; it gets out of the way of DROP DATABASE and
#	CREATE DATABASE ... TEMPLATE, and comes back after a crash.
#
# Ticks: after appends a tick reaches the head, tick_id and head grow
# together, and an idle ticker records nothing.  A tick never passes an
# appending transaction that is still open, and that transaction does not
# keep another writer from committing.
#
# Notifications: a session that LISTENs on "eventstore" hears the heads
# of ticks, in increasing order, up to the position of an event just
# appended, and every notification comes from the ticker: the writers,
# the listening session among them, never notify.
#
# Coalescing: with tick_interval = 200ms, a 0.9 s burst of a few hundred
# single-event appends gives at most one tick per 200 ms (seven at most,
# and the gaps between ticks say so), still a tick every 200 ms or so
# while it lasts, and a last tick at the final head.
#
# Pruning (every 10 s): with tick_retention = 0 and tick_keep = 5, a
# database without subscriptions keeps its newest five ticks; one with a
# subscription whose checkpoint is old keeps the newest tick at or below
# that checkpoint and every later one, and nothing older.
#
# Databases: DROP DATABASE of a database whose ticker runs succeeds at once
# (without the ticker leaving it would fail after five seconds), and so do
# CREATE DATABASE ... TEMPLATE, ALTER DATABASE ... RENAME and ALTER
# DATABASE ... SET TABLESPACE; the copy gets its own ticker on its first
# append, and the template gets its ticker back.
#
# Crashes: after an immediate shutdown and after a ticker killed with
# SIGKILL (crash recovery of the whole server), the launcher brings the
# tickers back and a tick reaches the head, which moved to a fresh block of
# positions, without any append.

use strict;
use warnings;

use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = PostgreSQL::Test::Cluster->new('ticks');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
max_worker_processes = 16
max_connections = 30
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');

# --- Helpers -------------------------------------------------------------------

# Append $n events to a stream in one call; returns the highest position.
sub append_sql
{
	my ($stream, $n) = @_;
	$n //= 1;
	return qq{SELECT max(insert_order) FROM eventstore.append('$stream',
		ARRAY(SELECT eventstore.event('Ticked', jsonb_build_object('n', g))
				FROM generate_series(1, $n) g))};
}

sub append
{
	my ($db, $stream, $n) = @_;
	return $node->safe_psql($db, append_sql($stream, $n));
}

my $last_tick_sql =
  'SELECT coalesce((SELECT head FROM eventstore.ticks ORDER BY tick_id DESC LIMIT 1), -1)';

sub last_tick
{
	my ($db) = @_;
	return $node->safe_psql($db, $last_tick_sql);
}

sub head
{
	my ($db) = @_;
	return $node->safe_psql($db, 'SELECT eventstore.head()');
}

# Wait until the newest tick of a database is at its head.
sub wait_for_tick_at_head
{
	my ($db) = @_;
	return $node->poll_query_until($db, "SELECT ($last_tick_sql) = eventstore.head()");
}

my $ticker_sql = q{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'eventstore ticker' AND datname = '%s'};

# The pid of a database's ticker, '' if none runs.
sub ticker_pid
{
	my ($db) = @_;
	return $node->safe_psql('postgres', sprintf($ticker_sql, $db));
}

sub wait_for_ticker
{
	my ($db) = @_;
	return $node->poll_query_until('postgres',
		sprintf("SELECT count(*) = 1 FROM (%s) t", sprintf($ticker_sql, $db)));
}

# Every tick whose head is not above its predecessor's (in tick_id order),
# or whose ticked_at is earlier: 0 when ticks are monotonic.
my $non_monotonic_sql = q{
	SELECT count(*) FROM (
		SELECT head, ticked_at,
			   lag(head) OVER (ORDER BY tick_id) AS prev_head,
			   lag(ticked_at) OVER (ORDER BY tick_id) AS prev_at
		  FROM eventstore.ticks) t
	 WHERE head <= prev_head OR ticked_at < prev_at};

# Take what psql printed and return the notifications in it, as
# [payload, pid] pairs, in the order received.
sub notifications
{
	my ($text) = @_;
	my @found;
	my $line = qr/Asynchronous notification "eventstore" with payload "([^"]*)"/;
	while ($text =~ /$line received from server process with PID (\d+)/g)
	{
		push @found, [ $1, $2 ];
	}
	return @found;
}

# --- Ticks follow the head -------------------------------------------------------

is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'eventstore launcher'}),
	1,
	'the launcher runs');

# The extension was created after the server started, so the ticker of
# "postgres" is started by the first appender.
my $pos = append('postgres', 'first', 3);
ok(wait_for_ticker('postgres'), 'the first append starts the ticker of its database');
ok(wait_for_tick_at_head('postgres'), 'a tick reaches the head after the first append');
my $head = head('postgres');
cmp_ok($head, '>=', $pos, "the head $head covers the appended event $pos");
is(last_tick('postgres'), $head, 'the newest tick is exactly the head');

for my $i (1 .. 8)
{
	$pos = append('postgres', "more-$i", $i);
	ok(wait_for_tick_at_head('postgres'), "append $i: a tick reaches the head") or last;
}
cmp_ok(last_tick('postgres'), '>=', $pos, "the newest tick covers the last event $pos");
cmp_ok($node->safe_psql('postgres', 'SELECT count(*) FROM eventstore.ticks'),
	'>=', 2, 'appends one after the other gave several ticks');
is($node->safe_psql('postgres', $non_monotonic_sql),
	0, 'tick_id, head and ticked_at grow together');
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM eventstore.ticks WHERE head > eventstore.head()'),
	0,
	'no tick is above the head');

# Nothing moves, nothing is recorded (the ticker looks every second).
my $ticks_before = $node->safe_psql('postgres', 'SELECT max(tick_id) FROM eventstore.ticks');
sleep(2);
is($node->safe_psql('postgres', 'SELECT max(tick_id) FROM eventstore.ticks'),
	$ticks_before, 'an idle ticker records no tick');

# --- Notifications -------------------------------------------------------------------

my $ticker = ticker_pid('postgres');
like($ticker, qr/^\d+$/, 'the ticker shows in pg_stat_activity');

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN eventstore');
my $listener_pid = $listener->query_safe('SELECT pg_backend_pid()');
my @heard;

# Run "SELECT 1" in the listening session until it has heard a head at or
# above $want, or $seconds passed; psql prints what arrived after each
# query.  Returns the highest payload heard so far.
sub listen_until
{
	my ($want, $seconds) = @_;
	my $deadline = time() + $seconds;
	my $highest = @heard ? $heard[-1][0] : -1;
	while (1)
	{
		push @heard, notifications($listener->query_safe('SELECT 1'));
		$highest = $_->[0] > $highest ? $_->[0] : $highest for @heard;
		return $highest if $highest >= $want || time() > $deadline;
		usleep(20_000);
	}
}

# The listener appends itself, and so does another session.
$listener->query_safe(append_sql('listener', 2));
$pos = append('postgres', 'notified', 2);
cmp_ok(listen_until($pos, $timeout), '>=', $pos,
	"a listener hears a head at or above the event just appended ($pos)");

# An appending transaction left open holds the head, and so the ticks,
# below its position; it does not keep another writer from committing.
# "early" appends before it and commits after the later writer, so that
# the head moves, but only up to the open transaction.
my $early = $node->background_psql('postgres');
my $holder = $node->background_psql('postgres');
$early->query_safe('BEGIN');
my $before_held = $early->query_safe(append_sql('early', 1));
$holder->query_safe('BEGIN');
my $held = $holder->query_safe(append_sql('held', 1));
my $t0 = time();
my $passed = append('postgres', 'past-held', 1);
cmp_ok(time() - $t0, '<', 5, 'a writer commits while two appending transactions are open');
ok($before_held < $held && $held < $passed,
	"positions: early $before_held, open $held, committed $passed");
$early->query_safe('COMMIT');
$early->quit;
ok(wait_for_tick_at_head('postgres'), 'a tick reaches the head held back by the open transaction');
is(last_tick('postgres'), $held - 1, 'the newest tick stops right below the open transaction');
cmp_ok(last_tick('postgres'), '>=', $before_held, 'and covers the early transaction');
cmp_ok(listen_until($held - 1, $timeout), '>=', $before_held,
	'the listener hears the head held back');
listen_until($held, 1);
is(scalar(grep { $_->[0] >= $held } @heard), 0,
	'no notification announces a head at or above the open transaction');

$holder->query_safe('COMMIT');
ok(wait_for_tick_at_head('postgres'), 'once it commits, a tick reaches the head');
cmp_ok(last_tick('postgres'), '>=', $passed, 'and covers both events');
cmp_ok(listen_until($passed, $timeout), '>=', $passed,
	'the listener hears a head covering both events');
$holder->quit;

my @payloads = map { $_->[0] } @heard;
ok(scalar(@heard) > 0, scalar(@heard) . ' notifications heard');
is(scalar(grep { $_->[1] != $ticker } @heard), 0,
	'every notification comes from the ticker, none from a writer');
is(scalar(grep { $_->[1] == $listener_pid } @heard), 0,
	'the listening session appended and did not notify itself');
is(scalar(grep { $payloads[$_] <= $payloads[ $_ - 1 ] } 1 .. $#payloads), 0,
	'notified heads strictly increase');
my $payload_list = join(',', -1, @payloads);
is( $node->safe_psql('postgres',
		"SELECT count(DISTINCT head) FROM eventstore.ticks WHERE head IN ($payload_list)"),
	scalar(@payloads),
	'every notified head is the head of a recorded tick');
$listener->quit;

# --- Coalescing -------------------------------------------------------------------------

$node->safe_psql('postgres', q{ALTER SYSTEM SET eventstore.tick_interval = '200ms'});
$node->reload;
usleep(500_000);
my $first_id = $node->safe_psql('postgres', 'SELECT max(tick_id) FROM eventstore.ticks');

# 0.9 s of single-event appends, each in its own transaction, a few
# milliseconds apart: two to three hundred of them.
$t0 = time();
$node->safe_psql('postgres', q{
	DO $$
	DECLARE
		stop timestamptz := clock_timestamp() + interval '0.9 seconds';
		i int := 0;
	BEGIN
		WHILE clock_timestamp() < stop LOOP
			i := i + 1;
			PERFORM eventstore.append('burst-' || i % 7,
				ARRAY[eventstore.event('Burst', jsonb_build_object('i', i))]);
			COMMIT;
			PERFORM pg_sleep(0.003);
		END LOOP;
	END
	$$});
my $took = time() - $t0;
my $burst = $node->safe_psql('postgres',
	q{SELECT count(*) FROM eventstore.events WHERE event_type = 'Burst'});
cmp_ok($burst, '>=', 100, sprintf('a burst of %d appends in %.2f s', $burst, $took));
$pos = $node->safe_psql('postgres', 'SELECT max(insert_order) FROM eventstore.events');
ok(wait_for_tick_at_head('postgres'), 'after the burst a tick reaches the head');
cmp_ok(last_tick('postgres'), '>=', $pos, "the last tick covers the last event $pos");

my ($n_ticks, $min_gap_ms, $below_final) = split /\|/,
  $node->safe_psql('postgres', qq{
	SELECT count(*),
		   coalesce(min(gap), 1e9)::int,
		   count(*) FILTER (WHERE head < $pos)
	  FROM (SELECT head,
				   1000 * extract(epoch FROM ticked_at - lag(ticked_at) OVER (ORDER BY tick_id)) AS gap
			  FROM eventstore.ticks WHERE tick_id > $first_id) t});
note("burst: $n_ticks ticks, smallest gap $min_gap_ms ms");

# 200 ms apart, 0.9 s of appends fit at most five ticks (at 0, 200, ...,
# 800 ms) and one after the last append; one more allows for an append
# slowed down by up to 300 ms.
cmp_ok($n_ticks, '<=', 7, "$burst appends gave $n_ticks ticks, at most one per 200 ms");
cmp_ok($n_ticks * 10, '<=', $burst, 'far fewer ticks than appends');
cmp_ok($min_gap_ms, '>=', 150, 'no two ticks closer than the interval');
cmp_ok($below_final, '>=', 3, 'ticks kept coming while the burst lasted');
is($node->safe_psql('postgres', $non_monotonic_sql), 0, 'the ticks are still monotonic');

$node->safe_psql('postgres', 'ALTER SYSTEM RESET eventstore.tick_interval');
$node->reload;

# --- Pruning: ticks to prune ----------------------------------------------------------

# Two databases with a dozen ticks each; "prune_b" has a subscription whose
# checkpoint lies between the heads of its fourth and fifth ticks.
my %ticks;
for my $db (qw(prune_a prune_b))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION eventstore');
	my $s = $node->background_psql($db);
	for my $i (1 .. 12)
	{
		$s->query_safe(append_sql("prune-$i", 3));
		my $deadline = time() + $timeout;
		usleep(5_000)
		  until $s->query_safe("SELECT ($last_tick_sql) = eventstore.head()") eq 't'
		  || time() > $deadline;
	}
	$s->quit;
	$ticks{$db} = [
		split /\n/,
		$node->safe_psql($db,
			q{SELECT tick_id || '|' || head FROM eventstore.ticks ORDER BY tick_id})
	];
	is(scalar(@{ $ticks{$db} }), 12, "$db: one tick per append, none pruned yet");
}
my ($old_id, $old_head) = split /\|/, $ticks{prune_b}[3];
my $checkpoint = $old_head + 1;
$node->safe_psql('prune_b', qq{
	SELECT eventstore.create_subscription('old', start_position => $checkpoint)});

$node->safe_psql('postgres', q{
	ALTER SYSTEM SET eventstore.tick_retention = 0;
	ALTER SYSTEM SET eventstore.tick_keep = 5;
});
$node->reload;
my $prune_from = time();

# --- Databases a ticker is connected to ------------------------------------------

for my $db (qw(dropme tmpl))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION eventstore');
	append($db, "in-$db", 2);
	ok(wait_for_ticker($db), "$db: its ticker runs");
}

my ($rc, $err);
$t0 = time();
$rc = $node->psql('postgres', 'DROP DATABASE dropme', stderr => \$err);
my $drop_took = time() - $t0;
is($rc, 0, 'DROP DATABASE of a database with a running ticker succeeds') or diag($err);
cmp_ok($drop_took, '<', 3, sprintf('and at once (%.2f s)', $drop_took));
is(ticker_pid('dropme'), '', 'no ticker is left for the dropped database');

my $tmpl_count = $node->safe_psql('tmpl', 'SELECT count(*) FROM eventstore.events');
$rc = $node->psql('postgres', 'CREATE DATABASE copy TEMPLATE tmpl', stderr => \$err);
is($rc, 0, 'CREATE DATABASE ... TEMPLATE a database with a running ticker succeeds')
  or diag($err);
is($node->safe_psql('copy', 'SELECT count(*) FROM eventstore.events'),
	$tmpl_count, 'the copy holds the events of the template');
$pos = append('copy', 'in-copy', 1);
ok(wait_for_ticker('copy'), 'the copy gets a ticker on its first append');
ok(wait_for_tick_at_head('copy'), 'and a tick reaches its head');
cmp_ok(last_tick('copy'), '>=', $pos, 'covering the event appended to the copy');

$t0 = time();
$rc = $node->psql('postgres', 'ALTER DATABASE copy RENAME TO copy_renamed', stderr => \$err);
is($rc, 0, 'ALTER DATABASE ... RENAME of a database with a running ticker succeeds')
  or diag($err);
cmp_ok(time() - $t0, '<', 3, 'and at once');

# --- Pruning: what is left ----------------------------------------------------------

# The pruning runs every ten seconds.
my $tick_ids_sql =
  q{SELECT string_agg(tick_id::text, ',' ORDER BY tick_id) FROM eventstore.ticks};
ok( $node->poll_query_until('prune_a',
		'SELECT count(*) = 5 FROM eventstore.ticks'),
	'prune_a: the ticks are pruned down to tick_keep = 5');
is($node->safe_psql('prune_a', $tick_ids_sql),
	join(',', map { (split /\|/)[0] } @{ $ticks{prune_a} }[ 7 .. 11 ]),
	'prune_a: the five kept are the newest');

ok( $node->poll_query_until('prune_b',
		"SELECT count(*) = 0 FROM eventstore.ticks WHERE tick_id < $old_id"),
	'prune_b: the ticks older than the subscription needs are pruned');
is($node->safe_psql('prune_b', $tick_ids_sql),
	join(',', map { (split /\|/)[0] } @{ $ticks{prune_b} }[ 3 .. 11 ]),
	"prune_b: the newest tick at or below the checkpoint $checkpoint (head $old_head)"
	  . ' and every later one are kept'
);
cmp_ok(time() - $prune_from, '<', 25, 'pruning happened within two of its ten-second rounds');

# Once the subscription acknowledges the head, tick_keep alone counts.
$node->safe_psql('prune_b', q{SELECT eventstore.ack('old', eventstore.head())});
ok( $node->poll_query_until('prune_b',
		'SELECT count(*) = 5 FROM eventstore.ticks'),
	'prune_b: after the subscription caught up, five ticks are left');

# The template's ticker was asked to leave; an append brings it back (at
# the latest ten seconds after it left).
my $back = 0;
my $deadline = time() + 30;
while (!$back && time() < $deadline)
{
	append('tmpl', 'in-tmpl', 1);
	$back = ticker_pid('tmpl') ne '';
	usleep(250_000) unless $back;
}
ok($back, 'the template database gets its ticker back on an append');
ok(wait_for_tick_at_head('tmpl'), 'and a tick reaches its head');

# Moving it to another tablespace needs it to itself, too.
my $ts_dir = $node->basedir . '/tablespace';
mkdir $ts_dir or die "mkdir $ts_dir: $!";
$node->safe_psql('postgres', "CREATE TABLESPACE elsewhere LOCATION '$ts_dir'");
$tmpl_count = $node->safe_psql('tmpl', 'SELECT count(*) FROM eventstore.events');
$t0 = time();
$rc = $node->psql('postgres', 'ALTER DATABASE tmpl SET TABLESPACE elsewhere', stderr => \$err);
is($rc, 0, 'ALTER DATABASE ... SET TABLESPACE of a database with a running ticker succeeds')
  or diag($err);
cmp_ok(time() - $t0, '<', 3, 'and at once');
is($node->safe_psql('tmpl', 'SELECT count(*) FROM eventstore.events'),
	$tmpl_count, 'the moved database keeps its events');

$node->safe_psql('postgres', q{
	ALTER SYSTEM RESET eventstore.tick_retention;
	ALTER SYSTEM RESET eventstore.tick_keep;
});
$node->reload;

# --- Crashes -----------------------------------------------------------------------------

ok(wait_for_tick_at_head('postgres'), 'before the crash, a tick is at the head');
my $head_before = head('postgres');

$node->stop('immediate');
my $log_offset = -s $node->logfile;
$node->start;
ok($node->log_contains('was not properly shut down|database system was interrupted', $log_offset),
	'immediate shutdown: the server went through crash recovery');

# No append from here on: the launcher starts the tickers.
ok(wait_for_ticker('postgres'), 'immediate shutdown: the launcher starts the ticker again');
ok(wait_for_tick_at_head('postgres'),
	'immediate shutdown: a tick reaches the head without an append');
my $head_after = head('postgres');
cmp_ok($head_after, '>', $head_before,
	"immediate shutdown: the head moved to a fresh block ($head_before -> $head_after)");
is(last_tick('postgres'), $head_after, 'immediate shutdown: the newest tick is the new head');
ok(wait_for_ticker('prune_a'), 'immediate shutdown: other databases get their tickers back too');

# Kill the ticker itself: the postmaster reinitializes every process.  An
# append first, so that the allocator is in a block reserved since the
# restart and the head moves past it after the crash.
$pos = append('postgres', 'before-kill', 2);
ok(wait_for_tick_at_head('postgres'), 'before the kill, a tick is at the head');
$head_before = head('postgres');
cmp_ok($head_before, '>=', $pos, "the head covers the new event $pos");
$ticker = ticker_pid('postgres');
$log_offset = -s $node->logfile;
kill 'KILL', $ticker;
ok( $node->poll_query_until('postgres',
		sprintf("SELECT count(*) = 1 FROM (%s) t WHERE pid <> $ticker",
			sprintf($ticker_sql, 'postgres'))),
	'ticker killed: a new ticker runs');
ok($node->log_contains('terminated by signal 9', $log_offset),
	'ticker killed: the postmaster saw it die');
ok($node->log_contains('all server processes terminated; reinitializing', $log_offset),
	'ticker killed: the server went through crash recovery');
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'eventstore launcher'}),
	1,
	'ticker killed: the launcher runs again');
ok(wait_for_tick_at_head('postgres'), 'ticker killed: a tick reaches the head without an append');
$head_after = head('postgres');
cmp_ok($head_after, '>', $head_before,
	"ticker killed: the head moved to a fresh block ($head_before -> $head_after)");
is(last_tick('postgres'), $head_after, 'ticker killed: the newest tick is the new head');
is($node->safe_psql('postgres', $non_monotonic_sql), 0,
	'ticks stay monotonic across the crashes');

$pos = append('postgres', 'after-crash', 2);
ok(wait_for_tick_at_head('postgres'), 'after the crashes, appends are ticked as before');
cmp_ok(last_tick('postgres'), '>=', $pos, "the tick covers the new event $pos");

$node->stop;
done_testing();
