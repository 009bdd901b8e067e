/*
 * test/pgtap/01_schema.sql
 *
 * The shape of the extension: schema, roles, tables and their columns,
 * partitions, indexes, the append-only triggers, composite types and the
 * signature, result, volatility, strictness and security of every function.
 * Run with pg_prove against a database where pgtap and eventstore are
 * installed; nothing is left behind (the transaction is rolled back).
 *
 * The type names in function_returns() and has_function() are written as
 * regtype prints them with eventstore outside the search_path.
 */
BEGIN;
SELECT plan(96);

-- Extension, schema, roles --------------------------------------------------

SELECT has_extension('eventstore', 'extension eventstore is installed');
SELECT has_schema('eventstore', 'schema eventstore exists');
SELECT is(
	(SELECT n.nspname::text FROM pg_catalog.pg_extension e
	   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	  WHERE e.extname = 'eventstore'),
	'eventstore',
	'the extension lives in schema eventstore');
SELECT ok(
	(SELECT NOT extrelocatable FROM pg_catalog.pg_extension
	  WHERE extname = 'eventstore'),
	'the extension is not relocatable');

SELECT has_role('eventstore_reader');
SELECT has_role('eventstore_writer');
SELECT has_role('eventstore_admin');
SELECT has_role('eventstore_monitor');
SELECT is(
	(SELECT count(*)::int FROM pg_catalog.pg_roles
	  WHERE rolname IN ('eventstore_reader', 'eventstore_writer', 'eventstore_admin',
						'eventstore_monitor')
		AND NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls
		AND NOT rolcreaterole AND NOT rolcreatedb),
	4,
	'the four roles are NOLOGIN and hold no role attributes');
SELECT is_member_of('eventstore_monitor', ARRAY['eventstore_reader'],
	'eventstore_reader is a member of eventstore_monitor');
SELECT ok(
	NOT pg_catalog.pg_has_role('eventstore_monitor', 'eventstore_reader', 'MEMBER'),
	'eventstore_monitor is not a member of eventstore_reader');
SELECT is_member_of('eventstore_reader', ARRAY['eventstore_writer'],
	'eventstore_writer is a member of eventstore_reader');
SELECT is_member_of('eventstore_writer', ARRAY['eventstore_admin'],
	'eventstore_admin is a member of eventstore_writer');
SELECT ok(
	pg_catalog.pg_has_role('eventstore_admin', 'eventstore_reader', 'USAGE'),
	'eventstore_admin inherits eventstore_reader');
SELECT ok(
	NOT pg_catalog.pg_has_role('eventstore_reader', 'eventstore_writer', 'MEMBER'),
	'eventstore_reader is not a member of eventstore_writer');

-- Relations -------------------------------------------------------------------

SELECT tables_are('eventstore',
	ARRAY['events', 'streams', 'ticks', 'subscriptions', 'dead_letters',
		  'subscription_partitions', 'subscription_members',
		  'events_0000_0127', 'events_0128_0255', 'events_0256_0383',
		  'events_0384_0511', 'events_0512_0639', 'events_0640_0767',
		  'events_0768_0895', 'events_0896_1023'],
	'schema eventstore has exactly the log, tick and subscription tables and the 8 default partitions');
SELECT views_are('eventstore',
	ARRAY['appenders', 'subscription_lag', 'stats', 'dead_letter_events'],
	'schema eventstore has exactly the views appenders, subscription_lag, stats and dead_letter_events');
SELECT columns_are('eventstore', 'stats',
	ARRAY['appends', 'events', 'duplicates', 'bytes', 'rolled_back', 'conflicts', 'head',
		  'ticks', 'wakeups', 'waits', 'wait_timeouts', 'stats_reset'],
	'eventstore.stats has the documented columns');
SELECT sequences_are('eventstore', ARRAY['position_blocks', 'ticks_tick_id_seq'],
	'schema eventstore has exactly the sequences position_blocks and the ticks'' identity');

SELECT columns_are('eventstore', 'events',
	ARRAY['insert_order', 'stream_order', 'recorded_at', 'writer_xid', 'bucket',
		  'schema_version', 'event_id', 'stream_id', 'event_type',
		  'partition_key', 'data', 'metadata']);
SELECT results_eq(
	$$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_catalog.pg_attribute a
	   WHERE a.attrelid = 'eventstore.events'::regclass
		 AND a.attnum > 0 AND NOT a.attisdropped
	   ORDER BY a.attnum$$,
	$$VALUES ('insert_order', 'bigint', true),
			 ('stream_order', 'bigint', true),
			 ('recorded_at', 'timestamp with time zone', true),
			 ('writer_xid', 'xid8', true),
			 ('bucket', 'integer', true),
			 ('schema_version', 'integer', true),
			 ('event_id', 'uuid', true),
			 ('stream_id', 'text', true),
			 ('event_type', 'text', true),
			 ('partition_key', 'text', true),
			 ('data', 'jsonb', true),
			 ('metadata', 'jsonb', false)$$,
	'eventstore.events has the documented column types and nullability, in order');

SELECT columns_are('eventstore', 'streams',
	ARRAY['stream_id', 'partition_key', 'bucket', 'version', 'created_at', 'updated_at']);
SELECT results_eq(
	$$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull
		FROM pg_catalog.pg_attribute a
	   WHERE a.attrelid = 'eventstore.streams'::regclass
		 AND a.attnum > 0 AND NOT a.attisdropped
	   ORDER BY a.attnum$$,
	$$VALUES ('stream_id', 'text', true),
			 ('partition_key', 'text', true),
			 ('bucket', 'integer', true),
			 ('version', 'bigint', true),
			 ('created_at', 'timestamp with time zone', true),
			 ('updated_at', 'timestamp with time zone', true)$$,
	'eventstore.streams has the documented column types and nullability, in order');
SELECT col_is_pk('eventstore', 'streams', 'stream_id',
	'streams are keyed by stream_id');

SELECT is_partitioned('eventstore', 'events', 'eventstore.events is partitioned');
SELECT is(
	pg_catalog.pg_get_partkeydef('eventstore.events'::regclass),
	'RANGE (bucket)',
	'eventstore.events is partitioned by range of bucket');
SELECT results_eq(
	$$SELECT c.relname::text COLLATE "default", pg_catalog.pg_get_expr(c.relpartbound, c.oid) COLLATE "default"
		FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
	   WHERE i.inhparent = 'eventstore.events'::regclass
	   ORDER BY 1$$,
	$$SELECT pg_catalog.format('events_%s_%s',
							   pg_catalog.lpad((g * 128)::text, 4, '0'),
							   pg_catalog.lpad((g * 128 + 127)::text, 4, '0')),
			 pg_catalog.format('FOR VALUES FROM (%s) TO (%s)', g * 128, (g + 1) * 128)
		FROM pg_catalog.generate_series(0, 7) g
	   ORDER BY 1$$,
	'the 8 default partitions cover buckets 0..1023 in equal ranges');
SELECT is(
	(SELECT count(*)::int FROM pg_catalog.pg_class c
	  WHERE c.oid IN (SELECT inhrelid FROM pg_catalog.pg_inherits
					   WHERE inhparent = 'eventstore.events'::regclass)
		AND c.relkind = 'r'
		AND c.relnamespace = 'eventstore'::regnamespace),
	8,
	'every partition is a plain table in schema eventstore');

SELECT col_is_pk('eventstore', 'events', ARRAY['bucket', 'stream_id', 'stream_order'],
	'events are keyed by (bucket, stream_id, stream_order)');
SELECT col_is_unique('eventstore', 'events', ARRAY['bucket', 'stream_id', 'event_id'],
	'an event id is unique within its stream');
SELECT has_index('eventstore', 'events', 'events_insert_order_idx', ARRAY['insert_order'],
	'events are indexed by insert_order');

SELECT has_sequence('eventstore', 'position_blocks', 'sequence eventstore.position_blocks exists');
SELECT is(
	(SELECT seqincrement FROM pg_catalog.pg_sequence
	  WHERE seqrelid = 'eventstore.position_blocks'::regclass),
	65536::bigint,
	'position_blocks reserves blocks of 65536 positions');
SELECT is(
	(SELECT seqcycle FROM pg_catalog.pg_sequence
	  WHERE seqrelid = 'eventstore.position_blocks'::regclass),
	false,
	'position_blocks never cycles');

SELECT has_view('eventstore', 'appenders', 'view eventstore.appenders exists');
SELECT columns_are('eventstore', 'appenders',
	ARRAY['pid', 'lowest_position', 'writer_xid', 'xact_start', 'xact_age',
		  'usename', 'application_name', 'state', 'query']);

-- Extension membership and pg_dump registration -----------------------------------

SELECT is(
	(SELECT count(*)::int FROM pg_catalog.pg_class c
	  WHERE c.relnamespace = 'eventstore'::regnamespace
		AND c.relkind IN ('r', 'p', 'v', 'S')
		AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
						 WHERE d.classid = 'pg_catalog.pg_class'::regclass
						   AND d.objid = c.oid AND d.deptype = 'e'
						   AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension
											  WHERE extname = 'eventstore'))),
	0,
	'every table, view and sequence in eventstore belongs to the extension');
SELECT is(
	(SELECT count(*)::int FROM pg_catalog.pg_extension e,
			LATERAL pg_catalog.unnest(e.extconfig) AS cfg(reloid)
	  WHERE e.extname = 'eventstore'
		AND (cfg.reloid = 'eventstore.streams'::regclass
			 OR cfg.reloid = 'eventstore.position_blocks'::regclass
			 OR cfg.reloid IN (SELECT inhrelid FROM pg_catalog.pg_inherits
								WHERE inhparent = 'eventstore.events'::regclass))),
	10,
	'streams, position_blocks and the 8 partitions are dumped by pg_dump');

-- Append-only triggers --------------------------------------------------------

SELECT has_trigger('eventstore', 'events', 'events_append_only', 'events has trigger events_append_only');
SELECT trigger_is('eventstore', 'events', 'events_append_only',
	'eventstore', 'refuse_change');
SELECT has_trigger('eventstore', 'streams', 'streams_guard', 'streams has trigger streams_guard');
SELECT trigger_is('eventstore', 'streams', 'streams_guard',
	'eventstore', 'guard_streams');
/*
 * tgtype 58 = BEFORE (2) | DELETE (8) | UPDATE (16) | TRUNCATE (32), statement
 * level; 62 = the same and INSERT (4), for streams, whose rows only append()
 * and a restore's COPY insert; tgtype 4 = AFTER INSERT, statement level
 * (rows written without append(), as by a restore, move the allocator);
 * tgenabled 'A' = ENABLE ALWAYS, so that session_replication_role = replica
 * does not switch them off.
 */
SELECT results_eq(
	$$SELECT c.relname::text COLLATE "default", t.tgname::text COLLATE "default", t.tgtype::int, t.tgenabled::text,
			 t.tgfoid::regproc::text
		FROM pg_catalog.pg_trigger t
		JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
	   WHERE c.relnamespace = 'eventstore'::regnamespace
		 AND NOT t.tgisinternal
	   ORDER BY 1, 2$$,
	$$SELECT * FROM (VALUES
			('events', 'events_adopt_positions', 4, 'A', 'eventstore.adopt_positions'),
			('events', 'events_append_only', 58, 'A', 'eventstore.refuse_change'),
			('streams', 'streams_guard', 62, 'A', 'eventstore.guard_streams')) v
	  UNION ALL
	  SELECT p, p || '_adopt_positions', 4, 'A', 'eventstore.adopt_positions'
		FROM (SELECT pg_catalog.format('events_%s_%s',
						 pg_catalog.lpad((g * 128)::text, 4, '0'),
						 pg_catalog.lpad((g * 128 + 127)::text, 4, '0')) AS p
				FROM pg_catalog.generate_series(0, 7) g) parts
	  UNION ALL
	  SELECT p, p || '_append_only', 58, 'A', 'eventstore.refuse_change'
		FROM (SELECT pg_catalog.format('events_%s_%s',
						 pg_catalog.lpad((g * 128)::text, 4, '0'),
						 pg_catalog.lpad((g * 128 + 127)::text, 4, '0')) AS p
				FROM pg_catalog.generate_series(0, 7) g) parts
	  ORDER BY 1, 2$$,
	'events and every partition carry an ALWAYS BEFORE UPDATE/DELETE/TRUNCATE statement trigger, streams one for INSERT too, events and its partitions an ALWAYS AFTER INSERT statement trigger, and nothing else');

/*
 * The event trigger that keeps the log as the extension made it:
 * ddl_command_start on the DDL that could change it, ENABLE ALWAYS.
 */
SELECT results_eq(
	$$SELECT e.evtevent::text COLLATE "default", e.evtenabled::text,
			 e.evtfoid::regproc::text COLLATE "default", e.evttags::text[] COLLATE "default"
		FROM pg_catalog.pg_event_trigger e
	   WHERE e.evtname = 'eventstore_guard_ddl'$$,
	$$VALUES ('ddl_command_start', 'A', 'eventstore.guard_ddl',
			  ARRAY['ALTER TABLE', 'ALTER SCHEMA', 'ALTER TRIGGER', 'CREATE TRIGGER',
					'DROP TRIGGER', 'CREATE RULE', 'DROP RULE', 'CREATE FUNCTION',
					'ALTER FUNCTION', 'ALTER EXTENSION', 'ALTER TYPE',
					'CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
					'ALTER INDEX', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
					'ALTER SEQUENCE'])$$,
	'event trigger eventstore_guard_ddl guards the DDL that could change the log, always');

-- Types -----------------------------------------------------------------------

SELECT has_composite('eventstore', 'event_in', 'type eventstore.event_in exists');
SELECT results_eq(
	$$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod)
		FROM pg_catalog.pg_attribute a
	   WHERE a.attrelid = (SELECT typrelid FROM pg_catalog.pg_type
							WHERE oid = 'eventstore.event_in'::regtype)
		 AND a.attnum > 0 AND NOT a.attisdropped
	   ORDER BY a.attnum$$,
	$$VALUES ('event_type', 'text'), ('data', 'jsonb'), ('metadata', 'jsonb'),
			 ('event_id', 'uuid'), ('schema_version', 'integer')$$,
	'eventstore.event_in has the documented attributes');
SELECT has_composite('eventstore', 'recorded_event', 'type eventstore.recorded_event exists');
SELECT results_eq(
	$$SELECT a.attname::text COLLATE "default", pg_catalog.format_type(a.atttypid, a.atttypmod)
		FROM pg_catalog.pg_attribute a
	   WHERE a.attrelid = (SELECT typrelid FROM pg_catalog.pg_type
							WHERE oid = 'eventstore.recorded_event'::regtype)
		 AND a.attnum > 0 AND NOT a.attisdropped
	   ORDER BY a.attnum$$,
	$$VALUES ('insert_order', 'bigint'), ('stream_id', 'text'),
			 ('stream_order', 'bigint'), ('event_id', 'uuid'),
			 ('event_type', 'text'), ('schema_version', 'integer'),
			 ('data', 'jsonb'), ('metadata', 'jsonb'),
			 ('recorded_at', 'timestamp with time zone'),
			 ('partition_key', 'text')$$,
	'eventstore.recorded_event has the documented attributes');

-- Functions -------------------------------------------------------------------

SELECT functions_are('eventstore',
	ARRAY['event', 'append', 'bucket_of', 'head', 'read_all', 'read_all_backwards', 'open_feed', 'read_stream',
		  'stream_version', 'open_appenders', 'refuse_change', 'guard_streams',
		  'guard_ddl', 'adopt_positions',
		  'create_subscription', 'drop_subscription', 'pause_subscription',
		  'resume_subscription', 'subscription_matches', 'subscription_row',
		  'subscription_authorize', 'subscription_feed', 'try_append',
		  'append_multi', 'try_append_multi', 'wait_for', 'wait_for_head',
		  'poll', 'ack', 'group_join', 'group_leave', 'group_member_check',
		  'group_poll', 'group_ack', 'signal', 'stats_counters', 'reset_stats',
		  'nack', 'group_nack', 'replay_dead_letters', 'drop_dead_letters',
		  'dead_letter_event', 'dead_letter_park', 'dead_letter_redeliver', 'dead_letter_settle',
		  'dead_letter_positions_check',
		  'nack_internal', 'group_nack_internal', 'replay_dead_letters_internal',
		  'drop_dead_letters_internal',
		  'create_subscription_internal', 'drop_subscription_internal',
		  'pause_subscription_internal', 'poll_internal', 'ack_internal',
		  'group_join_internal', 'group_leave_internal', 'group_poll_internal',
		  'group_ack_internal'],
	'schema eventstore has exactly the documented functions');

SELECT has_function('eventstore', 'event',
	ARRAY['text', 'jsonb', 'jsonb', 'uuid', 'integer']);
SELECT has_function('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text']);
SELECT has_function('eventstore', 'append', ARRAY['text', 'jsonb', 'bigint', 'text']);
SELECT has_function('eventstore', 'try_append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text']);
SELECT has_function('eventstore', 'try_append', ARRAY['text', 'jsonb', 'bigint', 'text']);
SELECT has_function('eventstore', 'append_multi', ARRAY['jsonb']);
SELECT has_function('eventstore', 'wait_for', ARRAY['bigint', 'interval']);
SELECT has_function('eventstore', 'try_append_multi', ARRAY['jsonb']);
SELECT has_function('eventstore', 'bucket_of', ARRAY['text']);
SELECT has_function('eventstore', 'head', ARRAY[]::name[]);
SELECT has_function('eventstore', 'read_all', ARRAY['bigint', 'integer', 'text[]', 'text', 'text[]']);
SELECT has_function('eventstore', 'open_feed', ARRAY['bigint', 'text', 'text[]', 'text', 'text[]']);
SELECT has_function('eventstore', 'read_stream',
	ARRAY['text', 'bigint', 'integer', 'boolean']);
SELECT has_function('eventstore', 'stream_version', ARRAY['text']);
SELECT has_function('eventstore', 'open_appenders', ARRAY[]::name[]);

/*
 * The full argument lists, defaults included, and the result types are part
 * of the API; pg_get_function_* print them independently of the search_path
 * only for types outside it, which is the case here.
 */
SELECT results_eq(
	$$SELECT p.proname::text COLLATE "default",
			 pg_catalog.pg_get_function_arguments(p.oid),
			 pg_catalog.pg_get_function_result(p.oid)
		FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'eventstore'::regnamespace
		 AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
		 AND p.proname !~ '_internal$'
	   ORDER BY 1, 2$$,
	$$VALUES
	  ('ack', 'subscription text, up_to bigint', 'boolean'),
	  ('append',
	   'stream_id text, events eventstore.event_in[], expected_version bigint DEFAULT NULL::bigint, partition_key text DEFAULT NULL::text',
	   'TABLE(event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean)'),
	  ('append',
	   'stream_id text, events jsonb, expected_version bigint DEFAULT NULL::bigint, partition_key text DEFAULT NULL::text',
	   'TABLE(event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean)'),
	  ('append_multi', 'streams jsonb',
	   'TABLE(stream_id text, event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean)'),
	  ('bucket_of', 'partition_key text', 'integer'),
	  ('create_subscription',
	   'name text, start_from text DEFAULT ''beginning''::text, start_position bigint DEFAULT NULL::bigint, start_time timestamp with time zone DEFAULT NULL::timestamp with time zone, event_types text[] DEFAULT NULL::text[], stream_prefix text DEFAULT NULL::text, partition_keys text[] DEFAULT NULL::text[], consumer_group boolean DEFAULT false, owner regrole DEFAULT NULL::regrole, max_attempts integer DEFAULT 5',
	   'bigint'),
	  ('dead_letter_event', 's eventstore.subscriptions, event_position bigint, reason text, retry_after interval', 'eventstore.events'),
	  ('dead_letter_park', 's eventstore.subscriptions, e eventstore.events, reason text, retry_after interval', 'text'),
	  ('dead_letter_positions_check', 'positions bigint[]', 'void'),
	  ('dead_letter_redeliver', 'subscription text, max_count integer, first_buckets integer[], last_buckets integer[]',
	   'SETOF eventstore.recorded_event'),
	  ('dead_letter_settle', 'subscription text, up_to bigint, first_buckets integer[], last_buckets integer[], delivered_xids xid8[]', 'integer'),
	  ('drop_dead_letters', 'subscription text, positions bigint[] DEFAULT NULL::bigint[]', 'integer'),
	  ('drop_subscription', 'name text, if_exists boolean DEFAULT false', 'boolean'),
	  ('event',
	   'event_type text, data jsonb, metadata jsonb DEFAULT NULL::jsonb, event_id uuid DEFAULT gen_random_uuid(), schema_version integer DEFAULT 1',
	   'eventstore.event_in'),
	  ('group_ack', 'subscription text, member text, up_to bigint', 'integer'),
	  ('group_join', 'subscription text, member text, lease interval DEFAULT ''00:00:30''::interval',
	   'TABLE(partition integer, first_bucket integer, last_bucket integer, checkpoint bigint)'),
	  ('group_leave', 'subscription text, member text', 'boolean'),
	  ('group_member_check', 'subscription text, member text', 'void'),
	  ('group_nack', 'subscription text, member text, event_position bigint, reason text, retry_after interval DEFAULT NULL::interval', 'text'),
	  ('group_poll', 'subscription text, member text, max_count integer DEFAULT 1000, wait interval DEFAULT NULL::interval',
	   'SETOF eventstore.recorded_event'),
	  ('head', '', 'bigint'),
	  ('nack', 'subscription text, event_position bigint, reason text, retry_after interval DEFAULT NULL::interval', 'text'),
	  ('open_appenders', '',
	   'TABLE(pid integer, lowest_position bigint, writer_xid xid8, xact_start timestamp with time zone)'),
	  ('open_feed', 'after_position bigint DEFAULT 0, cursor_name text DEFAULT NULL::text, event_types text[] DEFAULT NULL::text[], stream_prefix text DEFAULT NULL::text, partition_keys text[] DEFAULT NULL::text[]',
	   'refcursor'),
	  ('pause_subscription', 'name text, paused boolean DEFAULT true', 'void'),
	  ('poll',
	   'subscription text, max_count integer DEFAULT 1000, after_position bigint DEFAULT NULL::bigint, lock boolean DEFAULT false, wait interval DEFAULT NULL::interval',
	   'SETOF eventstore.recorded_event'),
	  ('read_all', 'after_position bigint DEFAULT 0, max_count integer DEFAULT 1000, event_types text[] DEFAULT NULL::text[], stream_prefix text DEFAULT NULL::text, partition_keys text[] DEFAULT NULL::text[]',
	   'SETOF eventstore.recorded_event'),
	  ('read_all_backwards', 'before_position bigint DEFAULT NULL::bigint, max_count integer DEFAULT 100, event_types text[] DEFAULT NULL::text[], stream_prefix text DEFAULT NULL::text, partition_keys text[] DEFAULT NULL::text[]',
	   'SETOF eventstore.recorded_event'),
	  ('read_stream',
	   'stream_id text, from_stream_order bigint DEFAULT NULL::bigint, max_count integer DEFAULT NULL::integer, backwards boolean DEFAULT false',
	   'SETOF eventstore.recorded_event'),
	  ('replay_dead_letters', 'subscription text, positions bigint[] DEFAULT NULL::bigint[]', 'integer'),
	  ('reset_stats', '', 'void'),
	  ('resume_subscription', 'name text', 'void'),
	  ('signal', 'channel text, payload text DEFAULT NULL::text', 'void'),
	  ('stats_counters', 'OUT appends bigint, OUT events bigint, OUT duplicates bigint, OUT bytes bigint, OUT rolled_back bigint, OUT conflicts bigint, OUT ticks bigint, OUT wakeups bigint, OUT waits bigint, OUT wait_timeouts bigint, OUT stats_reset timestamp with time zone',
	   'record'),
	  ('stream_version', 'stream_id text', 'bigint'),
	  ('subscription_authorize', 'name text, owner regrole, caller regrole', 'void'),
	  ('subscription_feed',
	   'after_positions bigint[], first_buckets integer[], last_buckets integer[], up_to bigint, max_count integer, event_types text[], stream_prefix text, partition_keys text[]',
	   'SETOF eventstore.recorded_event'),
	  ('subscription_matches',
	   'event_types text[], stream_prefix text, partition_keys text[], event_type text, stream_id text, partition_key text',
	   'boolean'),
	  ('subscription_row', 'name text, for_group boolean, lock boolean, writer text, caller regrole', 'eventstore.subscriptions'),
	  ('try_append',
	   'stream_id text, events eventstore.event_in[], expected_version bigint DEFAULT NULL::bigint, partition_key text DEFAULT NULL::text',
	   'TABLE(event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean, outcome text, stream_version bigint)'),
	  ('try_append',
	   'stream_id text, events jsonb, expected_version bigint DEFAULT NULL::bigint, partition_key text DEFAULT NULL::text',
	   'TABLE(event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean, outcome text, stream_version bigint)'),
	  ('try_append_multi', 'streams jsonb',
	   'TABLE(stream_id text, event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean, outcome text, stream_version bigint)'),
	  ('wait_for', 'after_position bigint, timeout interval DEFAULT ''00:00:30''::interval', 'bigint'),
	  ('wait_for_head',
	   'IN after_position bigint, IN timeout interval DEFAULT ''00:00:30''::interval, INOUT head bigint DEFAULT NULL::bigint',
	   NULL)$$,
	'every API function has the documented arguments, defaults and result');

SELECT function_returns('eventstore', 'event',
	ARRAY['text', 'jsonb', 'jsonb', 'uuid', 'integer'], 'eventstore.event_in');
SELECT function_returns('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'], 'setof record');
SELECT function_returns('eventstore', 'read_all', ARRAY['bigint', 'integer', 'text[]', 'text', 'text[]'],
	'setof eventstore.recorded_event');
SELECT function_returns('eventstore', 'head', ARRAY[]::name[], 'bigint');

-- append: the one privileged entry point.
SELECT is_definer('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'],
	'append is SECURITY DEFINER');
SELECT volatility_is('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'], 'volatile');
SELECT isnt_strict('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'],
	'append is CALLED ON NULL INPUT (NULL expected_version means any)');
SELECT function_lang_is('eventstore', 'append',
	ARRAY['text', 'eventstore.event_in[]', 'bigint', 'text'], 'c');
SELECT is_definer('eventstore', 'append', ARRAY['text', 'jsonb', 'bigint', 'text'],
	'append (JSON) is SECURITY DEFINER');
SELECT isnt_strict('eventstore', 'append', ARRAY['text', 'jsonb', 'bigint', 'text'],
	'append (JSON) is CALLED ON NULL INPUT');
SELECT is(
	(SELECT array_agg(DISTINCT pg_catalog.array_to_string(proconfig, ','))
	   FROM pg_catalog.pg_proc
	  WHERE oid IN ('eventstore.append(text, jsonb, bigint, text)'::regprocedure,
					'eventstore.try_append(text, eventstore.event_in[], bigint, text)'::regprocedure,
					'eventstore.try_append(text, jsonb, bigint, text)'::regprocedure,
					'eventstore.append_multi(jsonb)'::regprocedure,
					'eventstore.try_append_multi(jsonb)'::regprocedure)),
	ARRAY['search_path=pg_catalog, pg_temp'],
	'the other writing functions pin their search_path as append does');
SELECT is(
	(SELECT proconfig FROM pg_catalog.pg_proc
	  WHERE oid = 'eventstore.append(text, eventstore.event_in[], bigint, text)'::regprocedure),
	ARRAY['search_path=pg_catalog, pg_temp'],
	'append pins its search_path');
SELECT is(
	(SELECT proparallel::text FROM pg_catalog.pg_proc
	  WHERE oid = 'eventstore.append(text, eventstore.event_in[], bigint, text)'::regprocedure),
	'u',
	'append is PARALLEL UNSAFE');
SELECT is(
	(SELECT pg_catalog.pg_get_userbyid(proowner) FROM pg_catalog.pg_proc
	  WHERE oid = 'eventstore.append(text, eventstore.event_in[], bigint, text)'::regprocedure),
	(SELECT pg_catalog.pg_get_userbyid(extowner) FROM pg_catalog.pg_extension
	  WHERE extname = 'eventstore'),
	'append runs as the owner of the extension');

-- append writes what its callers may not write directly: it runs as the
-- owner, with a pinned search_path.  The subscription entry points do the
-- same through the gate (src/gate.c), which needs them SECURITY INVOKER to
-- see their caller; every other function runs with the caller's rights.
SELECT results_eq(
	$$SELECT p.proname::text COLLATE "default"
		FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'eventstore'::regnamespace AND p.prosecdef
	   ORDER BY 1$$,
	$$VALUES ('append'), ('append'), ('append_multi'), ('try_append'), ('try_append'),
			 ('try_append_multi')$$,
	'exactly the writing functions (append, try_append, their multi-stream forms) are SECURITY DEFINER');
/*
 * Every subscription entry point is the C gate, SECURITY INVOKER, and has an
 * internal function of the same name with "_internal" appended, the same
 * arguments plus the caller (regrole), the same result, SECURITY INVOKER,
 * with a pinned search_path, owned by the extension's owner.
 */
SELECT results_eq(
	$$SELECT p.proname::text COLLATE "default"
		FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'eventstore'::regnamespace
		 AND p.prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'c')
		 AND p.prosrc = 'eventstore_subscription_gate'
		 AND NOT p.prosecdef AND p.proconfig IS NULL
	   ORDER BY 1$$,
	$$VALUES ('ack'), ('create_subscription'), ('drop_dead_letters'), ('drop_subscription'),
			 ('group_ack'), ('group_join'), ('group_leave'), ('group_nack'), ('group_poll'),
			 ('nack'), ('pause_subscription'), ('poll'), ('replay_dead_letters')$$,
	'the subscription entry points are the C gate, SECURITY INVOKER');
SELECT is_empty(
	$$SELECT g.oid::regprocedure
		FROM pg_catalog.pg_proc g
	   WHERE g.pronamespace = 'eventstore'::regnamespace
		 AND g.prosrc = 'eventstore_subscription_gate'
		 AND NOT EXISTS (
			SELECT FROM pg_catalog.pg_proc i
			 WHERE i.pronamespace = g.pronamespace
			   AND i.proname = g.proname || '_internal'
			   AND i.proargtypes::oid[] = g.proargtypes::oid[] || 'regrole'::regtype::oid
			   AND i.prorettype = g.prorettype AND i.proretset = g.proretset
			   AND NOT i.prosecdef
			   AND i.proconfig = ARRAY['search_path=pg_catalog, pg_temp']
			   AND i.proowner = (SELECT extowner FROM pg_catalog.pg_extension
								  WHERE extname = 'eventstore'))$$,
	'every gate has its internal function: same arguments plus the caller, same result, SECURITY INVOKER, pinned search_path, owned by the extension''s owner');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
	   WHERE p.pronamespace = 'eventstore'::regnamespace
		 AND p.prosecdef
		 AND p.proconfig IS DISTINCT FROM ARRAY['search_path=pg_catalog, pg_temp']$$,
	'every SECURITY DEFINER function pins its search_path to pg_catalog, pg_temp');

SELECT volatility_is('eventstore', 'event',
	ARRAY['text', 'jsonb', 'jsonb', 'uuid', 'integer'], 'immutable');
SELECT volatility_is('eventstore', 'bucket_of', ARRAY['text'], 'immutable');
SELECT volatility_is('eventstore', 'head', ARRAY[]::name[], 'volatile');
SELECT volatility_is('eventstore', 'read_all', ARRAY['bigint', 'integer', 'text[]', 'text', 'text[]'], 'volatile');
SELECT volatility_is('eventstore', 'open_feed', ARRAY['bigint', 'text', 'text[]', 'text', 'text[]'], 'volatile');
SELECT volatility_is('eventstore', 'read_stream',
	ARRAY['text', 'bigint', 'integer', 'boolean'], 'stable');
SELECT volatility_is('eventstore', 'stream_version', ARRAY['text'], 'stable');
SELECT volatility_is('eventstore', 'open_appenders', ARRAY[]::name[], 'volatile');
SELECT is_strict('eventstore', 'bucket_of', ARRAY['text']);
SELECT is_strict('eventstore', 'stream_version', ARRAY['text']);
SELECT isnt_strict('eventstore', 'read_all', ARRAY['bigint', 'integer', 'text[]', 'text', 'text[]']);
SELECT isnt_strict('eventstore', 'open_feed', ARRAY['bigint', 'text', 'text[]', 'text', 'text[]']);
SELECT isnt_strict('eventstore', 'read_stream',
	ARRAY['text', 'bigint', 'integer', 'boolean']);

SELECT * FROM finish();
ROLLBACK;
