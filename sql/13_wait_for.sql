--
-- wait_for: the head as soon as it is above a position, or at the timeout.
-- (Waking on a commit of another session, and on a hot standby, is tested
-- in test/t/010_wait_for.pl.)
--
SELECT count(*) FROM eventstore.append('wait-1', ARRAY[eventstore.event('W', '{}')]);
SELECT eventstore.head() AS head \gset
-- above already: at once, the head
SELECT eventstore.wait_for(:head - 1, '10 seconds') = :head AS at_once;
SELECT eventstore.wait_for(0) = :head AS at_once_default_timeout;
-- nothing comes: at the timeout, the head as it is
SELECT clock_timestamp() AS t0 \gset
SELECT eventstore.wait_for(:head, '200 milliseconds') = :head AS timed_out;
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '200 milliseconds' AS waited,
	   clock_timestamp() - :'t0'::timestamptz < interval '5 seconds' AS not_too_long;
SELECT eventstore.wait_for(:head, '0') = :head AS no_wait;
-- cancellable: a statement timeout ends the wait
SET statement_timeout = '100ms';
SELECT eventstore.wait_for(:head, '1 minute');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
-- bad arguments
SELECT eventstore.wait_for(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.wait_for(0, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.wait_for(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.wait_for(0, '-1 second');
\echo :LAST_ERROR_SQLSTATE
-- readers may call it
CREATE ROLE es_regress_waiter IN ROLE eventstore_reader;
SET ROLE es_regress_waiter;
SELECT eventstore.wait_for(:head - 1) = :head AS reader_may_wait;
RESET ROLE;
DROP ROLE es_regress_waiter;

-- poll and group_poll with wait: nothing new, they wait that long and
-- return nothing; something there, at once
SELECT eventstore.create_subscription('waiting', start_from => 'head') = eventstore.head() AS at_head;
SELECT eventstore.create_subscription('waiting_group', start_from => 'head',
									  consumer_group => true) = eventstore.head() AS at_head;
SELECT count(*) > 0 AS joined FROM eventstore.group_join('waiting_group', 'w1');
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM eventstore.poll('waiting', wait => '300 milliseconds');
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '300 milliseconds' AS waited;
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM eventstore.group_poll('waiting_group', 'w1', wait => '300 milliseconds');
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '300 milliseconds' AS waited;
SELECT count(*) FROM eventstore.append('wait-2', ARRAY[eventstore.event('W', '{}')]);
SELECT clock_timestamp() AS t0 \gset
SELECT stream_id FROM eventstore.poll('waiting', wait => '1 minute');
SELECT stream_id FROM eventstore.group_poll('waiting_group', 'w1', wait => '1 minute');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '30 seconds' AS at_once;
-- in REPEATABLE READ they do not wait (the transaction's head does not move)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM eventstore.poll('waiting', after_position => eventstore.head(), wait => '1 minute');
SELECT clock_timestamp() - :'t0'::timestamptz < interval '30 seconds' AS did_not_wait;
COMMIT;
SELECT * FROM eventstore.poll('waiting', wait => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM eventstore.group_poll('waiting_group', 'w1', wait => '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT eventstore.group_leave('waiting_group', 'w1');
SELECT eventstore.drop_subscription('waiting'), eventstore.drop_subscription('waiting_group');

-- wait_for_head, the procedure (holding no snapshot while it waits is
-- tested in test/t/010_wait_for.pl): the head at once, or at the timeout
SELECT eventstore.head() AS head \gset
CALL eventstore.wait_for_head(:head - 1) \gset w_
SELECT :w_head = :head AS at_once;
SELECT clock_timestamp() AS t0 \gset
CALL eventstore.wait_for_head(:head, '200 milliseconds') \gset w_
SELECT :w_head = :head AS timed_out,
	   clock_timestamp() - :'t0'::timestamptz >= interval '200 milliseconds' AS waited;
-- on its own it commits the CALL's transaction first; in a transaction
-- block it cannot, and waits as wait_for does, the block going on after it
BEGIN;
CREATE TEMP TABLE kept_by_the_block (x int);
CALL eventstore.wait_for_head(:head, '10 milliseconds') \gset w_
INSERT INTO kept_by_the_block VALUES (1);
ROLLBACK;
SELECT to_regclass('kept_by_the_block') IS NULL AS rolled_back;
-- called from a procedure (not in a block), it commits the caller's work
CREATE TABLE waited_rows (x int);
CREATE PROCEDURE wait_then_roll_back() LANGUAGE plpgsql AS $$
DECLARE
	head bigint;
BEGIN
	INSERT INTO waited_rows VALUES (1);
	CALL eventstore.wait_for_head(0, '0', head);
	INSERT INTO waited_rows VALUES (2);
	ROLLBACK;
END
$$;
CALL wait_then_roll_back();
SELECT array_agg(x) AS committed_by_the_wait FROM waited_rows;
DROP PROCEDURE wait_then_roll_back();
DROP TABLE waited_rows;
CALL eventstore.wait_for_head(NULL);
\echo :LAST_ERROR_SQLSTATE
CALL eventstore.wait_for_head(-1);
\echo :LAST_ERROR_SQLSTATE
CALL eventstore.wait_for_head(0, '-1 second');
\echo :LAST_ERROR_SQLSTATE
SET statement_timeout = '100ms';
CALL eventstore.wait_for_head(:head, '1 minute');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
