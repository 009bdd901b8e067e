/*-------------------------------------------------------------------------
 *
 * streamscan.c
 *		One stream's events read straight from its partition: the stream's
 *		bucket from eventstore.streams' primary key, then a range of the
 *		partition's primary key (bucket, stream_id, stream_order).
 *
 * A query over the partitioned table would lock and open every partition
 * and its indexes before pruning all but one, on every call; this reads
 * the stream's row and then the one partition, with the caller's snapshot,
 * through the indexes' own scans (which take the predicate locks
 * SERIALIZABLE needs).  Privileges are checked as a query's would be, on
 * the schema, eventstore.streams and eventstore.events.
 *
 * As in feed.c, anything other than the store as the extension creates it
 * (no USAGE on the schema, row-level security on either table, SELECT
 * granted only on some columns, a partition that is not a plain table, an
 * index other than the extension's, columns missing or of other types)
 * makes EsStreamScanBegin read the events with the equivalent queries
 * instead, so that policies and privileges apply and an altered table is
 * reported.
 *
 * Appends to one stream commit in stream order (they queue on the stream's
 * row), so a stream read has no gaps to guard against.
 *
 * src/streamscan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "eventstore.h"
#include "feed.h"
#include "spi.h"
#include "streamscan.h"

struct EsStreamScan
{
	/* the queries' rows, when the tables are not read directly */
	Tuplestorestate *store;
	TupleTableSlot *store_slot;

	Relation	parent;			/* eventstore.events */
	Relation	rel;			/* the stream's partition */
	Relation	index;			/* its (bucket, stream_id, stream_order) key */
	IndexScanDesc scan;
	TupleTableSlot *slot;
	AttrNumber	attnum[ES_READ_NATTS];
	ScanDirection direction;
	ScanKeyData keys[3];
};

/* Whether role may read the table directly: SELECT on all of it, no policies. */
static bool
es_readable(Oid relid)
{
	return OidIsValid(relid) &&
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK &&
		check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED;
}

/*
 * Whether index is a valid, non-partial btree whose leading key columns
 * are the given attributes, with the default ordering.
 */
static bool
es_index_on(Relation index, int nkeys, const AttrNumber *attnums)
{
	Form_pg_index form = index->rd_index;

	if (!form->indisvalid || !form->indisready || !form->indislive ||
		index->rd_rel->relam != BTREE_AM_OID || form->indnkeyatts < nkeys ||
		RelationGetIndexPredicate(index) != NIL)
		return false;
	for (int i = 0; i < nkeys; i++)
		if (form->indkey.values[i] != attnums[i] || index->rd_indoption[i] != 0)
			return false;
	if (form->indcheckxmin &&
		!TransactionIdPrecedes(HeapTupleHeaderGetXmin(index->rd_indextuple->t_data),
							   TransactionXmin))
		return false;
	return true;
}

/*
 * The stream's bucket from eventstore.streams' primary key.  Returns
 * false, with *found untouched, if the table cannot be read directly.
 */
static bool
es_lookup_bucket(Oid relid, text *stream_id, Snapshot snapshot, bool *found,
				 int *bucket)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	id_att = InvalidAttrNumber;
	AttrNumber	bucket_att = InvalidAttrNumber;
	Oid			pkey;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData key;
	bool		isnull;

	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), "stream_id") == 0 && att->atttypid == TEXTOID)
			id_att = att->attnum;
		if (strcmp(NameStr(att->attname), "bucket") == 0 && att->atttypid == INT4OID)
			bucket_att = att->attnum;
	}
	pkey = RelationGetPrimaryKeyIndex(rel);
	if (rel->rd_rel->relkind != RELKIND_RELATION || id_att == InvalidAttrNumber ||
		bucket_att == InvalidAttrNumber || !OidIsValid(pkey))
	{
		table_close(rel, NoLock);
		return false;
	}
	index = index_open(pkey, AccessShareLock);
	if (!es_index_on(index, 1, &id_att) || index->rd_index->indnkeyatts != 1)
	{
		index_close(index, NoLock);
		table_close(rel, NoLock);
		return false;
	}

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ,
						   PointerGetDatum(stream_id));
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	*found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (*found)
	{
		*bucket = DatumGetInt32(slot_getattr(slot, bucket_att, &isnull));
		if (isnull)
			*found = false;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return true;
}

/*
 * Open the scan of the stream's partition.  False, with what was opened
 * closed again (the locks stay), if the partition cannot be read directly.
 */
static bool
es_open_stream_scan(EsStreamScan *r, Oid events, int bucket, text *stream_id,
					int64 from, bool backwards, Snapshot snapshot)
{
	List	   *indexes;
	ListCell   *lc;
	AttrNumber	keyatts[3];
	TupleDesc	desc;

	r->parent = table_open(events, AccessShareLock);
	if (r->parent->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
	{
		table_close(r->parent, NoLock);
		return false;
	}
	r->rel = table_open(EsPartitionForBucket(r->parent, bucket), AccessShareLock);
	if (r->rel->rd_rel->relkind != RELKIND_RELATION ||
		!EsMapReadColumns(r->rel, r->attnum))
	{
		table_close(r->rel, NoLock);
		table_close(r->parent, NoLock);
		return false;
	}

	/* the key: bucket, then stream_id and stream_order of the read columns */
	desc = RelationGetDescr(r->rel);
	keyatts[0] = InvalidAttrNumber;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (!att->attisdropped && att->atttypid == INT4OID &&
			strcmp(NameStr(att->attname), "bucket") == 0)
			keyatts[0] = att->attnum;
	}
	keyatts[1] = r->attnum[1];	/* stream_id */
	keyatts[2] = r->attnum[2];	/* stream_order */

	r->index = NULL;
	indexes = keyatts[0] == InvalidAttrNumber ? NIL : RelationGetIndexList(r->rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		if (index->rd_index->indisunique && index->rd_index->indnkeyatts == 3 &&
			es_index_on(index, 3, keyatts))
		{
			r->index = index;
			break;
		}
		index_close(index, NoLock);
	}
	list_free(indexes);
	if (r->index == NULL)
	{
		table_close(r->rel, NoLock);
		table_close(r->parent, NoLock);
		return false;
	}

	ScanKeyEntryInitialize(&r->keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   r->index->rd_indcollation[0], F_INT4EQ,
						   Int32GetDatum(bucket));
	ScanKeyEntryInitialize(&r->keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   r->index->rd_indcollation[1], F_TEXTEQ,
						   PointerGetDatum(stream_id));
	if (backwards)
		ScanKeyEntryInitialize(&r->keys[2], 0, 3, BTLessEqualStrategyNumber,
							   InvalidOid, r->index->rd_indcollation[2],
							   F_INT8LE, Int64GetDatum(from));
	else
		ScanKeyEntryInitialize(&r->keys[2], 0, 3, BTGreaterEqualStrategyNumber,
							   InvalidOid, r->index->rd_indcollation[2],
							   F_INT8GE, Int64GetDatum(from));
	r->direction = backwards ? BackwardScanDirection : ForwardScanDirection;
	r->slot = table_slot_create(r->rel, NULL);
	r->scan = index_beginscan(r->rel, r->index, snapshot, 3, 0);
	index_rescan(r->scan, r->keys, 3, NULL, 0);
	return true;
}

/*
 * The same rows through the queries, collected into a tuplestore, with
 * the columns checked against the types the rows must have.
 */
static void
es_read_by_query(EsStreamScan *r, text *stream_id, int64 from, bool backwards,
				 int64 limit, Snapshot snapshot)
{
	static SPIPlanPtr bucket_plan = NULL;
	static SPIPlanPtr forward_plan = NULL;
	static SPIPlanPtr backward_plan = NULL;
	Oid			bucket_types[1] = {TEXTOID};
	Oid			types[4] = {INT4OID, TEXTOID, INT8OID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	MemoryContext caller = CurrentMemoryContext;
	SPITupleTable *result = NULL;
	bool		isnull;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	EsKeptPlan(&bucket_plan,
			   "SELECT bucket FROM eventstore.streams "
			   "WHERE stream_id OPERATOR(pg_catalog.=) $1",
			   1, bucket_types);
	EsKeptPlan(&forward_plan,
			   "SELECT insert_order, stream_id, stream_order, event_id, "
			   "event_type, schema_version, data, metadata, recorded_at, "
			   "partition_key FROM eventstore.events "
			   "WHERE bucket OPERATOR(pg_catalog.=) $1 "
			   "AND stream_id OPERATOR(pg_catalog.=) $2 "
			   "AND stream_order OPERATOR(pg_catalog.>=) $3 "
			   "ORDER BY stream_order LIMIT $4",
			   4, types);
	EsKeptPlan(&backward_plan,
			   "SELECT insert_order, stream_id, stream_order, event_id, "
			   "event_type, schema_version, data, metadata, recorded_at, "
			   "partition_key FROM eventstore.events "
			   "WHERE bucket OPERATOR(pg_catalog.=) $1 "
			   "AND stream_id OPERATOR(pg_catalog.=) $2 "
			   "AND stream_order OPERATOR(pg_catalog.<=) $3 "
			   "ORDER BY stream_order DESC LIMIT $4",
			   4, types);

	values[0] = PointerGetDatum(stream_id);
	rc = SPI_execute_snapshot(bucket_plan, values, NULL, snapshot,
							  InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "looking up the stream failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		values[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
								  &isnull);
		values[1] = PointerGetDatum(stream_id);
		values[2] = Int64GetDatum(from);
		values[3] = Int64GetDatum(limit);
		if (limit < 0)
			nulls[3] = 'n';
		rc = SPI_execute_snapshot(backwards ? backward_plan : forward_plan,
								  values, nulls, snapshot, InvalidSnapshot,
								  true, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading events failed: %s", SPI_result_code_string(rc));
		result = SPI_tuptable;
	}
	EsCollectRows(result, caller, "eventstore.read_stream()", &r->store,
				  &r->store_slot);
	SPI_finish();
}

/*
 * EsCheckStreamScanArgs
 *		Check read_stream's arguments (stream_id, from_stream_order,
 *		max_count, backwards) and fill args.  Errors: 22004 a null
 *		stream_id or backwards; 22023 from_stream_order or max_count below
 *		1.  A null from_stream_order is the first (or, backwards, the last)
 *		event; a null max_count is all of them.
 */
void
EsCheckStreamScanArgs(const Datum *values, const bool *nulls, EsStreamScanArgs *args)
{
	if (nulls[0])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream_id must not be null")));
	if (nulls[3])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("backwards must not be null")));
	args->stream_id = DatumGetTextPP(values[0]);
	args->backwards = DatumGetBool(values[3]);
	if (nulls[1])
		args->from = args->backwards ? PG_INT64_MAX : 1;
	else
	{
		args->from = DatumGetInt64(values[1]);
		if (args->from < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("from_stream_order must be at least 1")));
	}
	args->limit = -1;
	if (!nulls[2])
	{
		if (DatumGetInt32(values[2]) < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_count must be at least 1")));
		args->limit = DatumGetInt32(values[2]);
	}
}

/*
 * EsStreamScanBegin
 *		Open the stream's events as snapshot sees them: stream_order >=
 *		from ascending, or <= from descending (backwards); at most limit of
 *		them are wanted (-1: all).  The snapshot must stay registered or
 *		active until EsStreamScanEnd; locks are kept to the end of the
 *		transaction.  An unknown stream has no events.  Errors: 42501
 *		without SELECT on the columns read; 55000 when the log's columns
 *		were altered or no partition holds the stream's bucket.
 */
EsStreamScan *
EsStreamScanBegin(const EsStreamScanArgs *args, Snapshot snapshot)
{
	text	   *stream_id = args->stream_id;
	int64		from = args->from;
	bool		backwards = args->backwards;
	int64		limit = args->limit;
	EsStreamScan *r = palloc0(sizeof(EsStreamScan));
	Oid			nsp = get_namespace_oid("eventstore", false);
	Oid			streams = get_relname_relid("streams", nsp);
	Oid			events = get_relname_relid("events", nsp);
	bool		found = false;
	int			bucket = 0;

	if (pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) == ACLCHECK_OK &&
		es_readable(streams) && es_readable(events) &&
		es_lookup_bucket(streams, stream_id, snapshot, &found, &bucket))
	{
		if (!found)
			return r;			/* no rows */
		if (es_open_stream_scan(r, events, bucket, stream_id, from, backwards,
								snapshot))
			return r;
	}
	es_read_by_query(r, stream_id, from, backwards, limit, snapshot);
	return r;
}

/*
 * EsStreamScanNext
 *		The stream's next event, as the attributes of
 *		eventstore.recorded_event.  False when there are no more.  The values
 *		are valid until the next call or EsStreamScanEnd.
 */
bool
EsStreamScanNext(EsStreamScan *r, Datum *values, bool *nulls)
{
	TupleTableSlot *slot;

	if (r->store != NULL)
		return EsNextCollected(r->store, r->store_slot, values, nulls);
	if (r->scan == NULL)
		return false;

	CHECK_FOR_INTERRUPTS();
	slot = r->slot;
	if (!index_getnext_slot(r->scan, r->direction, slot))
		return false;
	slot_getallattrs(slot);
	for (int c = 0; c < ES_READ_NATTS; c++)
	{
		values[c] = slot->tts_values[r->attnum[c] - 1];
		nulls[c] = slot->tts_isnull[r->attnum[c] - 1];
	}
	return true;
}

/*
 * EsStreamScanEnd
 *		End the scan and close the relations; the locks stay until the end
 *		of the transaction.
 */
void
EsStreamScanEnd(EsStreamScan *r)
{
	if (r->store != NULL)
	{
		ExecDropSingleTupleTableSlot(r->store_slot);
		tuplestore_end(r->store);
	}
	if (r->scan != NULL)
	{
		index_endscan(r->scan);
		ExecDropSingleTupleTableSlot(r->slot);
		index_close(r->index, NoLock);
		table_close(r->rel, NoLock);
		table_close(r->parent, NoLock);
	}
	pfree(r);
}
