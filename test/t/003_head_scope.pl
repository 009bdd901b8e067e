# test/t/003_head_scope.pl
#	What the head needs and what holds it: shared_preload_libraries, only
#	appenders of the same database, positions that outlive a restart.
#
# A cluster restarted without shared_preload_libraries can still CREATE
# EXTENSION in a new database, and functions that need no shared memory
# still work; but every function that needs the shared allocator (append,
# head, read_all, read_stream, open_appenders and the appenders view) must
# refuse with SQLSTATE 55000, naming shared_preload_libraries and giving a
# hint, without ending the session, and must write nothing.
#
# In a preloaded cluster with two databases, an open transaction of db1 that
# appended holds db1's head below its position and shows in db1's appenders
# view, and nowhere else: db2 appends and reads past it, and neither an open
# non-appending write transaction, an idle read-only transaction nor a
# running query of db2 holds db2's head.  When db1's appender commits,
# db1's head passes it.  Each database counts its own positions, and after a
# restart new positions lie above every position handed out before.

use strict;
use warnings;

use Time::HiRes qw(usleep);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# --- Not preloaded -----------------------------------------------------------------

# The cluster starts with the library preloaded, so that database "earlier"
# certainly holds the extension; then it restarts without it.
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = 'eventstore'");
$bare->start;
$bare->safe_psql('postgres', 'CREATE DATABASE earlier');
$bare->safe_psql('earlier', 'CREATE EXTENSION eventstore');
$bare->safe_psql('postgres', 'CREATE DATABASE fresh');
$bare->adjust_conf('postgresql.conf', 'shared_preload_libraries', undef);
$bare->restart;
is($bare->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'', 'not preloaded: shared_preload_libraries is empty');

# Runs one statement in its own session with verbose errors; returns psql's
# exit code (non-zero on error thanks to ON_ERROR_STOP, which psql() sets
# but does not die on) and stderr.  A FATAL ends only that session.
sub bare_psql
{
	my ($db, $sql) = @_;
	my $stderr = '';
	my $ret = $bare->psql(
		$db, $sql,
		stderr => \$stderr,
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $stderr);
}

# CREATE EXTENSION only defines objects; it needs no shared memory.  It
# loads the library (to check the C functions), which must not take the
# session down.
my ($rc, $err) = bare_psql('fresh', 'CREATE EXTENSION eventstore');
is($rc, 0, 'not preloaded: CREATE EXTENSION eventstore succeeds') or diag($err);
unlike($err, qr/FATAL/, 'not preloaded: CREATE EXTENSION does not end the session');
is( $bare->safe_psql('fresh',
		q{SELECT count(*) FROM pg_extension WHERE extname = 'eventstore'}),
	1,
	'not preloaded: the extension is installed');

# The plain SQL helpers keep working.
($rc, $err) = bare_psql('earlier', q{
	SELECT (eventstore.event('T', '{}')).event_type,
		   eventstore.stream_version('x')});
is($rc, 0, 'not preloaded: event and stream_version work') or diag($err);

my %needs_preload = (
	'eventstore.append' => q{SELECT * FROM eventstore.append('x',
		ARRAY[eventstore.event('T', '{}')])},
	'eventstore.head' => q{SELECT eventstore.head()},
	'eventstore.bucket_of' => q{SELECT eventstore.bucket_of('abc')},
	'eventstore.read_all' => q{SELECT * FROM eventstore.read_all()},
	'eventstore.read_stream' => q{SELECT * FROM eventstore.read_stream('x')},
	'eventstore.open_appenders' => q{SELECT * FROM eventstore.open_appenders()},
	'eventstore.appenders' => q{SELECT * FROM eventstore.appenders},);

for my $name (sort keys %needs_preload)
{
	my ($ret, $stderr) = bare_psql('earlier', $needs_preload{$name});
	isnt($ret, 0, "not preloaded: $name fails");
	like(
		$stderr,
		qr/^(?:psql:\S+ )?ERROR:  55000: .*shared_preload_libraries/m,
		"not preloaded: $name raises 55000 naming shared_preload_libraries")
	  or diag($stderr);
	like($stderr, qr/^HINT:  \S.*shared_preload_libraries/m,
		"not preloaded: $name gives a hint");
	unlike($stderr, qr/FATAL/, "not preloaded: $name does not end the session");
}

is( $bare->safe_psql('earlier', q{
		SELECT (SELECT count(*) FROM eventstore.events),
			   (SELECT count(*) FROM eventstore.streams),
			   (SELECT is_called FROM eventstore.position_blocks)}),
	'0|0|f',
	'not preloaded: the refused calls wrote nothing and reserved no positions');

$bare->stop;

# --- Preloaded, two databases ------------------------------------------------------

my $node = PostgreSQL::Test::Cluster->new('scope');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'eventstore'");
$node->start;

for my $db ('db1', 'db2')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION eventstore');
	$node->safe_psql($db, qq{
		SELECT count(*) FROM eventstore.append('warmup-$db',
			ARRAY[eventstore.event('Warm', '{}'), eventstore.event('Warm', '{}')])});
}

# The appender of db1: appends and stays open.
my $appender = $node->background_psql('db1');
my $appender_pid = $appender->query_safe('SELECT pg_backend_pid()');
$appender->query_safe('BEGIN');
my $open_pos = $appender->query_safe(q{
	SELECT insert_order FROM eventstore.append('open-db1',
		ARRAY[eventstore.event('Open', '{}')])});
my $open_xid = $appender->query_safe('SELECT pg_current_xact_id()');
like($open_pos, qr/^\d+$/, "db1: the open transaction appended at $open_pos");

# db2: an open write transaction that did not append ...
my $writer = $node->background_psql('db2');
my $writer_pid = $writer->query_safe('SELECT pg_backend_pid()');
$writer->query_safe('BEGIN');
$writer->query_safe('CREATE TABLE t (x int)');
$writer->query_safe('INSERT INTO t VALUES (1)');
like($writer->query_safe('SELECT pg_current_xact_id()'),
	qr/^\d+$/, 'db2: a non-appending transaction holds an xid');

# ... an idle read-only transaction that read the log and the head ...
my $reader = $node->background_psql('db2');
my $reader_pid = $reader->query_safe('SELECT pg_backend_pid()');
$reader->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$reader->query_safe(q{SELECT count(*) FROM eventstore.read_all(0, 1000)});
$reader->query_safe(q{SELECT count(*) FROM eventstore.read_stream('warmup-db2')});

# ... and a long query that is running.
my $sleeper = $node->background_psql('db2', on_error_stop => 0);
my $sleeper_pid = $sleeper->query_safe('SELECT pg_backend_pid()');
$sleeper->query_until(qr/sleeping/, q{
\echo sleeping
SELECT (SELECT count(*) FROM eventstore.events), pg_sleep(120);
});
$node->poll_query_until('db2', qq{
	SELECT state = 'active' AND query LIKE '%pg_sleep%'
	  FROM pg_stat_activity WHERE pid = $sleeper_pid})
  or die 'the long query did not start';

# db2 appends and commits while all of the above is open.
my ($db2_pos, $db2_id) = split /\|/, $node->safe_psql('db2', q{
	SELECT insert_order, event_id FROM eventstore.append('closed-db2',
		ARRAY[eventstore.event('Closed', '{}')])});
cmp_ok($node->safe_psql('db2', 'SELECT eventstore.head()'),
	'>=', $db2_pos, "db2: head reaches the committed append at $db2_pos");
is( $node->safe_psql('db2', qq{
		SELECT count(*) FROM eventstore.read_all(0, 1000)
		 WHERE insert_order = $db2_pos AND event_id = '$db2_id'}),
	1,
	'db2: read_all returns the committed append');
is($node->safe_psql('db2', 'SELECT count(*) FROM eventstore.appenders'),
	0, 'db2: no appender is open, whatever runs in db2 or db1');
is( $node->safe_psql('db2', qq{
		SELECT count(*) FROM eventstore.open_appenders()
		 WHERE pid IN ($appender_pid, $writer_pid, $reader_pid, $sleeper_pid)}),
	0,
	'db2: open_appenders shows neither the db1 appender nor the db2 sessions');

# A second append in db2 while they are all still open: the head follows.
my $db2_pos2 = $node->safe_psql('db2', q{
	SELECT insert_order FROM eventstore.append('closed-db2',
		ARRAY[eventstore.event('Closed', '{}')], 1)});
cmp_ok($db2_pos2, '>', $db2_pos, 'db2: a later append gets a higher position');
is($node->safe_psql('db2', 'SELECT eventstore.head()'),
	$db2_pos2, 'db2: head is exactly the last committed position');

# db1 meanwhile: the open appender, and only it, holds the head.
my ($db1_pid, $db1_lowest, $db1_xid, $db1_n) = split /\|/,
  $node->safe_psql('db1', q{
	SELECT min(pid), min(lowest_position), min(writer_xid::text), count(*)
	  FROM eventstore.appenders});
is($db1_n, 1, 'db1: exactly one open appender');
is($db1_pid, $appender_pid, 'db1: it is the backend of the open transaction');
is($db1_lowest, $open_pos, 'db1: its lowest_position is the open append');
is($db1_xid, $open_xid, 'db1: its writer_xid is the open transaction');

my $db1_closed = $node->safe_psql('db1', q{
	SELECT insert_order FROM eventstore.append('closed-db1',
		ARRAY[eventstore.event('Closed', '{}')])});
cmp_ok($db1_closed, '>', $open_pos,
	'db1: a later append commits above the open one');
is($node->safe_psql('db1', 'SELECT eventstore.head()'),
	$open_pos - 1, 'db1: head stays just below the open append');
is( $node->safe_psql('db1', qq{
		SELECT count(*) FROM eventstore.read_all(0, 1000)
		 WHERE insert_order >= $open_pos}),
	0,
	'db1: read_all returns nothing at or above the open append, committed or not');

# The db2 sessions end; nothing changes for db1.
$node->safe_psql('db2', "SELECT pg_cancel_backend($sleeper_pid)");
$sleeper->quit;
$reader->query_safe('COMMIT');
$reader->quit;
$writer->query_safe('COMMIT');
$writer->quit;
is($node->safe_psql('db1', 'SELECT eventstore.head()'),
	$open_pos - 1, 'db1: head still held by its own appender only');

# The appender commits: db1's head passes it.
$appender->query_safe('COMMIT');
$appender->quit;
my $db1_head = $node->safe_psql('db1', 'SELECT eventstore.head()');
cmp_ok($db1_head, '>=', $db1_closed,
	"db1: after the commit the head ($db1_head) passes every append");
is( $node->safe_psql('db1', qq{
		SELECT count(*) FROM eventstore.read_all($open_pos - 1, 1000)
		 WHERE insert_order IN ($open_pos, $db1_closed)}),
	2,
	'db1: read_all now returns the once-open append and the later one');
is($node->safe_psql('db1', 'SELECT count(*) FROM eventstore.appenders'),
	0, 'db1: no appender is open any more');

# --- Positions per database, across a restart ---------------------------------------

# db1 appends more; db2's counter does not move.
$node->safe_psql('db1', q{
	SELECT count(*) FROM eventstore.append('more-db1',
		ARRAY[eventstore.event('More', '{}'), eventstore.event('More', '{}'),
			  eventstore.event('More', '{}')])});
my $db2_next = $node->safe_psql('db2', q{
	SELECT insert_order FROM eventstore.append('closed-db2',
		ARRAY[eventstore.event('Closed', '{}')], 2)});
is($db2_next, $db2_pos2 + 1,
	'db2: its positions continue where they were, whatever db1 appended');

my %before;
for my $db ('db1', 'db2')
{
	my ($head, $max, $distinct, $n) = split /\|/, $node->safe_psql($db, q{
		SELECT eventstore.head(), max(insert_order),
			   count(DISTINCT insert_order), count(*)
		  FROM eventstore.events});
	cmp_ok($head, '>=', $max, "$db: with no appender open, head $head >= max $max");
	is($distinct, $n, "$db: insert_order is unique");
	$before{$db} = $head > $max ? $head : $max;
}

$node->stop('fast');
$node->start;

for my $db ('db1', 'db2')
{
	my $after = $node->safe_psql($db, qq{
		SELECT min(insert_order) FROM eventstore.append('after-restart-$db',
			ARRAY[eventstore.event('After', '{}'), eventstore.event('After', '{}')])});
	cmp_ok($after, '>', $before{$db},
		"$db: after a restart a new append gets $after, above the old head $before{$db}");
	is( $node->safe_psql($db, qq{
			SELECT count(*) FROM eventstore.events
			 WHERE insert_order >= $after AND stream_id <> 'after-restart-$db'}),
		0,
		"$db: no position of the new append was used before");
	cmp_ok($node->safe_psql($db, 'SELECT eventstore.head()'),
		'>=', $after + 1, "$db: the head passes the new append");
}

$node->stop;

done_testing();
