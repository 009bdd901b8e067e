/*
 * Append-only guard.
 *
 * The log is never changed in place: UPDATE, DELETE and TRUNCATE of events
 * are refused for every role, owner and superuser included.  The triggers are
 * ENABLE ALWAYS so that session_replication_role = replica does not switch
 * them off.  Rows of eventstore.streams change only inside eventstore.append();
 * they come in otherwise only by a COPY FROM sent by the client, the way
 * pg_restore and psql load a dump (see guard_streams in src/guard.c).
 */
CREATE FUNCTION eventstore.refuse_change()
RETURNS trigger
AS 'MODULE_PATHNAME', 'eventstore_refuse_change'
LANGUAGE C;
COMMENT ON FUNCTION eventstore.refuse_change() IS
'trigger: refuses UPDATE, DELETE and TRUNCATE of the log';

CREATE FUNCTION eventstore.guard_streams()
RETURNS trigger
AS 'MODULE_PATHNAME', 'eventstore_guard_streams'
LANGUAGE C;
COMMENT ON FUNCTION eventstore.guard_streams() IS
'trigger: lets only eventstore.append() change eventstore.streams, and a restore''s COPY load it';

CREATE FUNCTION eventstore.adopt_positions()
RETURNS trigger
AS 'MODULE_PATHNAME', 'eventstore_adopt_positions'
LANGUAGE C;
COMMENT ON FUNCTION eventstore.adopt_positions() IS
'trigger: rows written without append(), as by a restore, are checked and move the position allocator above them';

CREATE TRIGGER streams_guard
	BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON eventstore.streams
	FOR EACH STATEMENT EXECUTE FUNCTION eventstore.guard_streams();
ALTER TABLE eventstore.streams ENABLE ALWAYS TRIGGER streams_guard;

CREATE TRIGGER events_append_only
	BEFORE UPDATE OR DELETE OR TRUNCATE ON eventstore.events
	FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_change();
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_append_only;
CREATE TRIGGER events_adopt_positions
	AFTER INSERT ON eventstore.events REFERENCING NEW TABLE AS adopted
	FOR EACH STATEMENT EXECUTE FUNCTION eventstore.adopt_positions();
ALTER TABLE eventstore.events ENABLE ALWAYS TRIGGER events_adopt_positions;

/*
 * Physical partitions.  Partition keys hash into 1024 buckets (see
 * eventstore.bucket_of); each partition holds an equal range of buckets.
 * Their number is read from eventstore.partitions when the extension is
 * created (default 8; a power of two from 1 to 1024).
 */
DO $partitions$
DECLARE
	setting text := pg_catalog.current_setting('eventstore.partitions', true);
	nparts integer;
	width integer;
	lo integer;
	part text;
BEGIN
	IF setting IS NULL OR setting = '' THEN
		nparts := 8;
	ELSIF setting !~ '^[0-9]{1,4}$' THEN
		RAISE EXCEPTION 'invalid value for eventstore.partitions: "%"', setting
			USING ERRCODE = '22023',
				  HINT = 'Use a power of two from 1 to 1024.';
	ELSE
		nparts := setting::integer;
	END IF;
	IF nparts < 1 OR nparts > 1024 OR (nparts & (nparts - 1)) <> 0 THEN
		RAISE EXCEPTION 'invalid value for eventstore.partitions: "%"', setting
			USING ERRCODE = '22023',
				  HINT = 'Use a power of two from 1 to 1024.';
	END IF;

	width := 1024 / nparts;
	FOR i IN 0 .. nparts - 1 LOOP
		lo := i * width;
		part := pg_catalog.format('events_%s_%s',
								  pg_catalog.lpad(lo::text, 4, '0'),
								  pg_catalog.lpad((lo + width - 1)::text, 4, '0'));
		EXECUTE pg_catalog.format(
			'CREATE TABLE eventstore.%I PARTITION OF eventstore.events FOR VALUES FROM (%s) TO (%s)',
			part, lo, lo + width);
		EXECUTE pg_catalog.format(
			'CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON eventstore.%I '
			'FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_change()',
			part || '_append_only', part);
		EXECUTE pg_catalog.format(
			'ALTER TABLE eventstore.%I ENABLE ALWAYS TRIGGER %I',
			part, part || '_append_only');
		EXECUTE pg_catalog.format(
			'CREATE TRIGGER %I AFTER INSERT ON eventstore.%I REFERENCING NEW TABLE AS adopted '
			'FOR EACH STATEMENT EXECUTE FUNCTION eventstore.adopt_positions()',
			part || '_adopt_positions', part);
		EXECUTE pg_catalog.format(
			'ALTER TABLE eventstore.%I ENABLE ALWAYS TRIGGER %I',
			part, part || '_adopt_positions');
		PERFORM pg_catalog.pg_extension_config_dump(
			pg_catalog.format('eventstore.%I', part)::regclass, '');
	END LOOP;
END
$partitions$;

/*
 * The guards themselves are guarded: DDL that would switch the triggers
 * above off, change the log's columns, constraints or partitions, add a
 * partition or child table to it, alter the extension's types, or replace
 * its functions is refused (see guard_ddl in src/guard.c).  ALTER INDEX,
 * VIEW, MATERIALIZED VIEW and FOREIGN TABLE are listed because they too can
 * rename a table or its columns.
 */
CREATE FUNCTION eventstore.guard_ddl()
RETURNS event_trigger
AS 'MODULE_PATHNAME', 'eventstore_guard_ddl'
LANGUAGE C;
COMMENT ON FUNCTION eventstore.guard_ddl() IS
'event trigger: refuses DDL that would change the append-only log behind the extension''s back';

CREATE EVENT TRIGGER eventstore_guard_ddl ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA', 'ALTER TRIGGER', 'CREATE TRIGGER',
				 'DROP TRIGGER', 'CREATE RULE', 'DROP RULE', 'CREATE FUNCTION',
				 'ALTER FUNCTION', 'ALTER EXTENSION', 'ALTER TYPE',
				 'CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
				 'ALTER INDEX', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
				 'ALTER SEQUENCE')
	EXECUTE FUNCTION eventstore.guard_ddl();
ALTER EVENT TRIGGER eventstore_guard_ddl ENABLE ALWAYS;
