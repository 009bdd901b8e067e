--
-- Category and filtered reads: read_all and open_feed with a filter (event
-- types, stream id prefix, partition keys: what a subscription's means),
-- and read_all_backwards, newest first.  Each is compared with the same
-- question asked of eventstore.events directly.
--
SELECT count(*)
  FROM generate_series(1, 60) g,
	   LATERAL eventstore.append(
			(ARRAY['fr-order-', 'fr-customer-', 'fr-ord-'])[1 + g % 3] || g,
			ARRAY[eventstore.event((ARRAY['Placed', 'Paid', 'Shipped'])[1 + g % 2], '{}'),
				  eventstore.event((ARRAY['Placed', 'Paid', 'Shipped'])[1 + (g + 1) % 3], '{}')],
			partition_key => CASE WHEN g % 4 = 0 THEN 'tenant-' || (g % 3) END);
SELECT min(insert_order) - 1 AS base FROM eventstore.events
 WHERE stream_id ~ '^fr-(order|customer|ord)-\d+$' \gset

CREATE TEMP TABLE filters (n int, event_types text[], stream_prefix text, partition_keys text[]);
INSERT INTO filters VALUES
	(1, NULL, NULL, NULL),
	(2, ARRAY['Placed'], NULL, NULL),
	(3, ARRAY['Paid', 'Shipped'], NULL, NULL),
	(4, NULL, 'fr-order-', NULL),
	(5, NULL, 'fr-ord', NULL),
	(6, NULL, NULL, ARRAY['tenant-0']),
	(7, NULL, NULL, ARRAY['tenant-1', 'tenant-2', 'fr-order-1']),
	(8, ARRAY['Shipped'], 'fr-customer-', ARRAY['tenant-0', 'tenant-1', 'tenant-2']),
	(9, ARRAY['NoSuchType'], NULL, NULL),
	(10, NULL, 'fr-order-%', NULL);

-- what each filter should return: the log's events, in order
CREATE TEMP VIEW expected AS
	SELECT f.n, e.insert_order
	  FROM filters f, eventstore.events e
	 WHERE e.insert_order > :base
	   AND eventstore.subscription_matches(f.event_types, f.stream_prefix, f.partition_keys,
										   e.event_type, e.stream_id, e.partition_key);

-- read_all in FROM (the streaming scan) and as a function, whole
SELECT f.n,
	   (SELECT count(*) FROM expected x WHERE x.n = f.n) AS expected,
	   (SELECT array_agg(r.insert_order ORDER BY r.insert_order)
		  FROM eventstore.read_all(:base, 1000, f.event_types, f.stream_prefix, f.partition_keys) r)
	   IS NOT DISTINCT FROM
	   (SELECT array_agg(x.insert_order ORDER BY x.insert_order) FROM expected x WHERE x.n = f.n)
		 AS scan_same,
	   (SELECT array_agg(r.insert_order)
		  FROM (SELECT (eventstore.read_all(:base, 1000, f.event_types, f.stream_prefix,
											f.partition_keys)).*) r)
	   IS NOT DISTINCT FROM
	   (SELECT array_agg(x.insert_order ORDER BY x.insert_order) FROM expected x WHERE x.n = f.n)
		 AS function_same
  FROM filters f ORDER BY f.n;
EXPLAIN (COSTS OFF) SELECT * FROM eventstore.read_all(0, 10, ARRAY['Paid'], 'fr-order-', ARRAY['x']);

-- paged: 7 at a time from the last position returned, until a page is empty
CREATE FUNCTION paged(f filters, page int) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
	pos bigint := (SELECT min(insert_order) - 1 FROM eventstore.events
				   WHERE stream_id ~ '^fr-(order|customer|ord)-\d+$');
	got bigint[] := '{}';
	last bigint;
BEGIN
	LOOP
		SELECT max(r.insert_order), got || array_agg(r.insert_order ORDER BY r.insert_order)
		  INTO last, got
		  FROM eventstore.read_all(pos, page, f.event_types, f.stream_prefix, f.partition_keys) r;
		EXIT WHEN last IS NULL;
		pos := last;
	END LOOP;
	RETURN got;
END
$$;
SELECT f.n, paged(f, 7) = COALESCE((SELECT array_agg(x.insert_order ORDER BY x.insert_order)
									  FROM expected x WHERE x.n = f.n), '{}') AS paged_same
  FROM filters f ORDER BY f.n;

-- through the query read_all falls back to (row-level security enabled by
-- a superuser with the event trigger off): the same rows, the policy applied
BEGIN;
ALTER EVENT TRIGGER eventstore_guard_ddl DISABLE;
ALTER TABLE eventstore.events ENABLE ROW LEVEL SECURITY;
CREATE POLICY not_ord ON eventstore.events FOR SELECT USING (stream_id NOT LIKE 'fr-ord-%');
CREATE ROLE es_regress_filter_reader IN ROLE eventstore_reader;
GRANT SELECT ON filters, expected TO es_regress_filter_reader;
SET LOCAL ROLE es_regress_filter_reader;
SELECT f.n,
	   (SELECT array_agg(r.insert_order ORDER BY r.insert_order)
		  FROM eventstore.read_all(:base, 1000, f.event_types, f.stream_prefix, f.partition_keys) r)
	   IS NOT DISTINCT FROM
	   (SELECT array_agg(x.insert_order ORDER BY x.insert_order)
		  FROM expected x JOIN eventstore.events e USING (insert_order)
		 WHERE x.n = f.n AND e.stream_id NOT LIKE 'fr-ord-%') AS fallback_same
  FROM filters f ORDER BY f.n;
RESET ROLE;
ROLLBACK;

-- open_feed with a filter: the same events, streamed by the cursor
BEGIN;
SELECT eventstore.open_feed(:base, 'filtered', ARRAY['Paid'], 'fr-customer-') AS cursor;
CREATE TEMP TABLE fetched AS SELECT 0::bigint AS insert_order WHERE false;
DO $$
DECLARE
	c refcursor := 'filtered';
	r eventstore.recorded_event;
BEGIN
	LOOP
		FETCH c INTO r;
		EXIT WHEN NOT FOUND;
		INSERT INTO fetched VALUES (r.insert_order);
	END LOOP;
END
$$;
SELECT (SELECT count(*) FROM fetched) AS fetched,
	   (SELECT array_agg(insert_order ORDER BY insert_order) FROM fetched)
	 = (SELECT array_agg(e.insert_order ORDER BY e.insert_order) FROM eventstore.events e
		 WHERE e.insert_order > :base AND e.event_type = 'Paid' AND e.stream_id LIKE 'fr-customer-%')
	   AS open_feed_same;
COMMIT;

-- backwards from the head: the newest first, pages below a position
SELECT f.n,
	   (SELECT array_agg(r.insert_order)
		  FROM eventstore.read_all_backwards(NULL, 5, f.event_types, f.stream_prefix,
											  f.partition_keys) r)
	   IS NOT DISTINCT FROM
	   (SELECT array_agg(x.insert_order ORDER BY x.insert_order DESC)
		  FROM (SELECT * FROM expected x WHERE x.n = f.n ORDER BY x.insert_order DESC LIMIT 5) x)
		 AS newest_same
  FROM filters f ORDER BY f.n;
SELECT (SELECT array_agg(r.insert_order - :base)
		  FROM eventstore.read_all_backwards(:base + 10, 3) r) AS below_11;
SELECT count(*) FROM eventstore.read_all_backwards(1);
-- never above the head: an append in flight holds it back
SELECT eventstore.head() AS head \gset
SELECT max(insert_order) = :head AS newest_is_head FROM eventstore.read_all_backwards(NULL, 1);

-- the library under an older definition with fewer arguments (an install
-- script from before the filters): no filter, no crash
BEGIN;
CREATE FUNCTION old_read_all(bigint, integer) RETURNS SETOF eventstore.recorded_event
	AS '$libdir/eventstore', 'eventstore_read_all' LANGUAGE C VOLATILE;
CREATE FUNCTION old_open_feed(bigint, text) RETURNS refcursor
	AS '$libdir/eventstore', 'eventstore_open_feed' LANGUAGE C VOLATILE;
SELECT array_agg(insert_order - :base) AS old_read_all FROM old_read_all(:base, 3);
SELECT old_open_feed(:base, 'old');
MOVE FORWARD 5 IN old;
ROLLBACK;

-- bad filters and arguments
SELECT * FROM eventstore.read_all(0, 10, ARRAY[]::text[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all(0, 10, NULL, NULL, ARRAY[NULL]::text[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all(0, 10, ARRAY[['a'], ['b']]);
\echo :LAST_ERROR_SQLSTATE
SELECT (eventstore.read_all(0, 10, NULL, NULL, ARRAY[]::text[])).insert_order;
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.open_feed(0, NULL, ARRAY['a', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all_backwards(NULL, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all_backwards(0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all_backwards(NULL, 10, ARRAY[]::text[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.read_all_backwards(NULL, 10, NULL, NULL, ARRAY[['a'], ['b']]);
\echo :LAST_ERROR_SQLSTATE
DROP FUNCTION paged(filters, int);
