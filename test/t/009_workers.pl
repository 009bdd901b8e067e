# test/t/009_workers.pl
#	The workers under attack and under hostile settings: the ticker picks
#	up nothing of a database owner's objects or defaults, commands that
#	would fail their own checks leave the ticker alone, the launcher
#	restarts tickers that die, an idle database costs no transactions, a
#	blocked catalog in one database does not hold up the head of another,
#	and a shortage of worker slots is logged with its SQLSTATE.
#
# Escalation: a database owner plants public.max(bigint) and min(bigint)
# aggregates whose final function records who calls it and tries ALTER
# ROLE ... SUPERUSER, puts public first on the database's search_path and
# gets the ticker restarted.  The ticker prunes ticks at its first tick
# (the query aggregates tick ids and checkpoints), but never calls the
# planted aggregates: the owner stays a plain role.  The trap itself works:
# the owner calling max() under that search_path is recorded.
#
# Side effects before authorization: a role that does not own the database
# runs DROP DATABASE, ALTER DATABASE ... RENAME and SET TABLESPACE, and
# CREATE DATABASE ... TEMPLATE; each fails its own permission check and the
# ticker keeps running, the same process.  A superuser's DROP DATABASE
# that fails because another session is connected gets the ticker back at
# once, without any append.
#
# Supervision: a ticker terminated with pg_terminate_backend is back within
# seconds, without any append; with the database's defaults set to
# read-only, REPEATABLE READ transactions, a 1 ms statement_timeout, role
# set to a role with no privileges and exit_on_error on (sessions of the
# test override them), the restarted ticker still records ticks that reach
# the head, as the superuser it is.  A tick that fails (a constraint added
# to eventstore.ticks) is logged with its SQLSTATE and retried by the same
# ticker until it succeeds.
#
# Idle: with nothing appended, a database's ticker runs no transactions
# (its state_change in pg_stat_activity stays put for six seconds).
#
# Locks: while a maintenance session holds LOCK pg_database, a backend that
# uses eventstore for the first time (in a database whose entry comes after
# that of a database without a ticker) may wait on the catalog, but head()
# in another database answers at once.  Before, the first backend waited on
# the catalog while holding the extension's one lock, and every head()
# waited behind it, uncancellably.  A ticker left idle by DROP EXTENSION
# exits once the drop commits.
#
# Slots: with max_worker_processes too small for the launcher and every
# ticker, the launcher logs SQLSTATE 53000 with a hint to raise
# max_worker_processes.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'eventstore'
autovacuum = off
log_line_prefix = '%m [%p] %e '
});
$node->start;

my $ticker_sql = q{
	SELECT pid FROM pg_stat_activity
	 WHERE backend_type = 'eventstore ticker' AND datname = '%s'};

sub ticker_pid
{
	my ($db) = @_;
	return $node->safe_psql('postgres', sprintf($ticker_sql, $db));
}

# Wait until a ticker runs in $db (other than $not_pid); returns its pid,
# or '' after $seconds.
sub wait_for_ticker
{
	my ($db, $seconds, $not_pid) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		my $pid = ticker_pid($db);
		return $pid if $pid =~ /^\d+$/ && (!defined $not_pid || $pid ne $not_pid);
		sleep(0.1);
	}
	return '';
}

sub append
{
	my ($db, $stream) = @_;
	return $node->safe_psql($db, qq{
		SELECT pg_catalog.max(insert_order) FROM eventstore.append('$stream',
			ARRAY[eventstore.event('Happened', '{}')])});
}

my $last_tick_sql =
  'SELECT coalesce((SELECT head FROM eventstore.ticks ORDER BY tick_id DESC LIMIT 1), -1)';

# Whether a tick reaches position $pos in $db within $seconds.
sub tick_reaches
{
	my ($db, $pos, $seconds) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		return 1 if $node->safe_psql($db, $last_tick_sql) >= $pos;
		sleep(0.1);
	}
	return 0;
}

# --- Escalation through the ticker's queries -------------------------------------

# (This test's own queries are schema-qualified too: they run as a superuser
# under the hostile search_path set below.)

$node->safe_psql('postgres', q{
	CREATE ROLE dbo LOGIN;
	CREATE DATABASE owned OWNER dbo;
});
$node->safe_psql('owned', q{
	CREATE EXTENSION eventstore;
	SELECT eventstore.create_subscription('old-reader');
});
ok(wait_for_ticker('owned', 30), 'owned: a ticker runs');
append('owned', 'before');

# The owner's trap, planted as the owner.
$node->safe_psql('owned', q{
	SET ROLE dbo;
	CREATE TABLE public.trap_log (who name, at timestamptz DEFAULT clock_timestamp());
	GRANT INSERT ON public.trap_log TO PUBLIC;
	CREATE FUNCTION public.trap_step(bigint, bigint) RETURNS bigint
		LANGUAGE sql AS 'SELECT greatest($1, $2)';
	CREATE FUNCTION public.trap_final(bigint) RETURNS bigint
		LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.trap_log (who) VALUES (current_user);
		BEGIN
			EXECUTE 'ALTER ROLE dbo SUPERUSER';
		EXCEPTION WHEN insufficient_privilege THEN
			NULL;
		END;
		RETURN $1;
	END
	$$;
	CREATE AGGREGATE public.max(bigint) (
		sfunc = public.trap_step, stype = bigint, finalfunc = public.trap_final);
	CREATE AGGREGATE public.min(bigint) (
		sfunc = public.trap_step, stype = bigint, finalfunc = public.trap_final);
	ALTER DATABASE owned SET search_path = public, pg_catalog;
});
is( $node->safe_psql('owned', q{
		SET ROLE dbo;
		SELECT max(x) FROM (VALUES (1::bigint)) v(x);
		SELECT string_agg(who::text, ',') FROM public.trap_log;}),
	"1\ndbo",
	'owned: the planted max() is what an unqualified call finds');
$node->safe_psql('owned', 'TRUNCATE public.trap_log');

$node->restart;
my $owned_ticker = wait_for_ticker('owned', 30);
ok($owned_ticker, 'owned: the ticker is back after the restart');
my $pos = append('owned', 'after-restart');
ok(tick_reaches('owned', $pos, 30), 'owned: ticks follow the head under the hostile search_path');
# the first tick after a start prunes; give a later one the chance, too
append('owned', 'again');
sleep(2);
is($node->safe_psql('owned', 'SELECT count(*) FROM public.trap_log'),
	0, 'owned: the ticker never called the planted aggregates');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'dbo'}),
	'f', 'owned: the database owner is not a superuser');
$node->safe_psql('postgres', 'ALTER DATABASE owned RESET search_path');

# --- Side effects before authorization ----------------------------------------------

$node->safe_psql('postgres', q{
	CREATE ROLE plain LOGIN;
	CREATE DATABASE es;
});
$node->safe_psql('es', 'CREATE EXTENSION eventstore');
append('es', 'first');
my $es_ticker = wait_for_ticker('es', 30);
ok($es_ticker, "es: a ticker runs ($es_ticker)");

for my $cmd (
	'DROP DATABASE es',
	'ALTER DATABASE es RENAME TO es_renamed',
	'ALTER DATABASE es SET TABLESPACE pg_default',
	'CREATE DATABASE es_copy TEMPLATE es')
{
	my ($rc, $out, $err) = $node->psql('postgres', $cmd, extra_params => [ '-U', 'plain' ]);
	like($err, qr/ERROR:  (must be owner|permission denied)/, "plain: $cmd fails its permission check");
	is(ticker_pid('es'), $es_ticker, "es: ... and the ticker ($es_ticker) still runs");
}

# A command that passes the checks but fails later: the ticker comes back.
my $blocker = $node->background_psql('es');
$blocker->query_safe('SELECT 1');
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE es');
like($err, qr/being accessed by other users/, 'DROP DATABASE es fails while a session is connected');
$blocker->quit;
my $es_back = wait_for_ticker('es', 5, $es_ticker);
ok($es_back, "es: a new ticker ($es_back) runs at once after the failed DROP, without an append");

# A DROP DATABASE whose backend is terminated while it waits for the other
# sessions to go: the ticker is back at once too.
my $stay = $node->background_psql('es');
$stay->query_safe('SELECT 1');
my $dropper = $node->background_psql('postgres', on_error_stop => 0);
my $dropper_pid = $dropper->query_safe('SELECT pg_backend_pid()');
$dropper->query_until(qr/dropping/, q{
\echo dropping
DROP DATABASE es;
});
$node->poll_query_until('postgres', qq{
	SELECT wait_event IS DISTINCT FROM 'ClientRead' FROM pg_stat_activity WHERE pid = $dropper_pid});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($dropper_pid)");
$dropper->{run}->finish;
$stay->quit;
$es_back = wait_for_ticker('es', 10, $es_back) || ticker_pid('es');
ok($es_back, "es: a ticker ($es_back) runs after a DROP DATABASE terminated in the middle");

# --- Supervision ---------------------------------------------------------------------

$node->safe_psql('postgres', "SELECT pg_terminate_backend($es_back)");
my $es_restarted = wait_for_ticker('es', 10, $es_back);
ok($es_restarted, "es: a terminated ticker is restarted ($es_restarted) without an append");

# Hostile database defaults; this test's own sessions override them.
$node->safe_psql('postgres', q{
	ALTER DATABASE es SET default_transaction_read_only = on;
	ALTER DATABASE es SET default_transaction_isolation = 'repeatable read';
	ALTER DATABASE es SET statement_timeout = '1ms';
	ALTER DATABASE es SET lock_timeout = '1ms';
	ALTER DATABASE es SET role = 'plain';
	ALTER DATABASE es SET exit_on_error = on;
});
{
	local $ENV{PGOPTIONS} = '-c default_transaction_read_only=off '
	  . '-c default_transaction_isolation=read\ committed -c statement_timeout=0 -c lock_timeout=0 '
	  . '-c role=none -c exit_on_error=off';
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($es_restarted)");
	my $hostile = wait_for_ticker('es', 10, $es_restarted);
	ok($hostile, "es: a ticker ($hostile) starts under hostile defaults");
	for my $i (1 .. 3)
	{
		my $p = append('es', 'under-defaults');
		ok(tick_reaches('es', $p, 10), "es: append $i at $p: a tick reaches it");
	}
	is(ticker_pid('es'), $hostile, 'es: ... and the same ticker is still running');
}
$node->safe_psql('postgres', 'ALTER DATABASE es RESET ALL');

# A tick that fails is logged with its SQLSTATE and tried again; the
# ticker does not exit for it, and ticks resume once the cause is gone.
my $steady = ticker_pid('es');
$node->safe_psql('es', q{
	ALTER TABLE eventstore.ticks ADD CONSTRAINT es_test_refuse CHECK (head < 0) NOT VALID});
my $fail_offset = -s $node->logfile;
my $refused = append('es', 'refused-tick');
ok($node->wait_for_log(qr/23514 ERROR:  new row for relation "ticks" violates check constraint/,
		$fail_offset),
	'es: a failing tick is logged with its SQLSTATE');
sleep(1);
is(ticker_pid('es'), $steady, 'es: ... and the ticker keeps running');
$node->safe_psql('es', 'ALTER TABLE eventstore.ticks DROP CONSTRAINT es_test_refuse');
ok(tick_reaches('es', $refused, 15), 'es: once the cause is gone, the tick is recorded');
is(ticker_pid('es'), $steady, 'es: ... by the same ticker');

# A database that stops taking connections keeps its entry: a backend
# still connected to it goes on appending with the head where it was, and
# the launcher starts a ticker again once connections are allowed.
$node->safe_psql('postgres', 'CREATE DATABASE closing');
$node->safe_psql('closing', 'CREATE EXTENSION eventstore');
my $inside = $node->background_psql('closing');
my $closing_head = $inside->query_safe(q{
	SELECT pg_catalog.max(insert_order) FROM eventstore.append('inside',
		ARRAY[eventstore.event('Happened', '{}')])});
my $closing_ticker = wait_for_ticker('closing', 30);
ok($closing_ticker, "closing: a ticker runs ($closing_ticker)");
$node->safe_psql('postgres', qq{
	ALTER DATABASE closing ALLOW_CONNECTIONS false;
	SELECT pg_terminate_backend($closing_ticker);});
sleep(3);
is(ticker_pid('closing'), '', 'closing: no ticker while it takes no connections');
cmp_ok($inside->query_safe('SELECT eventstore.head()'), '>=', $closing_head,
	'closing: the head of a backend still connected did not go back');
my $closing_pos = $inside->query_safe(q{
	SELECT pg_catalog.max(insert_order) FROM eventstore.append('inside',
		ARRAY[eventstore.event('Happened', '{}')])});
cmp_ok($closing_pos, '>', $closing_head, 'closing: ... and its appends go on above it');
$node->safe_psql('postgres', 'ALTER DATABASE closing ALLOW_CONNECTIONS true');
ok(wait_for_ticker('closing', 20), 'closing: a ticker is back once connections are allowed');
$inside->quit;

# --- Idle databases cost no transactions ------------------------------------------

# A tick reports itself in pg_stat_activity (state active, then idle), so
# the ticker's state_change moves with every transaction it runs.
sleep(3);
my $state_sql = sprintf(q{SELECT state_change FROM pg_stat_activity
	 WHERE pid = (%s)}, sprintf($ticker_sql, 'es'));
my $before = $node->safe_psql('postgres', $state_sql);
sleep(6);
my $after = $node->safe_psql('postgres', $state_sql);
isnt($before, '', "es: the ticker reports its state ($before)");
is($after, $before, 'es: an idle ticker ran no transaction in 6 s');
my $p = append('es', 'wake-up');
ok(tick_reaches('es', $p, 10), 'es: after the idle time an append is ticked at once');

# --- A blocked catalog in one database, head() in another --------------------------

$node->safe_psql('postgres', q{
	CREATE DATABASE aaa;
	CREATE DATABASE bbb;
});
for my $db ('aaa', 'bbb')
{
	$node->safe_psql($db, 'CREATE EXTENSION eventstore');
	append($db, 'warm');
}
# aaa loses the extension: its ticker goes (idle as it is), its entry stays
ok(wait_for_ticker('aaa', 30), 'aaa: a ticker runs');
$node->safe_psql('aaa', 'DROP EXTENSION eventstore');
ok( $node->poll_query_until('postgres',
		sprintf('SELECT count(*) = 0 FROM (%s) t', sprintf($ticker_sql, 'aaa'))),
	'aaa: after DROP EXTENSION its idle ticker exits');

# A backend of bbb that has not used eventstore yet, and one of es that has.
my $first_use = $node->background_psql('bbb', on_error_stop => 0);
my $first_pid = $first_use->query_safe('SELECT pg_backend_pid()');
my $warm = $node->background_psql('es', timeout => 15);
$warm->query_safe('SELECT eventstore.head()');
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK pg_database IN ACCESS EXCLUSIVE MODE');
$first_use->query_until(qr/asking/, q{
\echo asking
SELECT eventstore.head() >= 0;
});
sleep(0.5);
my $t0 = time();
my $answer = $warm->query_safe('SELECT eventstore.head() >= 0');
my $took = time() - $t0;
is($answer, 't', 'es: head() answers while a first use in bbb meets LOCK pg_database');
cmp_ok($took, '<', 5, sprintf('es: ... within %.1f s', $took));
# (new connections wait for pg_database too: cancel through a session that has one)
is($warm->query_safe("SELECT pg_cancel_backend($first_pid)"), 't',
	'bbb: the waiting first use can be cancelled');
$locker->query_safe('COMMIT');
$locker->quit;
$warm->quit;
$first_use->quit;

# --- A snapshot older than the ring of recent commits ---------------------------

# With commit_history = 64, a transaction of another database holds an xid
# while 100 appends commit: a REPEATABLE READ reader's snapshot is older than
# the ring remembers.  Its head is the newest tick it sees: no error, and
# every event at or below it is there for the snapshot.
$node->append_conf('postgresql.conf', 'eventstore.commit_history = 64');
$node->restart;
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('SELECT pg_current_xact_id()');
for my $i (1 .. 100)
{
	append('es', "ring-$i");
}
ok(tick_reaches('es', $node->safe_psql('es', 'SELECT pg_catalog.max(insert_order) FROM eventstore.events'), 10),
	'ring: the ticks reach the last append');
my $rr = $node->background_psql('es');
$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
# (query_safe dies on an error, as head() raised 40001 here before)
my $rr_head = $rr->query_safe('SELECT eventstore.head()');
like($rr_head, qr/^\d+$/, "ring: a REPEATABLE READ snapshot older than the ring gets a head ($rr_head)");
is( $rr->query_safe(qq{
		SELECT (SELECT count(*) FROM eventstore.read_all(0, 1000000))
			 = (SELECT count(*) FROM eventstore.events WHERE insert_order <= $rr_head)}),
	't',
	'ring: read_all in that snapshot returns every event at or below its head');
cmp_ok($rr_head, '>', 0, 'ring: ... which is above 0');
$rr->query_safe('COMMIT');
$rr->quit;
$holder->query_safe('COMMIT');
$holder->quit;

# --- Worker slot shortage -----------------------------------------------------------

$node->append_conf('postgresql.conf', 'max_worker_processes = 2');
my $log_offset = -s $node->logfile;
$node->restart;
ok( $node->wait_for_log(
		qr/53000 WARNING:  eventstore could not start a ticker for database \d+: out of background worker slots/,
		$log_offset),
	'a shortage of worker slots is logged with SQLSTATE 53000');
ok($node->log_contains(qr/HINT:  You might need to increase "max_worker_processes"/, $log_offset),
	'... with a hint to raise max_worker_processes');

$node->stop;
done_testing();
