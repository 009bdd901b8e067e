/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		Shared memory of eventstore: one entry per database, with its lock,
 *		its appenders' slots, its ring of recent commits and its ticker.
 *
 * See shmem.c for the layout and the locking rules.
 *
 * src/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_SHMEM_H
#define ES_SHMEM_H

#include "access/transam.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

/* One appending commit, remembered for snapshot readers (head.c). */
typedef struct EsCommit
{
	FullTransactionId xid;		/* top-level xid of the appender */
	int64		lowest;			/* lowest position the transaction held */
} EsCommit;

/*
 * One backend's open appending transaction in one database, and its wait
 * for the head (head.c) if one is in progress.
 */
typedef struct EsSlot
{
	int64		lowest;			/* 0: holds no position */
	int			pid;
	FullTransactionId xid;
	TimestampTz xact_start;

	/* a wait_for in progress, woken by the ticker once the head passes */
	Latch	   *wait_latch;		/* NULL: none */
	pg_atomic_uint64 wait_after;
} EsSlot;

/*
 * The counters of one database (metrics.c).  ES_COUNT_APPENDS to
 * ES_COUNT_BYTES count committed work; the others count as it happens.
 */
typedef enum EsCounterId
{
	ES_COUNT_APPENDS,			/* append calls committed */
	ES_COUNT_EVENTS,			/* events stored and committed */
	ES_COUNT_DUPLICATES,		/* events found stored already, committed */
	ES_COUNT_BYTES,				/* data and metadata of the events committed */
	ES_COUNT_ROLLED_BACK,		/* events stored by transactions that aborted */
	ES_COUNT_CONFLICTS,			/* wrong expected versions */
	ES_COUNT_TICKS,				/* ticks recorded */
	ES_COUNT_WAKEUPS,			/* waiters woken by the ticker */
	ES_COUNT_WAITS,				/* wait_for calls */
	ES_COUNT_WAIT_TIMEOUTS,		/* wait_for calls that timed out */
	ES_NUM_COUNTERS
} EsCounterId;

/*
 * The state of one database.  dboid changes only under the registry lock
 * and the entry's lock together; everything else only under the entry's
 * lock.
 */
typedef struct EsDatabase
{
	Oid			dboid;			/* InvalidOid when the entry is free */
	LWLock	   *lock;

	/* allocation (position.c) */
	bool		seeded;			/* next and reserved_end are valid */
	Oid			seq;			/* the sequence reserved_end refers to */
	int64		next;			/* next position to hand out */
	int64		reserved_end;	/* last position of the reserved blocks */
	uint64		releases;		/* slots released so far: the ticker's cue */

	/* commits remembered for snapshot readers (head.c) */
	uint64		commits_added;	/* ring writes so far */
	FullTransactionId evicted_xid;	/* newest xid dropped from the ring */

	/* the ticker (ticker.c), supervised by the launcher (launcher.c) */
	int			ticker_pid;		/* 0 when none is attached */
	Latch	   *ticker_latch;
	bool		ticker_wanted;	/* the database needs a ticker */
	int			ticker_stops;	/* commands that need the database alone */
	bool		ticker_recheck; /* look at the catalog, even if idle */

	/* counters (metrics.c): atomics, read and added without the lock */
	pg_atomic_uint64 counters[ES_NUM_COUNTERS];
	pg_atomic_uint64 counters_reset_at; /* a TimestampTz */

	EsSlot	   *slots;			/* EsSlotCount() entries, one per backend */
	EsCommit   *ring;			/* EsRingSize() entries */
} EsDatabase;

extern void EsShmemInit(void);
extern void EsCheckLoaded(void);

extern EsDatabase *EsMyDatabase(void);
extern EsDatabase *EsFindDatabase(Oid dboid);
extern int	EsDatabaseCount(void);
extern EsDatabase *EsDatabaseAt(int i);
extern void EsForgetDatabase(Oid dboid);

extern int	EsSlotCount(void);
extern EsSlot *EsMySlot(EsDatabase *db);
extern int	EsRingSize(void);

extern void EsSetLauncher(Latch *latch);
extern void EsWakeLauncher(void);

#endif							/* ES_SHMEM_H */
