--
-- The reads that go below the executor.  read_all in FROM runs as a
-- streaming scan over the partitions' indexes; it returns exactly what the
-- function returns, checks what calling the function checks.  read_all and
-- read_stream read the partitions directly, and fall back to a query
-- where the direct path would bypass something.
--
SELECT count(*)
  FROM generate_series(1, 40) g,
	   LATERAL eventstore.append('feed-' || g,
			ARRAY[eventstore.event('Fed', jsonb_build_object('g', g)),
				  eventstore.event('Fed', jsonb_build_object('g', g, 'second', true))]);
SELECT eventstore.head() AS head \gset
SELECT min(insert_order) - 1 AS base FROM eventstore.events WHERE stream_id LIKE 'feed-%' \gset

-- the plan: a custom scan, without the function call
EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_all(0, 10);
EXPLAIN (COSTS OFF) SELECT insert_order FROM eventstore.read_all(0, 10) WHERE stream_order = 2;
-- not where the call is more than the FROM item: ORDINALITY, ROWS FROM,
-- an argument taken from another FROM item
EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_all(0, 10) WITH ORDINALITY;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM generate_series(1, 3) g, LATERAL eventstore.read_all(g, 2);

EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_stream('feed-1');
EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_stream('feed-1') WITH ORDINALITY;

-- the same rows as the function in the target list (which is never a scan);
-- the whole row of a subquery is built from the scan's columns
EXPLAIN (COSTS OFF)
SELECT string_agg(r::text, ';') FROM (SELECT * FROM eventstore.read_all(0, 50)) r;
SELECT (SELECT string_agg(r::text, ';' ORDER BY r.insert_order)
		  FROM (SELECT * FROM eventstore.read_all(:base, 50)) r)
	 = (SELECT string_agg(r::text, ';' ORDER BY r.insert_order)
		  FROM (SELECT (eventstore.read_all(:base, 50)).*) r) AS same_rows,
	   (SELECT count(*) FROM eventstore.read_all(:base, 50)) AS rows;

SELECT g, (SELECT string_agg(r::text, ';' ORDER BY r.stream_order)
			 FROM (SELECT (eventstore.read_stream('feed-' || g)).*) r)
		= (SELECT string_agg(r::text, ';' ORDER BY r.stream_order)
			 FROM (SELECT * FROM eventstore.read_stream('feed-' || g)) r) AS same_rows
  FROM generate_series(1, 3) g;
SELECT stream_order, data FROM eventstore.read_stream('feed-' || 7, 2, NULL, true);
SELECT stream_order FROM eventstore.read_stream('feed-7', NULL, 1);
SELECT count(*) FROM eventstore.read_stream('no-such-stream');
SELECT * FROM eventstore.read_stream(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_stream('feed-1', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_stream('feed-1', NULL, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_stream('feed-1', backwards => NULL);
\echo :LAST_ERROR_SQLSTATE

-- max_count counts positions read; a filter applies to what was read
SELECT count(*) FROM eventstore.read_all(:base, 10) WHERE stream_order = 2;
-- in position order, up to the head and no further
SELECT bool_and(insert_order > :base AND insert_order <= :head) AS in_range,
	   count(*) = count(DISTINCT insert_order) AS distinct,
	   (array_agg(insert_order) = array_agg(insert_order ORDER BY insert_order)) AS ordered
  FROM eventstore.read_all(:base, 100);
SELECT count(*) FROM eventstore.read_all(:head, 10);

-- rescanned with new arguments: a correlated subquery
SELECT g, (SELECT count(*) FROM eventstore.read_all(:base + g, 3)) AS n,
		  (SELECT min(insert_order) - :base FROM eventstore.read_all(:base + g, 3)) AS first
  FROM generate_series(0, 3) g;
-- rescanned with the same arguments (the inner side of a nested loop):
-- the same rows each time
SET enable_material = off;
EXPLAIN (COSTS OFF)
SELECT g, count(*) FROM generate_series(1, 3) g, eventstore.read_all(:base, 4) r GROUP BY g;
SELECT g, count(*), min(insert_order) - :base AS first
  FROM generate_series(1, 3) g, eventstore.read_all(:base, 4) r GROUP BY g ORDER BY g;
-- ... also when an argument is volatile: it is evaluated once, as the
-- function scan calls the function once, not again at each rescan
CREATE TEMP SEQUENCE scan_arg;
SELECT g, min(insert_order) - :base AS first, count(*)
  FROM generate_series(1, 3) g,
	   eventstore.read_all(:base + nextval('scan_arg'), 1) r GROUP BY g ORDER BY g;
SELECT g, min(stream_order) AS first, count(*)
  FROM generate_series(1, 3) g,
	   eventstore.read_stream('feed-1', nextval('scan_arg') - 1, 1) r GROUP BY g ORDER BY g;
DROP SEQUENCE scan_arg;
RESET enable_material;
-- arguments from an initplan, a join, a cursor read in pieces
SELECT count(*) FROM eventstore.read_all((SELECT :base::bigint), 6);
SELECT count(*) FROM eventstore.read_all(:base, 10) r
  JOIN eventstore.streams s ON s.stream_id = r.stream_id;
BEGIN;
DECLARE c CURSOR FOR SELECT insert_order - :base AS n FROM eventstore.read_all(:base, 5);
FETCH 2 FROM c;
FETCH 10 FROM c;
COMMIT;

-- the arguments are checked by the scan as by the function (02_errors
-- checks them as FROM items, that is the scan): the function here
SELECT * FROM eventstore.read_all(NULL) WITH ORDINALITY;
\echo :LAST_ERROR_SQLSTATE
SELECT (eventstore.read_all(-1)).insert_order;
\echo :LAST_ERROR_SQLSTATE
SELECT (eventstore.read_all(0, 0)).insert_order;
\echo :LAST_ERROR_SQLSTATE
SELECT (eventstore.read_all(0, NULL::integer)).insert_order;
\echo :LAST_ERROR_SQLSTATE

-- EXECUTE on the function is checked as a call would check it
CREATE ROLE es_regress_feed_reader IN ROLE eventstore_reader;
CREATE ROLE es_regress_feed_stranger;
GRANT USAGE ON SCHEMA eventstore TO es_regress_feed_stranger;
GRANT SELECT ON eventstore.events TO es_regress_feed_stranger;
SET ROLE es_regress_feed_stranger;
SELECT count(*) FROM eventstore.read_all(0, 5);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- SELECT on the tables and EXECUTE on the functions without USAGE on the
-- schema, through a view: the reads need USAGE as their queries would
CREATE ROLE es_regress_feed_nousage;
GRANT SELECT ON eventstore.events, eventstore.streams TO es_regress_feed_nousage;
GRANT EXECUTE ON FUNCTION eventstore.read_all(bigint, integer, text[], text, text[]),
	eventstore.read_stream(text, bigint, integer, boolean) TO es_regress_feed_nousage;
CREATE VIEW feed_page AS SELECT * FROM eventstore.read_all(0, 5);
CREATE VIEW stream_page AS SELECT * FROM eventstore.read_stream('feed-1');
GRANT SELECT ON feed_page, stream_page TO es_regress_feed_nousage;
SET ROLE es_regress_feed_nousage;
SELECT count(*) FROM feed_page;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM stream_page;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP VIEW feed_page, stream_page;
REVOKE ALL ON eventstore.events, eventstore.streams FROM es_regress_feed_nousage;
REVOKE ALL ON FUNCTION eventstore.read_all(bigint, integer, text[], text, text[]),
	eventstore.read_stream(text, bigint, integer, boolean) FROM es_regress_feed_nousage;
DROP ROLE es_regress_feed_nousage;

-- A superuser who switched the event trigger off enables row-level
-- security on the log: read_all then reads through a query, and the
-- policy applies (the direct path would see every row).
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
ALTER TABLE eventstore.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY feed_1_only ON eventstore.events FOR SELECT USING (stream_id = 'feed-1');
SET LOCAL ROLE es_regress_feed_reader;
SELECT stream_id, stream_order FROM eventstore.read_all(:base, 100);
SELECT (eventstore.read_all(:base, 100)).stream_id;
SELECT stream_id, stream_order FROM eventstore.read_stream('feed-1');
SELECT count(*) FROM eventstore.read_stream('feed-2');
RESET ROLE;
ROLLBACK;
-- the same for a policy on the streams table: read_stream finds no stream
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
ALTER TABLE eventstore.streams ENABLE ROW LEVEL SECURITY;
CREATE POLICY feed_3_only ON eventstore.streams FOR SELECT USING (stream_id = 'feed-3');
SET LOCAL ROLE es_regress_feed_reader;
SELECT count(*) FROM eventstore.read_stream('feed-3');
SELECT count(*) FROM eventstore.read_stream('feed-4');
RESET ROLE;
ROLLBACK;

-- only some columns granted: the query raises the permission error
BEGIN;
CREATE ROLE es_regress_feed_columns;
GRANT USAGE ON SCHEMA eventstore TO es_regress_feed_columns;
GRANT EXECUTE ON FUNCTION eventstore.read_all(bigint, integer, text[], text, text[]), eventstore.head()
	TO es_regress_feed_columns;
GRANT SELECT (insert_order, stream_id) ON eventstore.events TO es_regress_feed_columns;
GRANT EXECUTE ON FUNCTION eventstore.read_stream(text, bigint, integer, boolean)
	TO es_regress_feed_columns;
GRANT SELECT ON eventstore.streams TO es_regress_feed_columns;
SET LOCAL ROLE es_regress_feed_columns;
SAVEPOINT s;
SELECT count(*) FROM eventstore.read_all(:base, 5);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT count(*) FROM eventstore.read_stream('feed-1');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- the partitions without their insert_order indexes: a query reads instead,
-- and returns the same rows
SELECT array_agg(insert_order) AS before FROM eventstore.read_all(:base, 6) \gset
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
DROP INDEX eventstore.events_insert_order_idx;
SELECT array_agg(insert_order) = :'before' AS same_rows FROM eventstore.read_all(:base, 6);
ROLLBACK;
-- and read_stream without the partitions' primary keys
SELECT array_agg(insert_order) AS before FROM eventstore.read_stream('feed-5') \gset
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
ALTER TABLE eventstore.events DROP CONSTRAINT events_pkey;
SELECT array_agg(insert_order) = :'before' AS same_rows FROM eventstore.read_stream('feed-5');
SELECT stream_order FROM eventstore.read_stream('feed-5', 2, 1, true);
ROLLBACK;

-- read_all replaced by another implementation runs as what it is
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
CREATE OR REPLACE FUNCTION eventstore.read_all(after_position bigint DEFAULT 0,
											   max_count integer DEFAULT 1000,
											   event_types text[] DEFAULT NULL,
											   stream_prefix text DEFAULT NULL,
											   partition_keys text[] DEFAULT NULL)
RETURNS SETOF eventstore.recorded_event
LANGUAGE sql VOLATILE
AS $$ SELECT r.* FROM eventstore.read_stream('feed-9') r $$;
EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_all(0, 10);
SELECT stream_id, stream_order FROM eventstore.read_all(0, 10);
ROLLBACK;
-- ... and so does read_all or read_stream made SECURITY DEFINER or given
-- settings: the scan would run as the caller, without them
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
ALTER FUNCTION eventstore.read_all(bigint, integer, text[], text, text[]) SECURITY DEFINER;
ALTER FUNCTION eventstore.read_stream(text, bigint, integer, boolean) SET work_mem = '1MB';
EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_all(0, 10);
EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_stream('feed-9');
GRANT EXECUTE ON FUNCTION eventstore.read_all(bigint, integer, text[], text, text[]) TO es_regress_feed_stranger;
REVOKE SELECT ON eventstore.events FROM es_regress_feed_stranger;
SET LOCAL ROLE es_regress_feed_stranger;
SELECT count(*) FROM eventstore.read_all(:base, 4);
ROLLBACK;

-- subscription_feed, what poll and group_poll read: the events of bucket
-- ranges after their own positions, up to a given head, filtered as
-- subscription_matches says, in position order.  Compared with the same
-- selection written as a query.
SELECT count(*)
  FROM generate_series(1, 24) g,
	   LATERAL eventstore.append('sf-' || g,
			ARRAY[eventstore.event(CASE WHEN g % 3 = 0 THEN 'X' ELSE 'Y' END, '{}'),
				  eventstore.event('Z', '{}')],
			partition_key => 'k' || (g % 5));
SELECT eventstore.head() AS sfhead \gset
SELECT min(insert_order) - 1 AS sfbase FROM eventstore.events WHERE stream_id LIKE 'sf-%' \gset
CREATE FUNCTION pg_temp.sf_ref(afters bigint[], firsts int[], lasts int[], upto bigint,
							   n int, types text[], prefix text, keys text[])
RETURNS SETOF bigint LANGUAGE sql AS $$
	SELECT e.insert_order
	  FROM eventstore.events e,
		   unnest(afters,
				  coalesce(firsts, array_fill(-2147483648, ARRAY[coalesce(cardinality(afters), 0)])),
				  coalesce(lasts, array_fill(2147483647, ARRAY[coalesce(cardinality(afters), 0)]))) r(a, lo, hi)
	 WHERE e.bucket BETWEEN r.lo AND r.hi AND e.insert_order > r.a AND e.insert_order <= upto
	   AND eventstore.subscription_matches(types, prefix, keys, e.event_type, e.stream_id,
										   e.partition_key)
	 ORDER BY 1 LIMIT n $$;
CREATE TEMP TABLE sf_case (name text, afters bigint[], firsts int[], lasts int[],
						   upto bigint, n int, types text[], prefix text, keys text[]);
INSERT INTO sf_case VALUES
	('whole', ARRAY[:sfbase], NULL, NULL, :sfhead, 100, NULL, NULL, NULL),
	('limit', ARRAY[:sfbase], NULL, NULL, :sfhead, 7, NULL, NULL, NULL),
	('below the head', ARRAY[:sfbase], NULL, NULL, :sfbase + 10, 100, NULL, NULL, NULL),
	('types', ARRAY[:sfbase], NULL, NULL, :sfhead, 100, ARRAY['X', NULL], NULL, NULL),
	('no types', ARRAY[:sfbase], NULL, NULL, :sfhead, 100, '{}', NULL, NULL),
	('prefix', ARRAY[:sfbase], NULL, NULL, :sfhead, 100, NULL, 'sf-1', NULL),
	('keys', ARRAY[:sfbase], NULL, NULL, :sfhead, 100, NULL, NULL, ARRAY['k1', 'k3']),
	('all three', ARRAY[:sfbase], NULL, NULL, :sfhead, 100, ARRAY['Y'], 'sf-', ARRAY['k2']),
	('ranges', ARRAY[:sfbase, :sfbase + 20], ARRAY[0, 512], ARRAY[511, 1023], :sfhead, 100,
	 NULL, NULL, NULL),
	('ranges, filtered, limited', ARRAY[:sfbase + 5, :sfbase, :sfbase + 9],
	 ARRAY[0, 300, 700], ARRAY[299, 699, 1023], :sfhead, 11, ARRAY['Y', 'Z'], NULL, NULL),
	('a range of one bucket', ARRAY[:sfbase],
	 ARRAY[eventstore.bucket_of('k4')], ARRAY[eventstore.bucket_of('k4')], :sfhead, 100,
	 NULL, NULL, NULL),
	('no ranges', '{}', '{}', '{}', :sfhead, 100, NULL, NULL, NULL),
	('no positions', NULL, NULL, NULL, :sfhead, 100, NULL, NULL, NULL);
-- as a scan (a FROM item) and as a function (in the target list)
SELECT c.name,
	   (SELECT count(*) FROM pg_temp.sf_ref(c.afters, c.firsts, c.lasts, c.upto, c.n,
											c.types, c.prefix, c.keys)) AS rows,
	   ARRAY(SELECT e.insert_order
			   FROM eventstore.subscription_feed(c.afters, c.firsts, c.lasts, c.upto, c.n,
												 c.types, c.prefix, c.keys) e)
	   = ARRAY(SELECT pg_temp.sf_ref(c.afters, c.firsts, c.lasts, c.upto, c.n,
									 c.types, c.prefix, c.keys)) AS same_as_scan,
	   ARRAY(SELECT (eventstore.subscription_feed(c.afters, c.firsts, c.lasts, c.upto, c.n,
												  c.types, c.prefix, c.keys)).insert_order)
	   = ARRAY(SELECT pg_temp.sf_ref(c.afters, c.firsts, c.lasts, c.upto, c.n,
									 c.types, c.prefix, c.keys)) AS same_as_function
  FROM sf_case c ORDER BY c.name;
EXPLAIN (COSTS OFF)
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint], NULL, NULL, 10, 10, NULL, NULL, NULL);
-- the same rows through its query, when the partitions cannot be read directly
CREATE TEMP TABLE sf_direct AS
SELECT c.name, ARRAY(SELECT e.insert_order
					   FROM eventstore.subscription_feed(c.afters, c.firsts, c.lasts, c.upto,
														 c.n, c.types, c.prefix, c.keys) e) AS rows
  FROM sf_case c;
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
DROP INDEX eventstore.events_insert_order_idx;
SELECT c.name,
	   ARRAY(SELECT e.insert_order
			   FROM eventstore.subscription_feed(c.afters, c.firsts, c.lasts, c.upto, c.n,
												 c.types, c.prefix, c.keys) e) = d.rows AS same_rows
  FROM sf_case c JOIN sf_direct d USING (name) ORDER BY c.name;
ROLLBACK;
-- bad arguments
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint], NULL, NULL, NULL, 10, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint], NULL, NULL, 10, 0, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.subscription_feed(ARRAY[-1::bigint], NULL, NULL, 10, 10, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint, NULL], NULL, NULL, 10, 10, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint], ARRAY[0], NULL, 10, 10, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint], ARRAY[0, 1], ARRAY[1, 2], 10, 10, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint], ARRAY[5], ARRAY[4], 10, 10, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.subscription_feed(ARRAY[0::bigint], NULL, NULL, 10, 10, ARRAY[['X'], ['Y']], NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
-- granted to nobody: a reader may not call it, as a scan or as a function
SET ROLE es_regress_feed_reader;
SELECT count(*) FROM eventstore.subscription_feed(ARRAY[0::bigint], NULL, NULL, 10, 10, NULL, NULL, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT (eventstore.subscription_feed(ARRAY[0::bigint], NULL, NULL, 10, 10, NULL, NULL, NULL)).insert_order;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

DROP ROLE es_regress_feed_reader;
REVOKE ALL ON eventstore.events FROM es_regress_feed_stranger;
REVOKE ALL ON SCHEMA eventstore FROM es_regress_feed_stranger;
DROP ROLE es_regress_feed_stranger;
