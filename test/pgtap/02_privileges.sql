/*
 * test/pgtap/02_privileges.sql
 *
 * Who may do what, as the catalogs say: PUBLIC nothing at all, readers USAGE
 * on the schema, SELECT on the log and EXECUTE on the read functions;
 * writers (and admins, through writer) additionally EXECUTE append.  No role
 * other than the owner holds INSERT, UPDATE, DELETE or TRUNCATE on anything.
 * The privilege functions of pgTAP report effective privileges, so inherited
 * grants count.  03_roles.sql checks the same by acting as the roles.
 */
BEGIN;
SELECT plan(305);

-- Schema ----------------------------------------------------------------------

SELECT schema_privs_are('eventstore', 'public', ARRAY[]::name[],
	'PUBLIC has no privilege on schema eventstore');
SELECT schema_privs_are('eventstore', 'eventstore_reader', ARRAY['USAGE'],
	'eventstore_reader has USAGE on schema eventstore');
SELECT schema_privs_are('eventstore', 'eventstore_writer', ARRAY['USAGE'],
	'eventstore_writer has USAGE on schema eventstore');
SELECT schema_privs_are('eventstore', 'eventstore_admin', ARRAY['USAGE'],
	'eventstore_admin has USAGE on schema eventstore');

-- Tables and view ---------------------------------------------------------------

SELECT table_privs_are('eventstore', 'events', 'public', ARRAY[]::name[]);
SELECT table_privs_are('eventstore', 'events', 'eventstore_reader', ARRAY['SELECT']);
SELECT table_privs_are('eventstore', 'events', 'eventstore_writer', ARRAY['SELECT']);
SELECT table_privs_are('eventstore', 'events', 'eventstore_admin', ARRAY['SELECT']);

SELECT table_privs_are('eventstore', 'streams', 'public', ARRAY[]::name[]);
SELECT table_privs_are('eventstore', 'streams', 'eventstore_reader', ARRAY['SELECT']);
SELECT table_privs_are('eventstore', 'streams', 'eventstore_writer', ARRAY['SELECT']);
SELECT table_privs_are('eventstore', 'streams', 'eventstore_admin', ARRAY['SELECT']);

SELECT table_privs_are('eventstore', 'appenders', 'public', ARRAY[]::name[]);
SELECT table_privs_are('eventstore', 'appenders', 'eventstore_reader', ARRAY['SELECT']);
SELECT table_privs_are('eventstore', 'appenders', 'eventstore_writer', ARRAY['SELECT']);
SELECT table_privs_are('eventstore', 'appenders', 'eventstore_admin', ARRAY['SELECT']);

-- Ticks, subscriptions and their lag: readable by readers and up, written
-- only through the functions.
SELECT table_privs_are('eventstore', t.name, r.role,
		CASE WHEN r.role = 'public' THEN ARRAY[]::name[] ELSE ARRAY['SELECT']::name[] END)
  FROM (VALUES (1, 'ticks'::name), (2, 'subscriptions'), (3, 'subscription_partitions'),
			   (4, 'subscription_members'), (5, 'subscription_lag'), (6, 'dead_letters'),
			   (7, 'dead_letter_events')) t(n, name)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
					(3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY t.n, r.n;

-- Every partition: 8 partitions x 4 roles.
SELECT table_privs_are('eventstore', c.relname, r.role,
		CASE WHEN r.role = 'public' THEN ARRAY[]::name[] ELSE ARRAY['SELECT']::name[] END,
		pg_catalog.format('%s has %s on partition %s', r.role,
			CASE WHEN r.role = 'public' THEN 'no privilege' ELSE 'only SELECT' END,
			c.relname))
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
					(3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 WHERE i.inhparent = 'eventstore.events'::regclass
 ORDER BY c.relname, r.n;

-- Sequence ----------------------------------------------------------------------

SELECT sequence_privs_are('eventstore', 'position_blocks', 'public', ARRAY[]::name[]);
SELECT sequence_privs_are('eventstore', 'position_blocks', 'eventstore_reader', ARRAY['SELECT']);
SELECT sequence_privs_are('eventstore', 'position_blocks', 'eventstore_writer', ARRAY['SELECT'],
	'eventstore_writer cannot advance position_blocks (only append does)');
SELECT sequence_privs_are('eventstore', 'position_blocks', 'eventstore_admin', ARRAY['SELECT'],
	'eventstore_admin cannot advance position_blocks (only append does)');

-- Functions ---------------------------------------------------------------------

-- append: writers and admins only.
SELECT function_privs_are('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'], 'public', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'], 'eventstore_reader', ARRAY[]::name[]);
SELECT function_privs_are('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'], 'eventstore_writer', ARRAY['EXECUTE']);
SELECT function_privs_are('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'], 'eventstore_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('eventstore', f.name, f.args,
	r.role, CASE WHEN r.role IN ('public', 'eventstore_reader') THEN ARRAY[]::name[]
				 ELSE ARRAY['EXECUTE']::name[] END)
  FROM (VALUES (1, 'append'::name, ARRAY['text', 'jsonb', 'bigint', 'text']::name[]),
			   (2, 'try_append', ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text']),
			   (3, 'try_append', ARRAY['text', 'jsonb', 'bigint', 'text']),
			   (4, 'append_multi', ARRAY['jsonb']),
			   (5, 'try_append_multi', ARRAY['jsonb'])) f(n, name, args)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
			   (3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY f.n, r.n;

-- The read side and the constructor: readers and up, never PUBLIC.
SELECT function_privs_are('eventstore', f.name, f.args, r.role,
		CASE WHEN r.role = 'public' THEN ARRAY[]::name[] ELSE ARRAY['EXECUTE']::name[] END)
  FROM (VALUES (1, 'event'::name, ARRAY['text', 'jsonb', 'jsonb', 'uuid', 'integer']::name[]),
			   (2, 'bucket_of', ARRAY['text']),
			   (3, 'head', ARRAY[]::name[]),
			   (4, 'read_all', ARRAY['bigint', 'integer', 'text[]', 'text', 'text[]']),
			   (5, 'read_stream', ARRAY['text', 'bigint', 'integer', 'boolean']),
			   (6, 'stream_version', ARRAY['text']),
			   (7, 'open_appenders', ARRAY[]::name[]),
			   (8, 'open_feed', ARRAY['bigint', 'text', 'text[]', 'text', 'text[]']),
			   (9, 'subscription_matches', ARRAY['text[]', 'text', 'text[]', 'text', 'text', 'text']),
			   (10, 'poll', ARRAY['text', 'integer', 'bigint', 'boolean', 'interval']),
			   (11, 'ack', ARRAY['text', 'bigint']),
			   (12, 'group_join', ARRAY['text', 'text', 'interval']),
			   (13, 'group_leave', ARRAY['text', 'text']),
			   (14, 'group_poll', ARRAY['text', 'text', 'integer', 'interval']),
			   (15, 'group_ack', ARRAY['text', 'text', 'bigint']),
			   (16, 'wait_for', ARRAY['bigint', 'interval']),
			   (17, 'nack', ARRAY['text', 'bigint', 'text', 'interval']),
			   (18, 'group_nack', ARRAY['text', 'text', 'bigint', 'text', 'interval']),
			   (19, 'read_all_backwards', ARRAY['bigint', 'integer', 'text[]', 'text', 'text[]'])) f(n, name, args)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
					(3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY f.n, r.n;

-- wait_for_head, the procedure: readers and up, never PUBLIC.
SELECT function_privs_are('eventstore', 'wait_for_head', ARRAY['bigint', 'interval', 'bigint'],
		r.role, CASE WHEN r.role = 'public' THEN ARRAY[]::name[] ELSE ARRAY['EXECUTE']::name[] END)
  FROM (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
			   (3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY r.n;

-- Signals: writers and admins.
SELECT function_privs_are('eventstore', 'signal', ARRAY['text', 'text'], r.role,
		CASE WHEN r.role IN ('public', 'eventstore_reader') THEN ARRAY[]::name[]
			 ELSE ARRAY['EXECUTE']::name[] END)
  FROM (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
			   (3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY r.n;

-- Managing subscriptions: admins only.
SELECT function_privs_are('eventstore', f.name, f.args, r.role,
		CASE WHEN r.role = 'eventstore_admin' THEN ARRAY['EXECUTE']::name[]
			 ELSE ARRAY[]::name[] END)
  FROM (VALUES (1, 'create_subscription'::name,
				ARRAY['text', 'text', 'bigint', 'timestamp with time zone', 'text[]', 'text',
					  'text[]', 'boolean', 'regrole', 'integer']::name[]),
			   (2, 'drop_subscription', ARRAY['text', 'boolean']),
			   (3, 'pause_subscription', ARRAY['text', 'boolean']),
			   (4, 'resume_subscription', ARRAY['text']),
			   (5, 'replay_dead_letters', ARRAY['text', 'bigint[]']),
			   (6, 'drop_dead_letters', ARRAY['text', 'bigint[]'])) f(n, name, args)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
					(3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY f.n, r.n;

-- Internal helpers, and the internal functions behind the subscription
-- entry points (only the gate calls them): nobody.
SELECT function_privs_are('eventstore', f.name, f.args, r.role, ARRAY[]::name[])
  FROM (VALUES (1, 'subscription_row'::name,
				ARRAY['text', 'boolean', 'boolean', 'text', 'regrole']::name[]),
			   (2, 'group_member_check', ARRAY['text', 'text']),
			   (3, 'subscription_authorize', ARRAY['text', 'regrole', 'regrole']),
			   (4, 'subscription_feed',
				ARRAY['bigint[]', 'integer[]', 'integer[]', 'bigint', 'integer',
					  'text[]', 'text', 'text[]']),
			   (5, 'dead_letter_park',
				ARRAY['eventstore.subscriptions', 'eventstore.events', 'text', 'interval']),
			   (6, 'dead_letter_redeliver', ARRAY['text', 'integer', 'integer[]', 'integer[]']),
			   (7, 'dead_letter_settle',
				ARRAY['text', 'bigint', 'integer[]', 'integer[]', 'xid8[]']),
			   (8, 'dead_letter_event',
				ARRAY['eventstore.subscriptions', 'bigint', 'text', 'interval']),
			   (9, 'dead_letter_positions_check', ARRAY['bigint[]'])) f(n, name, args)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
					(3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY f.n, r.n;

SELECT is_empty(
	$$SELECT p.oid::regprocedure, a.grantee::regrole
		FROM pg_catalog.pg_proc p,
			 LATERAL pg_catalog.aclexplode(p.proacl) a
	   WHERE p.pronamespace = 'eventstore'::regnamespace
		 AND p.proname ~ '_internal$'
		 AND a.grantee <> p.proowner$$,
	'no role but the owner may execute the internal functions behind the gate');
SELECT is(
	(SELECT count(*)::int FROM pg_catalog.pg_proc p
	  WHERE p.pronamespace = 'eventstore'::regnamespace AND p.proname ~ '_internal$'
		AND p.proacl IS NOT NULL),
	13,
	'the 13 internal functions have their default privileges revoked from PUBLIC');

-- Monitoring: eventstore_monitor reads the counters, the head and the lag
-- of subscriptions, no event; readers and up are monitors too; only admins
-- reset the counters.
SELECT schema_privs_are('eventstore', 'eventstore_monitor', ARRAY['USAGE'],
	'eventstore_monitor has USAGE on schema eventstore');
SELECT table_privs_are('eventstore', t.name, r.role,
		CASE WHEN r.role = 'public' THEN ARRAY[]::name[] ELSE ARRAY['SELECT']::name[] END)
  FROM (VALUES (1, 'stats'::name), (2, 'subscription_lag')) t(n, name)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_monitor'), (3, 'eventstore_reader'),
			   (4, 'eventstore_writer'), (5, 'eventstore_admin')) r(n, role)
 ORDER BY t.n, r.n;
SELECT function_privs_are('eventstore', f.name, f.args, r.role,
		CASE WHEN r.role = 'public' THEN ARRAY[]::name[] ELSE ARRAY['EXECUTE']::name[] END)
  FROM (VALUES (1, 'stats_counters'::name, ARRAY[]::name[]), (2, 'head', ARRAY[]::name[]),
			   (3, 'subscription_matches',
				ARRAY['text[]', 'text', 'text[]', 'text', 'text', 'text'])) f(n, name, args)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_monitor'), (3, 'eventstore_reader'),
					(4, 'eventstore_writer'), (5, 'eventstore_admin')) r(n, role)
 ORDER BY f.n, r.n;
SELECT function_privs_are('eventstore', 'reset_stats', ARRAY[]::name[], r.role,
		CASE WHEN r.role = 'eventstore_admin' THEN ARRAY['EXECUTE']::name[]
			 ELSE ARRAY[]::name[] END)
  FROM (VALUES (1, 'public'::name), (2, 'eventstore_monitor'), (3, 'eventstore_reader'),
			   (4, 'eventstore_writer'), (5, 'eventstore_admin')) r(n, role)
 ORDER BY r.n;
SELECT is_empty(
	$$SELECT c.oid::regclass
		FROM pg_catalog.pg_class c
	   WHERE c.relnamespace = 'eventstore'::regnamespace
		 AND c.relkind IN ('r', 'p', 'v', 'S')
		 AND c.relname NOT IN ('stats', 'subscription_lag')
		 AND CASE WHEN c.relkind = 'S'
				  THEN pg_catalog.has_sequence_privilege('eventstore_monitor', c.oid, 'SELECT, USAGE, UPDATE')
				  ELSE pg_catalog.has_any_column_privilege('eventstore_monitor', c.oid, 'SELECT')
			 END$$,
	'eventstore_monitor reads no table, view or sequence of eventstore but stats and subscription_lag');
SELECT is_empty(
	$$SELECT p.oid::regprocedure
		FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'eventstore'::regnamespace
		 AND p.proname NOT IN ('stats_counters', 'head', 'subscription_matches')
		 AND pg_catalog.has_function_privilege('eventstore_monitor', p.oid, 'EXECUTE')$$,
	'eventstore_monitor may execute no function of eventstore but stats_counters, head and subscription_matches');

-- Trigger functions: nobody.
SELECT function_privs_are('eventstore', f.name, ARRAY[]::name[], r.role, ARRAY[]::name[])
  FROM (VALUES (1, 'refuse_change'::name), (2, 'guard_streams'), (3, 'guard_ddl'),
			 (4, 'adopt_positions')) f(n, name)
 CROSS JOIN (VALUES (1, 'public'::name), (2, 'eventstore_reader'),
					(3, 'eventstore_writer'), (4, 'eventstore_admin')) r(n, role)
 ORDER BY f.n, r.n;

-- Sweeps, so that an object added later cannot slip through ----------------------

SELECT is_empty(
	$$SELECT c.oid::regclass, p.priv
		FROM pg_catalog.pg_class c
	   CROSS JOIN pg_catalog.unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE',
										  'TRUNCATE', 'REFERENCES', 'TRIGGER']) p(priv)
	   WHERE c.relnamespace = 'eventstore'::regnamespace
		 AND c.relkind IN ('r', 'p', 'v')
		 AND pg_catalog.has_table_privilege('public', c.oid, p.priv)$$,
	'PUBLIC holds no privilege on any table or view in eventstore');
SELECT is_empty(
	$$SELECT c.oid::regclass
		FROM pg_catalog.pg_class c
	   WHERE c.relnamespace = 'eventstore'::regnamespace
		 AND CASE WHEN c.relkind = 'S'
				  THEN pg_catalog.has_sequence_privilege('public', c.oid, 'SELECT, USAGE, UPDATE')
			 END$$,
	'PUBLIC holds no privilege on any sequence in eventstore');
SELECT is_empty(
	$$SELECT p.oid::regprocedure
		FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'eventstore'::regnamespace
		 AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')$$,
	'PUBLIC may execute no function in eventstore');
SELECT is_empty(
	$$SELECT c.oid::regclass, a.privilege_type, a.grantee::regrole
		FROM pg_catalog.pg_class c,
			 LATERAL pg_catalog.aclexplode(c.relacl) a
	   WHERE c.relnamespace = 'eventstore'::regnamespace
		 AND a.grantee <> c.relowner
		 AND a.privilege_type NOT IN ('SELECT')$$,
	'no role but the owner holds any privilege other than SELECT on a relation in eventstore');
SELECT is_empty(
	$$SELECT c.oid::regclass, a.attname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
	   WHERE c.relnamespace = 'eventstore'::regnamespace
		 AND a.attacl IS NOT NULL$$,
	'there are no column-level grants in eventstore');
SELECT is_empty(
	$$SELECT p.oid::regprocedure, a.grantee::regrole
		FROM pg_catalog.pg_proc p,
			 LATERAL pg_catalog.aclexplode(p.proacl) a
	   WHERE p.pronamespace = 'eventstore'::regnamespace
		 AND p.oid = 'eventstore.append(text, eventstore.event_in[], bigint, text)'::regprocedure
		 AND a.grantee NOT IN (p.proowner, 'eventstore_writer'::regrole)$$,
	'append is granted to eventstore_writer alone (admins get it through membership)');

SELECT * FROM finish();
ROLLBACK;
