--
-- append_multi: several streams in one call, all or nothing, each with its
-- own expected version and partition key; streams without events are checks
-- of their versions.  try_append_multi returns what did not match instead of
-- raising.
--
SELECT stream_id, stream_order, duplicate,
	   insert_order - min(insert_order) OVER () AS offset_in_call
  FROM eventstore.append_multi('[
	{"stream_id": "multi-b", "expected_version": 0,
	 "events": [{"type": "B1", "data": {}}, {"type": "B2", "data": {}}]},
	{"stream_id": "multi-a", "partition_key": "tenant-1",
	 "events": [{"type": "A1", "data": {"n": 1}, "id": "d0000000-0000-4000-8000-000000000001"}]}
  ]'::jsonb);
SELECT stream_id, partition_key, version FROM eventstore.streams
 WHERE stream_id LIKE 'multi-%' ORDER BY stream_id;
-- a write and a check: "multi-a must still be at version 1"
SELECT stream_id, event_id IS NULL AS is_check, stream_order
  FROM eventstore.append_multi('[
	{"stream_id": "multi-b", "expected_version": 2, "events": [{"type": "B3", "data": {}}]},
	{"stream_id": "multi-a", "expected_version": 1}
  ]'::jsonb);
-- every stream whose version does not match is named, and nothing is written
SELECT * FROM eventstore.append_multi('[
	{"stream_id": "multi-a", "expected_version": 5, "events": [{"type": "A2", "data": {}}]},
	{"stream_id": "multi-b", "expected_version": 3, "events": [{"type": "B4", "data": {}}]},
	{"stream_id": "multi-c", "expected_version": 2},
	{"stream_id": "multi-d", "expected_version": -1, "events": [{"type": "D1", "data": {}}]}
  ]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT stream_id, version FROM eventstore.streams WHERE stream_id LIKE 'multi-%' ORDER BY 1;
SELECT count(*) FROM eventstore.read_stream('multi-b');
-- idempotent per stream: a retry returns the stored events as duplicates
SELECT stream_id, stream_order, duplicate
  FROM eventstore.append_multi('[
	{"stream_id": "multi-a", "expected_version": 0,
	 "events": [{"type": "A1", "data": {"n": 1}, "id": "d0000000-0000-4000-8000-000000000001"}]},
	{"stream_id": "multi-b", "expected_version": 3, "events": [{"type": "B4", "data": {}}]}
  ]'::jsonb);

-- the non-raising form: outcome and version per row
SELECT stream_id, event_id IS NULL AS is_check, stream_order, outcome, stream_version
  FROM eventstore.try_append_multi('[
	{"stream_id": "multi-a", "expected_version": 1, "events": [{"type": "A2", "data": {}}]},
	{"stream_id": "multi-b", "expected_version": 4}
  ]'::jsonb);
SELECT stream_id, event_id IS NULL AS is_check, stream_order, insert_order, duplicate,
	   outcome, stream_version
  FROM eventstore.try_append_multi('[
	{"stream_id": "multi-a", "expected_version": 1, "events": [{"type": "A3", "data": {}}]},
	{"stream_id": "multi-e", "expected_version": 0, "events": [{"type": "E1", "data": {}}]},
	{"stream_id": "multi-b", "expected_version": 9},
	{"stream_id": "multi-f", "expected_version": 3, "events": [{"type": "F1", "data": {}}]}
  ]'::jsonb);
-- nothing of it was written: no new stream, no version moved
SELECT stream_id, version FROM eventstore.streams WHERE stream_id LIKE 'multi-%' ORDER BY 1;
-- a conflict does not abort the transaction, and holds nothing
BEGIN;
SELECT outcome FROM eventstore.try_append_multi('[{"stream_id": "multi-a", "expected_version": 7}]'::jsonb);
SELECT outcome, stream_version
  FROM eventstore.try_append_multi('[{"stream_id": "multi-a", "expected_version": 2,
									  "events": [{"type": "A3", "data": {}}]}]'::jsonb);
COMMIT;
-- an error other than a conflict is raised, and leaves a caller's
-- subtransaction as it was
DO $$
BEGIN
	BEGIN
		PERFORM * FROM eventstore.try_append_multi('[{"stream_id": "multi-a", "partition_key": "other",
													  "events": [{"type": "X", "data": {}}]}]'::jsonb);
	EXCEPTION WHEN SQLSTATE 'ES002' THEN
		RAISE NOTICE 'caught ES002';
	END;
	PERFORM * FROM eventstore.append('multi-g', '[{"type": "G1", "data": {}}]'::jsonb);
END
$$;
SELECT stream_id, version FROM eventstore.streams WHERE stream_id IN ('multi-a', 'multi-g') ORDER BY 1;

-- bad calls
SELECT * FROM eventstore.append_multi(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('{}'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[1]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"events": [{"type": "T", "data": {}}]}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": 7, "events": [{"type": "T", "data": {}}]}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "", "events": [{"type": "T", "data": {}}]}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "expected_version": 1.5}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "expected_version": -2}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "events": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "events": []}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "stream": "m"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "events": [{"type": "T", "data": {}}]},
										{"stream_id": "n", "events": [{"type": "T"}]}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "events": [{"type": "T", "data": {}}]},
										{"stream_id": "m", "expected_version": 1}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SET eventstore.max_append_events = 2;
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "events": [{"type": "T", "data": {}}]},
										{"stream_id": "n", "events": [{"type": "T", "data": {}},
																	 {"type": "T", "data": {}}]}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
RESET eventstore.max_append_events;
BEGIN TRANSACTION READ ONLY;
SELECT * FROM eventstore.append_multi('[{"stream_id": "m", "events": [{"type": "T", "data": {}}]}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) FROM eventstore.streams WHERE stream_id IN ('m', 'n');

-- writers may call them, readers may not
CREATE ROLE es_regress_multi_writer IN ROLE eventstore_writer;
CREATE ROLE es_regress_multi_reader IN ROLE eventstore_reader;
SET ROLE es_regress_multi_writer;
SELECT stream_id, stream_order
  FROM eventstore.append_multi('[{"stream_id": "multi-role", "events": [{"type": "T", "data": {}}]}]'::jsonb);
SET ROLE es_regress_multi_reader;
SELECT * FROM eventstore.append_multi('[{"stream_id": "multi-role", "events": [{"type": "T", "data": {}}]}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.try_append_multi('[{"stream_id": "multi-role", "expected_version": 1}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE es_regress_multi_writer, es_regress_multi_reader;
