/*-------------------------------------------------------------------------
 *
 * event.h
 *		The events append() takes, unpacked and checked.
 *
 * src/event.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_EVENT_H
#define ES_EVENT_H

#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* One event of the batch, with its outcome. */
typedef struct EsEvent
{
	Datum		event_type;
	Datum		data;
	Datum		metadata;
	bool		metadata_null;
	pg_uuid_t  *event_id;
	int32		schema_version;

	bool		duplicate;
	int64		stream_order;
	int64		insert_order;
} EsEvent;

extern EsEvent *EsUnpackEvents(ArrayType *array, int *nevents);
extern EsEvent *EsUnpackJsonEvents(Jsonb *batch, int *nevents);
extern bool EsJsonKeyIs(const JsonbValue *key, const char *name);
extern void EsCheckUniqueIds(EsEvent *events, int n);

#endif							/* ES_EVENT_H */
