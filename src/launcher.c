/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: one background worker that keeps a ticker running for
 *		every database that uses eventstore.
 *
 * The launcher is registered when the library is preloaded and connects to
 * no database.  At start (and after a crash restart) it starts a ticker in
 * every database that accepts connections and is not a template; a ticker
 * that finds no extension exits at once and is not started again.  After
 * that it starts tickers for the entries of shmem.c that want one and have
 * none: a database whose first backend used the extension, a ticker that
 * failed or was terminated, a database whose ticker a command had stopped.
 * A ticker that exits without being asked to is restarted, at once the
 * first time and then with a backoff doubling from one second to a minute
 * (reset once a ticker has run for a minute).  Appenders never start
 * workers: an appender whose database has no ticker marks the entry and
 * sets the launcher's latch (EsWakeTicker).  When no worker slot is free
 * the launcher logs a warning (53000) and tries again with the backoff.
 *
 * The ticker state of an entry (ticker_pid, ticker_latch, ticker_wanted,
 * ticker_stops) is read and written under the entry's lock; latches are set
 * after the lock is released.  A command that needs a database to itself
 * (see utility.c) counts itself in ticker_stops, which makes the ticker exit
 * and keeps the launcher from starting another until every such command
 * has finished, failed or died (EsResumeTicker), or the database is gone
 * (EsForgetDatabase).
 *
 * src/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "eventstore.h"
#include "launcher.h"
#include "shmem.h"

/* Longest sleep of the launcher between two rounds. */
#define ES_LAUNCHER_NAP_MS		10000

/* Restart backoff: from one second, doubled, up to a minute. */
#define ES_BACKOFF_MIN_MS		1000
#define ES_BACKOFF_MAX_MS		60000

/* A ticker that ran this long without failing resets the backoff. */
#define ES_HEALTHY_MS			60000

/* How long EsStopTicker waits for a ticker to go. */
#define ES_STOP_WAIT_MS			5000

PGDLLEXPORT void eventstore_launcher_main(Datum main_arg);

/* What the launcher knows of one database's ticker (launcher-local). */
typedef struct EsTickerRun
{
	Oid			dboid;
	bool		probe;			/* started at launch; no entry yet */
	BackgroundWorkerHandle *handle; /* the worker started last, or NULL */
	TimestampTz started;
	int			failures;		/* unasked exits in a row */
	TimestampTz not_before;		/* no start before this */
	bool		warned;			/* slot shortage logged for this streak */
} EsTickerRun;

static List *es_runs = NIL;

/*
 * EsTickerLatchLocked
 *		For an appender releasing positions, holding db->lock exclusively:
 *		the ticker's latch to set once the lock is released, or NULL when
 *		none runs, in which case the entry is marked as wanting one.
 */
Latch *
EsTickerLatchLocked(EsDatabase *db)
{
	if (db->ticker_latch == NULL)
		db->ticker_wanted = true;
	return db->ticker_latch;
}

/*
 * EsWakeTicker
 *		Set the latch EsTickerLatchLocked returned, or the launcher's when
 *		there was none.  Called without locks; never fails.
 */
void
EsWakeTicker(Latch *latch)
{
	if (latch != NULL)
		SetLatch(latch);
	else
		EsWakeLauncher();
}

/*
 * EsTickerAttach
 *		Called by a ticker once connected: become the ticker of db, unless
 *		one is attached already or a command wants the database alone.
 */
bool
EsTickerAttach(EsDatabase *db)
{
	bool		attached = false;

	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	if (db->ticker_pid == 0 && db->ticker_stops == 0)
	{
		db->ticker_pid = MyProcPid;
		db->ticker_latch = MyLatch;
		db->ticker_wanted = true;
		attached = true;
	}
	LWLockRelease(db->lock);
	return attached;
}

/*
 * EsTickerDetach
 *		Called by the ticker on its way out.  unwanted: the extension is
 *		gone from the database, so no ticker is needed until a backend uses
 *		it again.  The launcher is told either way.
 */
void
EsTickerDetach(EsDatabase *db, bool unwanted)
{
	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	if (db->ticker_pid == MyProcPid)
	{
		db->ticker_pid = 0;
		db->ticker_latch = NULL;
	}
	if (unwanted)
		db->ticker_wanted = false;
	LWLockRelease(db->lock);
	EsWakeLauncher();
}

/* Whether a command has asked the ticker of db to exit. */
bool
EsTickerStopRequested(EsDatabase *db)
{
	bool		stop;

	LWLockAcquire(db->lock, LW_SHARED);
	stop = db->ticker_stops > 0;
	LWLockRelease(db->lock);
	return stop;
}

/*
 * EsTickerCue
 *		How many times appenders of db have released positions: when it has
 *		not changed, the head has not moved and the ticker need not look.
 *		*recheck: whether a backend asked it to look at the catalog anyway
 *		(the request is taken).
 */
uint64
EsTickerCue(EsDatabase *db, bool *recheck)
{
	uint64		cue;

	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	cue = db->releases;
	*recheck = db->ticker_recheck;
	db->ticker_recheck = false;
	LWLockRelease(db->lock);
	return cue;
}

/*
 * EsTickerRecheck
 *		Ask the ticker of a database to look at the catalog at once: the
 *		extension was dropped there, and an idle ticker would not notice.
 */
void
EsTickerRecheck(Oid dboid)
{
	EsDatabase *db = EsFindDatabase(dboid);
	Latch	   *latch = NULL;

	if (db == NULL)
		return;
	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	if (db->dboid == dboid)
	{
		db->ticker_recheck = true;
		latch = db->ticker_latch;
	}
	LWLockRelease(db->lock);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * EsStopTicker
 *		Ask the ticker of a database to exit and keep the launcher from
 *		starting another.  Returns whether the stop was recorded; then
 *		exactly one EsResumeTicker or EsForgetDatabase must follow, also
 *		when the command fails or its backend exits.
 */
bool
EsStopTicker(Oid dboid)
{
	EsDatabase *db = EsFindDatabase(dboid);
	bool		recorded = false;
	Latch	   *latch = NULL;

	if (db == NULL)
		return false;
	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	if (db->dboid == dboid)
	{
		db->ticker_stops++;
		latch = db->ticker_latch;
		recorded = true;
	}
	LWLockRelease(db->lock);
	if (latch != NULL)
		SetLatch(latch);
	return recorded;
}

/*
 * EsAwaitTickerExit
 *		Wait up to five seconds for a stopped database's ticker to go:
 *		commands such as DROP DATABASE refuse to run while a worker is
 *		connected to the database.
 */
void
EsAwaitTickerExit(Oid dboid)
{
	EsDatabase *db = EsFindDatabase(dboid);

	for (int waited = 0; db != NULL && waited <= ES_STOP_WAIT_MS; waited += 10)
	{
		Latch	   *latch;
		int			pid;

		LWLockAcquire(db->lock, LW_SHARED);
		latch = db->ticker_latch;
		pid = db->dboid == dboid ? db->ticker_pid : 0;
		LWLockRelease(db->lock);
		if (pid == 0)
			break;
		if (latch != NULL)
			SetLatch(latch);
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
}

/*
 * EsResumeTicker
 *		Undo one EsStopTicker: once no command needs the database alone any
 *		more, it wants its ticker back, at once.
 */
void
EsResumeTicker(Oid dboid)
{
	EsDatabase *db = EsFindDatabase(dboid);

	if (db == NULL)
		return;
	LWLockAcquire(db->lock, LW_EXCLUSIVE);
	if (db->dboid == dboid)
	{
		if (db->ticker_stops > 0)
			db->ticker_stops--;
		db->ticker_wanted = true;
	}
	LWLockRelease(db->lock);
	EsWakeLauncher();
}

/* --- the launcher itself ---------------------------------------------- */

/* What the launcher knows of a database, new if nothing yet. */
static EsTickerRun *
es_run_for(Oid dboid)
{
	ListCell   *lc;
	EsTickerRun *run;
	MemoryContext old;

	foreach(lc, es_runs)
	{
		run = (EsTickerRun *) lfirst(lc);
		if (run->dboid == dboid)
			return run;
	}
	/* kept across rounds and the transactions between them */
	old = MemoryContextSwitchTo(TopMemoryContext);
	run = palloc0(sizeof(EsTickerRun));
	run->dboid = dboid;
	es_runs = lappend(es_runs, run);
	MemoryContextSwitchTo(old);
	return run;
}

/* Every database a ticker may run in, as probes. */
static void
es_probe_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database form = (Form_pg_database) GETSTRUCT(tup);

		/* a worker connected to a template would block CREATE DATABASE */
		if (form->datallowconn && !form->datistemplate)
			es_run_for(form->oid)->probe = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

/* What the catalog says of a database a ticker is to start in. */
typedef enum EsDatabaseState
{
	ES_DB_USABLE,				/* a worker may connect to it */
	ES_DB_CLOSED,				/* exists, but takes no connections or is a template */
	ES_DB_GONE					/* dropped */
} EsDatabaseState;

static EsDatabaseState
es_database_state(Oid dboid)
{
	HeapTuple	tup;
	EsDatabaseState state = ES_DB_GONE;

	StartTransactionCommand();
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_database form = (Form_pg_database) GETSTRUCT(tup);

		state = form->datallowconn && !form->datistemplate ?
			ES_DB_USABLE : ES_DB_CLOSED;
		ReleaseSysCache(tup);
	}
	CommitTransactionCommand();
	return state;
}

static long
es_backoff_ms(int failures)
{
	long		ms = ES_BACKOFF_MIN_MS;

	if (failures <= 1)
		return 0;
	for (int i = 2; i < failures && ms < ES_BACKOFF_MAX_MS; i++)
		ms *= 2;
	return Min(ms, ES_BACKOFF_MAX_MS);
}

static bool
es_register_ticker(EsTickerRun *run)
{
	BackgroundWorker worker;
	MemoryContext old;
	bool		registered;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "eventstore");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "eventstore_ticker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "eventstore ticker for database %u",
			 run->dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "eventstore ticker");
	worker.bgw_main_arg = ObjectIdGetDatum(run->dboid);
	worker.bgw_notify_pid = MyProcPid;

	/* the handle lives until the worker is seen to exit */
	old = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&worker, &run->handle);
	MemoryContextSwitchTo(old);
	return registered;
}

/*
 * Whether a database has an entry; whether it wants a ticker and whether
 * one is attached.
 */
static bool
es_entry_state(Oid dboid, bool *wanted, bool *attached)
{
	EsDatabase *db = EsFindDatabase(dboid);
	bool		found = false;

	*wanted = false;
	*attached = false;
	if (db == NULL)
		return false;
	LWLockAcquire(db->lock, LW_SHARED);
	if (db->dboid == dboid)
	{
		*wanted = db->ticker_wanted && db->ticker_stops == 0;
		*attached = db->ticker_pid != 0;
		found = true;
	}
	LWLockRelease(db->lock);
	return found;
}

/*
 * A worker of ours has exited.  A probe is done with; an exit nobody asked
 * for (the entry still wants a ticker, none is attached, no stop is
 * pending) counts as a failure.
 */
static void
es_ticker_exited(EsTickerRun *run, TimestampTz now, bool failed)
{
	pfree(run->handle);
	run->handle = NULL;
	if (TimestampDifferenceExceeds(run->started, now, ES_HEALTHY_MS))
		run->failures = 0;
	if (failed)
	{
		run->failures++;
		run->not_before = TimestampTzPlusMilliseconds(now, es_backoff_ms(run->failures));
	}
	run->probe = false;
}

/*
 * One round: look at every worker of ours and every entry, start the
 * tickers that are missing and due.  Returns how long to sleep.
 */
static long
es_launcher_round(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		nap = ES_LAUNCHER_NAP_MS;
	ListCell   *lc;

	/* entries that want a ticker and have none: make sure we know them */
	for (int i = 0; i < EsDatabaseCount(); i++)
	{
		EsDatabase *db = EsDatabaseAt(i);
		Oid			dboid;
		bool		missing;

		LWLockAcquire(db->lock, LW_SHARED);
		dboid = db->dboid;
		missing = OidIsValid(dboid) && db->ticker_wanted &&
			db->ticker_stops == 0 && db->ticker_pid == 0;
		LWLockRelease(db->lock);
		if (missing)
			(void) es_run_for(dboid);
	}

	foreach(lc, es_runs)
	{
		EsTickerRun *run = (EsTickerRun *) lfirst(lc);
		bool		wanted;
		bool		attached;
		bool		has_entry;

		has_entry = es_entry_state(run->dboid, &wanted, &attached);
		if (run->handle != NULL)
		{
			pid_t		pid;

			if (GetBackgroundWorkerPid(run->handle, &pid) != BGWH_STOPPED)
				continue;
			es_ticker_exited(run, now, wanted && !attached);
		}
		/* a probe is started once; after that only its entry counts */
		if (attached || !(has_entry ? wanted : run->probe))
			continue;
		if (now < run->not_before)
		{
			nap = Min(nap, TimestampDifferenceMilliseconds(now, run->not_before));
			continue;
		}
		switch (es_database_state(run->dboid))
		{
			case ES_DB_USABLE:
				break;
			case ES_DB_GONE:
				/* no backend can be connected to it: the entry is free */
				EsForgetDatabase(run->dboid);
				run->probe = false;
				continue;
			case ES_DB_CLOSED:
				/* its backends may still use the entry: look again later */
				run->probe = false;
				run->not_before = TimestampTzPlusMilliseconds(now, ES_LAUNCHER_NAP_MS);
				continue;
		}
		if (es_register_ticker(run))
		{
			run->started = now;
			run->warned = false;
			continue;
		}

		/* no worker slot: log once per streak, try again later */
		if (!run->warned)
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("eventstore could not start a ticker for database %u: out of background worker slots",
							run->dboid),
					 errhint("You might need to increase \"max_worker_processes\".")));
		run->warned = true;
		run->handle = NULL;
		run->failures++;
		run->not_before = TimestampTzPlusMilliseconds(now,
													  Max(es_backoff_ms(run->failures),
														  ES_BACKOFF_MIN_MS));
		nap = Min(nap, ES_BACKOFF_MIN_MS);
	}

	/* forget what needs nothing any more */
	foreach(lc, es_runs)
	{
		EsTickerRun *run = (EsTickerRun *) lfirst(lc);

		if (run->handle == NULL && !run->probe && EsFindDatabase(run->dboid) == NULL)
		{
			es_runs = foreach_delete_current(es_runs, lc);
			pfree(run);
		}
	}
	return nap;
}

static void
es_launcher_exit(int code, Datum arg)
{
	EsSetLauncher(NULL);
}

void
eventstore_launcher_main(Datum main_arg)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	before_shmem_exit(es_launcher_exit, (Datum) 0);
	EsSetLauncher(MyLatch);
	es_probe_databases();

	for (;;)
	{
		long		nap;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		nap = es_launcher_round();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
	}
}

/*
 * EsLauncherInit
 *		Called from _PG_init while preloading: register the launcher.
 */
void
EsLauncherInit(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "eventstore");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "eventstore_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "eventstore launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "eventstore launcher");
	RegisterBackgroundWorker(&worker);
}
