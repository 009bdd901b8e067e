/*-------------------------------------------------------------------------
 *
 * eventstore.c
 *		Module entry point of the eventstore extension.
 *
 * _PG_init only delegates: GUCs first, so that shared memory can be sized
 * from them, then the position allocator's shared memory and transaction
 * callbacks, then the tickers' launcher and utility hook.
 *
 * src/eventstore.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "eventstore.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	EsGucInit();
	EsPositionInit();
	EsTickerInit();
}
