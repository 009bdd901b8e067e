/*-------------------------------------------------------------------------
 *
 * event.c
 *		The events append() takes: eventstore.event_in, built by
 *		eventstore.event() and unpacked and checked here.
 *
 * An event_in is deformed with the type's descriptor and its fields used
 * as text, jsonb, uuid and integer, so the descriptor is checked first
 * (EsCheckRowType): a type altered behind the event trigger's back is an
 * error, never bytes of the wrong type stored in the log.
 *
 * src/event.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"
#include "utils/uuid.h"

#include "eventstore.h"
#include "event.h"
#include "guard.h"
#include "guc.h"

/* Attributes of eventstore.event_in, and their types. */
enum
{
	EVENT_IN_TYPE,
	EVENT_IN_DATA,
	EVENT_IN_METADATA,
	EVENT_IN_ID,
	EVENT_IN_SCHEMA_VERSION,
	EVENT_IN_NATTS
};

static const Oid es_event_in_types[EVENT_IN_NATTS] = {
	TEXTOID, JSONBOID, JSONBOID, UUIDOID, INT4OID
};

PG_FUNCTION_INFO_V1(eventstore_event);

static inline void
es_check_not_null(bool isnull, int i, const char *field)
{
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s of event %d must not be null", field, i + 1)));
}

/*
 * eventstore.event_in must be as the extension made it: the events are
 * deformed with its descriptor and their fields used as text, jsonb, uuid
 * and integer.
 */
static inline void
es_check_event_in(TupleDesc desc, const char *user)
{
	EsCheckRowType(desc, es_event_in_types, EVENT_IN_NATTS,
				   "type eventstore.event_in", user);
}

/* The number of events of one append: 22023 none, 54000 too many. */
static inline void
es_check_count(int n)
{
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must contain at least one event")));
	if (n > es_max_append_events)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many events in one append"),
				 errdetail("The batch has %d events; eventstore.max_append_events is %d.",
						   n, es_max_append_events),
				 errhint("Split the batch, or raise eventstore.max_append_events.")));
}

/*
 * The fields of event i (0-based) once unpacked, whatever form they came
 * in: the type's length, schema_version, the size of data and metadata.
 */
static void
es_check_event(EsEvent *ev, int i)
{
	int			typelen = VARSIZE_ANY_EXHDR(DatumGetPointer(ev->event_type));
	Size		max_size = (Size) es_max_event_size_kb * 1024;
	Size		size;

	if (typelen == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_type of event %d must not be empty", i + 1)));
	if (typelen > ES_MAX_TYPE_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_type of event %d is too long", i + 1),
				 errdetail("It is %d bytes long; at most %d bytes are allowed.",
						   typelen, ES_MAX_TYPE_BYTES)));
	if (ev->schema_version < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("schema_version of event %d must be at least 1", i + 1)));
	size = toast_raw_datum_size(ev->data);
	if (!ev->metadata_null)
		size += toast_raw_datum_size(ev->metadata);
	if (size > max_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event %d is too large", i + 1),
				 errdetail("Its data and metadata take %zu bytes; eventstore.max_event_size is %zu bytes.",
						   size, max_size)));
}

/*
 * EsUnpackEvents
 *		Unpack the events array of append() into EsEvent entries, checking
 *		the array and each event: 22004 null elements and fields, 22023
 *		empty or over-long types, schema_version < 1, a multi-dimensional or
 *		empty array, 54000 too many or too large events, 55000 an altered
 *		eventstore.event_in.
 */
EsEvent *
EsUnpackEvents(ArrayType *array, int *nevents)
{
	Oid			elemtype = ARR_ELEMTYPE(array);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *elemnulls;
	int			n;
	EsEvent    *events;
	TupleDesc	desc = NULL;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a one-dimensional array")));

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(array, elemtype, typlen, typbyval, typalign,
					  &elems, &elemnulls, &n);
	es_check_count(n);

	events = palloc0(sizeof(EsEvent) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTupleHeader td;
		HeapTupleData tuple;
		Datum		values[EVENT_IN_NATTS];
		bool		nulls[EVENT_IN_NATTS];
		EsEvent    *ev = &events[i];

		if (elemnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("event %d of the batch is null", i + 1)));

		td = DatumGetHeapTupleHeader(elems[i]);
		if (desc == NULL)
		{
			desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(td),
										  HeapTupleHeaderGetTypMod(td));
			es_check_event_in(desc, "eventstore.append()");
		}
		tuple.t_len = HeapTupleHeaderGetDatumLength(td);
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = td;
		heap_deform_tuple(&tuple, desc, values, nulls);

		es_check_not_null(nulls[EVENT_IN_TYPE], i, "event_type");
		es_check_not_null(nulls[EVENT_IN_DATA], i, "data");
		es_check_not_null(nulls[EVENT_IN_ID], i, "event_id");
		es_check_not_null(nulls[EVENT_IN_SCHEMA_VERSION], i, "schema_version");

		ev->event_type = PointerGetDatum(PG_DETOAST_DATUM_PACKED(values[EVENT_IN_TYPE]));
		ev->schema_version = DatumGetInt32(values[EVENT_IN_SCHEMA_VERSION]);
		ev->data = values[EVENT_IN_DATA];
		ev->metadata = values[EVENT_IN_METADATA];
		ev->metadata_null = nulls[EVENT_IN_METADATA];
		ev->event_id = DatumGetUUIDP(values[EVENT_IN_ID]);
		es_check_event(ev, i);
	}
	if (desc != NULL)
		ReleaseTupleDesc(desc);

	*nevents = n;
	return events;
}

/* Which element of a JSON batch is being unpacked, for error context. */
static void
es_json_event_context(void *arg)
{
	errcontext("event %d of the batch", *(int *) arg + 1);
}

static void
es_json_wrong_type(int i, const JsonbValue *key, const char *want)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("\"%s\" of event %d must be %s",
					pnstrdup(key->val.string.val, key->val.string.len), i + 1, want)));
}

/*
 * EsJsonKeyIs
 *		Whether a JSON object key (a jbvString) is name.
 */
bool
EsJsonKeyIs(const JsonbValue *key, const char *name)
{
	size_t		len = strlen(name);

	return key->val.string.len == (int) len &&
		memcmp(key->val.string.val, name, len) == 0;
}

/*
 * EsUnpackJsonEvents
 *		Unpack a JSON array of events, each an object with the keys "type"
 *		(a string), "data" (any JSON value, null included), and optionally
 *		"metadata" (null for none), "id" (a UUID string; a new random one
 *		when absent or null) and "schema_version" (a positive integer,
 *		default 1).  Errors: 22023 not an array of objects, an unknown key,
 *		a key of the wrong type; 22004 a missing or null type, a missing data;
 *		22P02 an id that is not a UUID; and those of EsUnpackEvents.  Every
 *		error names the event (1-based).
 */
EsEvent *
EsUnpackJsonEvents(Jsonb *batch, int *nevents)
{
	ErrorContextCallback callback;
	EsEvent    *events;
	int			n;
	int			current = 0;

	if (!JB_ROOT_IS_ARRAY(batch) || JB_ROOT_IS_SCALAR(batch))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("events must be a JSON array of event objects"),
				 errhint("Send [{\"type\": ..., \"data\": ...}, ...].")));
	n = JB_ROOT_COUNT(batch);
	es_check_count(n);

	callback.callback = es_json_event_context;
	callback.arg = &current;
	callback.previous = error_context_stack;
	error_context_stack = &callback;

	events = palloc0(sizeof(EsEvent) * n);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&batch->root, i);
		EsEvent    *ev = &events[i];
		JsonbIterator *it;
		JsonbIteratorToken tok;
		JsonbValue	key;
		JsonbValue	val;
		bool		has_type = false;
		bool		has_data = false;

		current = i;
		if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("event %d of the batch is not a JSON object", i + 1)));

		ev->schema_version = 1;
		ev->metadata_null = true;
		it = JsonbIteratorInit(elem->val.binary.data);
		while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
		{
			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &val, true);
			Assert(tok == WJB_VALUE);

			if (EsJsonKeyIs(&key, "type"))
			{
				if (val.type == jbvNull)
					continue;
				if (val.type != jbvString)
					es_json_wrong_type(i, &key, "a string");
				ev->event_type = PointerGetDatum(cstring_to_text_with_len(val.val.string.val,
																		  val.val.string.len));
				has_type = true;
			}
			else if (EsJsonKeyIs(&key, "data"))
			{
				/* JSON null is data, as in the array form */
				ev->data = JsonbPGetDatum(JsonbValueToJsonb(&val));
				has_data = true;
			}
			else if (EsJsonKeyIs(&key, "metadata"))
			{
				if (val.type == jbvNull)
					continue;
				ev->metadata = JsonbPGetDatum(JsonbValueToJsonb(&val));
				ev->metadata_null = false;
			}
			else if (EsJsonKeyIs(&key, "id"))
			{
				if (val.type == jbvNull)
					continue;
				if (val.type != jbvString)
					es_json_wrong_type(i, &key, "a UUID string");
				ev->event_id = DatumGetUUIDP(DirectFunctionCall1(uuid_in,
																 CStringGetDatum(pnstrdup(val.val.string.val,
																						  val.val.string.len))));
			}
			else if (EsJsonKeyIs(&key, "schema_version"))
			{
				if (val.type == jbvNull)
					continue;
				if (val.type != jbvNumeric ||
					strchr(DatumGetCString(DirectFunctionCall1(numeric_out,
															   NumericGetDatum(val.val.numeric))), '.'))
					es_json_wrong_type(i, &key, "an integer");
				ev->schema_version = DatumGetInt32(DirectFunctionCall1(numeric_int4,
																	   NumericGetDatum(val.val.numeric)));
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("event %d has an unknown key \"%s\"", i + 1,
								pnstrdup(key.val.string.val, key.val.string.len)),
						 errhint("An event has the keys \"type\", \"data\", \"metadata\", \"id\" and \"schema_version\".")));
		}
		es_check_not_null(!has_type, i, "type");
		es_check_not_null(!has_data, i, "data");
		if (ev->event_id == NULL)
			ev->event_id = DatumGetUUIDP(DirectFunctionCall1(gen_random_uuid, (Datum) 0));
		es_check_event(ev, i);
	}
	error_context_stack = callback.previous;

	*nevents = n;
	return events;
}

/* Order of event ids, for finding repeats within a batch and lookups. */
static int
es_cmp_event_ptr(const void *a, const void *b)
{
	const EsEvent *ea = *(EsEvent *const *) a;
	const EsEvent *eb = *(EsEvent *const *) b;

	return memcmp(ea->event_id->data, eb->event_id->data, UUID_LEN);
}

/*
 * EsCheckUniqueIds
 *		An id may appear only once in a batch (22023).
 */
void
EsCheckUniqueIds(EsEvent *events, int n)
{
	EsEvent   **sorted = palloc(sizeof(EsEvent *) * n);

	for (int i = 0; i < n; i++)
		sorted[i] = &events[i];
	qsort(sorted, n, sizeof(EsEvent *), es_cmp_event_ptr);

	for (int i = 1; i < n; i++)
		if (es_cmp_event_ptr(&sorted[i - 1], &sorted[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("event id %s appears more than once in the batch",
							DatumGetCString(DirectFunctionCall1(uuid_out,
																UUIDPGetDatum(sorted[i]->event_id)))),
					 errhint("Each event of a stream needs its own id.")));
	pfree(sorted);
}

/*
 * eventstore.event(event_type text, data jsonb, metadata jsonb DEFAULT NULL,
 *					event_id uuid DEFAULT gen_random_uuid(),
 *					schema_version integer DEFAULT 1)
 * returns eventstore.event_in
 *
 * Builds an event to append.  Any argument may be null: append() checks the
 * fields, so that an event_in built with ROW(...) gets the same errors.
 * Written in C so that calling it costs no inlining or parsing per call.
 * Errors: 55000 when eventstore.event_in was altered.
 */
Datum
eventstore_event(PG_FUNCTION_ARGS)
{
	TupleDesc	desc = (TupleDesc) fcinfo->flinfo->fn_extra;
	Datum		values[EVENT_IN_NATTS];
	bool		nulls[EVENT_IN_NATTS];

	if (desc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "eventstore.event must return a composite type");
		es_check_event_in(desc, "eventstore.event()");
		desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		fcinfo->flinfo->fn_extra = desc;
		MemoryContextSwitchTo(old);
	}

	for (int i = 0; i < EVENT_IN_NATTS; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
