/*
 * Writing: the event constructor and append.
 */
CREATE TYPE eventstore.event_in AS (
	event_type		text,
	data			jsonb,
	metadata		jsonb,
	event_id		uuid,
	schema_version	integer
);
COMMENT ON TYPE eventstore.event_in IS
'an event to append; build it with eventstore.event()';

CREATE FUNCTION eventstore.event(
	event_type text,
	data jsonb,
	metadata jsonb DEFAULT NULL,
	event_id uuid DEFAULT pg_catalog.gen_random_uuid(),
	schema_version integer DEFAULT 1)
RETURNS eventstore.event_in
AS 'MODULE_PATHNAME', 'eventstore_event'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION eventstore.event(text, jsonb, jsonb, uuid, integer) IS
'builds an event_in; the event id defaults to a new random UUID';

CREATE FUNCTION eventstore.append(
	stream_id text,
	events eventstore.event_in[],
	expected_version bigint DEFAULT NULL,
	partition_key text DEFAULT NULL)
RETURNS TABLE (event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean)
AS 'MODULE_PATHNAME', 'eventstore_append'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventstore.append(text, eventstore.event_in[], bigint, text) IS
'appends events to a stream atomically, with optimistic concurrency and de-duplication by event id';

CREATE FUNCTION eventstore.append(
	stream_id text,
	events jsonb,
	expected_version bigint DEFAULT NULL,
	partition_key text DEFAULT NULL)
RETURNS TABLE (event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean)
AS 'MODULE_PATHNAME', 'eventstore_append_json'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventstore.append(text, jsonb, bigint, text) IS
'appends events given as a JSON array of {"type", "data", "metadata", "id", "schema_version"} objects, as append(text, event_in[], ...) does';

/*
 * try_append: append, with a wrong expected version returned as data (the
 * outcome "conflict" and the stream's actual version) instead of raised.
 */
CREATE FUNCTION eventstore.try_append(
	stream_id text,
	events eventstore.event_in[],
	expected_version bigint DEFAULT NULL,
	partition_key text DEFAULT NULL)
RETURNS TABLE (event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean,
			   outcome text, stream_version bigint)
AS 'MODULE_PATHNAME', 'eventstore_try_append'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventstore.try_append(text, eventstore.event_in[], bigint, text) IS
'append, returning a wrong expected version as the outcome "conflict" with the stream''s version instead of raising';

CREATE FUNCTION eventstore.try_append(
	stream_id text,
	events jsonb,
	expected_version bigint DEFAULT NULL,
	partition_key text DEFAULT NULL)
RETURNS TABLE (event_id uuid, stream_order bigint, insert_order bigint, duplicate boolean,
			   outcome text, stream_version bigint)
AS 'MODULE_PATHNAME', 'eventstore_try_append_json'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventstore.try_append(text, jsonb, bigint, text) IS
'append of a JSON batch, returning a wrong expected version as the outcome "conflict" with the stream''s version instead of raising';

/*
 * append_multi: several streams in one call, all or nothing, locked in the
 * canonical order of their ids; a stream without events is a check of its
 * expected version.  try_append_multi returns the streams whose versions
 * did not match instead of raising.
 */
CREATE FUNCTION eventstore.append_multi(streams jsonb)
RETURNS TABLE (stream_id text, event_id uuid, stream_order bigint, insert_order bigint,
			   duplicate boolean)
AS 'MODULE_PATHNAME', 'eventstore_append_multi'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventstore.append_multi(jsonb) IS
'appends to several streams atomically, each with its own expected version, and checks the versions of streams it does not write';

CREATE FUNCTION eventstore.try_append_multi(streams jsonb)
RETURNS TABLE (stream_id text, event_id uuid, stream_order bigint, insert_order bigint,
			   duplicate boolean, outcome text, stream_version bigint)
AS 'MODULE_PATHNAME', 'eventstore_try_append_multi'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION eventstore.try_append_multi(jsonb) IS
'append_multi, returning the streams whose versions did not match (outcome "conflict") instead of raising';

CREATE FUNCTION eventstore.bucket_of(partition_key text)
RETURNS integer
AS 'MODULE_PATHNAME', 'eventstore_bucket_of'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION eventstore.bucket_of(text) IS
'the bucket (0..1023) of a partition key: FNV-1a 32-bit of its UTF-8 bytes, modulo 1024';
