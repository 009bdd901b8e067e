--
-- eventstore.stats: the database's counters.  Appends count when they
-- commit (a rolled-back transaction or subtransaction counts as
-- rolled_back), conflicts as they happen.  Ticks come from the ticker,
-- asynchronously: only their growth is checked; no waiter is woken here.
--
SELECT eventstore.reset_stats();
SELECT appends, events, duplicates, bytes, rolled_back, conflicts, waits,
	   wait_timeouts, stats_reset <= now() AS reset_before_now
  FROM eventstore.stats;
-- committed: two events; then one new and one duplicate
SELECT count(*) FROM eventstore.append('stats-1',
	'[{"type": "A", "data": {"n": 1}, "id": "00000000-0000-0000-0000-0000000000a1"},
	  {"type": "A", "data": {"n": 2}}]'::jsonb);
SELECT count(*) FROM eventstore.append('stats-1',
	'[{"type": "A", "data": {"n": 1}, "id": "00000000-0000-0000-0000-0000000000a1"},
	  {"type": "A", "data": {"n": 3}, "metadata": {"m": true}}]'::jsonb);
-- bytes: the data and metadata as jsonb values, before any compression
SELECT s.bytes = (SELECT sum(pg_column_size(e.data::text::jsonb) +
							 coalesce(pg_column_size(e.metadata::text::jsonb), 0))
					FROM eventstore.events e WHERE e.stream_id = 'stats-1') AS bytes_match
  FROM eventstore.stats s;
SELECT appends, events, duplicates, rolled_back, conflicts FROM eventstore.stats;
-- rolled back: a transaction, and a subtransaction whose parent commits
BEGIN;
SELECT count(*) FROM eventstore.append('stats-2', ARRAY[eventstore.event('A', '{}'),
														eventstore.event('A', '{}')]);
ROLLBACK;
BEGIN;
SAVEPOINT sp;
SELECT count(*) FROM eventstore.append('stats-3', ARRAY[eventstore.event('A', '{}')]);
ROLLBACK TO SAVEPOINT sp;
SAVEPOINT sp2;
SELECT count(*) FROM eventstore.append('stats-4', ARRAY[eventstore.event('A', '{}')]);
RELEASE SAVEPOINT sp2;
COMMIT;
SELECT appends, events, duplicates, rolled_back, conflicts FROM eventstore.stats;
-- conflicts: raised, returned, and one per stream of a multi-stream call
SELECT count(*) FROM eventstore.append('stats-1', ARRAY[eventstore.event('A', '{}')], 1);
SELECT outcome FROM eventstore.try_append('stats-1', ARRAY[eventstore.event('A', '{}')], 0);
SELECT count(*) FROM eventstore.append_multi(
	'[{"stream_id": "stats-1", "expected_version": 1},
	  {"stream_id": "stats-4", "expected_version": 5},
	  {"stream_id": "stats-5", "events": [{"type": "A", "data": {}}]}]');
SELECT DISTINCT outcome FROM eventstore.try_append_multi(
	'[{"stream_id": "stats-1", "expected_version": 3},
	  {"stream_id": "stats-5", "events": [{"type": "A", "data": {}}]}]');
SELECT appends, events, duplicates, rolled_back, conflicts FROM eventstore.stats;
-- a transaction that appends and then fails counts its events as rolled back
SELECT count(*), 1 / (count(*) - count(*)) FROM eventstore.try_append_multi(
	'[{"stream_id": "stats-6", "events": [{"type": "A", "data": {}}]}]');
-- waits, and the head
SELECT eventstore.wait_for(0, '0') > 0 AS waited;
SELECT eventstore.wait_for(eventstore.head(), '10 milliseconds') > 0 AS timed_out;
SELECT appends, events, rolled_back, waits, wait_timeouts,
	   head = eventstore.head() AS head_is_head
  FROM eventstore.stats;
-- the ticker recorded the head (waking waiters is counted in
-- test/t/010_wait_for.pl)
SELECT eventstore.append('stats-7', ARRAY[eventstore.event('A', '{}')]) IS NOT NULL AS appended;
DO $$
BEGIN
	FOR i IN 1..500 LOOP
		EXIT WHEN (SELECT t.head FROM eventstore.ticks t ORDER BY t.tick_id DESC LIMIT 1)
			  = eventstore.head();
		PERFORM pg_sleep(0.01);
	END LOOP;
END
$$;
SELECT ticks > 0 AS ticked, wakeups AS no_waiter_woken FROM eventstore.stats;
-- reset
SELECT stats_reset AS before_reset FROM eventstore.stats \gset
SELECT eventstore.reset_stats();
SELECT appends, events, conflicts, waits, stats_reset > :'before_reset' AS reset_later
  FROM eventstore.stats;
-- who may see and reset them: monitors see the counters, not the events
CREATE ROLE stats_monitor LOGIN IN ROLE eventstore_monitor;
CREATE ROLE stats_reader LOGIN IN ROLE eventstore_reader;
SET ROLE stats_monitor;
SELECT appends >= 0 AS monitor_sees FROM eventstore.stats;
SELECT count(*) FROM eventstore.events;
SELECT eventstore.reset_stats();
SET ROLE stats_reader;
SELECT appends >= 0 AS reader_sees FROM eventstore.stats;
SELECT eventstore.reset_stats();
RESET ROLE;
DROP ROLE stats_monitor;
DROP ROLE stats_reader;
