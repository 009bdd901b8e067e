/*-------------------------------------------------------------------------
 *
 * readscan.h
 *		eventstore.read_all and read_stream in FROM, run as streaming scans.
 *
 * src/readscan.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_READSCAN_H
#define ES_READSCAN_H

extern void EsReadScanInit(void);

#endif							/* ES_READSCAN_H */
