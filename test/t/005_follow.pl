# test/t/005_follow.pl
#	eventstore-follow, the command-line follower: it prints every event
#	exactly once, in insert_order, as one JSON object a line; it survives a
#	restart of the server without losing or repeating an event; SIGTERM and
#	SIGINT end it with status 0, also while it waits; bad usage exits 2 and
#	runtime errors (no server, no database, no privilege, no extension, no
#	subscription) exit 1 with a message on stderr.  A ticker's notification
#	wakes it at once.  With --subscription it prints what passes the
#	subscription's filter after its checkpoint; with --ack the checkpoint
#	follows what was printed, and a follower restarted (after SIGKILL, or
#	across a server restart) resumes from the checkpoint without losing an
#	event.  On a hot standby it polls, and refuses --ack.
#
# The follower is the one installed into PostgreSQL's bindir by
# `make install`.  Its output is compared with eventstore.events itself,
# read independently of read_all.

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

if (!ok(-x $EsFollow::follow, "eventstore-follow is installed: $EsFollow::follow"))
{
	done_testing();
	exit 1;
}

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = PostgreSQL::Test::Cluster->new('follow');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
max_connections = 20
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');
my $connstr = $node->connstr('postgres');

# --- Helpers -------------------------------------------------------------------

sub stored_count
{
	return $node->safe_psql('postgres', 'SELECT count(*) FROM eventstore.events');
}

sub checkpoint
{
	my ($name) = @_;
	return $node->safe_psql('postgres',
		"SELECT checkpoint FROM eventstore.subscriptions WHERE name = '$name'");
}

sub last_position
{
	return $node->safe_psql('postgres',
		'SELECT coalesce(max(insert_order), 0) FROM eventstore.events');
}

# Wait until a subscription's checkpoint reaches a position; returns it.
sub wait_for_checkpoint
{
	my ($name, $position, $seconds) = @_;
	my $deadline = time() + ($seconds // $timeout);
	my $c;
	while (($c = checkpoint($name)) < $position && time() < $deadline)
	{
		usleep(50_000);
	}
	return $c;
}

# --- Usage -----------------------------------------------------------------------

my ($rc, $out, $err) = run_follow('--help');
is($rc, 0, '--help exits 0');
like($out, qr/^Usage:\n\s+eventstore-follow \[OPTION\]\.\.\. \[CONNINFO\]/m,
	'--help prints the usage');

($rc, $out, $err) = run_follow('--version');
is($rc, 0, '--version exits 0');
like($out, qr/^eventstore-follow \(eventstore\) \d+\.\d+\.\d+$/, '--version prints the version');

for my $case (
	[ [ '--no-such-option', $connstr ], qr/unrecognized option|invalid option/, 'an unknown option' ],
	[ [ '--batch', '0', $connstr ], qr/invalid value "0" for option --batch/, '--batch 0' ],
	[ [ '--batch', 'ten', $connstr ], qr/invalid value "ten" for option --batch/, 'a --batch that is not a number' ],
	[ [ '--from', '-1', $connstr ], qr/invalid value "-1" for option --from/, 'a negative --from' ],
	[ [ '--poll-interval', '0', $connstr ], qr/--poll-interval/, '--poll-interval 0' ],
	[ [ '--ack', $connstr ], qr/--ack needs --subscription/, '--ack without --subscription' ],
	[ [ $connstr, 'extra' ], qr/too many command-line arguments/, 'two connection arguments' ],
	[ [ 'no_such_keyword=1' ], qr/invalid connection string/, 'a connection string that does not parse' ])
{
	my ($args, $message, $what) = @$case;
	($rc, $out, $err) = run_follow(@$args);
	is($rc, 2, "$what: exit status 2");
	like($err, $message, "$what: says why on stderr");
	is($out, '', "$what: nothing on stdout");
}

# --- Catching up ---------------------------------------------------------------

append_events($node, 'catchup', 5, 61);
$node->safe_psql('postgres', q{
	SELECT count(*) FROM eventstore.append('catchup-single',
		ARRAY[eventstore.event('Lonely', 'null'::jsonb, '{"nested": {"a": [1, 2.5, "x"]}}')])});
my $total = stored_count();
is($total, 5 * 61 + 1, 'the catch-up events are stored');

($rc, $out, $err) = run_follow('--batch', '7', '--exit-at-head', $connstr);
is($rc, 0, '--exit-at-head: exits 0 once caught up');
is($err, '', '--exit-at-head: nothing on stderr');
my ($events, $bad) = parse_output($out);
is($bad, 0, 'every output line is one JSON object');
is(scalar(@$events), $total, "batches of 7: all $total events are printed");
ok(strictly_increasing(positions($events)), 'positions strictly increase');
is_deeply($events, stored_events($node), 'the output is exactly the stored events, in insert_order');

# Every field of one event with text that needs escaping.
my ($one) = grep { $_->{stream_id} eq 'catchup-2' && $_->{stream_order} == 3 } @$events;
is_deeply(
	[ @{$one}{qw(event_type schema_version partition_key data metadata)} ],
	[
		'Happened', 2, 'key "2"',
		{ n => 3, stream => 2, text => "quote \" backslash \\ newline \n tab \t \x{fc} \x{20ac} \x{1}" },
		{ by => 'follow-test' }
	],
	'fields and escaped text come through unchanged');

# The default batch, and an exact multiple of the batch size.
($rc, $out, $err) = run_follow('--exit-at-head', $connstr);
($events, $bad) = parse_output($out);
ok($rc == 0 && $bad == 0 && @$events == $total,
	"the default batch prints the same $total events");
($rc, $out, $err) = run_follow('--batch', $total, '--exit-at-head', $connstr);
($events, $bad) = parse_output($out);
ok($rc == 0 && $bad == 0 && @$events == $total,
	'a batch exactly as large as the feed prints it once and exits');

# --from: only what comes after the position.
my $middle = $node->safe_psql('postgres',
	'SELECT insert_order FROM eventstore.events ORDER BY insert_order OFFSET 99 LIMIT 1');
($rc, $out, $err) = run_follow('--from', $middle, '-b', '13', '-e', '-d', $connstr);
($events, $bad) = parse_output($out);
is($rc, 0, '--from: exits 0');
is_deeply($events, stored_events($node, $middle), "--from $middle: exactly the events after it");
is(scalar(@$events), $total - 100, '--from: the first 100 events are left out');

# Beyond the end: nothing, and still exit 0.
($rc, $out, $err) = run_follow('--from', '9223372036854775806', '--exit-at-head', $connstr);
ok($rc == 0 && $out eq '', '--from beyond the head prints nothing and exits 0');

# Connection parameters from the environment.
{
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	($rc, $out, $err) = run_follow('-e', '-b', '500');
	is(count_lines($out), $total, 'PGHOST, PGPORT and PGDATABASE are used');
}

# --- Following while events are appended, across a restart ------------------------

my ($h, $hout, $herr) =
  start_follow('--batch', '10', '--poll-interval', '200', $connstr);
is(wait_for_lines($h, $hout, $total), $total, 'following: the history is printed first');

append_events($node, 'live-a', 4, 15);
$total = stored_count();
is(wait_for_lines($h, $hout, $total), $total,
	'following: events appended while it waits are printed');

# Appends, then a restart right away, then more appends.
append_events($node, 'live-b', 4, 10);
$node->restart;
append_events($node, 'live-c', 3, 10);
$total = stored_count();
is(wait_for_lines($h, $hout, $total), $total,
	'following: everything appended before and after the restart is printed');
is(settle($h, $hout, 1.5), $total, 'following: and nothing more');
like($$herr, qr/connection lost/, 'following: the lost connection is reported on stderr');
like($$herr, qr/reconnected, resuming after position \d+/,
	'following: so is the reconnect');

$h->signal('TERM');
is(wait_for_exit($h, 10), 0, 'following: SIGTERM ends it with exit status 0');

($events, $bad) = parse_output($$hout);
is($bad, 0, 'following: every line is one JSON object');
ok(strictly_increasing(positions($events)),
	'following: positions strictly increase across the restart');
is_deeply($events, stored_events($node),
	'following: every stored event exactly once, in insert_order, across the restart');

# --- Signals while waiting -------------------------------------------------------------

# A long poll interval: only the signal can end the wait.
for my $signal (qw(TERM INT))
{
	($h, $hout, $herr) = start_follow('--poll-interval', '600000', $connstr);
	wait_for_lines($h, $hout, $total);
	settle($h, $hout, 0.3);
	my $t0 = time();
	$h->signal($signal);
	my $status = wait_for_exit($h, 10);
	is($status, 0, "SIG$signal while waiting: exit status 0");
	cmp_ok(time() - $t0, '<', 5, "SIG$signal while waiting: it exits at once");
	is(count_lines($$hout), $total, "SIG$signal while waiting: the output was complete");
}

# --- A reader that goes away ------------------------------------------------------------

# `eventstore-follow | head -1` as a shell runs it.  The test framework
# ignores SIGPIPE and an ignored signal stays ignored across exec, so the
# follower is given the default disposition, as a shell gives it.
sub follow_into_head
{
	my @args = @_;
	my ($out, $err) = ('', '');
	local $SIG{PIPE} = 'DEFAULT';
	my $h = IPC::Run::start([ $EsFollow::follow, @args ],
		'<', \undef, '2>', \$err, '|', [ 'head', '-n', '1' ], '>', \$out);
	return ($h, \$out, \$err);
}

# A wait status as a test compares it: the exit code, or how it ended.
sub exit_status
{
	my ($status) = @_;
	return 'still running' if !defined $status;
	return 'killed by signal ' . ($status & 127) if $status & 127;
	return $status >> 8;
}

($rc, $out, $err) = run_follow('-e', $connstr);
cmp_ok(length($out), '>', 2 * 65536, 'the whole feed is more than twice what a pipe holds');

# Printing when the reader goes: the next write fails.
($h, $hout, $herr) = follow_into_head('-e', '-b', '7', $connstr);
is(exit_status(wait_for_exit($h, $timeout)), 1,
	'| head -1 while printing: exit status 1, not SIGPIPE');
like($$herr, qr/could not write to standard output: Broken pipe/,
	'| head -1 while printing: says so on stderr');
($events) = parse_output($$hout);
is_deeply($events, [ stored_events($node)->[0] ], '| head -1 while printing: head got the first event');

# Waiting when the reader goes: it notices without a new event to write.
my $before_last = stored_events($node)->[-2]{position};
($h, $hout, $herr) =
  follow_into_head('--poll-interval', '600000', '--from', $before_last, $connstr);
my $t_gone = time();
is(exit_status(wait_for_exit($h, 10)), 1,
	'| head -1 while waiting: exit status 1');
cmp_ok(time() - $t_gone, '<', 5, '| head -1 while waiting: it exits at once');
like($$herr, qr/could not write to standard output: Broken pipe/,
	'| head -1 while waiting: says so on stderr');

# --- Runtime errors --------------------------------------------------------------------

my $no_port = PostgreSQL::Test::Cluster::get_free_port();
my $nowhere = 'host=' . $node->host . " port=$no_port dbname=postgres";
($rc, $out, $err) = run_follow('-e', $nowhere);
is($rc, 1, 'no server at startup: exit status 1');
like($err, qr/could not connect/, 'no server at startup: says so on stderr');
unlike($err, qr/retrying/, 'no server at startup: no retry by default');

($rc, $out, $err) = run_follow('-e', '--max-retries', '2', $nowhere);
is($rc, 1, 'no server, --max-retries 2: exit status 1');
is(scalar(() = $err =~ /could not connect/g), 3, 'no server, --max-retries 2: three attempts');
like($err, qr/giving up after 2 retries/,
	'no server, --max-retries 2: gives up');

($rc, $out, $err) = run_follow('-e', $node->connstr('no_such_db'));
is($rc, 1, 'a database that does not exist: exit status 1');
like($err, qr/database "no_such_db" does not exist/, 'a database that does not exist: says so');

$node->safe_psql('postgres', 'CREATE DATABASE no_extension');
($rc, $out, $err) = run_follow('-e', $node->connstr('no_extension'));
is($rc, 1, 'a database without the extension: exit status 1');
like($err, qr/could not read events:.*eventstore/s,
	'a database without the extension: says so');

$node->safe_psql('postgres', 'CREATE ROLE outsider LOGIN');
($rc, $out, $err) = run_follow('-e', "$connstr user=outsider");
is($rc, 1, 'a role without eventstore_reader: exit status 1');
like($err, qr/permission denied/, 'a role without eventstore_reader: says so');
is($out, '', 'a role without eventstore_reader: prints nothing');

$node->safe_psql('postgres', 'GRANT eventstore_reader TO outsider');
($rc, $out, $err) = run_follow('-e', "$connstr user=outsider");
ok($rc == 0 && count_lines($out) == $total, 'a member of eventstore_reader may follow');

# A lost connection with a retry limit: it gives up once the limit is spent.
($h, $hout, $herr) =
  start_follow('--max-retries', '2', '--poll-interval', '200', $connstr);
wait_for_lines($h, $hout, $total);
$node->stop;
my $status = wait_for_exit($h, 30);
is(defined $status ? $status >> 8 : 'still running', 1,
	'server gone for good, --max-retries 2: exit status 1');
like($$herr, qr/connection lost.*giving up/s,
	'server gone for good, --max-retries 2: reports the loss and gives up');
$node->start;

# --- Woken by the ticker's notification -------------------------------------------------

# A poll interval of ten minutes: only a notification can wake it in time.
my $last = last_position();
($h, $hout, $herr) = start_follow('--poll-interval', '600000', '--from', $last, $connstr);
settle($h, $hout, 1);
my $t0 = time();
append_events($node, 'ticked', 1, 1);
is(wait_for_lines($h, $hout, 1, 10), 1, 'a notification wakes the waiting follower');
cmp_ok(time() - $t0, '<', 5, 'it prints the new event within seconds');
$h->signal('TERM');
is(wait_for_exit($h, 10), 0, 'notified follower: SIGTERM, exit status 0');
($events) = parse_output($$hout);
is_deeply($events, stored_events($node, $last), 'notified follower: it printed the new event');

# --- Subscriptions ------------------------------------------------------------------------

$node->safe_psql('postgres', q{
	SELECT eventstore.create_subscription('everything');
	SELECT eventstore.create_subscription('live-c-only', stream_prefix => 'live-c');
});
my $all = stored_events($node);
$total = scalar(@$all);

($rc, $out, $err) = run_follow('--subscription', 'no-such', '--exit-at-head', $connstr);
is($rc, 1, 'a missing subscription: exit status 1');
like($err, qr/subscription "no-such" does not exist/, 'a missing subscription: says so');
is($out, '', 'a missing subscription: prints nothing');

# Without --ack nothing is acknowledged: each run starts at the checkpoint.
for my $run (1, 2)
{
	($rc, $out, $err) = run_follow('-s', 'everything', '-b', '50', '-e', $connstr);
	($events, $bad) = parse_output($out);
	ok($rc == 0 && $bad == 0, "subscription without --ack, run $run: exit 0, JSON lines");
	is_deeply($events, $all,
		"subscription without --ack, run $run: every event from the checkpoint, once, in order");
}
is(checkpoint('everything'), 0, 'without --ack the checkpoint stays where it was');

my @live_c = grep { $_->{stream_id} =~ /^live-c-/ } @$all;
cmp_ok(scalar(@live_c), '>', 0, 'some events pass the filter');
($rc, $out, $err) = run_follow('-s', 'live-c-only', '-b', '4', '-e', $connstr);
($events) = parse_output($out);
is_deeply($events, \@live_c, 'a filtered subscription: only the events that pass its filter');

# --from with a subscription: after the later of --from and the checkpoint.
($rc, $out, $err) = run_follow('-s', 'everything', '--from', $all->[49]{position}, '-e', $connstr);
($events) = parse_output($out);
is_deeply($events, [ @$all[ 50 .. $#$all ] ],
	'--from with a subscription: the events after the position');

# --ack: the checkpoint follows what was printed.
($rc, $out, $err) = run_follow('-s', 'everything', '--ack', '-b', '50', '-e', $connstr);
($events, $bad) = parse_output($out);
ok($rc == 0 && $bad == 0, '--ack: exit 0, JSON lines');
is_deeply($events, $all, '--ack: every event once, in order');
is(checkpoint('everything'), $all->[-1]{position}, '--ack: the checkpoint is the last printed position');
($rc, $out, $err) = run_follow('-s', 'everything', '--ack', '-e', $connstr);
ok($rc == 0 && $out eq '', '--ack: the next run has nothing left to print');

# --ack into a pipe whose reader goes: a batch not wholly written is not
# acknowledged, and the next run prints it again.
$node->safe_psql('postgres', q{SELECT eventstore.create_subscription('piped')});
($h, $hout, $herr) = follow_into_head('-s', 'piped', '--ack', '-b', '50', '-e', $connstr);
is(exit_status(wait_for_exit($h, $timeout)), 1, '--ack into a closed pipe: exit status 1');
my $piped_at = checkpoint('piped');
my @boundaries = (0, map { $all->[ 50 * $_ - 1 ]{position} } 1 .. int(@$all / 50));
cmp_ok($piped_at, '<', $all->[-1]{position},
	'--ack into a closed pipe: the batch that failed is not acknowledged');
ok((grep { $_ == $piped_at } @boundaries),
	"--ack into a closed pipe: the checkpoint ($piped_at) is the end of a printed batch");
($rc, $out, $err) = run_follow('-s', 'piped', '--ack', '-e', $connstr);
($events) = parse_output($out);
is_deeply($events, stored_events($node, $piped_at),
	'--ack into a closed pipe: the next run prints everything after the checkpoint');

# A follower with --ack killed with SIGKILL, then started again.
my $start = $node->safe_psql('postgres',
	q{SELECT eventstore.create_subscription('worker', start_from => 'head')});
is($start, last_position(), 'the worker subscription starts at the head');
($h, $hout, $herr) = start_follow('-s', 'worker', '--ack', '-b', '5', '-i', '200', $connstr);
append_events($node, 'sub-a', 3, 8);
my $want = stored_events($node, $start);
wait_for_lines($h, $hout, scalar(@$want));
is(wait_for_checkpoint('worker', $want->[-1]{position}), $want->[-1]{position},
	'worker: the checkpoint follows the printed events');
$h->signal('KILL');
wait_for_exit($h, 10);
my ($first_run) = parse_output($$hout);
my $killed_at = checkpoint('worker');
is_deeply($first_run, $want, 'worker: it printed every new event, once, in order');

append_events($node, 'sub-b', 3, 8);
($h, $hout, $herr) = start_follow('-s', 'worker', '--ack', '-b', '5', '-i', '200', $connstr);
$want = stored_events($node, $killed_at);
is(wait_for_lines($h, $hout, scalar(@$want)), scalar(@$want),
	'worker restarted: it prints what came after the checkpoint');
settle($h, $hout, 1);
my ($second_run) = parse_output($$hout);
is_deeply($second_run, $want, 'worker restarted: it resumes right after the checkpoint');
my %seen;
$seen{ $_->{position} }++ for @$first_run, @$second_run;
is_deeply([ sort { $a <=> $b } keys %seen ], positions(stored_events($node, $start)),
	'worker: the two runs together printed every event since the subscription began');

# The same follower across a server restart.
append_events($node, 'sub-c', 2, 8);
my $before_restart = count_lines($$hout);
wait_for_lines($h, $hout, $before_restart + 16);
$node->restart;
append_events($node, 'sub-d', 2, 8);
$last = last_position();
is(wait_for_checkpoint('worker', $last), $last,
	'worker across a restart: the checkpoint reaches the last event');
settle($h, $hout, 0.5);
like($$herr, qr/reconnected, resuming from the checkpoint of subscription "worker"/,
	'worker across a restart: resumes from the checkpoint');
$h->signal('TERM');
is(wait_for_exit($h, 10), 0, 'worker: SIGTERM, exit status 0');
($second_run, $bad) = parse_output($$hout);
is($bad, 0, 'worker across a restart: JSON lines');
%seen = ();
$seen{ $_->{position} }++ for @$second_run;
is_deeply([ sort { $a <=> $b } keys %seen ], positions(stored_events($node, $killed_at)),
	'worker across a restart: nothing is lost');
my $repeated = scalar(@$second_run) - scalar(keys %seen);
cmp_ok($repeated, '<=', 5,
	"worker across a restart: at most one unacknowledged batch is repeated ($repeated)");
my $steps_back = grep {
	$second_run->[$_]{position} <= $second_run->[ $_ - 1 ]{position}
} 1 .. $#$second_run;
cmp_ok($steps_back, '<=', 1, 'worker across a restart: in order but for one resumption');

# --- A hot standby: no LISTEN there, it polls ------------------------------------------------

$node->backup('follow_backup');
my $standby = PostgreSQL::Test::Cluster->new('follow_standby');
$standby->init_from_backup($node, 'follow_backup', has_streaming => 1);
$standby->start;
append_events($node, 'primary', 2, 5);
$last = last_position();
my $deadline = time() + $timeout;
usleep(100_000)
  while $standby->safe_psql('postgres', 'SELECT eventstore.head()') < $last && time() < $deadline;

my $standby_connstr = $standby->connstr('postgres');
($h, $hout, $herr) = start_follow('--poll-interval', '200', $standby_connstr);
$total = scalar(@{ stored_events($node) });
is(wait_for_lines($h, $hout, $total), $total, 'on a standby: the history is printed');
append_events($node, 'primary-live', 2, 5);
$total = scalar(@{ stored_events($node) });
is(wait_for_lines($h, $hout, $total), $total,
	'on a standby: events appended on the primary are printed as they are replayed');
$h->signal('TERM');
is(wait_for_exit($h, 10), 0, 'on a standby: SIGTERM, exit status 0');
is($$herr, '', 'on a standby: nothing on stderr');
($events) = parse_output($$hout);
is_deeply($events, stored_events($node), 'on a standby: every event once, in order');

# Subscriptions: polled on the standby, acknowledged only on the primary.
($rc, $out, $err) = run_follow('-s', 'live-c-only', '-b', '3', '-e', $standby_connstr);
($events) = parse_output($out);
ok($rc == 0 && $err eq '', 'on a standby: a subscription without --ack, exit 0');
is_deeply($events, [ grep { $_->{stream_id} =~ /^live-c-/ } @{ stored_events($node) } ],
	'on a standby: a subscription prints what passes its filter');
($rc, $out, $err) = run_follow('-s', 'live-c-only', '--ack', '-e', $standby_connstr);
is($rc, 1, 'on a standby: --ack is an error (exit status 1)');
like($err, qr/in recovery: acknowledgements are stored on the primary only/,
	'on a standby: --ack says why');
is($out, '', 'on a standby: --ack prints nothing');
$standby->stop;

$node->stop;
done_testing();
