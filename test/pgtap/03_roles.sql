/*
 * test/pgtap/03_roles.sql
 *
 * The privileges of 02_privileges.sql, exercised: throwaway roles, created
 * inside the transaction and granted one eventstore role each, SET ROLE to
 * them and try to read, append, and change the log behind append's back.
 *
 * A role without a privilege is stopped by the privilege check (42501)
 * before any trigger runs; the append-only triggers (ES003) are what stops
 * the owner, a superuser, and a role that someone granted UPDATE, DELETE or
 * TRUNCATE to.  04_append_only.sql covers the superuser in depth.
 *
 * Role names carry the file's name so that pg_prove -j cannot collide.
 */
BEGIN;
SELECT plan(46);

-- TRUNCATE takes ACCESS EXCLUSIVE before its trigger refuses it; files that
-- append and truncate would deadlock each other under pg_prove -j.
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('eventstore pgtap: the log'));

CREATE ROLE pgtap03_nobody NOLOGIN;
CREATE ROLE pgtap03_reader NOLOGIN IN ROLE eventstore_reader;
CREATE ROLE pgtap03_writer NOLOGIN IN ROLE eventstore_writer;
CREATE ROLE pgtap03_admin NOLOGIN IN ROLE eventstore_admin;
CREATE ROLE pgtap03_granted NOLOGIN IN ROLE eventstore_writer;
GRANT UPDATE, DELETE, TRUNCATE ON eventstore.events TO pgtap03_granted;
GRANT UPDATE, DELETE, TRUNCATE ON eventstore.events_0000_0127, eventstore.events_0128_0255,
	eventstore.events_0256_0383, eventstore.events_0384_0511, eventstore.events_0512_0639,
	eventstore.events_0640_0767, eventstore.events_0768_0895, eventstore.events_0896_1023
	TO pgtap03_granted;

-- A valid row for direct INSERT attempts (a psql variable: pg_prove runs psql).
\set forged_insert 'INSERT INTO eventstore.events (insert_order, stream_order, recorded_at, writer_xid, bucket, schema_version, event_id, stream_id, event_type, partition_key, data) VALUES (9000000000000, 1, now(), pg_current_xact_id(), 0, 1, gen_random_uuid(), ''pgtap03-direct'', ''Forged'', ''pgtap03-direct'', ''{}'')'

-- One stream appended by the superuser, so that the roles have rows to touch.
SELECT is(
	(SELECT count(*)::int FROM eventstore.append('pgtap03-seed',
		ARRAY[eventstore.event('Seeded', '{"n": 1}'), eventstore.event('Seeded', '{"n": 2}')])),
	2,
	'setup: the superuser appends two events');

-- No eventstore role ------------------------------------------------------------

SET ROLE pgtap03_nobody;
SELECT throws_ok('SELECT eventstore.head()', '42501', NULL,
	'a role without eventstore_reader cannot call head()');
SELECT throws_ok('SELECT * FROM eventstore.read_all(0, 10)', '42501', NULL,
	'a role without eventstore_reader cannot call read_all()');
SELECT throws_ok('SELECT count(*) FROM eventstore.events', '42501', NULL,
	'a role without eventstore_reader cannot select from events');
SELECT throws_ok($$SELECT * FROM eventstore.append('pgtap03-nobody', '{}')$$, '42501', NULL,
	'a role without eventstore_writer cannot call append()');
RESET ROLE;

-- Reader --------------------------------------------------------------------------

SET ROLE pgtap03_reader;
SELECT cmp_ok(eventstore.head(), '>=', 0::bigint, 'a reader can call head()');
SELECT lives_ok('SELECT * FROM eventstore.read_all(0, 10)', 'a reader can call read_all()');
SELECT is(
	(SELECT array_agg(stream_order ORDER BY stream_order)
	   FROM eventstore.read_stream('pgtap03-seed')),
	ARRAY[1, 2]::bigint[],
	'a reader can read a stream');
SELECT is(eventstore.stream_version('pgtap03-seed'), 2::bigint,
	'a reader can call stream_version()');
SELECT is((SELECT count(*)::int FROM eventstore.events WHERE stream_id = 'pgtap03-seed'), 2,
	'a reader can select from events');
SELECT lives_ok('SELECT * FROM eventstore.appenders', 'a reader can look at appenders');
SELECT throws_ok(
	$$SELECT * FROM eventstore.append('pgtap03-reader', ARRAY[eventstore.event('T', '{}')])$$,
	'42501', NULL, 'a reader cannot append');
SELECT throws_ok(:'forged_insert', '42501', NULL,
	'a reader cannot insert into events directly');
SELECT throws_ok('UPDATE eventstore.events SET event_type = event_type', '42501', NULL,
	'a reader cannot update events');
SELECT throws_ok('DELETE FROM eventstore.events', '42501', NULL,
	'a reader cannot delete from events');
SELECT throws_ok('TRUNCATE eventstore.events', '42501', NULL,
	'a reader cannot truncate events');
SELECT throws_ok($$SELECT pg_catalog.nextval('eventstore.position_blocks')$$, '42501', NULL,
	'a reader cannot advance position_blocks');
RESET ROLE;

-- Writer --------------------------------------------------------------------------

SET ROLE pgtap03_writer;
SELECT results_eq(
	$$SELECT stream_order, duplicate
		FROM eventstore.append('pgtap03-writer',
			ARRAY[eventstore.event('Written', '{"n": 1}'),
				  eventstore.event('Written', '{"n": 2}'),
				  eventstore.event('Written', '{"n": 3}')])
	   ORDER BY stream_order$$,
	$$VALUES (1::bigint, false), (2, false), (3, false)$$,
	'a writer can append');
SELECT is(eventstore.stream_version('pgtap03-writer'), 3::bigint,
	'the writer''s append is visible to it');
SELECT is(
	(SELECT count(*)::int FROM eventstore.append('pgtap03-writer',
		ARRAY[eventstore.event('Written', '{"n": 4}')], 3)),
	1,
	'a writer can append with an expected version');
SELECT throws_ok(
	$$SELECT * FROM eventstore.append('pgtap03-writer', ARRAY[eventstore.event('Written', '{}')], 3)$$,
	'ES001', NULL, 'a writer gets ES001 for a stale expected version');
SELECT throws_ok(:'forged_insert', '42501', NULL,
	'a writer cannot insert into events directly');
SELECT throws_ok(
	$$INSERT INTO eventstore.events_0000_0127
		SELECT * FROM eventstore.events WHERE false$$,
	'42501', NULL, 'a writer cannot insert into a partition directly');
SELECT throws_ok('UPDATE eventstore.events SET event_type = event_type', '42501', NULL,
	'a writer cannot update events');
SELECT throws_ok('DELETE FROM eventstore.events', '42501', NULL,
	'a writer cannot delete from events');
SELECT throws_ok('TRUNCATE eventstore.events', '42501', NULL,
	'a writer cannot truncate events');
SELECT throws_ok('DELETE FROM eventstore.events_0512_0639', '42501', NULL,
	'a writer cannot delete from a partition');
SELECT throws_ok($$UPDATE eventstore.streams SET version = version + 1$$, '42501', NULL,
	'a writer cannot update streams');
SELECT throws_ok(
	$$INSERT INTO eventstore.streams VALUES ('pgtap03-forged', 'k', 0, 1, now(), now())$$,
	'42501', NULL, 'a writer cannot insert into streams');
SELECT throws_ok($$SELECT pg_catalog.nextval('eventstore.position_blocks')$$, '42501', NULL,
	'a writer cannot advance position_blocks');
SELECT throws_ok($$SELECT pg_catalog.setval('eventstore.position_blocks', 1)$$, '42501', NULL,
	'a writer cannot set position_blocks back');
RESET ROLE;

-- Admin ---------------------------------------------------------------------------

SET ROLE pgtap03_admin;
SELECT is(
	(SELECT count(*)::int FROM eventstore.append('pgtap03-admin',
		ARRAY[eventstore.event('Administered', '{}')], 0)),
	1,
	'an admin can append');
SELECT is((SELECT count(*)::int FROM eventstore.read_stream('pgtap03-admin')), 1,
	'an admin can read');
SELECT throws_ok(:'forged_insert', '42501', NULL,
	'an admin cannot insert into events directly');
SELECT throws_ok('UPDATE eventstore.events SET event_type = event_type', '42501', NULL,
	'an admin cannot update events');
SELECT throws_ok('DELETE FROM eventstore.events', '42501', NULL,
	'an admin cannot delete from events');
SELECT throws_ok('TRUNCATE eventstore.events_0896_1023', '42501', NULL,
	'an admin cannot truncate a partition');
RESET ROLE;

-- A role that was granted UPDATE, DELETE and TRUNCATE: the triggers stop it ----------

SET ROLE pgtap03_granted;
SELECT throws_ok('UPDATE eventstore.events SET event_type = event_type', 'ES003', NULL,
	'a role granted UPDATE still cannot update events (ES003)');
SELECT throws_ok('DELETE FROM eventstore.events', 'ES003', NULL,
	'a role granted DELETE still cannot delete from events (ES003)');
SELECT throws_ok('TRUNCATE eventstore.events', 'ES003', NULL,
	'a role granted TRUNCATE still cannot truncate events (ES003)');
SELECT throws_ok('UPDATE eventstore.events_0000_0127 SET event_type = event_type', 'ES003', NULL,
	'a role granted UPDATE still cannot update a partition (ES003)');
SELECT throws_ok('DELETE FROM eventstore.events_0384_0511', 'ES003', NULL,
	'a role granted DELETE still cannot delete from a partition (ES003)');
SELECT throws_ok('TRUNCATE eventstore.events_0896_1023', 'ES003', NULL,
	'a role granted TRUNCATE still cannot truncate a partition (ES003)');
RESET ROLE;

-- Nothing above changed the log ---------------------------------------------------

SELECT results_eq(
	$$SELECT stream_id, count(*)::int, min(stream_order), max(stream_order)
		FROM eventstore.events
	   WHERE stream_id IN ('pgtap03-seed', 'pgtap03-writer', 'pgtap03-admin', 'pgtap03-direct')
	   GROUP BY stream_id ORDER BY stream_id$$,
	$$VALUES ('pgtap03-admin', 1, 1::bigint, 1::bigint),
			 ('pgtap03-seed', 2, 1, 2),
			 ('pgtap03-writer', 4, 1, 4)$$,
	'the log holds exactly what append wrote');
SELECT results_eq(
	$$SELECT stream_id, version FROM eventstore.streams
	   WHERE stream_id LIKE 'pgtap03-%' ORDER BY stream_id$$,
	$$VALUES ('pgtap03-admin', 1::bigint), ('pgtap03-seed', 2), ('pgtap03-writer', 4)$$,
	'streams hold exactly what append wrote');
SELECT is(
	(SELECT count(DISTINCT insert_order)::int FROM eventstore.events
	  WHERE stream_id LIKE 'pgtap03-%'),
	7,
	'each appended event has its own insert_order');

SELECT * FROM finish();
ROLLBACK;
