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

CREATE FUNCTION eventstore.read_all(
	after_position bigint DEFAULT 0,
	max_count integer DEFAULT 1000)
RETURNS SETOF eventstore.recorded_event
AS 'MODULE_PATHNAME', 'eventstore_read_all'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 1000;
COMMENT ON FUNCTION eventstore.read_all(bigint, integer) IS
'committed events after a position in global order, up to the head; never skips an event';

CREATE FUNCTION eventstore.open_feed(
	after_position bigint DEFAULT 0,
	cursor_name text DEFAULT NULL)
RETURNS refcursor
AS 'MODULE_PATHNAME', 'eventstore_open_feed'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.open_feed(bigint, text) IS
'a cursor over the committed events after a position up to the head, in global order: FETCH from it to replay a large log';

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
