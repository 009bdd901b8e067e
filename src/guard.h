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

/* Set by append.c while it writes a stream row. */
extern bool es_append_active;

#endif							/* ES_GUARD_H */
