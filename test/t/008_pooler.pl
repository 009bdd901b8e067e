# test/t/008_pooler.pl
#	eventstore-follow through PgBouncer, in transaction, statement and
#	session pooling mode.  A pooler in transaction or statement mode lends
#	each request a server connection that other clients used before and will
#	use after: the follower keeps nothing there (no named prepared
#	statement, so a second run on the same server connection works), and
#	with --no-listen it waits with eventstore.wait_for.  In session mode LISTEN
#	works as on a direct connection.  In every mode each run prints exactly
#	the stored events, in insert_order, once; --ack moves the subscription's
#	checkpoint so that the next run prints only what is new; a follower left
#	running prints the events appended meanwhile, also across a restart of
#	the server behind the pooler.
#
# One PgBouncer (test/t/EsPooler.pm) serves one database alias per pooling
# mode, es_transaction, es_statement and es_session, each with a pool of one
# server connection, so that consecutive clients are certain to share it.  The test is skipped when no pgbouncer binary is installed
# (test/lib.sh installs the Debian package).

use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;
use EsFollow;
use EsPooler;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pgbouncer = EsPooler::binary();
plan skip_all => 'pgbouncer is not installed (Debian package "pgbouncer")'
  if !defined $pgbouncer;

if (!ok(-x $EsFollow::follow, "eventstore-follow is installed: $EsFollow::follow"))
{
	done_testing();
	exit 1;
}

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = PostgreSQL::Test::Cluster->new('pooler');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');

# --- PgBouncer -------------------------------------------------------------------

my @modes = qw(transaction statement session);
my $pool = EsPooler->start($pgbouncer, $node, @modes);

sub via
{
	my ($mode) = @_;
	return $pool->via($mode);
}

if (!ok($pool->ready, 'PgBouncer accepts connections on port ' . $pool->port))
{
	diag($pool->log);
	done_testing();
	exit 1;
}

# --- Helpers -------------------------------------------------------------------------

sub checkpoint
{
	my ($name) = @_;
	return $node->safe_psql('postgres',
		"SELECT checkpoint FROM eventstore.subscriptions WHERE name = '$name'");
}

# Run the follower to its end through a pool, and check that it succeeded
# and printed exactly $want.
sub follow_is
{
	my ($mode, $args, $want, $what) = @_;
	my ($rc, $out, $err) = run_follow(@$args, via($mode));
	is($rc, 0, "$mode pooling, $what: exit status 0");
	is($err, '', "$mode pooling, $what: nothing on stderr");
	my ($events, $bad) = parse_output($out);
	is($bad, 0, "$mode pooling, $what: JSON lines");
	is_deeply($events, $want,
		"$mode pooling, $what: exactly the expected events, once, in insert_order");
	return;
}

# --- Each pooling mode ---------------------------------------------------------------

append_events($node, 'pooled', 4, 20);

for my $mode (@modes)
{
	# Consecutive runs share the pool's one server connection.
	for my $run (1, 2, 3)
	{
		follow_is($mode, [ '--exit-at-head', '--batch', '7' ],
			stored_events($node), "--exit-at-head, run $run");
	}
	my $middle = stored_events($node)->[30]{position};
	follow_is($mode, [ '-e', '--no-listen', '--from', $middle ],
		stored_events($node, $middle), '--no-listen --from');

	# A subscription with --ack, twice: the second run prints what is new.
	my $sub = "through_$mode";
	$node->safe_psql('postgres', "SELECT eventstore.create_subscription('$sub')");
	my $all = stored_events($node);
	follow_is($mode, [ '-s', $sub, '--ack', '-b', '9', '-e' ], $all,
		'a subscription with --ack');
	is(checkpoint($sub), $all->[-1]{position},
		"$mode pooling: --ack moved the checkpoint to the last event printed");
	append_events($node, "after-$mode", 2, 6);
	follow_is($mode, [ '-s', $sub, '--ack', '-b', '9', '-e' ],
		stored_events($node, $all->[-1]{position}),
		'a subscription with --ack, run 2');

	# Following while events are appended.  In session mode a notification
	# wakes the follower, in the other modes eventstore.wait_for does (a
	# poll interval of ten minutes cannot, either way).
	my @wake = $mode eq 'session'
	  ? ('--poll-interval', '600000')
	  : ('--no-listen', '--poll-interval', '600000');
	my $from = stored_events($node)->[-1]{position};
	my ($h, $hout, $herr) = start_follow(@wake, '-b', '7', '--from', $from, via($mode));
	settle($h, $hout, 1);
	my $t0 = time();
	append_events($node, "live-$mode", 3, 5);
	my $want = stored_events($node, $from);
	is(wait_for_lines($h, $hout, scalar(@$want)), scalar(@$want),
		"$mode pooling, following (@wake): events appended meanwhile are printed");
	cmp_ok(time() - $t0, '<', 5, "$mode pooling, following: within seconds");
	is(settle($h, $hout, 1), scalar(@$want), "$mode pooling, following: and nothing more");
	$h->signal('TERM');
	is(wait_for_exit($h, 10), 0, "$mode pooling, following: SIGTERM, exit status 0");
	is($$herr, '', "$mode pooling, following: nothing on stderr");
	my ($events) = parse_output($$hout);
	is_deeply($events, $want, "$mode pooling, following: every new event once, in order");
}

# --- A server restart behind the pooler ---------------------------------------------

# PgBouncer keeps the follower's connection and holds its reads until the
# server is back: the follower goes on, nothing lost, nothing twice.
{
	my $from = stored_events($node)->[-1]{position};
	my ($h, $hout, $herr) =
	  start_follow('--no-listen', '--poll-interval', '200', '--from', $from,
		via('transaction'));
	append_events($node, 'before-restart', 2, 5);
	wait_for_lines($h, $hout, 10);
	$node->restart;
	append_events($node, 'after-restart', 2, 5);
	my $want = stored_events($node, $from);
	is(wait_for_lines($h, $hout, scalar(@$want)), scalar(@$want),
		'transaction pooling, across a server restart: every event is printed');
	is(settle($h, $hout, 1), scalar(@$want),
		'transaction pooling, across a server restart: and nothing more');
	$h->signal('TERM');
	is(wait_for_exit($h, 10), 0,
		'transaction pooling, across a server restart: SIGTERM, exit status 0');
	my ($events) = parse_output($$hout);
	is_deeply($events, $want,
		'transaction pooling, across a server restart: every event once, in order');
}

# --- The end ------------------------------------------------------------------------

# A LISTEN left on a server connection of a transaction or statement pool
# would make PgBouncer drop the notifications it later receives there, with
# a warning: neither --no-listen nor --exit-at-head listens.
unlike($pool->log,
	qr/got packet 'A' from server when not linked/,
	'no pooled server connection was left listening');

ok($pool->stop, 'PgBouncer stopped on SIGTERM');

$node->stop;
done_testing();
