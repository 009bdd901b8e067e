--
-- The extension's objects, as CREATE EXTENSION makes them.
--
SELECT extname, extversion, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'eventstore';

-- eight partitions by default, each an equal range of the 1024 buckets
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bounds
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'eventstore.events'::regclass
 ORDER BY c.relname;

-- every unique key starts with the bucket
SELECT indexrelid::regclass, indisunique, pg_get_indexdef(indexrelid)
  FROM pg_index WHERE indrelid = 'eventstore.events'::regclass
 ORDER BY 1::text;

-- the data tables and the position sequence are dumped with the database
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS cfg(oid)
  JOIN pg_class c ON c.oid = cfg.oid
 WHERE e.extname = 'eventstore'
 ORDER BY 1;

-- functions: volatility, strictness, security
SELECT p.oid::regprocedure, p.provolatile, p.proisstrict, p.prosecdef,
	   p.proparallel, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'eventstore'::regnamespace
 ORDER BY p.oid::regprocedure::text;

-- roles and grants
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname LIKE 'eventstore\_%' ORDER BY 1;
SELECT has_schema_privilege('public', 'eventstore', 'USAGE') AS public_usage,
	   has_function_privilege('eventstore_reader',
			'eventstore.append(text, eventstore.event_in[], bigint, text)', 'EXECUTE') AS reader_append,
	   has_function_privilege('eventstore_writer',
			'eventstore.append(text, eventstore.event_in[], bigint, text)', 'EXECUTE') AS writer_append,
	   has_table_privilege('eventstore_writer', 'eventstore.events', 'INSERT') AS writer_insert,
	   has_table_privilege('eventstore_reader', 'eventstore.events', 'SELECT') AS reader_select;

-- the partition count is read from eventstore.partitions at CREATE EXTENSION
CREATE DATABASE es_regress_parts;
\c es_regress_parts
SET eventstore.partitions = 4;
CREATE EXTENSION eventstore;
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bounds
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'eventstore.events'::regclass
 ORDER BY c.relname;
SELECT count(*) FROM eventstore.append('s', ARRAY[eventstore.event('A', '{}')]);
\c contrib_regression
DROP DATABASE es_regress_parts;
