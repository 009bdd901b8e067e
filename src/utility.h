/*-------------------------------------------------------------------------
 *
 * utility.h
 *		The utility hook that gets tickers out of the way of DROP DATABASE
 *		and the like.
 *
 * src/utility.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_UTILITY_H
#define ES_UTILITY_H

extern void EsUtilityInit(void);

#endif							/* ES_UTILITY_H */
