/*-------------------------------------------------------------------------
 *
 * append.c
 *		eventstore.append(): atomic batch appends with optimistic concurrency
 *		and de-duplication by event id.
 *
 * One call appends a batch to one stream:
 *
 *	1. validate every argument before touching anything (the events are
 *	   unpacked and checked by event.c);
 *	2. lock the stream's row in eventstore.streams by updating it, or create
 *	   it (stream.c, below the executor, with the concurrency behaviour of
 *	   UPDATE and INSERT ... ON CONFLICT); concurrent appends to one stream
 *	   queue here, appends to other streams do not meet at all;
 *	3. look the batch's event ids up in the stream: stored ones come back as
 *	   duplicates with their stored positions; a batch that is wholly stored
 *	   is a retry and returns the original result without any other check;
 *	4. check the expected version against the stream's current version;
 *	5. take positions for the new events from the allocator (position.c);
 *	6. insert them into the stream's partition with one table_multi_insert
 *	   and their index entries.
 *
 * Concurrency: the stream row lock serializes appenders of a stream for the
 * rest of their transactions, so the second of two appenders sees the
 * first one's events (READ COMMITTED takes a new snapshot per statement) and
 * reports the same event ids as duplicates, or appends them itself if the
 * first aborted.  In REPEATABLE READ and SERIALIZABLE a concurrent append to
 * the same stream makes the later one fail with a serialization failure, as
 * any concurrent update does.  The unique indexes on (bucket, stream_id,
 * stream_order) and (bucket, stream_id, event_id) back this up.
 *
 * The function runs as the extension owner (SECURITY DEFINER with a pinned
 * search_path); callers need EXECUTE on it, not privileges on the tables.
 *
 * src/append.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/heapam.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "eventstore.h"
#include "event.h"
#include "feed.h"
#include "guard.h"
#include "guc.h"
#include "hash.h"
#include "metrics.h"
#include "position.h"
#include "shmem.h"
#include "stream.h"

/* Columns of eventstore.events, matched by name against each partition. */
enum
{
	COL_INSERT_ORDER,
	COL_STREAM_ORDER,
	COL_RECORDED_AT,
	COL_WRITER_XID,
	COL_BUCKET,
	COL_SCHEMA_VERSION,
	COL_EVENT_ID,
	COL_STREAM_ID,
	COL_EVENT_TYPE,
	COL_PARTITION_KEY,
	COL_DATA,
	COL_METADATA,
	NUM_COLUMNS
};

static const char *const es_column_names[NUM_COLUMNS] = {
	"insert_order", "stream_order", "recorded_at", "writer_xid", "bucket",
	"schema_version", "event_id", "stream_id", "event_type",
	"partition_key", "data", "metadata"
};

static const Oid es_column_types[NUM_COLUMNS] = {
	INT8OID, INT8OID, TIMESTAMPTZOID, XID8OID, INT4OID,
	INT4OID, UUIDOID, TEXTOID, TEXTOID,
	TEXTOID, JSONBOID, JSONBOID
};

/* The stream's partition, opened for the append. */
typedef struct EsLeaf
{
	Relation	parent;			/* eventstore.events */
	Relation	rel;			/* the leaf partition */
	int		   *colmap;			/* per leaf attribute: column, or -1 */
	AttrNumber	attnum[NUM_COLUMNS];	/* per column: leaf attribute */
	EState	   *estate;
	ResultRelInfo *rri;			/* with the leaf's indexes open */
	Relation	id_index;		/* unique (bucket, stream_id, event_id) */
} EsLeaf;

PG_FUNCTION_INFO_V1(eventstore_append);
PG_FUNCTION_INFO_V1(eventstore_append_json);
PG_FUNCTION_INFO_V1(eventstore_try_append);
PG_FUNCTION_INFO_V1(eventstore_try_append_json);
PG_FUNCTION_INFO_V1(eventstore_append_multi);
PG_FUNCTION_INFO_V1(eventstore_try_append_multi);

/* Argument checks. */

static inline void
es_check_key(text *key, const char *what)
{
	int			len = VARSIZE_ANY_EXHDR(key);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
	if (len > ES_MAX_KEY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", what),
				 errdetail("It is %d bytes long; at most %d bytes are allowed.",
						   len, ES_MAX_KEY_BYTES)));
}

static inline void
es_check_expected_version(int64 expected)
{
	if (expected < -1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid expected version %lld", (long long) expected),
				 errhint("Use NULL for any version, 0 for a new stream, -1 for an existing stream, or the exact version.")));
}

static void
es_wrong_version(EsStream *stream, int64 expected)
{
	EsCount(EsMyDatabase(), ES_COUNT_CONFLICTS, 1);
	ereport(ERROR,
			(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
			 errmsg("wrong expected version for stream \"%s\"",
					text_to_cstring(stream->stream_id)),
			 errdetail("Expected version %lld, but the stream's version is %lld.",
					   (long long) expected, (long long) stream->version),
			 errhint("Read the stream again and retry with its current version.")));
}

/* Bytes of data and metadata of the events that are not duplicates. */
static int64
es_fresh_bytes(const EsEvent *events, int n)
{
	int64		bytes = 0;

	for (int i = 0; i < n; i++)
	{
		if (events[i].duplicate)
			continue;
		bytes += VARSIZE_ANY(DatumGetPointer(events[i].data));
		if (!events[i].metadata_null)
			bytes += VARSIZE_ANY(DatumGetPointer(events[i].metadata));
	}
	return bytes;
}

/* Whether the stream's version is what the caller expects. */
static bool
es_version_matches(const EsStream *stream, bool has_expected, int64 expected)
{
	if (!has_expected)
		return true;
	if (expected == 0)
		return stream->version == 0;
	if (expected == -1)
		return stream->version != 0;
	return stream->version == expected;
}

/*
 * Lock the stream's row, or create it, assuming every event of the batch is
 * new: locking an existing row moves its version by the batch size (the
 * common case needs no second write), and a new row is inserted with the
 * batch size as its version (stream.c).  Returns with stream->exists and
 * stream->version (the version before this append) set.  A new stream is
 * checked against the expected version before it is created: if it does
 * not match, ES001 is raised, or with raise false nothing is created and
 * false returned.  An existing one is checked by the caller, once
 * duplicates are known.
 */
static bool
es_lock_or_create_stream(EsStream *stream, bool has_expected, int64 expected,
						 int nevents, TimestampTz now, bool raise)
{
	/*
	 * A failed creation means that another transaction inserted the row
	 * first; locking it then waits for that transaction and finds the row,
	 * or, if it aborted, finds none and creates it again.
	 */
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (EsStreamLock(stream, nevents, now))
			return true;

		/* The stream is new. */
		stream->version = 0;
		stream->exists = false;
		if (!es_version_matches(stream, has_expected, expected))
		{
			if (raise)
				es_wrong_version(stream, expected);
			return false;
		}

		stream->partition_key = stream->given_key ? stream->given_key : stream->stream_id;
		stream->bucket = EsBucketOf(VARDATA_ANY(stream->partition_key),
									VARSIZE_ANY_EXHDR(stream->partition_key));
		if (EsStreamCreate(stream, nevents, now))
			return true;
	}
}

/*
 * Open the stream's partition for insertion, with its indexes, and map the
 * columns by name: a partition attached later may order them otherwise.
 */
static void
es_open_leaf(EsLeaf *leaf, int bucket)
{
	Oid			nsp = get_namespace_oid("eventstore", false);
	TupleDesc	desc;

	leaf->parent = table_open(get_relname_relid("events", nsp), RowExclusiveLock);
	leaf->rel = table_open(EsPartitionForBucket(leaf->parent, bucket),
						   RowExclusiveLock);
	desc = RelationGetDescr(leaf->rel);

	for (int c = 0; c < NUM_COLUMNS; c++)
		leaf->attnum[c] = InvalidAttrNumber;
	leaf->colmap = palloc(sizeof(int) * desc->natts);
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		leaf->colmap[a] = -1;
		if (att->attisdropped)
			continue;
		for (int c = 0; c < NUM_COLUMNS; c++)
			if (strcmp(NameStr(att->attname), es_column_names[c]) == 0)
			{
				leaf->colmap[a] = c;
				leaf->attnum[c] = att->attnum;
			}
	}
	for (int c = 0; c < NUM_COLUMNS; c++)
	{
		if (leaf->attnum[c] == InvalidAttrNumber)
			elog(ERROR, "partition \"%s\" has no column \"%s\"",
				 RelationGetRelationName(leaf->rel), es_column_names[c]);
		/* the datums below are of these types */
		if (TupleDescAttr(desc, leaf->attnum[c] - 1)->atttypid != es_column_types[c])
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table eventstore.%s was altered",
							RelationGetRelationName(leaf->rel)),
					 errdetail("eventstore.append() writes column \"%s\" as %s, but it is of type %s.",
							   es_column_names[c], format_type_be(es_column_types[c]),
							   format_type_be(TupleDescAttr(desc, leaf->attnum[c] - 1)->atttypid)),
					 errhint(ES_ALTERED_HINT)));
	}

	leaf->estate = CreateExecutorState();
	leaf->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(leaf->rri, leaf->rel, 1, NULL, 0);
	ExecOpenIndices(leaf->rri, false);

	/* the unique index on (bucket, stream_id, event_id) serves the lookups */
	leaf->id_index = NULL;
	for (int i = 0; i < leaf->rri->ri_NumIndices; i++)
	{
		Relation	index = leaf->rri->ri_IndexRelationDescs[i];
		Form_pg_index form = index->rd_index;

		if (form->indisunique && form->indnkeyatts == 3 &&
			form->indkey.values[0] == leaf->attnum[COL_BUCKET] &&
			form->indkey.values[1] == leaf->attnum[COL_STREAM_ID] &&
			form->indkey.values[2] == leaf->attnum[COL_EVENT_ID])
			leaf->id_index = index;
	}
	if (leaf->id_index == NULL)
		elog(ERROR, "partition \"%s\" has no unique index on (bucket, stream_id, event_id)",
			 RelationGetRelationName(leaf->rel));
}

static void
es_close_leaf(EsLeaf *leaf)
{
	ExecCloseIndices(leaf->rri);
	FreeExecutorState(leaf->estate);
	table_close(leaf->rel, NoLock);
	table_close(leaf->parent, NoLock);
}

/*
 * Mark the events whose ids the stream already holds, with their stored
 * positions, by probing the (bucket, stream_id, event_id) index once per
 * event.  The stream's row is locked, so every earlier append to it has
 * ended; the snapshot is a new one in READ COMMITTED and the transaction's
 * in REPEATABLE READ (where a concurrent append would already have failed
 * on the row).  Returns how many events are new.
 */
static int
es_mark_duplicates(EsLeaf *leaf, EsStream *stream, EsEvent *events, int n)
{
	Relation	index = leaf->id_index;
	Snapshot	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	TupleTableSlot *slot = table_slot_create(leaf->rel, NULL);
	IndexScanDesc scan = index_beginscan(leaf->rel, index, snapshot, 3, 0);
	ScanKeyData keys[3];
	int			fresh = n;

	for (int i = 0; i < n; i++)
	{
		EsEvent    *ev = &events[i];
		bool		isnull;

		ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], F_INT4EQ,
							   Int32GetDatum(stream->bucket));
		ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[1], F_TEXTEQ,
							   PointerGetDatum(stream->stream_id));
		ScanKeyEntryInitialize(&keys[2], 0, 3, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[2], F_UUID_EQ,
							   UUIDPGetDatum(ev->event_id));
		index_rescan(scan, keys, 3, NULL, 0);
		if (!index_getnext_slot(scan, ForwardScanDirection, slot))
			continue;

		ev->duplicate = true;
		ev->stream_order = DatumGetInt64(slot_getattr(slot, leaf->attnum[COL_STREAM_ORDER], &isnull));
		ev->insert_order = DatumGetInt64(slot_getattr(slot, leaf->attnum[COL_INSERT_ORDER], &isnull));
		ExecClearTuple(slot);
		fresh--;
	}

	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	return fresh;
}

/*
 * Insert the new events into their partition in one multi-insert, then
 * their index entries.  All go to one partition: one stream, one bucket.
 */
static void
es_insert_events(EsLeaf *leaf, EsStream *stream, EsEvent *events, int n,
				 int nfresh, TimestampTz now)
{
	Relation	rel = leaf->rel;
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot **slots;
	BulkInsertState bistate;
	Datum		xid = FullTransactionIdGetDatum(GetTopFullTransactionId());
	int			k = 0;

	slots = palloc(sizeof(TupleTableSlot *) * nfresh);
	for (int i = 0; i < n; i++)
	{
		EsEvent    *ev = &events[i];
		TupleTableSlot *slot;
		Datum		col[NUM_COLUMNS];
		bool		colnull[NUM_COLUMNS] = {0};

		if (ev->duplicate)
			continue;

		col[COL_INSERT_ORDER] = Int64GetDatum(ev->insert_order);
		col[COL_STREAM_ORDER] = Int64GetDatum(ev->stream_order);
		col[COL_RECORDED_AT] = TimestampTzGetDatum(now);
		col[COL_WRITER_XID] = xid;
		col[COL_BUCKET] = Int32GetDatum(stream->bucket);
		col[COL_SCHEMA_VERSION] = Int32GetDatum(ev->schema_version);
		col[COL_EVENT_ID] = UUIDPGetDatum(ev->event_id);
		col[COL_STREAM_ID] = PointerGetDatum(stream->stream_id);
		col[COL_EVENT_TYPE] = ev->event_type;
		col[COL_PARTITION_KEY] = PointerGetDatum(stream->partition_key);
		col[COL_DATA] = ev->data;
		col[COL_METADATA] = ev->metadata;
		colnull[COL_METADATA] = ev->metadata_null;

		slot = table_slot_create(rel, NULL);
		ExecClearTuple(slot);
		for (int a = 0; a < desc->natts; a++)
		{
			int			c = leaf->colmap[a];

			slot->tts_values[a] = c < 0 ? (Datum) 0 : col[c];
			slot->tts_isnull[a] = c < 0 ? true : colnull[c];
		}
		ExecStoreVirtualTuple(slot);
		slots[k++] = slot;
	}
	Assert(k == nfresh);

	bistate = nfresh > 1 ? GetBulkInsertState() : NULL;
	table_multi_insert(rel, slots, nfresh, GetCurrentCommandId(true), 0, bistate);
	for (int i = 0; i < nfresh; i++)
	{
		List	   *recheck;

		recheck = ExecInsertIndexTuples(leaf->rri, slots[i], leaf->estate,
										false, false, NULL, NIL);
		list_free(recheck);
		ResetPerTupleExprContext(leaf->estate);
		ExecDropSingleTupleTableSlot(slots[i]);
	}
	if (bistate != NULL)
		FreeBulkInsertState(bistate);
	table_finish_bulk_insert(rel, 0);
}

/*
 * try_append's rows: one per input event, in input order, as append's
 * plus its outcome ("appended", "duplicate", or "conflict" on every row
 * when the expected version did not match, with no positions) and the
 * stream's version (after the append; the actual one on a conflict).
 */
static void
es_put_outcomes(ReturnSetInfo *rsinfo, EsEvent *events, int n, bool conflict,
				int64 version)
{
	for (int i = 0; i < n; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		values[0] = UUIDPGetDatum(events[i].event_id);
		values[1] = Int64GetDatum(events[i].stream_order);
		values[2] = Int64GetDatum(events[i].insert_order);
		nulls[1] = nulls[2] = conflict;
		values[3] = BoolGetDatum(!conflict && events[i].duplicate);
		values[4] = CStringGetTextDatum(conflict ? "conflict" :
										events[i].duplicate ? "duplicate" : "appended");
		values[5] = Int64GetDatum(version);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * eventstore.append(stream_id text, events eventstore.event_in[],
 *					 expected_version bigint DEFAULT NULL,
 *					 partition_key text DEFAULT NULL)
 * returns table (event_id uuid, stream_order bigint, insert_order bigint,
 *				  duplicate boolean)
 *
 * Appends the batch to the stream atomically: all new events are stored, or
 * none.  One row per input event, in input order.  An event whose id the
 * stream already holds is not stored again and comes back with
 * duplicate = true and its stored positions; a batch that the stream
 * already holds entirely returns its original result whatever the expected
 * version.  Otherwise expected_version is checked: NULL any, 0 the stream
 * must not exist, -1 it must exist, N > 0 its version must be exactly N.
 * partition_key is fixed by the first append (default: the stream id).
 *
 * Errors: 22004 null arguments or fields; 22023 empty or over-long ids,
 * keys and types, repeated event id in the batch, schema_version < 1,
 * expected_version < -1, empty or multi-dimensional array; 54000 too many
 * events or an event too large; ES001 wrong expected version; ES002 other
 * partition key; 40001 in REPEATABLE READ or SERIALIZABLE when another
 * transaction appended to the stream concurrently; 25006 in a read-only
 * transaction; 0A000 at PREPARE TRANSACTION; 55000 when eventstore.event_in or a partition's columns were
 * altered (by a superuser who disabled the event trigger).  Event ids are
 * unique per stream, not across streams.
 */
static Datum
es_append(FunctionCallInfo fcinfo, bool json, bool try)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EsStream	stream = {0};
	EsLeaf		leaf;
	bool		has_expected = !PG_ARGISNULL(2);
	int64		expected = has_expected ? PG_GETARG_INT64(2) : 0;
	EsEvent    *events;
	int			n;
	int			nfresh = 0;
	bool		conflict = false;
	TimestampTz now;

	EsCheckLoaded();

	/*
	 * The writes below are not statements, so nothing else refuses them in
	 * a read-only transaction (or on a standby, where every transaction is
	 * read-only).
	 */
	PreventCommandIfReadOnly("eventstore.append()");

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream_id must not be null")));
	stream.stream_id = PG_GETARG_TEXT_PP(0);
	es_check_key(stream.stream_id, "stream_id");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("events must not be null")));
	if (has_expected)
		es_check_expected_version(expected);
	if (!PG_ARGISNULL(3))
	{
		stream.given_key = PG_GETARG_TEXT_PP(3);
		es_check_key(stream.given_key, "partition_key");
	}
	events = json ? EsUnpackJsonEvents(PG_GETARG_JSONB_P(1), &n) :
		EsUnpackEvents(PG_GETARG_ARRAYTYPE_P(1), &n);
	EsCheckUniqueIds(events, n);

	InitMaterializedSRF(fcinfo, 0);
	now = GetCurrentTimestamp();

	/* a stream row locked by this transaction forbids PREPARE from here on */
	EsNoteAppend();
	if (!es_lock_or_create_stream(&stream, has_expected, expected, n, now, !try))
		conflict = true;		/* a new stream, not created */
	else
	{
		es_open_leaf(&leaf, stream.bucket);
		nfresh = n;
		if (stream.exists)
		{
			nfresh = es_mark_duplicates(&leaf, &stream, events, n);
			if (nfresh > 0 && !es_version_matches(&stream, has_expected, expected))
			{
				if (!try)
					es_wrong_version(&stream, expected);
				/* nothing is appended: the row as it was, still locked */
				EsStreamSetVersion(&stream, stream.version, stream.updated_at);
				conflict = true;
			}
			else if (nfresh < n)
				EsStreamSetVersion(&stream, stream.version + nfresh, now);
		}

		if (!conflict && nfresh > 0)
		{
			int64		position = EsAllocatePositions(nfresh);
			int64		version = stream.version;

			for (int i = 0; i < n; i++)
			{
				if (events[i].duplicate)
					continue;
				events[i].stream_order = ++version;
				events[i].insert_order = position++;
			}
			es_insert_events(&leaf, &stream, events, n, nfresh, now);
		}
		es_close_leaf(&leaf);
	}
	if (conflict)
		EsCount(EsMyDatabase(), ES_COUNT_CONFLICTS, 1);
	else
		EsCountAppend(nfresh, n - nfresh, es_fresh_bytes(events, n));

	if (try)
	{
		es_put_outcomes(rsinfo, events, n, conflict,
						conflict ? stream.version : stream.version + nfresh);
		PG_RETURN_VOID();
	}
	for (int i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = UUIDPGetDatum(events[i].event_id);
		values[1] = Int64GetDatum(events[i].stream_order);
		values[2] = Int64GetDatum(events[i].insert_order);
		values[3] = BoolGetDatum(events[i].duplicate);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * append_multi: one entry of the call, a stream to write or to check.
 */
typedef struct EsMultiEntry
{
	int			index;			/* in the call, 0-based */
	EsStream	stream;
	bool		has_expected;
	int64		expected;
	bool		check;			/* no events: the expected version only */
	EsEvent    *events;
	int			n;
	int			nfresh;
	bool		conflict;
	bool		leaf_open;
	EsLeaf		leaf;
} EsMultiEntry;

/* Which entry of the call is being unpacked, for error context. */
static void
es_multi_entry_context(void *arg)
{
	errcontext("stream %d of the call", *(int *) arg + 1);
}

static void
es_multi_wrong_type(int i, const char *key, const char *want)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("\"%s\" of stream %d must be %s", key, i + 1, want)));
}

/*
 * The entries of append_multi's JSON array: objects with "stream_id" (a
 * string), and optionally "expected_version" (an integer; null: any),
 * "partition_key" (a string or null) and "events" (an array of events as
 * append's JSON form takes them; absent or null: a check of the expected
 * version, which it then needs).  Errors: 22023 not an array of objects,
 * empty, an unknown key, a key of the wrong type, a stream named twice, a
 * check without an expected version; 22004 a missing stream_id; 54000
 * more events than eventstore.max_append_events in all; those of append's
 * arguments and events.
 */
static EsMultiEntry *
es_unpack_multi(Jsonb *call, int *count)
{
	ErrorContextCallback callback;
	EsMultiEntry *entries;
	int			n;
	int			current = 0;
	int64		total = 0;

	if (!JB_ROOT_IS_ARRAY(call) || JB_ROOT_IS_SCALAR(call))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("streams must be a JSON array of stream objects"),
				 errhint("Send [{\"stream_id\": ..., \"expected_version\": ..., \"events\": [...]}, ...].")));
	n = JB_ROOT_COUNT(call);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("streams must name at least one stream")));
	if (n > es_max_append_events)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many streams in one call"),
				 errdetail("The call names %d streams; eventstore.max_append_events is %d.",
						   n, es_max_append_events)));

	callback.callback = es_multi_entry_context;
	callback.arg = &current;
	callback.previous = error_context_stack;
	error_context_stack = &callback;

	entries = palloc0(sizeof(EsMultiEntry) * n);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&call->root, i);
		EsMultiEntry *e = &entries[i];
		JsonbIterator *it;
		JsonbIteratorToken tok;
		JsonbValue	key;
		JsonbValue	val;
		Jsonb	   *events = NULL;

		current = i;
		e->index = i;
		if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stream %d of the call is not a JSON object", i + 1)));
		it = JsonbIteratorInit(elem->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
		{
			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &val, true);
			if (EsJsonKeyIs(&key, "stream_id"))
			{
				if (val.type == jbvNull)
					continue;
				if (val.type != jbvString)
					es_multi_wrong_type(i, "stream_id", "a string");
				e->stream.stream_id = cstring_to_text_with_len(val.val.string.val,
															   val.val.string.len);
			}
			else if (EsJsonKeyIs(&key, "partition_key"))
			{
				if (val.type == jbvNull)
					continue;
				if (val.type != jbvString)
					es_multi_wrong_type(i, "partition_key", "a string");
				e->stream.given_key = cstring_to_text_with_len(val.val.string.val,
															   val.val.string.len);
			}
			else if (EsJsonKeyIs(&key, "expected_version"))
			{
				char	   *digits;

				if (val.type == jbvNull)
					continue;
				if (val.type != jbvNumeric)
					es_multi_wrong_type(i, "expected_version", "an integer");
				digits = DatumGetCString(DirectFunctionCall1(numeric_out,
															 NumericGetDatum(val.val.numeric)));
				if (strchr(digits, '.') != NULL)
					es_multi_wrong_type(i, "expected_version", "an integer");
				e->expected = DatumGetInt64(DirectFunctionCall1(numeric_int8,
																NumericGetDatum(val.val.numeric)));
				e->has_expected = true;
			}
			else if (EsJsonKeyIs(&key, "events"))
			{
				if (val.type == jbvNull)
					continue;
				if (val.type != jbvBinary || !JsonContainerIsArray(val.val.binary.data))
					es_multi_wrong_type(i, "events", "an array of events");
				events = JsonbValueToJsonb(&val);
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("stream %d has an unknown key \"%s\"", i + 1,
								pnstrdup(key.val.string.val, key.val.string.len)),
						 errhint("A stream has the keys \"stream_id\", \"expected_version\", \"partition_key\" and \"events\".")));
		}
		if (e->stream.stream_id == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("stream_id of stream %d must not be null", i + 1)));
		es_check_key(e->stream.stream_id, "stream_id");
		if (e->stream.given_key != NULL)
			es_check_key(e->stream.given_key, "partition_key");
		if (e->has_expected)
			es_check_expected_version(e->expected);
		if (events == NULL)
		{
			if (!e->has_expected)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("stream %d has neither events nor an expected version", i + 1),
						 errhint("A stream without events is a check of its expected version.")));
			e->check = true;
			continue;
		}
		e->events = EsUnpackJsonEvents(events, &e->n);
		EsCheckUniqueIds(e->events, e->n);
		total += e->n;
	}
	error_context_stack = callback.previous;

	if (total > es_max_append_events)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many events in one append"),
				 errdetail("The call has %lld events; eventstore.max_append_events is %d.",
						   (long long) total, es_max_append_events),
				 errhint("Split the call, or raise eventstore.max_append_events.")));
	*count = n;
	return entries;
}

/* The canonical order of streams: their ids' bytes, then their lengths. */
static int
es_cmp_entry_ptr(const void *a, const void *b)
{
	const EsMultiEntry *x = *(EsMultiEntry *const *) a;
	const EsMultiEntry *y = *(EsMultiEntry *const *) b;
	int			lx = VARSIZE_ANY_EXHDR(x->stream.stream_id);
	int			ly = VARSIZE_ANY_EXHDR(y->stream.stream_id);
	int			c = memcmp(VARDATA_ANY(x->stream.stream_id),
						   VARDATA_ANY(y->stream.stream_id), Min(lx, ly));

	if (c != 0)
		return c;
	return (lx > ly) - (lx < ly);
}

/*
 * Lock, create or check every stream of the call, in canonical order, and
 * mark the ones whose version does not match.  Returns how many do not.
 */
static int
es_multi_lock(EsMultiEntry **order, int count, TimestampTz now)
{
	int			nconflicts = 0;

	for (int k = 0; k < count; k++)
	{
		EsMultiEntry *e = order[k];

		if (k > 0 && es_cmp_entry_ptr(&order[k - 1], &order[k]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stream \"%s\" appears more than once in the call",
							text_to_cstring(e->stream.stream_id))));
		if (e->check)
		{
			/* lock it (no version moved), or find it missing */
			if (!EsStreamLock(&e->stream, 0, now))
			{
				e->stream.version = 0;
				e->stream.exists = false;
			}
			e->conflict = !es_version_matches(&e->stream, e->has_expected, e->expected);
		}
		else if (!es_lock_or_create_stream(&e->stream, e->has_expected, e->expected,
										   e->n, now, false))
			e->conflict = true; /* a new stream, not created */
		else
		{
			es_open_leaf(&e->leaf, e->stream.bucket);
			e->leaf_open = true;
			e->nfresh = e->n;
			if (e->stream.exists)
			{
				e->nfresh = es_mark_duplicates(&e->leaf, &e->stream, e->events, e->n);
				if (e->nfresh > 0 &&
					!es_version_matches(&e->stream, e->has_expected, e->expected))
					e->conflict = true;
				else if (e->nfresh < e->n)
					EsStreamSetVersion(&e->stream, e->stream.version + e->nfresh, now);
			}
		}
		if (e->conflict)
			nconflicts++;
	}
	return nconflicts;
}

/* ES001 naming every stream of the call whose version did not match. */
static void
es_multi_wrong_versions(EsMultiEntry *entries, int count, int nconflicts)
{
	StringInfoData detail;

	EsCount(EsMyDatabase(), ES_COUNT_CONFLICTS, nconflicts);
	initStringInfo(&detail);
	for (int i = 0; i < count; i++)
	{
		EsMultiEntry *e = &entries[i];

		if (!e->conflict)
			continue;
		appendStringInfo(&detail, "%sstream \"%s\": expected version %lld, but it is at %lld",
						 detail.len > 0 ? "; " : "",
						 text_to_cstring(e->stream.stream_id),
						 (long long) e->expected, (long long) e->stream.version);
	}
	ereport(ERROR,
			(errcode(ERRCODE_ES_WRONG_EXPECTED_VERSION),
			 errmsg("wrong expected version for %d of the %d streams of the call",
					nconflicts, count),
			 errdetail("%s.", detail.data),
			 errhint("Read the streams again and retry with their current versions.")));
}

/*
 * Positions for the call's new events, one contiguous block in the order
 * of the call, and the inserts, one partition per stream.
 */
static void
es_multi_insert(EsMultiEntry *entries, int count, TimestampTz now)
{
	int64		total = 0;
	int64		position;

	for (int i = 0; i < count; i++)
		if (!entries[i].check)
			total += entries[i].nfresh;
	if (total == 0)
		return;
	position = EsAllocatePositions(total);
	for (int i = 0; i < count; i++)
	{
		EsMultiEntry *e = &entries[i];
		int64		version = e->stream.version;

		if (e->check || e->nfresh == 0)
			continue;
		for (int j = 0; j < e->n; j++)
		{
			if (e->events[j].duplicate)
				continue;
			e->events[j].stream_order = ++version;
			e->events[j].insert_order = position++;
		}
		es_insert_events(&e->leaf, &e->stream, e->events, e->n, e->nfresh, now);
	}
}

/*
 * The writing part of a call: lock, create or check the streams, and if
 * every version matched, insert the events.  Returns how many did not.
 */
static int
es_multi_write(EsMultiEntry *entries, EsMultiEntry **order, int count,
			   TimestampTz now)
{
	int			nconflicts = es_multi_lock(order, count, now);

	if (nconflicts == 0)
		es_multi_insert(entries, count, now);
	for (int i = 0; i < count; i++)
		if (entries[i].leaf_open)
		{
			es_close_leaf(&entries[i].leaf);
			entries[i].leaf_open = false;
		}
	return nconflicts;
}

/*
 * append_multi's and try_append_multi's rows: per stream of the call, in
 * its order, one row per event (a check: one row without an event), with
 * try's outcome and the stream's version.
 */
static void
es_multi_put(ReturnSetInfo *rsinfo, EsMultiEntry *entries, int count,
			 bool failed, bool try)
{
	for (int i = 0; i < count; i++)
	{
		EsMultiEntry *e = &entries[i];
		int			rows = e->check ? 1 : e->n;
		const char *outcome;

		for (int j = 0; j < rows; j++)
		{
			EsEvent    *ev = e->check ? NULL : &e->events[j];
			Datum		values[7];
			bool		nulls[7] = {false, false, false, false, false, false, false};
			bool		positioned = ev != NULL && !failed;

			values[0] = PointerGetDatum(e->stream.stream_id);
			values[1] = ev ? UUIDPGetDatum(ev->event_id) : (Datum) 0;
			nulls[1] = ev == NULL;
			values[2] = positioned ? Int64GetDatum(ev->stream_order) : (Datum) 0;
			values[3] = positioned ? Int64GetDatum(ev->insert_order) : (Datum) 0;
			nulls[2] = nulls[3] = !positioned;
			values[4] = BoolGetDatum(positioned && ev->duplicate);
			if (try)
			{
				if (e->conflict)
					outcome = "conflict";
				else if (failed)
					outcome = "cancelled";
				else if (ev == NULL)
					outcome = "checked";
				else
					outcome = ev->duplicate ? "duplicate" : "appended";
				values[5] = CStringGetTextDatum(outcome);
				values[6] = Int64GetDatum(e->stream.version +
										  (failed || e->check ? 0 : e->nfresh));
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
}

/*
 * eventstore.append_multi(streams jsonb)
 * returns table (stream_id text, event_id uuid, stream_order bigint,
 *				  insert_order bigint, duplicate boolean)
 * eventstore.try_append_multi(streams jsonb)
 * returns the same and (outcome text, stream_version bigint)
 *
 * Appends to several streams in one call, all or nothing: every stream of
 * the call (es_unpack_multi) is locked, created or checked in canonical
 * order (the bytes of their ids), so that two calls over the same streams
 * never deadlock; each stream's batch is de-duplicated and its expected
 * version checked as append does; a stream without events is a check that
 * its version is still the expected one, and stays locked (its row is
 * locked, not changed) until the transaction ends.  If any stream's
 * version does not match, nothing is written: append_multi raises ES001
 * naming every such stream; try_append_multi returns every row with the
 * outcome "conflict" for those streams and "cancelled" for the others,
 * and each stream's actual version, having undone its locks and creations
 * in a subtransaction.  Otherwise the new events take one contiguous
 * block of positions in the order of the call.  A check that a stream
 * does not exist (expected version 0) holds when checked; it does not keep
 * another transaction from creating the stream later.
 */
static Datum
es_append_multi(FunctionCallInfo fcinfo, bool try)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EsMultiEntry *entries;
	EsMultiEntry **order;
	int			count;
	volatile int nconflicts = 0;
	TimestampTz now;
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	EsCheckLoaded();
	PreventCommandIfReadOnly("eventstore.append_multi()");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("streams must not be null")));
	entries = es_unpack_multi(PG_GETARG_JSONB_P(0), &count);
	order = palloc(sizeof(EsMultiEntry *) * count);
	for (int i = 0; i < count; i++)
		order[i] = &entries[i];
	qsort(order, count, sizeof(EsMultiEntry *), es_cmp_entry_ptr);

	InitMaterializedSRF(fcinfo, 0);
	now = GetCurrentTimestamp();
	EsNoteAppend();

	if (!try)
	{
		nconflicts = es_multi_write(entries, order, count, now);
		if (nconflicts > 0)
			es_multi_wrong_versions(entries, count, nconflicts);
	}
	else
	{
		/*
		 * try's locks and creations are undone if a version does not match:
		 * the work runs in a subtransaction of its own, which an error also
		 * rolls back before it is raised again (a caller's exception block
		 * then finds its own subtransaction current, as it must).
		 */
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(caller);
		PG_TRY();
		{
			nconflicts = es_multi_write(entries, order, count, now);
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(caller);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(caller);
			CurrentResourceOwner = owner;
			ReThrowError(edata);
		}
		PG_END_TRY();
		if (nconflicts > 0)
			RollbackAndReleaseCurrentSubTransaction();
		else
			ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}

	if (nconflicts > 0)
		EsCount(EsMyDatabase(), ES_COUNT_CONFLICTS, nconflicts);
	else
	{
		int64		fresh = 0;
		int64		duplicates = 0;
		int64		bytes = 0;

		for (int i = 0; i < count; i++)
		{
			if (entries[i].check)
				continue;
			fresh += entries[i].nfresh;
			duplicates += entries[i].n - entries[i].nfresh;
			bytes += es_fresh_bytes(entries[i].events, entries[i].n);
		}
		EsCountAppend(fresh, duplicates, bytes);
	}

	es_multi_put(rsinfo, entries, count, nconflicts > 0, try);
	PG_RETURN_VOID();
}

Datum
eventstore_append(PG_FUNCTION_ARGS)
{
	return es_append(fcinfo, false, false);
}

/*
 * eventstore.append(stream_id text, events jsonb,
 *					 expected_version bigint DEFAULT NULL,
 *					 partition_key text DEFAULT NULL)
 * returns table (event_id uuid, stream_order bigint, insert_order bigint,
 *				  duplicate boolean)
 *
 * The same append, with the events as one JSON array of objects {"type",
 * "data", "metadata"?, "id"?, "schema_version"?} (see EsUnpackJsonEvents):
 * the form a driver sends as one parameter.  The same results and errors,
 * and those of a malformed element, naming it.
 */
Datum
eventstore_append_json(PG_FUNCTION_ARGS)
{
	return es_append(fcinfo, true, false);
}

/*
 * eventstore.try_append(stream_id text, events eventstore.event_in[] or jsonb,
 *						 expected_version bigint DEFAULT NULL,
 *						 partition_key text DEFAULT NULL)
 * returns table (event_id uuid, stream_order bigint, insert_order bigint,
 *				  duplicate boolean, outcome text, stream_version bigint)
 *
 * append, with a wrong expected version returned as data instead of raised
 * (es_put_outcomes): for drivers and routers that handle results better
 * than errors.  Nothing is appended then and the stream is not created; an
 * existing stream's row stays locked until the transaction ends, as after
 * an append.  Every other error is raised as append raises it.
 */
Datum
eventstore_try_append(PG_FUNCTION_ARGS)
{
	return es_append(fcinfo, false, true);
}

Datum
eventstore_try_append_json(PG_FUNCTION_ARGS)
{
	return es_append(fcinfo, true, true);
}

Datum
eventstore_append_multi(PG_FUNCTION_ARGS)
{
	return es_append_multi(fcinfo, false);
}

Datum
eventstore_try_append_multi(PG_FUNCTION_ARGS)
{
	return es_append_multi(fcinfo, true);
}
