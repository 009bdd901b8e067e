/*-------------------------------------------------------------------------
 *
 * streamscan.h
 *		One stream's events read straight from its partition.
 *
 * src/streamscan.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_STREAMSCAN_H
#define ES_STREAMSCAN_H

#include "utils/relcache.h"
#include "utils/snapshot.h"

typedef struct EsStreamScan EsStreamScan;

/* The arguments of read_stream, checked. */
typedef struct EsStreamScanArgs
{
	text	   *stream_id;
	int64		from;
	bool		backwards;
	int64		limit;			/* -1: all */
} EsStreamScanArgs;

extern void EsCheckStreamScanArgs(const Datum *values, const bool *nulls,
							  EsStreamScanArgs *args);

extern EsStreamScan *EsStreamScanBegin(const EsStreamScanArgs *args, Snapshot snapshot);
extern bool EsStreamScanNext(EsStreamScan *r, Datum *values, bool *nulls);
extern void EsStreamScanEnd(EsStreamScan *r);

#endif							/* ES_STREAMSCAN_H */
