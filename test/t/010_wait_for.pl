# test/t/010_wait_for.pl
#	eventstore.wait_for: waiting for the head without LISTEN, on a primary
#	and on a hot standby.
#
# On the primary a session waits for the head to pass the current one.
# While it waits it is active with a wait event of type Extension and holds
# no lock but its own virtual transaction id; it does not return while
# nothing is appended.  Another session appends: the waiter returns the new
# head at once, woken by the ticker (five rounds, each well below the one
# second after which a waiter would look again by itself).  A waiter is
# cancelled at once by pg_cancel_backend, and returns the unchanged head at
# its timeout.  A poll with wait is woken the same way.
#
# wait_for, like any statement, keeps its snapshot while it waits (its
# backend_xmin is set); the procedure wait_for_head, called on its own,
# holds none (backend_xmin is null) and is woken the same way.
#
# On a streaming hot standby (no ticker there) a waiter returns once the
# primary's append and the tick that covers it are replayed, with the
# standby's new head; wait_for_head there holds a snapshot only for each
# 20 ms look.

use strict;
use warnings;

use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
max_worker_processes = 16
});
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION eventstore');

sub append
{
	my ($stream) = @_;
	return $primary->safe_psql('postgres', qq{
		SELECT max(insert_order) FROM eventstore.append('$stream',
			ARRAY[eventstore.event('Waited', '{}')])});
}

append('warm-up');
$primary->poll_query_until('postgres', q{
	SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'eventstore ticker'})
  or die 'no ticker';

# Start a wait in a background session, with wait_for (its result in :got)
# or, given 'procedure', with CALL wait_for_head (in :head); returns once
# it is waiting.
sub start_wait
{
	my ($node, $session, $pid, $after, $timeout, $how) = @_;
	my $call = ($how // '') eq 'procedure'
	  ? "CALL eventstore.wait_for_head($after, '$timeout') \\gset"
	  : "SELECT eventstore.wait_for($after, '$timeout') AS got \\gset";
	$session->query_until(qr/waiting/, qq{
\\echo waiting
$call
});
	$node->poll_query_until('postgres', qq{
		SELECT state = 'active' AND wait_event_type = 'Extension'
		  FROM pg_stat_activity WHERE pid = $pid})
	  or die 'the wait did not start';
	return;
}

# --- On the primary --------------------------------------------------------------

my $waiter = $primary->background_psql('postgres', on_error_stop => 0);
my $waiter_pid = $waiter->query_safe('SELECT pg_backend_pid()');

my $head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($primary, $waiter, $waiter_pid, $head, '60 seconds');
is( $primary->safe_psql('postgres', qq{
		SELECT count(*) FROM pg_locks
		 WHERE pid = $waiter_pid AND locktype <> 'virtualxid'}),
	0,
	'primary: a waiter holds no lock but its virtual transaction id');
usleep(500_000);
is( $primary->safe_psql('postgres', qq{
		SELECT state FROM pg_stat_activity WHERE pid = $waiter_pid}),
	'active',
	'primary: with nothing appended, it keeps waiting');

my @latencies;
my $t0;
my $position;
for my $round (1 .. 5)
{
	if ($round > 1)
	{
		$head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
		start_wait($primary, $waiter, $waiter_pid, $head, '60 seconds');
	}
	my $t0 = time;
	my $position = append("round-$round");
	my $got = $waiter->query_safe('SELECT :got');
	push @latencies, time - $t0;
	cmp_ok($got, '>=', $position,
		"primary, round $round: the waiter returns a head at the append ($got >= $position)");
}
is($primary->safe_psql('postgres', 'SELECT wakeups >= 5 FROM eventstore.stats'),
	't', 'primary: eventstore.stats counts the waiters the ticker woke');
my @sorted = sort { $a <=> $b } @latencies;
note(sprintf('append-to-waiter latencies (append call included): %s s',
		join(', ', map { sprintf('%.4f', $_) } @sorted)));
cmp_ok($sorted[-1], '<', 0.5,
	'primary: every waiter was woken by the ticker, not by its own one-second look');

# poll with wait: woken the same way.
$primary->safe_psql('postgres',
	"SELECT eventstore.create_subscription('tap-waiting', start_from => 'head')");
$waiter->query_until(qr/polling/, q{
\echo polling
SELECT count(*) AS got FROM eventstore.poll('tap-waiting', wait => '60 seconds') \gset
});
$primary->poll_query_until('postgres', qq{
	SELECT state = 'active' AND wait_event_type = 'Extension'
	  FROM pg_stat_activity WHERE pid = $waiter_pid})
  or die 'the poll did not start waiting';
$t0 = time;
append('polled');
is($waiter->query_safe('SELECT :got'), 1, 'primary: a poll with wait returns the new event');
cmp_ok(time - $t0, '<', 5, 'primary: at once');

# A waiter for a position far ahead is not woken by appends below it: the
# ticker wakes only the waiters the head has passed.  Cancelled, its wait
# is withdrawn: no later tick wakes it.
sub wakeups { return $primary->safe_psql('postgres', 'SELECT wakeups FROM eventstore.stats') }
$head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($primary, $waiter, $waiter_pid, $head + 1000000, '60 seconds');
my $before = wakeups();
for my $i (1 .. 5)
{
	append("far-ahead-$i");
	usleep(50_000);
}
$primary->poll_query_until('postgres', q{
	SELECT (SELECT t.head FROM eventstore.ticks t ORDER BY t.tick_id DESC LIMIT 1)
		 = eventstore.head()})
  or die 'no tick reached the head';
is(wakeups(), $before, 'primary: five ticks woke no waiter waiting for a position far ahead');
is( $primary->safe_psql('postgres', qq{
		SELECT state || ' ' || wait_event_type FROM pg_stat_activity WHERE pid = $waiter_pid}),
	'active Extension', 'primary: and it still waits');
$primary->safe_psql('postgres', "SELECT pg_cancel_backend($waiter_pid)");
$waiter->query('SELECT 1');
$waiter->{stderr} = '';
# a wait for the current head, cancelled before anything is appended
$head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($primary, $waiter, $waiter_pid, $head, '60 seconds');
$primary->safe_psql('postgres', "SELECT pg_cancel_backend($waiter_pid)");
$waiter->query('SELECT 1');
$waiter->{stderr} = '';
append('after-cancel');
$primary->poll_query_until('postgres', q{
	SELECT (SELECT t.head FROM eventstore.ticks t ORDER BY t.tick_id DESC LIMIT 1)
		 = eventstore.head()})
  or die 'no tick reached the head';
is(wakeups(), $before, 'primary: a cancelled wait is withdrawn, no tick wakes it');

# Cancelled at once.
$head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($primary, $waiter, $waiter_pid, $head, '60 seconds');
$t0 = time;
$primary->safe_psql('postgres', "SELECT pg_cancel_backend($waiter_pid)");
my ($out, $err) = $waiter->query('SELECT 1');
like($waiter->{stderr}, qr/canceling statement due to user request/,
	'primary: pg_cancel_backend ends a wait');
cmp_ok(time - $t0, '<', 5, 'primary: at once');
$waiter->{stderr} = '';

# A snapshot while waiting: wait_for holds its statement's, wait_for_head
# none.
$head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($primary, $waiter, $waiter_pid, $head, '60 seconds');
is( $primary->safe_psql('postgres', qq{
		SELECT backend_xmin IS NOT NULL FROM pg_stat_activity WHERE pid = $waiter_pid}),
	't', 'primary: wait_for keeps its statement snapshot while it waits');
append('release-function-waiter');
$waiter->query_safe('SELECT :got');

$head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($primary, $waiter, $waiter_pid, $head, '60 seconds', 'procedure');
is( $primary->safe_psql('postgres', qq{
		SELECT backend_xmin IS NULL AND backend_xid IS NULL
		  FROM pg_stat_activity WHERE pid = $waiter_pid}),
	't', 'primary: wait_for_head holds no snapshot and no transaction id while it waits');
$t0 = time;
$position = append('procedure');
my $called = $waiter->query_safe('SELECT :head');
cmp_ok($called, '>=', $position, "primary: wait_for_head returns the new head ($called)");
cmp_ok(time - $t0, '<', 0.5, 'primary: woken by the ticker');

# The timeout: the head as it is.
$head = $primary->safe_psql('postgres', 'SELECT eventstore.head()');
$t0 = time;
is($primary->safe_psql('postgres', "SELECT eventstore.wait_for($head, '1 second')"),
	$head, 'primary: at the timeout, the unchanged head');
cmp_ok(time - $t0, '>=', 1, 'primary: after the timeout');
$waiter->quit;

# --- On a hot standby --------------------------------------------------------------

$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

my $standby_waiter = $standby->background_psql('postgres');
my $standby_pid = $standby_waiter->query_safe('SELECT pg_backend_pid()');
my $standby_head = $standby->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($standby, $standby_waiter, $standby_pid, $standby_head, '60 seconds');
$t0 = time;
$position = append('replicated');
my $got = $standby_waiter->query_safe('SELECT :got');
cmp_ok($got, '>=', $position,
	"standby: the waiter returns once the append is replayed and ticked ($got >= $position)");
note(sprintf('standby: append-to-waiter latency %.4f s', time - $t0));
cmp_ok(time - $t0, '<', 30, 'standby: before its timeout');
is($standby->safe_psql('postgres', 'SELECT eventstore.head()'),
	$got, "standby: which is the standby's head");

# wait_for_head on the standby: a snapshot only for each look
$standby_head = $standby->safe_psql('postgres', 'SELECT eventstore.head()');
start_wait($standby, $standby_waiter, $standby_pid, $standby_head, '60 seconds', 'procedure');
my $without = 0;
for (1 .. 20)
{
	$without++ if $standby->safe_psql('postgres', qq{
		SELECT backend_xmin IS NULL FROM pg_stat_activity WHERE pid = $standby_pid}) eq 't';
	usleep(10_000);
}
cmp_ok($without, '>=', 15,
	"standby: wait_for_head holds no snapshot between its looks ($without of 20 samples)");
$position = append('replicated-procedure');
$got = $standby_waiter->query_safe('SELECT :head');
cmp_ok($got, '>=', $position, "standby: wait_for_head returns once it is replayed ($got)");
$standby_waiter->quit;

$standby->stop;
$primary->stop;
done_testing();
