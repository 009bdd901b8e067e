--
-- Bad input: each a clear error with its SQLSTATE, and nothing stored.
--
\set VERBOSITY default
SELECT count(*) AS events_before FROM eventstore.events \gset

-- stream id
SELECT * FROM eventstore.append(NULL, ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('', ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append(repeat('x', 1025), ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.append(repeat('x', 1024), ARRAY[eventstore.event('A', '{}')]);

-- the events array
SELECT * FROM eventstore.append('bad-1', NULL::eventstore.event_in[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[]::eventstore.event_in[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}'), NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1',
	ARRAY[[eventstore.event('A', '{}')], [eventstore.event('B', '{}')]]);
\echo :LAST_ERROR_SQLSTATE

-- fields of an event
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event(NULL, '{}')]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('', '{}')]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event(repeat('t', 256), '{}')]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}'), eventstore.event('B', NULL)]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}', NULL, NULL)]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}', NULL, gen_random_uuid(), NULL)]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}', NULL, gen_random_uuid(), 0)]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[
	eventstore.event('A', '{}', NULL, '00000000-0000-0000-0000-00000000bad1'),
	eventstore.event('B', '{}', NULL, '00000000-0000-0000-0000-00000000bad2'),
	eventstore.event('C', '{}', NULL, '00000000-0000-0000-0000-00000000bad1')]);
\echo :LAST_ERROR_SQLSTATE

-- expected version and partition key
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}')], -2);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}')], NULL, '');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('bad-1', ARRAY[eventstore.event('A', '{}')], NULL, repeat('k', 1025));
\echo :LAST_ERROR_SQLSTATE

-- limits
SET eventstore.max_append_events = 3;
SELECT * FROM eventstore.append('bad-1',
	ARRAY(SELECT eventstore.event('A', '{}') FROM generate_series(1, 4)));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.append('limit-ok',
	ARRAY(SELECT eventstore.event('A', '{}') FROM generate_series(1, 3)));
RESET eventstore.max_append_events;
SET eventstore.max_event_size = '1kB';
SELECT * FROM eventstore.append('bad-1', ARRAY[
	eventstore.event('A', jsonb_build_object('pad', repeat('p', 600)),
					 jsonb_build_object('pad', repeat('m', 600)))]);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.append('limit-ok', ARRAY[
	eventstore.event('A', jsonb_build_object('pad', repeat('p', 600)))]);
RESET eventstore.max_event_size;
SET eventstore.max_event_size = 0;
SET eventstore.partitions = 3;

-- the limits are for superusers to set
CREATE ROLE es_regress_app;
SET ROLE es_regress_app;
SET eventstore.max_append_events = 100000;
RESET ROLE;
DROP ROLE es_regress_app;

-- nothing of the failed calls was stored
SELECT count(*) - :events_before AS events_added FROM eventstore.events;
SELECT count(*) FROM eventstore.streams WHERE stream_id = 'bad-1';

-- reads
SELECT * FROM eventstore.read_all(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all(0, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.open_feed(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.open_feed(-1);
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT eventstore.open_feed(0, 'twice');
SELECT eventstore.open_feed(0, 'twice');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a cursor name is an identifier: not empty, at most 63 bytes (not cut
-- inside a character)
SELECT eventstore.open_feed(0, '');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.open_feed(0, repeat('c', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.open_feed(0, repeat('é', 32));
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT length(eventstore.open_feed(0, repeat('c', 63))::text);
SELECT length(eventstore.open_feed(0, repeat('é', 31) || 'c')::text);
ROLLBACK;
SELECT * FROM eventstore.read_stream(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_stream('order-1', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_stream('order-1', 1, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_stream('order-1', 1, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE

-- the log is append-only, for the superuser too
UPDATE eventstore.events SET data = '{}' WHERE stream_id = 'order-1';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM eventstore.events WHERE stream_id = 'order-1';
\echo :LAST_ERROR_SQLSTATE
TRUNCATE eventstore.events;
\echo :LAST_ERROR_SQLSTATE
UPDATE eventstore.events_0000_0127 SET data = '{}';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM eventstore.events_0896_1023;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE eventstore.events_0512_0639;
\echo :LAST_ERROR_SQLSTATE
UPDATE eventstore.streams SET version = 1;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM eventstore.streams;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE eventstore.streams;
\echo :LAST_ERROR_SQLSTATE
-- streams rows are created by append(): INSERT is refused, in every form
INSERT INTO eventstore.streams
	VALUES ('forged-1', 'forged-1', eventstore.bucket_of('forged-1'), 1, now(), now());
\echo :LAST_ERROR_SQLSTATE
INSERT INTO eventstore.streams SELECT 'forged-' || stream_id, partition_key, bucket,
		version, created_at, updated_at FROM eventstore.streams
	ON CONFLICT DO NOTHING;
\echo :LAST_ERROR_SQLSTATE
MERGE INTO eventstore.streams s
	USING (VALUES ('forged-1')) v(id) ON s.stream_id = v.id
	WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.id, eventstore.bucket_of(v.id), 1, now(), now());
\echo :LAST_ERROR_SQLSTATE
DO $$ BEGIN
	INSERT INTO eventstore.streams
		VALUES ('forged-1', 'forged-1', eventstore.bucket_of('forged-1'), 1, now(), now());
END $$;
\echo :LAST_ERROR_SQLSTATE
-- session_replication_role does not switch the guards off
SET session_replication_role = replica;
DELETE FROM eventstore.events;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO eventstore.streams
	VALUES ('forged-1', 'forged-1', eventstore.bucket_of('forged-1'), 1, now(), now());
\echo :LAST_ERROR_SQLSTATE
RESET session_replication_role;
SELECT count(*) FROM eventstore.streams WHERE stream_id LIKE 'forged-%';
SELECT count(*) - :events_before AS events_added FROM eventstore.events;

-- nor can the guards be switched off, the log's structure changed, or its
-- functions replaced
ALTER TABLE eventstore.events DISABLE TRIGGER ALL;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events_0128_0255 DISABLE TRIGGER events_0128_0255_append_only;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events_0128_0255 ENABLE TRIGGER events_0128_0255_append_only;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.streams DISABLE TRIGGER streams_guard;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events DETACH PARTITION eventstore.events_0000_0127;
\echo :LAST_ERROR_SQLSTATE
SET session_replication_role = replica;
ALTER TABLE eventstore.events DETACH PARTITION eventstore.events_0000_0127;
\echo :LAST_ERROR_SQLSTATE
RESET session_replication_role;
DROP TRIGGER events_append_only ON eventstore.events;
\echo :LAST_ERROR_SQLSTATE
CREATE OR REPLACE TRIGGER events_append_only BEFORE DELETE ON eventstore.events
	FOR EACH STATEMENT EXECUTE FUNCTION suppress_redundant_updates_trigger();
\echo :LAST_ERROR_SQLSTATE
CREATE RULE no_delete AS ON DELETE TO eventstore.events DO INSTEAD NOTHING;
\echo :LAST_ERROR_SQLSTATE
CREATE OR REPLACE FUNCTION eventstore.refuse_change() RETURNS trigger
	LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
\echo :LAST_ERROR_SQLSTATE
ALTER FUNCTION eventstore.refuse_change() RENAME TO refuse_nothing;
\echo :LAST_ERROR_SQLSTATE
ALTER FUNCTION eventstore.append(text, eventstore.event_in[], bigint, text) SECURITY INVOKER;
\echo :LAST_ERROR_SQLSTATE
ALTER FUNCTION eventstore.head() OWNER TO eventstore_admin;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events RENAME TO old_events;
\echo :LAST_ERROR_SQLSTATE
ALTER SCHEMA eventstore RENAME TO old_eventstore;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events ALTER COLUMN data TYPE jsonb USING '{}';
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events ADD COLUMN tenant text DEFAULT 'acme';
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events DROP CONSTRAINT events_event_id_key;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.events_0000_0127 SET UNLOGGED;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.streams OWNER TO eventstore_admin;
\echo :LAST_ERROR_SQLSTATE
ALTER EXTENSION eventstore DROP TABLE eventstore.events_0000_0127;
\echo :LAST_ERROR_SQLSTATE
-- ... nor the sequence, nor a column renamed by another kind of ALTER
ALTER SEQUENCE eventstore.position_blocks INCREMENT BY 1;
\echo :LAST_ERROR_SQLSTATE
ALTER SEQUENCE eventstore.position_blocks RENAME TO old_blocks;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE eventstore.position_blocks OWNER TO eventstore_admin;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.streams RENAME ATTRIBUTE version TO v;
\echo :LAST_ERROR_SQLSTATE
ALTER VIEW eventstore.streams RENAME COLUMN version TO v;
\echo :LAST_ERROR_SQLSTATE
ALTER MATERIALIZED VIEW eventstore.events RENAME COLUMN data TO d;
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN TABLE eventstore.events_0000_0127 RENAME COLUMN data TO d;
\echo :LAST_ERROR_SQLSTATE
ALTER INDEX eventstore.events RENAME TO old_events;
\echo :LAST_ERROR_SQLSTATE
-- nor the extension's types (a table's row type PostgreSQL itself refuses)
ALTER TYPE eventstore.event_in ALTER ATTRIBUTE data TYPE text;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.event_in ADD ATTRIBUTE tenant text;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.recorded_event DROP ATTRIBUTE partition_key;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.recorded_event RENAME ATTRIBUTE data TO payload;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.recorded_event RENAME TO old_event;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.event_in OWNER TO eventstore_admin;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.event_in SET SCHEMA public;
\echo :LAST_ERROR_SQLSTATE
ALTER TYPE eventstore.events ADD ATTRIBUTE tenant text;
\echo :LAST_ERROR_SQLSTATE
DROP TYPE eventstore.event_in CASCADE;
\echo :LAST_ERROR_SQLSTATE
-- nor another table tied to the log: a partition, a child, an attachment
CREATE TABLE public.events_other PARTITION OF eventstore.events DEFAULT;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE public.streams_child () INHERITS (eventstore.streams);
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN DATA WRAPPER es_regress_fdw;
CREATE SERVER es_regress_server FOREIGN DATA WRAPPER es_regress_fdw;
CREATE FOREIGN TABLE public.events_remote PARTITION OF eventstore.events DEFAULT
	SERVER es_regress_server;
\echo :LAST_ERROR_SQLSTATE
DROP SERVER es_regress_server;
DROP FOREIGN DATA WRAPPER es_regress_fdw;
CREATE TABLE public.streams_like (LIKE eventstore.streams);
ALTER TABLE public.streams_like INHERIT eventstore.streams;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE public.streams_parent (LIKE eventstore.streams) PARTITION BY LIST (stream_id);
ALTER TABLE public.streams_parent ATTACH PARTITION eventstore.streams DEFAULT;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE public.events_extra (LIKE eventstore.events);
ALTER TABLE eventstore.events ATTACH PARTITION public.events_extra DEFAULT;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE public.streams_like, public.streams_parent, public.events_extra;
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'eventstore.events'::regclass;
-- other maintenance passes
ALTER TABLE eventstore.events_0000_0127 SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE eventstore.events_0000_0127 RESET (autovacuum_vacuum_scale_factor);

-- PREPARE TRANSACTION after an append is refused, and the append undone
BEGIN;
SELECT count(*) FROM eventstore.append('prepared-1', ARRAY[eventstore.event('A', '{}')]);
PREPARE TRANSACTION 'es_regress';
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.stream_version('prepared-1');
-- a transaction that did not append prepares as usual
BEGIN;
SELECT count(*) FROM eventstore.read_all(0, 1);
PREPARE TRANSACTION 'es_regress_reader';
COMMIT PREPARED 'es_regress_reader';

-- a read-only transaction cannot append (25006), to an existing stream or
-- a new one, though the stream's row and the events are written below the
-- executor; nothing is stored
BEGIN READ ONLY;
SAVEPOINT ro;
SELECT count(*) FROM eventstore.append('prepared-1', ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO ro;
SELECT count(*) FROM eventstore.append('read-only-1', ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
COMMIT;
SET default_transaction_read_only = on;
SELECT count(*) FROM eventstore.append('read-only-1', ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
RESET default_transaction_read_only;
SELECT eventstore.stream_version('prepared-1'), eventstore.stream_version('read-only-1');
