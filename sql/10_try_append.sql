--
-- try_append: append, with a wrong expected version returned as data.  One
-- row per input event: append's columns, the outcome ("appended",
-- "duplicate", "conflict") and the stream's version (after the append; the
-- actual one on a conflict).  Nothing is written on a conflict.
--
SELECT stream_order, duplicate, outcome, stream_version
  FROM eventstore.try_append('try-1', ARRAY[
	eventstore.event('A', '{}', NULL, 'c0000000-0000-4000-8000-000000000001'),
	eventstore.event('B', '{}', NULL, 'c0000000-0000-4000-8000-000000000002')], 0);
-- the stream exists: expected 0 is a conflict, with its actual version
SELECT event_id, stream_order, insert_order, duplicate, outcome, stream_version
  FROM eventstore.try_append('try-1', ARRAY[
	eventstore.event('C', '{}', NULL, 'c0000000-0000-4000-8000-000000000003')], 0);
-- the right version
SELECT stream_order, outcome, stream_version
  FROM eventstore.try_append('try-1', '[{"type": "C", "data": {},
	"id": "c0000000-0000-4000-8000-000000000003"}]'::jsonb, 2);
-- a stale version: conflict, the stream and its row unchanged
SELECT version AS v, updated_at AS t FROM eventstore.streams WHERE stream_id = 'try-1' \gset
SELECT outcome, stream_version
  FROM eventstore.try_append('try-1', '[{"type": "D", "data": {}}]'::jsonb, 2);
SELECT version = :v AS same_version, updated_at = :'t' AS same_updated_at,
	   (SELECT count(*) FROM eventstore.read_stream('try-1')) AS events
  FROM eventstore.streams WHERE stream_id = 'try-1';
-- a batch the stream holds entirely: its original result, whatever the version
SELECT stream_order, duplicate, outcome, stream_version
  FROM eventstore.try_append('try-1', ARRAY[
	eventstore.event('A', '{}', NULL, 'c0000000-0000-4000-8000-000000000001'),
	eventstore.event('B', '{}', NULL, 'c0000000-0000-4000-8000-000000000002')], 7);
-- partly held: the new events are checked against the version
SELECT stream_order, duplicate, outcome, stream_version
  FROM eventstore.try_append('try-1', ARRAY[
	eventstore.event('A', '{}', NULL, 'c0000000-0000-4000-8000-000000000001'),
	eventstore.event('E', '{}', NULL, 'c0000000-0000-4000-8000-000000000005')], 7);
SELECT stream_order, duplicate, outcome, stream_version
  FROM eventstore.try_append('try-1', ARRAY[
	eventstore.event('A', '{}', NULL, 'c0000000-0000-4000-8000-000000000001'),
	eventstore.event('E', '{}', NULL, 'c0000000-0000-4000-8000-000000000005')], 3);
-- a stream that does not exist: expected -1 or N > 0 is a conflict at version 0,
-- and the stream is not created
SELECT outcome, stream_version, stream_order IS NULL AS no_position
  FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}]'::jsonb, -1);
SELECT outcome, stream_version
  FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}]'::jsonb, 5);
SELECT count(*) FROM eventstore.streams WHERE stream_id = 'try-new';
-- no expected version: appended
SELECT outcome, stream_version
  FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}, {"type": "B", "data": {}}]'::jsonb);
-- a conflict does not abort the transaction: the caller can go on
BEGIN;
SELECT outcome FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}]'::jsonb, 1);
SELECT outcome, stream_version
  FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}]'::jsonb, 2);
COMMIT;
SELECT stream_order, event_type FROM eventstore.read_stream('try-new');
-- every other error is raised, as append raises it
SELECT * FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}]'::jsonb,
									partition_key => 'other');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.try_append('try-new', '[{"type": "A"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.try_append(NULL, '[{"type": "A", "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}]'::jsonb, -2);
\echo :LAST_ERROR_SQLSTATE
BEGIN TRANSACTION READ ONLY;
SELECT * FROM eventstore.try_append('try-new', '[{"type": "A", "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- writers may call it, readers may not
CREATE ROLE es_regress_try_writer IN ROLE eventstore_writer;
CREATE ROLE es_regress_try_reader IN ROLE eventstore_reader;
SET ROLE es_regress_try_writer;
SELECT outcome FROM eventstore.try_append('try-role', '[{"type": "T", "data": {}}]'::jsonb, 0);
SET ROLE es_regress_try_reader;
SELECT * FROM eventstore.try_append('try-role', '[{"type": "T", "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE es_regress_try_writer, es_regress_try_reader;
