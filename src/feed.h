/*-------------------------------------------------------------------------
 *
 * feed.h
 *		Events read straight from the partitions of eventstore.events: the
 *		global feed as a merge of their insert_order indexes.
 *
 * src/feed.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_FEED_H
#define ES_FEED_H

#include "executor/spi.h"
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

extern bool EsMapReadColumns(Relation rel, AttrNumber *attnum);
extern void EsCollectRows(SPITupleTable *result, MemoryContext cxt,
						  const char *user, Tuplestorestate **store,
						  TupleTableSlot **slot);
extern bool EsNextCollected(Tuplestorestate *store, TupleTableSlot *slot,
							Datum *values, bool *nulls);

extern void EsCheckFeedArgs(bool after_null, int64 after, bool max_null,
							int32 max_count);
extern EsFeed *EsFeedBegin(int64 after, int64 upto, int64 limit,
						   Snapshot snapshot);
extern bool EsFeedNext(EsFeed *feed, Datum *values, bool *nulls);
extern void EsFeedEnd(EsFeed *feed);

#endif							/* ES_FEED_H */
