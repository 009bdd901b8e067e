/*-------------------------------------------------------------------------
 *
 * eventstore.h
 *		Types, constants and entry points shared by the eventstore sources.
 *
 * Each .c file exports a small set of functions declared here, grouped by
 * the file that defines them.  SQL-callable functions are not declared:
 * PG_FUNCTION_INFO_V1 does that.
 *
 * src/eventstore.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_H
#define EVENTSTORE_H

#include "postgres.h"

#include "access/transam.h"
#include "executor/spi.h"
#include "utils/snapshot.h"

/* Partition keys hash into this many buckets; see hash.c. */
#define ES_BUCKETS				1024

/* Longest stream id and partition key, in bytes. */
#define ES_MAX_KEY_BYTES		1024

/* Longest event type, in bytes. */
#define ES_MAX_TYPE_BYTES		255

/*
 * Width of the position blocks reserved in eventstore.position_blocks; it
 * must equal the sequence's INCREMENT BY.
 */
#define ES_POSITION_BLOCK		INT64CONST(65536)

/* SQLSTATEs of the extension's own class "ES". */
#define ERRCODE_ES_WRONG_EXPECTED_VERSION	MAKE_SQLSTATE('E','S','0','0','1')
#define ERRCODE_ES_PARTITION_KEY_MISMATCH	MAKE_SQLSTATE('E','S','0','0','2')
#define ERRCODE_ES_APPEND_ONLY				MAKE_SQLSTATE('E','S','0','0','3')

/* guc.c */
extern int	es_max_append_events;
extern int	es_max_event_size_kb;
extern int	es_max_databases;
extern int	es_commit_history;
extern void EsGucInit(void);

/* hash.c */
extern uint32 EsFnv1a(const char *data, int len);
extern int	EsBucketOf(const char *key, int len);

/* position.c */
extern void EsPositionInit(void);
extern void EsCheckLoaded(void);
extern int64 EsAllocatePositions(int count);
extern void EsAdoptPositions(int64 highest);
extern int64 EsHead(void);
extern bool EsTickerAttach(void);
extern void EsTickerDetach(bool clean);
extern bool EsTickerStopRequested(void);
extern bool EsStopTicker(Oid dboid);

/* ticker.c */
extern int	es_tick_interval_ms;
extern int	es_tick_retention_s;
extern int	es_tick_keep;
extern void EsTickerInit(void);
extern void EsStartTicker(Oid dboid);
extern int64 EsLastTick(void);

/* spi.c */
extern SPIPlanPtr EsKeptPlan(SPIPlanPtr *cache, const char *sql, int nargs,
							 Oid *argtypes);
extern int64 EsStoredMax(void);

/* guard.c */
extern bool es_append_active;

/* gate.c: nothing beyond its SQL-callable function, the subscription gate */

/* append.c, read.c: nothing beyond their SQL-callable functions */

#endif							/* EVENTSTORE_H */
