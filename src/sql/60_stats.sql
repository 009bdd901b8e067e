/*
 * Metrics: the database's counters in shared memory (src/metrics.c), as a
 * view for monitoring (postgres_exporter: test/monitoring/queries.yaml).
 */
CREATE FUNCTION eventstore.stats_counters(
	OUT appends bigint,
	OUT events bigint,
	OUT duplicates bigint,
	OUT bytes bigint,
	OUT rolled_back bigint,
	OUT conflicts bigint,
	OUT ticks bigint,
	OUT wakeups bigint,
	OUT waits bigint,
	OUT wait_timeouts bigint,
	OUT stats_reset timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'eventstore_stats_counters'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION eventstore.stats_counters() IS
'the counters of the current database, in shared memory: see the view eventstore.stats';

CREATE VIEW eventstore.stats AS
	SELECT c.appends,
		   c.events,
		   c.duplicates,
		   c.bytes,
		   c.rolled_back,
		   c.conflicts,
		   eventstore.head() AS head,
		   c.ticks,
		   c.wakeups,
		   c.waits,
		   c.wait_timeouts,
		   c.stats_reset
	  FROM eventstore.stats_counters() c;
COMMENT ON VIEW eventstore.stats IS
'what eventstore did in this database since stats_reset: committed appends, events, duplicates and bytes, rolled-back events, conflicts, ticks, wake-ups and waits; and the head';

CREATE FUNCTION eventstore.reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'eventstore_reset_stats'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.reset_stats() IS
'zeroes the counters of eventstore.stats for the current database';
