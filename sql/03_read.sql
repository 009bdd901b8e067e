--
-- Reading: the global feed, the head, single streams.
--

-- nobody is appending: the head is at or above the last stored position
-- (failed appends use positions too; they are never handed out again)
SELECT eventstore.head() >= (SELECT max(insert_order) FROM eventstore.events) AS head_at_last;
SELECT count(*) = (SELECT count(*) FROM eventstore.events) AS all_visible
  FROM eventstore.read_all(0, 1000000);

-- paging through the feed: each page starts after the last position seen
CREATE TEMP TABLE seen (insert_order bigint);
DO $$
DECLARE
	last bigint := 0;
	page bigint;
BEGIN
	LOOP
		INSERT INTO seen SELECT r.insert_order FROM eventstore.read_all(last, 7) r;
		GET DIAGNOSTICS page = ROW_COUNT;
		EXIT WHEN page = 0;
		SELECT max(insert_order) INTO last FROM seen;
	END LOOP;
END
$$;
SELECT count(*) AS seen, count(DISTINCT insert_order) AS distinct_seen,
	   (SELECT count(*) FROM eventstore.events) AS stored
  FROM seen;

-- read_all returns events in position order, with every column
SELECT insert_order, stream_id, stream_order, event_type, schema_version, data,
	   metadata, partition_key
  FROM eventstore.read_all(0, 4);
SELECT count(*) FROM eventstore.read_all(eventstore.head(), 10);

-- open_feed: a cursor over the same rows as read_all, up to the head
BEGIN;
SELECT eventstore.open_feed(0, 'feed');
CREATE TEMP TABLE fed (n serial, insert_order bigint, stream_id text, stream_order bigint);
DO $$
DECLARE
	feed refcursor := 'feed';
	r record;
BEGIN
	LOOP
		FETCH feed INTO r;
		EXIT WHEN NOT FOUND;
		INSERT INTO fed (insert_order, stream_id, stream_order)
			VALUES (r.insert_order, r.stream_id, r.stream_order);
	END LOOP;
END
$$;
SELECT count(*) AS fed, bool_and(f.insert_order = a.insert_order
								 AND f.stream_id = a.stream_id
								 AND f.stream_order = a.stream_order) AS same_rows
  FROM fed f
  FULL JOIN (SELECT row_number() OVER (ORDER BY insert_order) AS n, *
			   FROM eventstore.read_all(0, 1000000)) a ON a.n = f.n;
CLOSE feed;
-- after a position, with a name chosen by the server; at the head it is empty
CREATE FUNCTION pg_temp.fetched(c refcursor) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint := 0;
	r record;
BEGIN
	LOOP
		FETCH c INTO r;
		EXIT WHEN NOT FOUND;
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;
SELECT eventstore.open_feed((SELECT insert_order FROM eventstore.events
							 ORDER BY insert_order DESC OFFSET 2 LIMIT 1)) AS cursor_name \gset
SELECT :'cursor_name' LIKE '<unnamed portal %>' AS server_named,
	   pg_temp.fetched(:'cursor_name') AS fetched;
SELECT pg_temp.fetched(eventstore.open_feed(eventstore.head())) AS fetched_at_head;
COMMIT;

-- read_stream: forwards, from a version, limited, backwards
SELECT stream_order, event_type FROM eventstore.read_stream('order-3');
SELECT stream_order, event_type FROM eventstore.read_stream('order-3', 3);
SELECT stream_order, event_type FROM eventstore.read_stream('order-3', 2, 2);
SELECT stream_order, event_type FROM eventstore.read_stream('order-3', NULL, 2, true);
SELECT stream_order, event_type FROM eventstore.read_stream('order-3', 4, NULL, true);
SELECT count(*) FROM eventstore.read_stream('no-such-stream');
SELECT count(*) FROM eventstore.read_stream('order-3', 100);

-- a stream read touches only the stream's partition: read_stream passes the
-- stream's bucket to this query, which prunes to one partition both as a
-- custom plan and as a generic plan (at executor start)
PREPARE read_stream_query(integer, text, bigint, bigint) AS
	SELECT insert_order, stream_id, stream_order, event_id, event_type,
		   schema_version, data, metadata, recorded_at, partition_key
	  FROM eventstore.events
	 WHERE bucket = $1 AND stream_id = $2 AND stream_order >= $3
	 ORDER BY stream_order LIMIT $4;
SET plan_cache_mode = force_custom_plan;
EXPLAIN (COSTS OFF) EXECUTE read_stream_query(487, 'student-7', 1, NULL);
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE read_stream_query(487, 'student-7', 1, NULL);
RESET plan_cache_mode;
DEALLOCATE read_stream_query;

-- the bucket function is FNV-1a 32-bit modulo 1024 (test vectors)
SELECT k, eventstore.bucket_of(k)
  FROM unnest(ARRAY['', 'a', 'foobar', 'school-1', 'student-7', 'Zürich']) k;

-- the appenders view is empty when nobody appends
SELECT count(*) FROM eventstore.appenders;

-- an open append shows up there and holds the head back, for this backend's
-- own later reads too
BEGIN;
SELECT eventstore.head() AS head_before \gset
SELECT insert_order AS open_position
  FROM eventstore.append('open-1', ARRAY[eventstore.event('A', '{}')]) \gset
SELECT pid = pg_backend_pid() AS mine, lowest_position = :open_position AS lowest
  FROM eventstore.appenders;
SELECT eventstore.head() = :open_position - 1 AS held_back;
SELECT count(*) FROM eventstore.read_all(:head_before);
COMMIT;
SELECT eventstore.head() >= :open_position AS released;
SELECT stream_id FROM eventstore.read_all(:head_before);
SELECT count(*) FROM eventstore.appenders;

-- REPEATABLE READ: the head of the snapshot, fixed for the transaction
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT eventstore.head() AS rr_head \gset
SELECT count(*) FROM eventstore.read_all(0, 1000000) r WHERE r.insert_order > :rr_head;
SELECT eventstore.head() = :rr_head AS stable;
COMMIT;
