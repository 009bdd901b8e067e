# test/t/002_dump_restore.pl
#	pg_dump / pg_restore keep the log, the streams and the position counter.
#
# Events are appended to several streams under different partition keys
# (so they land in several partitions), with a rolled-back append in the
# middle that burns positions.  The database is dumped with pg_dump -Fc and
# restored into a new database, where CREATE EXTENSION recreates the schema
# and the dump's data fills it.  The restored events and streams must equal
# the originals row by row and partition by partition, the append-only
# triggers must still refuse changes, new positions must lie above the
# restored ones, and stream versions, partition keys and event ids must
# carry on as before.

use strict;
use warnings;


use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'eventstore'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION eventstore');

# --- The original -------------------------------------------------------------------

# 12 streams under 4 partition keys, plus 4 streams keyed by their own id;
# three rounds of appends of 1..3 events each, with metadata, explicit event
# ids and schema versions in the mix.
$node->safe_psql('src', q{
	SELECT count(*)
	  FROM generate_series(1, 3) AS round,
		   generate_series(1, 16) AS s,
		   LATERAL eventstore.append(
				'order-' || s,
				ARRAY(SELECT eventstore.event(
							'Happened',
							jsonb_build_object('round', round, 'stream', s, 'i', i),
							CASE WHEN i = 1 THEN jsonb_build_object('by', 'test') END,
							md5(format('%s/%s/%s', round, s, i))::uuid,
							1 + (i % 2))
						FROM generate_series(1, 1 + (s + round) % 3) AS i),
				NULL,
				CASE WHEN s <= 12 THEN 'tenant-' || (s % 4) END)
});
# An append that rolls back: its positions are burnt, never to be reused.
$node->safe_psql('src', q{
	BEGIN;
	SELECT count(*) FROM eventstore.append('rolled-back',
		ARRAY[eventstore.event('Lost', '{}'), eventstore.event('Lost', '{}')]);
	ROLLBACK;
});
$node->safe_psql('src', q{
	SELECT count(*) FROM eventstore.append('order-1',
		ARRAY[eventstore.event('Late', '{"after": "rollback"}')])
});

cmp_ok($node->safe_psql('src', 'SELECT count(DISTINCT tableoid) FROM eventstore.events'),
	'>', 2, 'the original events are spread over several partitions');
is($node->safe_psql('src', 'SELECT count(*) FROM eventstore.streams'),
	16, 'the original has 16 streams');

# Everything that must survive, as one digest per aspect.
my %digest = (
	%EsEnv::log_digest,
	feed => q{
		SELECT md5(string_agg(r::text, E'\n' ORDER BY insert_order))
		  FROM eventstore.read_all(0, 100000) r},
	position_blocks => q{
		SELECT last_value FROM eventstore.position_blocks},);

my %before;
$before{$_} = $node->safe_psql('src', $digest{$_}) for sort keys %digest;
my $count = $node->safe_psql('src', 'SELECT count(*) FROM eventstore.events');
my $max_before = $node->safe_psql('src', 'SELECT max(insert_order) FROM eventstore.events');
is($node->safe_psql('src', 'SELECT count(*) FROM eventstore.read_all(0, 100000)'),
	$count, 'the original feed returns every event');

# --- Dump and restore ------------------------------------------------------------

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', 'src' ], 'pg_dump -Fc');

$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'dst', $dump ],
	'pg_restore into a new database');

is($node->safe_psql('dst',
		q{SELECT extversion FROM pg_extension WHERE extname = 'eventstore'}),
	$node->safe_psql('src',
		q{SELECT extversion FROM pg_extension WHERE extname = 'eventstore'}),
	'the restore recreated the extension at the same version');

for my $aspect (sort keys %digest)
{
	is($node->safe_psql('dst', $digest{$aspect}),
		$before{$aspect}, "restored $aspect equal the original");
}
is($node->safe_psql('dst', 'SELECT count(*) FROM eventstore.events'),
	$count, "all $count events were restored");

# --- The restored log is still append-only ------------------------------------------

$node->safe_psql('dst', q{
	CREATE FUNCTION public.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE q;
		RETURN 'no error';
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE;
	END
	$$;
});
for my $stmt (
	q{UPDATE eventstore.events SET event_type = 'Changed'},
	q{DELETE FROM eventstore.events},
	q{TRUNCATE eventstore.events},
	q{UPDATE eventstore.events_0000_0127 SET event_type = 'Changed'},
	q{DELETE FROM eventstore.events_0512_0639},
	q{TRUNCATE eventstore.events_0896_1023})
{
	is($node->safe_psql('dst', "SELECT public.sqlstate_of(\$q\$$stmt\$q\$)"),
		'ES003', "restored: $stmt is refused with ES003");
}
is( $node->safe_psql('dst', q{
		SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		 WHERE c.relnamespace = 'eventstore'::regnamespace
		   AND t.tgname LIKE '%append_only' AND t.tgenabled = 'A'}),
	9, 'restored: events and its 8 partitions keep their ALWAYS triggers');
is($node->safe_psql('dst', $digest{events}), $before{events},
	'restored: the refused statements changed nothing');

# --- The restored log carries on ----------------------------------------------------

# The feed is readable from the start: the head is not stuck below the
# restored positions.
cmp_ok($node->safe_psql('dst', 'SELECT eventstore.head()'), '>=', $max_before,
	'restored: the head covers every restored event');

my ($first_new, $first_order) = split /\|/, $node->safe_psql('dst', q{
	SELECT min(insert_order), min(stream_order) FROM eventstore.append('restored-new',
		ARRAY[eventstore.event('New', '{}'), eventstore.event('New', '{}')], 0)});
cmp_ok($first_new, '>', $max_before,
	"restored: a new append gets insert_order $first_new, above the restored maximum $max_before");
is($first_order, 1, 'restored: a new stream starts at stream_order 1');

# Every restored stream accepts its restored version as expected_version and
# continues right after it, under its restored partition key.
is( $node->safe_psql('dst', qq{
		CREATE TABLE continued AS
			SELECT stream_id, version, partition_key FROM eventstore.streams;
		SELECT count(*)
		  FROM continued s,
			   LATERAL eventstore.append(s.stream_id,
					ARRAY[eventstore.event('Continued', '{}')],
					s.version, s.partition_key) a
		 WHERE a.stream_order = s.version + 1 AND NOT a.duplicate
		   AND a.insert_order > $max_before}),
	17,
	'restored: every stream continues at version + 1 with expected_version = restored version');

is( $node->safe_psql('dst', q{
		SELECT public.sqlstate_of($$SELECT eventstore.append('order-1',
			ARRAY[eventstore.event('Stale', '{}')], 1)$$)}),
	'ES001', 'restored: a stale expected_version is refused with ES001');
is( $node->safe_psql('dst', q{
		SELECT public.sqlstate_of($$SELECT eventstore.append('order-1',
			ARRAY[eventstore.event('New', '{}')], 0)$$)}),
	'ES001', 'restored: expected_version 0 on a restored stream is refused with ES001');
is( $node->safe_psql('dst', q{
		SELECT public.sqlstate_of($$SELECT eventstore.append('order-1',
			ARRAY[eventstore.event('Moved', '{}')], NULL, 'another-tenant')$$)}),
	'ES002', 'restored: appending under another partition key is refused with ES002');

# Re-appending a restored event id is recognised as a duplicate, with its
# restored positions.
is( $node->safe_psql('dst', q{
		SELECT count(*)
		  FROM eventstore.append('order-2',
				ARRAY[eventstore.event('Happened', '{}', NULL, md5('1/2/1')::uuid)],
				NULL, 'tenant-2') a
		  JOIN eventstore.events e ON e.stream_id = 'order-2' AND e.event_id = a.event_id
		 WHERE a.duplicate AND a.stream_order = e.stream_order
		   AND a.insert_order = e.insert_order}),
	1, 'restored: a restored event id is deduplicated with its restored positions');

# The feed reads restored and new events alike.
is( $node->safe_psql('dst', q{
		SELECT count(*) = (SELECT count(*) FROM eventstore.events)
		   AND bool_and((insert_order > lag_order) IS NOT FALSE)
		  FROM (SELECT insert_order,
					   lag(insert_order) OVER (ORDER BY o) AS lag_order
				  FROM eventstore.read_all(0, 100000) WITH ORDINALITY
					   AS r(insert_order, stream_id, stream_order, event_id, event_type,
							schema_version, data, metadata, recorded_at, partition_key, o)) f}),
	't', 'restored: read_all from 0 returns every event, in order');

# The original is untouched by all this.
is($node->safe_psql('src', $digest{events}), $before{events},
	'the original database is unchanged');

$node->stop;
done_testing();
