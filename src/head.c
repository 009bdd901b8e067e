/*-------------------------------------------------------------------------
 *
 * head.c
 *		The head of the feed, for READ COMMITTED readers, for snapshot
 *		readers and on a hot standby.
 *
 * The head is the highest position below which every allocated position
 * belongs to a finished transaction; eventstore.read_all never returns
 * events above it, and a reader that resumes from the last position it saw
 * can therefore never skip a committed event.  Under the database's lock
 * (shared), from the state position.c maintains,
 *
 *		head = min(next - 1, min(lowest of open slots) - 1)
 *
 * and only then does a READ COMMITTED reader take the snapshot it reads
 * with.  Every position at or below the head was then allocated by a
 * transaction that had already ended, so the snapshot sees exactly the
 * committed ones.  Only appenders of the same database hold the head back.
 *
 * A REPEATABLE READ or SERIALIZABLE transaction reads with a snapshot taken
 * before it computes the head; appenders that committed after that snapshot
 * but before the head was computed are invisible to it, yet no longer hold
 * a slot.  Each appending commit therefore also enters the database's ring
 * (top-level full xid, lowest position).  The head of a snapshot is the
 * head as of now, lowered below the lowest position of every ring entry
 * whose xid the snapshot still sees as running.  The ring has a fixed size;
 * an entry dropped from it is harmless to snapshots whose xmin is above its
 * xid; a snapshot older than that gets the head of the newest tick it sees
 * instead (lower, but it never skips: see below).  The result is cached for the rest of the
 * transaction, so only the first call of a transaction depends on the ring.
 *
 * On a hot standby there are no appenders to watch: the head is the head of
 * the newest tick the reader's snapshot sees.  A tick commits after every
 * event at or below its head (see ticker.c), so the standby has replayed
 * those events too.
 *
 * src/head.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "eventstore.h"
#include "head.h"
#include "metrics.h"
#include "position.h"
#include "shmem.h"
#include "spi.h"

static bool xact_head_valid = false;
static int64 xact_head = 0;

static SPIPlanPtr last_tick_plan = NULL;

PG_FUNCTION_INFO_V1(eventstore_head);
PG_FUNCTION_INFO_V1(eventstore_open_appenders);
PG_FUNCTION_INFO_V1(eventstore_wait_for);
PG_FUNCTION_INFO_V1(eventstore_wait_for_head);

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

/* The head as of now.  Caller holds db->lock. */
static int64
es_head_locked(EsDatabase *db)
{
	int64		head = db->next - 1;

	for (int i = 0; i < EsSlotCount(); i++)
	{
		int64		lowest = db->slots[i].lowest;

		if (lowest != 0)
			head = Min(head, lowest - 1);
	}
	return head;
}

/*
 * Lower head below every commit of the ring that the snapshot may not see.
 * Returns false when the ring has forgotten a commit the snapshot might
 * not see.  Caller holds db->lock.
 */
static bool
es_snapshot_head_locked(EsDatabase *db, Snapshot snapshot,
						FullTransactionId snapshot_xmin, int64 *head)
{
	int			size = EsRingSize();
	uint64		kept = Min(db->commits_added, (uint64) size);

	if (FullTransactionIdIsValid(db->evicted_xid) &&
		FullTransactionIdFollowsOrEquals(db->evicted_xid, snapshot_xmin))
		return false;
	for (uint64 k = 0; k < kept; k++)
	{
		/* older than the snapshot's xmin: ended before it, visible */
		if (FullTransactionIdPrecedes(db->ring[k].xid, snapshot_xmin))
			continue;
		if (XidInMVCCSnapshot(XidFromFullTransactionId(db->ring[k].xid), snapshot))
			*head = Min(*head, db->ring[k].lowest - 1);
	}
	return true;
}

/*
 * The head as of now, seeding the database's entry first if it is not
 * (position.c); with a snapshot, lowered for it, and *known false when the
 * ring has forgotten commits it might not see.
 */
static int64
es_head_of(EsDatabase *db, Snapshot snapshot, FullTransactionId snapshot_xmin,
		   bool *known)
{
	int64		head = 0;

	for (;;)
	{
		Oid			seq = EsSeeded(db);
		bool		current;

		LWLockAcquire(db->lock, LW_SHARED);
		current = db->seeded && db->seq == seq;
		if (current)
		{
			head = es_head_locked(db);
			if (snapshot != NULL)
				*known = es_snapshot_head_locked(db, snapshot, snapshot_xmin, &head);
		}
		LWLockRelease(db->lock);
		if (current)
			return head;
	}
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
	EsDatabase *db;
	Snapshot	snapshot = NULL;
	FullTransactionId snapshot_xmin = InvalidFullTransactionId;
	int64		head;
	bool		known = true;

	EsCheckLoaded();
	if (RecoveryInProgress())
		return EsLastTick();

	if (IsolationUsesXactSnapshot())
	{
		if (xact_head_valid)
			return xact_head;
		snapshot = GetTransactionSnapshot();
		snapshot_xmin = es_widen_xid(snapshot->xmin);
	}

	db = EsMyDatabase();
	head = es_head_of(db, snapshot, snapshot_xmin, &known);

	/*
	 * The ring has forgotten commits the snapshot might not see: fall back
	 * to the newest tick the snapshot sees.  Its head is lower, but every
	 * event at or below it committed before the tick did, so the snapshot
	 * sees them all.
	 */
	if (!known)
		head = EsLastTick();

	if (snapshot != NULL)
	{
		xact_head = head;
		xact_head_valid = true;
	}
	return head;
}

/*
 * EsHeadNow
 *		The head as of now from shared memory alone, without a transaction:
 *		false when the entry is not seeded yet.  The ticker uses it to see
 *		whether a tick is needed at all; the tick itself calls EsHead.
 */
bool
EsHeadNow(EsDatabase *db, int64 *head)
{
	bool		seeded;

	LWLockAcquire(db->lock, LW_SHARED);
	seeded = db->seeded;
	if (seeded)
		*head = es_head_locked(db);
	LWLockRelease(db->lock);
	return seeded;
}

/*
 * EsLastTick
 *		The head of the newest tick the current snapshot sees, 0 if none:
 *		the head of the feed on a hot standby.
 */
int64
EsLastTick(void)
{
	int64		head = 0;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	EsKeptPlan(&last_tick_plan,
			   "SELECT t.head FROM eventstore.ticks t "
			   "ORDER BY t.tick_id DESC LIMIT 1",
			   0, NULL);
	rc = SPI_execute_plan(last_tick_plan, NULL, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the last tick failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		bool		isnull;

		head = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	return head;
}

static void
es_head_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			xact_head_valid = false;
			break;
		default:
			break;
	}
}

/*
 * EsHeadInit
 *		Called from _PG_init: forget a snapshot's head at transaction end.
 */
void
EsHeadInit(void)
{
	RegisterXactCallback(es_head_xact_callback, NULL);
}

/*
 * eventstore.head() returns bigint
 *
 * The highest position that eventstore.read_all() may return now: every
 * event at or below it is committed or will never be.  Held back only by
 * open transactions of this database that appended.  In REPEATABLE READ and
 * SERIALIZABLE it is the head of the transaction's snapshot, fixed for the
 * transaction; on a hot standby, the head of the newest tick replayed.
 * Errors: not preloaded (55000).  A snapshot older than
 * eventstore.commit_history appending commits gets the head of the newest
 * tick it sees.  A query that reads
 * eventstore.events directly with head() in its own WHERE clause is not
 * protected: its snapshot predates the call.
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
	EsDatabase *db;
	EsSlot	   *copy;
	int			ncopied = 0;

	EsCheckLoaded();
	InitMaterializedSRF(fcinfo, 0);
	db = EsMyDatabase();

	/* copy the slots out first: nothing that can fail under the lock */
	copy = palloc(sizeof(EsSlot) * EsSlotCount());
	LWLockAcquire(db->lock, LW_SHARED);
	for (int i = 0; i < EsSlotCount(); i++)
		if (db->slots[i].lowest != 0)
			copy[ncopied++] = db->slots[i];
	LWLockRelease(db->lock);

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

/* How often a waiter on a hot standby looks for a newer replayed tick. */
#define ES_STANDBY_WAIT_POLL_MS	20

/*
 * How long a waiter on the primary sleeps at most between two looks at the
 * head: the ticker wakes it as the head moves, this only bounds the wait
 * when no ticker runs.
 */
#define ES_WAIT_RECHECK_MS		1000

/* An interval as milliseconds, at most INT_MAX.  22023 if negative. */
static long
es_interval_ms(Interval *span)
{
	float8		usecs = (float8) span->time +
		((float8) span->month * DAYS_PER_MONTH + span->day) * (float8) USECS_PER_DAY;

	if (usecs < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	return (long) Min(usecs / 1000.0, (float8) PG_INT32_MAX);
}

/* es_wait on the primary, once the wait is published: the latch loop. */
static int64
es_wait_latch(EsDatabase *db, int64 after, TimestampTz deadline)
{
	bool		known = true;
	int64		head = es_head_of(db, NULL, InvalidFullTransactionId, &known);

	for (;;)
	{
		long		remaining;

		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (head > after || remaining <= 0)
			return head;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(remaining, ES_WAIT_RECHECK_MS), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		/* seeded by the first look: shared memory only from here */
		if (!EsHeadNow(db, &head))
			head = es_head_of(db, NULL, InvalidFullTransactionId, &known);
	}
}

/*
 * es_wait on the primary: publish the wait in the backend's slot, then
 * look at the head.  A ticker that sees the head pass after in its scan of
 * the slots (EsWakeWaiters) sets the latch; one that scanned before the
 * wait was published moved the head before the first look.  The wait is
 * withdrawn however it ends (a cancel included), or the ticker would keep
 * setting the latch.
 */
static int64
es_wait_published(EsDatabase *db, int64 after, TimestampTz deadline)
{
	EsSlot	   *slot = EsMySlot(db);
	int64		head;

	pg_atomic_write_u64(&slot->wait_after, (uint64) after);
	pg_write_barrier();
	slot->wait_latch = MyLatch;
	pg_memory_barrier();
	PG_TRY();
	{
		head = es_wait_latch(db, after, deadline);
	}
	PG_FINALLY();
	{
		slot->wait_latch = NULL;
		pg_memory_barrier();
	}
	PG_END_TRY();
	return head;
}

/*
 * Wait until the head is above after, or the deadline: on the primary on
 * the backend's latch, with the wait published in its slot so that the
 * ticker sets the latch once the head passes after (EsWakeWaiters),
 * looking at the head in shared memory only; on a hot standby
 * by looking for a newer replayed tick every 20 ms, each time with a new
 * snapshot (with no_snapshot, dropped again at once, the catalog's too, so
 * that the backend holds no snapshot between two looks).  Returns the head
 * last seen, counting a timeout.
 */
static int64
es_wait(EsDatabase *db, int64 after, TimestampTz deadline, bool no_snapshot)
{
	int64		head;

	if (RecoveryInProgress())
	{
		for (;;)
		{
			long		remaining;

			PushActiveSnapshot(GetTransactionSnapshot());
			head = EsLastTick();
			PopActiveSnapshot();
			if (no_snapshot)
				InvalidateCatalogSnapshot();
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (head > after || remaining <= 0)
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(remaining, ES_STANDBY_WAIT_POLL_MS), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	else
		head = es_wait_published(db, after, deadline);
	if (head <= after)
		EsCount(db, ES_COUNT_WAIT_TIMEOUTS, 1);
	return head;
}

/*
 * EsWakeWaiters
 *		The ticker saw the head move: set the latch of every wait_for of the
 *		database that waits for the head to pass a position below it, and
 *		of no other.  Returns how many.  Reads the slots without the lock
 *		(see es_wait for the order of the writes).
 */
int
EsWakeWaiters(EsDatabase *db)
{
	int64		head;
	int			woken = 0;

	if (!EsHeadNow(db, &head))
		return 0;
	pg_memory_barrier();
	for (int i = 0; i < EsSlotCount(); i++)
	{
		EsSlot	   *slot = &db->slots[i];
		Latch	   *latch = slot->wait_latch;

		if (latch == NULL)
			continue;
		pg_read_barrier();
		if ((int64) pg_atomic_read_u64(&slot->wait_after) < head)
		{
			SetLatch(latch);
			woken++;
		}
	}
	return woken;
}

/* The arguments of wait_for and wait_for_head, checked; the deadline. */
static TimestampTz
es_wait_args(FunctionCallInfo fcinfo, int64 *after)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("after_position and timeout must not be null")));
	*after = PG_GETARG_INT64(0);
	if (*after < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after_position must not be negative")));
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
									   es_interval_ms(PG_GETARG_INTERVAL_P(1)));
}

/*
 * eventstore.wait_for(after_position bigint,
 *					   timeout interval DEFAULT '30 seconds')
 * returns bigint
 *
 * The head, as soon as it is above after_position, or when the timeout
 * has passed (then it may still be at or below it); see es_wait.  It takes
 * no locks and needs no session state (it works through a transaction
 * pooler), and a cancel or a terminate ends it at once.  Like any
 * statement it keeps its own snapshot while it runs (the procedure
 * wait_for_head does not).  In REPEATABLE READ or SERIALIZABLE the head
 * returned is the database's as of now, past what the transaction's
 * snapshot sees: wait outside such a transaction.  Errors: 22004 null
 * arguments; 22023 a negative after_position or timeout.
 */
Datum
eventstore_wait_for(PG_FUNCTION_ARGS)
{
	int64		after;
	TimestampTz deadline;
	EsDatabase *db;

	EsCheckLoaded();
	deadline = es_wait_args(fcinfo, &after);
	db = EsMyDatabase();
	EsCount(db, ES_COUNT_WAITS, 1);
	PG_RETURN_INT64(es_wait(db, after, deadline, false));
}

/*
 * CALL eventstore.wait_for_head(after_position bigint,
 *								 timeout interval DEFAULT '30 seconds',
 *								 INOUT head bigint DEFAULT NULL)
 *
 * wait_for as a procedure, which holds no snapshot while it waits: called
 * on its own (not inside a transaction block, where it cannot end the
 * transaction), it first commits the transaction the CALL runs in, as
 * COMMIT in a procedure does, and waits in a new one that takes no
 * snapshot on the primary, and only for each 20 ms look on a standby.  So
 * a long wait does not hold back the removal of dead rows (VACUUM's
 * horizon, or the primary's through hot_standby_feedback).  Inside a
 * transaction block it waits as wait_for does.  head is set to the head.
 * Errors: those of wait_for.
 */
Datum
eventstore_wait_for_head(PG_FUNCTION_ARGS)
{
	CallContext *call = (fcinfo->context != NULL &&
						 IsA(fcinfo->context, CallContext)) ?
		(CallContext *) fcinfo->context : NULL;
	bool		nonatomic = call != NULL && !call->atomic;
	int64		after;
	TimestampTz deadline;
	EsDatabase *db;
	int64		head;
	TupleDesc	desc;
	Datum		value;
	bool		isnull = false;

	EsCheckLoaded();
	deadline = es_wait_args(fcinfo, &after);
	db = EsMyDatabase();
	EsCount(db, ES_COUNT_WAITS, 1);

	if (nonatomic)
	{
		/* end the CALL's transaction and its snapshots; a new one begins */
		if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect_ext failed");
		SPI_commit();
		SPI_finish();
		InvalidateCatalogSnapshot();
	}
	head = es_wait(db, after, deadline, nonatomic);

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE ||
		desc->natts != 1 || TupleDescAttr(desc, 0)->atttypid != INT8OID)
		elog(ERROR, "eventstore.wait_for_head() must have one INOUT bigint argument");
	value = Int64GetDatum(head);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc),
													  &value, &isnull)));
}
