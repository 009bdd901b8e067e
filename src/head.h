/*-------------------------------------------------------------------------
 *
 * head.h
 *		The head of the feed: the highest position a reader may read up to
 *		without ever skipping a committed event.
 *
 * src/head.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_HEAD_H
#define ES_HEAD_H

#include "shmem.h"

extern void EsHeadInit(void);
extern int64 EsHead(void);
extern bool EsHeadNow(EsDatabase *db, int64 *head);
extern int64 EsLastTick(void);
extern int	EsWakeWaiters(EsDatabase *db);

#endif							/* ES_HEAD_H */
