--
-- Subscriptions: durable checkpoints, filters, poll and ack, consumer
-- groups, lag, signals, and who may do what.
--
-- Positions depend on what earlier files appended, so they are shown
-- relative to marks taken here: "base" is the head before this file's
-- events, "#n" the n-th event this file appends.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE TEMP TABLE marks AS SELECT eventstore.head() AS base;
SELECT eventstore.head() AS base \gset
CREATE TEMP TABLE ev (n int, insert_order bigint, stream_id text,
	stream_order bigint, event_type text, partition_key text);
CREATE FUNCTION pg_temp.pos(p bigint) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN p IS NULL THEN NULL
				WHEN p = (SELECT base FROM marks) THEN 'base'
				WHEN p IN (SELECT insert_order FROM ev)
				THEN '#' || (SELECT n FROM ev WHERE insert_order = p)
				ELSE p::text END
$$;
-- Ticks are written by a background worker a few milliseconds after the
-- head moves: wait until one records the current head.
CREATE FUNCTION pg_temp.wait_for_tick() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	target bigint := eventstore.head();
BEGIN
	FOR i IN 1..3000 LOOP
		IF EXISTS (SELECT FROM eventstore.ticks t WHERE t.head >= target) THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.01);
	END LOOP;
	RETURN false;
END
$$;

--
-- create_subscription
--
-- from the beginning (checkpoint 0), from the head, from a position
SELECT eventstore.create_subscription('from_beginning');
SELECT eventstore.create_subscription('from_head', 'head') = :base AS at_head;
SELECT eventstore.create_subscription('from_position', start_position => 5);
-- a time before every tick and every event: all events
SELECT eventstore.create_subscription('from_past', start_time =>
		least((SELECT min(recorded_at) FROM eventstore.events),
			  (SELECT min(ticked_at) FROM eventstore.ticks)) - interval '1 second')
	= (SELECT min(insert_order) - 1 FROM eventstore.events) AS before_first_event;
-- a time in the future is refused: which events become visible after it is
-- not known yet (the head would start it early)
SELECT pg_temp.wait_for_tick();
SELECT eventstore.create_subscription('from_future',
		start_time => now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
-- filters: event types, a stream id prefix, partition keys
SELECT eventstore.create_subscription('placed', 'head',
		event_types => ARRAY['OrderPlaced', 'CartOpened']) = :base AS at_head;
SELECT eventstore.create_subscription('orders', 'head',
		stream_prefix => 'sub-order-') = :base AS at_head;
SELECT eventstore.create_subscription('tenant_a', 'head',
		partition_keys => ARRAY['tenant-a']) = :base AS at_head;
SELECT eventstore.create_subscription('combined', 'head',
		event_types => ARRAY['OrderPlaced'], stream_prefix => 'sub-order-',
		partition_keys => ARRAY['tenant-a', 'tenant-e']) = :base AS at_head;
-- a consumer group: one row per partition of the log, the buckets split
-- evenly without gap or overlap
SELECT eventstore.create_subscription('workers', 'head', consumer_group => true) = :base AS at_head;
SELECT partition, first_bucket, last_bucket, pg_temp.pos(checkpoint) AS checkpoint,
	   member, polled_to
  FROM eventstore.subscription_partitions WHERE subscription = 'workers'
 ORDER BY partition;
SELECT count(*) AS partitions, min(first_bucket), max(last_bucket),
	   sum(last_bucket - first_bucket + 1) AS buckets,
	   bool_and(first_bucket = COALESCE(prev_last + 1, 0)) AS contiguous
  FROM (SELECT first_bucket, last_bucket,
			   lag(last_bucket) OVER (ORDER BY first_bucket) AS prev_last
		  FROM eventstore.subscription_partitions
		 WHERE subscription = 'workers') p;
-- each belongs to the role that created it
SELECT name, owner::text = current_user AS by_creator, pg_temp.pos(checkpoint) AS checkpoint,
	   consumer_group, event_types, stream_prefix, partition_keys, paused, acked_at
  FROM eventstore.subscriptions ORDER BY name;

-- a name is taken once
SELECT eventstore.create_subscription('orders');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('orders', consumer_group => true);
\echo :LAST_ERROR_SQLSTATE

-- bad arguments
SELECT eventstore.create_subscription(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', consumer_group => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription(repeat('n', 201));
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', start_position => 1, start_time => now());
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', start_position => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', start_position => eventstore.head() + 1);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', 'end');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', event_types => ARRAY[]::text[]);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', event_types => ARRAY['A', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', partition_keys => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', partition_keys => ARRAY[NULL]::text[]);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', event_types => ARRAY[['A'], ['B']]);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', partition_keys => '{{a,b},{c,d}}');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', owner => '-');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('bad', owner => 'es_regress_no_such_role');
\echo :LAST_ERROR_SQLSTATE
-- the longest name
SELECT eventstore.create_subscription(repeat('n', 200), 'head') = :base AS at_head;
SELECT eventstore.drop_subscription(repeat('n', 200));
SELECT count(*) FROM eventstore.subscriptions WHERE name = 'bad' OR name LIKE 'nnn%';

--
-- The events this file reads: streams with a prefix, partition keys in
-- partitions 1 and 2 (tenant-c, tenant-a) and 4 and 7 (tenant-d, tenant-e)
-- of the eight
--
SELECT k, eventstore.bucket_of(k), eventstore.bucket_of(k) / 128 AS partition
  FROM unnest(ARRAY['tenant-a', 'tenant-c', 'tenant-d', 'tenant-e']) k;
SELECT count(*) FROM eventstore.append('sub-order-1', ARRAY[
	eventstore.event('OrderPlaced', '{}'), eventstore.event('OrderPaid', '{}')],
	0, 'tenant-a');
SELECT count(*) FROM eventstore.append('sub-order-2', ARRAY[
	eventstore.event('OrderPlaced', '{}')], 0, 'tenant-d');
SELECT count(*) FROM eventstore.append('sub-cart-1', ARRAY[
	eventstore.event('CartOpened', '{}'), eventstore.event('CartClosed', '{}')],
	0, 'tenant-c');
SELECT count(*) FROM eventstore.append('sub-order-3', ARRAY[
	eventstore.event('OrderPlaced', '{}'), eventstore.event('OrderShipped', '{}')],
	0, 'tenant-e');
SELECT count(*) FROM eventstore.append('sub-order-2', ARRAY[
	eventstore.event('OrderPaid', '{}')], 1);
SELECT count(*) FROM eventstore.append('sub-order-1', ARRAY[
	eventstore.event('OrderShipped', '{}')], 2);
INSERT INTO ev
SELECT row_number() OVER (ORDER BY insert_order), insert_order, stream_id,
	   stream_order, event_type, partition_key
  FROM eventstore.read_all(:base);
SELECT n, stream_id, stream_order, event_type, partition_key FROM ev ORDER BY n;
SELECT eventstore.head() = (SELECT max(insert_order) FROM ev) AS head_at_last;

--
-- poll
--
-- after the checkpoint, up to the head, in position order, at most max_count
SELECT pg_temp.pos(insert_order), stream_id, stream_order, event_type
  FROM eventstore.poll('from_head');
SELECT pg_temp.pos(insert_order), stream_id, stream_order, event_type
  FROM eventstore.poll('from_head', 3);
SELECT pg_temp.pos(insert_order), stream_id, stream_order, event_type
  FROM eventstore.poll('from_head', 3,
					   (SELECT insert_order FROM ev WHERE n = 3));
-- a poll does not move the checkpoint by itself
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'from_head';
-- the beginning: the whole log from its first event
SELECT stream_id, stream_order, event_type FROM eventstore.poll('from_beginning', 3);
SELECT count(*) = (SELECT count(*) FROM eventstore.events) AS all_events
  FROM eventstore.poll('from_beginning', 1000000);
SELECT count(*) = (SELECT count(*) FROM eventstore.events) AS all_events
  FROM eventstore.poll('from_past', 1000000);
SELECT count(*) = (SELECT count(*) FROM eventstore.events WHERE insert_order > 5)
	   AS after_5
  FROM eventstore.poll('from_position', 1000000);
-- each filter
SELECT pg_temp.pos(insert_order), stream_id, event_type FROM eventstore.poll('placed');
SELECT pg_temp.pos(insert_order), stream_id, event_type FROM eventstore.poll('orders');
SELECT pg_temp.pos(insert_order), stream_id, event_type, partition_key
  FROM eventstore.poll('tenant_a');
SELECT pg_temp.pos(insert_order), stream_id, event_type, partition_key
  FROM eventstore.poll('combined');
SELECT pg_temp.pos(insert_order), stream_id, event_type
  FROM eventstore.poll('placed', 2, (SELECT insert_order FROM ev WHERE n = 3));

-- a time between two events: the events that became visible after it
SELECT pg_temp.wait_for_tick();
SELECT clock_timestamp() AS between_time \gset
SELECT count(*) FROM eventstore.append('sub-late-1', ARRAY[
	eventstore.event('Late', '{}')], 0, 'tenant-c');
INSERT INTO ev SELECT 10, insert_order, stream_id, stream_order, event_type, partition_key
  FROM eventstore.read_all((SELECT max(insert_order) FROM ev));
SELECT pg_temp.pos(eventstore.create_subscription('from_between',
		start_time => :'between_time'));
SELECT pg_temp.pos(insert_order), stream_id FROM eventstore.poll('from_between');
-- a time in the future, right after an append: refused as well
SELECT count(*) FROM eventstore.append('sub-late-2', ARRAY[
	eventstore.event('Late', '{}')], 0, 'tenant-c');
INSERT INTO ev SELECT 11, insert_order, stream_id, stream_order, event_type, partition_key
  FROM eventstore.read_all((SELECT max(insert_order) FROM ev));
SELECT eventstore.create_subscription('from_future_2',
		start_time => clock_timestamp() + interval '1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.subscriptions WHERE name LIKE 'from_future%';
SELECT eventstore.drop_subscription('from_between');

-- paused: nothing; resumed: again
SELECT eventstore.pause_subscription('from_head');
SELECT paused FROM eventstore.subscriptions WHERE name = 'from_head';
SELECT count(*) FROM eventstore.poll('from_head');
SELECT eventstore.pause_subscription('from_head');
SELECT eventstore.resume_subscription('from_head');
SELECT paused FROM eventstore.subscriptions WHERE name = 'from_head';
SELECT count(*) FROM eventstore.poll('from_head');
SELECT eventstore.pause_subscription('from_head', true);
SELECT eventstore.pause_subscription('from_head', false);
SELECT count(*) FROM eventstore.poll('from_head');

-- an empty filtered range moves the checkpoint to the head, but not when
-- the caller asked for events after a later position (those before it are
-- not acknowledged yet)
SELECT eventstore.create_subscription('shipped_only', start_from => 'head',
		event_types => ARRAY['OrderShipped']) = eventstore.head() AS at_head;
SELECT count(*) FROM eventstore.append('sub-order-4', ARRAY[
	eventstore.event('OrderPlaced', '{}')], 0, 'tenant-a');
INSERT INTO ev SELECT 12, insert_order, stream_id, stream_order, event_type, partition_key
  FROM eventstore.read_all((SELECT max(insert_order) FROM ev));
SELECT count(*) FROM eventstore.poll('shipped_only', 10, (SELECT insert_order FROM ev WHERE n = 12));
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'shipped_only';
SELECT count(*) FROM eventstore.poll('shipped_only', 10, (SELECT insert_order FROM ev WHERE n = 11));
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'shipped_only';
SELECT count(*) FROM eventstore.poll('shipped_only');
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'shipped_only';
-- a range with matching events is not skipped
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'orders';
SELECT count(*) FROM eventstore.poll('orders', 1);
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'orders';
-- nor is it skipped while paused
SELECT eventstore.pause_subscription('placed');
SELECT count(*) FROM eventstore.append('sub-order-5', ARRAY[
	eventstore.event('OrderPaid', '{}')], 0, 'tenant-a');
INSERT INTO ev SELECT 13, insert_order, stream_id, stream_order, event_type, partition_key
  FROM eventstore.read_all((SELECT max(insert_order) FROM ev));
SELECT eventstore.ack('placed', (SELECT insert_order FROM ev WHERE n = 12));
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'placed';
SELECT count(*) FROM eventstore.poll('placed');
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'placed';
SELECT eventstore.resume_subscription('placed');
SELECT count(*) FROM eventstore.poll('placed');
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'placed';

-- bad arguments, unknown subscriptions, a group polled as a plain one
SELECT * FROM eventstore.poll('no_such_subscription');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.poll(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.poll('from_head', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.poll('from_head', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.poll('from_head', 10, -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.poll('workers');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.ack('workers', :base);
\echo :LAST_ERROR_SQLSTATE

--
-- ack
--
SELECT eventstore.ack('from_head', (SELECT insert_order FROM ev WHERE n = 3));
SELECT pg_temp.pos(checkpoint), acked_at IS NOT NULL AS acked
  FROM eventstore.subscriptions WHERE name = 'from_head';
SELECT pg_temp.pos(insert_order), stream_id, stream_order, event_type
  FROM eventstore.poll('from_head', 2);
-- already there, or beyond: false, the checkpoint stays
SELECT eventstore.ack('from_head', (SELECT insert_order FROM ev WHERE n = 3));
SELECT eventstore.ack('from_head', (SELECT insert_order FROM ev WHERE n = 1));
SELECT eventstore.ack('from_head', 0);
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'from_head';
-- the head itself, but nothing above it (the message names the position)
\set VERBOSITY sqlstate
SELECT eventstore.ack('from_head', eventstore.head() + 1);
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.ack('from_head', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.ack('from_head', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.ack('no_such_subscription', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.ack('from_head', eventstore.head());
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'from_head';
SELECT count(*) FROM eventstore.poll('from_head');

-- exactly once: poll, process and acknowledge in one transaction
CREATE TABLE sub_processed (insert_order bigint PRIMARY KEY, stream_id text,
							event_type text);
BEGIN;
INSERT INTO sub_processed
SELECT insert_order, stream_id, event_type FROM eventstore.poll('orders', 2, lock => true);
SELECT eventstore.ack('orders', (SELECT max(insert_order) FROM sub_processed));
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'orders';
ROLLBACK;
-- rolled back: no rows, the checkpoint where it was, the same events again
SELECT count(*) FROM sub_processed;
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'orders';
BEGIN;
INSERT INTO sub_processed
SELECT insert_order, stream_id, event_type FROM eventstore.poll('orders', 2, lock => true);
SELECT eventstore.ack('orders', (SELECT max(insert_order) FROM sub_processed));
COMMIT;
SELECT pg_temp.pos(insert_order), stream_id, event_type FROM sub_processed ORDER BY 1;
SELECT pg_temp.pos(checkpoint) FROM eventstore.subscriptions WHERE name = 'orders';
-- the next batch continues after it
BEGIN;
INSERT INTO sub_processed
SELECT insert_order, stream_id, event_type FROM eventstore.poll('orders', 2, lock => true);
SELECT eventstore.ack('orders', (SELECT max(insert_order) FROM sub_processed));
COMMIT;
SELECT pg_temp.pos(insert_order), stream_id, event_type FROM sub_processed ORDER BY 1;
DROP TABLE sub_processed;

--
-- drop, pause and resume
--
SELECT eventstore.drop_subscription('from_position');
SELECT eventstore.drop_subscription('from_position');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.drop_subscription('from_position', if_exists => true);
SELECT eventstore.drop_subscription('from_position', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.drop_subscription(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.drop_subscription(NULL, true);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.pause_subscription('from_position');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.resume_subscription('from_position');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.pause_subscription('from_head', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.pause_subscription(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.resume_subscription(NULL);
\echo :LAST_ERROR_SQLSTATE

--
-- Consumer groups, as one session sees them
--
-- the first member takes every partition
SELECT partition, first_bucket, last_bucket, pg_temp.pos(checkpoint)
  FROM eventstore.group_join('workers', 'm1');
-- a second one gets none until the first gives some back at its heartbeat
SELECT * FROM eventstore.group_join('workers', 'm2');
SELECT count(*) FROM eventstore.group_poll('workers', 'm2');
SELECT partition FROM eventstore.group_join('workers', 'm1');
SELECT partition FROM eventstore.group_join('workers', 'm2');
SELECT member, count(*) FROM eventstore.subscription_partitions
 WHERE subscription = 'workers' GROUP BY member ORDER BY member;
SELECT member, lease_until > now() AS live FROM eventstore.subscription_members
 WHERE subscription = 'workers' ORDER BY member;
-- a member polls the events of its partitions' buckets only, in position order
SELECT pg_temp.pos(e.insert_order), e.stream_id, e.event_type, e.partition_key,
	   (SELECT p.member FROM eventstore.subscription_partitions p
		 WHERE p.subscription = 'workers'
		   AND eventstore.bucket_of(e.partition_key) BETWEEN p.first_bucket AND p.last_bucket)
	   AS owner
  FROM eventstore.group_poll('workers', 'm1') e;
SELECT pg_temp.pos(e.insert_order), e.stream_id, e.event_type, e.partition_key,
	   (SELECT p.member FROM eventstore.subscription_partitions p
		 WHERE p.subscription = 'workers'
		   AND eventstore.bucket_of(e.partition_key) BETWEEN p.first_bucket AND p.last_bucket)
	   AS owner
  FROM eventstore.group_poll('workers', 'm2') e;
-- the events of both members are the group's events, each once
SELECT (SELECT count(*) FROM eventstore.group_poll('workers', 'm1'))
	 + (SELECT count(*) FROM eventstore.group_poll('workers', 'm2'))
	 = (SELECT count(*) FROM ev) AS all_once;
-- polled with a limit: what the poll covered, per partition
SELECT pg_temp.pos(insert_order), stream_id, event_type
  FROM eventstore.group_poll('workers', 'm2', 1);
SELECT partition, member, pg_temp.pos(checkpoint) AS checkpoint,
	   pg_temp.pos(polled_to) AS polled_to
  FROM eventstore.subscription_partitions WHERE subscription = 'workers'
 ORDER BY partition;
-- an ack moves that member's partitions, and no further than its poll went
SELECT eventstore.group_ack('workers', 'm2', eventstore.head());
SELECT partition, member, pg_temp.pos(checkpoint) AS checkpoint, acked_at IS NOT NULL AS acked
  FROM eventstore.subscription_partitions WHERE subscription = 'workers'
 ORDER BY partition;
SELECT eventstore.group_ack('workers', 'm2', eventstore.head());
SELECT pg_temp.pos(insert_order), stream_id, event_type
  FROM eventstore.group_poll('workers', 'm2', 2);
SELECT eventstore.group_ack('workers', 'm2', (SELECT insert_order FROM ev WHERE n = 6));
SELECT partition, pg_temp.pos(checkpoint) AS checkpoint, pg_temp.pos(polled_to) AS polled_to
  FROM eventstore.subscription_partitions WHERE subscription = 'workers' AND member = 'm2'
 ORDER BY partition;
-- m1 polls everything it has; then m2 leaves and m1 takes its partitions:
-- those were claimed after the poll and keep their checkpoints at m1's ack
SELECT count(*) FROM eventstore.group_poll('workers', 'm1');
SELECT eventstore.group_leave('workers', 'm2');
SELECT member, count(*) FROM eventstore.subscription_partitions
 WHERE subscription = 'workers' GROUP BY member ORDER BY member;
SELECT partition FROM eventstore.group_join('workers', 'm1');
SELECT eventstore.group_ack('workers', 'm1', eventstore.head());
SELECT partition, member, pg_temp.pos(checkpoint) AS checkpoint, pg_temp.pos(polled_to) AS polled_to
  FROM eventstore.subscription_partitions WHERE subscription = 'workers'
 ORDER BY partition;
-- m1's next poll has m2's unacknowledged events (none while the group is
-- paused); once they are acknowledged every partition is at the head
SELECT eventstore.pause_subscription('workers');
SELECT count(*) FROM eventstore.group_poll('workers', 'm1');
SELECT eventstore.resume_subscription('workers');
SELECT pg_temp.pos(insert_order), stream_id, event_type
  FROM eventstore.group_poll('workers', 'm1');
SELECT eventstore.group_ack('workers', 'm1', eventstore.head());
SELECT count(*) FROM eventstore.group_poll('workers', 'm1');
SELECT bool_and(checkpoint = eventstore.head()) AS at_head
  FROM eventstore.subscription_partitions WHERE subscription = 'workers';
-- leaving frees the partitions at once
SELECT eventstore.group_leave('workers', 'm1');
SELECT count(*) AS held FROM eventstore.subscription_partitions
 WHERE subscription = 'workers' AND member IS NOT NULL;
SELECT count(*) AS members FROM eventstore.subscription_members WHERE subscription = 'workers';

-- members without a lease: never joined, left, or expired
SELECT * FROM eventstore.group_poll('workers', 'm1');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_ack('workers', 'nobody', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.group_join('workers', 'm3', '1 minute');
UPDATE eventstore.subscription_members SET lease_until = now() - interval '1 second'
 WHERE subscription = 'workers' AND member = 'm3';
SELECT * FROM eventstore.group_poll('workers', 'm3');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_ack('workers', 'm3', :base);
\echo :LAST_ERROR_SQLSTATE
-- the next member to join drops it and takes its partitions
SELECT count(*) FROM eventstore.group_join('workers', 'm4');
SELECT member, count(*) FROM eventstore.subscription_partitions
 WHERE subscription = 'workers' GROUP BY member ORDER BY member;
SELECT member FROM eventstore.subscription_members WHERE subscription = 'workers';
-- an expired member that joins again is a member again
SELECT count(*) FROM eventstore.group_join('workers', 'm3');
SELECT count(*) FROM eventstore.group_poll('workers', 'm3');

-- bad arguments; plain subscriptions have no groups
SELECT * FROM eventstore.group_join('workers', 'm5', '999 milliseconds');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join('workers', 'm5', '1 day 1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join('workers', 'm5', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join('workers', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join('workers', '');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join('no_such_subscription', 'm5');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join('from_head', 'm5');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_poll('from_head', 'm5');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_ack('from_head', 'm5', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_leave('from_head', 'm5');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join(NULL, 'm5');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_join('workers', repeat('m', 201));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_poll('workers', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_ack('workers', NULL, 1);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_leave('workers', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_poll('workers', 'm4', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_ack('workers', 'm4', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_ack('workers', 'm4', -1);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.subscription_members WHERE member = 'm5';

--
-- subscription_lag
--
SELECT pg_temp.wait_for_tick();
SELECT name, consumer_group, paused, pg_temp.pos(checkpoint) AS checkpoint,
	   head = eventstore.head() AS at_head, events_behind,
	   CASE WHEN events_behind = 0 THEN seconds_behind = 0
			ELSE seconds_behind > 0 END AS seconds_ok,
	   live_members, acked_at IS NOT NULL AS acked
  FROM eventstore.subscription_lag
 WHERE name <> ALL (ARRAY['from_beginning', 'from_past'])
 ORDER BY name;
SELECT name, checkpoint = 0 AS from_zero,
	   events_behind = (SELECT count(*) FROM eventstore.events) AS all_events,
	   seconds_behind > 0 AS seconds_ok
  FROM eventstore.subscription_lag
 WHERE name = ANY (ARRAY['from_beginning', 'from_past'])
 ORDER BY name;
-- caught up: a poll that finds nothing moves the checkpoint of a filtered
-- subscription to the head
SELECT count(*) FROM eventstore.poll('shipped_only');
SELECT pg_temp.pos(checkpoint) AS checkpoint, head = eventstore.head() AS at_head,
	   events_behind, seconds_behind
  FROM eventstore.subscription_lag WHERE name = 'shipped_only';
-- a group's checkpoint is its lowest partition's, and the events behind are
-- counted from there
SELECT count(*) FROM eventstore.group_join('workers', 'm4');
SELECT count(*) FROM eventstore.group_join('workers', 'm3');
SELECT member, count(*) FROM eventstore.subscription_partitions
 WHERE subscription = 'workers' GROUP BY member ORDER BY member;
SELECT count(*) FROM eventstore.append('sub-order-3', ARRAY[
	eventstore.event('OrderClosed', '{}')], 2);
SELECT count(*) FROM eventstore.append('sub-cart-1', ARRAY[
	eventstore.event('CartReopened', '{}')], 2);
INSERT INTO ev
SELECT 13 + row_number() OVER (ORDER BY insert_order), insert_order, stream_id,
	   stream_order, event_type, partition_key
  FROM eventstore.read_all((SELECT max(insert_order) FROM ev));
SELECT pg_temp.pos(insert_order), stream_id, event_type
  FROM eventstore.group_poll('workers', 'm3');
SELECT eventstore.group_ack('workers', 'm3', eventstore.head());
-- an empty poll moves the member's checkpoints to the head by itself
SELECT count(*) FROM eventstore.append('sub-cart-1', ARRAY[
	eventstore.event('CartClosed', '{}')], 3);
INSERT INTO ev SELECT 16, insert_order, stream_id, stream_order, event_type, partition_key
  FROM eventstore.read_all((SELECT max(insert_order) FROM ev));
SELECT count(*) FROM eventstore.group_poll('workers', 'm3');
SELECT partition, member, pg_temp.pos(checkpoint) AS checkpoint
  FROM eventstore.subscription_partitions WHERE subscription = 'workers'
 ORDER BY partition;
SELECT name, pg_temp.pos(checkpoint) AS checkpoint, events_behind, live_members
  FROM eventstore.subscription_lag WHERE name = 'workers';

--
-- signal
--
SELECT eventstore.signal('typing.room-1', 'ann');
SELECT eventstore.signal('Room_2:presence');
SELECT eventstore.signal(repeat('c', 63), '');
SELECT eventstore.signal('has space');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal('quote"d');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal('semi;colon');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal(repeat('c', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal('');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal('eventstore', '1');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal('big', repeat('p', 8000));
\echo :LAST_ERROR_SQLSTATE

--
-- Who may do what.  A subscription belongs to its owner role: roles with
-- that role's privileges consume it, and admins manage and use every
-- subscription; others are refused with 42501 whatever EXECUTE they hold.
-- Writers also signal.
--
CREATE ROLE es_regress_owner IN ROLE eventstore_reader;
CREATE ROLE es_regress_member IN ROLE es_regress_owner;
CREATE ROLE es_regress_other IN ROLE eventstore_reader;
CREATE ROLE es_regress_writer IN ROLE eventstore_writer;
CREATE ROLE es_regress_admin IN ROLE eventstore_admin;
SELECT eventstore.group_leave('workers', 'm3'), eventstore.group_leave('workers', 'm4');
-- an admin creates subscriptions for the owner role, and owns the one it
-- creates without naming an owner (SET ROLE counts, not the session user)
SET ROLE es_regress_admin;
SELECT eventstore.create_subscription('owned', 'head', owner => 'es_regress_owner')
	= eventstore.head() AS at_head;
SELECT eventstore.create_subscription('owned_group', 'head', consumer_group => true,
		owner => 'es_regress_owner') = eventstore.head() AS at_head;
SELECT eventstore.create_subscription('admins', 'head') = eventstore.head() AS at_head;
RESET ROLE;
SELECT name, owner, pg_typeof(owner) FROM eventstore.subscriptions
 WHERE name IN ('owned', 'owned_group', 'admins') ORDER BY name;
SELECT count(*) FROM eventstore.append('sub-owned-1', ARRAY[
	eventstore.event('Owned', '{}'), eventstore.event('Owned', '{}')], 0, 'tenant-a');

-- a member of the owner role consumes, but creates, drops, pauses and
-- resumes nothing, and cannot write the tables
SET ROLE es_regress_member;
SELECT count(*) FROM eventstore.poll('owned');
SELECT eventstore.ack('owned', eventstore.head());
SELECT count(*) FROM eventstore.group_join('owned_group', 'r1');
SELECT count(*) FROM eventstore.group_poll('owned_group', 'r1');
SELECT eventstore.group_ack('owned_group', 'r1', eventstore.head());
SELECT eventstore.group_leave('owned_group', 'r1');
SELECT name, events_behind FROM eventstore.subscription_lag WHERE name = 'owned';
SELECT eventstore.create_subscription('by_reader');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.drop_subscription('owned');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.pause_subscription('owned');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.resume_subscription('owned');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.signal('typing');
\echo :LAST_ERROR_SQLSTATE
UPDATE eventstore.subscriptions SET checkpoint = 0;
\echo :LAST_ERROR_SQLSTATE
-- nor what belongs to another role
SELECT count(*) FROM eventstore.poll('admins');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- another reader may do nothing with them: not skip the owner's events,
-- not read through them, not join under any name, not make a member leave
SELECT count(*) FROM eventstore.append('sub-owned-2', ARRAY[
	eventstore.event('Owned', '{}'), eventstore.event('Owned', '{}')], 0, 'tenant-a');
SELECT count(*) FROM eventstore.group_join('owned_group', 'r1');
SET ROLE es_regress_other;
SELECT eventstore.ack('owned', eventstore.head());
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.poll('owned');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.poll('owned', lock => true);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.group_join('owned_group', 'r1');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.group_join('owned_group', 'intruder');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.group_poll('owned_group', 'r1');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_ack('owned_group', 'r1', eventstore.head());
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_leave('owned_group', 'r1');
\echo :LAST_ERROR_SQLSTATE
-- errors that need no subscription come first; a missing one is missing
SELECT eventstore.ack('owned', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.poll('no_such_subscription');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE es_regress_writer;
SELECT eventstore.signal('typing', 'writer');
SELECT eventstore.create_subscription('by_writer');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eventstore.poll('owned');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- nothing moved: the checkpoint is behind the two new events, the member
-- still holds its partitions
SELECT name, events_behind FROM eventstore.subscription_lag
 WHERE name IN ('owned', 'owned_group') ORDER BY name;
SELECT member, count(*) FROM eventstore.subscription_partitions
 WHERE subscription = 'owned_group' GROUP BY member ORDER BY member;
SELECT member FROM eventstore.subscription_members WHERE subscription = 'owned_group';

-- admins use and change every subscription
SET ROLE es_regress_admin;
SELECT stream_id, stream_order FROM eventstore.poll('owned');
SELECT eventstore.ack('owned', eventstore.head());
SELECT eventstore.group_leave('owned_group', 'r1');
SELECT eventstore.pause_subscription('owned');
SELECT eventstore.resume_subscription('owned');
SELECT eventstore.drop_subscription('owned'), eventstore.drop_subscription('owned_group'),
	   eventstore.drop_subscription('admins');
RESET ROLE;
DROP ROLE es_regress_owner, es_regress_member, es_regress_other, es_regress_writer,
	es_regress_admin;

-- acknowledgements need a read-write transaction; group_ack refuses a
-- position above the head, as ack does
SELECT count(*) FROM eventstore.group_join('workers', 'm9');
\set VERBOSITY sqlstate
SELECT eventstore.group_ack('workers', 'm9', eventstore.head() + 1);
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
BEGIN READ ONLY;
SELECT eventstore.group_ack('workers', 'm9', eventstore.head());
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN READ ONLY;
SELECT count(*) FROM eventstore.group_join('workers', 'm9');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT eventstore.create_subscription('read_only_ack');
BEGIN READ ONLY;
SELECT eventstore.ack('read_only_ack', 0);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN READ ONLY;
SELECT eventstore.pause_subscription('read_only_ack');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN READ ONLY;
SELECT eventstore.drop_subscription('read_only_ack');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;

-- dropping a subscription drops its partitions and members
SELECT eventstore.drop_subscription(name) FROM eventstore.subscriptions ORDER BY name;
SELECT (SELECT count(*) FROM eventstore.subscriptions) AS subscriptions,
	   (SELECT count(*) FROM eventstore.subscription_partitions) AS partitions,
	   (SELECT count(*) FROM eventstore.subscription_members) AS members;
