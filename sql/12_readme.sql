--
-- The README's examples of subscriptions and consumer groups, with the same
-- calls and arguments (only results that vary from run to run, such as
-- checkpoints and positions, are shown as facts about them), on a store
-- that has no subscriptions yet.
--
SELECT count(*) AS subscriptions FROM eventstore.subscriptions;
SELECT count(*)
  FROM generate_series(1, 3) g,
	   LATERAL eventstore.append('readme-order-' || g, ARRAY[
			eventstore.event('OrderPlaced', jsonb_build_object('total', g)),
			eventstore.event('OrderPaid', jsonb_build_object('total', g)),
			eventstore.event('OrderShipped', '{}')]);

-- Durable subscriptions
CREATE ROLE billing_service IN ROLE eventstore_reader;
CREATE ROLE auditor IN ROLE eventstore_reader;
SELECT eventstore.create_subscription('billing',
    event_types => ARRAY['OrderPlaced', 'OrderPaid'], owner => 'billing_service') >= 0 AS created;
SELECT eventstore.create_subscription('audit', start_from => 'head', owner => 'auditor')
	= eventstore.head() AS at_head;
SELECT eventstore.create_subscription('since-monday', start_time => '2026-11-23') >= 0 AS created;

SELECT stream_id, event_type, data
  FROM (SELECT insert_order, stream_id, event_type, data
		  FROM eventstore.poll('billing', max_count => 100)) p
 ORDER BY insert_order;
SELECT eventstore.ack('billing', max(insert_order))    -- here: all that poll returned
  FROM eventstore.poll('billing', max_count => 100) HAVING count(*) > 0;
SELECT count(*) AS left_to_poll FROM eventstore.poll('billing', max_count => 100);

-- exactly once: the read model and the acknowledgement in one transaction
SELECT count(*)
  FROM generate_series(4, 5) g,
	   LATERAL eventstore.append('readme-order-' || g, ARRAY[
			eventstore.event('OrderPlaced', jsonb_build_object('total', g))]);
CREATE TABLE order_activity (order_id text PRIMARY KEY, events int NOT NULL);  -- a read model
BEGIN;
WITH batch AS (SELECT * FROM eventstore.poll('billing', 100, lock => true)),  -- locks the subscription
     applied AS (INSERT INTO order_activity AS a
                 SELECT stream_id, count(*) FROM batch GROUP BY stream_id
                 ON CONFLICT (order_id) DO UPDATE SET events = a.events + excluded.events)
SELECT eventstore.ack('billing', max(insert_order)) FROM batch HAVING count(*) > 0;
COMMIT;
SELECT * FROM order_activity ORDER BY order_id;
SELECT checkpoint = (SELECT max(insert_order) FROM eventstore.events
					  WHERE stream_id LIKE 'readme-order-%') AS acknowledged_all
  FROM eventstore.subscriptions WHERE name = 'billing';
-- nothing new: HAVING leaves nothing to acknowledge (ack would refuse NULL)
SELECT eventstore.ack('billing', max(insert_order))
  FROM eventstore.poll('billing', 100, lock => true) HAVING count(*) > 0;

-- Consumer groups
TRUNCATE order_activity;
CREATE ROLE denormaliser IN ROLE eventstore_reader;  -- the members connect as roles granted it
SELECT eventstore.create_subscription('denormaliser', consumer_group => true,
    owner => 'denormaliser');

SELECT count(*) AS partitions_held
  FROM eventstore.group_join('denormaliser', 'worker-1', lease => '30 seconds');
BEGIN;
WITH batch AS (SELECT * FROM eventstore.group_poll('denormaliser', 'worker-1', 500)),
     applied AS (INSERT INTO order_activity AS a        -- process, write the read model
                 SELECT stream_id, count(*) FROM batch GROUP BY stream_id
                 ON CONFLICT (order_id) DO UPDATE SET events = a.events + excluded.events)
SELECT eventstore.group_ack('denormaliser', 'worker-1', max(insert_order)) > 0 AS moved
  FROM batch HAVING count(*) > 0;
COMMIT;
-- the read model counts exactly the events acknowledged, partition by partition
SELECT (SELECT sum(events) FROM order_activity)
	 = (SELECT count(*) FROM eventstore.events e
		  JOIN eventstore.subscription_partitions p
			ON p.subscription = 'denormaliser'
		   AND e.bucket BETWEEN p.first_bucket AND p.last_bucket
		   AND e.insert_order <= p.checkpoint) AS read_model_matches_checkpoints,
	   (SELECT count(*) FROM order_activity) > 0 AS processed_some;
SELECT eventstore.group_leave('denormaliser', 'worker-1');

DROP TABLE order_activity;
SELECT eventstore.drop_subscription(name) FROM eventstore.subscriptions
 WHERE name IN ('billing', 'audit', 'since-monday', 'denormaliser') ORDER BY name;
DROP ROLE billing_service, auditor, denormaliser;
