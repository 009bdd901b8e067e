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

/*
 * EsStoredMax
 *		The highest position stored in eventstore.events that the current
 *		command can see (its own rows included), or 0.
 */
int64
EsStoredMax(void)
{
	int64		result = 0;
	bool		isnull;
	Datum		value;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* not read-only: a new command id, so the statement's own rows count */
	if (SPI_execute("SELECT max(insert_order) FROM eventstore.events", false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the highest stored position");
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		result = DatumGetInt64(value);
	SPI_finish();
	return result;
}
