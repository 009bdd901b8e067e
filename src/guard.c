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
 * src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/rel.h"

#include "eventstore.h"

/* Set by append.c while it updates a stream row. */
bool		es_append_active = false;

PG_FUNCTION_INFO_V1(eventstore_refuse_change);
PG_FUNCTION_INFO_V1(eventstore_guard_streams);

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
