/*-------------------------------------------------------------------------
 *
 * guc.h
 *		Configuration parameters of eventstore.
 *
 * src/guc.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ES_GUC_H
#define ES_GUC_H

extern int	es_max_append_events;
extern int	es_max_event_size_kb;
extern int	es_max_databases;
extern int	es_commit_history;
extern int	es_tick_interval_ms;
extern int	es_tick_retention_s;
extern int	es_tick_keep;

extern void EsGucInit(void);

#endif							/* ES_GUC_H */
