/*-------------------------------------------------------------------------
 *
 * position.h
 *		Allocation of global positions to appending transactions.
 *
 * src/position.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_POSITION_H
#define ES_POSITION_H

#include "shmem.h"

/*
 * Highest position the allocator hands out or adopts: the last block then
 * still ends below PG_INT64_MAX.
 */
#define ES_MAX_POSITION		(PG_INT64_MAX - ES_POSITION_BLOCK)

extern void EsPositionInit(void);
extern Oid	EsSeeded(EsDatabase *db);
extern void EsNoteAppend(void);
extern int64 EsAllocatePositions(int count);

#endif							/* ES_POSITION_H */
