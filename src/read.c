/*-------------------------------------------------------------------------
 *
 * read.c
 *		Reading the log: the global feed and single streams.
 *
 * eventstore.read_all computes the head first and only then runs its query,
 * so in READ COMMITTED the query's snapshot is taken after the head and
 * sees every committed event at or below it (see head.c).  In
 * REPEATABLE READ and SERIALIZABLE the head is that of the transaction
 * snapshot, so the same holds for the transaction's reads.
 *
 * eventstore.open_feed does the same for a cursor: the head first, then
 * the cursor's snapshot when it opens.  Its rows stream from the scan as
 * they are fetched; a set-returning function's rows are collected first.
 *
 * eventstore.read_stream looks the stream's bucket up first and passes it
 * to the events query, so that only the stream's partition is scanned.
 * Appends to one stream commit in stream order (they queue on the stream's
 * row), so a stream read never has gaps to guard against.
 *
 * Rows go straight from the executor into the function's tuplestore, whose
 * rows the caller reads as eventstore.recorded_event: before the first row
 * the type and the query's columns are both checked against the types the
 * rows have, so that a type or table altered behind the event trigger's back
 * is an error, not a crash.  The functions run as their caller with the
 * caller's search_path, so their queries name every operator with its
 * schema.
 *
 * src/read.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tstoreReceiver.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/params.h"
#include "tcop/dest.h"
#include "utils/builtins.h"

#include "eventstore.h"
#include "guard.h"
#include "head.h"
#include "shmem.h"
#include "spi.h"

#define ES_READ_COLUMNS \
	"insert_order, stream_id, stream_order, event_id, event_type, " \
	"schema_version, data, metadata, recorded_at, partition_key"

/* The types of those columns: the attributes of eventstore.recorded_event. */
#define ES_READ_NATTS 10
static const Oid es_read_types[ES_READ_NATTS] = {
	INT8OID, TEXTOID, INT8OID, UUIDOID, TEXTOID,
	INT4OID, JSONBOID, JSONBOID, TIMESTAMPTZOID, TEXTOID
};

/*
 * A receiver in front of the result's tuplestore that checks the query's
 * columns before the first row: with eventstore.events altered, the rows
 * would not be what the result type says they are.
 */
typedef struct EsCheckedDest
{
	DestReceiver pub;
	DestReceiver *store;
	const char *user;
} EsCheckedDest;

static SPIPlanPtr read_all_plan = NULL;
static SPIPlanPtr open_feed_plan = NULL;
static SPIPlanPtr stream_bucket_plan = NULL;
static SPIPlanPtr read_forward_plan = NULL;
static SPIPlanPtr read_backward_plan = NULL;

PG_FUNCTION_INFO_V1(eventstore_read_all);
PG_FUNCTION_INFO_V1(eventstore_open_feed);
PG_FUNCTION_INFO_V1(eventstore_read_stream);

static void
es_checked_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	EsCheckedDest *dest = (EsCheckedDest *) self;

	EsCheckRowType(typeinfo, es_read_types, ES_READ_NATTS,
				   "table eventstore.events", dest->user);
	dest->store->rStartup(dest->store, operation, typeinfo);
}

static bool
es_checked_receive(TupleTableSlot *slot, DestReceiver *self)
{
	EsCheckedDest *dest = (EsCheckedDest *) self;

	return dest->store->receiveSlot(slot, dest->store);
}

static void
es_checked_shutdown(DestReceiver *self)
{
	EsCheckedDest *dest = (EsCheckedDest *) self;

	dest->store->rShutdown(dest->store);
}

static void
es_checked_destroy(DestReceiver *self)
{
	EsCheckedDest *dest = (EsCheckedDest *) self;

	dest->store->rDestroy(dest->store);
	pfree(dest);
}

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
 * Run a prepared query and send its rows to the function's result
 * tuplestore, once its columns are checked.  read_only follows the
 * function's volatility: a volatile caller gets a new snapshot (in READ
 * COMMITTED) taken now.
 */
static void
es_run_into_result(FunctionCallInfo fcinfo, SPIPlanPtr plan, int nargs,
				   Oid *types, Datum *values, bool *nulls, bool read_only,
				   const char *user)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ParamListInfo params = makeParamList(nargs);
	EsCheckedDest *dest;
	DestReceiver *store;
	SPIExecuteOptions options;
	int			rc;

	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = nulls[i];
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = types[i];
	}

	store = CreateDestReceiver(DestTuplestore);
	SetTuplestoreDestReceiverParams(store, rsinfo->setResult,
									rsinfo->econtext->ecxt_per_query_memory,
									false, NULL, NULL);
	dest = palloc0(sizeof(EsCheckedDest));
	dest->pub.receiveSlot = es_checked_receive;
	dest->pub.rStartup = es_checked_startup;
	dest->pub.rShutdown = es_checked_shutdown;
	dest->pub.rDestroy = es_checked_destroy;
	dest->pub.mydest = DestTuplestore;
	dest->store = store;
	dest->user = user;

	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = read_only;
	options.dest = &dest->pub;

	rc = SPI_execute_plan_extended(plan, &options);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading events failed: %s", SPI_result_code_string(rc));
	dest->pub.rDestroy(&dest->pub);
}

static inline void
es_check_max_count(int32 max_count)
{
	if (max_count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must be at least 1")));
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
 *					   max_count integer DEFAULT 1000)
 * returns setof eventstore.recorded_event
 *
 * Committed events with after_position < insert_order <= head(), in
 * insert_order, at most max_count of them.  A reader that calls it again
 * with the last position it received sees every committed event exactly
 * once.  Errors: 22004 null arguments; 22023 negative after_position or
 * max_count < 1; 55000 when eventstore.recorded_event or the log's columns
 * were altered; and those of eventstore.head().
 */
Datum
eventstore_read_all(PG_FUNCTION_ARGS)
{
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int64		after;
	int32		max_count;
	int64		head;

	EsCheckLoaded();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("after_position and max_count must not be null")));
	after = PG_GETARG_INT64(0);
	max_count = PG_GETARG_INT32(1);
	if (after < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after_position must not be negative")));
	es_check_max_count(max_count);

	es_init_result(fcinfo, "eventstore.read_all()");

	/* the head first, then the snapshot */
	head = EsHead();
	if (head <= after)
		PG_RETURN_VOID();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	EsKeptPlan(&read_all_plan,
				 "SELECT " ES_READ_COLUMNS " FROM eventstore.events "
				 "WHERE insert_order OPERATOR(pg_catalog.>) $1 "
				 "AND insert_order OPERATOR(pg_catalog.<=) $2 "
				 "ORDER BY insert_order LIMIT $3",
				 3, types);
	values[0] = Int64GetDatum(after);
	values[1] = Int64GetDatum(head);
	values[2] = Int64GetDatum((int64) max_count);
	es_run_into_result(fcinfo, read_all_plan, 3, types, values, nulls, false,
					   "eventstore.read_all()");
	SPI_finish();

	PG_RETURN_VOID();
}

/*
 * eventstore.open_feed(after_position bigint DEFAULT 0,
 *						cursor_name text DEFAULT NULL)
 * returns refcursor
 *
 * Opens a cursor over every committed event after after_position up to the
 * head, in insert_order, and returns its name (cursor_name, or one chosen
 * by the server).  The rows are those read_all would return page by page,
 * but they stream from the scan as the caller fetches them instead of
 * being collected per call: the way to replay a large log.  The cursor is
 * the caller's to FETCH from and lives until CLOSE or the end of the
 * transaction.  Errors: 22004 null after_position; 22023 negative
 * after_position, an empty cursor_name or one longer than NAMEDATALEN - 1
 * bytes; 42P03 a cursor of that name exists; and those of
 * eventstore.head().
 */
Datum
eventstore_open_feed(PG_FUNCTION_ARGS)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];
	int64		after;
	char	   *name = NULL;
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

	/* the head first; the cursor takes its snapshot when it opens */
	values[0] = Int64GetDatum(after);
	values[1] = Int64GetDatum(EsHead());

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	EsKeptPlan(&open_feed_plan,
				 "SELECT " ES_READ_COLUMNS " FROM eventstore.events "
				 "WHERE insert_order OPERATOR(pg_catalog.>) $1 "
				 "AND insert_order OPERATOR(pg_catalog.<=) $2 "
				 "ORDER BY insert_order",
				 2, types);
	portal = SPI_cursor_open(name, open_feed_plan, values, NULL, false);
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
	Oid			bucket_types[1] = {TEXTOID};
	Oid			types[4] = {INT4OID, TEXTOID, INT8OID, INT8OID};
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	text	   *stream_id;
	bool		backwards;
	int64		from;
	Datum		bucket;
	bool		isnull;
	int			rc;

	EsCheckLoaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream_id must not be null")));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("backwards must not be null")));
	stream_id = PG_GETARG_TEXT_PP(0);
	backwards = PG_GETARG_BOOL(3);
	if (PG_ARGISNULL(1))
		from = backwards ? PG_INT64_MAX : 1;
	else
	{
		from = PG_GETARG_INT64(1);
		if (from < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("from_stream_order must be at least 1")));
	}
	if (!PG_ARGISNULL(2))
		es_check_max_count(PG_GETARG_INT32(2));

	es_init_result(fcinfo, "eventstore.read_stream()");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	EsKeptPlan(&stream_bucket_plan,
				 "SELECT bucket FROM eventstore.streams "
				 "WHERE stream_id OPERATOR(pg_catalog.=) $1",
				 1, bucket_types);
	values[0] = PointerGetDatum(stream_id);
	rc = SPI_execute_plan(stream_bucket_plan, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "looking up the stream failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	bucket = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
						   &isnull);

	EsKeptPlan(&read_forward_plan,
				 "SELECT " ES_READ_COLUMNS " FROM eventstore.events "
				 "WHERE bucket OPERATOR(pg_catalog.=) $1 "
				 "AND stream_id OPERATOR(pg_catalog.=) $2 "
				 "AND stream_order OPERATOR(pg_catalog.>=) $3 "
				 "ORDER BY stream_order LIMIT $4",
				 4, types);
	EsKeptPlan(&read_backward_plan,
				 "SELECT " ES_READ_COLUMNS " FROM eventstore.events "
				 "WHERE bucket OPERATOR(pg_catalog.=) $1 "
				 "AND stream_id OPERATOR(pg_catalog.=) $2 "
				 "AND stream_order OPERATOR(pg_catalog.<=) $3 "
				 "ORDER BY stream_order DESC LIMIT $4",
				 4, types);
	values[0] = bucket;
	values[1] = PointerGetDatum(stream_id);
	values[2] = Int64GetDatum(from);
	values[3] = PG_ARGISNULL(2) ? (Datum) 0 : Int64GetDatum((int64) PG_GETARG_INT32(2));
	nulls[3] = PG_ARGISNULL(2);
	es_run_into_result(fcinfo,
					   backwards ? read_backward_plan : read_forward_plan,
					   4, types, values, nulls, true, "eventstore.read_stream()");
	SPI_finish();

	PG_RETURN_VOID();
}
