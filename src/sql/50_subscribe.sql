/*
 * Following the log: ticks, durable subscriptions, consumer groups, signals.
 */

/*
 * Ticks, written by the database's ticker (src/ticker.c) whenever the head
 * moves: a tick commits after every event at or below its head.  On a hot
 * standby, eventstore.head() is the head of the newest tick.  ticked_at is
 * read when the row is inserted, after the head was computed (not at the
 * start of the ticker's transaction, which precedes it): every event at or
 * below the head was visible by then, as create_subscription's start_time
 * assumes.
 */
CREATE TABLE eventstore.ticks (
	tick_id		bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	head		bigint NOT NULL,
	ticked_at	timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
/*
 * Ticks are not dumped: they describe the server that wrote them, and a
 * restored store gets its own from its ticker.
 */
COMMENT ON TABLE eventstore.ticks IS
'the head of the feed over time, one row per advance (at most one per eventstore.tick_interval)';

/*
 * A subscription is a named reader of the feed with a durable checkpoint:
 * every event at or below it has been processed.  A plain subscription has
 * one checkpoint; a consumer group's has one per partition of the log, held
 * in subscription_partitions, and its members lease partitions.  It belongs
 * to its owner role: only roles with that role's privileges, and members of
 * eventstore_admin, may use it (see src/gate.c).  The owner is a regrole so
 * that pg_dump writes the table with role names; nothing stops the role from
 * being dropped, which leaves the subscription to admins.
 */
CREATE TABLE eventstore.subscriptions (
	name			text PRIMARY KEY
		CHECK (name <> '' AND pg_catalog.octet_length(name) <= 200),
	owner			regrole NOT NULL,
	checkpoint		bigint NOT NULL CHECK (checkpoint >= 0),
	consumer_group	boolean NOT NULL,
	event_types		text[],
	stream_prefix	text,
	partition_keys	text[],
	paused			boolean NOT NULL DEFAULT false,
	created_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	acked_at		timestamptz,
	max_attempts	integer NOT NULL DEFAULT 5
		CHECK (max_attempts BETWEEN 1 AND 1000),
	redelivery_xid	xid8
);
COMMENT ON TABLE eventstore.subscriptions IS
'durable subscriptions: owner, checkpoint (plain ones), filter, paused, attempts before a dead letter stays parked, the last poll that redelivered dead letters';

CREATE TABLE eventstore.subscription_partitions (
	subscription	text NOT NULL
		REFERENCES eventstore.subscriptions (name) ON DELETE CASCADE,
	partition		integer NOT NULL,
	first_bucket	integer NOT NULL,
	last_bucket		integer NOT NULL,
	checkpoint		bigint NOT NULL CHECK (checkpoint >= 0),
	member			text,
	polled_to		bigint,
	polled_xid		xid8,
	acked_at		timestamptz,
	PRIMARY KEY (subscription, partition)
);
COMMENT ON TABLE eventstore.subscription_partitions IS
'per-partition checkpoints of consumer groups and the member that leases each partition';

CREATE TABLE eventstore.subscription_members (
	subscription	text NOT NULL
		REFERENCES eventstore.subscriptions (name) ON DELETE CASCADE,
	member			text NOT NULL
		CHECK (member <> '' AND pg_catalog.octet_length(member) <= 200),
	joined_at		timestamptz NOT NULL,
	lease_until		timestamptz NOT NULL,
	PRIMARY KEY (subscription, member)
);
COMMENT ON TABLE eventstore.subscription_members IS
'members of consumer groups; a member whose lease ran out is dead and loses its partitions';

SELECT pg_catalog.pg_extension_config_dump('eventstore.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.subscription_partitions', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.subscription_members', '');

/*
 * Whether an event passes a subscription's filter.  Inlined into the
 * queries below.
 */
CREATE FUNCTION eventstore.subscription_matches(
	event_types text[], stream_prefix text, partition_keys text[],
	event_type text, stream_id text, partition_key text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (event_types IS NULL OR event_type OPERATOR(pg_catalog.=) ANY (event_types))
	AND (stream_prefix IS NULL OR pg_catalog.starts_with(stream_id, stream_prefix))
	AND (partition_keys IS NULL OR partition_key OPERATOR(pg_catalog.=) ANY (partition_keys));
COMMENT ON FUNCTION eventstore.subscription_matches(text[], text, text[], text, text, text) IS
'whether an event passes a subscription filter (NULL parts match everything)';

/*
 * Who may use a subscription.  Every entry point below is a C function,
 * eventstore_subscription_gate (src/gate.c), that calls the function of
 * the same name with "_internal" appended, as the extension's owner, with
 * the calling role as its last argument.  The internal functions check
 * that role against the owner of the row they work on, here; they are
 * SECURITY INVOKER and granted to nobody.
 */
CREATE FUNCTION eventstore.subscription_authorize(name text, owner regrole, caller regrole)
RETURNS void
LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- the privileges of the owner (a member that inherits them, or the
	-- role itself; superusers have every role's), or of eventstore_admin
	IF NOT COALESCE(pg_has_role(caller::oid, owner::oid, 'USAGE')
					OR pg_has_role(caller::oid, 'eventstore_admin', 'USAGE'), false) THEN
		RAISE EXCEPTION 'permission denied for subscription "%"', name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The subscription belongs to role %s.', owner),
				  HINT = 'Only roles with the privileges of its owner and members of eventstore_admin may use it.';
	END IF;
END
$$;
COMMENT ON FUNCTION eventstore.subscription_authorize(text, regrole, regrole) IS
'internal: raises 42501 unless caller has the privileges of owner or of eventstore_admin';

CREATE FUNCTION eventstore.create_subscription(
	name text,
	start_from text DEFAULT 'beginning',
	start_position bigint DEFAULT NULL,
	start_time timestamptz DEFAULT NULL,
	event_types text[] DEFAULT NULL,
	stream_prefix text DEFAULT NULL,
	partition_keys text[] DEFAULT NULL,
	consumer_group boolean DEFAULT false,
	owner regrole DEFAULT NULL,
	max_attempts integer DEFAULT 5)
RETURNS bigint
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.create_subscription(text, text, bigint, timestamptz, text[], text, text[], boolean, regrole, integer) IS
'creates a durable subscription owned by owner (default: the calling role); returns its starting checkpoint';

CREATE FUNCTION eventstore.create_subscription_internal(
	name text, start_from text, start_position bigint, start_time timestamptz,
	event_types text[], stream_prefix text, partition_keys text[],
	consumer_group boolean, owner regrole, max_attempts integer, caller regrole)
RETURNS bigint
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	start bigint;
	nparts integer;
BEGIN
	IF name IS NULL OR start_from IS NULL OR consumer_group IS NULL OR max_attempts IS NULL THEN
		RAISE EXCEPTION 'name, start_from, consumer_group and max_attempts must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF max_attempts NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'max_attempts must be between 1 and 1000'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF name = '' OR octet_length(name) > 200 THEN
		RAISE EXCEPTION 'subscription name must have 1 to 200 bytes'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF owner::oid = 0 THEN
		RAISE EXCEPTION 'owner must be a role'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Leave owner NULL for the calling role.';
	END IF;
	IF start_position IS NOT NULL AND start_time IS NOT NULL THEN
		RAISE EXCEPTION 'give start_position or start_time, not both'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF start_position < 0 THEN
		RAISE EXCEPTION 'start_position must not be negative'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF start_position > eventstore.head() THEN
		RAISE EXCEPTION 'start_position is above the head of the feed'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Events that arrive later below it would never be delivered.';
	END IF;
	IF start_from NOT IN ('beginning', 'head') THEN
		RAISE EXCEPTION 'start_from must be ''beginning'' or ''head'', not "%"', start_from
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- before array_position(), which refuses them with 0A000
	IF array_ndims(event_types) > 1 OR array_ndims(partition_keys) > 1 THEN
		RAISE EXCEPTION 'event_types and partition_keys must be one-dimensional arrays'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF cardinality(event_types) = 0 OR cardinality(partition_keys) = 0
	   OR array_position(event_types, NULL) IS NOT NULL
	   OR array_position(partition_keys, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'event_types and partition_keys must be NULL (everything) or lists without NULLs'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	IF start_position IS NOT NULL THEN
		start := start_position;
	ELSIF start_time IS NOT NULL THEN
		/*
		 * Every event that became visible after start_time: the head of the
		 * newest tick at or before it.  Older than every tick kept: every
		 * event recorded at or after it.  A time still to come is refused:
		 * which events become visible after it is not known yet, and the
		 * head would deliver the ones that become visible before it.
		 */
		IF start_time > clock_timestamp() THEN
			RAISE EXCEPTION 'start_time is in the future'
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Start from the head (start_from => ''head'') to get what comes from now on.';
		END IF;
		SELECT t.head INTO start FROM eventstore.ticks t
		 WHERE t.ticked_at <= start_time ORDER BY t.tick_id DESC LIMIT 1;
		IF NOT FOUND THEN
			SELECT COALESCE(min(e.insert_order) - 1, eventstore.head()) INTO start
			  FROM eventstore.events e WHERE e.recorded_at >= start_time;
		END IF;
	ELSIF start_from = 'head' THEN
		start := eventstore.head();
	ELSE
		start := 0;
	END IF;

	INSERT INTO eventstore.subscriptions AS s
		(name, owner, checkpoint, consumer_group, event_types, stream_prefix, partition_keys,
		 max_attempts)
	VALUES (create_subscription_internal.name,
			COALESCE(create_subscription_internal.owner, caller), start,
			create_subscription_internal.consumer_group,
			create_subscription_internal.event_types, create_subscription_internal.stream_prefix,
			create_subscription_internal.partition_keys, create_subscription_internal.max_attempts);

	IF consumer_group THEN
		SELECT count(*) INTO nparts FROM pg_inherits
		 WHERE inhparent = 'eventstore.events'::regclass;
		INSERT INTO eventstore.subscription_partitions
			(subscription, partition, first_bucket, last_bucket, checkpoint)
		SELECT create_subscription_internal.name, p, p * (1024 / nparts),
			   (p + 1) * (1024 / nparts) - 1, start
		  FROM generate_series(0, nparts - 1) p;
	END IF;
	RETURN start;
EXCEPTION
	WHEN unique_violation THEN
		RAISE EXCEPTION 'subscription "%" already exists', name
			USING ERRCODE = 'duplicate_object';
END
$$;
COMMENT ON FUNCTION eventstore.create_subscription_internal(text, text, bigint, timestamptz, text[], text, text[], boolean, regrole, integer, regrole) IS
'internal: create_subscription, called through the gate';

CREATE FUNCTION eventstore.drop_subscription(name text, if_exists boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.drop_subscription(text, boolean) IS
'drops a subscription with its checkpoints and members';

CREATE FUNCTION eventstore.drop_subscription_internal(name text, if_exists boolean, caller regrole)
RETURNS boolean
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'name must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF COALESCE(if_exists, false)
	   AND NOT EXISTS (SELECT FROM eventstore.subscriptions x
					   WHERE x.name = drop_subscription_internal.name) THEN
		RETURN false;
	END IF;
	s := eventstore.subscription_row(name, NULL, true, 'drop_subscription', caller);
	DELETE FROM eventstore.subscriptions x WHERE x.name = s.name;
	RETURN true;
END
$$;
COMMENT ON FUNCTION eventstore.drop_subscription_internal(text, boolean, regrole) IS
'internal: drop_subscription, called through the gate';

CREATE FUNCTION eventstore.pause_subscription(name text, paused boolean DEFAULT true)
RETURNS void
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.pause_subscription(text, boolean) IS
'pauses a subscription (poll returns nothing) or, with false, resumes it';

CREATE FUNCTION eventstore.pause_subscription_internal(name text, paused boolean, caller regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
BEGIN
	IF name IS NULL OR paused IS NULL THEN
		RAISE EXCEPTION 'name and paused must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	s := eventstore.subscription_row(name, NULL, true, 'pause_subscription', caller);
	UPDATE eventstore.subscriptions x SET paused = pause_subscription_internal.paused
	 WHERE x.name = s.name;
END
$$;
COMMENT ON FUNCTION eventstore.pause_subscription_internal(text, boolean, regrole) IS
'internal: pause_subscription, called through the gate';

CREATE FUNCTION eventstore.resume_subscription(name text)
RETURNS void
LANGUAGE sql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
RETURN eventstore.pause_subscription(name, false);
COMMENT ON FUNCTION eventstore.resume_subscription(text) IS
'resumes a paused subscription';

/*
 * The subscription row, checked: the caller may use it, and it is of the
 * kind asked for (a consumer group's, a plain one, or with for_group NULL
 * either); locked FOR NO KEY UPDATE when asked.
 */
CREATE FUNCTION eventstore.subscription_row(name text, for_group boolean, lock boolean,
											writer text, caller regrole)
RETURNS eventstore.subscriptions
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
BEGIN
	-- writer: the calling function's name when it writes, else NULL
	IF writer IS NOT NULL
	   AND (pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on') THEN
		RAISE EXCEPTION '% needs a read-write transaction on the primary', writer
			USING ERRCODE = 'read_only_sql_transaction';
	END IF;
	IF name IS NULL THEN
		RAISE EXCEPTION 'subscription must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	/*
	 * Authorize before locking, so that a caller who may not use the
	 * subscription never waits for, nor holds, its row; then lock and check
	 * the row again (it may have been dropped and created anew meanwhile).
	 */
	SELECT * INTO s FROM eventstore.subscriptions x WHERE x.name = subscription_row.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'subscription "%" does not exist', name
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM eventstore.subscription_authorize(s.name, s.owner, caller);
	IF lock THEN
		SELECT * INTO s FROM eventstore.subscriptions x WHERE x.name = subscription_row.name
		   FOR NO KEY UPDATE;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'subscription "%" does not exist', name
				USING ERRCODE = 'undefined_object';
		END IF;
		PERFORM eventstore.subscription_authorize(s.name, s.owner, caller);
	END IF;
	IF s.consumer_group AND NOT for_group THEN
		RAISE EXCEPTION 'subscription "%" is consumed by a consumer group', name
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Use eventstore.group_join(), group_poll() and group_ack().';
	ELSIF for_group AND NOT s.consumer_group THEN
		RAISE EXCEPTION 'subscription "%" is not a consumer group', name
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Use eventstore.poll() and ack(), or create the subscription with consumer_group => true.';
	END IF;
	RETURN s;
END
$$;
COMMENT ON FUNCTION eventstore.subscription_row(text, boolean, boolean, text, regrole) IS
'internal: the subscription row, checked (the caller may use it; locked on request; a writer needs a read-write primary)';

/*
 * What poll and group_poll read: the events of some bucket ranges, each
 * after its own position (a consumer group member's partitions from their
 * checkpoints; NULL bucket arrays: the whole log after the one position),
 * up to a head the caller took before this query's snapshot, that pass a
 * subscription's filter (as subscription_matches says), in global order,
 * at most max_count of them.  Read straight from the partitions'
 * insert_order indexes (src/feed.c).  Granted to nobody.
 */
CREATE FUNCTION eventstore.subscription_feed(
	after_positions bigint[], first_buckets integer[], last_buckets integer[],
	up_to bigint, max_count integer,
	event_types text[], stream_prefix text, partition_keys text[])
RETURNS SETOF eventstore.recorded_event
AS 'MODULE_PATHNAME', 'eventstore_subscription_feed'
LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED ROWS 1000;
COMMENT ON FUNCTION eventstore.subscription_feed(bigint[], integer[], integer[], bigint, integer, text[], text, text[]) IS
'internal: the filtered events of bucket ranges after their positions, up to a head, for poll and group_poll';

CREATE FUNCTION eventstore.poll(
	subscription text,
	max_count integer DEFAULT 1000,
	after_position bigint DEFAULT NULL,
	lock boolean DEFAULT false,
	wait interval DEFAULT NULL)
RETURNS SETOF eventstore.recorded_event
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.poll(text, integer, bigint, boolean, interval) IS
'the next events of a subscription after its checkpoint (or after_position), up to the head, filtered; with wait, waits up to that long for some';

CREATE FUNCTION eventstore.poll_internal(
	subscription text, max_count integer, after_position bigint, lock boolean,
	wait interval, caller regrole)
RETURNS SETOF eventstore.recorded_event
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	head bigint;
	from_position bigint;
	read_from bigint;
	deadline timestamptz;
	n bigint := 0;
	budget integer := max_count;
BEGIN
	IF max_count IS NULL OR max_count < 1 THEN
		RAISE EXCEPTION 'max_count must be at least 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF after_position < 0 THEN
		RAISE EXCEPTION 'after_position must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF wait < interval '0' THEN
		RAISE EXCEPTION 'wait must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	s := eventstore.subscription_row(subscription, false, COALESCE(lock, false), NULL, caller);
	IF s.paused THEN
		RETURN;
	END IF;
	from_position := greatest(s.checkpoint, COALESCE(after_position, 0));
	deadline := clock_timestamp() + COALESCE(wait, interval '0');

	/*
	 * Dead letters that are due come first (src/sql/55_dead_letters.sql),
	 * when reading from the checkpoint, in a read-write transaction on the
	 * primary: they are marked as delivered by this transaction, which the
	 * subscription records as its last poll, so that only the
	 * acknowledgement that follows it settles them.  A poll after a
	 * position records itself too, delivering none: an acknowledgement of
	 * what it read settles none.  Writing the row makes polls of a
	 * subscription with dead letters due wait for each other, as with
	 * lock.  If the dead letters fill max_count, the events after the
	 * checkpoint wait for the next poll.
	 */
	IF NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'
	   AND EXISTS (SELECT FROM eventstore.dead_letters d
				   WHERE d.subscription = s.name AND d.retry_at <= statement_timestamp()) THEN
		UPDATE eventstore.subscriptions x SET redelivery_xid = pg_current_xact_id()
		 WHERE x.name = s.name;
		IF after_position IS NULL THEN
			RETURN QUERY SELECT * FROM eventstore.dead_letter_redeliver(s.name, max_count,
																		NULL, NULL);
			GET DIAGNOSTICS n = ROW_COUNT;
			budget := max_count - n;
			IF budget = 0 THEN
				RETURN;
			END IF;
		END IF;
	END IF;

	read_from := from_position;
	LOOP
		-- the head first; the query below takes its snapshot afterwards
		head := eventstore.head();
		RETURN QUERY
			SELECT * FROM eventstore.subscription_feed(ARRAY[read_from], NULL, NULL,
				head, budget, s.event_types, s.stream_prefix, s.partition_keys);
		GET DIAGNOSTICS n = ROW_COUNT;
		/*
		 * Nothing up to the head: with wait, wait for the head to move past
		 * it (in READ COMMITTED only: a transaction snapshot's head stays).
		 */
		EXIT WHEN n > 0 OR budget < max_count OR wait IS NULL OR clock_timestamp() >= deadline
			   OR current_setting('transaction_isolation') <> 'read committed';
		read_from := greatest(read_from, head);
		PERFORM eventstore.wait_for(head, greatest(deadline - clock_timestamp(), interval '0'));
	END LOOP;

	/*
	 * Nothing up to the head passed the filter: the checkpoint may skip the
	 * range (never past events the caller has not acknowledged).
	 */
	IF n = 0 AND head > s.checkpoint AND from_position = s.checkpoint
	   AND NOT pg_is_in_recovery()
	   AND current_setting('transaction_read_only') = 'off' THEN
		UPDATE eventstore.subscriptions x SET checkpoint = head
		 WHERE x.name = s.name AND x.checkpoint < head;
	END IF;
END
$$;
COMMENT ON FUNCTION eventstore.poll_internal(text, integer, bigint, boolean, interval, regrole) IS
'internal: poll, called through the gate';

CREATE FUNCTION eventstore.ack(subscription text, up_to bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.ack(text, bigint) IS
'moves a subscription''s checkpoint forward to a processed position; false if it was already there';

CREATE FUNCTION eventstore.ack_internal(subscription text, up_to bigint, caller regrole)
RETURNS boolean
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
BEGIN
	IF up_to IS NULL OR up_to < 0 THEN
		RAISE EXCEPTION 'up_to must be a position (0 or more)' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	s := eventstore.subscription_row(subscription, false, false, 'ack', caller);
	IF up_to > eventstore.head() THEN
		RAISE EXCEPTION 'cannot acknowledge position % above the head of the feed', up_to
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE eventstore.subscriptions x SET checkpoint = up_to, acked_at = now()
	 WHERE x.name = s.name AND x.checkpoint < up_to;
	IF FOUND THEN
		PERFORM eventstore.dead_letter_settle(s.name, up_to, NULL, NULL,
											  ARRAY[s.redelivery_xid]);
		RETURN true;
	END IF;
	-- dead letters the last redelivering poll returned: settled by an ack
	-- that covers them
	RETURN eventstore.dead_letter_settle(s.name, up_to, NULL, NULL,
										 ARRAY[s.redelivery_xid]) > 0;
END
$$;
COMMENT ON FUNCTION eventstore.ack_internal(text, bigint, regrole) IS
'internal: ack, called through the gate';

/*
 * Consumer groups.  group_join is also the heartbeat: it renews the
 * member's lease, drops members whose lease ran out, and rebalances: each
 * live member's fair share is the number of partitions divided by the
 * number of live members (the first members by name take one more when it
 * does not divide).  A member above its share gives partitions back; one
 * below it takes free ones.
 *
 * No group function waits for another transaction: one hung member, or a
 * member's transaction left open after a heartbeat, stalls nobody.  There
 * is no group-wide lock; each row is changed under its own row lock, taken
 * with SKIP LOCKED, and a row another transaction holds is left for a later
 * call.  The locks, by what they protect:
 *
 *   - a poll locks the member's partitions FOR NO KEY UPDATE until its
 *     transaction ends, so nobody can take them over while it processes:
 *     exactly once;
 *   - every change of a partition's holder (freeing a departed member's
 *     partitions, giving extras back, taking free ones, leaving) locks the
 *     partition FOR UPDATE;
 *   - a join returns the member's partitions locked FOR KEY SHARE, which
 *     conflicts with FOR UPDATE alone: a partition whose holder a
 *     transaction in flight is changing is not returned, and one returned
 *     cannot change holder until the join's transaction ends; a poll in
 *     flight (FOR NO KEY UPDATE) does not keep its own member's heartbeat
 *     from returning it.  So two members with live leases never both
 *     believe they hold a partition;
 *   - a member row is deleted (lease ran out, leave) under FOR UPDATE and
 *     renewed under FOR NO KEY UPDATE, so a member renewing its lease is
 *     not dropped meanwhile.
 *
 * Rebalancing sees only committed memberships (and its own): a member
 * whose join has not committed is not counted yet, and shares settle at
 * later heartbeats.
 */
CREATE FUNCTION eventstore.group_join(
	subscription text,
	member text,
	lease interval DEFAULT '30 seconds')
RETURNS TABLE (partition integer, first_bucket integer, last_bucket integer, checkpoint bigint)
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.group_join(text, text, interval) IS
'joins a consumer group or renews the lease (the heartbeat); rebalances and returns the partitions held';

CREATE FUNCTION eventstore.group_join_internal(
	subscription text, member text, lease interval, caller regrole)
RETURNS TABLE (partition integer, first_bucket integer, last_bucket integer, checkpoint bigint)
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	renewed boolean;
	nparts integer;
	nlive integer;
	rank integer;
	share integer;
	held integer;
BEGIN
	IF member IS NULL OR lease IS NULL THEN
		RAISE EXCEPTION 'member and lease must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF member = '' OR octet_length(member) > 200 THEN
		RAISE EXCEPTION 'member name must have 1 to 200 bytes' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF lease < '1 second' OR lease > '1 day' THEN
		RAISE EXCEPTION 'lease must be between 1 second and 1 day' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	s := eventstore.subscription_row(subscription, true, false, 'group_join', caller);

	-- members whose lease ran out are dropped, unless they are renewing it
	DELETE FROM eventstore.subscription_members m
	 WHERE m.subscription = s.name
	   AND m.member IN (SELECT x.member FROM eventstore.subscription_members x
						 WHERE x.subscription = s.name AND x.member <> group_join_internal.member
						   AND x.lease_until < clock_timestamp()
						   FOR UPDATE SKIP LOCKED);

	/*
	 * The member's own row: locked to be renewed, or inserted.  An insert
	 * waits only for another session inserting the same member.  When a
	 * transaction in flight holds the row (another session of the member
	 * renewing it, or a drop or leave of the member), nothing is renewed
	 * or rebalanced now.
	 */
	PERFORM FROM eventstore.subscription_members m
	  WHERE m.subscription = s.name AND m.member = group_join_internal.member
	  FOR NO KEY UPDATE SKIP LOCKED;
	IF FOUND THEN
		renewed := true;
	ELSIF NOT EXISTS (SELECT FROM eventstore.subscription_members m
					  WHERE m.subscription = s.name AND m.member = group_join_internal.member) THEN
		INSERT INTO eventstore.subscription_members AS m (subscription, member, joined_at, lease_until)
		VALUES (s.name, group_join_internal.member, now(), clock_timestamp() + lease)
		ON CONFLICT ON CONSTRAINT subscription_members_pkey DO NOTHING;
		renewed := FOUND;
	ELSE
		renewed := false;
	END IF;

	IF renewed THEN
		/*
		 * Partitions of members that are gone are free, except those a
		 * transaction still holds (a poll in flight, or a join that
		 * returned them): they are skipped, not waited for, and freed by
		 * a later heartbeat.
		 */
		UPDATE eventstore.subscription_partitions p SET member = NULL, polled_to = NULL
		 WHERE p.subscription = s.name
		   AND p.partition IN (
				SELECT q.partition FROM eventstore.subscription_partitions q
				 WHERE q.subscription = s.name AND q.member IS NOT NULL
				   AND NOT EXISTS (SELECT FROM eventstore.subscription_members m
								   WHERE m.subscription = s.name AND m.member = q.member)
				   FOR UPDATE SKIP LOCKED);

		SELECT count(*) INTO nparts FROM eventstore.subscription_partitions p
		 WHERE p.subscription = s.name;
		SELECT count(*), count(*) FILTER (WHERE m.member < group_join_internal.member)
		  INTO nlive, rank
		  FROM eventstore.subscription_members m WHERE m.subscription = s.name;
		share := nparts / nlive + CASE WHEN rank < nparts % nlive THEN 1 ELSE 0 END;

		SELECT count(*) INTO held FROM eventstore.subscription_partitions p
		 WHERE p.subscription = s.name AND p.member = group_join_internal.member;
		/*
		 * Give back extras, but never a partition that a transaction is
		 * working on: not one this very transaction has polled (a member
		 * that heartbeats between its poll and its ack keeps it), nor one
		 * another transaction holds.  A later heartbeat gives them back.
		 */
		IF held > share THEN
			UPDATE eventstore.subscription_partitions p SET member = NULL, polled_to = NULL
			 WHERE p.subscription = s.name
			   AND p.partition IN (SELECT q.partition FROM eventstore.subscription_partitions q
									WHERE q.subscription = s.name AND q.member = group_join_internal.member
									  AND q.polled_xid IS DISTINCT FROM pg_current_xact_id_if_assigned()
									ORDER BY q.partition DESC LIMIT held - share
									FOR UPDATE SKIP LOCKED);
		ELSIF held < share THEN
			UPDATE eventstore.subscription_partitions p SET member = group_join_internal.member,
				   polled_to = NULL
			 WHERE p.subscription = s.name
			   AND p.partition IN (SELECT q.partition FROM eventstore.subscription_partitions q
									WHERE q.subscription = s.name AND q.member IS NULL
									ORDER BY q.partition LIMIT share - held
									FOR UPDATE SKIP LOCKED);
		END IF;

		-- the lease counts from the end of the join
		UPDATE eventstore.subscription_members m SET lease_until = clock_timestamp() + lease
		 WHERE m.subscription = s.name AND m.member = group_join_internal.member;
	END IF;

	-- what the member holds, if its lease is live; see the locks above
	RETURN QUERY
		SELECT p.partition, p.first_bucket, p.last_bucket, p.checkpoint
		  FROM eventstore.subscription_partitions p
		 WHERE p.subscription = s.name AND p.member = group_join_internal.member
		   AND EXISTS (SELECT FROM eventstore.subscription_members m
						WHERE m.subscription = s.name AND m.member = group_join_internal.member
						  AND m.lease_until >= clock_timestamp())
		 ORDER BY p.partition
		   FOR KEY SHARE OF p SKIP LOCKED;
END
$$;
COMMENT ON FUNCTION eventstore.group_join_internal(text, text, interval, regrole) IS
'internal: group_join, called through the gate';

CREATE FUNCTION eventstore.group_leave(subscription text, member text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.group_leave(text, text) IS
'leaves a consumer group, giving back at once what no transaction in flight holds; true if nothing is left';

CREATE FUNCTION eventstore.group_leave_internal(subscription text, member text, caller regrole)
RETURNS boolean
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
BEGIN
	IF member IS NULL THEN
		RAISE EXCEPTION 'member must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	s := eventstore.subscription_row(subscription, true, false, 'group_leave', caller);
	/*
	 * The member's partitions are free at once, except those a transaction
	 * in flight holds (its poll): they stay with the member, which is
	 * gone, until that transaction ends, and a later heartbeat frees them.
	 * The member itself is gone unless a transaction in flight holds its
	 * row (one that renewed its lease): it stays until that one ends.
	 */
	UPDATE eventstore.subscription_partitions p SET member = NULL, polled_to = NULL
	 WHERE p.subscription = s.name
	   AND p.partition IN (SELECT q.partition FROM eventstore.subscription_partitions q
							WHERE q.subscription = s.name AND q.member = group_leave_internal.member
							FOR UPDATE SKIP LOCKED);
	DELETE FROM eventstore.subscription_members m
	 WHERE m.subscription = s.name
	   AND m.member IN (SELECT x.member FROM eventstore.subscription_members x
						 WHERE x.subscription = s.name AND x.member = group_leave_internal.member
						 FOR UPDATE SKIP LOCKED);
	RETURN NOT EXISTS (SELECT FROM eventstore.subscription_members m
						WHERE m.subscription = s.name AND m.member = group_leave_internal.member)
	   AND NOT EXISTS (SELECT FROM eventstore.subscription_partitions p
						WHERE p.subscription = s.name AND p.member = group_leave_internal.member);
END
$$;
COMMENT ON FUNCTION eventstore.group_leave_internal(text, text, regrole) IS
'internal: group_leave, called through the gate';

/* The live member's own row, or ES004. */
CREATE FUNCTION eventstore.group_member_check(subscription text, member text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF member IS NULL THEN
		RAISE EXCEPTION 'member must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT EXISTS (SELECT FROM eventstore.subscription_members m
				   WHERE m.subscription = group_member_check.subscription
					 AND m.member = group_member_check.member
					 AND m.lease_until >= clock_timestamp()) THEN
		RAISE EXCEPTION 'member "%" of group "%" holds no lease', member, subscription
			USING ERRCODE = 'ES004',
				  DETAIL = 'It never joined, left, or its lease ran out.',
				  HINT = 'Call eventstore.group_join() again; events not acknowledged will be delivered again.';
	END IF;
END
$$;
COMMENT ON FUNCTION eventstore.group_member_check(text, text) IS
'internal: raises ES004 unless the member holds a live lease';

CREATE FUNCTION eventstore.group_poll(
	subscription text,
	member text,
	max_count integer DEFAULT 1000,
	wait interval DEFAULT NULL)
RETURNS SETOF eventstore.recorded_event
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.group_poll(text, text, integer, interval) IS
'the next events of the partitions a group member leases, after their checkpoints, up to the head, in global order; with wait, waits up to that long for some';

CREATE FUNCTION eventstore.group_poll_internal(
	subscription text, member text, max_count integer, wait interval, caller regrole)
RETURNS SETOF eventstore.recorded_event
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	r eventstore.recorded_event;
	parts integer[];
	afters bigint[];
	firsts integer[];
	lasts integer[];
	head bigint;
	last bigint;
	n bigint;
	budget integer := max_count;
	deadline timestamptz;
BEGIN
	IF max_count IS NULL OR max_count < 1 THEN
		RAISE EXCEPTION 'max_count must be at least 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF wait < interval '0' THEN
		RAISE EXCEPTION 'wait must not be negative' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	deadline := clock_timestamp() + COALESCE(wait, interval '0');
	s := eventstore.subscription_row(subscription, true, false, 'group_poll', caller);
	PERFORM eventstore.group_member_check(s.name, member);
	IF s.paused THEN
		RETURN;
	END IF;

	/*
	 * Lock the member's partitions first: while this transaction runs, no
	 * other member can take them over, so a consumer that acknowledges in
	 * the same transaction processes every event exactly once.  A
	 * partition another transaction holds (a change of holder in flight,
	 * or another poll of the same member) is skipped, not waited for.
	 */
	parts := ARRAY(SELECT p.partition FROM eventstore.subscription_partitions p
					WHERE p.subscription = s.name AND p.member = group_poll_internal.member
					ORDER BY p.partition
					  FOR NO KEY UPDATE SKIP LOCKED);

	SELECT pg_catalog.array_agg(p.checkpoint), pg_catalog.array_agg(p.first_bucket),
		   pg_catalog.array_agg(p.last_bucket)
	  INTO afters, firsts, lasts
	  FROM eventstore.subscription_partitions p
	 WHERE p.subscription = s.name AND p.partition = ANY (parts);

	/*
	 * The due dead letters of these partitions first, as poll does, marked
	 * as delivered by this transaction, which each partition records as the
	 * member's last poll (polled_xid, below): group_ack settles only what
	 * that poll returned.  If they fill max_count the events wait for the
	 * next poll, which the partitions' polled_to says.
	 */
	IF afters IS NOT NULL THEN
		RETURN QUERY SELECT * FROM eventstore.dead_letter_redeliver(s.name, max_count, firsts, lasts);
		GET DIAGNOSTICS n = ROW_COUNT;
		budget := max_count - n;
		IF budget = 0 THEN
			UPDATE eventstore.subscription_partitions p
			   SET polled_to = COALESCE(p.polled_to, p.checkpoint),
				   polled_xid = pg_current_xact_id()
			 WHERE p.subscription = s.name AND p.partition = ANY (parts);
			RETURN;
		END IF;
	END IF;

	LOOP
		-- the head first; the query below takes its snapshot afterwards
		head := eventstore.head();
		n := 0;
		FOR r IN
			SELECT * FROM eventstore.subscription_feed(afters, firsts, lasts, head,
				budget, s.event_types, s.stream_prefix, s.partition_keys)
		LOOP
			RETURN NEXT r;
			n := n + 1;
			last := r.insert_order;
		END LOOP;
		/*
		 * Nothing up to the head in the member's partitions: with wait,
		 * wait for the head to move past it (as poll does), then read on
		 * from there.
		 */
		EXIT WHEN n > 0 OR budget < max_count OR wait IS NULL OR afters IS NULL
			   OR clock_timestamp() >= deadline
			   OR current_setting('transaction_isolation') <> 'read committed';
		afters := ARRAY(SELECT greatest(a.after, head)
						  FROM pg_catalog.unnest(afters) WITH ORDINALITY a(after, i)
						 ORDER BY a.i);
		PERFORM eventstore.wait_for(head, greatest(deadline - clock_timestamp(), interval '0'));
	END LOOP;

	/*
	 * What this poll covered, per partition: up to the last event returned
	 * (every event of the member's partitions below it was returned), or
	 * up to the head when it returned all there was.  group_ack moves
	 * checkpoints no further than that; an empty poll moves them at once.
	 */
	IF n < budget THEN
		last := head;
	END IF;
	UPDATE eventstore.subscription_partitions p
	   SET polled_to = greatest(p.checkpoint, last),
		   polled_xid = pg_current_xact_id(),
		   checkpoint = CASE WHEN n = 0 THEN greatest(p.checkpoint, last)
							 ELSE p.checkpoint END
	 WHERE p.subscription = s.name AND p.partition = ANY (parts);
END
$$;
COMMENT ON FUNCTION eventstore.group_poll_internal(text, text, integer, interval, regrole) IS
'internal: group_poll, called through the gate';

CREATE FUNCTION eventstore.group_ack(subscription text, member text, up_to bigint)
RETURNS integer
AS 'MODULE_PATHNAME', 'eventstore_subscription_gate'
LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION eventstore.group_ack(text, text, bigint) IS
'moves the checkpoints of the member''s partitions up to a processed position (no further than its last poll covered); returns how many moved';

CREATE FUNCTION eventstore.group_ack_internal(
	subscription text, member text, up_to bigint, caller regrole)
RETURNS integer
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s eventstore.subscriptions;
	moved integer;
	firsts integer[];
	lasts integer[];
	xids xid8[];
BEGIN
	IF up_to IS NULL OR up_to < 0 THEN
		RAISE EXCEPTION 'up_to must be a position (0 or more)' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	s := eventstore.subscription_row(subscription, true, false, 'group_ack', caller);
	PERFORM eventstore.group_member_check(s.name, member);
	IF up_to > eventstore.head() THEN
		RAISE EXCEPTION 'cannot acknowledge position % above the head of the feed', up_to
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- a partition another transaction holds is skipped: its events come again
	UPDATE eventstore.subscription_partitions p
	   SET checkpoint = least(up_to, p.polled_to), acked_at = now()
	 WHERE p.subscription = s.name
	   AND p.partition IN (SELECT q.partition FROM eventstore.subscription_partitions q
							WHERE q.subscription = s.name AND q.member = group_ack_internal.member
							  AND q.polled_to IS NOT NULL
							  AND q.checkpoint < least(up_to, q.polled_to)
							FOR NO KEY UPDATE SKIP LOCKED);
	GET DIAGNOSTICS moved = ROW_COUNT;
	/*
	 * The dead letters that the member's last poll of each of its
	 * partitions redelivered, up to up_to (a partition it took over and has
	 * not polled yet has no polled_to: nothing there is the member's).
	 */
	SELECT pg_catalog.array_agg(q.first_bucket), pg_catalog.array_agg(q.last_bucket),
		   pg_catalog.array_agg(q.polled_xid)
	  INTO firsts, lasts, xids
	  FROM (SELECT x.first_bucket, x.last_bucket, x.polled_xid
			  FROM eventstore.subscription_partitions x
			 WHERE x.subscription = s.name AND x.member = group_ack_internal.member
			   AND x.polled_to IS NOT NULL AND x.polled_xid IS NOT NULL
			   FOR NO KEY UPDATE SKIP LOCKED) q;
	IF firsts IS NOT NULL THEN
		PERFORM eventstore.dead_letter_settle(s.name, up_to, firsts, lasts, xids);
	END IF;
	RETURN moved;
END
$$;
COMMENT ON FUNCTION eventstore.group_ack_internal(text, text, bigint, regrole) IS
'internal: group_ack, called through the gate';

/*
 * Lag of every subscription: its checkpoint (a group's lowest), the head,
 * how many events passing its filter lie between them, and for how long
 * the oldest of them has been visible (from the ticks; 0 when there are
 * none, even if events the filter skips lie between them).
 */
CREATE VIEW eventstore.subscription_lag AS
	SELECT s.name,
		   s.consumer_group,
		   s.paused,
		   c.checkpoint,
		   h.head,
		   b.events_behind,
		   COALESCE(pg_catalog.date_part('epoch', pg_catalog.now() OPERATOR(pg_catalog.-)
				(SELECT min(t.ticked_at) FROM eventstore.ticks t
				  WHERE t.head >= b.oldest)), 0) AS seconds_behind,
		   (SELECT count(*) FROM eventstore.subscription_members m
			 WHERE m.subscription = s.name AND m.lease_until >= pg_catalog.now()) AS live_members,
		   COALESCE(s.acked_at, (SELECT max(p.acked_at) FROM eventstore.subscription_partitions p
								  WHERE p.subscription = s.name)) AS acked_at
	  FROM eventstore.subscriptions s
	 CROSS JOIN LATERAL (
		SELECT CASE WHEN s.consumer_group
					THEN (SELECT min(p.checkpoint) FROM eventstore.subscription_partitions p
						   WHERE p.subscription = s.name)
					ELSE s.checkpoint END AS checkpoint) c
	 CROSS JOIN LATERAL (SELECT eventstore.head() AS head) h
	 CROSS JOIN LATERAL (
		SELECT count(*) AS events_behind, min(e.insert_order) AS oldest
		  FROM eventstore.events e
		 WHERE e.insert_order > c.checkpoint AND e.insert_order <= h.head
		   AND eventstore.subscription_matches(s.event_types, s.stream_prefix,
				s.partition_keys, e.event_type, e.stream_id, e.partition_key)
		   -- a group: above the checkpoint of the event's own partition
		   AND (NOT s.consumer_group OR e.insert_order > (
				SELECT p.checkpoint FROM eventstore.subscription_partitions p
				 WHERE p.subscription = s.name
				   AND e.bucket BETWEEN p.first_bucket AND p.last_bucket))) b;
COMMENT ON VIEW eventstore.subscription_lag IS
'every subscription''s checkpoint, the head, and the events and seconds it is behind';

/*
 * Transient signals: a notification on a channel of the caller's choice,
 * stored nowhere ("user is typing").  The channel is checked and quoted;
 * the payload travels as NOTIFY's, at most 7999 bytes.
 */
CREATE FUNCTION eventstore.signal(channel text, payload text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF channel IS NULL THEN
		RAISE EXCEPTION 'channel must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF channel !~ '^[A-Za-z0-9_.:-]{1,63}$' THEN
		RAISE EXCEPTION 'invalid channel name "%"', channel
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A channel name has 1 to 63 letters, digits, "_", ".", ":" or "-".';
	END IF;
	IF channel = 'eventstore' THEN
		RAISE EXCEPTION 'channel "eventstore" is reserved for ticks'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM pg_notify(channel, payload);
END
$$;
COMMENT ON FUNCTION eventstore.signal(text, text) IS
'publishes a transient signal on a channel (LISTEN to it); nothing is stored';
