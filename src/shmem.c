/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Shared memory of eventstore and its per-database entries.
 *
 * The extension keeps, in shared memory requested at server start, one
 * entry per database that uses it (at most eventstore.max_databases): the
 * position allocator's state, a slot per backend for the positions its open
 * transaction holds, a ring of the most recent appending commits, and the
 * state of the database's ticker.  What the fields mean is up to the files
 * that use them (position.c, head.c, launcher.c); this file lays them out,
 * hands each backend its database's entry and reclaims entries of dropped
 * databases.
 *
 * Note about locking:
 *
 * There are 1 + eventstore.max_databases LWLocks in the tranche
 * "eventstore".  The first, the registry lock, protects which database an
 * entry belongs to (dboid) and the launcher's latch; each entry's own lock
 * protects everything else in the entry, its slots and its ring.  Nothing
 * ever waits for a lock of one database while holding another's, so
 * appenders and readers of different databases never meet; when both are
 * needed the registry lock is taken first.  No catalog access, no query, no
 * heavyweight lock and no latch is ever waited for or set while either kind
 * of lock is held: what those need is looked up before the lock is taken.
 *
 * An entry's dboid changes only while both the registry lock and the
 * entry's lock are held exclusively, and only from InvalidOid or from a
 * database that no longer exists; since no backend can be connected to a
 * dropped database, a backend may cache the address of its own entry for
 * its whole life and read dboid there without the registry lock.
 *
 * src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/twophase.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/syscache.h"

#include "eventstore.h"
#include "guc.h"
#include "shmem.h"

typedef struct EsShared
{
	LWLock	   *registry;		/* see the note above */
	Latch	   *launcher_latch; /* under the registry lock */
	int			ndbs;
	int			nslots;
	int			ring_size;
	EsDatabase	dbs[FLEXIBLE_ARRAY_MEMBER];
} EsShared;

static EsShared *es_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* This backend's entry, once known. */
static EsDatabase *my_db = NULL;

static int
es_slot_count(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
es_entry_size(void)
{
	Size		size;

	size = MAXALIGN(mul_size(es_slot_count(), sizeof(EsSlot)));
	size = add_size(size, MAXALIGN(mul_size(es_commit_history, sizeof(EsCommit))));
	return size;
}

/* Every slot of an entry empty: no positions held, no wait. */
static void
es_clear_slots(EsDatabase *db)
{
	memset(db->slots, 0, es_shared->nslots * sizeof(EsSlot));
	for (int i = 0; i < es_shared->nslots; i++)
		pg_atomic_init_u64(&db->slots[i].wait_after, 0);
}

static Size
es_shmem_size(void)
{
	Size		size;

	size = MAXALIGN(add_size(offsetof(EsShared, dbs),
							 mul_size(es_max_databases, sizeof(EsDatabase))));
	size = add_size(size, mul_size(es_max_databases, es_entry_size()));
	return size;
}

static void
es_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(es_shmem_size());
	RequestNamedLWLockTranche("eventstore", 1 + es_max_databases);
}

static void
es_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	es_shared = ShmemInitStruct("eventstore", es_shmem_size(), &found);
	if (!found)
	{
		LWLockPadded *locks = GetNamedLWLockTranche("eventstore");
		char	   *p;

		es_shared->registry = &locks[0].lock;
		es_shared->launcher_latch = NULL;
		es_shared->ndbs = es_max_databases;
		es_shared->nslots = es_slot_count();
		es_shared->ring_size = es_commit_history;
		p = (char *) es_shared +
			MAXALIGN(offsetof(EsShared, dbs) + es_shared->ndbs * sizeof(EsDatabase));
		for (int i = 0; i < es_shared->ndbs; i++)
		{
			EsDatabase *db = &es_shared->dbs[i];

			memset(db, 0, sizeof(EsDatabase));
			db->dboid = InvalidOid;
			db->lock = &locks[1 + i].lock;
			for (int c = 0; c < ES_NUM_COUNTERS; c++)
				pg_atomic_init_u64(&db->counters[c], 0);
			pg_atomic_init_u64(&db->counters_reset_at, 0);
			db->slots = (EsSlot *) p;
			p += MAXALIGN(es_shared->nslots * sizeof(EsSlot));
			db->ring = (EsCommit *) p;
			p += MAXALIGN(es_shared->ring_size * sizeof(EsCommit));
			es_clear_slots(db);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * EsShmemInit
 *		Called from _PG_init while preloading: request the shared memory and
 *		the locks.
 */
void
EsShmemInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = es_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = es_shmem_startup;
}

/*
 * EsCheckLoaded
 *		Raise an error unless the library was loaded at server start.
 */
void
EsCheckLoaded(void)
{
	if (es_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eventstore must be loaded via \"shared_preload_libraries\""),
				 errhint("Add eventstore to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* The entry of dboid, or NULL.  Caller holds the registry lock. */
static EsDatabase *
es_lookup(Oid dboid)
{
	for (int i = 0; i < es_shared->ndbs; i++)
		if (es_shared->dbs[i].dboid == dboid)
			return &es_shared->dbs[i];
	return NULL;
}

/* Make a claimed entry new.  Caller holds the entry's lock exclusively. */
static void
es_reset_entry(EsDatabase *db, Oid dboid)
{
	db->dboid = dboid;
	db->seeded = false;
	db->seq = InvalidOid;
	db->next = 0;
	db->reserved_end = 0;
	db->releases = 0;
	db->commits_added = 0;
	db->evicted_xid = InvalidFullTransactionId;
	db->ticker_pid = 0;
	db->ticker_latch = NULL;
	db->ticker_wanted = OidIsValid(dboid);
	db->ticker_stops = 0;
	db->ticker_recheck = false;
	es_clear_slots(db);
	for (int c = 0; c < ES_NUM_COUNTERS; c++)
		pg_atomic_write_u64(&db->counters[c], 0);
	pg_atomic_write_u64(&db->counters_reset_at, (uint64) GetCurrentTimestamp());
}

/*
 * EsMyDatabase
 *		This database's entry, claimed on first use: a free entry, or one of
 *		a database that was dropped.  A new entry wants a ticker, and the
 *		launcher is told.  Must be called inside a transaction (it may look
 *		databases up in the catalog, never while holding a lock).
 */
EsDatabase *
EsMyDatabase(void)
{
	Oid		   *owners;
	bool	   *dropped;
	EsDatabase *db;
	bool		claimed = false;

	if (my_db != NULL)
		return my_db;
	EsCheckLoaded();

	LWLockAcquire(es_shared->registry, LW_SHARED);
	db = es_lookup(MyDatabaseId);
	LWLockRelease(es_shared->registry);
	if (db != NULL)
		return my_db = db;

	/* which entries belong to databases that are gone, asked unlocked */
	owners = palloc(sizeof(Oid) * es_shared->ndbs);
	dropped = palloc0(sizeof(bool) * es_shared->ndbs);
	LWLockAcquire(es_shared->registry, LW_SHARED);
	for (int i = 0; i < es_shared->ndbs; i++)
		owners[i] = es_shared->dbs[i].dboid;
	LWLockRelease(es_shared->registry);
	for (int i = 0; i < es_shared->ndbs; i++)
		if (OidIsValid(owners[i]))
			dropped[i] = !SearchSysCacheExists1(DATABASEOID,
												ObjectIdGetDatum(owners[i]));

	LWLockAcquire(es_shared->registry, LW_EXCLUSIVE);
	db = es_lookup(MyDatabaseId);
	for (int i = 0; db == NULL && i < es_shared->ndbs; i++)
	{
		EsDatabase *candidate = &es_shared->dbs[i];

		if (OidIsValid(candidate->dboid) &&
			!(dropped[i] && candidate->dboid == owners[i]))
			continue;
		LWLockAcquire(candidate->lock, LW_EXCLUSIVE);
		if (candidate->ticker_pid == 0)
		{
			es_reset_entry(candidate, MyDatabaseId);
			db = candidate;
			claimed = true;
		}
		LWLockRelease(candidate->lock);
	}
	LWLockRelease(es_shared->registry);
	pfree(owners);
	pfree(dropped);

	if (db == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many databases use eventstore"),
				 errdetail("All %d entries allowed by \"eventstore.max_databases\" are in use.",
						   es_shared->ndbs),
				 errhint("Raise eventstore.max_databases and restart the server.")));
	if (claimed)
		EsWakeLauncher();
	return my_db = db;
}

/*
 * EsFindDatabase
 *		The entry of a database, or NULL if it has none; claims nothing.
 */
EsDatabase *
EsFindDatabase(Oid dboid)
{
	EsDatabase *db;

	if (es_shared == NULL)
		return NULL;
	if (my_db != NULL && dboid == MyDatabaseId)
		return my_db;
	LWLockAcquire(es_shared->registry, LW_SHARED);
	db = es_lookup(dboid);
	LWLockRelease(es_shared->registry);
	return db;
}

/*
 * EsForgetDatabase
 *		Free the entry of a database that was dropped.
 */
void
EsForgetDatabase(Oid dboid)
{
	EsDatabase *db;

	if (es_shared == NULL)
		return;
	LWLockAcquire(es_shared->registry, LW_EXCLUSIVE);
	db = es_lookup(dboid);
	if (db != NULL)
	{
		LWLockAcquire(db->lock, LW_EXCLUSIVE);
		if (db->ticker_pid == 0)
			es_reset_entry(db, InvalidOid);
		LWLockRelease(db->lock);
	}
	LWLockRelease(es_shared->registry);
}

/* The number of entries, for the launcher's rounds. */
int
EsDatabaseCount(void)
{
	return es_shared == NULL ? 0 : es_shared->ndbs;
}

/*
 * EsDatabaseAt
 *		Entry i.  Its dboid may change unless the caller holds the registry
 *		lock or the entry's lock; the launcher reads it under the latter.
 */
EsDatabase *
EsDatabaseAt(int i)
{
	Assert(i >= 0 && i < es_shared->ndbs);
	return &es_shared->dbs[i];
}

/* The number of slots in each entry: one per backend. */
int
EsSlotCount(void)
{
	return es_shared->nslots;
}

/* This backend's slot in an entry. */
EsSlot *
EsMySlot(EsDatabase *db)
{
	int			i = MyBackendId - 1;

	if (i < 0 || i >= es_shared->nslots)
		elog(ERROR, "backend id %d has no eventstore slot", MyBackendId);
	return &db->slots[i];
}

/* The number of commits each entry's ring holds. */
int
EsRingSize(void)
{
	return es_shared->ring_size;
}

/*
 * EsSetLauncher
 *		The launcher announces its latch (NULL on its way out).
 */
void
EsSetLauncher(Latch *latch)
{
	LWLockAcquire(es_shared->registry, LW_EXCLUSIVE);
	es_shared->launcher_latch = latch;
	LWLockRelease(es_shared->registry);
}

/*
 * EsWakeLauncher
 *		Set the launcher's latch, if it runs.  The latch is read under the
 *		lock and set after it: a latch stays valid memory after its process
 *		exits, and setting it then is harmless.
 */
void
EsWakeLauncher(void)
{
	Latch	   *latch;

	if (es_shared == NULL)
		return;
	LWLockAcquire(es_shared->registry, LW_SHARED);
	latch = es_shared->launcher_latch;
	LWLockRelease(es_shared->registry);
	if (latch != NULL)
		SetLatch(latch);
}
