/*-------------------------------------------------------------------------
 *
 * ticker.c
 *		Ticks: the head of the feed, recorded and announced.
 *
 * Every database that has the extension gets a background worker, its
 * ticker.  When the head of the feed advances, the ticker inserts a row
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
 * they are told (or ask for it themselves).
 *
 * A tick's head is computed after every event at or below it has committed
 * (that is what the head means), so the tick's own commit record follows
 * theirs in the WAL.  A hot standby that has replayed a tick therefore sees
 * every event at or below its head: during recovery eventstore.head() is
 * the newest tick the reader's snapshot sees.  LISTEN is not allowed there;
 * standby readers poll.
 *
 * Ticks are pruned by the ticker: those older than eventstore.tick_retention,
 * except the newest eventstore.tick_keep and every tick at or after the one
 * that a subscription's checkpoint still needs (subscription.c uses ticks
 * to find the time an event became visible).
 *
 * Lifecycle.  A launcher, registered when the library is preloaded, starts
 * one ticker per database that accepts connections and is not a template
 * when the server starts (or restarts after a crash), then sleeps.  A
 * ticker exits quietly where the extension is not installed.  Appenders
 * start the ticker of their database when none runs (a database that got
 * the extension later, a ticker that failed), at most every ten seconds.
 * DROP DATABASE, ALTER DATABASE ... RENAME / SET TABLESPACE and CREATE
 * DATABASE ... TEMPLATE need the database to themselves: a utility hook
 * asks its ticker to exit first.  Ticker commits are asynchronous: a tick
 * lost in a crash is repeated by the next one.
 *
 * src/ticker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "eventstore.h"

/* Milliseconds between two prunings of eventstore.ticks. */
#define ES_PRUNE_EVERY_MS	10000

/* Longest sleep of an idle ticker; it looks at the head at least this often. */
#define ES_IDLE_MS			1000

/* Longest time a ticker waiting out tick_interval takes to notice a request. */
#define ES_RESPOND_MS		100

PGDLLEXPORT void eventstore_launcher_main(Datum main_arg);
PGDLLEXPORT void eventstore_ticker_main(Datum main_arg);

static ProcessUtility_hook_type prev_process_utility_hook = NULL;

static bool es_register_ticker(Oid dboid);

static SPIPlanPtr tick_plan = NULL;
static SPIPlanPtr prune_plan = NULL;
static SPIPlanPtr last_tick_plan = NULL;

/*
 * EsStartTicker
 *		Register a ticker for a database.  Never raises an error: appenders
 *		call it from their commit callback.
 */
void
EsStartTicker(Oid dboid)
{
	if (!es_register_ticker(dboid))
		ereport(LOG,
				(errmsg("eventstore could not start a ticker for database %u", dboid),
				 errhint("Raise max_worker_processes.")));
}

static bool
es_register_ticker(Oid dboid)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "eventstore");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "eventstore_ticker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "eventstore ticker for database %u",
			 dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "eventstore ticker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = 0;

	return RegisterDynamicBackgroundWorker(&worker, NULL);
}

/*
 * The launcher: start a ticker in every database that may have the
 * extension, then stay (so that it runs again after a crash restart).
 */
void
eventstore_launcher_main(Datum main_arg)
{
	List	   *databases = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	ListCell   *lc;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		/* a worker connected to a template would block CREATE DATABASE */
		if (db->datallowconn && !db->datistemplate)
			databases = lappend_oid(databases, db->oid);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();

	/*
	 * Tickers of databases without the extension exit at once; when the
	 * worker slots are all taken, wait for them to free up, up to ten
	 * seconds per database.
	 */
	foreach(lc, databases)
	{
		int			tries = 0;

		while (!es_register_ticker(lfirst_oid(lc)))
		{
			if (++tries > 100)
			{
				EsStartTicker(lfirst_oid(lc));	/* logs the failure */
				break;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 100L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
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
	EsTickerDetach(code == 0);
}

/*
 * One tick, in its own transaction: record and announce the head if it
 * moved, prune if asked.  Returns false when the extension is gone.
 */
static bool
es_tick(int64 *last_head, bool prune)
{
	int64		head;
	bool		present;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "eventstore tick");

	present = es_ticks_exist(false);
	if (present)
	{
		head = EsHead();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");

		/*
		 * A head below the last one means the extension was created anew
		 * (a new log starts at 1); the statement compares with the table.
		 */
		if (head != *last_head)
		{
			Oid			types[1] = {INT8OID};
			Datum		values[1];
			int			rc;

			EsKeptPlan(&tick_plan,
					   "INSERT INTO eventstore.ticks (head) "
					   "SELECT $1 WHERE $1 OPERATOR(pg_catalog.>) COALESCE("
					   "(SELECT t.head FROM eventstore.ticks t "
					   "ORDER BY t.tick_id DESC LIMIT 1), 0)",
					   1, types);
			values[0] = Int64GetDatum(head);
			rc = SPI_execute_plan(tick_plan, values, NULL, false, 0);
			if (rc != SPI_OK_INSERT)
				elog(ERROR, "recording a tick failed: %s",
					 SPI_result_code_string(rc));
			if (SPI_processed == 1)
				Async_Notify("eventstore",
							 psprintf(INT64_FORMAT, head));
			*last_head = head;
		}

		if (prune)
		{
			Oid			types[2] = {INT4OID, INT4OID};
			Datum		values[2];
			int			rc;

			/*
			 * Keep the newest tick_keep, everything younger than the
			 * retention, and every tick from the newest one at or below
			 * the lowest checkpoint of a subscription on.
			 */
			EsKeptPlan(&prune_plan,
					   "DELETE FROM eventstore.ticks t "
					   "WHERE t.ticked_at OPERATOR(pg_catalog.<) "
					   "(pg_catalog.now() OPERATOR(pg_catalog.-) "
					   "pg_catalog.make_interval(secs => $1)) "
					   "AND t.tick_id OPERATOR(pg_catalog.<=) "
					   "(SELECT k.tick_id FROM eventstore.ticks k "
					   "ORDER BY k.tick_id DESC OFFSET $2 LIMIT 1) "
					   "AND t.tick_id OPERATOR(pg_catalog.<) COALESCE("
					   "(SELECT max(n.tick_id) FROM eventstore.ticks n "
					   "WHERE n.head OPERATOR(pg_catalog.<=) "
					   "(SELECT min(c.checkpoint) FROM ("
					   "SELECT s.checkpoint FROM eventstore.subscriptions s "
					   "WHERE NOT s.consumer_group UNION ALL "
					   "SELECT p.checkpoint FROM eventstore.subscription_partitions p) c)), "
					   "(SELECT min(n.tick_id) FROM eventstore.ticks n "
					   "WHERE EXISTS (SELECT FROM eventstore.subscriptions)), "
					   "9223372036854775807)",
					   2, types);
			values[0] = Int32GetDatum(es_tick_retention_s);
			values[1] = Int32GetDatum(es_tick_keep);
			rc = SPI_execute_plan(prune_plan, values, NULL, false, 0);
			if (rc != SPI_OK_DELETE)
				elog(ERROR, "pruning ticks failed: %s",
					 SPI_result_code_string(rc));
		}
		SPI_finish();
	}

	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return present;
}

/*
 * A database's ticker.
 */
void
eventstore_ticker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	bool		present;
	int64		last_head = -1;
	TimestampTz last_tick = 0;
	TimestampTz last_prune = 0;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("eventstore ticker");

	/* a lost tick is repeated by the next one */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/* attaching may look up databases in the catalog */
	StartTransactionCommand();
	present = es_ticks_exist(true) && EsTickerAttach();
	CommitTransactionCommand();
	if (!present)
		proc_exit(0);
	before_shmem_exit(es_ticker_exit, (Datum) 0);

	for (;;)
	{
		TimestampTz now;
		long		wait_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (EsTickerStopRequested())
			break;

		/* coalesce: no two ticks closer than tick_interval */
		now = GetCurrentTimestamp();
		wait_ms = es_tick_interval_ms -
			TimestampDifferenceMilliseconds(last_tick, now);
		if (last_tick != 0 && wait_ms > 0)
		{
			/*
			 * Appenders keep setting the latch meanwhile; wait without it,
			 * in short steps so that a stop request or a signal is seen.
			 */
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(wait_ms, ES_RESPOND_MS), PG_WAIT_EXTENSION);
			continue;
		}

		ResetLatch(MyLatch);
		last_tick = GetCurrentTimestamp();
		if (!es_tick(&last_head,
					 TimestampDifferenceExceeds(last_prune, last_tick,
												ES_PRUNE_EVERY_MS)))
			break;
		if (TimestampDifferenceExceeds(last_prune, last_tick, ES_PRUNE_EVERY_MS))
			last_prune = last_tick;

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ES_IDLE_MS, PG_WAIT_EXTENSION);
	}
	proc_exit(0);
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

/* The database a utility statement needs without other connections. */
static char *
es_exclusive_database(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			return ((DropdbStmt *) parsetree)->dbname;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				return ((RenameStmt *) parsetree)->subname;
			break;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "tablespace") == 0)
					return ((AlterDatabaseStmt *) parsetree)->dbname;
			}
			break;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
					return defGetString(opt);
			}
			break;
		default:
			break;
	}
	return NULL;
}

static void
es_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	char	   *dbname = es_exclusive_database(pstmt->utilityStmt);

	if (dbname != NULL)
	{
		Oid			dboid = get_database_oid(dbname, true);

		if (OidIsValid(dboid) && dboid != MyDatabaseId)
			(void) EsStopTicker(dboid);
	}

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * EsTickerInit
 *		Called from _PG_init when preloaded: the launcher and the utility
 *		hook.
 */
void
EsTickerInit(void)
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

	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = es_process_utility;
}
