/*
 * Reading: the global feed, single streams, and the head.
 */
CREATE TYPE eventstore.recorded_event AS (
	insert_order	bigint,
	stream_id		text,
	stream_order	bigint,
	event_id		uuid,
	event_type		text,
	schema_version	integer,
	data			jsonb,
	metadata		jsonb,
	recorded_at		timestamptz,
	partition_key	text
);
COMMENT ON TYPE eventstore.recorded_event IS
'an event as read back from the log';

CREATE FUNCTION eventstore.head()
RETURNS bigint
AS 'MODULE_PATHNAME', 'eventstore_head'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION eventstore.head() IS
'the highest position that eventstore.read_all() may return now';

CREATE FUNCTION eventstore.wait_for(
	after_position bigint,
	timeout interval DEFAULT '30 seconds')
RETURNS bigint
AS 'MODULE_PATHNAME', 'eventstore_wait_for'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.wait_for(bigint, interval) IS
'the head as soon as it is above after_position, or when the timeout has passed: waiting without LISTEN (poolers, standbys)';

/*
 * wait_for as a procedure that holds no snapshot while it waits: on its own
 * it commits the CALL's transaction first (see src/head.c).
 */
CREATE PROCEDURE eventstore.wait_for_head(
	after_position bigint,
	timeout interval DEFAULT '30 seconds',
	INOUT head bigint DEFAULT NULL)
AS 'MODULE_PATHNAME', 'eventstore_wait_for_head'
LANGUAGE C;
COMMENT ON PROCEDURE eventstore.wait_for_head(bigint, interval, bigint) IS
'wait_for without a snapshot held while waiting (CALL it outside a transaction block); sets head';

CREATE FUNCTION eventstore.read_all(
	after_position bigint DEFAULT 0,
	max_count integer DEFAULT 1000,
	event_types text[] DEFAULT NULL,
	stream_prefix text DEFAULT NULL,
	partition_keys text[] DEFAULT NULL)
RETURNS SETOF eventstore.recorded_event
AS 'MODULE_PATHNAME', 'eventstore_read_all'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 1000;
COMMENT ON FUNCTION eventstore.read_all(bigint, integer, text[], text, text[]) IS
'committed events after a position in global order, up to the head, optionally filtered as a subscription is; never skips an event';

CREATE FUNCTION eventstore.open_feed(
	after_position bigint DEFAULT 0,
	cursor_name text DEFAULT NULL,
	event_types text[] DEFAULT NULL,
	stream_prefix text DEFAULT NULL,
	partition_keys text[] DEFAULT NULL)
RETURNS refcursor
AS 'MODULE_PATHNAME', 'eventstore_open_feed'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.open_feed(bigint, text, text[], text, text[]) IS
'a cursor over the committed events after a position up to the head, in global order, optionally filtered: FETCH from it to replay a large log';

/*
 * The feed backwards: the newest events first, from the head (or from
 * below before_position) down, filtered as read_all is.  The head is taken
 * first and the query's snapshot after it, as read_all does, so a page
 * never shows an event that a forward reader could still miss.
 */
CREATE FUNCTION eventstore.read_all_backwards(
	before_position bigint DEFAULT NULL,
	max_count integer DEFAULT 100,
	event_types text[] DEFAULT NULL,
	stream_prefix text DEFAULT NULL,
	partition_keys text[] DEFAULT NULL)
RETURNS SETOF eventstore.recorded_event
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 100
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	upto bigint;
BEGIN
	IF max_count IS NULL OR max_count < 1 THEN
		RAISE EXCEPTION 'max_count must be at least 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF before_position < 1 THEN
		RAISE EXCEPTION 'before_position must be at least 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- the checks of read_all's filter, with its messages (the dimensions
	-- before array_position(), which refuses more than one with 0A000)
	IF array_ndims(event_types) > 1 THEN
		RAISE EXCEPTION 'event_types must be a one-dimensional array without nulls'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF array_ndims(partition_keys) > 1 THEN
		RAISE EXCEPTION 'partition_keys must be a one-dimensional array without nulls'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF array_position(event_types, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'event_types must be a one-dimensional array without nulls'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF array_position(partition_keys, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'partition_keys must be a one-dimensional array without nulls'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(event_types) = 0 THEN
		RAISE EXCEPTION 'event_types must not be empty'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass NULL for any.';
	END IF;
	IF cardinality(partition_keys) = 0 THEN
		RAISE EXCEPTION 'partition_keys must not be empty'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass NULL for any.';
	END IF;
	-- the head first; the query below takes its snapshot afterwards
	upto := least(eventstore.head(), before_position - 1);
	RETURN QUERY
		SELECT e.insert_order, e.stream_id, e.stream_order, e.event_id, e.event_type,
			   e.schema_version, e.data, e.metadata, e.recorded_at, e.partition_key
		  FROM eventstore.events e
		 WHERE e.insert_order <= upto
		   AND eventstore.subscription_matches(read_all_backwards.event_types,
				read_all_backwards.stream_prefix, read_all_backwards.partition_keys,
				e.event_type, e.stream_id, e.partition_key)
		 ORDER BY e.insert_order DESC
		 LIMIT max_count;
END
$$;
COMMENT ON FUNCTION eventstore.read_all_backwards(bigint, integer, text[], text, text[]) IS
'committed events newest first, from the head (or below before_position) down, optionally filtered: "latest items" pages';

CREATE FUNCTION eventstore.read_stream(
	stream_id text,
	from_stream_order bigint DEFAULT NULL,
	max_count integer DEFAULT NULL,
	backwards boolean DEFAULT false)
RETURNS SETOF eventstore.recorded_event
AS 'MODULE_PATHNAME', 'eventstore_read_stream'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION eventstore.read_stream(text, bigint, integer, boolean) IS
'events of one stream in stream order, forwards or backwards';

CREATE FUNCTION eventstore.stream_version(stream_id text)
RETURNS bigint
LANGUAGE sql STABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	SELECT COALESCE(
		(SELECT s.version FROM eventstore.streams s
		  WHERE s.stream_id OPERATOR(pg_catalog.=) stream_version.stream_id), 0);
END;
COMMENT ON FUNCTION eventstore.stream_version(text) IS
'the version (number of events) of a stream, 0 when it does not exist';

CREATE FUNCTION eventstore.open_appenders()
RETURNS TABLE (pid integer, lowest_position bigint, writer_xid xid8, xact_start timestamptz)
AS 'MODULE_PATHNAME', 'eventstore_open_appenders'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION eventstore.open_appenders() IS
'transactions of this database that hold positions not yet committed';

CREATE VIEW eventstore.appenders AS
	SELECT a.pid,
		   a.lowest_position,
		   a.writer_xid,
		   a.xact_start,
		   pg_catalog.now() OPERATOR(pg_catalog.-) a.xact_start AS xact_age,
		   s.usename,
		   s.application_name,
		   s.state,
		   s.query
	  FROM eventstore.open_appenders() a
	  LEFT JOIN pg_catalog.pg_stat_activity s ON s.pid OPERATOR(pg_catalog.=) a.pid
	 ORDER BY a.lowest_position;
COMMENT ON VIEW eventstore.appenders IS
'in-flight appenders: what holds eventstore.head() back';
