/*-------------------------------------------------------------------------
 *
 * guc.c
 *		Configuration parameters of eventstore.
 *
 * All parameters live under the "eventstore." prefix, which is reserved
 * once they are defined.  Limits that protect the server are PGC_SUSET, so
 * an application cannot lift them for itself; sizes of shared memory are
 * PGC_POSTMASTER.
 *
 * src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "utils/guc.h"

#include "eventstore.h"
#include "guc.h"

int			es_max_append_events = 10000;
int			es_max_event_size_kb = 1024;
int			es_max_databases = 16;
int			es_commit_history = 4096;
int			es_tick_interval_ms = 5;
int			es_tick_retention_s = 3600;
int			es_tick_keep = 1000;
static int	es_partitions = 8;

/* eventstore.partitions must be a power of two that divides 1024. */
static bool
check_partitions(int *newval, void **extra, GucSource source)
{
	if ((*newval & (*newval - 1)) != 0)
	{
		GUC_check_errdetail("eventstore.partitions must be a power of two from 1 to 1024.");
		return false;
	}
	return true;
}

void
EsGucInit(void)
{
	DefineCustomIntVariable("eventstore.max_append_events",
							"Largest number of events one call of eventstore.append() may carry.",
							NULL,
							&es_max_append_events,
							10000, 1, 1000000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.max_event_size",
							"Largest size of one event's data plus metadata.",
							NULL,
							&es_max_event_size_kb,
							1024, 1, 1024 * 1024,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.partitions",
							"Number of physical partitions of eventstore.events, read by CREATE EXTENSION.",
							"Buckets 0..1023 are split into this many equal ranges.",
							&es_partitions,
							8, 1, ES_BUCKETS,
							PGC_SUSET,
							0,
							check_partitions, NULL, NULL);

	DefineCustomIntVariable("eventstore.tick_interval",
							"Shortest time between two ticks of a database's ticker.",
							"Appends that commit within it are announced by one tick and one notification.",
							&es_tick_interval_ms,
							5, 1, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.tick_retention",
							"How long ticks are kept in eventstore.ticks.",
							"Older ticks are pruned, except the newest eventstore.tick_keep and those a subscription still needs.",
							&es_tick_retention_s,
							3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eventstore.tick_keep",
							"Number of newest ticks that are never pruned.",
							NULL,
							&es_tick_keep,
							1000, 1, INT_MAX,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	/*
	 * Sizes of shared memory exist only when the library is preloaded;
	 * defining PGC_POSTMASTER parameters later is an error.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomIntVariable("eventstore.max_databases",
								"Number of databases that can use eventstore at the same time.",
								NULL,
								&es_max_databases,
								16, 1, 4096,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

		DefineCustomIntVariable("eventstore.commit_history",
								"Number of recent appending commits remembered per database for snapshot readers.",
								"REPEATABLE READ and SERIALIZABLE readers use it to find the head of their snapshot.",
								&es_commit_history,
								4096, 64, 1024 * 1024,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	}

	MarkGUCPrefixReserved("eventstore");
}
