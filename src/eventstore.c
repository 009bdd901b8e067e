/*-------------------------------------------------------------------------
 *
 * eventstore.c
 *		Module entry point of the eventstore extension.
 *
 * _PG_init only delegates: GUCs first, so that shared memory can be sized
 * from them, then shared memory, the transaction callbacks of the position
 * allocator, of the head and of the counters, the launcher of the tickers,
 * the utility hook, and the planner hook of the streaming feed scan.
 *
 * src/eventstore.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "eventstore.h"
#include "readscan.h"
#include "guc.h"
#include "head.h"
#include "launcher.h"
#include "metrics.h"
#include "position.h"
#include "shmem.h"
#include "utility.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	EsGucInit();
	EsShmemInit();
	EsPositionInit();
	EsHeadInit();
	EsMetricsInit();
	EsLauncherInit();
	EsUtilityInit();
	EsReadScanInit();
}
