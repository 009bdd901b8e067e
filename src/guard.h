/*-------------------------------------------------------------------------
 *
 * guard.h
 *		The triggers that keep the log append-only.
 *
 * src/guard.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_GUARD_H
#define ES_GUARD_H

#include "access/tupdesc.h"

extern void EsCheckRowType(TupleDesc desc, const Oid *types, int ntypes,
						   const char *what, const char *user);

/* The hint of every error about a type or table of the extension altered. */
#define ES_ALTERED_HINT \
	"The extension's types and tables must not be altered.  To repair the " \
	"store, dump its data (pg_dump --data-only), drop and create the " \
	"extension, and restore the data."

#endif							/* ES_GUARD_H */
