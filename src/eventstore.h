/*-------------------------------------------------------------------------
 *
 * eventstore.h
 *		Limits and SQLSTATEs shared by the eventstore sources.
 *
 * Each .c file that exports functions has a header of its own (shmem.h,
 * position.h, ...); this one holds only the limits and SQLSTATEs the files
 * share, and the check of the PostgreSQL version.  SQL-callable functions
 * are not declared: PG_FUNCTION_INFO_V1 does that.
 *
 * Files import only downward, in this order: guc, spi, shmem, hash
 * (bucket_of needs the preload check), launcher, position, head, ticker,
 * utility, and above them the SQL functions and what they share (guard,
 * event, stream, feed, streamscan, append, read, readscan, gate): stream
 * writes a stream's row for append, feed and streamscan read the
 * partitions directly for read and readscan.
 *
 * src/eventstore.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef EVENTSTORE_H
#define EVENTSTORE_H

#include "postgres.h"

/*
 * Only PostgreSQL 15 is built and tested: later majors changed functions
 * this code calls (ExecInsertIndexTuples, MyBackendId), and 15.0 lacks
 * InitMaterializedSRF.
 */
#if PG_VERSION_NUM < 150001 || PG_VERSION_NUM >= 160000
#error "eventstore requires PostgreSQL 15.1 or a later 15.x release"
#endif

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

#endif							/* EVENTSTORE_H */
