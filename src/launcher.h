/*-------------------------------------------------------------------------
 *
 * launcher.h
 *		The launcher that supervises the tickers, and the ticker state it
 *		watches.
 *
 * src/launcher.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_LAUNCHER_H
#define ES_LAUNCHER_H

#include "shmem.h"

extern void EsLauncherInit(void);

/* for appenders: the head of db may have moved */
extern Latch *EsTickerLatchLocked(EsDatabase *db);
extern void EsWakeTicker(Latch *latch);

/* for a database's ticker */
extern bool EsTickerAttach(EsDatabase *db);
extern void EsTickerDetach(EsDatabase *db, bool unwanted);
extern bool EsTickerStopRequested(EsDatabase *db);
extern uint64 EsTickerCue(EsDatabase *db, bool *recheck);
extern void EsTickerRecheck(Oid dboid);

/* for commands that need a database to themselves */
extern bool EsStopTicker(Oid dboid);
extern void EsAwaitTickerExit(Oid dboid);
extern void EsResumeTicker(Oid dboid);

#endif							/* ES_LAUNCHER_H */
