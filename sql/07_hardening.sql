--
-- Attacks on the position allocator and the transaction checks, each
-- refused.  (Attacks on the workers are in test/t/009_workers.pl.)
--

-- A reader that owns a schema plants a max(bigint) whose result is near
-- 2^63 and puts its schema first on search_path, then is the first to ask
-- a fresh store for its head.  Seeding the allocator must not call it:
-- the head is 0 and appends start at position 1.
CREATE DATABASE es_regress_hardening;
\c es_regress_hardening
CREATE EXTENSION eventstore;
CREATE ROLE es_regress_poisoner IN ROLE eventstore_reader;
CREATE SCHEMA trap AUTHORIZATION es_regress_poisoner;
SET ROLE es_regress_poisoner;
CREATE FUNCTION trap.big(bigint, bigint) RETURNS bigint
	LANGUAGE sql IMMUTABLE AS 'SELECT 9223372036854775000::bigint';
CREATE AGGREGATE trap.max(bigint) (
	sfunc = trap.big, stype = bigint, initcond = '9223372036854775000');
SET search_path = trap, pg_catalog;
SELECT max(x) AS planted FROM (VALUES (1::bigint)) v(x);
-- nor may it choose how many partitions a CREATE EXTENSION makes
SET eventstore.partitions = 1024;
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.head();
RESET search_path;
RESET ROLE;
SELECT insert_order FROM eventstore.append('poison-1', ARRAY[eventstore.event('A', '{}')]);
SELECT eventstore.head();

-- Positions of rows written directly must lie in the allocator's range and
-- be stored once (SQLSTATEs 22003 and 23505); the statement is refused as
-- a whole.  (Still in the fresh database: the positions are known.)
SELECT insert_order AS taken
  FROM eventstore.append('direct-twin', ARRAY[eventstore.event('A', '{}')]) \gset
\set VERBOSITY default
INSERT INTO eventstore.events (insert_order, stream_order, recorded_at,
		writer_xid, bucket, schema_version, event_id, stream_id, event_type,
		partition_key, data)
VALUES (:taken, 1, now(), pg_current_xact_id(), eventstore.bucket_of('twin'), 1,
		gen_random_uuid(), 'twin', 'Inserted', 'twin', '{}');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO eventstore.events (insert_order, stream_order, recorded_at,
		writer_xid, bucket, schema_version, event_id, stream_id, event_type,
		partition_key, data)
VALUES (9223372036854775807, 1, now(), pg_current_xact_id(),
		eventstore.bucket_of('far'), 1, gen_random_uuid(), 'far', 'Inserted',
		'far', '{}');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO eventstore.events (insert_order, stream_order, recorded_at,
		writer_xid, bucket, schema_version, event_id, stream_id, event_type,
		partition_key, data)
VALUES (0, 1, now(), pg_current_xact_id(), eventstore.bucket_of('zero'), 1,
		gen_random_uuid(), 'zero', 'Inserted', 'zero', '{}');
\echo :LAST_ERROR_SQLSTATE
-- two rows of one statement at one position
INSERT INTO eventstore.events (insert_order, stream_order, recorded_at,
		writer_xid, bucket, schema_version, event_id, stream_id, event_type,
		partition_key, data)
SELECT eventstore.head() + 5000, i, now(), pg_current_xact_id(),
	   eventstore.bucket_of('pair'), 1, gen_random_uuid(), 'pair', 'Inserted',
	   'pair', '{}'
  FROM generate_series(1, 2) i;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.events WHERE stream_id IN ('twin', 'far', 'zero', 'pair');
SELECT insert_order > :taken AS appends_go_on
  FROM eventstore.append('direct-twin', ARRAY[eventstore.event('B', '{}')]);
-- a direct load that rolls back does not leave the allocator above its rows
BEGIN;
INSERT INTO eventstore.events (insert_order, stream_order, recorded_at,
		writer_xid, bucket, schema_version, event_id, stream_id, event_type,
		partition_key, data)
VALUES (9223372036854000000, 1, now(), pg_current_xact_id(),
		eventstore.bucket_of('far-back'), 1, gen_random_uuid(), 'far-back',
		'Inserted', 'far-back', '{}');
ROLLBACK;
SELECT insert_order < 1000 AS allocator_kept
  FROM eventstore.append('direct-twin', ARRAY[eventstore.event('C', '{}')]);

-- With nothing in flight, a row written directly below the allocator, at
-- a position no event holds, is accepted (the refusal while appends are in
-- flight is in the isolation suite, adopt_in_flight).
SELECT count(*) FROM eventstore.appenders;
BEGIN;
SELECT insert_order AS kept
  FROM eventstore.append('gap', ARRAY[eventstore.event('A', '{}')]) \gset
ROLLBACK;
INSERT INTO eventstore.events (insert_order, stream_order, recorded_at,
		writer_xid, bucket, schema_version, event_id, stream_id, event_type,
		partition_key, data)
VALUES (:kept, 1, now(), pg_current_xact_id(), eventstore.bucket_of('gap-fill'), 1,
		gen_random_uuid(), 'gap-fill', 'Inserted', 'gap-fill', '{}');
SELECT count(*) FROM eventstore.read_all(:kept - 1, 1) WHERE stream_id = 'gap-fill';

-- PREPARE TRANSACTION is refused after an append whose events were all
-- duplicates, too: the append locked the stream's row, which a prepared
-- transaction would keep locked.
SELECT count(*) FROM eventstore.append('prepared-dup',
	ARRAY[eventstore.event('A', '{}', NULL, 'b0000000-0000-0000-0000-000000000001')]);
BEGIN;
SELECT duplicate FROM eventstore.append('prepared-dup',
	ARRAY[eventstore.event('A', '{}', NULL, 'b0000000-0000-0000-0000-000000000001')]);
PREPARE TRANSACTION 'es_regress_dup';
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'es_regress_dup';
-- the stream is free: another append goes through at once
SET lock_timeout = '2s';
SELECT stream_order FROM eventstore.append('prepared-dup', ARRAY[eventstore.event('B', '{}')]);
RESET lock_timeout;

\c contrib_regression
DROP DATABASE es_regress_hardening;
DROP ROLE es_regress_poisoner;
