# test/t/001_crash.pl
#	An acknowledged append survives a crash whole; an unacknowledged one is
#	there whole or not at all; positions keep growing after recovery.
#
# pgbench clients append batches of 5 events, each to its own stream
# "crash-<client_id>", and log every acknowledged COMMIT (-l).  The
# postmaster is killed with SIGKILL while they run; after crash recovery
# every stream must hold at least what was acknowledged, in whole batches,
# with stream_order 1..version, and the global feed must be complete,
# unique and ordered, with new positions above every recovered one.

use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $clients = 8;
my $batch = 5;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
max_connections = 30
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');

# A few events before the storm, so that the feed does not start empty.
$node->safe_psql('postgres', q{
	SELECT count(*) FROM eventstore.append('before-crash',
		ARRAY[eventstore.event('Before', '{}'), eventstore.event('Before', '{}')])
});

# --- The writers ----------------------------------------------------------------

my $events = join(",\n\t\t",
	map { "eventstore.event('Crashed', jsonb_build_object('client', :client_id, 'n', $_))" }
	  1 .. $batch);
my $script = $node->basedir . '/append.sql';
PostgreSQL::Test::Utils::append_to_file($script, qq{
BEGIN;
SELECT count(*) FROM eventstore.append('crash-' || :client_id, ARRAY[
		$events]);
COMMIT;
});

my $log_prefix = $node->basedir . '/acks';
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[
		'pgbench', '-n',
		'-h', $node->host, '-p', $node->port,
		'-c', $clients, '-j', 4,
		'-T', 60,
		'-l', "--log-prefix=$log_prefix",
		'-f', $script,
		'postgres'
	],
	'<', \undef, '>', \$out, '2>', \$err,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));

# Let them run, making sure some appends were acknowledged before the crash.
my $deadline = time() + 60;
sleep(3);
while (time() < $deadline
	&& $node->safe_psql('postgres',
		q{SELECT count(*) FROM eventstore.streams WHERE stream_id LIKE 'crash-%'}) <
	$clients)
{
	usleep(100_000);
}

# --- The crash ------------------------------------------------------------------

# The postmaster's children outlive it until they notice its death; remember
# them so that the restart does not race with them.
my $pm_pid = $node->{_pid};
my @children = children_of($pm_pid);
ok(scalar(@children) > 0, 'the postmaster has children to orphan');

$node->kill9;

$deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
while (grep { kill(0, $_) } @children)
{
	die 'orphaned backends did not exit' if time() > $deadline;
	usleep(50_000);
}

$pgbench->finish;
note("pgbench stderr (expected to report lost connections):\n$err");
isnt($pgbench->result(0), 0, 'pgbench failed: its clients lost the server');

my $log_offset = -s $node->logfile;
$node->start;
ok( $node->log_contains(
		'database system was interrupted|was not properly shut down', $log_offset),
	'the server went through crash recovery');

# --- What was acknowledged --------------------------------------------------------

my %acked;
my @logs = glob("$log_prefix.*");
ok(scalar(@logs) > 0, 'pgbench wrote per-transaction logs');
for my $file (@logs)
{
	open my $fh, '<', $file or die "cannot open $file: $!";
	while (my $line = <$fh>)
	{
		# client_id transaction_no time script_no time_epoch time_us
		my @f = split ' ', $line;
		next unless @f >= 3 && $f[2] =~ /^\d+$/;
		$acked{ $f[0] }++;
	}
	close $fh;
}
my $total_acked = 0;
$total_acked += $_ for values %acked;
cmp_ok($total_acked, '>', 0, "appends were acknowledged before the crash ($total_acked)");

# --- Every stream after recovery ----------------------------------------------------

for my $c (0 .. $clients - 1)
{
	my $stream = "crash-$c";
	my $ack = $acked{$c} // 0;
	my ($version, $n, $distinct_orders, $lo, $hi, $distinct_ids, $bad_batches,
		$misordered)
	  = split /\|/,
	  $node->safe_psql('postgres', qq{
		SELECT eventstore.stream_version('$stream'),
			   count(*), count(DISTINCT stream_order),
			   coalesce(min(stream_order), 0), coalesce(max(stream_order), 0),
			   count(DISTINCT event_id),
			   (SELECT count(*) FROM (
					SELECT writer_xid FROM eventstore.events
					 WHERE stream_id = '$stream'
					 GROUP BY writer_xid
					HAVING count(*) <> $batch
						OR max(stream_order) - min(stream_order) <> $batch - 1
						OR max(stream_order) % $batch <> 0) b),
			   (SELECT count(*) FROM (
					SELECT insert_order,
						   lag(insert_order) OVER (ORDER BY stream_order) AS prev
					  FROM eventstore.events WHERE stream_id = '$stream') o
				 WHERE insert_order <= prev)
		  FROM eventstore.events WHERE stream_id = '$stream'});

	cmp_ok($version, '>=', $batch * $ack,
		"$stream: version $version covers the $ack acknowledged appends");
	is($version % $batch, 0, "$stream: version $version is whole batches of $batch");
	is($n, $version, "$stream: holds as many events as its version");
	ok( $distinct_orders == $version && ($version == 0 || ($lo == 1 && $hi == $version)),
		"$stream: stream_order is exactly 1..$version");
	is($distinct_ids, $n, "$stream: no event is stored twice");
	is($bad_batches, 0,
		"$stream: each transaction stored exactly one contiguous batch of $batch");
	is($misordered, 0, "$stream: insert_order grows with stream_order");
}

# --- The global feed after recovery ---------------------------------------------

my ($count, $distinct_positions, $max_before) = split /\|/,
  $node->safe_psql('postgres', q{
	SELECT count(*), count(DISTINCT insert_order), max(insert_order) FROM eventstore.events});
is($distinct_positions, $count, 'insert_order is unique across the log');
cmp_ok($node->safe_psql('postgres', 'SELECT eventstore.head()'), '>=', $max_before,
	'with no writer open, the head is at or above every recovered event');

$node->safe_psql('postgres', q{
	CREATE TABLE feed (page int, ord bigint, insert_order bigint, event_id uuid);
	DO $$
	DECLARE
		last_seen bigint := 0;
		page_no int := 0;
		got bigint;
	BEGIN
		LOOP
			page_no := page_no + 1;
			INSERT INTO feed
				SELECT page_no, r.ord, r.insert_order, r.event_id
				  FROM eventstore.read_all(last_seen, 1000)
					   WITH ORDINALITY AS r(insert_order, stream_id, stream_order, event_id,
											event_type, schema_version, data, metadata,
											recorded_at, partition_key, ord);
			GET DIAGNOSTICS got = ROW_COUNT;
			EXIT WHEN got = 0;
			SELECT f.insert_order INTO last_seen FROM feed f
			 WHERE f.page = page_no ORDER BY f.ord DESC LIMIT 1;
		END LOOP;
	END
	$$;
});
is( $node->safe_psql('postgres', $EsEnv::feed_difference),
	0,
	'read_all from 0 returns every stored event exactly once');
is($node->safe_psql('postgres', 'SELECT count(*) FROM feed'),
	$count, "read_all from 0 returns $count events, as many as are stored");
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT insert_order, lag(insert_order) OVER (ORDER BY page, ord) AS prev
			  FROM feed) s
		 WHERE insert_order <= prev}),
	0,
	'read_all returns events in strictly increasing insert_order');

# --- Appending after recovery -------------------------------------------------------

my $after = $node->safe_psql('postgres', q{
	SELECT min(insert_order) FROM eventstore.append('after-crash',
		ARRAY[eventstore.event('After', '{}'), eventstore.event('After', '{}')])});
cmp_ok($after, '>', $max_before,
	"a new append gets insert_order $after, above every recovered one ($max_before)");

# From another session, and on a stream that existed: the version continues.
my $v0 = $node->safe_psql('postgres', q{SELECT eventstore.stream_version('crash-0')});
my $res = $node->safe_psql('postgres', qq{
	SELECT min(stream_order), min(insert_order) FROM eventstore.append('crash-0',
		ARRAY[eventstore.event('After', '{}')], $v0)});
my ($next_order, $next_pos) = split /\|/, $res;
is($next_order, $v0 + 1, 'crash-0 continues at stream_order version + 1 after recovery');
cmp_ok($next_pos, '>', $after, 'positions keep growing across sessions after recovery');

$node->stop;

# A clean restart after all that changes nothing and still allocates above.
$node->start;
my $after_clean = $node->safe_psql('postgres', q{
	SELECT min(insert_order) FROM eventstore.append('after-restart',
		ARRAY[eventstore.event('After', '{}')])});
cmp_ok($after_clean, '>', $next_pos, 'positions keep growing across a clean restart');
$node->stop;

done_testing();

# The pids of a process's direct children, from /proc.
sub children_of
{
	my ($parent) = @_;
	my @pids;
	for my $stat (glob('/proc/[0-9]*/stat'))
	{
		open my $fh, '<', $stat or next;
		my $line = <$fh>;
		close $fh;
		next unless defined $line;
		# pid (comm) state ppid ...; comm may contain spaces and parentheses
		if ($line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $parent)
		{
			push @pids, $1;
		}
	}
	return @pids;
}
