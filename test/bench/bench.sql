/*
 * test/bench/bench.sql
 *		Helpers of the benchmark suite (schema "bench"), loaded by
 *		test/bench/run.sh into every benchmark database after the extension
 *		and test/bench/baseline.sql.
 *
 *	bench.payload(i), bench.metadata(i)
 *		the event payloads of every workload: data of about 200 bytes and
 *		metadata of about 100 bytes (as JSON text), varying with i; run.sh
 *		spells them out into its pgbench scripts, so both stores always get
 *		the same bytes
 *	bench.make_read_streams(n)
 *		W3's streams r-1 .. r-n with exactly 100 events each, in both
 *		stores, appended round-robin (event 1 of every stream, then event 2,
 *		...) so that a stream's events are spread over the table as they
 *		would be in a live system
 *	bench.catchup(source, target, page)
 *		W4: a consumer catching up from position 0, page by page
 *	bench.pgq_preload(queue, n), bench.pgq_first_tick(queue),
 *	bench.pgq_next_batch(queue, consumer)
 *		W4's PgQ queue: n events ticked into batches of 1,000 (PgQ 3.5,
 *		extension pgq), the tick its consumers start from, and a
 *		consumer's next batch, from the start again past the last one
 *	bench.head_lag(seconds, interval_ms)
 *		W5: samples the head against the newest committed position
 *	bench.es_append_expected(...), bench.plain_append_expected(...)
 *		W7: an append with an exact expected version, retried on conflict
 */

CREATE SCHEMA bench;

CREATE FUNCTION bench.payload(i bigint)
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN format('{"order_id": "ord-%s", "customer_id": "cust-%s", "sku": "SKU-%s-BLUE-XL", '
			  '"quantity": %s, "unit_price": %s, "currency": "EUR", "channel": "web", '
			  '"note": "standard shipping, leave the parcel at the door"}',
			  lpad(i::text, 8, '0'), lpad((i * 7919 % 1000000)::text, 6, '0'),
			  lpad((i % 997)::text, 5, '0'), i % 9 + 1,
			  round((i % 5000) / 100.0 + 1, 2))::jsonb;

CREATE FUNCTION bench.metadata(i bigint)
RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN format('{"correlation_id": "%s", "user": "bench-user-%s", "source": "pgbench"}',
			  md5(i::text)::uuid, i % 100)::jsonb;

/*
 * W3's read streams: r-1 .. r-n, 100 events each, in eventstore and in
 * plain.events, in the same round-robin order.  Returns the events written
 * per store.
 */
CREATE FUNCTION bench.make_read_streams(n int)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
	FOR v IN 1..100 LOOP
		PERFORM eventstore.append('r-' || r,
				ARRAY[eventstore.event('OrderPlaced', bench.payload(v), bench.metadata(r))],
				expected_version => v - 1)
		   FROM generate_series(1, n) r;
		INSERT INTO plain.events (stream_id, version, event_id, event_type, data, metadata)
		SELECT 'r-' || r, v, gen_random_uuid(), 'OrderPlaced', bench.payload(v), bench.metadata(r)
		  FROM generate_series(1, n) r;
	END LOOP;
	RETURN 100::bigint * n;
END
$$;

/*
 * W4: read the global feed from position 0 in pages of `page` events until
 * `target` events were read or the feed ends, as a consumer would (every
 * row is fetched, the last position is remembered).  `source` is
 *	es		eventstore.read_all(last, page)
 *	feed	one cursor from eventstore.open_feed(0), a page per FETCH of
 *			`page` rows (as a client pages it; fetching it row by row
 *			would time PL/pgSQL's FETCH statement, not the read)
 *	events	a plain indexed range scan over the same table, eventstore.events
 *			(no head: what read_all costs beyond the scan itself)
 *	plain	the same range scan over plain.events by its identity key (one
 *			unpartitioned table)
 *	pgq		PgQ's consumer path over the queue "catchup" (bench.pgq_preload):
 *			pgq.next_batch, every row of pgq.get_batch_events,
 *			pgq.finish_batch; a "page" is one batch (1,000 events: one tick
 *			per 1,000 events), and the consumer "bench-catchup" is first
 *			moved to the queue's first tick, so every call reads the same
 *			events
 * Returns the events read, the seconds taken, and the median and 99th
 * percentile of one page call in milliseconds.  Timed with clock_timestamp()
 * inside the server.  Each source but feed's FETCH is a static query, so
 * that its plan is cached as a consumer's would be.
 */
CREATE FUNCTION bench.catchup(source text, target bigint, page int DEFAULT 1000)
RETURNS TABLE (events bigint, seconds float8, p50_ms float8, p99_ms float8)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	last bigint := 0;
	got int;
	r record;
	t0 timestamptz;
	t1 timestamptz;
	calls float8[] := '{}';
	feed refcursor;
	batch bigint;
BEGIN
	IF source NOT IN ('es', 'feed', 'events', 'plain', 'pgq') THEN
		RAISE EXCEPTION 'unknown source "%"', source;
	END IF;
	IF source = 'pgq' THEN
		PERFORM pgq.register_consumer_at('catchup', 'bench-catchup', bench.pgq_first_tick('catchup'));
	END IF;
	events := 0;
	t0 := clock_timestamp();
	IF source = 'feed' THEN
		feed := eventstore.open_feed(0);
	END IF;
	LOOP
		t1 := clock_timestamp();
		got := 0;
		IF source = 'pgq' THEN
			batch := pgq.next_batch('catchup', 'bench-catchup');
			EXIT WHEN batch IS NULL;
			FOR r IN SELECT * FROM pgq.get_batch_events(batch) LOOP
				got := got + 1;
				last := r.ev_id;
			END LOOP;
			PERFORM pgq.finish_batch(batch);
		ELSIF source = 'feed' THEN
			FOR r IN EXECUTE pg_catalog.format('FETCH %s FROM %I', page, feed) LOOP
				got := got + 1;
				last := r.insert_order;
			END LOOP;
		ELSIF source = 'es' THEN
			FOR r IN SELECT * FROM eventstore.read_all(last, page) LOOP
				got := got + 1;
				last := r.insert_order;
			END LOOP;
		ELSIF source = 'events' THEN
			FOR r IN SELECT * FROM eventstore.events e WHERE e.insert_order > last
					  ORDER BY e.insert_order LIMIT page LOOP
				got := got + 1;
				last := r.insert_order;
			END LOOP;
		ELSE
			FOR r IN SELECT * FROM plain.events e WHERE e.id > last
					  ORDER BY e.id LIMIT page LOOP
				got := got + 1;
				last := r.id;
			END LOOP;
		END IF;
		EXIT WHEN got = 0;
		calls := calls || extract(epoch FROM clock_timestamp() - t1)::float8 * 1000;
		events := events + got;
		EXIT WHEN events >= target;
	END LOOP;
	seconds := extract(epoch FROM clock_timestamp() - t0);
	SELECT round(percentile_disc(0.5) WITHIN GROUP (ORDER BY c)::numeric, 3),
		   round(percentile_disc(0.99) WITHIN GROUP (ORDER BY c)::numeric, 3)
	  INTO p50_ms, p99_ms FROM unnest(calls) c;
	RETURN NEXT;
END
$$;

/*
 * W4's PgQ queue: n events into `queue` in transactions of 1,000, each
 * followed by a tick in a transaction of its own, so that every batch a
 * consumer gets holds 1,000 events (the last one the rest).  The queue's
 * ticker_max_count is set to 1 first: pgq.ticker(queue) then ticks whenever
 * there is a new event, whatever the time since the last tick.  No pgqd
 * runs, so nothing else ticks or rotates the queue's tables.  The data and
 * metadata are those of bench.payload(i) and bench.metadata(i), as text in
 * ev_data and ev_extra1.  A procedure: it commits as it goes.
 */
CREATE PROCEDURE bench.pgq_preload(queue text, n bigint)
LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM pgq.set_queue_config(queue, 'ticker_max_count', '1');
	COMMIT;
	FOR b IN 0 .. (n + 999) / 1000 - 1 LOOP
		PERFORM pgq.insert_event(queue, 'OrderPlaced', bench.payload(i)::text,
								 bench.metadata(i)::text, NULL, NULL, NULL)
		   FROM generate_series(b * 1000 + 1, least(n, b * 1000 + 1000)) i;
		COMMIT;
		PERFORM pgq.ticker(queue);
		COMMIT;
	END LOOP;
END
$$;

/* The first tick of a PgQ queue: where its consumers start again. */
CREATE FUNCTION bench.pgq_first_tick(queue text)
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN (SELECT min(t.tick_id) FROM pgq.tick t JOIN pgq.queue q ON q.queue_id = t.tick_queue
			 WHERE q.queue_name = queue);
END
$$;

/*
 * W4c's PgQ consumer: the batch id of the consumer's next batch; when the
 * consumer has read the last batch, it is moved back to the queue's first
 * tick and gets the first batch again, so a client can read for as long as
 * a run lasts.  The consumer must be registered (run.sh does it).
 */
CREATE FUNCTION bench.pgq_next_batch(queue text, consumer text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	batch bigint;
BEGIN
	batch := pgq.next_batch(queue, consumer);
	IF batch IS NULL THEN
		PERFORM pgq.register_consumer_at(queue, consumer, bench.pgq_first_tick(queue));
		batch := pgq.next_batch(queue, consumer);
	END IF;
	RETURN batch;
END
$$;

/*
 * W5: how long a committed event stays invisible to the global feed.
 *
 * Every interval_ms for `seconds` seconds, one sample: the time t, then
 * (in a new snapshot) m = the highest committed insert_order, then
 * h = eventstore.head().  For each sample k where m grew (m_k > m_(k-1)),
 * the event at position m_k committed between t_(k-1) and t_k; its lag is
 * t_j - t_k for the first sample j >= k with h_j >= m_k (0 when the head
 * had already reached it in the same sample).  The figures therefore have
 * the resolution of the sampling interval: the true lag of an event lies
 * within one interval of them.  Samples whose event the head never reached
 * before sampling ended are counted as unresolved.
 *
 * The function runs in one READ COMMITTED transaction that only reads: it
 * takes a new snapshot per statement and holds no position back.
 */
CREATE FUNCTION bench.head_lag(seconds float8, interval_ms int DEFAULT 20)
RETURNS TABLE (samples int, observed int, unresolved int,
			   lag_p50_ms float8, lag_p99_ms float8, lag_max_ms float8)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	t_end timestamptz := clock_timestamp() + seconds * interval '1 second';
	ts timestamptz[] := '{}';
	ms bigint[] := '{}';
	hs bigint[] := '{}';
	t timestamptz;
	m bigint;
	h bigint;
BEGIN
	WHILE clock_timestamp() < t_end LOOP
		t := clock_timestamp();
		SELECT max(e.insert_order) INTO m FROM eventstore.events e;
		h := eventstore.head();
		ts := ts || t;
		ms := ms || coalesce(m, 0);
		hs := hs || h;
		PERFORM pg_sleep(interval_ms / 1000.0);
	END LOOP;

	RETURN QUERY
	WITH s AS (
		SELECT u.t, u.m, u.h, u.k
		  FROM unnest(ts, ms, hs) WITH ORDINALITY AS u(t, m, h, k)
	), grew AS (
		SELECT s.*, s.m > lag(s.m) OVER (ORDER BY s.k) AS new_max FROM s
	), lags AS (
		SELECT extract(epoch FROM
					   (SELECT min(s2.t) FROM s s2 WHERE s2.k >= g.k AND s2.h >= g.m)
					   - g.t)::float8 * 1000 AS lag
		  FROM grew g
		 WHERE g.new_max
	)
	SELECT (SELECT count(*)::int FROM s),
		   count(l.lag)::int,
		   (count(*) - count(l.lag))::int,
		   round(percentile_disc(0.5) WITHIN GROUP (ORDER BY l.lag)::numeric, 1)::float8,
		   round(percentile_disc(0.99) WITHIN GROUP (ORDER BY l.lag)::numeric, 1)::float8,
		   round(max(l.lag)::numeric, 1)::float8
	  FROM lags l;
END
$$;

/*
 * W7: append one event with the stream's exact version: read the version,
 * append with it, and on a version conflict (ES001) read it again and
 * retry, inside the same transaction.  Returns the number of conflicts and
 * raises a NOTICE "bench conflicts: N" when there were any, which run.sh
 * counts in pgbench's output.
 */
CREATE FUNCTION bench.es_append_expected(p_stream text, p_data jsonb, p_metadata jsonb)
RETURNS int
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	conflicts int := 0;
	v bigint;
BEGIN
	LOOP
		v := eventstore.stream_version(p_stream);
		BEGIN
			PERFORM eventstore.append(p_stream,
					ARRAY[eventstore.event('OrderPlaced', p_data, p_metadata)],
					expected_version => v);
			EXIT;
		EXCEPTION WHEN SQLSTATE 'ES001' THEN
			conflicts := conflicts + 1;
		END;
	END LOOP;
	IF conflicts > 0 THEN
		RAISE NOTICE 'bench conflicts: %', conflicts;
	END IF;
	RETURN conflicts;
END
$$;

/*
 * W7's baseline: read max(version), insert version + 1; a unique violation
 * on (stream_id, version) is the conflict, retried the same way.
 */
CREATE FUNCTION bench.plain_append_expected(p_stream text, p_data jsonb, p_metadata jsonb)
RETURNS int
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	conflicts int := 0;
	v bigint;
BEGIN
	LOOP
		SELECT coalesce(max(e.version), 0) INTO v
		  FROM plain.events e WHERE e.stream_id = p_stream;
		BEGIN
			INSERT INTO plain.events (stream_id, version, event_id, event_type, data, metadata)
			VALUES (p_stream, v + 1, gen_random_uuid(), 'OrderPlaced', p_data, p_metadata);
			EXIT;
		EXCEPTION WHEN unique_violation THEN
			conflicts := conflicts + 1;
		END;
	END LOOP;
	IF conflicts > 0 THEN
		RAISE NOTICE 'bench conflicts: %', conflicts;
	END IF;
	RETURN conflicts;
END
$$;
