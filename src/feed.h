/*-------------------------------------------------------------------------
 *
 * feed.h
 *		Events read straight from the partitions of eventstore.events: the
 *		global feed as a merge of their insert_order indexes, whole or
 *		filtered, and the partition that holds a bucket.
 *
 * src/feed.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_FEED_H
#define ES_FEED_H

#include "executor/spi.h"
#include "utils/array.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/*
 * The columns of a read event, the attributes of eventstore.recorded_event:
 * insert_order, stream_id, stream_order, event_id, event_type,
 * schema_version, data, metadata, recorded_at, partition_key.
 */
#define ES_READ_NATTS 10
extern const char *const es_read_names[ES_READ_NATTS];
extern const Oid es_read_types[ES_READ_NATTS];

typedef struct EsFeed EsFeed;

/*
 * Events of buckets first_bucket to last_bucket after a position: one
 * consumer group partition from its checkpoint.
 */
typedef struct EsFeedRange
{
	int64		after;
	int32		first_bucket;
	int32		last_bucket;
} EsFeedRange;

/*
 * Which events a subscription wants, as eventstore.subscription_matches
 * says: the event type one of event_types, the stream id starting with
 * stream_prefix, the partition key one of partition_keys; NULL for any.
 * Text compares byte by byte, as the database's deterministic collations
 * do for equality and prefixes.  The arrays are one-dimensional; a NULL
 * element matches nothing.
 */
typedef struct EsFeedFilter
{
	ArrayType  *event_types;
	text	   *stream_prefix;
	ArrayType  *partition_keys;
} EsFeedFilter;

extern bool EsMapReadColumns(Relation rel, AttrNumber *attnum);
extern void EsCollectRows(SPITupleTable *result, MemoryContext cxt,
						  const char *user, Tuplestorestate **store,
						  TupleTableSlot **slot);
extern bool EsNextCollected(Tuplestorestate *store, TupleTableSlot *slot,
							Datum *values, bool *nulls);

/* A call of eventstore.subscription_feed, its arguments checked. */
#define ES_SUBSCRIPTION_FEED_NARGS 8
typedef struct EsFeedRequest
{
	int			nranges;
	EsFeedRange *ranges;
	int64		upto;
	int32		max_count;
	bool		filtered;		/* whether filter says anything */
	EsFeedFilter filter;
} EsFeedRequest;

extern void EsCheckSubscriptionFeedArgs(const Datum *values, const bool *nulls,
										EsFeedRequest *req);

extern bool EsCheckFeedFilter(const Datum *values, const bool *nulls,
							  EsFeedFilter *filter);

/* A call of eventstore.read_all, its arguments checked (upto: the caller's). */
#define ES_READ_ALL_NARGS 5
extern void EsCheckReadAllArgs(const Datum *values, const bool *nulls,
							   EsFeedRequest *req);
extern void EsCheckFeedArgs(bool after_null, int64 after, bool max_null,
							int32 max_count);
extern Oid	EsPartitionForBucket(Relation parent, int bucket);
extern EsFeed *EsFeedBegin(int64 after, int64 upto, int64 limit,
						   Snapshot snapshot);
extern EsFeed *EsFeedBeginRanges(int nranges, const EsFeedRange *ranges,
								 int64 upto, int64 limit,
								 const EsFeedFilter *filter,
								 Snapshot snapshot);
extern bool EsFeedNext(EsFeed *feed, Datum *values, bool *nulls);
extern void EsFeedEnd(EsFeed *feed);

#endif							/* ES_FEED_H */
