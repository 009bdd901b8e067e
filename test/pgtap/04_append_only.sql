/*
 * test/pgtap/04_append_only.sql
 *
 * The log cannot be changed in place, not even by a superuser: UPDATE,
 * DELETE, TRUNCATE, MERGE and INSERT ... ON CONFLICT DO UPDATE on events or
 * any partition raise ES003, also with session_replication_role = replica
 * (the triggers are ENABLE ALWAYS).  Rows of streams change only inside
 * append, and are inserted by nobody else (a restore's COPY aside, see
 * sql/04_direct.sql).  No partition or child table can be tied to the log
 * and the extension's types cannot be altered.  This file runs as the
 * superuser that pg_prove connects as; the roles are refused before any
 * trigger, for want of privileges.
 */
BEGIN;
SELECT plan(59);

-- TRUNCATE takes ACCESS EXCLUSIVE before its trigger refuses it; files that
-- append and truncate would deadlock each other under pg_prove -j.
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('eventstore pgtap: the log'));

SELECT ok((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
	'this file runs as a superuser');

-- Something to protect, in more than one partition.
SELECT is(
	(SELECT count(*)::int
	   FROM pg_catalog.generate_series(1, 20) g,
			LATERAL eventstore.append('pgtap04-' || g,
				ARRAY[eventstore.event('Kept', pg_catalog.jsonb_build_object('g', g)),
					  eventstore.event('Kept', pg_catalog.jsonb_build_object('g', g))])),
	40,
	'setup: 20 streams of 2 events appended');
SELECT cmp_ok(
	(SELECT count(DISTINCT tableoid)::int FROM eventstore.events WHERE stream_id LIKE 'pgtap04-%'),
	'>', 1,
	'setup: the events are spread over more than one partition');

CREATE TEMPORARY TABLE pgtap04_before AS
	SELECT tableoid::regclass::text AS part, insert_order, stream_id, stream_order,
		   event_id, event_type, data
	  FROM eventstore.events WHERE stream_id LIKE 'pgtap04-%';

-- The parent ----------------------------------------------------------------------

SELECT throws_ok('UPDATE eventstore.events SET event_type = ''Changed''', 'ES003', NULL,
	'a superuser cannot UPDATE events');
SELECT throws_ok($$UPDATE eventstore.events SET event_type = 'Changed' WHERE false$$, 'ES003', NULL,
	'an UPDATE of events that matches no row is refused too');
SELECT throws_ok('DELETE FROM eventstore.events', 'ES003', NULL,
	'a superuser cannot DELETE from events');
SELECT throws_ok('TRUNCATE eventstore.events', 'ES003', NULL,
	'a superuser cannot TRUNCATE events');
SELECT throws_ok('TRUNCATE eventstore.events CASCADE', 'ES003', NULL,
	'a superuser cannot TRUNCATE events ... CASCADE');
SELECT throws_ok(
	$$MERGE INTO eventstore.events e
	  USING (SELECT 'pgtap04-1'::text AS stream_id) s ON e.stream_id = s.stream_id
	  WHEN MATCHED THEN DELETE$$,
	'ES003', NULL, 'a superuser cannot MERGE ... DELETE into events');
SELECT throws_ok(
	$$MERGE INTO eventstore.events e
	  USING (SELECT 'pgtap04-1'::text AS stream_id) s ON e.stream_id = s.stream_id
	  WHEN MATCHED THEN UPDATE SET event_type = 'Changed'$$,
	'ES003', NULL, 'a superuser cannot MERGE ... UPDATE into events');
SELECT throws_ok(
	$$INSERT INTO eventstore.events
		SELECT * FROM eventstore.events WHERE stream_id = 'pgtap04-1'
	  ON CONFLICT (bucket, stream_id, stream_order)
	  DO UPDATE SET event_type = 'Changed'$$,
	'ES003', NULL, 'a superuser cannot INSERT ... ON CONFLICT DO UPDATE events');

-- Every partition: UPDATE, DELETE, TRUNCATE (8 x 3) ---------------------------------

SELECT throws_ok(pg_catalog.format(s.stmt, c.oid::regclass), 'ES003', NULL,
		pg_catalog.format('a superuser cannot %s %s', s.verb, c.relname))
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
 CROSS JOIN (VALUES (1, 'UPDATE', 'UPDATE %s SET event_type = ''Changed'''),
					(2, 'DELETE from', 'DELETE FROM %s'),
					(3, 'TRUNCATE', 'TRUNCATE %s')) s(n, verb, stmt)
 WHERE i.inhparent = 'eventstore.events'::regclass
 ORDER BY c.relname, s.n;

-- Replica mode does not switch the guard off ------------------------------------------

SET LOCAL session_replication_role = replica;
SELECT throws_ok('UPDATE eventstore.events SET event_type = ''Changed''', 'ES003', NULL,
	'with session_replication_role = replica, UPDATE of events is still refused');
SELECT throws_ok('DELETE FROM eventstore.events_0000_0127', 'ES003', NULL,
	'with session_replication_role = replica, DELETE from a partition is still refused');
SELECT throws_ok('TRUNCATE eventstore.events', 'ES003', NULL,
	'with session_replication_role = replica, TRUNCATE of events is still refused');
SET LOCAL session_replication_role = origin;

-- Structure changes that would lose events ----------------------------------------------

SELECT throws_ok('DROP TABLE eventstore.events_0000_0127', '2BP01', NULL,
	'a partition cannot be dropped on its own (the extension depends on it)');

-- streams changes only inside append -----------------------------------------------

SELECT throws_ok($$UPDATE eventstore.streams SET version = version + 1 WHERE stream_id = 'pgtap04-1'$$,
	'ES003', NULL, 'a superuser cannot UPDATE streams outside append');
SELECT throws_ok($$DELETE FROM eventstore.streams WHERE stream_id = 'pgtap04-1'$$,
	'ES003', NULL, 'a superuser cannot DELETE from streams');
SELECT throws_ok('TRUNCATE eventstore.streams', 'ES003', NULL,
	'a superuser cannot TRUNCATE streams');
SELECT throws_ok(
	$$INSERT INTO eventstore.streams
	  VALUES ('pgtap04-forged', 'pgtap04-forged', eventstore.bucket_of('pgtap04-forged'),
			  1, pg_catalog.now(), pg_catalog.now())$$,
	'ES003', NULL, 'a superuser cannot INSERT into streams');
SELECT throws_ok(
	$$INSERT INTO eventstore.streams
	  SELECT 'pgtap04-forged-' OPERATOR(pg_catalog.||) stream_id, partition_key, bucket,
			 version, created_at, updated_at
		FROM eventstore.streams WHERE stream_id LIKE 'pgtap04-%'
	  ON CONFLICT DO NOTHING$$,
	'ES003', NULL, 'a superuser cannot INSERT ... ON CONFLICT DO NOTHING into streams');
SELECT throws_ok(
	$$MERGE INTO eventstore.streams s
	  USING (SELECT 'pgtap04-forged'::text AS id) v ON s.stream_id = v.id
	  WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.id, eventstore.bucket_of(v.id), 1,
										   pg_catalog.now(), pg_catalog.now())$$,
	'ES003', NULL, 'a superuser cannot MERGE ... INSERT into streams');
SET LOCAL session_replication_role = replica;
SELECT throws_ok(
	$$INSERT INTO eventstore.streams
	  VALUES ('pgtap04-forged', 'pgtap04-forged', eventstore.bucket_of('pgtap04-forged'),
			  1, pg_catalog.now(), pg_catalog.now())$$,
	'ES003', NULL, 'with session_replication_role = replica, INSERT into streams is still refused');
SET LOCAL session_replication_role = origin;
SELECT throws_ok(
	$$COPY eventstore.streams FROM PROGRAM 'true'$$,
	'ES003', NULL, 'a COPY into streams that a function runs is refused');

-- Per role: no privilege to insert into streams; the DDL is refused by the
-- event trigger, before PostgreSQL checks ownership ------------------------------

SET LOCAL ROLE eventstore_admin;
SELECT throws_ok(
	$$INSERT INTO eventstore.streams
	  VALUES ('pgtap04-forged', 'pgtap04-forged', 0, 1, pg_catalog.now(), pg_catalog.now())$$,
	'42501', NULL, 'an admin cannot INSERT into streams');
SELECT throws_ok('ALTER TYPE eventstore.event_in ADD ATTRIBUTE tenant text', 'ES003', NULL,
	'an admin cannot alter eventstore.event_in');
SELECT throws_ok('CREATE TABLE pg_temp.pgtap04_part PARTITION OF eventstore.events DEFAULT',
	'ES003', NULL, 'an admin cannot add a partition to events');
RESET ROLE;

-- Nor can the superuser tie a table to the log or alter its types -------------------------

SELECT throws_ok('CREATE TABLE pg_temp.pgtap04_part PARTITION OF eventstore.events DEFAULT',
	'ES003', NULL, 'a superuser cannot add a DEFAULT partition to events');
SELECT throws_ok(
	'CREATE TABLE pg_temp.pgtap04_part PARTITION OF eventstore.events FOR VALUES FROM (2000) TO (3000)',
	'ES003', NULL, 'a superuser cannot add a partition for buckets outside 0..1023');
SELECT throws_ok('CREATE TABLE pg_temp.pgtap04_child () INHERITS (eventstore.streams)',
	'ES003', NULL, 'a superuser cannot create a child table of streams');
SELECT throws_ok('ALTER TYPE eventstore.event_in ALTER ATTRIBUTE data TYPE text',
	'ES003', NULL, 'a superuser cannot change an attribute of eventstore.event_in');
SELECT throws_ok('ALTER TYPE eventstore.recorded_event ADD ATTRIBUTE tenant text',
	'ES003', NULL, 'a superuser cannot add an attribute to eventstore.recorded_event');
SELECT throws_ok('ALTER TYPE eventstore.streams RENAME ATTRIBUTE version TO v',
	'ES003', NULL, 'a superuser cannot rename a column of streams through ALTER TYPE');
SELECT is(
	(SELECT pg_catalog.count(*)::int FROM pg_catalog.pg_inherits
	  WHERE inhparent OPERATOR(pg_catalog.=) 'eventstore.events'::pg_catalog.regclass),
	8, 'events still has its 8 partitions');

-- Nothing changed --------------------------------------------------------------------

SELECT set_eq(
	$$SELECT tableoid::regclass::text AS part, insert_order, stream_id, stream_order,
			 event_id, event_type, data
		FROM eventstore.events WHERE stream_id LIKE 'pgtap04-%'$$,
	'SELECT * FROM pgtap04_before',
	'every event is still there, unchanged and in the same partition');
SELECT is(
	(SELECT pg_catalog.sum(version)::int FROM eventstore.streams WHERE stream_id LIKE 'pgtap04-%'),
	40,
	'every stream version is unchanged');

SELECT * FROM finish();
ROLLBACK;
