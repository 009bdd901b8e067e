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

#endif							/* ES_SPI_H */
