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
	return EsKeptCursorPlan(cache, sql, nargs, argtypes, 0);
}

/*
 * EsKeptCursorPlan
 *		The same, prepared with cursor options: CURSOR_OPT_FAST_PLAN for a
 *		cursor that is read a page at a time, so that the plan favours the
 *		first rows (an ordered merge of index scans) over the whole result
 *		(a sort of every row up to the end), generic plans included.
 */
SPIPlanPtr
EsKeptCursorPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
				 int cursor_options)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}
