/*-------------------------------------------------------------------------
 *
 * stream.h
 *		The stream's row in eventstore.streams, locked, created and updated
 *		by append() below the executor.
 *
 * src/stream.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_STREAM_H
#define ES_STREAM_H

#include "datatype/timestamp.h"

/* The stream a batch goes to. */
typedef struct EsStream
{
	text	   *stream_id;
	text	   *given_key;		/* the caller's partition key, or NULL */
	text	   *partition_key;	/* the stream's partition key */
	int			bucket;
	int64		version;		/* before this append; 0 if it is new */
	TimestampTz updated_at;		/* the row's, before this append */
	bool		exists;
} EsStream;

extern bool EsStreamLock(EsStream *stream, int64 add, TimestampTz now);
extern bool EsStreamCreate(EsStream *stream, int64 version, TimestampTz now);
extern void EsStreamSetVersion(EsStream *stream, int64 version, TimestampTz now);

#endif							/* ES_STREAM_H */
