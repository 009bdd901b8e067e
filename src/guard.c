/*-------------------------------------------------------------------------
 *
 * guard.c
 *		Triggers that keep the log append-only.
 *
 * eventstore_refuse_change fires BEFORE UPDATE, DELETE and TRUNCATE on
 * eventstore.events and each of its partitions and always raises ES003.
 * eventstore_guard_streams does the same for eventstore.streams unless the
 * statement comes from eventstore.append() itself, which sets
 * es_append_active around its own UPDATE of the stream row.  Both triggers
 * are ENABLE ALWAYS, so session_replication_role does not bypass them.
 *
 * eventstore_guard_ddl is an event trigger on ALTER TABLE and DROP TRIGGER
 * that keeps those triggers and the partition layout in place: it refuses
 * to drop, enable or disable triggers of the log's tables, and to attach or
 * detach partitions of eventstore.events, except while the extension's own
 * scripts run.
 *
 * src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "eventstore.h"

/* Set by append.c while it updates a stream row. */
bool		es_append_active = false;

PG_FUNCTION_INFO_V1(eventstore_refuse_change);
PG_FUNCTION_INFO_V1(eventstore_guard_streams);
PG_FUNCTION_INFO_V1(eventstore_guard_ddl);

static const char *
es_trigger_operation(TriggerData *trigdata)
{
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return "UPDATE";
	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		return "DELETE";
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		return "TRUNCATE";
	return "INSERT";
}

static void
es_check_trigger(FunctionCallInfo fcinfo)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function must be called as a trigger")));
}

/*
 * eventstore.refuse_change() returns trigger
 *
 * Refuses the statement: the log is append-only.  Raises ES003 always.
 */
Datum
eventstore_refuse_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	es_check_trigger(fcinfo);
	ereport(ERROR,
			(errcode(ERRCODE_ES_APPEND_ONLY),
			 errmsg("eventstore.events is append-only"),
			 errdetail("%s of \"%s\" is not allowed, for any role.",
					   es_trigger_operation(trigdata),
					   RelationGetRelationName(trigdata->tg_relation)),
			 errhint("Record a compensating event with eventstore.append() instead.")));
	return PointerGetDatum(NULL);
}

/*
 * eventstore.guard_streams() returns trigger
 *
 * Lets eventstore.append() update stream rows and refuses every other
 * UPDATE, DELETE or TRUNCATE of eventstore.streams with ES003.
 */
Datum
eventstore_guard_streams(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	es_check_trigger(fcinfo);
	/* a statement trigger returns a null pointer, not an SQL null */
	if (es_append_active && TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return PointerGetDatum(NULL);
	ereport(ERROR,
			(errcode(ERRCODE_ES_APPEND_ONLY),
			 errmsg("eventstore.streams is maintained by eventstore.append()"),
			 errdetail("%s of \"%s\" is not allowed, for any role.",
					   es_trigger_operation(trigdata),
					   RelationGetRelationName(trigdata->tg_relation))));
	return PointerGetDatum(NULL);
}

/* Is relid eventstore.events, one of its partitions, or eventstore.streams? */
static bool
es_is_log_relation(Oid relid)
{
	Oid			nsp = get_namespace_oid("eventstore", true);
	Oid			events;

	if (!OidIsValid(relid) || !OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		return false;
	events = get_relname_relid("events", nsp);
	if (relid == events || relid == get_relname_relid("streams", nsp))
		return true;
	return get_rel_relispartition(relid) &&
		get_partition_parent(relid, true) == events;
}

static bool
es_is_guarded_subcommand(AlterTableType subtype)
{
	switch (subtype)
	{
		case AT_EnableTrig:
		case AT_EnableAlwaysTrig:
		case AT_EnableReplicaTrig:
		case AT_DisableTrig:
		case AT_EnableTrigAll:
		case AT_DisableTrigAll:
		case AT_EnableTrigUser:
		case AT_DisableTrigUser:
		case AT_AttachPartition:
		case AT_DetachPartition:
		case AT_DetachPartitionFinalize:
			return true;
		default:
			return false;
	}
}

static void
es_refuse_ddl(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_APPEND_ONLY),
			 errmsg("the triggers and partitions of the event log cannot be changed"),
			 errdetail("\"%s\" is part of the append-only log of eventstore.",
					   get_rel_name(relid))));
}

/* DROP TRIGGER: each object is the table's qualified name plus the trigger. */
static void
es_check_drop_trigger(DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		List	   *names = (List *) lfirst(lc);
		RangeVar   *rv;
		Oid			relid;

		if (list_length(names) < 2)
			continue;
		rv = makeRangeVarFromNameList(list_truncate(list_copy(names),
													list_length(names) - 1));
		relid = RangeVarGetRelid(rv, NoLock, true);
		if (es_is_log_relation(relid))
			es_refuse_ddl(relid);
	}
}

/*
 * eventstore.guard_ddl() returns event_trigger
 *
 * ddl_command_start on ALTER TABLE and DROP TRIGGER: refuses, with ES003,
 * to drop or switch the guard triggers of eventstore.events, its
 * partitions or eventstore.streams on or off, and to attach or detach
 * partitions of eventstore.events.  Other ALTER TABLE commands (storage
 * parameters, statistics) pass.  It does not guard against DROP EXTENSION,
 * which drops the log with it.
 */
Datum
eventstore_guard_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	AlterTableStmt *stmt;
	Oid			relid;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;

	if (creating_extension)
		PG_RETURN_VOID();
	if (IsA(trigdata->parsetree, DropStmt) &&
		((DropStmt *) trigdata->parsetree)->removeType == OBJECT_TRIGGER)
	{
		es_check_drop_trigger((DropStmt *) trigdata->parsetree);
		PG_RETURN_VOID();
	}
	if (!IsA(trigdata->parsetree, AlterTableStmt))
		PG_RETURN_VOID();
	stmt = (AlterTableStmt *) trigdata->parsetree;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!es_is_log_relation(relid))
		PG_RETURN_VOID();

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (es_is_guarded_subcommand(cmd->subtype))
			es_refuse_ddl(relid);
	}
	PG_RETURN_VOID();
}
