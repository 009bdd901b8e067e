/*-------------------------------------------------------------------------
 *
 * gate.c
 *		The one way into the subscription functions: who calls, and as whom
 *		the work is done.
 *
 * Every subscription belongs to an owner role (eventstore.subscriptions.
 * owner); only roles that have the privileges of the owner (pg_has_role
 * ... 'USAGE') and members of eventstore_admin may poll, acknowledge,
 * join, leave, pause, resume or drop it.  The functions that do the work
 * write tables their callers may only read, so they must run as the
 * extension's owner, and yet the check needs the role that called them.
 * Inside a SECURITY DEFINER function current_user is the definer, so the
 * work cannot be a SECURITY DEFINER function that looks at its caller;
 * session_user is wrong under SET ROLE; and the outer user id
 * (GetOuterUserId) ignores the caller's own SECURITY DEFINER context, so
 * an admin calling a reader's SECURITY DEFINER function that calls ack
 * would be checked as the admin, a confused deputy.
 *
 * So each public entry point (eventstore.poll, ack, group_join, ...,
 * create_subscription) is this C function, SECURITY INVOKER: the role it
 * sees as its current user, GetUserId(), is exactly the caller the SQL
 * standard means, whether that comes from a login, SET ROLE or an outer
 * SECURITY DEFINER function.  The gate
 *
 *	 1. finds the function that does the work: eventstore.NAME_internal,
 *		in the same schema, taking the entry point's arguments plus one
 *		regrole (looked up in the syscache by name, argument types and
 *		namespace, never through search_path), and its owner;
 *	 2. switches to that owner with SetUserIdAndSecContext, adding
 *		SECURITY_LOCAL_USERID_CHANGE so that nothing below can SET ROLE,
 *		as fmgr_security_definer does for SECURITY DEFINER functions, and
 *		switches back in PG_FINALLY (an abort would restore it as well);
 *	 3. calls it with the same arguments and the caller's role id appended,
 *		passing the result information through, so that a set-returning
 *		PL/pgSQL function materializes straight into the caller's
 *		tuplestore.
 *
 * The internal function then reads the subscription row and checks the
 * caller against that row's owner (eventstore.subscription_authorize), so
 * the check and the work see the same row: a subscription created between
 * a check and its use cannot slip past it.  create_subscription_internal
 * makes the caller the owner unless an owner is named.  The internal functions are
 * SECURITY INVOKER and granted to nobody: called by anyone but the gate
 * they would run with that caller's own rights, which cannot write the
 * subscription tables, so a stray grant could not forge the caller.
 * The lookup of step 1 is cached in fn_extra for the query.
 *
 * src/gate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "eventstore.h"
#include "shmem.h"

/* What the gate of one entry point calls, for the duration of a query. */
typedef struct EsGateTarget
{
	FmgrInfo	flinfo;			/* eventstore.NAME_internal */
	Oid			owner;			/* its owner: the work runs as this role */
} EsGateTarget;

PG_FUNCTION_INFO_V1(eventstore_subscription_gate);

/*
 * The internal function behind the entry point that fcinfo calls: same
 * schema, name with "_internal" appended, the same arguments and one more
 * of type regrole, the same result.  Anything else is a broken install.
 */
static EsGateTarget *
es_gate_target(FunctionCallInfo fcinfo)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;
	EsGateTarget *target;
	HeapTuple	tuple;
	Form_pg_proc entry;
	Form_pg_proc internal;
	char		name[NAMEDATALEN];
	Oid			argtypes[FUNC_MAX_ARGS];
	oidvector  *args;
	Oid			internal_oid;
	Oid			rettype;
	bool		retset;
	int			nargs;

	if (flinfo->fn_extra != NULL)
		return (EsGateTarget *) flinfo->fn_extra;

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(flinfo->fn_oid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", flinfo->fn_oid);
	entry = (Form_pg_proc) GETSTRUCT(tuple);
	nargs = entry->pronargs;
	rettype = entry->prorettype;
	retset = entry->proretset;
	if (nargs + 1 > FUNC_MAX_ARGS ||
		snprintf(name, sizeof(name), "%s_internal",
				 NameStr(entry->proname)) >= (int) sizeof(name))
		elog(ERROR, "function %s cannot have an internal function",
			 NameStr(entry->proname));
	memcpy(argtypes, entry->proargtypes.values, nargs * sizeof(Oid));
	argtypes[nargs] = REGROLEOID;
	args = buildoidvector(argtypes, nargs + 1);
	internal_oid = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
								   CStringGetDatum(name), PointerGetDatum(args),
								   ObjectIdGetDatum(entry->pronamespace));
	ReleaseSysCache(tuple);
	if (!OidIsValid(internal_oid))
		elog(ERROR, "function %s of the eventstore gate is missing", name);

	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(internal_oid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", internal_oid);
	internal = (Form_pg_proc) GETSTRUCT(tuple);
	if (internal->prorettype != rettype || internal->proretset != retset ||
		internal->prokind != PROKIND_FUNCTION)
		elog(ERROR, "function %s does not return what its entry point returns",
			 name);

	target = MemoryContextAllocZero(flinfo->fn_mcxt, sizeof(EsGateTarget));
	target->owner = internal->proowner;
	ReleaseSysCache(tuple);
	fmgr_info_cxt(internal_oid, &target->flinfo, flinfo->fn_mcxt);

	flinfo->fn_extra = target;
	return target;
}

/*
 * eventstore_subscription_gate
 *
 * The C function behind eventstore.create_subscription, drop_subscription,
 * pause_subscription, poll, ack, group_join, group_poll, group_ack and
 * group_leave (each with its own SQL signature, defaults and result).  It
 * calls eventstore.NAME_internal(the same arguments, caller regrole) as the
 * owner of that function, with caller = GetUserId() of this call, and
 * returns what it returns; set-returning ones materialize into this call's
 * ReturnSetInfo.  Arguments are passed as they are, NULLs included: the
 * internal function checks them, and the caller against the subscription's
 * owner.
 *
 * Errors: 55000 when the library was not preloaded; those of the internal
 * function (42501 when the caller may not use the subscription).  It does
 * not guard against a superuser calling the internal functions directly
 * with a caller of their choice (a superuser may do anything anyway).
 */
Datum
eventstore_subscription_gate(PG_FUNCTION_ARGS)
{
	EsGateTarget *target;
	FunctionCallInfo inner;
	Oid			caller = GetUserId();
	Oid			save_userid;
	int			save_sec_context;
	int			nargs = PG_NARGS();
	Datum		result = (Datum) 0;

	EsCheckLoaded();
	check_stack_depth();
	target = es_gate_target(fcinfo);

	/*
	 * The work compares names and filters under the database's collation,
	 * never the caller's: a COLLATE on an argument (a case-insensitive one,
	 * say) must not make it find another subscription.
	 */
	inner = palloc0(SizeForFunctionCallInfo(nargs + 1));
	InitFunctionCallInfoData(*inner, &target->flinfo, nargs + 1,
							 InvalidOid, fcinfo->context, fcinfo->resultinfo);
	for (int i = 0; i < nargs; i++)
		inner->args[i] = fcinfo->args[i];
	inner->args[nargs].value = ObjectIdGetDatum(caller);
	inner->args[nargs].isnull = false;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(target->owner,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		result = FunctionCallInvoke(inner);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();

	fcinfo->isnull = inner->isnull;
	pfree(inner);
	return result;
}
