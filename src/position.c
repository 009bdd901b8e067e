/*-------------------------------------------------------------------------
 *
 * position.c
 *		The global order: allocation of positions and the head of the feed.
 *
 * Every event gets a position (insert_order) that is unique and increasing
 * across the whole database.  Writers commit in any order, so a reader that
 * simply followed the highest committed position would skip events whose
 * writers commit late.  The head is the highest position below which every
 * allocated position belongs to a finished transaction; eventstore.read_all
 * never returns events above it, and a reader that resumes from the last
 * position it saw can therefore never skip a committed event.
 *
 * Shared state, per database that uses the extension:
 *
 *	next			next position to hand out
 *	reserved_end	last position of the block reserved in the WAL-logged
 *					sequence eventstore.position_blocks
 *	commits			a ring of the most recent appending commits, used to
 *					find the head of an older snapshot (see below)
 *
 * and, per backend, a slot with the lowest position that its open
 * transaction holds (0 when it holds none).
 *
 * Note about locking and visibility:
 *
 * One LWLock (tranche "eventstore") protects all of it.  An appender takes
 * it exclusively to hand itself positions and, in the same step, to record
 * the lowest of them in its slot; so no reader can ever observe a position
 * as allocated without also observing the slot that holds it open.  The
 * slot is cleared from the transaction callback.  In CommitTransaction that
 * callback runs after ProcArrayEndTransaction, so by the time the slot is
 * clear the commit is visible to every snapshot taken afterwards; on abort
 * the events are invisible forever.  A reader computes, under the lock,
 *
 *		head = min(next - 1, min(lowest of open slots) - 1)
 *
 * and only then takes the snapshot it reads with.  Every position at or
 * below the head was then allocated by a transaction that had already
 * ended, so the snapshot sees exactly the committed ones.  Only appenders
 * hold the head back: unrelated transactions, read-only queries and other
 * databases have no slot here.
 *
 * A REPEATABLE READ or SERIALIZABLE transaction reads with a snapshot taken
 * before it computes the head; appenders that committed after that snapshot
 * but before the head was computed are invisible to it, yet no longer hold
 * a slot.  Each appending commit therefore also enters a per-database ring
 * (top-level full xid, lowest position).  The head of a snapshot is the head as
 * of now, lowered below the lowest position of every ring entry whose xid
 * the snapshot still sees as running.  The ring has a fixed size; an entry
 * dropped from it is harmless to snapshots whose xmin is above its xid, and
 * a snapshot older than that gets a serialization failure instead of a
 * head that might skip.  The result is cached for the rest of the
 * transaction, so only the first call of a transaction depends on the ring.
 *
 * Durability: blocks are reserved with nextval() on the sequence, which is
 * WAL-logged before any position from the block can be committed, so a
 * crash can never hand out a committed position again.  After a restart the
 * allocator starts above the sequence's last value (pg_dump keeps it) and
 * above the highest stored position (which covers rows written without the
 * allocator, and a restore that set the sequence back).  When the extension
 * is dropped and created again, its new log starts afresh.
 *
 * src/position.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "eventstore.h"

#if PG_VERSION_NUM >= 170000
#define ES_MY_SLOT()		(MyProcNumber)
#else
#define ES_MY_SLOT()		(MyBackendId - 1)
#endif

/* One appending commit, remembered for snapshot readers. */
typedef struct EsCommit
{
	FullTransactionId xid;		/* top-level xid of the appender */
	int64		lowest;			/* lowest position the transaction held */
} EsCommit;

/* Allocation state of one database. */
typedef struct EsDatabase
{
	Oid			dboid;			/* InvalidOid when the entry is free */
	bool		seeded;			/* next and reserved_end are valid */
	Oid			seq;			/* the sequence reserved_end refers to */
	int64		next;
	int64		reserved_end;
	uint64		commits_added;	/* ring writes so far */
	FullTransactionId evicted_xid;	/* newest xid dropped from the ring */
	Latch	   *ticker_latch;	/* the ticker's latch, NULL when none runs */
	int			ticker_pid;
	bool		ticker_stop;	/* asks the ticker to exit */
	TimestampTz ticker_requested;	/* when a ticker was last asked to start */
} EsDatabase;

/* One backend's open transaction. */
typedef struct EsSlot
{
	int			db;				/* index into dbs[], or -1 */
	int			pid;
	int64		lowest;			/* 0: holds no position */
	FullTransactionId xid;
	TimestampTz xact_start;
} EsSlot;

typedef struct EsShared
{
	LWLock	   *lock;
	int			ndbs;
	int			nslots;
	int			ring_size;
	EsDatabase *dbs;			/* ndbs entries */
	EsSlot	   *slots;			/* nslots entries */
	EsCommit   *rings;			/* ndbs * ring_size entries */
} EsShared;

static EsShared *es_shared = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Backend-local state. */
static int	my_db = -1;			/* cached index of this database */
static bool xact_holds_positions = false;
static bool exit_callback_registered = false;
static bool xact_head_valid = false;
static int64 xact_head = 0;

static void es_shmem_exit(int code, Datum arg);

PG_FUNCTION_INFO_V1(eventstore_head);
PG_FUNCTION_INFO_V1(eventstore_open_appenders);

static int
es_slot_count(void)
{
#if PG_VERSION_NUM >= 150000
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
#else
	return MaxConnections + autovacuum_max_workers + 1 +
		max_worker_processes + max_wal_senders + NUM_AUXILIARY_PROCS +
		max_prepared_xacts;
#endif
}

static Size
es_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(sizeof(EsShared));
	size = add_size(size, MAXALIGN(mul_size(es_max_databases, sizeof(EsDatabase))));
	size = add_size(size, MAXALIGN(mul_size(es_slot_count(), sizeof(EsSlot))));
	size = add_size(size, mul_size(mul_size(es_max_databases, es_commit_history),
								   sizeof(EsCommit)));
	return size;
}

static void
es_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(es_shmem_size());
	RequestNamedLWLockTranche("eventstore", 1);
}

static void
es_shmem_startup(void)
{
	bool		found;
	char	   *p;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	p = ShmemInitStruct("eventstore", es_shmem_size(), &found);
	es_shared = (EsShared *) p;
	if (!found)
	{
		es_shared->lock = &(GetNamedLWLockTranche("eventstore"))->lock;
		es_shared->ndbs = es_max_databases;
		es_shared->nslots = es_slot_count();
		es_shared->ring_size = es_commit_history;
		p += MAXALIGN(sizeof(EsShared));
		es_shared->dbs = (EsDatabase *) p;
		p += MAXALIGN(mul_size(es_shared->ndbs, sizeof(EsDatabase)));
		es_shared->slots = (EsSlot *) p;
		p += MAXALIGN(mul_size(es_shared->nslots, sizeof(EsSlot)));
		es_shared->rings = (EsCommit *) p;

		for (int i = 0; i < es_shared->ndbs; i++)
		{
			es_shared->dbs[i].dboid = InvalidOid;
			es_shared->dbs[i].seeded = false;
			es_shared->dbs[i].ticker_latch = NULL;
			es_shared->dbs[i].ticker_pid = 0;
		}
		for (int i = 0; i < es_shared->nslots; i++)
		{
			es_shared->slots[i].db = -1;
			es_shared->slots[i].lowest = 0;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * EsCheckLoaded
 *		Raise an error unless the library was loaded at server start.
 */
void
EsCheckLoaded(void)
{
	if (es_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore must be loaded via \"shared_preload_libraries\""),
				 errhint("Add eventstore to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/*
 * Find this database's entry, claiming a free one on first use.  Caller
 * holds the lock exclusively.  Entries of dropped databases are reclaimed
 * when no free entry is left.
 */
static EsDatabase *
es_my_database(void)
{
	int			free_entry = -1;

	if (my_db >= 0)
		return &es_shared->dbs[my_db];

	for (int i = 0; i < es_shared->ndbs; i++)
	{
		Oid			dboid = es_shared->dbs[i].dboid;

		if (dboid == MyDatabaseId)
		{
			my_db = i;
			return &es_shared->dbs[i];
		}
		if (free_entry < 0 && es_shared->dbs[i].ticker_pid == 0 &&
			(!OidIsValid(dboid) ||
			 !SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid))))
			free_entry = i;
	}

	if (free_entry < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many databases use eventstore"),
				 errdetail("All %d entries allowed by \"eventstore.max_databases\" are in use.",
						   es_shared->ndbs),
				 errhint("Raise eventstore.max_databases and restart the server.")));

	for (int i = 0; i < es_shared->nslots; i++)
		if (es_shared->slots[i].db == free_entry)
			es_shared->slots[i].db = -1;
	es_shared->dbs[free_entry].dboid = MyDatabaseId;
	es_shared->dbs[free_entry].seeded = false;
	es_shared->dbs[free_entry].commits_added = 0;
	es_shared->dbs[free_entry].evicted_xid = InvalidFullTransactionId;
	es_shared->dbs[free_entry].ticker_latch = NULL;
	es_shared->dbs[free_entry].ticker_pid = 0;
	es_shared->dbs[free_entry].ticker_stop = false;
	es_shared->dbs[free_entry].ticker_requested = 0;
	my_db = free_entry;
	return &es_shared->dbs[free_entry];
}

/* The OID of eventstore.position_blocks in this database. */
static Oid
es_blocks_sequence(void)
{
	Oid			nsp = get_namespace_oid("eventstore", false);
	Oid			seq = get_relname_relid("position_blocks", nsp);

	if (!OidIsValid(seq))
		elog(ERROR, "sequence eventstore.position_blocks is missing");
	return seq;
}

/*
 * The full xid of a recent 32-bit xid, such as a snapshot's xmin, which
 * lies within 2^31 transactions below the next xid.
 */
static FullTransactionId
es_widen_xid(TransactionId xid)
{
	FullTransactionId next = ReadNextFullTransactionId();
	uint32		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return FullTransactionIdFromEpochAndXid(epoch, xid);
}

/*
 * What seeding needs and may not do under the LWLock: a lock on the
 * sequence (so that no heavyweight lock is waited for under ours) and the
 * highest stored position (a query).
 */
typedef struct EsSeedInput
{
	bool		ready;
	int64		stored_max;
} EsSeedInput;

static void
es_prepare_seed(EsSeedInput *input, Oid seq)
{
	LockRelationOid(seq, RowExclusiveLock);
	input->stored_max = EsStoredMax();
	input->ready = true;
}

/*
 * Set next above everything handed out before, without reserving anything:
 * above every block the sequence has handed out (they lie below
 * last_value + block; no block can be reserved while we hold the lock), and
 * above every stored position, which covers rows restored or inserted
 * directly even where a restore set the sequence back.  Caller holds the
 * lock exclusively.
 */
static void
es_seed(EsDatabase *db, Oid seq, EsSeedInput *input)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		last;

	Assert(input->ready);
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seq);
	fcinfo->args[0].isnull = false;
	last = pg_sequence_last_value(fcinfo);

	if (fcinfo->isnull)
		db->next = 1;
	else
		db->next = DatumGetInt64(last) + ES_POSITION_BLOCK;
	db->next = Max(db->next, input->stored_max + 1);
	db->reserved_end = db->next - 1;
	db->seq = seq;
	db->seeded = true;
}

/*
 * The sequence is another one than the state was seeded from: the extension
 * was dropped and created again in this server run, and with it the log.
 * Start the new log afresh.  Caller holds the lock exclusively.
 */
static void
es_check_sequence(EsDatabase *db, Oid seq)
{
	if (db->seeded && db->seq != seq)
	{
		db->seeded = false;
		db->commits_added = 0;
		db->evicted_xid = InvalidFullTransactionId;
	}
}

/*
 * Reserve blocks until count positions from next on are covered.  The
 * positions of one call stay contiguous: a block that does not continue the
 * current one moves next up to its start.  A sequence that is behind the
 * allocator (recreated, or set back by hand) is moved forward first.
 * Caller holds the lock exclusively and a lock on the sequence.
 */
static void
es_reserve(EsDatabase *db, Oid seq, int count)
{
	while (db->reserved_end < db->next + count - 1)
	{
		int64		v = DatumGetInt64(DirectFunctionCall1(nextval_oid,
														  ObjectIdGetDatum(seq)));

		if (v <= db->reserved_end || v < db->next)
		{
			DirectFunctionCall3(setval3_oid,
								ObjectIdGetDatum(seq),
								Int64GetDatum(Max(db->next, db->reserved_end + 1)),
								BoolGetDatum(false));
			continue;
		}
		if (v == db->reserved_end + 1)
			db->reserved_end += ES_POSITION_BLOCK;
		else
		{
			db->next = v;
			db->reserved_end = v + ES_POSITION_BLOCK - 1;
		}
	}
}

/*
 * Lock this database's state exclusively, seeded, and with count positions
 * from next on reserved (count may be 0).  Returns with the lock held.
 */
static EsDatabase *
es_lock_database(Oid seq, int count)
{
	EsSeedInput input = {0};
	EsDatabase *db;

	for (;;)
	{
		LWLockAcquire(es_shared->lock, LW_EXCLUSIVE);
		db = es_my_database();
		es_check_sequence(db, seq);
		if (db->seeded && db->next + count - 1 <= db->reserved_end)
			return db;
		if (input.ready)
		{
			/* we hold the sequence's lock: safe to work on it under ours */
			if (!db->seeded)
				es_seed(db, seq, &input);
			if (count > 0)
				es_reserve(db, seq, count);
			return db;
		}

		/*
		 * Never wait for a heavyweight lock, nor run a query, while holding
		 * the LWLock: prepare, then look again.
		 */
		LWLockRelease(es_shared->lock);
		es_prepare_seed(&input, seq);
	}
}

/*
 * Record in this backend's slot that its transaction holds positions from
 * lowest on, unless it already holds lower ones.  Caller holds the lock
 * exclusively, and has registered the exit callback.
 */
static void
es_hold_positions(int64 lowest, FullTransactionId xid)
{
	EsSlot	   *slot = &es_shared->slots[ES_MY_SLOT()];

	if (slot->lowest == 0)
	{
		slot->db = my_db;
		slot->pid = MyProcPid;
		slot->lowest = lowest;
		slot->xid = xid;
		slot->xact_start = GetCurrentTransactionStartTimestamp();
	}
	xact_holds_positions = true;
}

/* Exit callbacks are not inherited from the postmaster: register here. */
static void
es_register_exit_callback(void)
{
	if (!exit_callback_registered)
	{
		before_shmem_exit(es_shmem_exit, (Datum) 0);
		exit_callback_registered = true;
	}
}

/*
 * EsAllocatePositions
 *		Hand count contiguous positions to the current transaction and return
 *		the first.  They stay open, holding the head back, until the top-level
 *		transaction ends.
 */
int64
EsAllocatePositions(int count)
{
	FullTransactionId xid = GetTopFullTransactionId();
	EsDatabase *db;
	int64		first;

	Assert(count > 0);
	EsCheckLoaded();
	es_register_exit_callback();

	db = es_lock_database(es_blocks_sequence(), count);
	first = db->next;
	db->next += count;
	es_hold_positions(first, xid);
	LWLockRelease(es_shared->lock);
	return first;
}

/*
 * EsAdoptPositions
 *		Rows were written into eventstore.events without append(): a restore
 *		(COPY) or a direct INSERT by a superuser, up to position highest.
 *		Hold the head where it is until this transaction ends, and move the
 *		allocator above highest, so that no stored position is handed out
 *		again; the next reservation moves the sequence along.
 */
void
EsAdoptPositions(int64 highest)
{
	FullTransactionId xid = GetTopFullTransactionId();
	EsDatabase *db;

	EsCheckLoaded();
	es_register_exit_callback();

	db = es_lock_database(es_blocks_sequence(), 0);
	es_hold_positions(db->next, xid);
	if (highest >= db->next)
	{
		db->next = highest + 1;
		db->reserved_end = db->next - 1;
	}
	LWLockRelease(es_shared->lock);
}

/*
 * The head as of now: below the lowest open position of this database, and
 * below next.  With a snapshot, also below the lowest position of every
 * commit the snapshot may not see.  Caller holds the lock.
 */
static int64
es_head_locked(EsDatabase *db, Snapshot snapshot, FullTransactionId snapshot_xmin)
{
	int64		head = db->next - 1;

	for (int i = 0; i < es_shared->nslots; i++)
	{
		EsSlot	   *slot = &es_shared->slots[i];

		if (slot->lowest != 0 && slot->db == my_db)
			head = Min(head, slot->lowest - 1);
	}

	if (snapshot != NULL)
	{
		uint64		kept = Min(db->commits_added, (uint64) es_shared->ring_size);
		EsCommit   *ring = &es_shared->rings[(Size) my_db * es_shared->ring_size];

		/*
		 * A dropped entry is harmless if its transaction ended before the
		 * snapshot's xmin; otherwise the snapshot might not see it.
		 */
		if (FullTransactionIdIsValid(db->evicted_xid) &&
			FullTransactionIdFollowsOrEquals(db->evicted_xid, snapshot_xmin))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not determine the head of the event feed for this snapshot"),
					 errdetail("More than %d appending transactions committed since the oldest transaction that was running when the snapshot was taken.",
							   es_shared->ring_size),
					 errhint("Retry the transaction once long-running transactions have ended, read in READ COMMITTED, or raise eventstore.commit_history.")));

		for (uint64 k = 0; k < kept; k++)
		{
			/* older than the snapshot's xmin: ended before it, visible */
			if (FullTransactionIdPrecedes(ring[k].xid, snapshot_xmin))
				continue;
			if (XidInMVCCSnapshot(XidFromFullTransactionId(ring[k].xid), snapshot))
				head = Min(head, ring[k].lowest - 1);
		}
	}
	return head;
}

/*
 * EsHead
 *		The highest position that the current transaction may read without
 *		ever skipping a committed event.
 *
 * In READ COMMITTED, the caller must take its snapshot after this returns.
 * In REPEATABLE READ and SERIALIZABLE, the result is the head of the
 * transaction snapshot and stays fixed for the whole transaction.
 */
int64
EsHead(void)
{
	Oid			seq;
	EsSeedInput input = {0};
	Snapshot	snapshot = NULL;
	FullTransactionId snapshot_xmin = InvalidFullTransactionId;
	int64		head;

	EsCheckLoaded();

	/*
	 * A standby has no appenders to watch; the last tick it has replayed
	 * committed after every event at or below its head (see ticker.c).
	 */
	if (RecoveryInProgress())
		return EsLastTick();

	if (IsolationUsesXactSnapshot())
	{
		if (xact_head_valid)
			return xact_head;
		snapshot = GetTransactionSnapshot();
		snapshot_xmin = es_widen_xid(snapshot->xmin);
	}

	seq = es_blocks_sequence();
	for (;;)
	{
		bool		exclusive = (my_db < 0 || input.ready);
		EsDatabase *db;

		LWLockAcquire(es_shared->lock, exclusive ? LW_EXCLUSIVE : LW_SHARED);
		db = exclusive ? es_my_database() : &es_shared->dbs[my_db];
		if (!db->seeded || db->seq != seq)
		{
			if (!input.ready)
			{
				/* prepare outside our lock, then look again, exclusively */
				LWLockRelease(es_shared->lock);
				es_prepare_seed(&input, seq);
				continue;
			}
			es_check_sequence(db, seq);
			if (!db->seeded)
				es_seed(db, seq, &input);
		}
		head = es_head_locked(db, snapshot, snapshot_xmin);
		LWLockRelease(es_shared->lock);
		break;
	}

	if (snapshot != NULL)
	{
		xact_head = head;
		xact_head_valid = true;
	}
	return head;
}

/*
 * EsTickerAttach
 *		Called by a database's ticker once connected: become the ticker that
 *		appenders wake.  Returns false if another one already runs.
 */
bool
EsTickerAttach(void)
{
	EsDatabase *db;
	bool		attached = false;

	EsCheckLoaded();
	LWLockAcquire(es_shared->lock, LW_EXCLUSIVE);
	db = es_my_database();
	if (db->ticker_pid == 0)
	{
		db->ticker_latch = MyLatch;
		db->ticker_pid = MyProcPid;
		db->ticker_stop = false;
		attached = true;
	}
	LWLockRelease(es_shared->lock);
	return attached;
}

/*
 * Called by the ticker on its way out.  After a clean exit the next
 * appender may start a new one at once; after a failure, ten seconds after
 * the last start at the earliest.
 */
void
EsTickerDetach(bool clean)
{
	EsDatabase *db;

	if (es_shared == NULL || my_db < 0)
		return;
	LWLockAcquire(es_shared->lock, LW_EXCLUSIVE);
	db = &es_shared->dbs[my_db];
	if (db->ticker_pid == MyProcPid)
	{
		db->ticker_latch = NULL;
		/* stopped on request: EsStopTicker keeps appenders off a while */
		if (clean && !db->ticker_stop)
			db->ticker_requested = 0;
		db->ticker_pid = 0;
		db->ticker_stop = false;
	}
	LWLockRelease(es_shared->lock);
}

/* Whether this database's ticker has been asked to exit. */
bool
EsTickerStopRequested(void)
{
	bool		stop;

	LWLockAcquire(es_shared->lock, LW_SHARED);
	stop = es_shared->dbs[my_db].ticker_stop;
	LWLockRelease(es_shared->lock);
	return stop;
}

/*
 * EsStopTicker
 *		Ask the ticker of a database to exit and wait up to five seconds
 *		for it to go: DROP DATABASE and friends refuse to run while a
 *		worker is connected.  Returns whether no ticker runs any more.
 */
bool
EsStopTicker(Oid dboid)
{
	if (es_shared == NULL)
		return true;

	for (int waited = 0; waited <= 500; waited++)
	{
		bool		running = false;

		LWLockAcquire(es_shared->lock, LW_EXCLUSIVE);
		for (int i = 0; i < es_shared->ndbs; i++)
		{
			EsDatabase *db = &es_shared->dbs[i];

			if (db->dboid == dboid && db->ticker_pid != 0)
			{
				running = true;
				db->ticker_stop = true;
				/* and no appender restarts it for a while */
				db->ticker_requested = GetCurrentTimestamp();
				SetLatch(db->ticker_latch);
			}
		}
		LWLockRelease(es_shared->lock);
		if (!running)
			return true;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
	return false;
}

/*
 * Transaction end: release this backend's positions.  At commit this runs
 * after ProcArrayEndTransaction, so the commit is already visible.  It must
 * not fail: at this point the transaction can no longer be aborted.
 */
static void
es_release_slot(bool committed)
{
	EsSlot	   *slot;
	bool		start_ticker = false;

	LWLockAcquire(es_shared->lock, LW_EXCLUSIVE);
	slot = &es_shared->slots[ES_MY_SLOT()];
	if (slot->lowest != 0 && slot->db >= 0)
	{
		EsDatabase *db = &es_shared->dbs[slot->db];

		/*
		 * The head may move now: wake the ticker, or have one started if
		 * none runs (asking again after a while if it never came).
		 */
		if (db->ticker_latch != NULL)
			SetLatch(db->ticker_latch);
		else if (db->ticker_requested == 0 ||
				 TimestampDifferenceExceeds(db->ticker_requested,
											GetCurrentTimestamp(), 10000))
		{
			db->ticker_requested = GetCurrentTimestamp();
			start_ticker = true;
		}

		if (committed)
		{
			EsCommit   *ring = &es_shared->rings[(Size) slot->db * es_shared->ring_size];
			EsCommit   *c = &ring[db->commits_added % es_shared->ring_size];

			if (db->commits_added >= (uint64) es_shared->ring_size)
				db->evicted_xid = FullTransactionIdNewer(db->evicted_xid, c->xid);
			c->xid = slot->xid;
			c->lowest = slot->lowest;
			db->commits_added++;
		}
		slot->lowest = 0;
	}
	LWLockRelease(es_shared->lock);

	if (start_ticker)
		EsStartTicker(MyDatabaseId);
}

static void
es_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (xact_holds_positions)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has appended events"),
						 errdetail("A prepared transaction would hold the head of the event feed back until it is resolved.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (xact_holds_positions)
				es_release_slot(event == XACT_EVENT_COMMIT ||
								event == XACT_EVENT_PARALLEL_COMMIT);
			xact_holds_positions = false;
			xact_head_valid = false;
			es_append_active = false;
			break;
		default:
			break;
	}
}

/* A backend that exits mid-transaction must not leave its slot behind. */
static void
es_shmem_exit(int code, Datum arg)
{
	if (xact_holds_positions && es_shared != NULL)
	{
		es_release_slot(false);
		xact_holds_positions = false;
	}
}

/*
 * EsPositionInit
 *		Called from _PG_init: request shared memory when preloaded, and hook
 *		transaction ends in every backend that loads the library.
 */
void
EsPositionInit(void)
{
	if (process_shared_preload_libraries_in_progress)
	{
#if PG_VERSION_NUM >= 150000
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = es_shmem_request;
#else
		es_shmem_request();
#endif
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = es_shmem_startup;
	}

	/* inherited by every backend forked from the postmaster */
	RegisterXactCallback(es_xact_callback, NULL);
}

/*
 * eventstore.head() returns bigint
 *
 * The highest position that eventstore.read_all() may return now: every
 * event at or below it is committed or will never be.  Held back only by
 * open transactions of this database that appended.  In REPEATABLE READ and
 * SERIALIZABLE it is the head of the transaction's snapshot, fixed for the
 * transaction.  Errors: not preloaded (55000), during recovery (0A000), a
 * snapshot older than eventstore.commit_history commits (40001).  A query
 * that reads eventstore.events directly with head() in its own WHERE clause
 * is not protected: its snapshot predates the call.
 */
Datum
eventstore_head(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(EsHead());
}

/*
 * eventstore.open_appenders() returns setof (pid, lowest_position,
 * writer_xid, xact_start)
 *
 * The transactions of this database that hold positions not yet committed.
 * The one with the lowest position is what holds the head back.
 */
Datum
eventstore_open_appenders(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EsSlot	   *copy;
	int			ncopied = 0;

	EsCheckLoaded();
	InitMaterializedSRF(fcinfo, 0);

	/* copy the slots out first: nothing that can fail under the lock */
	copy = palloc(sizeof(EsSlot) * es_shared->nslots);
	LWLockAcquire(es_shared->lock, LW_EXCLUSIVE);
	(void) es_my_database();
	for (int i = 0; i < es_shared->nslots; i++)
	{
		EsSlot	   *slot = &es_shared->slots[i];

		if (slot->lowest != 0 && slot->db == my_db)
			copy[ncopied++] = *slot;
	}
	LWLockRelease(es_shared->lock);

	for (int i = 0; i < ncopied; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int32GetDatum(copy[i].pid);
		values[1] = Int64GetDatum(copy[i].lowest);
		values[2] = FullTransactionIdGetDatum(copy[i].xid);
		values[3] = TimestampTzGetDatum(copy[i].xact_start);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	PG_RETURN_VOID();
}
