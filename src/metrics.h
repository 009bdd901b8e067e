/*-------------------------------------------------------------------------
 *
 * metrics.h
 *		Counters of what eventstore does, per database, in shared memory.
 *
 * src/metrics.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include "shmem.h"

extern void EsMetricsInit(void);
extern void EsCount(EsDatabase *db, EsCounterId counter, uint64 n);
extern void EsCountAppend(int64 events, int64 duplicates, int64 bytes);

#endif							/* ES_METRICS_H */
