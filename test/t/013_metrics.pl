# test/t/013_metrics.pl
#	eventstore.stats under concurrent load, and its way to Prometheus.
#
#	1. Eight pgbench clients append one event each per transaction to 50
#	   streams and roll a random quarter of their transactions back; then
#	   eight clients append the same event (one event id) to one stream over
#	   and over.  The counters must then say exactly what the log says:
#	   events = the stored events, events + rolled_back = the events
#	   appended, appends = the committed transactions, duplicates = every
#	   append of the second phase but the one that stored the event.  A
#	   counter that lost a concurrent addition, counted at the call instead
#	   of at commit, or counted a rolled-back event as stored fails here.
#	2. Debian's prometheus-postgres-exporter, run as a login role that is
#	   only a member of eventstore_monitor, with monitoring/postgres_exporter.yaml,
#	   serves every counter and the subscriptions' lag with the values of
#	   eventstore.stats, and that role cannot read an event.
#	   Skipped when the exporter is not installed (test/lib.sh installs it).

use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = PostgreSQL::Test::Cluster->new('metrics');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');
$node->safe_psql('postgres', 'SELECT eventstore.reset_stats()');

# --- 1. exact under concurrency --------------------------------------------------

my $clients = 8;
my $per_client = 250;
my $dir = PostgreSQL::Test::Utils::tempdir();

PostgreSQL::Test::Utils::append_to_file("$dir/mixed.sql", q{
\set s random(1, 50)
\set r random(1, 4)
BEGIN;
SELECT count(*) FROM eventstore.append('m-' || :s, ARRAY[eventstore.event('T', '{"x": 1}')]);
\if :r = 1
ROLLBACK;
\else
COMMIT;
\endif
});
PostgreSQL::Test::Utils::append_to_file("$dir/same.sql", q{
SELECT count(*) FROM eventstore.append('same',
	'[{"type": "T", "data": {}, "id": "00000000-0000-0000-0000-00000000d0d0"}]'::jsonb);
});

for my $script ('mixed', 'same')
{
	my ($out, $err);
	my $ok = IPC::Run::run(
		[
			'pgbench', '-n', '-f', "$dir/$script.sql", '-c', $clients, '-j', 2,
			'-t', $per_client, '-h', $node->host, '-p', $node->port, 'postgres'
		],
		'<', \undef, '>', \$out, '2>', \$err);
	ok($ok, "pgbench, $script: $clients clients x $per_client transactions")
	  or diag($err);
}

my ($stored_mixed, $stored_same) = split /\|/, $node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE stream_id LIKE 'm-%'), count(*) FILTER (WHERE stream_id = 'same')
	  FROM eventstore.events});
my %stats;
@stats{qw(appends events duplicates rolled_back conflicts)} = split /\|/,
  $node->safe_psql('postgres',
	'SELECT appends, events, duplicates, rolled_back, conflicts FROM eventstore.stats');
my $total = $clients * $per_client;

is($stored_same, 1, 'the repeated event is stored once');
cmp_ok($stored_mixed, '<', $total, 'some transactions rolled back');
is($stats{events}, $stored_mixed + $stored_same, 'events: exactly the events stored');
is($stats{events} + $stats{rolled_back}, $total + 1,
	'events + rolled_back: every event that was appended and not a duplicate');
is($stats{appends}, $stored_mixed + $total,
	'appends: exactly the committed append calls');
is($stats{duplicates}, $total - 1, 'duplicates: every repetition of the stored event');
is($stats{conflicts}, 0, 'conflicts: none');

# --- 2. postgres_exporter --------------------------------------------------------

my ($exporter) = grep { -x $_ } '/usr/bin/prometheus-postgres-exporter',
  map { "$_/postgres_exporter" } split(/:/, $ENV{PATH});
if (!defined $exporter)
{
	note('prometheus-postgres-exporter is not installed: the exporter part is skipped');
	done_testing();
	exit 0;
}

$node->safe_psql('postgres', q{
	CREATE ROLE metrics_exporter LOGIN IN ROLE eventstore_monitor;
	SELECT eventstore.create_subscription('billing');
	SELECT count(*) FROM eventstore.try_append('m-1', ARRAY[eventstore.event('T', '{}')], 0);
});
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM eventstore.events',
	extra_params => [ '-U', 'metrics_exporter' ]);
like($err, qr/permission denied for table events/,
	'the exporter\'s role cannot read the events');

my $queries = "$FindBin::RealBin/../../monitoring/postgres_exporter.yaml";
ok(-f $queries, 'monitoring/postgres_exporter.yaml is in the repository');
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $dsn = sprintf('host=%s port=%d dbname=postgres user=metrics_exporter sslmode=disable',
	$node->host, $node->port);
$ENV{DATA_SOURCE_NAME} = $dsn;
my $server = IPC::Run::start(
	[
		$exporter, "--web.listen-address=127.0.0.1:$port",
		"--extend.query-path=$queries", '--disable-settings-metrics',
	],
	'<', '/dev/null', '>', "$dir/exporter.out", '2>&1');
END
{
	local $?;
	$server->kill_kill if $server && $server->pumpable;
}

my %want;
@want{qw(appends events duplicates rolled_back conflicts head)} = split /\|/,
  $node->safe_psql('postgres',
	'SELECT appends, events, duplicates, rolled_back, conflicts, head FROM eventstore.stats');
is($want{conflicts}, 1, 'the try_append conflict was counted');

my $body = '';
my $deadline = time() + $timeout;
while (time() < $deadline)
{
	my $res = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$port/metrics");
	$body = $res->{content} // '';
	last if $res->{success} && $body =~ /^eventstore_events_total/m;
	usleep(200_000);
}

sub metric
{
	my ($name, $labels) = @_;
	$labels //= '';
	return $body =~ /^\Q$name\E\{([^}]*)\}\s+(\S+)$/m && index($1, $labels) >= 0
	  ? $2 + 0 : undef;
}

ok(defined metric('eventstore_events_total'), 'the exporter serves eventstore_events_total')
  or diag(PostgreSQL::Test::Utils::slurp_file("$dir/exporter.out"));
is(metric('eventstore_appends_total', 'datname="postgres"'), $want{appends},
	'eventstore_appends_total{datname="postgres"} is the counter');
is(metric('eventstore_events_total'), $want{events}, 'eventstore_events_total is the counter');
is(metric('eventstore_duplicates_total'), $want{duplicates},
	'eventstore_duplicates_total is the counter');
is(metric('eventstore_rolled_back_events_total'), $want{rolled_back},
	'eventstore_rolled_back_events_total is the counter');
is(metric('eventstore_conflicts_total'), $want{conflicts},
	'eventstore_conflicts_total is the counter');
is(metric('eventstore_head'), $want{head}, 'eventstore_head is the head');
ok(defined metric('eventstore_stats_reset_seconds'), 'eventstore_stats_reset_seconds is served');
is(metric('eventstore_subscription_events_behind', 'subscription="billing"'),
	$want{events}, 'the new subscription is behind by every event');
is(metric('eventstore_subscription_paused', 'subscription="billing"'), 0,
	'the subscription is not paused');

$server->kill_kill;
done_testing();
