/*-------------------------------------------------------------------------
 *
 * guard.c
 *		Triggers that keep the log append-only.
 *
 * eventstore_refuse_change fires BEFORE UPDATE, DELETE and TRUNCATE on
 * eventstore.events and each of its partitions and always raises ES003.
 * eventstore_guard_streams does the same for every INSERT, UPDATE, DELETE
 * and TRUNCATE of eventstore.streams, unless it is a COPY FROM sent by the
 * client, the way pg_restore and psql load a dump's rows.  Both triggers
 * are ENABLE ALWAYS, so session_replication_role does not bypass them.
 * eventstore.append() writes stream rows below the executor (stream.c),
 * where statement triggers do not fire: it is the one writer the trigger
 * lets through, and no statement can reach that path.
 *
 * eventstore_guard_ddl is an event trigger that keeps the log's tables,
 * sequence, triggers, partitions, types and functions as the extension made
 * them: see its comment for the commands it refuses.  The extension's own
 * scripts pass.  append.c and read.c check the types they rely on at use as
 * well, for a superuser who disables the event trigger.
 *
 * src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "eventstore.h"
#include "guard.h"

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
 * Is the statement the client sent a COPY FROM into rel?  That is how
 * pg_restore and psql load the rows of a dump.  The active portal is the
 * client's statement: a COPY run from a function, and any statement run by
 * one, is not it.
 */
static bool
es_is_client_copy_into(Relation rel)
{
	PlannedStmt *pstmt;
	CopyStmt   *copy;

	if (ActivePortal == NULL || list_length(ActivePortal->stmts) != 1)
		return false;
	pstmt = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (pstmt->commandType != CMD_UTILITY ||
		!IsA(pstmt->utilityStmt, CopyStmt))
		return false;
	copy = (CopyStmt *) pstmt->utilityStmt;
	return copy->is_from && copy->relation != NULL &&
		RangeVarGetRelid(copy->relation, NoLock, true) == RelationGetRelid(rel);
}

/*
 * eventstore.guard_streams() returns trigger
 *
 * BEFORE INSERT, UPDATE, DELETE and TRUNCATE of eventstore.streams, for
 * each statement.  Lets a COPY FROM sent by the client load rows (a
 * restore: pg_restore and psql load a dump's rows with COPY); refuses
 * every other statement with ES003, INSERT ... SELECT and MERGE included,
 * whoever runs it.  eventstore.append() writes the rows without a
 * statement (stream.c), so this trigger never sees its writes.  It does not check that
 * copied rows agree with their events: a restore brings both, in any order.
 */
Datum
eventstore_guard_streams(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	bool		insert;

	es_check_trigger(fcinfo);
	insert = TRIGGER_FIRED_BY_INSERT(trigdata->tg_event);
	/* a statement trigger returns a null pointer, not an SQL null */
	if (insert && es_is_client_copy_into(trigdata->tg_relation))
		return PointerGetDatum(NULL);
	ereport(ERROR,
			(errcode(ERRCODE_ES_APPEND_ONLY),
			 errmsg("eventstore.streams is maintained by eventstore.append()"),
			 errdetail("%s of \"%s\" is not allowed, for any role.",
					   es_trigger_operation(trigdata),
					   RelationGetRelationName(trigdata->tg_relation)),
			 insert ? errhint("Streams are created by appending to them; a restore loads a dump's rows with COPY.") : 0));
	return PointerGetDatum(NULL);
}

/*
 * Is relid one of the log's relations: eventstore.events, one of its
 * partitions, eventstore.streams or the sequence eventstore.position_blocks?
 */
static bool
es_is_log_relation(Oid relid)
{
	Oid			nsp = get_namespace_oid("eventstore", true);
	Oid			events;

	if (!OidIsValid(relid) || !OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		return false;
	events = get_relname_relid("events", nsp);
	if (relid == events || relid == get_relname_relid("streams", nsp) ||
		relid == get_relname_relid("position_blocks", nsp))
		return true;
	return get_rel_relispartition(relid) &&
		get_partition_parent(relid, true) == events;
}

static bool
es_is_log_rangevar(RangeVar *rv)
{
	return rv != NULL && es_is_log_relation(RangeVarGetRelid(rv, NoLock, true));
}

/*
 * Is the relation named by rv a composite type of schema eventstore, such
 * as eventstore.event_in and eventstore.recorded_event?  (ALTER TYPE names
 * a composite type by a RangeVar when it changes attributes.)
 */
static bool
es_is_eventstore_composite(RangeVar *rv)
{
	Oid			relid;

	if (rv == NULL)
		return false;
	relid = RangeVarGetRelid(rv, NoLock, true);
	return OidIsValid(relid) &&
		get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE &&
		get_rel_namespace(relid) == get_namespace_oid("eventstore", true);
}

/* Is the type named by a qualified name (a List of String) of schema eventstore? */
static bool
es_is_eventstore_type(Node *names)
{
	Oid			typid;
	HeapTuple	tuple;
	Oid			nsp;

	typid = LookupTypeNameOid(NULL, makeTypeNameFromNameList(castNode(List, names)),
							  true);
	if (!OidIsValid(typid))
		return false;
	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tuple))
		return false;
	nsp = ((Form_pg_type) GETSTRUCT(tuple))->typnamespace;
	ReleaseSysCache(tuple);
	return nsp == get_namespace_oid("eventstore", true);
}

/*
 * ALTER TABLE subcommands that leave the log's rows, columns, constraints,
 * triggers and partitions alone: storage and planner settings only.
 */
static bool
es_is_harmless_subcommand(AlterTableType subtype)
{
	switch (subtype)
	{
		case AT_SetRelOptions:
		case AT_ResetRelOptions:
		case AT_ReplaceRelOptions:
		case AT_SetStatistics:
		case AT_SetOptions:
		case AT_ResetOptions:
		case AT_SetStorage:
		case AT_SetCompression:
		case AT_ClusterOn:
		case AT_DropCluster:
		case AT_SetTableSpace:
			return true;
		default:
			return false;
	}
}

/*
 * Does an ALTER TABLE subcommand of another table tie it to the log: make
 * it inherit from a log table, or attach a log table to it as a partition?
 */
static bool
es_ties_to_log(AlterTableCmd *cmd)
{
	if (cmd->subtype == AT_AddInherit)
		return es_is_log_rangevar(castNode(RangeVar, cmd->def));
	if (cmd->subtype == AT_AttachPartition || cmd->subtype == AT_DetachPartition)
		return es_is_log_rangevar(castNode(PartitionCmd, cmd->def)->name);
	return false;
}

static void
es_refuse_ddl(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_ES_APPEND_ONLY),
			 errmsg("%s is not allowed on the event log", what),
			 errdetail("The tables, sequence, types, triggers and functions of schema \"eventstore\" belong to the append-only log."),
			 errhint("Storage parameters and statistics targets may be changed; anything else only by the extension's own scripts.")));
}

/* DROP TRIGGER and DROP RULE: each object is the table's name plus its own. */
static bool
es_drops_from_log(DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		List	   *names = (List *) lfirst(lc);

		if (list_length(names) >= 2 &&
			es_is_log_rangevar(makeRangeVarFromNameList(list_truncate(list_copy(names),
																	  list_length(names) - 1))))
			return true;
	}
	return false;
}

/* Is the function named by an ObjectWithArgs one of schema eventstore? */
static bool
es_is_eventstore_function(Node *object)
{
	Oid			funcoid = LookupFuncWithArgs(OBJECT_ROUTINE,
											 castNode(ObjectWithArgs, object), true);

	return OidIsValid(funcoid) &&
		get_func_namespace(funcoid) == get_namespace_oid("eventstore", true);
}

static inline bool
es_is_routine_type(ObjectType type)
{
	return type == OBJECT_FUNCTION || type == OBJECT_ROUTINE ||
		type == OBJECT_PROCEDURE || type == OBJECT_AGGREGATE;
}

static inline bool
es_is_type_type(ObjectType type)
{
	return type == OBJECT_TYPE || type == OBJECT_DOMAIN;
}

static bool
es_names_eventstore_schema(List *qualified_name)
{
	char	   *name;
	Oid			nsp = QualifiedNameGetCreationNamespace(qualified_name, &name);

	return nsp == get_namespace_oid("eventstore", true);
}

/*
 * ALTER TABLE, and ALTER INDEX, VIEW, ..., TYPE with subcommands of ALTER
 * TABLE; command is the command's tag, for the error.
 */
static void
es_guard_alter_table(AlterTableStmt *stmt, const char *command)
{
	bool		on_log = es_is_log_rangevar(stmt->relation);
	ListCell   *lc;

	if (es_is_eventstore_composite(stmt->relation))
		es_refuse_ddl(command);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (on_log ? !es_is_harmless_subcommand(cmd->subtype) : es_ties_to_log(cmd))
			es_refuse_ddl(command);
	}
}

/* CREATE TABLE and CREATE FOREIGN TABLE: PARTITION OF and INHERITS */
static void
es_guard_create_table(CreateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->inhRelations)
		if (es_is_log_rangevar(lfirst_node(RangeVar, lc)))
			es_refuse_ddl(stmt->partbound != NULL ?
						  "creating a partition" : "inheriting from a table");
}

/*
 * eventstore.guard_ddl() returns event_trigger
 *
 * ddl_command_start: refuses, with ES003, DDL that would change the log
 * behind the extension's back:
 *
 * - ALTER TABLE (or ALTER INDEX, VIEW, MATERIALIZED VIEW, FOREIGN TABLE,
 *   SEQUENCE, TYPE naming them) on eventstore.events, its partitions,
 *   eventstore.streams or eventstore.position_blocks other than storage
 *   and statistics settings: no disabling of triggers, no attaching or
 *   detaching of partitions, no column or constraint changes, no renaming
 *   of the tables or their columns, no change of owner or schema;
 *   ALTER SEQUENCE of eventstore.position_blocks;
 * - tying another table to the log: CREATE TABLE ... PARTITION OF or
 *   INHERITS a log table (a partition the extension did not make, say a
 *   DEFAULT one, would be missed by everything that counts partitions),
 *   ALTER TABLE ... INHERIT, ATTACH PARTITION of a log table;
 * - ALTER TYPE of a type of schema eventstore (event_in, recorded_event):
 *   attributes, name, owner, schema;
 * - CREATE or DROP of triggers and rules on the log's tables;
 * - renaming the schema or changing its owner;
 * - CREATE OR REPLACE and ALTER of functions in the schema;
 * - dropping members from the extension.
 *
 * The extension's own scripts pass.  It does not stop a superuser who
 * disables the event trigger (append() and the read functions check their
 * types at use, so that gives a clean error, not a crash), nor DROP
 * EXTENSION, which drops the log with it.
 */
Datum
eventstore_guard_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *tree;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	tree = trigdata->parsetree;
	if (creating_extension)
		PG_RETURN_VOID();

	switch (nodeTag(tree))
	{
		case T_AlterTableStmt:
			es_guard_alter_table((AlterTableStmt *) tree,
								 GetCommandTagName(trigdata->tag));
			break;
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			/* a CreateForeignTableStmt begins with its CreateStmt */
			es_guard_create_table((CreateStmt *) tree);
			break;
		case T_AlterSeqStmt:
			if (es_is_log_rangevar(((AlterSeqStmt *) tree)->sequence))
				es_refuse_ddl("ALTER SEQUENCE");
			break;
		case T_AlterEnumStmt:
			if (es_is_eventstore_type((Node *) ((AlterEnumStmt *) tree)->typeName))
				es_refuse_ddl("ALTER TYPE");
			break;
		case T_AlterTypeStmt:
			if (es_is_eventstore_type((Node *) ((AlterTypeStmt *) tree)->typeName))
				es_refuse_ddl("ALTER TYPE");
			break;
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) tree;

				if (es_is_log_rangevar(stmt->relation))
					es_refuse_ddl("renaming");
				if (es_is_eventstore_composite(stmt->relation) ||
					(es_is_type_type(stmt->renameType) &&
					 es_is_eventstore_type(stmt->object)))
					es_refuse_ddl("renaming a type or attribute of schema eventstore");
				if (es_is_routine_type(stmt->renameType) &&
					es_is_eventstore_function(stmt->object))
					es_refuse_ddl("renaming a function of schema eventstore");
				if (stmt->renameType == OBJECT_SCHEMA &&
					strcmp(stmt->subname, "eventstore") == 0)
					es_refuse_ddl("renaming schema eventstore");
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) tree;

				if (es_is_log_rangevar(stmt->relation) ||
					(es_is_routine_type(stmt->objectType) &&
					 es_is_eventstore_function(stmt->object)) ||
					(es_is_type_type(stmt->objectType) &&
					 es_is_eventstore_type(stmt->object)))
					es_refuse_ddl("SET SCHEMA");
				break;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *stmt = (AlterOwnerStmt *) tree;

				if (stmt->objectType == OBJECT_SCHEMA &&
					strcmp(strVal(stmt->object), "eventstore") == 0)
					es_refuse_ddl("changing the owner of schema eventstore");
				if (es_is_routine_type(stmt->objectType) &&
					es_is_eventstore_function(stmt->object))
					es_refuse_ddl("changing the owner of a function of schema eventstore");
				if (es_is_type_type(stmt->objectType) &&
					es_is_eventstore_type(stmt->object))
					es_refuse_ddl("changing the owner of a type of schema eventstore");
				break;
			}
		case T_CreateTrigStmt:
			if (es_is_log_rangevar(((CreateTrigStmt *) tree)->relation))
				es_refuse_ddl("CREATE TRIGGER");
			break;
		case T_RuleStmt:
			if (es_is_log_rangevar(((RuleStmt *) tree)->relation))
				es_refuse_ddl("CREATE RULE");
			break;
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) tree;

				if ((stmt->removeType == OBJECT_TRIGGER ||
					 stmt->removeType == OBJECT_RULE) &&
					es_drops_from_log(stmt))
					es_refuse_ddl(stmt->removeType == OBJECT_TRIGGER ?
								  "DROP TRIGGER" : "DROP RULE");
				break;
			}
		case T_CreateFunctionStmt:
			if (es_names_eventstore_schema(((CreateFunctionStmt *) tree)->funcname))
				es_refuse_ddl("creating or replacing a function in schema eventstore");
			break;
		case T_AlterFunctionStmt:
			if (es_is_eventstore_function((Node *) ((AlterFunctionStmt *) tree)->func))
				es_refuse_ddl("ALTER FUNCTION");
			break;
		case T_AlterExtensionContentsStmt:
			{
				AlterExtensionContentsStmt *stmt = (AlterExtensionContentsStmt *) tree;

				if (stmt->action < 0 && strcmp(stmt->extname, "eventstore") == 0)
					es_refuse_ddl("dropping a member of extension eventstore");
				break;
			}
		default:
			break;
	}
	PG_RETURN_VOID();
}

/*
 * EsCheckRowType
 *		Raise 55000 unless desc has exactly ntypes attributes of the given
 *		types, in order, none dropped: the shape that user (a function of
 *		the extension) relies on for what (a type or table).  The event
 *		trigger refuses DDL that would change them; this check at use turns
 *		the changes of a superuser who disabled it into an error instead of
 *		rows of the wrong type, which could crash the server when read.
 */
void
EsCheckRowType(TupleDesc desc, const Oid *types, int ntypes,
			   const char *what, const char *user)
{
	StringInfoData expected;
	char	   *problem = NULL;

	if (desc->natts != ntypes)
		problem = psprintf("it has %d attributes, dropped ones included",
						   desc->natts);
	for (int i = 0; problem == NULL && i < ntypes; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			problem = psprintf("attribute %d is dropped", i + 1);
		else if (att->atttypid != types[i])
			problem = psprintf("attribute %d is of type %s", i + 1,
							   format_type_be(att->atttypid));
	}
	if (problem == NULL)
		return;

	initStringInfo(&expected);
	for (int i = 0; i < ntypes; i++)
		appendStringInfo(&expected, "%s%s", i > 0 ? ", " : "",
						 format_type_be(types[i]));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("%s was altered", what),
			 errdetail("%s needs the attributes (%s), none dropped, but %s.",
					   user, expected.data, problem),
			 errhint(ES_ALTERED_HINT)));
}
