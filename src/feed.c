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
 * A poll of a subscription reads the same merge with a filter (event
 * types, a stream id prefix, partition keys, as subscription_matches
 * says), and a consumer group member's poll reads several bucket ranges,
 * each from its own checkpoint: one scan per range and partition holding
 * some of its buckets, all merged into one order (EsFeedBeginRanges).
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
#include "partitioning/partbounds.h"
#include "miscadmin.h"
#include "partitioning/partdesc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "eventstore.h"
#include "feed.h"
#include "guard.h"
#include "hash.h"
#include "spi.h"

const char *const es_read_names[ES_READ_NATTS] = {
	"insert_order", "stream_id", "stream_order", "event_id", "event_type",
	"schema_version", "data", "metadata", "recorded_at", "partition_key"
};

const Oid	es_read_types[ES_READ_NATTS] = {
	INT8OID, TEXTOID, INT8OID, UUIDOID, TEXTOID,
	INT4OID, JSONBOID, JSONBOID, TIMESTAMPTZOID, TEXTOID
};

/* One partition, opened. */
typedef struct EsFeedLeaf
{
	Relation	rel;
	Relation	index;			/* btree, first column insert_order */
	AttrNumber	attnum[ES_READ_NATTS];	/* per read column: its attribute */
	AttrNumber	bucket;			/* the bucket attribute */
} EsFeedLeaf;

/* One scan: a partition's events of one range. */
typedef struct EsFeedSource
{
	EsFeedLeaf *leaf;
	EsFeedRange range;
	bool		all_buckets;	/* the range holds every bucket there is */
	IndexScanDesc scan;
	TupleTableSlot *slot;		/* the scan's current row */
	int64		position;		/* insert_order of the current row */
	ScanKeyData keys[2];
} EsFeedSource;

/* A filter, as byte strings (comparisons are byte-wise, see EsFeedFilter). */
typedef struct EsFeedMatch
{
	int			ntypes;			/* -1: any type */
	text	  **types;
	text	   *prefix;			/* NULL: any stream */
	int			nkeys;			/* -1: any partition key */
	text	  **keys;
} EsFeedMatch;

struct EsFeed
{
	/* the query's rows, when the partitions are not read directly */
	Tuplestorestate *store;
	TupleTableSlot *store_slot;

	Relation	parent;
	int			nleaves;
	EsFeedLeaf *leaves;
	int			nsources;
	EsFeedSource *sources;
	EsFeedMatch match;
	bool		filtered;
	binaryheap *heap;			/* sources with a current row, lowest first */
	EsFeedSource *returned;		/* whose row EsFeedNext returned last */
	bool		started;
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
 * The index in pd of the leaf partition that holds bucket, found the way
 * tuple routing finds it, from the partition bounds; -1 if none does.
 */
static int
es_partition_index(PartitionKey key, PartitionDesc pd, int bucket)
{
	PartitionBoundInfo bounds = pd->boundinfo;
	Datum		value = Int32GetDatum(bucket);
	bool		is_equal;
	int			offset;
	int			index = -1;

	if (bounds != NULL && bounds->ndatums > 0)
	{
		offset = partition_range_datum_bsearch(key->partsupfunc,
											   key->partcollation,
											   bounds, 1, &value, &is_equal);
		index = bounds->indexes[offset + 1];
	}
	if (index < 0 && bounds != NULL && partition_bound_has_default(bounds))
		index = bounds->default_index;
	return index;
}

/* The partitioning of eventstore.events, range of bucket, or an error. */
static PartitionKey
es_partition_key(Relation parent)
{
	PartitionKey key = RelationGetPartitionKey(parent);

	if (key == NULL || key->strategy != PARTITION_STRATEGY_RANGE ||
		key->partnatts != 1 || key->parttypid[0] != INT4OID)
		elog(ERROR, "eventstore.events must be partitioned by range of bucket");
	return key;
}

/*
 * EsPartitionForBucket
 *		The leaf partition of eventstore.events that holds a bucket.  Errors:
 *		55000 no partition holds it; 0A000 a sub-partitioned partition.
 */
Oid
EsPartitionForBucket(Relation parent, int bucket)
{
	PartitionKey key = es_partition_key(parent);
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);
	int			index = es_partition_index(key, pd, bucket);

	if (index < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no partition of eventstore.events holds bucket %d", bucket),
				 errhint("Every bucket from 0 to %d needs a partition.", ES_BUCKETS - 1)));
	if (!pd->is_leaf[index])
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sub-partitioned partitions of eventstore.events are not supported")));
	return pd->oids[index];
}

/* The bucket attribute of a partition, or InvalidAttrNumber. */
static AttrNumber
es_bucket_attnum(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (!att->attisdropped && att->atttypid == INT4OID &&
			strcmp(NameStr(att->attname), "bucket") == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
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
		!EsMapReadColumns(leaf->rel, leaf->attnum) ||
		(leaf->bucket = es_bucket_attnum(leaf->rel)) == InvalidAttrNumber)
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
 * their insert_order indexes, where the read columns and the bucket are,
 * and the lowest and highest of the buckets 0 to ES_BUCKETS - 1 each
 * holds (first > last: none).  Kept for the backend until a relcache
 * invalidation of one of those relations or of eventstore.events; every
 * use still locks each relation and checks it against what is kept
 * (es_leaf_matches).
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
	AttrNumber *buckets;
	int32	   *first_bucket;
	int32	   *last_bucket;
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
	PartitionKey key = es_partition_key(parent);
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);
	int			n = Max(pd->nparts, 1);
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
		pfree(layout.buckets);
		pfree(layout.first_bucket);
		pfree(layout.last_bucket);
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	layout.rels = palloc0(sizeof(Oid) * n);
	layout.indexes = palloc0(sizeof(Oid) * n);
	layout.attnums = palloc0(sizeof(AttrNumber) * ES_READ_NATTS * n);
	layout.buckets = palloc0(sizeof(AttrNumber) * n);
	layout.first_bucket = palloc(sizeof(int32) * n);
	layout.last_bucket = palloc(sizeof(int32) * n);
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
		layout.buckets[i] = leaf.bucket;
		layout.first_bucket[i] = PG_INT32_MAX;
		layout.last_bucket[i] = PG_INT32_MIN;
		index_close(leaf.index, NoLock);
		table_close(leaf.rel, NoLock);
	}
	for (int b = 0; b < ES_BUCKETS && layout.usable; b++)
	{
		int			i = es_partition_index(key, pd, b);

		if (i < 0)
			continue;
		layout.first_bucket[i] = Min(layout.first_bucket[i], b);
		layout.last_bucket[i] = Max(layout.last_bucket[i], b);
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
	Form_pg_attribute att;

	if (leaf->rel->rd_rel->relkind != RELKIND_RELATION)
		return false;
	for (int c = 0; c < ES_READ_NATTS; c++)
	{
		if (leaf->attnum[c] < 1 || leaf->attnum[c] > desc->natts)
			return false;
		att = TupleDescAttr(desc, leaf->attnum[c] - 1);
		if (att->attisdropped || att->atttypid != es_read_types[c] ||
			strcmp(NameStr(att->attname), es_read_names[c]) != 0)
			return false;
	}
	if (leaf->bucket < 1 || leaf->bucket > desc->natts)
		return false;
	att = TupleDescAttr(desc, leaf->bucket - 1);
	if (att->attisdropped || att->atttypid != INT4OID ||
		strcmp(NameStr(att->attname), "bucket") != 0)
		return false;
	return es_usable_index(leaf->index, leaf->attnum[0]);
}

/* The binary heap is a max-heap: the lowest position compares highest. */
static int
es_source_compare(Datum a, Datum b, void *arg)
{
	int64		pa = ((EsFeedSource *) DatumGetPointer(a))->position;
	int64		pb = ((EsFeedSource *) DatumGetPointer(b))->position;

	if (pa < pb)
		return 1;
	if (pa > pb)
		return -1;
	return 0;
}

/* Whether a text value is one of n strings. */
static bool
es_text_in(Datum value, int n, text **strings)
{
	text	   *t = DatumGetTextPP(value);
	Size		len = VARSIZE_ANY_EXHDR(t);
	bool		found = false;

	for (int i = 0; i < n && !found; i++)
		found = strings[i] != NULL && VARSIZE_ANY_EXHDR(strings[i]) == len &&
			memcmp(VARDATA_ANY(strings[i]), VARDATA_ANY(t), len) == 0;
	/* a compressed value was copied: a long scan must not keep the copies */
	if ((Pointer) t != DatumGetPointer(value))
		pfree(t);
	return found;
}

/* Whether the source's current row is one the feed returns. */
static bool
es_source_wants(EsFeed *feed, EsFeedSource *source)
{
	TupleTableSlot *slot = source->slot;
	const AttrNumber *attnum = source->leaf->attnum;
	EsFeedMatch *m = &feed->match;

	if (!source->all_buckets)
	{
		int32		bucket = DatumGetInt32(slot->tts_values[source->leaf->bucket - 1]);

		if (slot->tts_isnull[source->leaf->bucket - 1] ||
			bucket < source->range.first_bucket ||
			bucket > source->range.last_bucket)
			return false;
	}
	if (!feed->filtered)
		return true;
	/* event_type, stream_id and partition_key are NOT NULL */
	if (m->ntypes >= 0 &&
		!es_text_in(slot->tts_values[attnum[4] - 1], m->ntypes, m->types))
		return false;
	if (m->prefix != NULL)
	{
		Datum		value = slot->tts_values[attnum[1] - 1];
		text	   *id = DatumGetTextPP(value);
		Size		len = VARSIZE_ANY_EXHDR(m->prefix);
		bool		starts = VARSIZE_ANY_EXHDR(id) >= len &&
			memcmp(VARDATA_ANY(id), VARDATA_ANY(m->prefix), len) == 0;

		if ((Pointer) id != DatumGetPointer(value))
			pfree(id);
		if (!starts)
			return false;
	}
	if (m->nkeys >= 0 &&
		!es_text_in(slot->tts_values[attnum[9] - 1], m->nkeys, m->keys))
		return false;
	return true;
}

/* Move a source's scan to its next wanted row.  False at its end. */
static bool
es_advance(EsFeed *feed, EsFeedSource *source)
{
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (!index_getnext_slot(source->scan, ForwardScanDirection, source->slot))
			return false;
		/* all of it now, while the tuple is in the cache */
		slot_getallattrs(source->slot);
		if (source->slot->tts_isnull[source->leaf->attnum[0] - 1])
			continue;			/* not in the index's range; cannot happen */
		if (es_source_wants(feed, source))
			break;
	}
	source->position =
		DatumGetInt64(source->slot->tts_values[source->leaf->attnum[0] - 1]);
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
 * A one-dimensional array (or an empty one), without nulls unless nulls_ok,
 * and its number of elements; NULL for a null argument.  Error: 22023.
 */
static ArrayType *
es_flat_array(Datum value, bool isnull, const char *name, bool nulls_ok, int *n)
{
	ArrayType  *array;

	*n = 0;
	if (isnull)
		return NULL;
	array = DatumGetArrayTypeP(value);
	if (ARR_NDIM(array) > 1 || (!nulls_ok && array_contains_nulls(array)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array%s", name,
						nulls_ok ? "" : " without nulls")));
	*n = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	return array;
}

/*
 * EsCheckSubscriptionFeedArgs
 *		The checks of eventstore.subscription_feed's arguments, and what
 *		they ask for, allocated in the current memory context (the filter
 *		may point into the values).  Errors: 22004 null up_to or max_count;
 *		22023 max_count < 1, a negative position, arrays of other shapes or
 *		lengths, a range whose first bucket is above its last.
 */
void
EsCheckSubscriptionFeedArgs(const Datum *values, const bool *nulls,
							EsFeedRequest *req)
{
	ArrayType  *afters;
	ArrayType  *firsts;
	ArrayType  *lasts;
	Datum	   *a = NULL;
	Datum	   *f = NULL;
	Datum	   *l = NULL;
	int			nafters;
	int			nfirsts;
	int			nlasts;
	int			n;

	if (nulls[3] || nulls[4])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("up_to and max_count must not be null")));
	req->upto = DatumGetInt64(values[3]);
	req->max_count = DatumGetInt32(values[4]);
	if (req->max_count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_count must be at least 1")));
	afters = es_flat_array(values[0], nulls[0], "after_positions", false, &nafters);
	firsts = es_flat_array(values[1], nulls[1], "first_buckets", false, &nfirsts);
	lasts = es_flat_array(values[2], nulls[2], "last_buckets", false, &nlasts);
	if ((firsts == NULL) != (lasts == NULL) ||
		(firsts != NULL && (nfirsts != nafters || nlasts != nafters)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("first_buckets and last_buckets must both be null or have one element per position")));
	req->filter.event_types = es_flat_array(values[5], nulls[5], "event_types",
											true, &n);
	req->filter.stream_prefix = nulls[6] ? NULL : DatumGetTextPP(values[6]);
	req->filter.partition_keys = es_flat_array(values[7], nulls[7],
											   "partition_keys", true, &n);
	req->filtered = req->filter.event_types != NULL ||
		req->filter.stream_prefix != NULL || req->filter.partition_keys != NULL;

	if (afters != NULL)
		deconstruct_array(afters, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &a, NULL, &n);
	if (firsts != NULL)
	{
		deconstruct_array(firsts, INT4OID, 4, true, TYPALIGN_INT, &f, NULL, &n);
		deconstruct_array(lasts, INT4OID, 4, true, TYPALIGN_INT, &l, NULL, &n);
	}
	req->nranges = nafters;
	req->ranges = palloc(sizeof(EsFeedRange) * Max(nafters, 1));
	for (int i = 0; i < nafters; i++)
	{
		EsFeedRange *range = &req->ranges[i];

		range->after = DatumGetInt64(a[i]);
		range->first_bucket = f ? DatumGetInt32(f[i]) : PG_INT32_MIN;
		range->last_bucket = l ? DatumGetInt32(l[i]) : PG_INT32_MAX;
		if (range->after < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("after_positions must not be negative")));
		if (range->first_bucket > range->last_bucket)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("first_buckets[%d] is above last_buckets[%d]",
							i + 1, i + 1)));
	}
}

/*
 * A filter list of read_all: NULL (anything), or a one-dimensional array
 * with at least one element and no nulls, as create_subscription takes
 * them.  Error: 22023.
 */
static ArrayType *
es_filter_list(Datum value, bool isnull, const char *name, int *n)
{
	ArrayType  *array = es_flat_array(value, isnull, name, false, n);

	if (array != NULL && *n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name),
				 errhint("Pass NULL for any.")));
	return array;
}

static int
es_cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * EsCheckFeedFilter
 *		The checks of a read filter given as three arguments (event_types
 *		text[], stream_prefix text, partition_keys text[]), into filter
 *		(pointing into the values).  Returns whether it filters at all.
 *		Error: 22023 a list empty, of more than one dimension or with nulls.
 */
bool
EsCheckFeedFilter(const Datum *values, const bool *nulls, EsFeedFilter *filter)
{
	int			n;

	filter->event_types = es_filter_list(values[0], nulls[0], "event_types", &n);
	filter->stream_prefix = nulls[1] ? NULL : DatumGetTextPP(values[1]);
	filter->partition_keys = es_filter_list(values[2], nulls[2], "partition_keys", &n);
	return filter->event_types != NULL || filter->stream_prefix != NULL ||
		filter->partition_keys != NULL;
}

/*
 * EsCheckReadAllArgs
 *		The checks of eventstore.read_all's arguments (after_position,
 *		max_count, event_types, stream_prefix, partition_keys) and what they
 *		ask for, allocated in the current memory context: one range of
 *		every bucket after the position, or with partition_keys one range
 *		per bucket the keys hash to, so that only the partitions holding
 *		them are read.  The filter means what a subscription's does.  upto
 *		is left to the caller, who takes the head.  Errors: 22004 null
 *		after_position or max_count; 22023 a negative after_position,
 *		max_count < 1, event_types or partition_keys empty, of more than one
 *		dimension or with nulls.
 */
void
EsCheckReadAllArgs(const Datum *values, const bool *nulls, EsFeedRequest *req)
{
	int64		after = nulls[0] ? 0 : DatumGetInt64(values[0]);

	req->max_count = nulls[1] ? 0 : DatumGetInt32(values[1]);
	EsCheckFeedArgs(nulls[0], after, nulls[1], req->max_count);
	req->upto = 0;
	req->filtered = EsCheckFeedFilter(&values[2], &nulls[2], &req->filter);

	if (req->filter.partition_keys == NULL)
	{
		req->nranges = 1;
		req->ranges = palloc(sizeof(EsFeedRange));
		req->ranges[0].after = after;
		req->ranges[0].first_bucket = PG_INT32_MIN;
		req->ranges[0].last_bucket = PG_INT32_MAX;
	}
	else
	{
		Datum	   *keys;
		int32	   *buckets;
		int			n;

		deconstruct_array(req->filter.partition_keys, TEXTOID, -1, false,
						  TYPALIGN_INT, &keys, NULL, &n);
		buckets = palloc(sizeof(int32) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			text	   *key = DatumGetTextPP(keys[i]);

			buckets[i] = EsBucketOf(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
		}
		qsort(buckets, n, sizeof(int32), es_cmp_int32);
		req->nranges = 0;
		req->ranges = palloc(sizeof(EsFeedRange) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			EsFeedRange *range;

			if (i > 0 && buckets[i] == buckets[i - 1])
				continue;
			range = &req->ranges[req->nranges++];
			range->after = after;
			range->first_bucket = buckets[i];
			range->last_bucket = buckets[i];
		}
	}
}

/* Whether a range holds every bucket, including any outside 0..ES_BUCKETS-1. */
static inline bool
es_range_is_all(const EsFeedRange *range)
{
	return range->first_bucket == PG_INT32_MIN &&
		range->last_bucket == PG_INT32_MAX;
}

/* Whether a range may hold events of layout leaf i. */
static bool
es_range_reaches(const EsFeedRange *range, int i)
{
	if (range->first_bucket < 0 || range->last_bucket >= ES_BUCKETS)
		return true;			/* buckets no partition bound tells of */
	return range->first_bucket <= layout.last_bucket[i] &&
		range->last_bucket >= layout.first_bucket[i];
}

/* A filter's strings: deconstructed, detoasted, in the caller's context. */
static void
es_prepare_match(const EsFeedFilter *filter, EsFeedMatch *m, bool *filtered)
{
	ArrayType  *arrays[2] = {filter ? filter->event_types : NULL,
	filter ? filter->partition_keys : NULL};
	int		   *counts[2] = {&m->ntypes, &m->nkeys};
	text	 ***strings[2] = {&m->types, &m->keys};

	*filtered = false;
	for (int a = 0; a < 2; a++)
	{
		Datum	   *elems;
		bool	   *elnulls;
		int			n;

		*counts[a] = -1;
		*strings[a] = NULL;
		if (arrays[a] == NULL)
			continue;
		deconstruct_array(arrays[a], TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &elnulls, &n);
		*strings[a] = palloc0(sizeof(text *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			if (!elnulls[i])
				(*strings[a])[i] = DatumGetTextPP(elems[i]);
		*counts[a] = n;
		*filtered = true;
	}
	m->prefix = NULL;
	if (filter != NULL && filter->stream_prefix != NULL)
	{
		m->prefix = pg_detoast_datum_packed(filter->stream_prefix);
		*filtered = true;
	}
}

/*
 * The direct path's scans, or NULL if it cannot read the table (see the
 * banner).
 */
static EsFeed *
es_begin_direct(int nranges, const EsFeedRange *ranges, int64 upto,
				const EsFeedFilter *filter, Snapshot snapshot)
{
	Oid			nsp;
	Oid			relid;
	EsFeed	   *feed;
	int		   *opened;

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

	/* open the partitions some range reaches, in the layout's order */
	feed->leaves = palloc0(sizeof(EsFeedLeaf) * Max(layout.nleaves, 1));
	opened = palloc(sizeof(int) * Max(layout.nleaves, 1));
	for (int i = 0; i < layout.nleaves; i++)
	{
		EsFeedLeaf *leaf = &feed->leaves[feed->nleaves];
		bool		reached = false;

		opened[i] = -1;
		for (int r = 0; r < nranges && !reached; r++)
			reached = es_range_reaches(&ranges[r], i);
		if (!reached)
			continue;
		leaf->rel = table_open(layout.rels[i], AccessShareLock);
		leaf->index = index_open(layout.indexes[i], AccessShareLock);
		memcpy(leaf->attnum, layout.attnums[i], sizeof(leaf->attnum));
		leaf->bucket = layout.buckets[i];
		opened[i] = feed->nleaves++;
		if (!es_leaf_matches(leaf))
		{
			layout.valid = false;
			pfree(opened);
			EsFeedEnd(feed);
			return NULL;
		}
	}

	es_prepare_match(filter, &feed->match, &feed->filtered);

	/* one scan per range and partition it reaches */
	feed->sources = palloc0(sizeof(EsFeedSource) *
							Max(nranges * feed->nleaves, 1));
	for (int r = 0; r < nranges; r++)
		for (int i = 0; i < layout.nleaves; i++)
		{
			EsFeedSource *source;

			if (opened[i] < 0 || !es_range_reaches(&ranges[r], i))
				continue;
			source = &feed->sources[feed->nsources++];
			source->leaf = &feed->leaves[opened[i]];
			source->range = ranges[r];
			source->all_buckets = es_range_is_all(&ranges[r]);
			ScanKeyInit(&source->keys[0], 1, BTGreaterStrategyNumber, F_INT8GT,
						Int64GetDatum(ranges[r].after));
			ScanKeyInit(&source->keys[1], 1, BTLessEqualStrategyNumber, F_INT8LE,
						Int64GetDatum(upto));
			source->slot = table_slot_create(source->leaf->rel, NULL);
			source->scan = index_beginscan(source->leaf->rel,
										   source->leaf->index, snapshot, 2, 0);
			index_rescan(source->scan, source->keys, 2, NULL, 0);
		}
	pfree(opened);
	feed->heap = binaryheap_allocate(Max(feed->nsources, 1), es_source_compare,
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
 * The whole feed has a query of its own, the one read_all ran before it
 * read the partitions itself; ranges and filters run as one query per
 * range, merged.
 */
static EsFeed *
es_begin_query(int nranges, const EsFeedRange *ranges, int64 upto,
			   int64 limit, const EsFeedFilter *filter, Snapshot snapshot)
{
	static SPIPlanPtr whole_plan = NULL;
	static SPIPlanPtr ranges_plan = NULL;
	EsFeed	   *feed = palloc0(sizeof(EsFeed));
	MemoryContext caller = CurrentMemoryContext;
	Datum		values[8];
	char		nulls[8];
	SPIPlanPtr	plan;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	memset(nulls, ' ', sizeof(nulls));
	if (nranges == 1 && es_range_is_all(&ranges[0]) && filter == NULL)
	{
		Oid			types[3] = {INT8OID, INT8OID, INT8OID};

		plan = EsKeptPlan(&whole_plan,
						  "SELECT insert_order, stream_id, stream_order, event_id, "
						  "event_type, schema_version, data, metadata, recorded_at, "
						  "partition_key FROM eventstore.events "
						  "WHERE insert_order OPERATOR(pg_catalog.>) $1 "
						  "AND insert_order OPERATOR(pg_catalog.<=) $2 "
						  "ORDER BY insert_order LIMIT $3",
						  3, types);
		values[0] = Int64GetDatum(ranges[0].after);
		values[1] = Int64GetDatum(upto);
		values[2] = Int64GetDatum(limit);
	}
	else
	{
		Oid			types[8] = {INT8ARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
		INT8OID, INT8OID, TEXTARRAYOID, TEXTOID, TEXTARRAYOID};
		Datum	   *afters = palloc(sizeof(Datum) * Max(nranges, 1));
		Datum	   *firsts = palloc(sizeof(Datum) * Max(nranges, 1));
		Datum	   *lasts = palloc(sizeof(Datum) * Max(nranges, 1));

		plan = EsKeptPlan(&ranges_plan,
						  "SELECT e.insert_order, e.stream_id, e.stream_order, "
						  "e.event_id, e.event_type, e.schema_version, e.data, "
						  "e.metadata, e.recorded_at, e.partition_key "
						  "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
						  "pg_catalog.unnest($3)) r(after, lo, hi) "
						  "CROSS JOIN LATERAL (SELECT x.* FROM eventstore.events x "
						  "WHERE x.bucket OPERATOR(pg_catalog.>=) r.lo "
						  "AND x.bucket OPERATOR(pg_catalog.<=) r.hi "
						  "AND x.insert_order OPERATOR(pg_catalog.>) r.after "
						  "AND x.insert_order OPERATOR(pg_catalog.<=) $4 "
						  "AND eventstore.subscription_matches($6, $7, $8, "
						  "x.event_type, x.stream_id, x.partition_key) "
						  "ORDER BY x.insert_order LIMIT $5) e "
						  "ORDER BY e.insert_order LIMIT $5",
						  8, types);
		for (int r = 0; r < nranges; r++)
		{
			afters[r] = Int64GetDatum(ranges[r].after);
			firsts[r] = Int32GetDatum(ranges[r].first_bucket);
			lasts[r] = Int32GetDatum(ranges[r].last_bucket);
		}
		values[0] = PointerGetDatum(construct_array(afters, nranges, INT8OID,
													8, true, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(firsts, nranges, INT4OID,
													4, true, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(lasts, nranges, INT4OID,
													4, true, TYPALIGN_INT));
		values[3] = Int64GetDatum(upto);
		values[4] = Int64GetDatum(limit);
		values[5] = PointerGetDatum(filter ? filter->event_types : NULL);
		nulls[5] = filter && filter->event_types ? ' ' : 'n';
		values[6] = PointerGetDatum(filter ? filter->stream_prefix : NULL);
		nulls[6] = filter && filter->stream_prefix ? ' ' : 'n';
		values[7] = PointerGetDatum(filter ? filter->partition_keys : NULL);
		nulls[7] = filter && filter->partition_keys ? ' ' : 'n';
	}
	rc = SPI_execute_snapshot(plan, values, nulls, snapshot, InvalidSnapshot,
							  true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading events failed: %s", SPI_result_code_string(rc));
	EsCollectRows(SPI_tuptable, caller,
				  plan == whole_plan ? "eventstore.read_all()" : "eventstore.poll()",
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
	EsFeedRange all = {after, PG_INT32_MIN, PG_INT32_MAX};

	return EsFeedBeginRanges(1, &all, upto, limit, NULL, snapshot);
}

/*
 * EsFeedBeginRanges
 *		The same for the events of several bucket ranges, each after its
 *		own position, merged into one insert_order, that pass filter (NULL:
 *		all).  A range from PG_INT32_MIN to PG_INT32_MAX holds every event.
 *		The ranges, filter and what they point to must stay until EsFeedEnd.
 */
EsFeed *
EsFeedBeginRanges(int nranges, const EsFeedRange *ranges, int64 upto,
				  int64 limit, const EsFeedFilter *filter, Snapshot snapshot)
{
	EsFeed	   *feed = es_begin_direct(nranges, ranges, upto, filter, snapshot);

	if (feed == NULL)
		feed = es_begin_query(nranges, ranges, upto, limit, filter, snapshot);
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
	EsFeedSource *source;

	if (feed->store != NULL)
		return EsNextCollected(feed->store, feed->store_slot, values, nulls);

	if (!feed->started)
	{
		for (int i = 0; i < feed->nsources; i++)
			if (es_advance(feed, &feed->sources[i]))
				binaryheap_add_unordered(feed->heap,
										 PointerGetDatum(&feed->sources[i]));
		binaryheap_build(feed->heap);
		feed->started = true;
	}
	else if (feed->returned != NULL)
	{
		/* the source returned last is the heap's first */
		if (es_advance(feed, feed->returned))
			binaryheap_replace_first(feed->heap, PointerGetDatum(feed->returned));
		else
			(void) binaryheap_remove_first(feed->heap);
	}

	feed->returned = NULL;
	if (binaryheap_empty(feed->heap))
		return false;
	source = (EsFeedSource *) DatumGetPointer(binaryheap_first(feed->heap));
	feed->returned = source;

	for (int c = 0; c < ES_READ_NATTS; c++)
	{
		values[c] = source->slot->tts_values[source->leaf->attnum[c] - 1];
		nulls[c] = source->slot->tts_isnull[source->leaf->attnum[c] - 1];
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
	for (int i = 0; i < feed->nsources; i++)
	{
		EsFeedSource *source = &feed->sources[i];

		if (source->scan != NULL)
			index_endscan(source->scan);
		if (source->slot != NULL)
			ExecDropSingleTupleTableSlot(source->slot);
	}
	for (int i = 0; i < feed->nleaves; i++)
	{
		index_close(feed->leaves[i].index, NoLock);
		table_close(feed->leaves[i].rel, NoLock);
	}
	if (feed->heap != NULL)
		binaryheap_free(feed->heap);
	table_close(feed->parent, NoLock);
	if (feed->sources != NULL)
		pfree(feed->sources);
	pfree(feed->leaves);
	pfree(feed);
}
