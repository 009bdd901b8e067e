--
-- append with the events as one JSON array, the form a driver sends as one
-- parameter: the same semantics, results and errors as the event_in[] form,
-- and errors that name the bad element.
--
-- a batch: types, data (JSON null included), metadata, ids, schema versions
SELECT stream_order, insert_order > 0 AS positioned, duplicate,
	   event_id = 'a0000000-0000-4000-8000-000000000001' AS given_id
  FROM eventstore.append('json-1', '[
	{"type": "Opened", "data": {"owner": "ann"}, "id": "a0000000-0000-4000-8000-000000000001"},
	{"type": "Renamed", "data": {"name": "x"}, "metadata": {"by": "bob"}, "schema_version": 2},
	{"type": "Noted", "data": null, "metadata": null, "id": null, "schema_version": null}
  ]'::jsonb);
SELECT stream_order, event_type, schema_version, data, metadata
  FROM eventstore.read_stream('json-1');
-- the same batch again (the same ids): duplicates, their stored positions
SELECT stream_order, duplicate
  FROM eventstore.append('json-1',
	'[{"type": "Opened", "data": {"owner": "ann"}, "id": "a0000000-0000-4000-8000-000000000001"}]'::jsonb,
	expected_version => 1);
-- expected versions as in the array form
SELECT stream_order FROM eventstore.append('json-1', '[{"type": "T", "data": {}}]'::jsonb, 3);
SELECT * FROM eventstore.append('json-1', '[{"type": "T", "data": {}}]'::jsonb, 3);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-new', '[{"type": "T", "data": {}}]'::jsonb, -1);
\echo :LAST_ERROR_SQLSTATE
SELECT stream_order FROM eventstore.append('json-new', '[{"type": "T", "data": {}}]'::jsonb, 0);
-- the partition key, fixed by the first append
SELECT stream_order FROM eventstore.append('json-keyed', '[{"type": "T", "data": {}}]'::jsonb,
										   partition_key => 'tenant-1');
SELECT partition_key, bucket = eventstore.bucket_of('tenant-1') AS bucket_of_key
  FROM eventstore.streams WHERE stream_id = 'json-keyed';
SELECT * FROM eventstore.append('json-keyed', '[{"type": "T", "data": {}}]'::jsonb,
								partition_key => 'tenant-2');
\echo :LAST_ERROR_SQLSTATE
-- a repeated id within the batch: refused by both forms
SELECT * FROM eventstore.append('json-cmp-a', ARRAY[
	eventstore.event('A', '{"n": 1}', NULL, 'b0000000-0000-4000-8000-000000000001'),
	eventstore.event('A', '{"n": 1}', NULL, 'b0000000-0000-4000-8000-000000000001')]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-cmp-b', '[
	{"type": "A", "data": {"n": 1}, "id": "b0000000-0000-4000-8000-000000000001"},
	{"type": "A", "data": {"n": 1}, "id": "b0000000-0000-4000-8000-000000000001"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE

-- errors: the batch as a whole
SELECT * FROM eventstore.append('json-bad', NULL::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '{"type": "T", "data": {}}'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '"T"'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append(NULL, '[{"type": "T", "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}}]'::jsonb, -2);
\echo :LAST_ERROR_SQLSTATE
SET eventstore.max_append_events = 2;
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}}, {"type": "T", "data": {}},
											 {"type": "T", "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
RESET eventstore.max_append_events;
SET eventstore.max_event_size = '1kB';
SELECT * FROM eventstore.append('json-bad',
	jsonb_build_array(jsonb_build_object('type', 'T', 'data', '{}'::jsonb),
					  jsonb_build_object('type', 'T', 'data', repeat('x', 2000))));
\echo :LAST_ERROR_SQLSTATE
RESET eventstore.max_event_size;
-- errors: one element, named by its place in the batch (1-based)
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}}, 7]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}}, [1]]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}}, {"data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": null, "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": 5, "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "", "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad',
	jsonb_build_array(jsonb_build_object('type', repeat('t', 256), 'data', '{}'::jsonb)));
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}, "id": "not-a-uuid"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}, "id": 12}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}, "schema_version": 0}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}, "schema_version": 1.5}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}, "schema_version": "2"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}, "schema_version": 3000000000}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}, "event_type": "T"}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
-- nothing of a refused batch was stored, and the stream was not created
SELECT count(*) FROM eventstore.streams WHERE stream_id IN ('json-bad', 'json-cmp-a', 'json-cmp-b');

-- an untyped literal matches both forms: cast it (drivers: $2::jsonb)
SELECT * FROM eventstore.append('json-bad', '[{"type": "T", "data": {}}]');
\echo :LAST_ERROR_SQLSTATE

-- writers may call it, readers may not
CREATE ROLE es_regress_json_writer IN ROLE eventstore_writer;
CREATE ROLE es_regress_json_reader IN ROLE eventstore_reader;
SET ROLE es_regress_json_writer;
SELECT stream_order FROM eventstore.append('json-role', '[{"type": "T", "data": {}}]'::jsonb);
SET ROLE es_regress_json_reader;
SELECT * FROM eventstore.append('json-role', '[{"type": "T", "data": {}}]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE es_regress_json_writer, es_regress_json_reader;
