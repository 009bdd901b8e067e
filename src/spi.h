/*-------------------------------------------------------------------------
 *
 * spi.h
 *		SPI helpers shared by the eventstore sources.
 *
 * src/spi.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_SPI_H
#define ES_SPI_H

#include "executor/spi.h"

extern SPIPlanPtr EsKeptPlan(SPIPlanPtr *cache, const char *sql, int nargs,
							 Oid *argtypes);
extern SPIPlanPtr EsKeptCursorPlan(SPIPlanPtr *cache, const char *sql, int nargs,
								   Oid *argtypes, int cursor_options);

#endif							/* ES_SPI_H */
