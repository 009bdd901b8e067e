/*-------------------------------------------------------------------------
 *
 * read.c
 *		Reading the log: the global feed and single streams.
 *
 * eventstore.read_all computes the head first and only then takes the
 * snapshot it reads with, so in READ COMMITTED it sees every committed
 * event at or below the head (see head.c).  In REPEATABLE READ and
 * SERIALIZABLE the head is that of the transaction snapshot, so the same
 * holds for the transaction's reads.  The events come from feed.c's merge
 * of the partitions' insert_order indexes.  This function is what runs
 * where read_all is called as a function (in a target list, WITH
 * ORDINALITY, with arguments from other FROM items); a plain FROM item
 * runs as the streaming scan of readscan.c instead, which does the same
 * without collecting the rows first.
 *
 * eventstore.open_feed does the same for a cursor: the head first, then
 * the cursor's snapshot when it opens.  Its rows stream from the scan as
 * they are fetched; a set-returning function's rows are collected first.
 *
 * eventstore.read_stream reads the stream's partition only (streamscan.c), with
 * the statement's snapshot.
 *
 * eventstore.subscription_feed, what poll and group_poll read, merges the
 * same indexes with a subscription's filter and a group member's bucket
 * ranges; its caller takes the head before the query that calls it, so
 * the statement's snapshot is the one to read with.
 *
 * The rows go into the function's tuplestore, which the caller reads as
 * eventstore.recorded_event: before the first row that type is checked
 * against the types the rows have, and feed.c and streamscan.c check the
 * log's columns, so that a type or table altered behind the event
 * trigger's back is an error, not a crash.  The functions run as their
 * caller, with the caller's privileges; the query of open_feed names every
 * operator with its schema, since it runs with the caller's search_path.
 *
 * src/read.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "eventstore.h"
#include "feed.h"
#include "guard.h"
#include "head.h"
#include "shmem.h"
#include "spi.h"
#include "streamscan.h"

#define ES_READ_COLUMNS \
	"insert_order, stream_id, stream_order, event_id, event_type, " \
	"schema_version, data, metadata, recorded_at, partition_key"


static SPIPlanPtr open_feed_plan = NULL;

PG_FUNCTION_INFO_V1(eventstore_read_all);
PG_FUNCTION_INFO_V1(eventstore_open_feed);
PG_FUNCTION_INFO_V1(eventstore_read_stream);
PG_FUNCTION_INFO_V1(eventstore_subscription_feed);

/*
 * Set up the function's result tuplestore, as eventstore.recorded_event,
 * and check that type: the rows put into the tuplestore are read with its
 * descriptor.
 */
static void
es_init_result(FunctionCallInfo fcinfo, const char *user)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	EsCheckRowType(rsinfo->setDesc, es_read_types, ES_READ_NATTS,
				   "type eventstore.recorded_event", user);
}

/*
 * A cursor name is an identifier: not empty, and at most NAMEDATALEN - 1
 * bytes (longer names would be cut, possibly inside a character).
 */
static inline void
es_check_cursor_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cursor_name must not be empty"),
				 errhint("Pass NULL to have the server choose a name.")));
	if (len > NAMEDATALEN - 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cursor_name is too long"),
				 errdetail("It is %zu bytes long; at most %d bytes are allowed.",
						   len, NAMEDATALEN - 1)));
}

/*
 * eventstore.read_all(after_position bigint DEFAULT 0,
 *					   max_count integer DEFAULT 1000,
 *					   event_types text[] DEFAULT NULL,
 *					   stream_prefix text DEFAULT NULL,
 *					   partition_keys text[] DEFAULT NULL)
 * returns setof eventstore.recorded_event
 *
 * Committed events with after_position < insert_order <= head(), in
 * insert_order, at most max_count of them, that pass the filter (as a
 * subscription's: the event type one of event_types, the stream id
 * starting with stream_prefix, the partition key one of partition_keys;
 * NULL for any).  A reader that calls it again with the last position it
 * received sees every committed event that passes exactly once.  The
 * filter is applied to each event as the merge reads it; partition_keys
 * also limit the read to the partitions that hold their buckets.  Errors:
 * 22004 null after_position or max_count; 22023 negative after_position,
 * max_count < 1, an empty or multi-dimensional list or one with nulls;
 * 55000 when eventstore.recorded_event or the log's columns were altered;
 * and those of eventstore.head().
 */
Datum
eventstore_read_all(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[ES_READ_ALL_NARGS];
	bool		nulls[ES_READ_ALL_NARGS];
	EsFeedRequest req;
	int64		head;
	Snapshot	snapshot;
	EsFeed	   *feed;
	Datum		row[ES_READ_NATTS];
	bool		rownulls[ES_READ_NATTS];

	EsCheckLoaded();
	/* a definition with fewer arguments (an older script): no filter */
	for (int i = 0; i < ES_READ_ALL_NARGS; i++)
	{
		nulls[i] = i >= PG_NARGS() || PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	EsCheckReadAllArgs(values, nulls, &req);

	es_init_result(fcinfo, "eventstore.read_all()");

	/* the head first, then the snapshot */
	head = EsHead();
	if (req.nranges == 0 || head <= req.ranges[0].after)
		PG_RETURN_VOID();

	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	feed = EsFeedBeginRanges(req.nranges, req.ranges, head, req.max_count,
							 req.filtered ? &req.filter : NULL, snapshot);
	for (int32 n = 0; n < req.max_count && EsFeedNext(feed, row, rownulls); n++)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	EsFeedEnd(feed);
	UnregisterSnapshot(snapshot);

	PG_RETURN_VOID();
}

/*
 * eventstore.open_feed(after_position bigint DEFAULT 0,
 *						cursor_name text DEFAULT NULL,
 *						event_types text[] DEFAULT NULL,
 *						stream_prefix text DEFAULT NULL,
 *						partition_keys text[] DEFAULT NULL)
 * returns refcursor
 *
 * Opens a cursor over every committed event after after_position up to the
 * head, in insert_order, that passes the filter (as read_all's), and
 * returns its name (cursor_name, or one chosen by the server).  The rows
 * are those read_all would return page by page, but they stream from the
 * scan as the caller fetches them instead of being collected per call: the
 * way to replay a large log.  The cursor is the caller's to FETCH from and
 * lives until CLOSE or the end of the transaction.  Errors: 22004 null
 * after_position; 22023 negative after_position, an empty cursor_name or
 * one longer than NAMEDATALEN - 1 bytes, a filter list empty, of more than
 * one dimension or with nulls; 42P03 a cursor of that name exists; and
 * those of eventstore.head().
 */
Datum
eventstore_open_feed(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr filtered_plan = NULL;
	Oid			types[5] = {INT8OID, INT8OID, TEXTARRAYOID, TEXTOID, TEXTARRAYOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	Datum		filter_values[3];
	bool		filter_nulls[3];
	EsFeedFilter filter;
	bool		filtered;
	int64		after;
	char	   *name = NULL;
	SPIPlanPtr	plan;
	Portal		portal;
	text	   *result;

	EsCheckLoaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("after_position must not be null")));
	after = PG_GETARG_INT64(0);
	if (after < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after_position must not be negative")));
	if (!PG_ARGISNULL(1))
	{
		name = text_to_cstring(PG_GETARG_TEXT_PP(1));
		es_check_cursor_name(name);
	}
	/* a definition with fewer arguments (an older script): no filter */
	for (int i = 0; i < 3; i++)
	{
		filter_nulls[i] = 2 + i >= PG_NARGS() || PG_ARGISNULL(2 + i);
		filter_values[i] = filter_nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(2 + i);
	}
	filtered = EsCheckFeedFilter(filter_values, filter_nulls, &filter);

	/* the head first; the cursor takes its snapshot when it opens */
	values[0] = Int64GetDatum(after);
	values[1] = Int64GetDatum(EsHead());
	values[2] = PointerGetDatum(filter.event_types);
	values[3] = PointerGetDatum(filter.stream_prefix);
	values[4] = PointerGetDatum(filter.partition_keys);
	for (int i = 0; i < 3; i++)
		nulls[2 + i] = filter_nulls[i] ? 'n' : ' ';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!filtered)
		plan = EsKeptCursorPlan(&open_feed_plan,
								"SELECT " ES_READ_COLUMNS " FROM eventstore.events "
								"WHERE insert_order OPERATOR(pg_catalog.>) $1 "
								"AND insert_order OPERATOR(pg_catalog.<=) $2 "
								"ORDER BY insert_order",
								2, types, CURSOR_OPT_FAST_PLAN);
	else
		plan = EsKeptCursorPlan(&filtered_plan,
								"SELECT " ES_READ_COLUMNS " FROM eventstore.events "
								"WHERE insert_order OPERATOR(pg_catalog.>) $1 "
								"AND insert_order OPERATOR(pg_catalog.<=) $2 "
								"AND eventstore.subscription_matches($3, $4, $5, "
								"event_type, stream_id, partition_key) "
								"ORDER BY insert_order",
								5, types, CURSOR_OPT_FAST_PLAN);
	portal = SPI_cursor_open(name, plan, values, nulls, false);
	/* the portal outlives SPI; its name is copied out before SPI ends */
	result = (text *) SPI_palloc(VARHDRSZ + strlen(portal->name));
	SET_VARSIZE(result, VARHDRSZ + strlen(portal->name));
	memcpy(VARDATA(result), portal->name, strlen(portal->name));
	SPI_finish();

	PG_RETURN_TEXT_P(result);
}

/*
 * eventstore.read_stream(stream_id text, from_stream_order bigint DEFAULT NULL,
 *						  max_count integer DEFAULT NULL,
 *						  backwards boolean DEFAULT false)
 * returns setof eventstore.recorded_event
 *
 * The stream's events in stream order from from_stream_order on (NULL: from
 * the first), or backwards from it down (NULL: from the last), at most
 * max_count of them (NULL: all).  An unknown stream has no events.
 * Errors: 22004 null stream_id or backwards; 22023 from_stream_order < 1 or
 * max_count < 1; 55000 when eventstore.recorded_event or the log's columns
 * were altered.
 */
Datum
eventstore_read_stream(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[4];
	bool		nulls[4];
	EsStreamScanArgs args;
	EsStreamScan *reader;
	Datum		row[ES_READ_NATTS];
	bool		rownulls[ES_READ_NATTS];

	EsCheckLoaded();
	for (int i = 0; i < 4; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	EsCheckStreamScanArgs(values, nulls, &args);

	es_init_result(fcinfo, "eventstore.read_stream()");

	reader = EsStreamScanBegin(&args, GetActiveSnapshot());
	for (int64 n = 0; (args.limit < 0 || n < args.limit) &&
		 EsStreamScanNext(reader, row, rownulls); n++)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	EsStreamScanEnd(reader);

	PG_RETURN_VOID();
}

/*
 * eventstore.subscription_feed(after_positions bigint[],
 *		first_buckets integer[], last_buckets integer[], up_to bigint,
 *		max_count integer, event_types text[], stream_prefix text,
 *		partition_keys text[])
 * returns setof eventstore.recorded_event
 *
 * For poll and group_poll, granted to nobody: the events with
 * after_positions[i] < insert_order <= up_to and bucket between
 * first_buckets[i] and last_buckets[i] (both NULL: any bucket), for every
 * i, that pass the filter, in insert_order, at most max_count, read with
 * the statement's snapshot.  The caller computes up_to with
 * eventstore.head() before the statement.  NULL after_positions: none.
 * As a plain FROM item (as poll and group_poll call it) it runs as
 * readscan.c's scan instead.  Errors: those of
 * EsCheckSubscriptionFeedArgs.
 */
Datum
eventstore_subscription_feed(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[ES_SUBSCRIPTION_FEED_NARGS];
	bool		nulls[ES_SUBSCRIPTION_FEED_NARGS];
	EsFeedRequest req;
	EsFeed	   *feed;
	Datum		row[ES_READ_NATTS];
	bool		rownulls[ES_READ_NATTS];

	EsCheckLoaded();
	for (int i = 0; i < ES_SUBSCRIPTION_FEED_NARGS; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	EsCheckSubscriptionFeedArgs(values, nulls, &req);

	es_init_result(fcinfo, "eventstore.poll()");
	if (req.nranges == 0)
		PG_RETURN_VOID();

	feed = EsFeedBeginRanges(req.nranges, req.ranges, req.upto, req.max_count,
							 req.filtered ? &req.filter : NULL,
							 GetActiveSnapshot());
	for (int32 n = 0; n < req.max_count && EsFeedNext(feed, row, rownulls); n++)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	EsFeedEnd(feed);

	PG_RETURN_VOID();
}
