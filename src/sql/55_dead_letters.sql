/*
 * Dead letters: events a subscription's consumer could not process.
 *
 * nack (group_nack in a consumer group) parks an event: it counts the
 * attempt, keeps the reason, and moves the checkpoint on to the event, so
 * that the consumer goes on with the events after it.  With retry_after
 * the event comes back once that much time has passed, as long as fewer
 * than the subscription's max_attempts attempts have failed; otherwise it
 * stays parked until an admin replays it (replay_dead_letters) or drops
 * it (drop_dead_letters).
 *
 * Redelivery: poll (group_poll: for the member's partitions) returns the
 * due dead letters first, at most max_count of them, then the events
 * after the checkpoint.  Each one returned is marked as delivered by the
 * poll's transaction (delivered_xid), and the subscription (a group: each
 * of the member's partitions, polled_xid) records that transaction as its
 * last poll.  An ack (group_ack) settles the dead letters at or below its
 * position that the last poll delivered: the dead letter is gone; a nack
 * instead counts another attempt.  So an ack settles only what its own
 * consumer was given: a consumer that dies between the poll and the ack
 * gets it again at its next poll, and a member that takes a partition
 * over gets it at its first poll there.  Only a read-write poll on the
 * primary redelivers (it writes the marks).  A redelivered event comes after events
 * that follow it in the log, of its own stream too: a consumer that needs
 * stream order must not nack (or must hold the stream back itself).
 */
CREATE TABLE eventstore.dead_letters (
	subscription	text NOT NULL
		REFERENCES eventstore.subscriptions (name) ON DELETE CASCADE,
	insert_order	bigint NOT NULL,
	bucket			integer NOT NULL,
	stream_id		text NOT NULL,
	event_id		uuid NOT NULL,
	event_type		text NOT NULL,
	attempts		integer NOT NULL CHECK (attempts >= 0),
	reason			text,
	first_failed_at timestamptz NOT NULL,
	failed_at		timestamptz NOT NULL,
	retry_at		timestamptz,
	delivered_at	timestamptz,
	delivered_xid	xid8,
	PRIMARY KEY (subscription, insert_order)
);
COMMENT ON TABLE eventstore.dead_letters IS
'events consumers gave back (nack): attempts, reason, when they come back (retry_at; NULL: parked until replayed)';
SELECT pg_catalog.pg_extension_config_dump('eventstore.dead_letters', '');
/*
 * Every read-write poll asks for the subscription's due dead letters: by
 * this index it reads those only, however many others stay parked
 * (retry_at NULL) or wait.
 */
CREATE INDEX dead_letters_due ON eventstore.dead_letters (subscription, retry_at);

/*
 * Dead letters with their state, for people.  The event itself: join
 * eventstore.events on bucket and insert_order (the view does not, so that
 * it holds no dependency on the log's columns).
 */
CREATE VIEW eventstore.dead_letter_events AS
	SELECT d.subscription,
		   d.insert_order,
		   d.stream_id,
		   d.event_type,
		   d.event_id,
		   CASE WHEN d.retry_at IS NULL THEN 'parked'
				WHEN d.delivered_at IS NOT NULL THEN 'delivered'
				WHEN d.retry_at <= pg_catalog.clock_timestamp() THEN 'due'
				ELSE 'waiting' END AS state,
		   d.attempts,
		   d.reason,
		   d.first_failed_at,
		   d.failed_at,
		   d.retry_at,
		   d.delivered_at
	  FROM eventstore.dead_letters d;
COMMENT ON VIEW eventstore.dead_letter_events IS
'every dead letter with its state (parked, waiting, due, delivered), attempts and reason';

/*
 * The event at event_position, checked for a nack of subscription s (checked
 * and authorized by the caller) with reason and retry_after: 22004 a null
 * position; 22023 unless it is an event of the subscription up to the
 * head, a negative or over-long retry_after, a reason over 8192 bytes.
 */
CREATE FUNCTION eventstore.dead_letter_event(
	s eventstore.subscriptions, event_position bigint, reason text, retry_after interval)
RETURNS eventstore.events
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	e eventstore.events;
BEGIN
	IF event_position IS NULL THEN
		RAISE EXCEPTION 'event_position must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF event_position < 1 THEN
		RAISE EXCEPTION 'event_position must be the position of an event (1 or more)'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF retry_after < interval '0' OR retry_after > interval '100 years' THEN
		RAISE EXCEPTION 'retry_after must be between 0 and 100 years'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF octet_length(reason) > 8192 THEN
		RAISE EXCEPTION 'reason must have at most 8192 bytes' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF event_position > eventstore.head() THEN
		RAISE EXCEPTION 'cannot give back position % above the head of the feed', event_position
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT * INTO e FROM eventstore.events x WHERE x.insert_order = event_position;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'no event at position %', event_position
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT eventstore.subscription_matches(s.event_types, s.stream_prefix, s.partition_keys,
										   e.event_type, e.stream_id, e.partition_key) THEN
		RAISE EXCEPTION 'the event at position % does not pass the filter of subscription "%"',
			event_position, s.name
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN e;
END
$$;
COMMENT ON FUNCTION eventstore.dead_letter_event(eventstore.subscriptions, bigint, text, interval) IS
'internal: the event a nack gives back, checked';

/*
 * Park event e (checked by dead_letter_event) for subscription s, counting
 * the attempt.  Returns 'retry' (it comes back at retry_at) or 'parked'.
 */
CREATE FUNCTION eventstore.dead_letter_park(
	s eventstore.subscriptions, e eventstore.events, reason text, retry_after interval)
RETURNS text
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	state text;
BEGIN
	INSERT INTO eventstore.dead_letters AS d
		(subscription, insert_order, bucket, stream_id, event_id, event_type,
		 attempts, reason, first_failed_at, failed_at, retry_at)
	VALUES (s.name, e.insert_order, e.bucket, e.stream_id, e.event_id, e.event_type,
			1, reason, clock_timestamp(), clock_timestamp(),
			CASE WHEN retry_after IS NOT NULL AND s.max_attempts > 1
				 THEN clock_timestamp() + retry_after END)
	ON CONFLICT (subscription, insert_order) DO UPDATE
	   SET attempts = d.attempts + 1,
		   reason = excluded.reason,
		   failed_at = excluded.failed_at,
		   delivered_at = NULL,
		   delivered_xid = NULL,
		   retry_at = CASE WHEN retry_after IS NOT NULL AND d.attempts + 1 < s.max_attempts
						   THEN clock_timestamp() + retry_after END
	RETURNING CASE WHEN d.retry_at IS NULL THEN 'parked' ELSE 'retry' END INTO state;
	RETURN state;
END
$$;
COMMENT ON FUNCTION eventstore.dead_letter_park(eventstore.subscriptions, eventstore.events, text, interval) IS
'internal: parks an event of a subscription, counting the attempt; returns retry or parked';

/*
 * The due dead letters of a subscription (in the bucket ranges given; NULL:
 * all), at most max_count, oldest position first, marked as delivered by
 * this transaction.  Rows another transaction holds are skipped.
 */
CREATE FUNCTION eventstore.dead_letter_redeliver(
	subscription text, max_count integer, first_buckets integer[], last_buckets integer[])
RETURNS SETOF eventstore.recorded_event
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY
	WITH due AS (
		UPDATE eventstore.dead_letters d
		   SET delivered_at = clock_timestamp(), delivered_xid = pg_current_xact_id()
		 WHERE d.subscription = dead_letter_redeliver.subscription
		   AND d.insert_order IN (
				SELECT x.insert_order FROM eventstore.dead_letters x
				 WHERE x.subscription = dead_letter_redeliver.subscription
				   AND x.retry_at <= statement_timestamp()
				   AND (first_buckets IS NULL
						OR EXISTS (SELECT FROM unnest(first_buckets, last_buckets) r(f, l)
									WHERE x.bucket BETWEEN r.f AND r.l))
				 ORDER BY x.insert_order
				 LIMIT max_count
				   FOR UPDATE SKIP LOCKED)
		RETURNING d.bucket, d.insert_order)
	SELECT e.insert_order, e.stream_id, e.stream_order, e.event_id, e.event_type,
		   e.schema_version, e.data, e.metadata, e.recorded_at, e.partition_key
	  FROM due JOIN eventstore.events e ON e.bucket = due.bucket AND e.insert_order = due.insert_order
	 ORDER BY e.insert_order;
END
$$;
COMMENT ON FUNCTION eventstore.dead_letter_redeliver(text, integer, integer[], integer[]) IS
'internal: the due dead letters of a subscription, marked as delivered, for poll and group_poll';

/*
 * An ack up to up_to settles the dead letters at or below it that the
 * consumer's last poll delivered: per bucket range (NULL bounds: every
 * bucket), the transaction of that poll.  Rows another transaction holds
 * are left for a later ack.  Returns how many.
 */
CREATE FUNCTION eventstore.dead_letter_settle(
	subscription text, up_to bigint, first_buckets integer[], last_buckets integer[],
	delivered_xids xid8[])
RETURNS integer
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer;
BEGIN
	DELETE FROM eventstore.dead_letters d
	 WHERE d.subscription = dead_letter_settle.subscription
	   AND d.insert_order IN (
			SELECT x.insert_order
			  FROM eventstore.dead_letters x,
				   unnest(first_buckets, last_buckets, delivered_xids) r(f, l, xid)
			 WHERE x.subscription = dead_letter_settle.subscription
			   AND x.insert_order <= up_to
			   AND x.delivered_xid = r.xid
			   AND (r.f IS NULL OR x.bucket BETWEEN r.f AND r.l)
			   FOR UPDATE OF x SKIP LOCKED);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION eventstore.dead_letter_settle(text, bigint, integer[], integer[], xid8[]) IS
'internal: an acknowledgement settles the dead letters its consumer''s last poll delivered';

CREATE FUNCTION eventstore.nack(
	subscription text, event_position bigint, reason text, retry_after interval DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.nack(text, bigint, text, interval) IS
'gives back an event the consumer could not process: parks it (it comes back after retry_after, up to max_attempts) and moves the checkpoint on to it; returns retry or parked';

CREATE FUNCTION eventstore.nack_internal(
	subscription text, event_position bigint, reason text, retry_after interval, caller regrole)
RETURNS text
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	state text;
BEGIN
	s := eventstore.subscription_row(subscription, false, false, 'nack', caller);
	state := eventstore.dead_letter_park(s,
		eventstore.dead_letter_event(s, event_position, reason, retry_after),
		reason, retry_after);
	UPDATE eventstore.subscriptions x SET checkpoint = event_position, acked_at = now()
	 WHERE x.name = s.name AND x.checkpoint < event_position;
	RETURN state;
END
$$;
COMMENT ON FUNCTION eventstore.nack_internal(text, bigint, text, interval, regrole) IS
'internal: nack, called through the gate';

CREATE FUNCTION eventstore.group_nack(
	subscription text, member text, event_position bigint, reason text,
	retry_after interval DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.group_nack(text, text, bigint, text, interval) IS
'nack for a consumer group member: the event must be in a partition the member holds, whose checkpoint moves on to it (no further than its last poll covered)';

CREATE FUNCTION eventstore.group_nack_internal(
	subscription text, member text, event_position bigint, reason text, retry_after interval,
	caller regrole)
RETURNS text
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	e eventstore.events;
	part integer;
	state text;
BEGIN
	s := eventstore.subscription_row(subscription, true, false, 'group_nack', caller);
	PERFORM eventstore.group_member_check(s.name, member);
	e := eventstore.dead_letter_event(s, event_position, reason, retry_after);
	/*
	 * The partition of the event, if the member holds it and no other
	 * transaction does (as group_ack), before anything is written: a
	 * partition in another member's poll is not waited for.
	 */
	SELECT p.partition INTO part
	  FROM eventstore.subscription_partitions p
	 WHERE p.subscription = s.name AND p.member = group_nack_internal.member
	   AND e.bucket BETWEEN p.first_bucket AND p.last_bucket
	   FOR NO KEY UPDATE SKIP LOCKED;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'member "%" of group "%" does not hold the partition of position %',
			member, s.name, event_position
			USING ERRCODE = 'ES004',
				  DETAIL = 'Another member holds it, or another transaction of this member does.',
				  HINT = 'Give back only events of the partitions the member polled, in the transaction of its poll or after it.';
	END IF;
	state := eventstore.dead_letter_park(s, e, reason, retry_after);
	UPDATE eventstore.subscription_partitions p
	   SET checkpoint = group_nack_internal.event_position, acked_at = now()
	 WHERE p.subscription = s.name AND p.partition = part
	   AND p.checkpoint < group_nack_internal.event_position
	   AND group_nack_internal.event_position <= p.polled_to;
	RETURN state;
END
$$;
COMMENT ON FUNCTION eventstore.group_nack_internal(text, text, bigint, text, interval, regrole) IS
'internal: group_nack, called through the gate';

/* positions of replay_dead_letters and drop_dead_letters: 22023 unless NULL
 * or a one-dimensional array without nulls. */
CREATE FUNCTION eventstore.dead_letter_positions_check(positions bigint[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- the dimensions before array_position(), which refuses more than one
	IF array_ndims(positions) > 1 THEN
		RAISE EXCEPTION 'positions must be a one-dimensional array without nulls'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF array_position(positions, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'positions must be a one-dimensional array without nulls'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
END
$$;
COMMENT ON FUNCTION eventstore.dead_letter_positions_check(bigint[]) IS
'internal: raises 22023 unless positions is NULL or a flat list without nulls';

/*
 * Admins: make parked (or waiting) dead letters due at once, with their
 * attempts counted afresh; or drop them.  positions NULL: all of the
 * subscription's.
 */
CREATE FUNCTION eventstore.replay_dead_letters(subscription text, positions bigint[] DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.replay_dead_letters(text, bigint[]) IS
'makes a subscription''s dead letters (those at positions; NULL: all) due now, attempts counted afresh; returns how many';

CREATE FUNCTION eventstore.replay_dead_letters_internal(
	subscription text, positions bigint[], caller regrole)
RETURNS integer
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	n integer;
BEGIN
	s := eventstore.subscription_row(subscription, NULL, false, 'replay_dead_letters', caller);
	PERFORM eventstore.dead_letter_positions_check(positions);
	UPDATE eventstore.dead_letters d
	   SET retry_at = clock_timestamp(), attempts = 0, delivered_at = NULL,
		   delivered_xid = NULL
	 WHERE d.subscription = s.name
	   AND (positions IS NULL OR d.insert_order = ANY (positions));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION eventstore.replay_dead_letters_internal(text, bigint[], regrole) IS
'internal: replay_dead_letters, called through the gate';

CREATE FUNCTION eventstore.drop_dead_letters(subscription text, positions bigint[] DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.drop_dead_letters(text, bigint[]) IS
'drops a subscription''s dead letters (those at positions; NULL: all): they are not delivered again; returns how many';

CREATE FUNCTION eventstore.drop_dead_letters_internal(
	subscription text, positions bigint[], caller regrole)
RETURNS integer
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	n integer;
BEGIN
	s := eventstore.subscription_row(subscription, NULL, false, 'drop_dead_letters', caller);
	PERFORM eventstore.dead_letter_positions_check(positions);
	DELETE FROM eventstore.dead_letters d
	 WHERE d.subscription = s.name
	   AND (positions IS NULL OR d.insert_order = ANY (positions));
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION eventstore.drop_dead_letters_internal(text, bigint[], regrole) IS
'internal: drop_dead_letters, called through the gate';
