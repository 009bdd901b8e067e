--
-- Appending: new streams, positions, expected versions, idempotent retries.
--
SET client_min_messages = warning;

-- a new stream: stream orders from 1, positions in batch order
SELECT * FROM eventstore.append('order-1', ARRAY[
	eventstore.event('OrderPlaced', '{"total": 10}', '{"user": "ann"}',
					 '00000000-0000-0000-0000-000000000101'),
	eventstore.event('OrderPaid', '{"amount": 10}', NULL,
					 '00000000-0000-0000-0000-000000000102')]);
SELECT stream_id, partition_key, bucket, version FROM eventstore.streams;
SELECT eventstore.stream_version('order-1'), eventstore.stream_version('no-such-stream');

-- the same batch again, as after a lost acknowledgement: the original result
SELECT * FROM eventstore.append('order-1', ARRAY[
	eventstore.event('OrderPlaced', '{"total": 10}', '{"user": "ann"}',
					 '00000000-0000-0000-0000-000000000101'),
	eventstore.event('OrderPaid', '{"amount": 10}', NULL,
					 '00000000-0000-0000-0000-000000000102')]);

-- a retry keeps working when the first call used an exact expected version
SELECT * FROM eventstore.append('order-2', ARRAY[
	eventstore.event('OrderPlaced', '{}', NULL, '00000000-0000-0000-0000-000000000201')], 0);
SELECT * FROM eventstore.append('order-2', ARRAY[
	eventstore.event('OrderPlaced', '{}', NULL, '00000000-0000-0000-0000-000000000201')], 0);
SELECT * FROM eventstore.append('order-2', ARRAY[
	eventstore.event('OrderShipped', '{}', NULL, '00000000-0000-0000-0000-000000000202')], 1);
SELECT * FROM eventstore.append('order-2', ARRAY[
	eventstore.event('OrderShipped', '{}', NULL, '00000000-0000-0000-0000-000000000202')], 1);

-- expected versions: 0 new, -1 existing, N exact, NULL any
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderPlaced', '{}', NULL, '00000000-0000-0000-0000-000000000301')], -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderPlaced', '{}', NULL, '00000000-0000-0000-0000-000000000301')], 5);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderPlaced', '{}', NULL, '00000000-0000-0000-0000-000000000301')], 0);
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderPaid', '{}', NULL, '00000000-0000-0000-0000-000000000302')], 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderPaid', '{}', NULL, '00000000-0000-0000-0000-000000000302')], -1);
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderShipped', '{}', NULL, '00000000-0000-0000-0000-000000000303')], 1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderShipped', '{}', NULL, '00000000-0000-0000-0000-000000000303')], 2);
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderClosed', '{}', NULL, '00000000-0000-0000-0000-000000000304')]);
SELECT eventstore.stream_version('order-3');

-- mixed batches: stored ids come back as duplicates, new ones are appended
-- after the current version; the expected version is checked as for new
-- events
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderClosed', '{}', NULL, '00000000-0000-0000-0000-000000000304'),
	eventstore.event('OrderArchived', '{}', NULL, '00000000-0000-0000-0000-000000000305')]);
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderArchived', '{}', NULL, '00000000-0000-0000-0000-000000000305'),
	eventstore.event('OrderAudited', '{}', NULL, '00000000-0000-0000-0000-000000000306')], -1);
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderAudited', '{}', NULL, '00000000-0000-0000-0000-000000000306'),
	eventstore.event('OrderNoted', '{}', NULL, '00000000-0000-0000-0000-000000000307')], 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderAudited', '{}', NULL, '00000000-0000-0000-0000-000000000306'),
	eventstore.event('OrderNoted', '{}', NULL, '00000000-0000-0000-0000-000000000307')], 5);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('order-3', ARRAY[
	eventstore.event('OrderAudited', '{}', NULL, '00000000-0000-0000-0000-000000000306'),
	eventstore.event('OrderNoted', '{}', NULL, '00000000-0000-0000-0000-000000000307')], 6);
SELECT stream_order, event_type, event_id FROM eventstore.read_stream('order-3');

-- a failed append stores nothing; its positions are never reused
SELECT count(*) FROM eventstore.events WHERE stream_id = 'order-3';

-- event ids are unique per stream, not across streams
SELECT * FROM eventstore.append('order-4', ARRAY[
	eventstore.event('OrderPlaced', '{}', NULL, '00000000-0000-0000-0000-000000000101')]);

-- partition keys: default is the stream id; a given key fixes the bucket
SELECT * FROM eventstore.append('student-7', ARRAY[
	eventstore.event('ExerciseCompleted', '{"score": 3}', NULL,
					 '00000000-0000-0000-0000-000000000701')],
	NULL, 'school-1');
SELECT * FROM eventstore.append('student-7', ARRAY[
	eventstore.event('ExerciseCompleted', '{"score": 4}', NULL,
					 '00000000-0000-0000-0000-000000000702')],
	NULL, 'school-1');
SELECT * FROM eventstore.append('student-7', ARRAY[
	eventstore.event('ExerciseCompleted', '{"score": 5}', NULL,
					 '00000000-0000-0000-0000-000000000703')]);
SELECT * FROM eventstore.append('student-7', ARRAY[
	eventstore.event('ExerciseCompleted', '{"score": 6}')], NULL, 'school-2');
\echo :LAST_ERROR_SQLSTATE
SELECT stream_id, partition_key, bucket, eventstore.bucket_of('school-1') AS expected_bucket
  FROM eventstore.streams WHERE stream_id = 'student-7';
SELECT DISTINCT tableoid::regclass, partition_key, bucket
  FROM eventstore.events WHERE stream_id = 'student-7';

-- every column as stored
SELECT insert_order, stream_order, stream_id, event_type, schema_version,
	   data, metadata, partition_key, bucket,
	   recorded_at <= now() + interval '1 minute' AS recorded,
	   writer_xid IS NOT NULL AS has_xid
  FROM eventstore.events WHERE stream_id = 'order-1' ORDER BY insert_order;

-- schema_version and metadata travel with the event
SELECT * FROM eventstore.append('order-5', ARRAY[
	eventstore.event('OrderPlaced', '{"v": 2}', '{"trace": "t-1"}',
					 '00000000-0000-0000-0000-000000000501', 2)]);
SELECT event_type, schema_version, data, metadata FROM eventstore.read_stream('order-5');

-- a batch inside a transaction that rolls back leaves nothing behind
BEGIN;
SELECT count(*) FROM eventstore.append('order-6', ARRAY[
	eventstore.event('OrderPlaced', '{}'), eventstore.event('OrderPaid', '{}')]);
ROLLBACK;
SELECT eventstore.stream_version('order-6'),
	   (SELECT count(*) FROM eventstore.events WHERE stream_id = 'order-6') AS events;

-- a savepoint rolled back takes its events with it
BEGIN;
SAVEPOINT a;
SELECT count(*) FROM eventstore.append('order-7', ARRAY[eventstore.event('OrderPlaced', '{}')]);
ROLLBACK TO SAVEPOINT a;
SELECT count(*) FROM eventstore.append('order-7', ARRAY[
	eventstore.event('OrderPlaced', '{}', NULL, '00000000-0000-0000-0000-000000000701')]);
COMMIT;
SELECT stream_order, event_id FROM eventstore.read_stream('order-7');

-- large batches go in one multi-insert
SELECT count(*), min(stream_order), max(stream_order),
	   max(insert_order) - min(insert_order) + 1 AS span,
	   bool_and(NOT duplicate) AS all_new
  FROM eventstore.append('bulk-1',
	   ARRAY(SELECT eventstore.event('Tick', jsonb_build_object('i', i))
			   FROM generate_series(1, 5000) i));
SELECT count(*) FROM eventstore.append('bulk-1',
	   ARRAY(SELECT eventstore.event('Tick', jsonb_build_object('i', i))
			   FROM generate_series(1, 5000) i), 5000);
SELECT eventstore.stream_version('bulk-1');
