/*-------------------------------------------------------------------------
 *
 * position.c
 *		The global order: allocation of positions and the slots that hold
 *		them open.
 *
 * Every event gets a position (insert_order) that is unique and increasing
 * across the whole database.  Writers commit in any order, so a reader that
 * simply followed the highest committed position would skip events whose
 * writers commit late.  The allocator therefore records, in the appending
 * backend's slot of its database's entry (shmem.c), the lowest position its
 * open transaction holds, in the same critical section that hands the
 * positions out; the slot is cleared when the top-level transaction ends.
 * head.c derives the head of the feed from the slots.
 *
 * State, in the database's entry and under its lock (see shmem.c):
 *
 *	next			next position to hand out
 *	reserved_end	last position of the blocks reserved in the WAL-logged
 *					sequence eventstore.position_blocks
 *	releases		how many slots were released: the ticker's cue
 *	ring			the most recent appending commits, for head.c
 *
 * Note about locking and visibility:
 *
 * An appender takes its database's lock exclusively only to hand itself
 * positions out of the reserved blocks and to record the lowest of them in
 * its slot; so no reader can ever observe a position as allocated without
 * also observing the slot that holds it open.  The slot is cleared from the
 * transaction callback.  In CommitTransaction that callback runs after
 * ProcArrayEndTransaction, so by the time the slot is clear the commit is
 * visible to every snapshot taken afterwards; on abort the events are
 * invisible forever.
 *
 * Everything slow happens outside the critical section: the sequence's OID
 * and the top-level xid are looked up first; seeding (reading the
 * sequence's last value and the highest stored position) and reserving
 * blocks (nextval, which writes WAL) run under a heavyweight lock on the
 * sequence in ShareUpdateExclusive mode, which serializes them per database
 * and can be waited for, cancelled and deadlock-checked like any lock, and
 * the results are installed under the LWLock afterwards.  Only the
 * allocator ever advances the sequence, so blocks reserved under that lock
 * follow each other; one that does not continue the reservation (the
 * sequence was set back or recreated) starts a new run of positions.
 *
 * Durability: a block is WAL-logged by nextval before any position from it
 * can be committed, so a crash can never hand out a committed position
 * again.  After a restart the allocator starts above the sequence's last
 * value (pg_dump keeps it) and above the highest stored position (which
 * covers rows written without the allocator, and a restore that set the
 * sequence back).  When the extension is dropped and created again, its
 * new log starts afresh.  Every step is checked against overflow: positions
 * end at ES_MAX_POSITION.
 *
 * Rows written into eventstore.events without append() (pg_restore's COPY,
 * a superuser's INSERT) fire eventstore.adopt_positions, which refuses
 * positions out of range, positions stored twice, and positions below the
 * allocator while appends are in flight, then moves the allocator above
 * them.
 *
 * src/position.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "partitioning/partdesc.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "eventstore.h"
#include "launcher.h"
#include "position.h"
#include "shmem.h"

/* Backend-local state. */
static EsDatabase *slot_db = NULL;	/* the entry this backend's slot is in */
static bool xact_holds_positions = false;
static bool xact_appended = false;
static bool exit_callback_registered = false;

/*
 * What this transaction's adoptions moved the allocator from and to: if it
 * aborts and nothing was allocated since, the move is undone, so that a
 * rolled-back load cannot burn the positions up to its rows for good.
 */
static bool adopt_moved = false;
static int64 adopt_prev_next = 0;
static int64 adopt_prev_reserved_end = 0;
static int64 adopt_moved_to = 0;

PG_FUNCTION_INFO_V1(eventstore_adopt_positions);

static void es_release_slot(bool committed);

static inline void
es_positions_exhausted(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_SEQUENCE_GENERATOR_LIMIT_EXCEEDED),
			 errmsg("the event log has run out of positions"),
			 errdetail("Positions end at %lld.", (long long) ES_MAX_POSITION)));
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
 * The highest position stored in eventstore.events that the latest
 * snapshot sees, or 0: one backward scan of each partition's insert_order
 * index.  Reads no SQL and resolves nothing through search_path.
 */
static int64
es_stored_max(void)
{
	Oid			nsp = get_namespace_oid("eventstore", false);
	Relation	parent;
	PartitionDesc pd;
	Snapshot	snapshot;
	int64		highest = 0;

	parent = table_open(get_relname_relid("events", nsp), AccessShareLock);
	pd = RelationGetPartitionDesc(parent, true);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	for (int p = 0; p < pd->nparts; p++)
	{
		Relation	rel = table_open(pd->oids[p], AccessShareLock);
		AttrNumber	attnum = get_attnum(pd->oids[p], "insert_order");
		List	   *indexes = RelationGetIndexList(rel);
		ListCell   *lc;
		bool		scanned = false;

		foreach(lc, indexes)
		{
			Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
			Form_pg_index form = index->rd_index;

			if (!scanned && form->indnkeyatts == 1 && attnum != InvalidAttrNumber &&
				form->indkey.values[0] == attnum && form->indisvalid &&
				index->rd_rel->relam == BTREE_AM_OID)
			{
				IndexScanDesc scan = index_beginscan(rel, index, snapshot, 0, 0);
				TupleTableSlot *slot = table_slot_create(rel, NULL);
				bool		isnull;

				index_rescan(scan, NULL, 0, NULL, 0);
				if (index_getnext_slot(scan, BackwardScanDirection, slot))
				{
					Datum		value = slot_getattr(slot, attnum, &isnull);

					if (!isnull)
						highest = Max(highest, DatumGetInt64(value));
				}
				index_endscan(scan);
				ExecDropSingleTupleTableSlot(slot);
				scanned = true;
			}
			index_close(index, AccessShareLock);
		}
		list_free(indexes);
		table_close(rel, AccessShareLock);
		if (!scanned)
			elog(ERROR, "partition %u of eventstore.events has no index on insert_order",
				 pd->oids[p]);
	}
	UnregisterSnapshot(snapshot);
	table_close(parent, AccessShareLock);
	return highest;
}

/*
 * Seed db for seq if it is not: next above every block the sequence has
 * handed out (they lie below last_value + block) and above every stored
 * position.  A state seeded from another sequence belongs to a log that was
 * dropped with its extension: the new log starts afresh.  Caller holds the
 * sequence's ShareUpdateExclusiveLock, so no block is reserved meanwhile.
 */
static void
es_seed_locked(EsDatabase *db, Oid seq)
{
	LOCAL_FCINFO(fcinfo, 1);
	Datum		last;
	int64		next = 1;
	int64		stored;
	bool		seeded;

	LWLockAcquire(db->lock, LW_SHARED);
	seeded = db->seeded && db->seq == seq;
	LWLockRelease(db->lock);
	if (seeded)
		return;

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seq);
	fcinfo->args[0].isnull = false;
	last = pg_sequence_last_value(fcinfo);
	if (!fcinfo->isnull &&
		pg_add_s64_overflow(DatumGetInt64(last), ES_POSITION_BLOCK, &next))
		es_positions_exhausted();
	stored = es_stored_max();
	if (stored >= next)
		next = stored + 1;
	if (next > ES_MAX_POSITION)
		es_positions_exhausted();

	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	if (!(db->seeded && db->seq == seq))
	{
		if (db->seq != seq)
		{
			db->commits_added = 0;
			db->evicted_xid = InvalidFullTransactionId;
		}
		db->next = next;
		db->reserved_end = next - 1;
		db->seq = seq;
		db->seeded = true;
	}
	LWLockRelease(db->lock);
}

/*
 * EsSeeded
 *		Make sure db is seeded for this database's sequence, and return the
 *		sequence's OID.  Takes no lock when it is.
 */
Oid
EsSeeded(EsDatabase *db)
{
	Oid			seq = es_blocks_sequence();
	bool		seeded;

	LWLockAcquire(db->lock, LW_SHARED);
	seeded = db->seeded && db->seq == seq;
	LWLockRelease(db->lock);
	if (!seeded)
	{
		LockRelationOid(seq, ShareUpdateExclusiveLock);
		es_seed_locked(db, seq);
		UnlockRelationOid(seq, ShareUpdateExclusiveLock);
	}
	return seq;
}

/*
 * Reserve blocks until count positions from next on are covered, or the
 * state no longer belongs to seq (the caller then looks again).  Blocks
 * are reserved one at a time, each installed under the LWLock: one that
 * continues the reservation extends it, one above it starts a new run
 * (the positions of one call stay contiguous), one below it means the
 * sequence is behind the allocator, which moves it forward.
 */
static void
es_reserve(EsDatabase *db, Oid seq, int count)
{
	LockRelationOid(seq, ShareUpdateExclusiveLock);
	es_seed_locked(db, seq);
	for (;;)
	{
		int64		v;
		int64		end;
		int64		behind_target = 0;
		bool		done;

		LWLockAcquire(db->lock, LW_SHARED);
		done = !db->seeded || db->seq != seq ||
			db->reserved_end - db->next + 1 >= count;
		LWLockRelease(db->lock);
		if (done)
			break;
		CHECK_FOR_INTERRUPTS();

		v = DatumGetInt64(DirectFunctionCall1(nextval_oid, ObjectIdGetDatum(seq)));
		if (v < 1 || v > ES_MAX_POSITION)
			es_positions_exhausted();
		end = v + ES_POSITION_BLOCK - 1;

		LWLockAcquire(db->lock, LW_EXCLUSIVE);
		if (db->seeded && db->seq == seq)
		{
			if (v == db->reserved_end + 1)
				db->reserved_end = end;
			else if (v > db->reserved_end)	/* and so >= next */
			{
				db->next = v;
				db->reserved_end = end;
			}
			else
				behind_target = Max(db->next, db->reserved_end + 1);
		}
		LWLockRelease(db->lock);

		if (behind_target > 0)
			DirectFunctionCall3(setval3_oid, ObjectIdGetDatum(seq),
								Int64GetDatum(behind_target), BoolGetDatum(false));
	}
	UnlockRelationOid(seq, ShareUpdateExclusiveLock);
}

/* Exit callbacks are not inherited from the postmaster: register here. */
static void
es_shmem_exit(int code, Datum arg)
{
	if (xact_holds_positions)
		es_release_slot(false);
	xact_holds_positions = false;
}

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
 * Record in this backend's slot that its transaction holds positions from
 * lowest on, unless it already holds lower ones.  Caller holds db->lock
 * exclusively, and has registered the exit callback.
 */
static void
es_hold_positions(EsDatabase *db, int64 lowest, FullTransactionId xid,
				  TimestampTz xact_start)
{
	EsSlot	   *slot = EsMySlot(db);

	if (slot->lowest == 0)
	{
		slot->pid = MyProcPid;
		slot->xid = xid;
		slot->xact_start = xact_start;
		slot->lowest = lowest;
	}
	slot_db = db;
	xact_holds_positions = true;
}

/*
 * EsNoteAppend
 *		The current transaction has called append(): it may hold a stream
 *		row locked even when every event was a duplicate, so it must not be
 *		prepared.
 */
void
EsNoteAppend(void)
{
	xact_appended = true;
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
	EsDatabase *db = EsMyDatabase();
	FullTransactionId xid = GetTopFullTransactionId();
	TimestampTz xact_start = GetCurrentTransactionStartTimestamp();
	Oid			seq = es_blocks_sequence();

	Assert(count > 0);
	es_register_exit_callback();
	EsNoteAppend();

	for (;;)
	{
		int64		first;

		LWLockAcquire(db->lock, LW_EXCLUSIVE);
		if (db->seeded && db->seq == seq &&
			db->reserved_end - db->next + 1 >= count)
		{
			first = db->next;
			db->next += count;
			es_hold_positions(db, first, xid, xact_start);
			LWLockRelease(db->lock);
			return first;
		}
		LWLockRelease(db->lock);
		es_reserve(db, seq, count);
	}
}

/*
 * Rows were written into eventstore.events without append(), with
 * positions from lowest to highest: hold the head where it is until this
 * transaction ends, and move the allocator above highest so that no
 * stored position is handed out again.  Positions below the allocator are
 * accepted only while no other transaction of the database holds
 * positions: those it holds are not yet visible, so a collision with them
 * could not be seen.
 */
static void
es_adopt(int64 lowest, int64 highest)
{
	EsDatabase *db = EsMyDatabase();
	FullTransactionId xid = GetTopFullTransactionId();
	TimestampTz xact_start = GetCurrentTransactionStartTimestamp();
	EsSlot	   *mine;
	int			busy_pid = 0;

	es_register_exit_callback();
	(void) EsSeeded(db);

	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	mine = EsMySlot(db);
	if (lowest < db->next)
		for (int i = 0; i < EsSlotCount() && busy_pid == 0; i++)
			if (db->slots[i].lowest != 0 && &db->slots[i] != mine)
				busy_pid = db->slots[i].pid;
	if (busy_pid == 0)
	{
		es_hold_positions(db, db->next, xid, xact_start);
		if (highest >= db->next)
		{
			if (!adopt_moved)
			{
				adopt_prev_next = db->next;
				adopt_prev_reserved_end = db->reserved_end;
				adopt_moved = true;
			}
			db->next = highest + 1;
			db->reserved_end = db->next - 1;
			adopt_moved_to = db->next;
		}
	}
	LWLockRelease(db->lock);

	if (busy_pid != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot store events below the allocator's next position while appends are in flight"),
				 errdetail("Other transactions of this database hold positions that are not yet committed (see eventstore.appenders); the new rows could collide with them."),
				 errhint("Load events directly only while nothing appends, as a restore does.")));
}

/*
 * eventstore.adopt_positions() returns trigger
 *
 * AFTER INSERT FOR EACH STATEMENT, with the new rows as transition table
 * "adopted", on eventstore.events and each of its partitions.  append()
 * writes below the executor and never fires it; it fires for rows written
 * directly, as pg_restore's COPY does.  Refuses (22003) positions below 1
 * or above the allocator's range, (23505) a position stored twice, and
 * (55006) positions below the allocator while appends are in flight; then
 * holds the head until the transaction ends and moves the allocator above
 * the rows.  Events restored below a head that readers have already passed
 * are not seen by those readers.  Checking for positions stored twice
 * probes every partition's insert_order index once per new row.
 */
Datum
eventstore_adopt_positions(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	SPIPlanPtr	plan;
	int64		lowest;
	int64		highest;
	bool		isnull;
	int			rc;

	if (!CALLED_AS_TRIGGER(fcinfo) || trigdata->tg_newtable == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("eventstore.adopt_positions() must be an AFTER INSERT statement trigger with a NEW TABLE")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_register_trigger_data(trigdata) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");

	rc = SPI_execute("SELECT pg_catalog.min(a.insert_order), pg_catalog.max(a.insert_order) "
					 "FROM adopted a", true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading the new rows failed: %s", SPI_result_code_string(rc));
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
	{
		/* no rows */
		SPI_finish();
		return PointerGetDatum(NULL);
	}
	lowest = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	highest = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (lowest < 1 || highest > ES_MAX_POSITION)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("insert_order %lld is out of range",
						(long long) (lowest < 1 ? lowest : highest)),
				 errdetail("Positions run from 1 to %lld.", (long long) ES_MAX_POSITION)));

	/*
	 * Hold the head and move the allocator first, refusing rows below it
	 * while appends are in flight: afterwards no appender can take one of
	 * these positions, and every one that took a position before has
	 * committed or aborted.  So the check for positions stored twice reads
	 * with a snapshot taken now (the transaction's own one may be older, in
	 * REPEATABLE READ), which sees every such commit, and, with a new
	 * command id, the statement's own rows.
	 */
	es_adopt(lowest, highest);
	plan = SPI_prepare("SELECT e.insert_order FROM eventstore.events e "
					   "WHERE e.insert_order OPERATOR(pg_catalog.=) ANY "
					   "(SELECT a.insert_order FROM adopted a) "
					   "GROUP BY e.insert_order "
					   "HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1 LIMIT 1",
					   0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	CommandCounterIncrement();
	rc = SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, false, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "checking the new rows failed: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("insert_order %lld is stored twice",
						(long long) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
																SPI_tuptable->tupdesc,
																1, &isnull))),
				 errdetail("Every event of the log has a position of its own.")));
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * Transaction end: release this backend's positions.  At commit this runs
 * after ProcArrayEndTransaction, so the commit is already visible.  It must
 * not fail: at this point the transaction can no longer be aborted.
 */
static void
es_release_slot(bool committed)
{
	EsDatabase *db = slot_db;
	EsSlot	   *slot;
	Latch	   *latch = NULL;
	bool		released = false;

	if (db == NULL)
		return;
	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	slot = EsMySlot(db);
	if (slot->lowest != 0)
	{
		if (committed)
		{
			int			size = EsRingSize();
			EsCommit   *c = &db->ring[db->commits_added % size];

			if (db->commits_added >= (uint64) size)
				db->evicted_xid = FullTransactionIdNewer(db->evicted_xid, c->xid);
			c->xid = slot->xid;
			c->lowest = slot->lowest;
			db->commits_added++;
		}
		slot->lowest = 0;
		db->releases++;
		if (adopt_moved && !committed && db->next == adopt_moved_to &&
			db->reserved_end == adopt_moved_to - 1)
		{
			db->next = adopt_prev_next;
			db->reserved_end = adopt_prev_reserved_end;
		}
		latch = EsTickerLatchLocked(db);
		released = true;
	}
	LWLockRelease(db->lock);

	/* the head may move now */
	if (released)
		EsWakeTicker(latch);
}

static void
es_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (xact_holds_positions || xact_appended)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has appended events"),
						 errdetail("A prepared transaction would hold the head of the event feed, or a stream, until it is resolved.")));
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
			xact_appended = false;
			adopt_moved = false;
			break;
		default:
			break;
	}
}

/*
 * EsPositionInit
 *		Called from _PG_init: hook transaction ends in every backend that
 *		loads the library.
 */
void
EsPositionInit(void)
{
	RegisterXactCallback(es_xact_callback, NULL);
}
