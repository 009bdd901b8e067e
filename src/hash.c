/*-------------------------------------------------------------------------
 *
 * hash.c
 *		The stable mapping from a partition key to a bucket.
 *
 * bucket = FNV-1a (32 bit) of the key's UTF-8 bytes, modulo 1024 (keys are
 * converted from the database encoding first).  It is deliberately not PostgreSQL's
 * internal hash: routers and applications outside the database must be able
 * to compute it in a few lines.  The README gives test vectors, and so does
 * the regression suite; never change this function.
 *
 * src/hash.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "eventstore.h"
#include "hash.h"
#include "shmem.h"

#define FNV32_OFFSET_BASIS	((uint32) 2166136261U)
#define FNV32_PRIME			((uint32) 16777619U)

PG_FUNCTION_INFO_V1(eventstore_bucket_of);

uint32
EsFnv1a(const char *data, int len)
{
	uint32		h = FNV32_OFFSET_BASIS;

	for (int i = 0; i < len; i++)
	{
		h ^= (unsigned char) data[i];
		h *= FNV32_PRIME;
	}
	return h;
}

/*
 * The bucket of a partition key given in the server encoding.  The hash is
 * defined on UTF-8, so other encodings are converted first.
 */
int
EsBucketOf(const char *key, int len)
{
	char	   *utf8 = pg_server_to_any(key, len, PG_UTF8);
	int			bucket;

	if (utf8 == key)
		return (int) (EsFnv1a(key, len) % ES_BUCKETS);
	bucket = (int) (EsFnv1a(utf8, strlen(utf8)) % ES_BUCKETS);
	pfree(utf8);
	return bucket;
}

/*
 * eventstore.bucket_of(partition_key text) returns integer
 *
 * The bucket, 0..1023, that a partition key maps to.  Strict.  Like every
 * C function of the extension it insists on the preload (55000), so that a
 * misconfigured server is noticed at the first call.
 */
Datum
eventstore_bucket_of(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);

	EsCheckLoaded();

	PG_RETURN_INT32(EsBucketOf(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
}
