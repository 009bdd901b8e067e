--
-- Rows written without append(), as a restore writes them, and databases in
-- other encodings.
--

-- A superuser inserts events directly with positions above the head: until
-- the transaction ends the head stays where it was (the rows are not yet
-- visible to anyone), and the allocator then continues above them.
SELECT eventstore.head() AS head_before \gset
BEGIN;
INSERT INTO eventstore.events (insert_order, stream_order, recorded_at,
		writer_xid, bucket, schema_version, event_id, stream_id, event_type,
		partition_key, data)
SELECT :head_before + 1000 + i, i, now(), pg_current_xact_id(),
	   eventstore.bucket_of('restored-1'), 1, gen_random_uuid(), 'restored-1',
	   'Restored', 'restored-1', jsonb_build_object('i', i)
  FROM generate_series(1, 5) i;
SELECT eventstore.head() = :head_before AS head_held,
	   (SELECT count(*) FROM eventstore.appenders WHERE pid = pg_backend_pid()) AS holding;
COMMIT;
SELECT eventstore.head() >= :head_before + 1005 AS head_past_restored;
SELECT count(*) FROM eventstore.read_all(:head_before) WHERE stream_id = 'restored-1';
SELECT insert_order > :head_before + 1005 AS above_restored
  FROM eventstore.append('after-restore', ARRAY[eventstore.event('A', '{}')]);

-- Their stream row comes as a restore loads it, with a COPY sent by the
-- client; an INSERT, or a COPY run by a function, is refused.  The copied
-- row is taken as it is: the stream then continues after version 5.
INSERT INTO eventstore.streams VALUES ('restored-1', 'restored-1',
	eventstore.bucket_of('restored-1'), 5, now(), now());
\echo :LAST_ERROR_SQLSTATE
DO $$ BEGIN EXECUTE 'COPY eventstore.streams FROM PROGRAM ''true'''; END $$;
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.bucket_of('restored-1') AS bucket;
COPY eventstore.streams FROM stdin;
restored-1	restored-1	245	5	2026-01-01 00:00:00+00	2026-01-01 00:00:00+00
\.
SELECT stream_order, duplicate
  FROM eventstore.append('restored-1', ARRAY[eventstore.event('A', '{}')], 5);
SELECT eventstore.stream_version('restored-1');

-- The bucket is defined on UTF-8: the same in a LATIN1 database.
CREATE DATABASE es_regress_latin1 ENCODING 'LATIN1' TEMPLATE template0
	LC_COLLATE 'C' LC_CTYPE 'C';
\c es_regress_latin1
CREATE EXTENSION eventstore;
SELECT eventstore.bucket_of(convert_from('\x5ac3bc72696368', 'UTF8')) AS zurich,
	   eventstore.bucket_of('school-1') AS school_1;
\c contrib_regression
DROP DATABASE es_regress_latin1;
