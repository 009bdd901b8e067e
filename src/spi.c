/*-------------------------------------------------------------------------
 *
 * spi.c
 *		SPI helpers shared by the eventstore sources.
 *
 * Plans are prepared once per backend and kept (SPI_keepplan); the plan
 * cache replans them after DDL on the tables they read.
 *
 * src/spi.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"

#include "eventstore.h"
#include "spi.h"

/*
 * EsKeptPlan
 *		The plan in *cache, prepared and kept on first use.  Caller is
 *		connected to SPI.
 */
SPIPlanPtr
EsKeptPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}
