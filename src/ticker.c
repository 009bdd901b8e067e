/*-------------------------------------------------------------------------
 *
 * ticker.c
 *		Ticks: the head of the feed, recorded and announced by one
 *		background worker per database.
 *
 * When the head of the feed advances, the database's ticker inserts a row
 * (tick_id, head, ticked_at) into eventstore.ticks and sends one
 *
 *		NOTIFY eventstore, '<head>'
 *
 * in the same transaction.  Writers never notify: PreCommit_Notify takes a
 * cluster-wide lock that is held until commit, so a notification per append
 * would serialize every appending commit.  Instead an appender sets the
 * ticker's latch as it releases its positions (position.c), and the ticker
 * coalesces: at most one tick per eventstore.tick_interval, none while
 * nothing moves.  Followers LISTEN on "eventstore" and read up to the head
 * they are told (or ask for it themselves); callers of eventstore.wait_for
 * publish in their slot the position they wait to see passed, and the
 * ticker, as it sees the head move, sets the latch of those the head has
 * passed and of no other (EsWakeWaiters): they wake at most once per tick,
 * and waiters further ahead cost nothing.
 *
 * A tick's head is computed after every event at or below it has committed
 * (that is what the head means), so the tick's own commit record follows
 * theirs in the WAL, and a hot standby that has replayed a tick sees every
 * event at or below its head (head.c).  LISTEN is not allowed there;
 * standby readers poll.
 *
 * An idle database costs nothing: the ticker wakes when an appender sets
 * its latch, and starts a transaction only when appenders have released
 * positions since the last tick (EsTickerCue) and the head, as shared
 * memory tells it, has moved; to prune; or when a DROP EXTENSION has
 * committed in its database (utility.c), to notice that it must go.  Ticks are pruned at most every
 * ten seconds, after new ticks were recorded and for as long as more than
 * eventstore.tick_keep are left (time or a subscription's progress frees
 * them): those older than
 * eventstore.tick_retention, except the newest eventstore.tick_keep and
 * every tick at or after the one that a subscription's checkpoint still
 * needs (create_subscription uses ticks to find when an event became
 * visible).
 *
 * The ticker runs as the bootstrap superuser, so it trusts nothing of the
 * database's or role's settings: it sets its own search_path, isolation
 * level, read-write mode and timeouts, and every name in its queries is
 * schema-qualified.  A tick that fails is logged with its SQLSTATE, rolled
 * back, and tried again with a backoff from 100 ms to 10 s; the ticker
 * exits only when asked to (a command needs the database alone, see
 * utility.c), when the extension is gone, or on a signal, and the launcher
 * (launcher.c) starts it again where needed.  Ticker commits are
 * asynchronous: a tick lost in a crash is repeated by the next one.
 *
 * src/ticker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "eventstore.h"
#include "guc.h"
#include "head.h"
#include "launcher.h"
#include "metrics.h"
#include "shmem.h"
#include "spi.h"

/* Shortest time between two prunings of eventstore.ticks. */
#define ES_PRUNE_EVERY_MS	10000

/* Longest sleep of an idle ticker (only to notice a reload or a prune). */
#define ES_IDLE_MS			10000

/* Longest time a waiting ticker takes to notice a stop request. */
#define ES_RESPOND_MS		100

/* Backoff after a failed tick: from this, doubled, up to ES_RETRY_MAX_MS. */
#define ES_RETRY_MIN_MS		100
#define ES_RETRY_MAX_MS		10000

PGDLLEXPORT void eventstore_ticker_main(Datum main_arg);

/* This ticker's database entry, once attached, and the database's name. */
static EsDatabase *ticker_db = NULL;
static char *ticker_dbname = NULL;

static SPIPlanPtr tick_plan = NULL;
static SPIPlanPtr prune_plan = NULL;
static SPIPlanPtr excess_plan = NULL;

/*
 * Settings the ticker depends on, whatever ALTER DATABASE or ALTER ROLE
 * says: its own identity (a database's "role" setting would make it tick as
 * another role), a search_path that finds only the catalog, read-write READ
 * COMMITTED transactions (EsHead needs a fresh snapshot after the head), no
 * timeouts that would kill a tick, errors that stay errors, asynchronous
 * commits.
 */
static const char *const es_ticker_settings[][2] = {
	{"role", "none"},
	{"search_path", "pg_catalog, pg_temp"},
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_read_only", "off"},
	{"default_transaction_deferrable", "off"},
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"session_replication_role", "origin"},
	{"exit_on_error", "off"},
	{"synchronous_commit", "off"},	/* flushed for standbys: es_tick */
};

static void
es_ticker_set_gucs(void)
{
	for (int i = 0; i < (int) lengthof(es_ticker_settings); i++)
		SetConfigOption(es_ticker_settings[i][0], es_ticker_settings[i][1],
						PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Whether this database has the extension, with its ticks table.  Each tick
 * asks only the syscache (DROP EXTENSION drops the schema and the table);
 * the scan of pg_extension is for the start.
 */
static bool
es_ticks_exist(bool check_extension)
{
	Oid			nsp;

	if (check_extension && !OidIsValid(get_extension_oid("eventstore", true)))
		return false;
	nsp = get_namespace_oid("eventstore", true);
	return OidIsValid(nsp) && OidIsValid(get_relname_relid("ticks", nsp));
}

static void
es_ticker_exit(int code, Datum arg)
{
	if (ticker_db != NULL)
		EsTickerDetach(ticker_db, DatumGetBool(arg));
}

/* Record the head if it moved, and announce it.  Connected to SPI. */
static void
es_record_tick(int64 head, int64 *last_head, int *recorded)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	int			rc;

	/*
	 * A head below the last one means the extension was created anew (a
	 * new log starts at 1); the statement compares with the table.
	 */
	EsKeptPlan(&tick_plan,
			   "INSERT INTO eventstore.ticks (head) "
			   "SELECT $1 WHERE $1 OPERATOR(pg_catalog.>) COALESCE("
			   "(SELECT t.head FROM eventstore.ticks t "
			   "ORDER BY t.tick_id DESC LIMIT 1), 0)",
			   1, types);
	values[0] = Int64GetDatum(head);
	rc = SPI_execute_plan(tick_plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "recording a tick failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		Async_Notify("eventstore", psprintf(INT64_FORMAT, head));
		(*recorded)++;
	}
	*last_head = head;
}

/*
 * Keep the newest tick_keep, everything younger than the retention, and
 * every tick from the newest one at or below the lowest checkpoint of a
 * subscription on.  Returns whether more than tick_keep ticks are left
 * (time or a subscription's progress may free them later).  Connected to
 * SPI.
 */
static bool
es_prune_ticks(void)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		values[2];
	int			rc;

	EsKeptPlan(&prune_plan,
			   "DELETE FROM eventstore.ticks t "
			   "WHERE t.ticked_at OPERATOR(pg_catalog.<) "
			   "(pg_catalog.now() OPERATOR(pg_catalog.-) "
			   "pg_catalog.make_interval(secs => $1)) "
			   "AND t.tick_id OPERATOR(pg_catalog.<=) "
			   "(SELECT k.tick_id FROM eventstore.ticks k "
			   "ORDER BY k.tick_id DESC OFFSET $2 LIMIT 1) "
			   "AND t.tick_id OPERATOR(pg_catalog.<) COALESCE("
			   "(SELECT pg_catalog.max(n.tick_id) FROM eventstore.ticks n "
			   "WHERE n.head OPERATOR(pg_catalog.<=) "
			   "(SELECT pg_catalog.min(c.checkpoint) FROM ("
			   "SELECT s.checkpoint FROM eventstore.subscriptions s "
			   "WHERE NOT s.consumer_group UNION ALL "
			   "SELECT p.checkpoint FROM eventstore.subscription_partitions p) c)), "
			   "(SELECT pg_catalog.min(n.tick_id) FROM eventstore.ticks n "
			   "WHERE EXISTS (SELECT FROM eventstore.subscriptions)), "
			   "9223372036854775807)",
			   2, types);
	values[0] = Int32GetDatum(es_tick_retention_s);
	values[1] = Int32GetDatum(es_tick_keep);
	rc = SPI_execute_plan(prune_plan, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "pruning ticks failed: %s", SPI_result_code_string(rc));

	EsKeptPlan(&excess_plan,
			   "SELECT FROM eventstore.ticks t "
			   "ORDER BY t.tick_id DESC OFFSET $1 LIMIT 1",
			   1, &types[1]);
	rc = SPI_execute_plan(excess_plan, &values[1], NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "counting ticks failed: %s", SPI_result_code_string(rc));
	return SPI_processed > 0;
}

/*
 * Whether a WAL sender runs.  A tick commits asynchronously, and a sender
 * streams only what is flushed: without a flush of its own the tick would
 * reach a standby only with the next synchronous commit, or the WAL
 * writer's next round (wal_writer_delay), and a standby's head (the newest
 * replayed tick) would lag by that much.
 */
static bool
es_standbys_streaming(void)
{
	if (WalSndCtl == NULL)
		return false;
	for (int i = 0; i < max_wal_senders; i++)
	{
		WalSnd	   *sender = &WalSndCtl->walsnds[i];
		pid_t		pid;

		SpinLockAcquire(&sender->mutex);
		pid = sender->pid;
		SpinLockRelease(&sender->mutex);
		if (pid != 0)
			return true;
	}
	return false;
}

/*
 * One tick, in its own transaction: record and announce the head if it
 * moved (counting the ticks recorded in *recorded), prune if asked
 * (setting *excess when more than tick_keep ticks are left).  Returns false
 * when the extension is gone.
 */
static bool
es_tick(int64 *last_head, bool prune, int *recorded, bool *excess)
{
	bool		present;
	int			recorded_before = *recorded;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "eventstore tick");

	present = es_ticks_exist(false);
	if (present)
	{
		int64		head = EsHead();

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (head != *last_head)
			es_record_tick(head, last_head, recorded);
		if (prune)
			*excess = es_prune_ticks();
		SPI_finish();
	}

	PopActiveSnapshot();
	CommitTransactionCommand();
	if (*recorded > recorded_before && es_standbys_streaming())
		XLogFlush(XactLastCommitEnd);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return present;
}

static void
es_tick_error_context(void *arg)
{
	errcontext("eventstore ticker of database \"%s\"", ticker_dbname);
}

/*
 * es_tick, with its errors caught: logged (with their SQLSTATE), rolled
 * back.  Returns false when the tick failed; *present is then true.
 */
static bool
es_tick_guarded(int64 *last_head, bool prune, int *recorded, bool *excess,
				bool *present)
{
	MemoryContext cxt = CurrentMemoryContext;
	ErrorContextCallback callback;
	volatile bool ok = true;

	callback.callback = es_tick_error_context;
	callback.arg = NULL;
	callback.previous = error_context_stack;
	error_context_stack = &callback;

	*present = true;
	PG_TRY();
	{
		*present = es_tick(last_head, prune, recorded, excess);
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		AbortCurrentTransaction();
		FlushErrorState();
		pgstat_report_activity(STATE_IDLE, NULL);
		RESUME_INTERRUPTS();
		ok = false;
		/* the next tick compares with the table again */
		*last_head = -1;
	}
	PG_END_TRY();
	error_context_stack = callback.previous;
	return ok;
}

/*
 * Sleep until the time given, or a stop request; appenders keep setting
 * the latch meanwhile, so it is not waited for.
 */
static void
es_sleep_until(TimestampTz until)
{
	for (;;)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		CHECK_FOR_INTERRUPTS();
		if (ms <= 0 || EsTickerStopRequested(ticker_db))
			return;
		(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(ms, ES_RESPOND_MS), PG_WAIT_EXTENSION);
	}
}

/*
 * A database's ticker.
 */
void
eventstore_ticker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	EsDatabase *db;
	bool		present;
	bool		attached = false;
	int64		last_head = -1;
	uint64		last_cue = 0;
	bool		first = true;
	int			failures = 0;
	int			unpruned = 1;	/* prune once after starting */
	TimestampTz last_tick = 0;
	TimestampTz last_prune = 0;
	TimestampTz retry_at = 0;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* the exit callback first: it detaches whatever is attached */
	before_shmem_exit(es_ticker_exit, BoolGetDatum(false));
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("eventstore ticker");
	es_ticker_set_gucs();

	StartTransactionCommand();
	if (!superuser())
		ereport(FATAL,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("eventstore ticker must run as a superuser")));
	{
		char	   *name = get_database_name(MyDatabaseId);

		ticker_dbname = MemoryContextStrdup(TopMemoryContext,
											name != NULL ? name : "");
	}
	present = es_ticks_exist(true);
	if (present)
	{
		db = EsMyDatabase();
		attached = EsTickerAttach(db);
		if (attached)
			ticker_db = db;
	}
	else if ((db = EsFindDatabase(MyDatabaseId)) != NULL)
	{
		/* the extension is gone: no ticker is needed here */
		ticker_db = db;
		EsTickerDetach(db, true);
		ticker_db = NULL;
	}
	CommitTransactionCommand();
	if (!attached)
		proc_exit(0);

	for (;;)
	{
		TimestampTz now;
		uint64		cue;
		bool		recheck;
		int64		head;
		bool		prune;
		int			recorded = 0;
		bool		excess = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			es_ticker_set_gucs();
		}
		if (EsTickerStopRequested(ticker_db))
			break;

		/* coalesce: no two ticks closer than tick_interval */
		if (last_tick != 0)
			es_sleep_until(Max(retry_at,
							   TimestampTzPlusMilliseconds(last_tick,
														   es_tick_interval_ms)));
		if (EsTickerStopRequested(ticker_db))
			break;

		ResetLatch(MyLatch);
		now = GetCurrentTimestamp();
		cue = EsTickerCue(ticker_db, &recheck);
		prune = unpruned > 0 &&
			TimestampDifferenceExceeds(last_prune, now, ES_PRUNE_EVERY_MS);

		/* nothing released, or the head has not moved: no transaction */
		if (first || failures > 0 || prune || recheck ||
			(cue != last_cue &&
			 !(EsHeadNow(ticker_db, &head) && head == last_head)))
		{
			/* the eventstore.wait_for() callers the head has passed */
			EsCount(ticker_db, ES_COUNT_WAKEUPS, EsWakeWaiters(ticker_db));
			last_tick = now;
			if (es_tick_guarded(&last_head, prune, &recorded, &excess, &present))
			{
				if (!present)
					break;
				EsCount(ticker_db, ES_COUNT_TICKS, recorded);
				failures = 0;
				unpruned += recorded;
				if (prune)
				{
					/* ticks beyond tick_keep left: look again later */
					last_prune = now;
					unpruned = recorded + (excess ? 1 : 0);
				}
			}
			else
			{
				long		backoff = ES_RETRY_MIN_MS;

				for (int i = 0; i < failures && backoff < ES_RETRY_MAX_MS; i++)
					backoff *= 2;
				failures++;
				retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   Min(backoff, ES_RETRY_MAX_MS));
				continue;
			}
		}
		last_cue = cue;
		first = false;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ES_IDLE_MS, PG_WAIT_EXTENSION);
	}

	/* asked to stop, or the extension is gone */
	if (!present)
	{
		EsTickerDetach(ticker_db, true);
		ticker_db = NULL;
	}
	proc_exit(0);
}
