--
-- Dead letters: nack parks an event and moves the checkpoint on to it; it
-- comes back (first, at the next poll) after retry_after, until
-- max_attempts attempts have failed; an ack that covers it settles it;
-- admins replay or drop parked ones.
--
SELECT eventstore.create_subscription('dl', 'head', max_attempts => 3) = eventstore.head() AS created;
SELECT count(*) FROM eventstore.append('dl-1', ARRAY[
	eventstore.event('A', '{"n": 1}'), eventstore.event('A', '{"n": 2}'),
	eventstore.event('A', '{"n": 3}'), eventstore.event('B', '{"n": 4}'),
	eventstore.event('A', '{"n": 5}')]);
-- positions as numbers of the stream's events: pos(n) is the nth's
SELECT min(insert_order) - 1 AS base FROM eventstore.events WHERE stream_id = 'dl-1' \gset
CREATE TABLE dl_base AS SELECT :base::bigint AS base;
CREATE FUNCTION pos(n int) RETURNS bigint LANGUAGE sql
AS $$ SELECT base + n FROM dl_base $$;
CREATE FUNCTION dl_poll(sub text, max_count int DEFAULT 1000)
RETURNS TABLE (n bigint, data jsonb) LANGUAGE sql
AS $$ SELECT p.insert_order - b.base, p.data FROM eventstore.poll(sub, max_count) p, dl_base b $$;
GRANT SELECT ON dl_base TO PUBLIC;
-- an error's SQLSTATE and message, positions shown as pos(n)
CREATE FUNCTION dl_error(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text;
	m text[];
BEGIN
	EXECUTE query;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	msg := SQLERRM;
	FOR m IN SELECT regexp_matches(SQLERRM, 'position (\d+)', 'g') LOOP
		msg := replace(msg, 'position ' || m[1],
					   format('position pos(%s)', m[1]::bigint - (SELECT base FROM dl_base)));
	END LOOP;
	RETURN SQLSTATE || ': ' || msg;
END
$$;
CREATE VIEW dl_state AS
	SELECT subscription, insert_order - :base AS n, state, attempts, reason
	  FROM eventstore.dead_letter_events ORDER BY subscription, insert_order;

SELECT * FROM dl_poll('dl');
-- the second fails: parked, to come back at once; the checkpoint moves on
SELECT eventstore.nack('dl', pos(2), 'boom', '0 seconds');
SELECT checkpoint - :base AS checkpoint FROM eventstore.subscriptions WHERE name = 'dl';
SELECT * FROM dl_state;
-- the others are processed: the ack does not settle what was not redelivered
SELECT eventstore.ack('dl', pos(5));
SELECT * FROM dl_state;
-- it comes back, alone; fails twice more: then it stays parked
SELECT * FROM dl_poll('dl');
SELECT * FROM dl_state;
SELECT eventstore.nack('dl', pos(2), 'boom again', '0 seconds');
SELECT * FROM dl_poll('dl');
SELECT eventstore.nack('dl', pos(2), 'third time', '0 seconds');
SELECT * FROM dl_state;
SELECT * FROM dl_poll('dl');
-- an admin replays it: due now, attempts counted afresh; an ack settles it
SELECT eventstore.replay_dead_letters('dl');
SELECT * FROM dl_state;
SELECT * FROM dl_poll('dl');
SELECT eventstore.ack('dl', pos(2));
SELECT * FROM dl_state;
-- without retry_after: parked at once
SELECT eventstore.nack('dl', pos(3), 'poison', NULL);
SELECT * FROM dl_poll('dl');
SELECT * FROM dl_state;
-- later: waiting, not delivered yet
SELECT eventstore.nack('dl', pos(4), 'later', '1 hour');
SELECT * FROM dl_state;
SELECT * FROM dl_poll('dl');
-- a consumer that dies between poll and ack gets it again
SELECT eventstore.replay_dead_letters('dl', ARRAY[pos(4)]);
SELECT * FROM dl_poll('dl');
SELECT * FROM dl_state;
SELECT * FROM dl_poll('dl');
-- new events after the due ones, within max_count
SELECT count(*) FROM eventstore.append('dl-1', ARRAY[eventstore.event('A', '{"n": 6}'),
													  eventstore.event('A', '{"n": 7}')]);
SELECT eventstore.replay_dead_letters('dl');
SELECT * FROM dl_poll('dl', 1);
SELECT * FROM dl_poll('dl', 2);
SELECT * FROM dl_poll('dl', 10);
SELECT eventstore.ack('dl', pos(7));
SELECT * FROM dl_state;
-- dropped: never delivered again
SELECT eventstore.drop_dead_letters('dl', ARRAY[pos(1)]);
SELECT eventstore.nack('dl', pos(1), 'x', NULL);
SELECT eventstore.drop_dead_letters('dl', ARRAY[pos(1)]);
SELECT * FROM dl_state;

-- bad calls
SELECT eventstore.nack('dl', NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.nack('dl', 0, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT dl_error($$SELECT eventstore.nack('dl', pos(1000), 'x')$$);
SELECT eventstore.nack('dl', pos(1), 'x', '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.nack('dl', pos(1), repeat('x', 8193));
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.nack('nope', pos(1), 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('dl-only-b', event_types => ARRAY['B']);
SELECT dl_error($$SELECT eventstore.nack('dl-only-b', pos(1), 'not one of mine')$$);
SELECT eventstore.create_subscription('dl-bad', max_attempts => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.create_subscription('dl-bad', max_attempts => NULL);
\echo :LAST_ERROR_SQLSTATE
BEGIN READ ONLY;
SELECT eventstore.nack('dl', pos(1), 'x');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a read-only poll does not redeliver (it could not mark them)
SELECT eventstore.nack('dl', pos(5), 'again', '0 seconds');
BEGIN READ ONLY;
SELECT * FROM dl_poll('dl');
ROLLBACK;
SELECT * FROM dl_poll('dl');
SELECT eventstore.ack('dl', pos(7));

-- consumer groups: group_nack in the member's partitions, group_poll
-- redelivers first, group_ack settles
SELECT eventstore.create_subscription('dlg', consumer_group => true, start_position => :base) = :base
	AS created;
SELECT count(*) FROM eventstore.group_join('dlg', 'm1');
SELECT count(*) FROM eventstore.group_poll('dlg', 'm1');
SELECT eventstore.group_nack('dlg', 'm1', pos(3), 'group boom', '0 seconds');
SELECT eventstore.group_nack('dlg', 'm2', pos(3), 'not a member');
\echo :LAST_ERROR_SQLSTATE
-- a member that holds other partitions (here: none yet)
SELECT count(*) FROM eventstore.group_join('dlg', 'm2');
SELECT dl_error($$SELECT eventstore.group_nack('dlg', 'm2', pos(3), 'not my partition')$$);
SELECT eventstore.group_ack('dlg', 'm1', pos(7));
SELECT * FROM dl_state WHERE subscription = 'dlg';
SELECT p.insert_order - :base AS n FROM eventstore.group_poll('dlg', 'm1') p;
SELECT eventstore.group_ack('dlg', 'm1', pos(3));
SELECT * FROM dl_state WHERE subscription = 'dlg';
SELECT eventstore.nack('dlg', pos(3), 'plain nack of a group');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_nack('dl', 'm1', pos(3), 'group nack of a plain one');
\echo :LAST_ERROR_SQLSTATE

-- a member that takes a partition over does not settle what was
-- redelivered to the member before it: it gets it at its first poll there
SELECT eventstore.create_subscription('dlt', consumer_group => true, start_position => :base)
	= :base AS created;
SELECT count(*) FROM eventstore.group_join('dlt', 'a', '1 second');
SELECT count(*) FROM eventstore.group_poll('dlt', 'a');
SELECT eventstore.group_nack('dlt', 'a', pos(2), 'a fails', '0 seconds');
SELECT array_agg(p.insert_order - :base) AS redelivered_to_a
  FROM eventstore.group_poll('dlt', 'a', 1) p;
-- a dies: its lease runs out, b takes every partition and acks at once
SELECT pg_sleep(1.2);
SELECT count(*) FROM eventstore.group_join('dlt', 'b');
SELECT eventstore.group_ack('dlt', 'b', pos(7));
SELECT * FROM dl_state WHERE subscription = 'dlt';
SELECT array_agg(p.insert_order - :base) AS redelivered_to_b
  FROM eventstore.group_poll('dlt', 'b', 1) p;
SELECT eventstore.group_ack('dlt', 'b', pos(2));
SELECT * FROM dl_state WHERE subscription = 'dlt';

-- more bad calls
SELECT eventstore.nack('dl', pos(1), 'x', '1000000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.replay_dead_letters('dl', '{{1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.drop_dead_letters('dl', ARRAY[NULL]::bigint[]);
\echo :LAST_ERROR_SQLSTATE

-- a subscription's name is compared under the database's collation, not
-- one the caller attaches to the argument
CREATE COLLATION dl_case_insensitive (provider = icu, locale = 'und-u-ks-level2',
									  deterministic = false);
SELECT eventstore.create_subscription('dl-lower', start_from => 'head') IS NOT NULL AS created;
SELECT count(*) FROM eventstore.poll('DL-LOWER' COLLATE dl_case_insensitive);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.nack('DL-LOWER' COLLATE dl_case_insensitive, pos(1), 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.drop_subscription('dl-lower');
DROP COLLATION dl_case_insensitive;

-- who may: the owner's roles nack, admins replay and drop
CREATE ROLE dl_reader LOGIN IN ROLE eventstore_reader;
CREATE ROLE dl_other LOGIN IN ROLE eventstore_reader;
SELECT eventstore.create_subscription('dl-owned', owner => 'dl_reader');
SET ROLE dl_reader;
SELECT eventstore.nack('dl-owned', pos(1), 'mine');
SELECT count(*) FROM eventstore.dead_letter_events WHERE subscription = 'dl-owned';
SELECT eventstore.replay_dead_letters('dl-owned');
\echo :LAST_ERROR_SQLSTATE
SET ROLE dl_other;
SELECT eventstore.nack('dl-owned', pos(1), 'not mine');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT eventstore.drop_dead_letters('dl-owned');
-- dropping the subscription drops its dead letters
SELECT eventstore.nack('dl-owned', pos(1), 'mine');
SELECT eventstore.drop_subscription('dl-owned');
SELECT count(*) FROM eventstore.dead_letters WHERE subscription = 'dl-owned';
DROP ROLE dl_reader;
DROP ROLE dl_other;
SELECT eventstore.drop_subscription(name) FROM eventstore.subscriptions
 WHERE name LIKE 'dl%' ORDER BY name;
DROP VIEW dl_state;
DROP FUNCTION dl_poll(text, int);
DROP FUNCTION pos(int);
DROP FUNCTION dl_error(text);
DROP TABLE dl_base;
