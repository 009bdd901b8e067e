/*-------------------------------------------------------------------------
 *
 * stream.c
 *		The stream's row in eventstore.streams: found, locked by updating
 *		its version, or created, below the executor.
 *
 * append() serializes the appenders of one stream on the stream's row.
 * This file does what "UPDATE eventstore.streams SET version = version + n
 * ... RETURNING" and "INSERT ... ON CONFLICT (stream_id) DO NOTHING" did,
 * with the table AM and the primary key index directly, and with the same
 * concurrency behaviour as those statements:
 *
 *	- the row is looked up in streams_pkey with the transaction's snapshot
 *	  (a new one per call in READ COMMITTED) and updated with
 *	  table_tuple_update, which waits for a concurrent updater.  If that one
 *	  committed (TM_Updated), READ COMMITTED reads the newest version with a
 *	  new snapshot and updates that, as EvalPlanQual would (the only
 *	  qualification, the stream id, cannot change); REPEATABLE READ and
 *	  SERIALIZABLE raise 40001 "could not serialize access due to
 *	  concurrent update", as an UPDATE would;
 *	- a row that the snapshot does not show is looked up again with a dirty
 *	  snapshot: one being created (or updated) by a transaction in progress
 *	  is waited for, then looked up again; one committed after a REPEATABLE
 *	  READ snapshot is a 40001, as INSERT ... ON CONFLICT DO NOTHING raises;
 *	- a new row is inserted speculatively, as ON CONFLICT does: heap tuple
 *	  first, then its index entry with a partial uniqueness check; if
 *	  another transaction inserted the same stream id in between, the
 *	  tuple is killed again and the caller starts over (and then waits for
 *	  the other transaction).
 *
 * Predicate locks for SERIALIZABLE are taken where an UPDATE takes them:
 * the index scan and the heap fetch lock what they read, and heap_update,
 * heap_insert and the btree insertion check for conflicts.  The version
 * update changes no indexed column, so it is a HOT update whenever the
 * page has room; the table's fillfactor leaves that room (see
 * src/sql/10_log.sql), and only a non-HOT update inserts an index entry.
 *
 * No constraint is evaluated here: the versions written are above 0 (the
 * table's CHECK) by construction, and a version that would overflow is the
 * 22003 error "version + n" would raise.
 *
 * The guard trigger on eventstore.streams (guard.c) fires for statements,
 * not for these calls: it refuses every INSERT, UPDATE, DELETE and
 * TRUNCATE of the table, whoever runs it, except a restore's COPY.  The
 * functions here are reachable only from eventstore.append(), which is what
 * the trigger lets write the table, and write only what append() decides;
 * they do not check the table's privileges (append() runs as the
 * extension's owner) nor fire triggers, and they check the table's columns
 * (types, NOT NULL) and that its primary key is its only index at use (a
 * superuser who disabled the event trigger may have altered it; CREATE
 * INDEX is not refused at all, and another index would miss these rows).
 *
 * Each function starts with CommandCounterIncrement, as every SPI
 * statement did: so that an earlier append of the same SQL statement, or
 * the update of the same call, is visible to the lookup.
 *
 * src/stream.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "eventstore.h"
#include "guard.h"
#include "stream.h"

/* Columns of eventstore.streams, in order. */
enum
{
	SCOL_STREAM_ID,
	SCOL_PARTITION_KEY,
	SCOL_BUCKET,
	SCOL_VERSION,
	SCOL_CREATED_AT,
	SCOL_UPDATED_AT,
	NUM_STREAM_COLUMNS
};

static const Oid es_stream_types[NUM_STREAM_COLUMNS] = {
	TEXTOID, TEXTOID, INT4OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID
};

/* eventstore.streams and its primary key, open for writing. */
typedef struct EsStreams
{
	Relation	rel;
	Relation	pkey;
	IndexInfo  *pkey_info;
	TupleTableSlot *found;		/* the row looked up */
	TupleTableSlot *row;		/* the row to write */
} EsStreams;

static void
es_open_streams(EsStreams *s)
{
	Oid			nsp = get_namespace_oid("eventstore", false);
	Oid			pkey;
	Form_pg_index form;
	List	   *indexes;

	s->rel = table_open(get_relname_relid("streams", nsp), RowExclusiveLock);
	EsCheckRowType(RelationGetDescr(s->rel), es_stream_types,
				   NUM_STREAM_COLUMNS, "table eventstore.streams",
				   "eventstore.append()");
	/* the values read from a found row are used without a null check */
	for (int i = 0; i < NUM_STREAM_COLUMNS; i++)
		if (!TupleDescAttr(RelationGetDescr(s->rel), i)->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table eventstore.streams was altered"),
					 errdetail("eventstore.append() needs every column of the table to be NOT NULL, but column \"%s\" is not.",
							   NameStr(TupleDescAttr(RelationGetDescr(s->rel), i)->attname)),
					 errhint(ES_ALTERED_HINT)));
	pkey = RelationGetPrimaryKeyIndex(s->rel);
	if (!OidIsValid(pkey))
		elog(ERROR, "eventstore.streams has no primary key");
	s->pkey = index_open(pkey, RowExclusiveLock);
	form = s->pkey->rd_index;
	if (s->pkey->rd_rel->relam != BTREE_AM_OID || !form->indisunique ||
		form->indnatts != 1 || form->indkey.values[0] != SCOL_STREAM_ID + 1)
		elog(ERROR, "the primary key of eventstore.streams is not a btree on (stream_id)");

	/*
	 * The rows written here get entries in the primary key only: another
	 * index (a superuser may create one, the event trigger does not refuse
	 * CREATE INDEX) would silently miss them.
	 */
	indexes = RelationGetIndexList(s->rel);
	if (list_length(indexes) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table eventstore.streams was altered"),
				 errdetail("eventstore.append() writes the table's rows below the executor and needs its primary key to be its only index."),
				 errhint("Drop the other indexes of eventstore.streams.")));
	list_free(indexes);
	s->pkey_info = BuildIndexInfo(s->pkey);
	s->found = table_slot_create(s->rel, NULL);
	s->row = MakeSingleTupleTableSlot(RelationGetDescr(s->rel), &TTSOpsVirtual);
}

static void
es_close_streams(EsStreams *s)
{
	ExecDropSingleTupleTableSlot(s->row);
	ExecDropSingleTupleTableSlot(s->found);
	index_close(s->pkey, NoLock);
	table_close(s->rel, NoLock);
}

/*
 * Look the stream's row up in the primary key: the version snapshot shows,
 * into s->found.  With a dirty snapshot, its xmin or xmax tell of a
 * transaction in progress that is inserting or updating the row.
 */
static bool
es_find_row(EsStreams *s, text *stream_id, Snapshot snapshot)
{
	ScanKeyData key;
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   s->pkey->rd_indcollation[0], F_TEXTEQ,
						   PointerGetDatum(stream_id));
	scan = index_beginscan(s->rel, s->pkey, snapshot, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, s->found);
	index_endscan(scan);
	return found;
}

/*
 * Update the row in s->found to the given version; it keeps its pin, so
 * its values stay valid.  A non-HOT update gets its index entry.
 */
static TM_Result
es_update_row(EsStreams *s, Snapshot snapshot, int64 version, TimestampTz now)
{
	TupleTableSlot *row = s->row;
	TM_FailureData tmfd;
	LockTupleMode lockmode;
	bool		update_indexes;
	TM_Result	result;

	slot_getallattrs(s->found);
	ExecClearTuple(row);
	for (int i = 0; i < NUM_STREAM_COLUMNS; i++)
	{
		row->tts_values[i] = s->found->tts_values[i];
		row->tts_isnull[i] = s->found->tts_isnull[i];
	}
	row->tts_values[SCOL_VERSION] = Int64GetDatum(version);
	row->tts_values[SCOL_UPDATED_AT] = TimestampTzGetDatum(now);
	ExecStoreVirtualTuple(row);

	result = table_tuple_update(s->rel, &s->found->tts_tid, row,
								GetCurrentCommandId(true), snapshot,
								InvalidSnapshot, true, &tmfd, &lockmode,
								&update_indexes);
	if (result == TM_Ok && update_indexes)
		index_insert(s->pkey, &row->tts_values[SCOL_STREAM_ID],
					 &row->tts_isnull[SCOL_STREAM_ID], &row->tts_tid, s->rel,
					 UNIQUE_CHECK_YES, true, s->pkey_info);
	return result;
}

static void
es_serialization_failure(TM_Result result)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg(result == TM_Deleted ?
					"could not serialize access due to concurrent delete" :
					"could not serialize access due to concurrent update")));
}

static void
es_check_partition_key(EsStream *stream, text *stored_key)
{
	if (stream->given_key == NULL)
		return;
	if (VARSIZE_ANY_EXHDR(stored_key) == VARSIZE_ANY_EXHDR(stream->given_key) &&
		memcmp(VARDATA_ANY(stored_key), VARDATA_ANY(stream->given_key),
			   VARSIZE_ANY_EXHDR(stored_key)) == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_ES_PARTITION_KEY_MISMATCH),
			 errmsg("stream \"%s\" has a different partition key",
					text_to_cstring(stream->stream_id)),
			 errdetail("The stream's partition key is \"%s\"; the call names \"%s\".",
					   text_to_cstring(stored_key),
					   text_to_cstring(stream->given_key)),
			 errhint("Pass the stream's own partition key, or NULL.")));
}

/*
 * EsStreamLock
 *		Lock the stream's row by moving its version forward by add, the
 *		size of the batch (0: lock it only, leaving version and updated_at
 *		as they are); returns false if the stream does not exist.
 *
 * On success stream->exists, partition_key, bucket, version and
 * updated_at (as they were before this append) are set from the row.  A concurrent
 * appender of the stream is waited for; so is a concurrent creator, after
 * which the row is found (or, if it aborted, not).  Raises ES002 when the
 * caller named another partition key than the stream's, and 40001 in
 * REPEATABLE READ and SERIALIZABLE when another transaction changed or
 * created the row after the transaction's snapshot.
 */
bool
EsStreamLock(EsStream *stream, int64 add, TimestampTz now)
{
	EsStreams	s;
	bool		locked = false;

	es_open_streams(&s);
	for (;;)
	{
		Snapshot	snapshot;
		SnapshotData dirty;
		TM_Result	result;
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		CommandCounterIncrement();
		snapshot = RegisterSnapshot(GetTransactionSnapshot());
		if (es_find_row(&s, stream->stream_id, snapshot))
		{
			text	   *stored_key;
			int64		version;
			int64		next;

			stored_key = DatumGetTextPP(slot_getattr(s.found, SCOL_PARTITION_KEY + 1, &isnull));
			es_check_partition_key(stream, stored_key);
			version = DatumGetInt64(slot_getattr(s.found, SCOL_VERSION + 1, &isnull));
			if (pg_add_s64_overflow(version, add, &next))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("bigint out of range")));
			/* a lock only (add 0) keeps the row's time */
			result = es_update_row(&s, snapshot, next,
								   add != 0 ? now :
								   DatumGetTimestampTz(slot_getattr(s.found,
																	SCOL_UPDATED_AT + 1,
																	&isnull)));
			UnregisterSnapshot(snapshot);
			if (result == TM_Ok)
			{
				stream->partition_key = DatumGetTextPCopy(PointerGetDatum(stored_key));
				stream->bucket = DatumGetInt32(slot_getattr(s.found, SCOL_BUCKET + 1, &isnull));
				stream->version = version;
				stream->updated_at = DatumGetTimestampTz(slot_getattr(s.found,
																	  SCOL_UPDATED_AT + 1,
																	  &isnull));
				stream->exists = true;
				locked = true;
				break;
			}
			if (result != TM_Updated && result != TM_Deleted)
				elog(ERROR, "unexpected result %d updating the row of stream \"%s\"",
					 (int) result, text_to_cstring(stream->stream_id));
			if (IsolationUsesXactSnapshot())
				es_serialization_failure(result);
			/* READ COMMITTED: the updater committed; read its version */
			continue;
		}
		UnregisterSnapshot(snapshot);

		/* not in the snapshot: is it being created, or was it just now? */
		InitDirtySnapshot(dirty);
		if (!es_find_row(&s, stream->stream_id, &dirty))
			break;
		if (TransactionIdIsValid(dirty.xmin) || TransactionIdIsValid(dirty.xmax))
		{
			TransactionId xwait = TransactionIdIsValid(dirty.xmin) ?
				dirty.xmin : dirty.xmax;

			if (dirty.speculativeToken != 0)
				SpeculativeInsertionWait(dirty.xmin, dirty.speculativeToken);
			else
				XactLockTableWait(xwait, s.rel, &s.found->tts_tid, XLTW_InsertIndex);
			continue;
		}
		/* committed after the snapshot was taken */
		if (IsolationUsesXactSnapshot())
			es_serialization_failure(TM_Updated);
	}
	es_close_streams(&s);
	return locked;
}

/*
 * EsStreamCreate
 *		Insert the row of a new stream with the given version, and
 *		stream->partition_key and bucket; returns false, having inserted
 *		nothing, if another transaction inserted the stream's row first
 *		(committed or not): the caller then locks it with EsStreamLock.
 */
bool
EsStreamCreate(EsStream *stream, int64 version, TimestampTz now)
{
	EsStreams	s;
	TupleTableSlot *row;
	TransactionId xid = GetCurrentTransactionId();
	uint32		token;
	bool		unique;

	CommandCounterIncrement();
	es_open_streams(&s);
	row = s.row;
	ExecClearTuple(row);
	memset(row->tts_isnull, 0, sizeof(bool) * NUM_STREAM_COLUMNS);
	row->tts_values[SCOL_STREAM_ID] = PointerGetDatum(stream->stream_id);
	row->tts_values[SCOL_PARTITION_KEY] = PointerGetDatum(stream->partition_key);
	row->tts_values[SCOL_BUCKET] = Int32GetDatum(stream->bucket);
	row->tts_values[SCOL_VERSION] = Int64GetDatum(version);
	row->tts_values[SCOL_CREATED_AT] = TimestampTzGetDatum(now);
	row->tts_values[SCOL_UPDATED_AT] = TimestampTzGetDatum(now);
	ExecStoreVirtualTuple(row);

	token = SpeculativeInsertionLockAcquire(xid);
	table_tuple_insert_speculative(s.rel, row, GetCurrentCommandId(true), 0,
								   NULL, token);
	unique = index_insert(s.pkey, &row->tts_values[SCOL_STREAM_ID],
						  &row->tts_isnull[SCOL_STREAM_ID], &row->tts_tid,
						  s.rel, UNIQUE_CHECK_PARTIAL, false, s.pkey_info);
	table_tuple_complete_speculative(s.rel, row, token, unique);
	SpeculativeInsertionLockRelease(xid);

	es_close_streams(&s);
	return unique;
}

/*
 * EsStreamSetVersion
 *		Set the version of the stream's row, which this transaction has
 *		locked with EsStreamLock.
 */
void
EsStreamSetVersion(EsStream *stream, int64 version, TimestampTz now)
{
	EsStreams	s;
	Snapshot	snapshot;
	TM_Result	result;

	CommandCounterIncrement();
	es_open_streams(&s);
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	if (!es_find_row(&s, stream->stream_id, snapshot))
		elog(ERROR, "the row of stream \"%s\" is gone",
			 text_to_cstring(stream->stream_id));
	result = es_update_row(&s, snapshot, version, now);
	if (result != TM_Ok)
		elog(ERROR, "unexpected result %d updating the row of stream \"%s\"",
			 (int) result, text_to_cstring(stream->stream_id));
	UnregisterSnapshot(snapshot);
	es_close_streams(&s);
}
