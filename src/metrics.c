/*-------------------------------------------------------------------------
 *
 * metrics.c
 *		Counters of what eventstore does, per database: appends, events,
 *		duplicates, bytes, conflicts, ticks, waits.  eventstore.stats shows
 *		them, eventstore.reset_stats zeroes them.
 *
 * The counters live in the database's entry in shared memory (shmem.c),
 * as 64-bit atomics: adding to one or reading it takes no lock, and a
 * reader may see one counter's addition before another's.  They start at
 * zero when the database's entry is claimed, by its first use after the
 * server started, and are not kept across a restart (counters_reset_at
 * says since when they count).
 *
 * What an append stored counts only once its transaction commits: each
 * append adds to a pending count in the backend, kept per subtransaction
 * nesting level, so that a subtransaction that rolls back (an exception
 * block, try_append_multi's own) takes its events with it.  At commit the
 * pending counts are added to the shared counters, four atomic additions
 * at most; at abort the events are counted as rolled back.  Conflicts,
 * ticks, wake-ups and waits count as they happen.
 *
 * src/metrics.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "eventstore.h"
#include "metrics.h"

/* What the appends of one subtransaction nesting level stored. */
typedef struct EsPending
{
	int			level;
	int64		appends;
	int64		events;
	int64		duplicates;
	int64		bytes;
} EsPending;

/*
 * Backend-local: the levels with pending counts, innermost last (levels
 * only grow towards the top of the stack), and the entry they go to.
 */
static EsPending *pending = NULL;
static int	npending = 0;
static int	pending_size = 0;
static EsDatabase *pending_db = NULL;

PG_FUNCTION_INFO_V1(eventstore_stats_counters);
PG_FUNCTION_INFO_V1(eventstore_reset_stats);

/*
 * EsCount
 *		Add n to one of the database's counters, now.
 */
void
EsCount(EsDatabase *db, EsCounterId counter, uint64 n)
{
	Assert(counter >= 0 && counter < ES_NUM_COUNTERS);
	if (n > 0)
		pg_atomic_fetch_add_u64(&db->counters[counter], n);
}

/*
 * EsCountAppend
 *		One append call of the current (sub)transaction stored events new
 *		events and found duplicates stored already, of bytes bytes of data
 *		and metadata: counted if it commits.
 */
void
EsCountAppend(int64 events, int64 duplicates, int64 bytes)
{
	int			level = GetCurrentTransactionNestLevel();
	EsPending  *p;

	if (npending == 0 || pending[npending - 1].level != level)
	{
		Assert(npending == 0 || pending[npending - 1].level < level);
		if (npending == pending_size)
		{
			int			size = Max(8, pending_size * 2);

			pending = pending == NULL ?
				MemoryContextAlloc(TopMemoryContext, size * sizeof(EsPending)) :
				repalloc(pending, size * sizeof(EsPending));
			pending_size = size;
		}
		p = &pending[npending++];
		memset(p, 0, sizeof(EsPending));
		p->level = level;
	}
	p = &pending[npending - 1];
	p->appends++;
	p->events += events;
	p->duplicates += duplicates;
	p->bytes += bytes;
	pending_db = EsMyDatabase();
}

/* Pending counts of levels >= level: gone with their subtransaction. */
static void
es_pending_abort_from(int level)
{
	while (npending > 0 && pending[npending - 1].level >= level)
	{
		EsCount(pending_db, ES_COUNT_ROLLED_BACK, pending[npending - 1].events);
		npending--;
	}
}

/* A subtransaction at level committed: its counts move to its parent. */
static void
es_pending_commit_sub(int level)
{
	EsPending  *top;

	if (npending == 0 || pending[npending - 1].level != level)
		return;
	top = &pending[npending - 1];
	if (npending > 1 && pending[npending - 2].level == level - 1)
	{
		EsPending  *parent = &pending[npending - 2];

		parent->appends += top->appends;
		parent->events += top->events;
		parent->duplicates += top->duplicates;
		parent->bytes += top->bytes;
		npending--;
	}
	else
		top->level = level - 1;
}

/* The top-level transaction committed. */
static void
es_pending_commit(void)
{
	EsPending	sum = {0};

	for (int i = 0; i < npending; i++)
	{
		sum.appends += pending[i].appends;
		sum.events += pending[i].events;
		sum.duplicates += pending[i].duplicates;
		sum.bytes += pending[i].bytes;
	}
	npending = 0;
	EsCount(pending_db, ES_COUNT_APPENDS, sum.appends);
	EsCount(pending_db, ES_COUNT_EVENTS, sum.events);
	EsCount(pending_db, ES_COUNT_DUPLICATES, sum.duplicates);
	EsCount(pending_db, ES_COUNT_BYTES, sum.bytes);
}

static void
es_metrics_xact_callback(XactEvent event, void *arg)
{
	if (npending == 0)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			es_pending_commit();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:	/* refused after an append: see position.c */
			es_pending_abort_from(0);
			break;
		default:
			break;
	}
}

static void
es_metrics_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	if (npending == 0)
		return;
	/* the ending subtransaction is still the current one */
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			es_pending_commit_sub(GetCurrentTransactionNestLevel());
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			es_pending_abort_from(GetCurrentTransactionNestLevel());
			break;
		default:
			break;
	}
}

/*
 * EsMetricsInit
 *		Called from _PG_init: hook transaction and subtransaction ends.
 */
void
EsMetricsInit(void)
{
	RegisterXactCallback(es_metrics_xact_callback, NULL);
	RegisterSubXactCallback(es_metrics_subxact_callback, NULL);
}

/*
 * eventstore.stats_counters() returns table (appends bigint,
 *		events bigint, duplicates bigint, bytes bigint, rolled_back bigint,
 *		conflicts bigint, ticks bigint, wakeups bigint, waits bigint,
 *		wait_timeouts bigint, stats_reset timestamptz)
 *
 * The counters of the current database, one row, in the order of
 * EsCounterId (the view eventstore.stats adds the head).  They are read
 * one by one, without a lock: a row is not a consistent snapshot of all of
 * them.  Errors: not preloaded (55000).
 */
Datum
eventstore_stats_counters(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	EsDatabase *db;
	Datum		values[ES_NUM_COUNTERS + 1];
	bool		nulls[ES_NUM_COUNTERS + 1] = {0};

	EsCheckLoaded();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != lengthof(values))
		elog(ERROR, "eventstore.stats_counters() returns %d columns, not %d",
			 desc->natts, (int) lengthof(values));
	db = EsMyDatabase();

	for (int c = 0; c < ES_NUM_COUNTERS; c++)
	{
		uint64		v = pg_atomic_read_u64(&db->counters[c]);

		values[c] = Int64GetDatum((int64) Min(v, (uint64) PG_INT64_MAX));
	}
	values[ES_NUM_COUNTERS] = TimestampTzGetDatum((TimestampTz)
												  pg_atomic_read_u64(&db->counters_reset_at));

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * eventstore.reset_stats() returns void
 *
 * Zero the current database's counters and set stats_reset to now.
 * Additions that run concurrently may land before or after the reset.
 * Errors: not preloaded (55000).
 */
Datum
eventstore_reset_stats(PG_FUNCTION_ARGS)
{
	EsDatabase *db;

	EsCheckLoaded();
	db = EsMyDatabase();
	for (int c = 0; c < ES_NUM_COUNTERS; c++)
		pg_atomic_write_u64(&db->counters[c], 0);
	pg_atomic_write_u64(&db->counters_reset_at, (uint64) GetCurrentTimestamp());
	PG_RETURN_VOID();
}
