/*-------------------------------------------------------------------------
 *
 * utility.c
 *		Getting the ticker out of the way of commands that need a database
 *		to themselves.
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME, ALTER DATABASE ... SET
 * TABLESPACE and CREATE DATABASE ... TEMPLATE refuse to run while another
 * session is connected to the database they name, and a ticker is one.  A
 * ProcessUtility hook asks that database's ticker to exit first, but only
 * when the command is going to pass the checks PostgreSQL makes before it
 * looks for other sessions: that the database exists and is not the
 * current one, that the command is not in a transaction block where it must
 * not be, that the role owns the database (or may copy it, or create
 * databases, as the command requires).  A role that could not run the
 * command leaves the ticker alone.  When the command fails anyway, or its
 * backend exits in the middle of it (terminated while DROP DATABASE waits
 * for other sessions, say), the ticker is asked back at once; when it
 * succeeds, too, unless the database is gone, whose entry is then freed.
 *
 * DROP EXTENSION eventstore leaves the database's ticker without a log; an
 * idle ticker looks at the catalog only when something happens, so when a
 * transaction that dropped the extension commits, its ticker is asked to
 * look (and then exits).
 *
 * src/utility.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/syscache.h"

#include "eventstore.h"
#include "launcher.h"
#include "shmem.h"
#include "utility.h"

static ProcessUtility_hook_type prev_process_utility_hook = NULL;

/* This transaction ran DROP EXTENSION eventstore. */
static bool extension_dropped = false;

/* What a command needs of the database it names. */
typedef struct EsExclusiveUse
{
	const char *dbname;
	bool		drops;			/* the database is gone afterwards */
	bool		top_level_only; /* not in a transaction block */
	bool		owner;			/* the role must own it */
	bool		createdb;		/* the role must be allowed to create databases */
	bool		copies;			/* the role must own it, unless it is a template */
} EsExclusiveUse;

/* The database a utility statement needs without other connections. */
static bool
es_exclusive_use(Node *parsetree, EsExclusiveUse *use)
{
	ListCell   *lc;

	memset(use, 0, sizeof(*use));
	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			use->dbname = ((DropdbStmt *) parsetree)->dbname;
			use->drops = true;
			use->top_level_only = true;
			use->owner = true;
			return true;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType != OBJECT_DATABASE)
				return false;
			use->dbname = ((RenameStmt *) parsetree)->subname;
			use->owner = true;
			use->createdb = true;
			return true;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "tablespace") == 0)
				{
					use->dbname = ((AlterDatabaseStmt *) parsetree)->dbname;
					use->top_level_only = true;
					use->owner = true;
					return true;
				}
			}
			return false;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				{
					use->dbname = defGetString(opt);
					use->top_level_only = true;
					use->createdb = true;
					use->copies = true;
					return true;
				}
			}
			return false;
		default:
			return false;
	}
}

/*
 * Whether the command will get as far as looking for other sessions in
 * the database: the checks its own code makes first, with the same
 * answers.  Returns the database's OID, or InvalidOid.
 */
static Oid
es_will_need_database(EsExclusiveUse *use, ProcessUtilityContext context)
{
	Oid			dboid = get_database_oid(use->dbname, true);
	HeapTuple	tup;
	bool		is_template;

	if (!OidIsValid(dboid) || dboid == MyDatabaseId)
		return InvalidOid;
	if (use->top_level_only &&
		(context != PROCESS_UTILITY_TOPLEVEL || IsTransactionBlock()))
		return InvalidOid;
	if (use->createdb && !have_createdb_privilege())
		return InvalidOid;

	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
	ReleaseSysCache(tup);

	if ((use->owner || (use->copies && !is_template)) &&
		!pg_database_ownercheck(dboid, GetUserId()))
		return InvalidOid;
	/* DROP DATABASE refuses templates before anything else */
	if (use->drops && is_template)
		return InvalidOid;
	return dboid;
}

/* Whether a statement is a DROP EXTENSION that names eventstore. */
static bool
es_drops_extension(Node *parsetree)
{
	DropStmt   *stmt = (DropStmt *) parsetree;
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt) || stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, stmt->objects)
		if (strcmp(strVal(lfirst(lc)), "eventstore") == 0)
			return true;
	return false;
}

static void
es_utility_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (extension_dropped)
				EsTickerRecheck(MyDatabaseId);
			extension_dropped = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			extension_dropped = false;
			break;
		default:
			break;
	}
}

/*
 * Undo a recorded stop when the command fails (PG_CATCH) or its backend
 * exits in the middle of it (an exit callback, registered before the first
 * stop): a terminated DROP DATABASE must not leave the ticker stopped.
 */
static Oid	stopped_dboid = InvalidOid;
static bool exit_callback_registered = false;

static void
es_resume_stopped(int code, Datum arg)
{
	if (OidIsValid(stopped_dboid))
		EsResumeTicker(stopped_dboid);
	stopped_dboid = InvalidOid;
}

static void
es_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	EsExclusiveUse use;
	volatile Oid dboid = InvalidOid;

	if (es_exclusive_use(pstmt->utilityStmt, &use))
		dboid = es_will_need_database(&use, context);

	if (OidIsValid(dboid) && !exit_callback_registered)
	{
		before_shmem_exit(es_resume_stopped, (Datum) 0);
		exit_callback_registered = true;
	}

	PG_TRY();
	{
		if (OidIsValid(dboid) && EsStopTicker(dboid))
		{
			stopped_dboid = dboid;
			EsAwaitTickerExit(dboid);
		}
		if (prev_process_utility_hook)
			prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
									  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		es_resume_stopped(0, (Datum) 0);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (es_drops_extension(pstmt->utilityStmt))
		extension_dropped = true;
	if (OidIsValid(stopped_dboid))
	{
		stopped_dboid = InvalidOid;
		if (use.drops)
			EsForgetDatabase(dboid);
		else
			EsResumeTicker(dboid);
	}
}

/*
 * EsUtilityInit
 *		Called from _PG_init while preloading: install the hook.
 */
void
EsUtilityInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = es_process_utility;
	RegisterXactCallback(es_utility_xact_callback, NULL);
}
