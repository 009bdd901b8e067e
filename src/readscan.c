/*-------------------------------------------------------------------------
 *
 * readscan.c
 *		eventstore.read_all and eventstore.read_stream in a query's FROM
 *		clause, run as scans that stream their rows instead of collecting
 *		them.
 *
 * A set-returning function in FROM is run to completion and its rows are
 * collected in a tuplestore before the query sees the first one; for a
 * page of the feed that copy of every event costs about as much as reading
 * it.  This file offers the planner another path for a FROM item that is
 * exactly one of the two functions (no ORDINALITY, no other functions in
 * ROWS FROM, no references to other FROM items, no reference to the whole
 * row): a custom scan whose rows come straight from feed.c's merge of the
 * partitions' insert_order indexes, or from streamscan.c's scan of one
 * stream's partition, one at a time, as the query asks for them.  Where it
 * does not apply, the function runs as before (read.c), and both give the
 * same rows.
 *
 * What the function does at its call, the scan does when the query first
 * asks it for a row: it evaluates and checks the arguments, and for
 * read_all computes the head and only then takes the snapshot it reads
 * with (see head.c), so it sees exactly the committed events up to the
 * head; read_stream, a stable function, reads with the query's snapshot.
 * EXECUTE on the function is checked then too, as calling it would, and
 * the row type it returns is checked against what the rows are.  A rescan
 * of read_all with new arguments starts over with a new head and snapshot,
 * as calling the function again would; any other rescan returns the same
 * rows again, as a function scan does: the arguments are not evaluated
 * again (a volatile one would change them).
 *
 * src/readscan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/nodeCustom.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "eventstore.h"
#include "feed.h"
#include "guard.h"
#include "head.h"
#include "readscan.h"
#include "shmem.h"
#include "streamscan.h"

/* Which function a scan runs. */
typedef enum EsReadKind
{
	ES_READ_ALL,
	ES_READ_STREAM,
	ES_READ_SUBSCRIPTION
} EsReadKind;

/* Each kind's function: its name, number of arguments and C symbol. */
static const struct
{
	const char *name;
	int			nargs;
	const char *symbol;
	const char *user;			/* for errors */
}			es_read_functions[3] = {
	{"read_all", ES_READ_ALL_NARGS, "eventstore_read_all", "eventstore.read_all()"},
	{"read_stream", 4, "eventstore_read_stream", "eventstore.read_stream()"},
	{"subscription_feed", ES_SUBSCRIPTION_FEED_NARGS,
	"eventstore_subscription_feed", "eventstore.poll()"},
};

typedef struct EsReadScanState
{
	CustomScanState css;
	EsReadKind	kind;
	Oid			funcid;			/* the function */
	Oid			rowtype;		/* eventstore.recorded_event */
	List	   *args;			/* ExprStates of its arguments */
	MemoryContext argcxt;		/* their values, for the scan's life */
	bool		have_args;		/* arguments evaluated and checked */
	EsStreamScanArgs stream_args;	/* read_stream's */
	EsFeedRequest request;		/* read_all's and subscription_feed's */
	bool		started;
	EsStreamScan *stream;		/* read_stream's scan */
	int64		stream_left;	/* rows it may still return; -1 all */
	bool		have_head;		/* head and snapshot taken */
	int64		head;
	Snapshot	snapshot;
	EsFeed	   *feed;			/* NULL: nothing to read */
	int32		remaining;
} EsReadScanState;

static set_rel_pathlist_hook_type prev_set_rel_pathlist_hook = NULL;

static Plan *es_plan_read_path(PlannerInfo *root, RelOptInfo *rel,
							   CustomPath *best_path, List *tlist,
							   List *clauses, List *custom_plans);
static Node *es_create_read_state(CustomScan *cscan);
static void es_begin_read_scan(CustomScanState *node, EState *estate,
							   int eflags);
static TupleTableSlot *es_exec_read_scan(CustomScanState *node);
static void es_end_read_scan(CustomScanState *node);
static void es_rescan_read_scan(CustomScanState *node);

static const CustomPathMethods es_path_methods[3] = {
	{.CustomName = "EventstoreFeed", .PlanCustomPath = es_plan_read_path},
	{.CustomName = "EventstoreStream", .PlanCustomPath = es_plan_read_path},
	{.CustomName = "EventstoreSubscriptionFeed", .PlanCustomPath = es_plan_read_path},
};

static const CustomScanMethods es_scan_methods[3] = {
	{.CustomName = "EventstoreFeed", .CreateCustomScanState = es_create_read_state},
	{.CustomName = "EventstoreStream", .CreateCustomScanState = es_create_read_state},
	{.CustomName = "EventstoreSubscriptionFeed", .CreateCustomScanState = es_create_read_state},
};

static const CustomExecMethods es_exec_methods = {
	.CustomName = "EventstoreRead",
	.BeginCustomScan = es_begin_read_scan,
	.ExecCustomScan = es_exec_read_scan,
	.EndCustomScan = es_end_read_scan,
	.ReScanCustomScan = es_rescan_read_scan,
};

/*
 * Whether funcid is eventstore.read_all(bigint, integer, text[], text, text[]) or
 * eventstore.read_stream(text, bigint, integer, boolean) as this library
 * implements them, and which: a function of that name replaced by another
 * implementation runs as what it is, and so does one made SECURITY DEFINER
 * or given settings (the scan runs as the caller, with the caller's
 * settings).
 */
static bool
es_read_function(Oid funcid, EsReadKind *kind)
{
	Oid			nsp = get_namespace_oid("eventstore", true);
	HeapTuple	tuple;
	Form_pg_proc proc;
	char	   *prosrc = NULL;
	bool		result = false;

	if (!OidIsValid(nsp))
		return false;
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tuple))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tuple);
	if (proc->pronamespace == nsp && proc->prolang == ClanguageId &&
		!proc->prosecdef &&
		heap_attisnull(tuple, Anum_pg_proc_proconfig, NULL))
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, tuple, Anum_pg_proc_prosrc,
										  &isnull);

		if (!isnull)
			prosrc = TextDatumGetCString(src);
	}
	for (int k = 0; prosrc != NULL && k < (int) lengthof(es_read_functions); k++)
		if (strcmp(NameStr(proc->proname), es_read_functions[k].name) == 0 &&
			proc->pronargs == es_read_functions[k].nargs &&
			strcmp(prosrc, es_read_functions[k].symbol) == 0)
		{
			*kind = (EsReadKind) k;
			result = true;
		}
	ReleaseSysCache(tuple);
	return result;
}

/* Whether the row type is the one the scan's rows have. */
static bool
es_rowtype_matches(Oid rowtype)
{
	TupleDesc	desc = lookup_rowtype_tupdesc_noerror(rowtype, -1, true);
	bool		result;

	if (desc == NULL)
		return false;
	result = desc->natts == ES_READ_NATTS;
	for (int i = 0; result && i < ES_READ_NATTS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		result = !att->attisdropped && att->atttypid == es_read_types[i];
	}
	ReleaseTupleDesc(desc);
	return result;
}

/*
 * The planner hook: for a FROM item that is a plain call of read_all or
 * read_stream, the streaming scan replaces the function scan.
 */
static void
es_set_rel_pathlist(PlannerInfo *root, RelOptInfo *rel, Index rti,
					RangeTblEntry *rte)
{
	RangeTblFunction *rtfunc;
	FuncExpr   *fexpr;
	CustomPath *path;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;
	EsReadKind	kind = ES_READ_ALL;

	if (prev_set_rel_pathlist_hook)
		prev_set_rel_pathlist_hook(root, rel, rti, rte);

	if (rte->rtekind != RTE_FUNCTION || rte->funcordinality ||
		list_length(rte->functions) != 1 ||
		rel->reloptkind != RELOPT_BASEREL ||
		!bms_is_empty(rel->lateral_relids))
		return;
	rtfunc = linitial_node(RangeTblFunction, rte->functions);
	if (!IsA(rtfunc->funcexpr, FuncExpr))
		return;
	fexpr = (FuncExpr *) rtfunc->funcexpr;
	if (!fexpr->funcretset || !es_read_function(fexpr->funcid, &kind) ||
		list_length(fexpr->args) != es_read_functions[kind].nargs ||
		!es_rowtype_matches(fexpr->funcresulttype))
		return;

	/* whole-row references need the function's composite rows */
	pull_varattnos((Node *) rel->reltarget->exprs, rti, &attrs);
	foreach(lc, rel->baserestrictinfo)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause, rti, &attrs);
	if (bms_is_member(InvalidAttrNumber - FirstLowInvalidHeapAttributeNumber, attrs))
		return;

	path = makeNode(CustomPath);
	path->path.pathtype = T_CustomScan;
	path->path.parent = rel;
	path->path.pathtarget = rel->reltarget;
	path->path.param_info = NULL;
	path->path.parallel_aware = false;
	path->path.parallel_safe = false;
	path->path.rows = rel->rows;
	/* rows come as they are read: no start-up cost, less per row */
	path->path.startup_cost = 0;
	path->path.total_cost = rel->rows * cpu_tuple_cost;
	path->flags = 0;
	path->methods = &es_path_methods[kind];
	path->custom_private = list_make1_int(kind);

	rel->pathlist = NIL;
	add_path(rel, &path->path);
}

/*
 * The plan: no scan relation (the FROM item is a function), the rows
 * described by custom_scan_tlist, the arguments in custom_exprs so that
 * the planner fixes their parameters up.
 */
static Plan *
es_plan_read_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
				  List *tlist, List *clauses, List *custom_plans)
{
	RangeTblEntry *rte = planner_rt_fetch(rel->relid, root);
	FuncExpr   *fexpr = (FuncExpr *) linitial_node(RangeTblFunction, rte->functions)->funcexpr;
	CustomScan *cscan = makeNode(CustomScan);
	TupleDesc	desc = lookup_rowtype_tupdesc(fexpr->funcresulttype, -1);
	List	   *scan_tlist = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		scan_tlist = lappend(scan_tlist,
							 makeTargetEntry((Expr *) makeVar(rel->relid, i + 1,
															  att->atttypid,
															  att->atttypmod,
															  att->attcollation, 0),
											 i + 1, pstrdup(NameStr(att->attname)),
											 false));
	}
	ReleaseTupleDesc(desc);

	/* replacing or dropping the function invalidates the plan */
	record_plan_function_dependency(root, fexpr->funcid);

	cscan->scan.plan.targetlist = tlist;
	cscan->scan.plan.qual = extract_actual_clauses(clauses, false);
	cscan->scan.scanrelid = 0;
	cscan->flags = best_path->flags;
	cscan->custom_scan_tlist = scan_tlist;
	cscan->custom_exprs = copyObject(fexpr->args);
	cscan->custom_private = list_make3_oid(fexpr->funcid, fexpr->funcresulttype,
										   (Oid) linitial_int(best_path->custom_private));
	cscan->methods = &es_scan_methods[linitial_int(best_path->custom_private)];
	return &cscan->scan.plan;
}

static Node *
es_create_read_state(CustomScan *cscan)
{
	EsReadScanState *state = palloc0(sizeof(EsReadScanState));

	NodeSetTag(state, T_CustomScanState);
	state->css.flags = cscan->flags;
	state->css.methods = &es_exec_methods;
	state->funcid = linitial_oid(cscan->custom_private);
	state->rowtype = lsecond_oid(cscan->custom_private);
	state->kind = (EsReadKind) lthird_oid(cscan->custom_private);
	return (Node *) state;
}

static void
es_begin_read_scan(CustomScanState *node, EState *estate, int eflags)
{
	EsReadScanState *state = (EsReadScanState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	AclResult	aclresult;
	TupleDesc	desc;

	/* what calling the function would check, and tell object-access hooks */
	aclresult = pg_proc_aclcheck(state->funcid, GetUserId(), ACL_EXECUTE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, get_func_name(state->funcid));
	InvokeFunctionExecuteHook(state->funcid);
	EsCheckLoaded();
	desc = lookup_rowtype_tupdesc(state->rowtype, -1);
	EsCheckRowType(desc, es_read_types, ES_READ_NATTS,
				   "type eventstore.recorded_event",
				   es_read_functions[state->kind].user);
	ReleaseTupleDesc(desc);

	state->args = ExecInitExprList(cscan->custom_exprs, &node->ss.ps);
	state->argcxt = AllocSetContextCreate(CurrentMemoryContext,
										  "eventstore scan arguments",
										  ALLOCSET_SMALL_SIZES);
}

/*
 * Evaluate the function's arguments into the scan's argument memory, which
 * is left current (the previous context is returned): the checks that
 * follow allocate what they derive there too.  Values passed by reference
 * are copied, since they may live in per-row memory.
 */
static MemoryContext
es_eval_args(EsReadScanState *state, Datum *values, bool *nulls)
{
	ExprContext *econtext = state->css.ss.ps.ps_ExprContext;
	MemoryContext old;
	int			i = 0;
	ListCell   *lc;

	MemoryContextReset(state->argcxt);
	old = MemoryContextSwitchTo(state->argcxt);
	foreach(lc, state->args)
	{
		ExprState  *arg = (ExprState *) lfirst(lc);
		int16		typlen;
		bool		typbyval;

		values[i] = ExecEvalExpr(arg, econtext, &nulls[i]);
		get_typlenbyval(exprType((Node *) arg->expr), &typlen, &typbyval);
		if (!nulls[i] && !typbyval)
			values[i] = datumCopy(values[i], false, typlen);
		i++;
	}
	return old;
}

/*
 * read_stream's first row asked for: the arguments (once until they may
 * have changed: a function scan does not call the function again on a
 * rescan either, even if an argument is volatile), then the scan.
 */
static void
es_start_stream(EsReadScanState *state)
{
	EState	   *estate = state->css.ss.ps.state;

	if (!state->have_args)
	{
		Datum		values[4];
		bool		nulls[4];
		MemoryContext old = es_eval_args(state, values, nulls);

		EsCheckStreamScanArgs(values, nulls, &state->stream_args);
		MemoryContextSwitchTo(old);
		state->have_args = true;
	}

	state->started = true;
	state->stream = EsStreamScanBegin(&state->stream_args, estate->es_snapshot);
	state->stream_left = state->stream_args.limit;
}

/*
 * read_all's first row asked for: the arguments (once, as for
 * read_stream), the head, the snapshot.
 */
static void
es_start_feed(EsReadScanState *state)
{
	if (!state->have_args)
	{
		Datum		values[ES_READ_ALL_NARGS];
		bool		nulls[ES_READ_ALL_NARGS];
		MemoryContext old = es_eval_args(state, values, nulls);

		EsCheckReadAllArgs(values, nulls, &state->request);
		MemoryContextSwitchTo(old);
		state->have_args = true;
	}

	state->started = true;
	if (!state->have_head)
	{
		state->head = EsHead();
		state->snapshot = RegisterSnapshot(GetTransactionSnapshot());
		state->have_head = true;
	}
	if (state->request.nranges == 0 || state->head <= state->request.ranges[0].after)
		return;
	state->feed = EsFeedBeginRanges(state->request.nranges,
									state->request.ranges,
									state->head,
									state->request.max_count,
									state->request.filtered ?
									&state->request.filter : NULL,
									state->snapshot);
	state->remaining = state->request.max_count;
}

/*
 * subscription_feed's first row asked for: the arguments (once, as for
 * read_stream), then the scans, with the query's snapshot (its caller took
 * the head before the query).
 */
static void
es_start_subscription(EsReadScanState *state)
{
	EState	   *estate = state->css.ss.ps.state;

	if (!state->have_args)
	{
		Datum		values[ES_SUBSCRIPTION_FEED_NARGS];
		bool		nulls[ES_SUBSCRIPTION_FEED_NARGS];
		MemoryContext old = es_eval_args(state, values, nulls);

		EsCheckSubscriptionFeedArgs(values, nulls, &state->request);
		MemoryContextSwitchTo(old);
		state->have_args = true;
	}

	state->started = true;
	if (state->request.nranges == 0)
		return;
	state->feed = EsFeedBeginRanges(state->request.nranges,
									state->request.ranges,
									state->request.upto,
									state->request.max_count,
									state->request.filtered ?
									&state->request.filter : NULL,
									estate->es_snapshot);
	state->remaining = state->request.max_count;
}

static TupleTableSlot *
es_next_event(ScanState *ss)
{
	EsReadScanState *state = (EsReadScanState *) ss;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;

	if (state->kind == ES_READ_STREAM)
	{
		if (!state->started)
			es_start_stream(state);
		ExecClearTuple(slot);
		if (state->stream_left == 0 ||
			!EsStreamScanNext(state->stream, slot->tts_values, slot->tts_isnull))
			return slot;
		if (state->stream_left > 0)
			state->stream_left--;
		return ExecStoreVirtualTuple(slot);
	}

	if (!state->started)
	{
		if (state->kind == ES_READ_ALL)
			es_start_feed(state);
		else
			es_start_subscription(state);
	}
	ExecClearTuple(slot);
	if (state->feed == NULL || state->remaining <= 0 ||
		!EsFeedNext(state->feed, slot->tts_values, slot->tts_isnull))
		return slot;
	state->remaining--;
	return ExecStoreVirtualTuple(slot);
}

static bool
es_recheck_event(ScanState *ss, TupleTableSlot *slot)
{
	return true;
}

static TupleTableSlot *
es_exec_read_scan(CustomScanState *node)
{
	return ExecScan(&node->ss, es_next_event, es_recheck_event);
}

/*
 * End the scan; with forget, also the arguments, head and snapshot it read
 * with.
 */
static void
es_stop_read(EsReadScanState *state, bool forget)
{
	if (state->feed != NULL)
		EsFeedEnd(state->feed);
	if (state->stream != NULL)
		EsStreamScanEnd(state->stream);
	state->feed = NULL;
	state->stream = NULL;
	state->started = false;
	if (forget)
		state->have_args = false;
	if (forget && state->have_head)
	{
		UnregisterSnapshot(state->snapshot);
		state->snapshot = NULL;
		state->have_head = false;
	}
}

static void
es_end_read_scan(CustomScanState *node)
{
	es_stop_read((EsReadScanState *) node, true);
}

/*
 * A rescan with new arguments is a new call: the arguments evaluated
 * again, a new head and snapshot.  Otherwise it returns the same rows again
 * (as a function scan returns its collected rows again): the same argument
 * values, head and snapshot.
 */
static void
es_rescan_read_scan(CustomScanState *node)
{
	es_stop_read((EsReadScanState *) node, node->ss.ps.chgParam != NULL);
	ExecScanReScan(&node->ss);
}

/*
 * EsReadScanInit
 *		Offer the planner the streaming scans.  Called from _PG_init.
 */
void
EsReadScanInit(void)
{
	RegisterCustomScanMethods(&es_scan_methods[ES_READ_ALL]);
	RegisterCustomScanMethods(&es_scan_methods[ES_READ_STREAM]);
	RegisterCustomScanMethods(&es_scan_methods[ES_READ_SUBSCRIPTION]);
	prev_set_rel_pathlist_hook = set_rel_pathlist_hook;
	set_rel_pathlist_hook = es_set_rel_pathlist;
}
