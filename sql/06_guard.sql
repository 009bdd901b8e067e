--
-- The schema and the types the extension relies on: CREATE EXTENSION
-- refuses a schema it did not make as it makes it, and append() and the
-- read functions check their types at use, for a superuser who switched the
-- event trigger off and altered them.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT current_user AS superuser \gset

-- A database owner who is no superuser creates schema eventstore before the
-- extension is installed: as its owner it could drop the schema, and every
-- event with it.  CREATE EXTENSION refuses it and installs nothing.
CREATE ROLE es_regress_dbowner LOGIN;
CREATE DATABASE es_regress_owned OWNER es_regress_dbowner TEMPLATE template0;
\c es_regress_owned es_regress_dbowner
CREATE SCHEMA eventstore;
\c - :superuser
CREATE EXTENSION eventstore;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'eventstore';
SELECT count(*) AS objects FROM pg_depend WHERE refobjid = 'eventstore'::regnamespace;
-- Owned by a superuser, but holding an object, or granting privileges.
ALTER SCHEMA eventstore OWNER TO :superuser;
CREATE TABLE eventstore.leftover ();
CREATE EXTENSION eventstore;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE eventstore.leftover;
GRANT USAGE ON SCHEMA eventstore TO es_regress_dbowner;
CREATE EXTENSION eventstore;
\echo :LAST_ERROR_SQLSTATE
REVOKE USAGE ON SCHEMA eventstore FROM es_regress_dbowner;
-- Owned by a superuser, empty, nothing granted: as CREATE EXTENSION makes it.
CREATE EXTENSION eventstore;
SELECT nspowner::regrole = current_user::regrole AS superuser_owns
  FROM pg_namespace WHERE nspname = 'eventstore';
-- DROP EXTENSION leaves the schema, with USAGE granted to eventstore_reader:
-- the extension can be created in it again.
DROP EXTENSION eventstore;
SELECT a.privilege_type, a.grantee::regrole
  FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname = 'eventstore' AND a.grantee <> n.nspowner;
CREATE EXTENSION eventstore;
\c - es_regress_dbowner
DROP SCHEMA eventstore CASCADE;
\echo :LAST_ERROR_SQLSTATE
\c contrib_regression :superuser
DROP DATABASE es_regress_owned;
DROP ROLE es_regress_dbowner;

-- A superuser switches the event trigger off and alters the types: each
-- case gets a clean error (55000), never a crash or an internal error.
SELECT count(*) FROM eventstore.append('guard-1', ARRAY[eventstore.event('A', '{"n": 1}')]);

BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
-- event_in: an attribute of another type
SAVEPOINT altered;
ALTER TYPE eventstore.event_in ALTER ATTRIBUTE data TYPE text;
SELECT count(*) FROM eventstore.append('guard-1',
	ARRAY[ROW('A', '{"n": 2}', NULL, gen_random_uuid(), 1)::eventstore.event_in]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
SAVEPOINT altered;
ALTER TYPE eventstore.event_in ALTER ATTRIBUTE data TYPE text;
SELECT eventstore.event('A', '{"n": 2}');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
-- event_in: an attribute added and dropped
SAVEPOINT altered;
ALTER TYPE eventstore.event_in ADD ATTRIBUTE tenant text;
ALTER TYPE eventstore.event_in DROP ATTRIBUTE tenant;
SELECT count(*) FROM eventstore.append('guard-1',
	ARRAY[ROW('A', '{"n": 2}', NULL, gen_random_uuid(), 1)::eventstore.event_in]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
SAVEPOINT altered;
ALTER TYPE eventstore.event_in ADD ATTRIBUTE tenant text;
SELECT eventstore.event('A', '{"n": 2}');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
-- recorded_event: an attribute of another type, one added, one dropped
SAVEPOINT altered;
ALTER TYPE eventstore.recorded_event ALTER ATTRIBUTE data TYPE text;
SELECT stream_id, data FROM eventstore.read_all(0, 10);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
SAVEPOINT altered;
ALTER TYPE eventstore.recorded_event ADD ATTRIBUTE tenant text;
SELECT stream_id, data FROM eventstore.read_stream('guard-1');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
SAVEPOINT altered;
ALTER TYPE eventstore.recorded_event DROP ATTRIBUTE recorded_at;
SELECT stream_id, data FROM eventstore.read_stream('guard-1');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
-- the log's columns: the rows read or written would not be of their types
SAVEPOINT altered;
ALTER TABLE eventstore.events ALTER COLUMN data TYPE text;
SELECT stream_id, data FROM eventstore.read_all(0, 10);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
SAVEPOINT altered;
ALTER TABLE eventstore.events ALTER COLUMN data TYPE text;
SELECT count(*) FROM eventstore.append('guard-1', ARRAY[eventstore.event('A', '{"n": 2}')]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO altered;
ROLLBACK;

-- nothing was stored, and with the types as they were everything works
SELECT stream_order, data FROM eventstore.read_stream('guard-1');
SELECT stream_order FROM eventstore.append('guard-1', ARRAY[eventstore.event('A', '{"n": 2}')]);

-- an index on eventstore.streams besides its primary key (a superuser may
-- create one) would miss the stream rows append writes below the executor,
-- for new streams and for versions moved by an update that is not HOT:
-- append refuses to write the table instead (55000)
BEGIN;
CREATE INDEX streams_updated_idx ON eventstore.streams (updated_at);
SAVEPOINT indexed;
SELECT count(*) FROM eventstore.append('guard-1', ARRAY[eventstore.event('A', '{"n": 3}')]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO indexed;
SELECT count(*) FROM eventstore.append('guard-indexed', ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT stream_order FROM eventstore.append('guard-1', ARRAY[eventstore.event('A', '{"n": 3}')]);

-- a column of eventstore.streams made nullable (with the event trigger
-- off) and a stream row loaded with a null in it: append reports the
-- altered table (55000) instead of reading the null
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
ALTER TABLE eventstore.streams ALTER COLUMN partition_key DROP NOT NULL;
COPY eventstore.streams FROM STDIN;
guard-null-key	\N	5	1	2026-01-01 00:00:00+00	2026-01-01 00:00:00+00
\.
SAVEPOINT nullable;
SELECT count(*) FROM eventstore.append('guard-null-key', ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO nullable;
SELECT count(*) FROM eventstore.append('guard-1', ARRAY[eventstore.event('A', '{}')]);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT stream_order FROM eventstore.append('guard-1', ARRAY[eventstore.event('A', '{"n": 4}')]);
