/*-------------------------------------------------------------------------
 *
 * hash.h
 *		The stable mapping from a partition key to a bucket.
 *
 * src/hash.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_HASH_H
#define ES_HASH_H

extern uint32 EsFnv1a(const char *data, int len);
extern int	EsBucketOf(const char *key, int len);

#endif							/* ES_HASH_H */
