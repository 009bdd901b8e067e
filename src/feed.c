/*-------------------------------------------------------------------------
 *
 * feed.c
 *		The global feed read straight from the partitions of
 *		eventstore.events: a merge of their insert_order indexes.
 *
 * Every partition has an index on insert_order, and positions are unique
 * across the table, so the events in global order are the merge of one
 * forward index scan per partition.  EsFeedBegin opens those scans with
 * the caller's snapshot and bounds (after < insert_order <= upto), and
 * EsFeedNext returns one event at a time, the lowest position among the
 * scans' current rows, kept in a binary heap.  Nothing is collected: the
 * scans advance as rows are taken, the way the executor's MergeAppend over
 * index scans would, without the executor's per-call plan start-up over
 * every partition and its per-row slot traffic.
 *
 * The scans are the index access method's own, so they take the same
 * predicate locks as a query would in SERIALIZABLE.  Privileges are
 * checked as a query's would be, on the schema and on eventstore.events (a
 * query through the parent needs no privileges on the partitions).
 *
 * This path covers the store as the extension creates it.  When anything
 * differs (no USAGE on the schema, SELECT granted only on some columns,
 * row-level security enabled on the table, a partition that is not a plain
 * table or has no usable btree index whose first column is insert_order,
 * columns missing or of other types), EsFeedBegin runs the equivalent
 * query instead and returns its rows: the query applies the policies,
 * raises the permission error, or its columns are reported as an altered
 * table.  What the partitions
 * look like is kept per backend until a relcache invalidation of one of
 * them; each use still locks every relation it reads and checks it.
 *
 * src/feed.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/binaryheap.h"
#include "miscadmin.h"
#include "partitioning/partdesc.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "eventstore.h"
#include "feed.h"
#include "guard.h"
#include "spi.h"

const char *const es_read_names[ES_READ_NATTS] = {
	"insert_order", "stream_id", "stream_order", "event_id", "event_type",
	"schema_version", "data", "metadata", "recorded_at", "partition_key"
};

const Oid	es_read_types[ES_READ_NATTS] = {
	INT8OID, TEXTOID, INT8OID, UUIDOID, TEXTOID,
	INT4OID, JSONBOID, JSONBOID, TIMESTAMPTZOID, TEXTOID
};

/* One partition's scan. */
typedef struct EsFeedLeaf
{
	Relation	rel;
	Relation	index;			/* btree, first column insert_order */
	IndexScanDesc scan;
	TupleTableSlot *slot;		/* the scan's current row */
	AttrNumber	attnum[ES_READ_NATTS];	/* per read column: its attribute */
	int64		position;		/* insert_order of the current row */
} EsFeedLeaf;

struct EsFeed
{
	/* the query's rows, when the partitions are not read directly */
	Tuplestorestate *store;
	TupleTableSlot *store_slot;

	Relation	parent;
	int			nleaves;
	EsFeedLeaf *leaves;
	binaryheap *heap;			/* leaves with a current row, lowest first */
	EsFeedLeaf *returned;		/* whose row EsFeedNext returned last */
	bool		started;
	ScanKeyData keys[2];
};

/*
 * EsMapReadColumns
 *		Map the read columns to a partition's attributes, by name.  False if
 *		one is missing or of another type.
 */
bool
EsMapReadColumns(Relation rel, AttrNumber *attnum)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int c = 0; c < ES_READ_NATTS; c++)
		attnum[c] = InvalidAttrNumber;
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attisdropped)
			continue;
		for (int c = 0; c < ES_READ_NATTS; c++)
			if (strcmp(NameStr(att->attname), es_read_names[c]) == 0)
			{
				if (att->atttypid != es_read_types[c])
					return false;
				attnum[c] = att->attnum;
			}
	}
	for (int c = 0; c < ES_READ_NATTS; c++)
		if (attnum[c] == InvalidAttrNumber)
			return false;
	return true;
}

/*
 * Whether index can serve an ordered scan of insert_order for the
 * snapshot: a valid, non-partial btree whose first key column is the
 * insert_order attribute, ascending, with the integer operator family, and
 * usable by the transaction (the planner's indcheckxmin rule).
 */
static bool
es_usable_index(Relation index, AttrNumber insert_order)
{
	Form_pg_index form = index->rd_index;

	if (!form->indisvalid || !form->indisready || !form->indislive)
		return false;
	if (index->rd_rel->relam != BTREE_AM_OID)
		return false;
	if (form->indnkeyatts < 1 || form->indkey.values[0] != insert_order)
		return false;
	if (index->rd_opfamily[0] != INTEGER_BTREE_FAM_OID ||
		index->rd_indoption[0] != 0)
		return false;
	if (RelationGetIndexPredicate(index) != NIL)
		return false;
	if (form->indcheckxmin &&
		!TransactionIdPrecedes(HeapTupleHeaderGetXmin(index->rd_indextuple->t_data),
							   TransactionXmin))
		return false;
	return true;
}

/*
 * Open a partition and find its insert_order index.  False, with whatever
 * was opened closed again (the locks stay), if the partition is not one
 * this path can read.
 */
static bool
es_open_leaf(EsFeedLeaf *leaf, Oid relid)
{
	List	   *indexes;
	ListCell   *lc;

	leaf->rel = table_open(relid, AccessShareLock);
	leaf->index = NULL;
	if (leaf->rel->rd_rel->relkind != RELKIND_RELATION ||
		!EsMapReadColumns(leaf->rel, leaf->attnum))
	{
		table_close(leaf->rel, NoLock);
		return false;
	}

	indexes = RelationGetIndexList(leaf->rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);

		if (es_usable_index(index, leaf->attnum[0]))
		{
			leaf->index = index;
			break;
		}
		index_close(index, NoLock);
	}
	list_free(indexes);
	if (leaf->index == NULL)
	{
		table_close(leaf->rel, NoLock);
		return false;
	}
	return true;
}

/*
 * What the direct path found in the partitions last time: their OIDs,
 * their insert_order indexes and where the read columns are.  Kept for the
 * backend until a relcache invalidation of one of those relations or of
 * eventstore.events; every use still locks each relation and checks it
 * against what is kept (es_leaf_matches).
 */
typedef struct EsFeedLayout
{
	bool		valid;
	bool		usable;			/* false: read through the query */
	Oid			parent;
	int			nleaves;
	Oid		   *rels;
	Oid		   *indexes;
	AttrNumber (*attnums)[ES_READ_NATTS];
} EsFeedLayout;

static EsFeedLayout layout = {0};
static bool layout_callback_registered = false;

/*
 * While es_build_layout runs, the layout is not valid, and any
 * invalidation (the relations it concerns are not all known yet) makes
 * what it builds good for that one use only.  A build that fails part way
 * (a lock timeout, a cancel) leaves the layout invalid, to be built again.
 */
static bool layout_building = false;
static bool layout_build_stale = false;

static void
es_layout_invalidate(Datum arg, Oid relid)
{
	if (layout_building)
		layout_build_stale = true;
	if (!layout.valid)
		return;
	if (relid == InvalidOid || relid == layout.parent)
	{
		layout.valid = false;
		return;
	}
	for (int i = 0; i < layout.nleaves; i++)
		if (relid == layout.rels[i] || relid == layout.indexes[i])
			layout.valid = false;
}

/* Find the layout of the partitions of parent, which the caller locked. */
static void
es_build_layout(Relation parent)
{
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);
	MemoryContext old;

	if (!layout_callback_registered)
	{
		CacheRegisterRelcacheCallback(es_layout_invalidate, (Datum) 0);
		layout_callback_registered = true;
	}
	if (layout.rels != NULL)
	{
		pfree(layout.rels);
		pfree(layout.indexes);
		pfree(layout.attnums);
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	layout.rels = palloc0(sizeof(Oid) * Max(pd->nparts, 1));
	layout.indexes = palloc0(sizeof(Oid) * Max(pd->nparts, 1));
	layout.attnums = palloc0(sizeof(AttrNumber) * ES_READ_NATTS * Max(pd->nparts, 1));
	MemoryContextSwitchTo(old);

	layout.valid = false;
	layout_building = true;
	layout_build_stale = false;
	layout.parent = RelationGetRelid(parent);
	layout.nleaves = pd->nparts;
	layout.usable = true;
	for (int i = 0; i < pd->nparts && layout.usable; i++)
	{
		EsFeedLeaf	leaf;

		if (!pd->is_leaf[i] || !es_open_leaf(&leaf, pd->oids[i]))
		{
			layout.usable = false;
			break;
		}
		layout.rels[i] = RelationGetRelid(leaf.rel);
		layout.indexes[i] = RelationGetRelid(leaf.index);
		memcpy(layout.attnums[i], leaf.attnum, sizeof(leaf.attnum));
		index_close(leaf.index, NoLock);
		table_close(leaf.rel, NoLock);
	}
	layout_building = false;
	layout.valid = !layout_build_stale;
}

/*
 * Whether the opened partition and index are still as the layout says:
 * the columns where they were, of their types, and the index usable.
 */
static bool
es_leaf_matches(EsFeedLeaf *leaf)
{
	TupleDesc	desc = RelationGetDescr(leaf->rel);

	if (leaf->rel->rd_rel->relkind != RELKIND_RELATION)
		return false;
	for (int c = 0; c < ES_READ_NATTS; c++)
	{
		Form_pg_attribute att;

		if (leaf->attnum[c] < 1 || leaf->attnum[c] > desc->natts)
			return false;
		att = TupleDescAttr(desc, leaf->attnum[c] - 1);
		if (att->attisdropped || att->atttypid != es_read_types[c] ||
			strcmp(NameStr(att->attname), es_read_names[c]) != 0)
			return false;
	}
	return es_usable_index(leaf->index, leaf->attnum[0]);
}

/* The binary heap is a max-heap: the lowest position compares highest. */
static int
es_leaf_compare(Datum a, Datum b, void *arg)
{
	int64		pa = ((EsFeedLeaf *) DatumGetPointer(a))->position;
	int64		pb = ((EsFeedLeaf *) DatumGetPointer(b))->position;

	if (pa < pb)
		return 1;
	if (pa > pb)
		return -1;
	return 0;
}

/* Move a partition's scan to its next row.  False at its end. */
static bool
es_advance(EsFeedLeaf *leaf)
{
	bool		isnull;

	CHECK_FOR_INTERRUPTS();
	if (!index_getnext_slot(leaf->scan, ForwardScanDirection, leaf->slot))
		return false;
	/* all of it now, while the tuple is in the cache */
	slot_getallattrs(leaf->slot);
	leaf->position = DatumGetInt64(slot_getattr(leaf->slot, leaf->attnum[0],
												&isnull));
	return true;
}

/*
 * EsCheckFeedArgs
 *		The checks of read_all's arguments.  Errors: 22004 a null argument;
 *		22023 a negative after_position or max_count below 1.
 */
void
EsCheckFeedArgs(bool after_null, int64 after, bool max_null, int32 max_count)
{
	if (after_null || max_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("after_position and max_count must not be null")));
	if (after < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after_position must not be negative")));
	if (max_count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must be at least 1")));
}

/*
 * The direct path's scans, or NULL if it cannot read the table (see the
 * banner).
 */
static EsFeed *
es_begin_direct(int64 after, int64 upto, Snapshot snapshot)
{
	Oid			nsp;
	Oid			relid;
	EsFeed	   *feed;

	/* the query's checks: USAGE on the schema, SELECT on the table */
	nsp = get_namespace_oid("eventstore", false);
	relid = get_relname_relid("events", nsp);
	if (!OidIsValid(relid) ||
		pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) != ACLCHECK_OK ||
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return NULL;

	feed = palloc0(sizeof(EsFeed));
	feed->parent = table_open(relid, AccessShareLock);
	if (feed->parent->rd_rel->relkind != RELKIND_PARTITIONED_TABLE ||
		check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
	{
		table_close(feed->parent, NoLock);
		pfree(feed);
		return NULL;
	}

	/* locking the table has processed the invalidations that concern us */
	if (!layout.valid || layout.parent != relid)
		es_build_layout(feed->parent);
	if (!layout.usable)
	{
		table_close(feed->parent, NoLock);
		pfree(feed);
		return NULL;
	}

	feed->leaves = palloc0(sizeof(EsFeedLeaf) * Max(layout.nleaves, 1));
	for (int i = 0; i < layout.nleaves; i++)
	{
		EsFeedLeaf *leaf = &feed->leaves[i];

		leaf->rel = table_open(layout.rels[i], AccessShareLock);
		leaf->index = index_open(layout.indexes[i], AccessShareLock);
		memcpy(leaf->attnum, layout.attnums[i], sizeof(leaf->attnum));
		feed->nleaves = i + 1;
		if (!es_leaf_matches(leaf))
		{
			layout.valid = false;
			EsFeedEnd(feed);
			return NULL;
		}
	}

	ScanKeyInit(&feed->keys[0], 1, BTGreaterStrategyNumber, F_INT8GT,
				Int64GetDatum(after));
	ScanKeyInit(&feed->keys[1], 1, BTLessEqualStrategyNumber, F_INT8LE,
				Int64GetDatum(upto));
	for (int i = 0; i < feed->nleaves; i++)
	{
		EsFeedLeaf *leaf = &feed->leaves[i];

		leaf->slot = table_slot_create(leaf->rel, NULL);
		leaf->scan = index_beginscan(leaf->rel, leaf->index, snapshot, 2, 0);
		index_rescan(leaf->scan, feed->keys, 2, NULL, 0);
	}
	feed->heap = binaryheap_allocate(Max(feed->nleaves, 1), es_leaf_compare,
									 NULL);
	return feed;
}

/*
 * EsCollectRows
 *		Check the columns of the last SPI result (NULL: there was no query,
 *		no rows) against the read columns, as user's, and copy its rows into
 *		a new tuplestore in memory context cxt, returned with a slot to read
 *		them with EsNextCollected.  Error: 55000 when the log's columns were
 *		altered.
 */
void
EsCollectRows(SPITupleTable *result, MemoryContext cxt, const char *user,
			  Tuplestorestate **store, TupleTableSlot **slot)
{
	MemoryContext old;
	TupleDesc	desc;

	if (result != NULL)
		EsCheckRowType(result->tupdesc, es_read_types, ES_READ_NATTS,
					   "table eventstore.events", user);
	old = MemoryContextSwitchTo(cxt);
	*store = tuplestore_begin_heap(false, false, work_mem);
	desc = CreateTemplateTupleDesc(ES_READ_NATTS);
	for (int c = 0; c < ES_READ_NATTS; c++)
		TupleDescInitEntry(desc, c + 1, es_read_names[c], es_read_types[c], -1, 0);
	for (uint64 i = 0; result != NULL && i < result->numvals; i++)
		tuplestore_puttuple(*store, result->vals[i]);
	*slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	MemoryContextSwitchTo(old);
}

/*
 * EsNextCollected
 *		The next row collected by EsCollectRows, as the read columns.  False
 *		when there are no more.
 */
bool
EsNextCollected(Tuplestorestate *store, TupleTableSlot *slot, Datum *values,
				bool *nulls)
{
	if (!tuplestore_gettupleslot(store, true, false, slot))
		return false;
	slot_getallattrs(slot);
	memcpy(values, slot->tts_values, sizeof(Datum) * ES_READ_NATTS);
	memcpy(nulls, slot->tts_isnull, sizeof(bool) * ES_READ_NATTS);
	return true;
}

/*
 * The same events through a query, collected into a tuplestore: the query
 * applies row-level security and column privileges, raises the permission
 * error, and its columns are checked against the types the rows must have.
 */
static EsFeed *
es_begin_query(int64 after, int64 upto, int64 limit, Snapshot snapshot)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	EsFeed	   *feed = palloc0(sizeof(EsFeed));
	MemoryContext caller = CurrentMemoryContext;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	EsKeptPlan(&plan,
			   "SELECT insert_order, stream_id, stream_order, event_id, "
			   "event_type, schema_version, data, metadata, recorded_at, "
			   "partition_key FROM eventstore.events "
			   "WHERE insert_order OPERATOR(pg_catalog.>) $1 "
			   "AND insert_order OPERATOR(pg_catalog.<=) $2 "
			   "ORDER BY insert_order LIMIT $3",
			   3, types);
	values[0] = Int64GetDatum(after);
	values[1] = Int64GetDatum(upto);
	values[2] = Int64GetDatum(limit);
	rc = SPI_execute_snapshot(plan, values, NULL, snapshot, InvalidSnapshot,
							  true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading events failed: %s", SPI_result_code_string(rc));
	EsCollectRows(SPI_tuptable, caller, "eventstore.read_all()",
				  &feed->store, &feed->store_slot);
	SPI_finish();
	return feed;
}

/*
 * EsFeedBegin
 *		Open the events with after < insert_order <= upto, in insert_order,
 *		as snapshot sees them; at most limit of them are wanted.
 *
 * The snapshot must stay registered until EsFeedEnd.  Locks taken are
 * kept to the end of the transaction, as a query's are.  When the
 * partitions cannot be read directly (see the banner), the first limit
 * events are read by a query instead.  Errors: 42501 without SELECT on
 * the columns read; 55000 when the log's columns were altered.
 */
EsFeed *
EsFeedBegin(int64 after, int64 upto, int64 limit, Snapshot snapshot)
{
	EsFeed	   *feed = es_begin_direct(after, upto, snapshot);

	if (feed == NULL)
		feed = es_begin_query(after, upto, limit, snapshot);
	return feed;
}

/*
 * EsFeedNext
 *		The next event in insert_order, as the attributes of
 *		eventstore.recorded_event in values and nulls.  False when there are
 *		no more.
 *
 * The values point into a buffer or a tuplestore and are valid until the
 * next call or EsFeedEnd: copy them out (tuplestore_putvalues does) before.
 */
bool
EsFeedNext(EsFeed *feed, Datum *values, bool *nulls)
{
	EsFeedLeaf *leaf;

	if (feed->store != NULL)
		return EsNextCollected(feed->store, feed->store_slot, values, nulls);

	if (!feed->started)
	{
		for (int i = 0; i < feed->nleaves; i++)
			if (es_advance(&feed->leaves[i]))
				binaryheap_add_unordered(feed->heap,
										 PointerGetDatum(&feed->leaves[i]));
		binaryheap_build(feed->heap);
		feed->started = true;
	}
	else if (feed->returned != NULL)
	{
		/* the leaf returned last is the heap's first */
		if (es_advance(feed->returned))
			binaryheap_replace_first(feed->heap, PointerGetDatum(feed->returned));
		else
			(void) binaryheap_remove_first(feed->heap);
	}

	feed->returned = NULL;
	if (binaryheap_empty(feed->heap))
		return false;
	leaf = (EsFeedLeaf *) DatumGetPointer(binaryheap_first(feed->heap));
	feed->returned = leaf;

	for (int c = 0; c < ES_READ_NATTS; c++)
	{
		values[c] = leaf->slot->tts_values[leaf->attnum[c] - 1];
		nulls[c] = leaf->slot->tts_isnull[leaf->attnum[c] - 1];
	}
	return true;
}

/*
 * EsFeedEnd
 *		End the scans and close the relations; the locks stay until the end
 *		of the transaction.
 */
void
EsFeedEnd(EsFeed *feed)
{
	if (feed->store != NULL)
	{
		ExecDropSingleTupleTableSlot(feed->store_slot);
		tuplestore_end(feed->store);
		pfree(feed);
		return;
	}
	for (int i = 0; i < feed->nleaves; i++)
	{
		EsFeedLeaf *leaf = &feed->leaves[i];

		if (leaf->scan != NULL)
			index_endscan(leaf->scan);
		if (leaf->slot != NULL)
			ExecDropSingleTupleTableSlot(leaf->slot);
		index_close(leaf->index, NoLock);
		table_close(leaf->rel, NoLock);
	}
	if (feed->heap != NULL)
		binaryheap_free(feed->heap);
	table_close(feed->parent, NoLock);
	pfree(feed->leaves);
	pfree(feed);
}
