#!/usr/bin/env bash
#
# test/stress/groups.sh
#	A consumer group processes every event exactly once, in stream order,
#	while its members die, stall and join.
#
# pgbench clients append random batches (1..5 events) to ~200 streams, a
# tenth of them rolled back.  Meanwhile the members of one consumer group
# run, each in its own psql session as a procedure that loops:
#
#   - every heartbeat, group_join with a short lease, recording in the same
#     transaction what the join returned and the lease it got (its belief);
#   - group_poll, write the events into the read model "processed" (a
#     serial id gives the order of processing), group_ack the last one, all
#     in one transaction; ES004 rolls that transaction back.
#
# A controller kills a member at regular intervals, alternately with
# kill -9 of its psql and with pg_terminate_backend() of its backend, and
# starts a new one in its place; twice it makes a member stall for longer
# than its lease inside its processing transaction (its acknowledgement must
# then be refused), the second time after a heartbeat inside that
# transaction, and once it adds a member.  A sampler checks, many times a second in one snapshot, that no
# two members whose last join's lease has not run out believe they hold the
# same partition, and that every member's last join result is what
# subscription_partitions assigns to it.  When the writers are done and the
# group has caught up with the head, the members leave and the script
# checks the read model: every committed event processed, nothing else,
# nothing twice, each stream in stream order; each event by a member that
# held its partition, within its lease; over the whole run no two
# members' beliefs overlapped in time on a partition; and no sample found a
# member waiting for another transaction's row lock (a stalled member,
# even one that heartbeated inside its open transaction, stalls nobody).  It prints TAP-like
# "ok - " / "not ok - " lines and one line of figures; exit status 1 on
# any failure.
#
# Runs against an already running cluster with eventstore in
# shared_preload_libraries; connection from PGHOST, PGPORT, PGUSER (a
# superuser: it creates and drops its own database, "stress_groups" by
# default).
#
# Knobs (environment): GROUPS_DB, GROUPS_SECONDS (8), GROUPS_WRITERS (2),
# GROUPS_RATE (150 transactions per second in all), GROUPS_STREAMS (200),
# GROUPS_MEMBERS (5), GROUPS_LEASE (2 seconds), GROUPS_KILL_EVERY (0.8
# seconds), GROUPS_PAGE (100), GROUPS_CATCH_UP (20 seconds), PG_CONFIG or
# PGBIN.  GROUPS_CONSUMER selects how the members consume:
#
#   exactly-once  poll, process and ack in one transaction (the default)
#   ack-first     ack and commit, then process: events are lost when a
#                 member dies or stalls in between
#   ack-after     process and commit, then ack: events are processed again,
#                 out of stream order, when a member dies or stalls between
#   overstay      exactly-once, but members record a lease three times
#                 longer than the one they got, as a client that keeps
#                 working after its lease ran out would believe
#
# The last three are self-tests of this script: each must make it fail.

set -euo pipefail

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=${PGBIN:-$("$PG_CONFIG" --bindir)}
DB=${GROUPS_DB:-stress_groups}
DURATION=${GROUPS_SECONDS:-8}
WRITERS=${GROUPS_WRITERS:-2}
RATE=${GROUPS_RATE:-150}
STREAMS=${GROUPS_STREAMS:-200}
MEMBERS=${GROUPS_MEMBERS:-5}
LEASE=${GROUPS_LEASE:-2}
KILL_EVERY=${GROUPS_KILL_EVERY:-0.8}
PAGE=${GROUPS_PAGE:-100}
CATCH_UP=${GROUPS_CATCH_UP:-20}
MODE=${GROUPS_CONSUMER:-exactly-once}
case $MODE in
	exactly-once | ack-first | ack-after | overstay) ;;
	*) echo "GROUPS_CONSUMER must be exactly-once, ack-first, ack-after or overstay" >&2; exit 2 ;;
esac
# A member whose client is gone (kill -9) notices it within 100 ms.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning -c client_connection_check_interval=100"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/eventstore-groups.XXXXXX")
FAILED=0

declare -A MEMBER_PID=()		# running members: name -> psql pid
declare -A MEMBER_FATE=()		# name -> "kill -9" / "terminated" / exit status
STALLED=()						# members told to stall (never killed)
NEXT_MEMBER=0
SAMPLER_PID=
PGBENCH_PID=

. "$(dirname "${BASH_SOURCE[0]}")/stresslib.sh"

cleanup() {
	local pid
	for pid in "${MEMBER_PID[@]}" $SAMPLER_PID $PGBENCH_PID; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- Setup --------------------------------------------------------------------

psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
psql_admin -c "CREATE DATABASE \"$DB\"" >/dev/null
psql_db >/dev/null <<'SQL'
CREATE EXTENSION eventstore;
SELECT eventstore.create_subscription('stress', consumer_group => true);

-- Not transactional: counts the rollbacks the writers chose to do.
CREATE SEQUENCE writer_aborts;

CREATE TABLE group_control (
	writers_done	boolean NOT NULL,
	stop			boolean NOT NULL
);
INSERT INTO group_control VALUES (false, false);

-- What each group_join returned to a member, and the lease it got.
CREATE TABLE group_beliefs (
	id				bigserial PRIMARY KEY,
	member			text NOT NULL,
	parts			integer[] NOT NULL,
	joined_at		timestamptz NOT NULL,
	lease_until		timestamptz NOT NULL
);
CREATE INDEX ON group_beliefs (member, id);

-- The read model: one row per event processed, in the order processed.
CREATE TABLE processed (
	id				bigserial PRIMARY KEY,
	member			text NOT NULL,
	insert_order	bigint NOT NULL,
	stream_id		text NOT NULL,
	stream_order	bigint NOT NULL,
	processed_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Stalls the controller asked for, whether the member heartbeats inside its
-- processing transaction before it stalls, and when it started stalling.
CREATE TABLE group_stalls (
	member			text PRIMARY KEY,
	heartbeat		boolean NOT NULL,
	started_at		timestamptz
);

-- Polls and acks refused with ES004.
CREATE TABLE group_refusals (
	member			text NOT NULL,
	stage			text NOT NULL,
	stalled			boolean NOT NULL
);

CREATE TABLE group_samples (
	taken_at		timestamptz NOT NULL,
	believers		integer NOT NULL,
	held			integer NOT NULL,
	distinct_held	integer NOT NULL,
	mismatched		integer NOT NULL,
	lock_waits		integer NOT NULL
);

/*
 * A member of the group "stress".  It runs until group_control.stop, then
 * leaves.  Every transaction is committed here; a kill rolls back the one
 * in flight.
 */
CREATE PROCEDURE group_member(p_name text, p_lease interval, p_heartbeat interval,
							  p_page integer, p_mode text)
LANGUAGE plpgsql AS $proc$
DECLARE
	v_next_join	timestamptz := '-infinity';
	v_parts		integer[];
	v_lease		timestamptz;
	v_stall		boolean := false;
	v_stall_join boolean;
	v_stage		text;
	v_n			bigint;
	v_last		bigint;
	v_batch		eventstore.recorded_event[];
BEGIN
	LOOP
		EXIT WHEN (SELECT c.stop FROM group_control c);

		-- the heartbeat: join, and record what it returned with the lease
		IF clock_timestamp() >= v_next_join THEN
			v_parts := array(SELECT j.partition
							   FROM eventstore.group_join('stress', p_name, p_lease) j ORDER BY 1);
			SELECT m.lease_until INTO v_lease FROM eventstore.subscription_members m
			 WHERE m.subscription = 'stress' AND m.member = p_name;
			IF p_mode = 'overstay' THEN
				v_lease := v_lease + 2 * p_lease;
			END IF;
			INSERT INTO group_beliefs (member, parts, joined_at, lease_until)
			VALUES (p_name, v_parts, clock_timestamp(), v_lease);
			UPDATE group_stalls s SET started_at = clock_timestamp()
			 WHERE s.member = p_name AND s.started_at IS NULL
			RETURNING s.heartbeat INTO v_stall_join;
			v_stall := FOUND;
			COMMIT;
			v_next_join := clock_timestamp() + p_heartbeat;
		END IF;

		v_n := 0;
		v_last := NULL;
		IF p_mode IN ('exactly-once', 'overstay') THEN
			-- poll, process and ack in one transaction
			BEGIN
				v_stage := 'poll';
				WITH w AS (
					INSERT INTO processed (member, insert_order, stream_id, stream_order)
					SELECT p_name, e.insert_order, e.stream_id, e.stream_order
					  FROM eventstore.group_poll('stress', p_name, p_page)
						   WITH ORDINALITY AS e(insert_order, stream_id, stream_order, event_id,
												event_type, schema_version, data, metadata,
												recorded_at, partition_key, ord)
					 ORDER BY e.ord
					RETURNING insert_order)
				SELECT count(*), max(w.insert_order) INTO v_n, v_last FROM w;
				IF v_stall THEN
					-- a heartbeat inside the transaction (rolled back with
					-- it, so not a belief), then the stall
					IF v_stall_join THEN
						PERFORM eventstore.group_join('stress', p_name, p_lease);
					END IF;
					PERFORM pg_sleep(extract(epoch FROM p_lease) + 0.5);
				END IF;
				IF v_n > 0 OR v_stall THEN
					v_stage := 'ack';
					PERFORM eventstore.group_ack('stress', p_name, coalesce(v_last, 0));
				END IF;
			EXCEPTION WHEN SQLSTATE 'ES004' THEN
				INSERT INTO group_refusals VALUES (p_name, v_stage, v_stall);
				v_next_join := '-infinity';
				v_n := 0;
			END;
			COMMIT;
		ELSIF p_mode = 'ack-first' THEN
			-- broken: poll and ack, commit, then process
			BEGIN
				v_stage := 'poll';
				v_batch := array(SELECT g FROM eventstore.group_poll('stress', p_name, p_page) g);
				v_n := cardinality(v_batch);
				IF v_n > 0 THEN
					v_stage := 'ack';
					PERFORM eventstore.group_ack('stress', p_name, v_batch[v_n].insert_order);
				END IF;
			EXCEPTION WHEN SQLSTATE 'ES004' THEN
				INSERT INTO group_refusals VALUES (p_name, v_stage, v_stall);
				v_next_join := '-infinity';
				v_batch := '{}';
				v_n := 0;
			END;
			COMMIT;
			IF v_stall THEN
				PERFORM pg_sleep(extract(epoch FROM p_lease) + 0.5);
			ELSIF v_n > 0 THEN
				PERFORM pg_sleep(0.05 + random() * 0.1);
			END IF;
			INSERT INTO processed (member, insert_order, stream_id, stream_order)
			SELECT p_name, b.insert_order, b.stream_id, b.stream_order
			  FROM unnest(v_batch) WITH ORDINALITY AS b
			 ORDER BY b.ordinality;
			COMMIT;
		ELSE
			-- broken: poll and process, commit, then ack
			BEGIN
				v_stage := 'poll';
				WITH w AS (
					INSERT INTO processed (member, insert_order, stream_id, stream_order)
					SELECT p_name, e.insert_order, e.stream_id, e.stream_order
					  FROM eventstore.group_poll('stress', p_name, p_page)
						   WITH ORDINALITY AS e(insert_order, stream_id, stream_order, event_id,
												event_type, schema_version, data, metadata,
												recorded_at, partition_key, ord)
					 ORDER BY e.ord
					RETURNING insert_order)
				SELECT count(*), max(w.insert_order) INTO v_n, v_last FROM w;
			EXCEPTION WHEN SQLSTATE 'ES004' THEN
				INSERT INTO group_refusals VALUES (p_name, v_stage, v_stall);
				v_next_join := '-infinity';
				v_n := 0;
			END;
			COMMIT;
			IF v_stall THEN
				PERFORM pg_sleep(extract(epoch FROM p_lease) + 0.5);
			ELSIF v_n > 0 THEN
				PERFORM pg_sleep(0.05 + random() * 0.1);
			END IF;
			IF v_n > 0 THEN
				BEGIN
					v_stage := 'ack';
					PERFORM eventstore.group_ack('stress', p_name, v_last);
				EXCEPTION WHEN SQLSTATE 'ES004' THEN
					INSERT INTO group_refusals VALUES (p_name, v_stage, v_stall);
					v_next_join := '-infinity';
				END;
				COMMIT;
			END IF;
		END IF;
		v_stall := false;

		IF v_n = 0 THEN
			PERFORM pg_sleep(0.01);
		END IF;
	END LOOP;

	PERFORM eventstore.group_leave('stress', p_name);
	INSERT INTO group_beliefs (member, parts, joined_at, lease_until)
	VALUES (p_name, '{}', clock_timestamp(), clock_timestamp());
	COMMIT;
END
$proc$;

/*
 * The sampler, in one snapshot per sample, read before the clock: the
 * members whose last join's lease has not run out and the partitions they
 * believe they hold (held and distinct_held differ when two believe they
 * hold the same one); the members whose last join result is not what
 * subscription_partitions assigns to them; members waiting for another
 * transaction's row lock.
 */
CREATE PROCEDURE group_sampler(p_every float8)
LANGUAGE plpgsql AS $proc$
BEGIN
	LOOP
		EXIT WHEN (SELECT c.stop FROM group_control c);
		INSERT INTO group_samples
		WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),
			 latest AS (SELECT DISTINCT ON (b.member) b.member, b.parts, b.lease_until
						  FROM group_beliefs b ORDER BY b.member, b.id DESC),
			 believers AS (SELECT l.* FROM latest l, t WHERE l.lease_until >= t.now)
		SELECT t.now,
			   (SELECT count(*) FROM believers),
			   (SELECT count(*) FROM believers b, unnest(b.parts) p),
			   (SELECT count(DISTINCT p) FROM believers b, unnest(b.parts) p),
			   (SELECT count(*) FROM eventstore.subscription_members m
				  JOIN latest l USING (member)
				 WHERE m.subscription = 'stress'
				   AND l.parts IS DISTINCT FROM
					   array(SELECT p.partition FROM eventstore.subscription_partitions p
							  WHERE p.subscription = 'stress' AND p.member = m.member
							  ORDER BY 1)),
			   (SELECT count(*) FROM pg_stat_activity a
				 WHERE a.datname = current_database() AND a.application_name LIKE 'gm-%'
				   AND a.wait_event_type = 'Lock' AND a.wait_event IN ('transactionid', 'tuple'))
		  FROM t;
		COMMIT;
		PERFORM pg_sleep(p_every);
	END LOOP;
END
$proc$;
SQL

cat >"$WORK/append.sql" <<SQL
\\set stream random(1, $STREAMS)
\\set batch random(1, 5)
\\set delay random(0, 5)
\\set roll random(1, 10)
BEGIN;
SELECT count(*) FROM eventstore.append('group-' || :stream, ARRAY(SELECT eventstore.event('Grouped', pg_catalog.jsonb_build_object('client', :client_id, 'i', i)) FROM pg_catalog.generate_series(1, :batch) i));
\\sleep :delay ms
\\if :roll = 1
SELECT pg_catalog.nextval('writer_aborts');
ROLLBACK;
\\else
COMMIT;
\\endif
SQL

# --- Members --------------------------------------------------------------------

start_member() {
	local name="gm-$NEXT_MEMBER"
	NEXT_MEMBER=$((NEXT_MEMBER + 1))
	PGAPPNAME=$name "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" \
		-c "CALL group_member('$name', '$LEASE seconds', '$(awk "BEGIN { print $LEASE / 4 }") seconds', $PAGE, '$MODE')" \
		>"$WORK/$name.out" 2>&1 &
	MEMBER_PID[$name]=$!
}

# A running member picked at random, not one told to stall.
pick_member() {
	local name candidates=()
	for name in "${!MEMBER_PID[@]}"; do
		[[ " ${STALLED[*]} " == *" $name "* ]] || candidates+=("$name")
	done
	[ ${#candidates[@]} -gt 0 ] || return 1
	echo "${candidates[RANDOM % ${#candidates[@]}]}"
}

kill_member() {
	local name=$1 how=$2 pid=${MEMBER_PID[$1]}
	if [ "$how" = "kill -9" ]; then
		kill -KILL "$pid" 2>/dev/null || true
	else
		psql_db -c "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
		             WHERE application_name = '$name' AND datname = current_database()" >/dev/null
	fi
	wait "$pid" 2>/dev/null || true
	unset "MEMBER_PID[$name]"
	MEMBER_FATE[$name]=$how
}

# stall_member NAME HEARTBEAT: HEARTBEAT true makes it heartbeat inside its
# processing transaction before it stalls.
stall_member() {
	local name=$1 heartbeat=$2
	STALLED+=("$name")
	psql_db -c "INSERT INTO group_stalls (member, heartbeat) VALUES ('$name', $heartbeat)" >/dev/null
}

# --- Run -----------------------------------------------------------------------

started=$(date +%s)

for ((i = 0; i < MEMBERS; i++)); do
	start_member
done
PGAPPNAME=group-sampler "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" \
	-c "CALL group_sampler(0.02)" >"$WORK/sampler.out" 2>&1 &
SAMPLER_PID=$!

"$PGBIN/pgbench" -n -c "$WRITERS" -j "$WRITERS" -T "$DURATION" -R "$RATE" \
	-f "$WORK/append.sql" "$DB" >"$WORK/pgbench.out" 2>&1 &
PGBENCH_PID=$!

# The controller: a kill (alternately kill -9 and pg_terminate_backend) and
# a new member at every tick; a stall at the second and, after a heartbeat
# inside the processing transaction, at the sixth; one more member at the
# fourth.
killed_signal=0
killed_terminate=0
ticks=$(awk "BEGIN { print int($DURATION / $KILL_EVERY) - 1 }")
for ((tick = 1; tick <= ticks; tick++)); do
	sleep "$KILL_EVERY"
	if victim=$(pick_member); then
		if ((tick % 2)); then
			kill_member "$victim" "kill -9"
			killed_signal=$((killed_signal + 1))
		else
			kill_member "$victim" terminated
			killed_terminate=$((killed_terminate + 1))
		fi
		start_member
	fi
	if ((tick == 2 || tick == 6)) && victim=$(pick_member); then
		stall_member "$victim" "$([ "$tick" -eq 6 ] && echo true || echo false)"
	fi
	if ((tick == 4)); then
		start_member
	fi
done

pgbench_rc=0
wait "$PGBENCH_PID" || pgbench_rc=$?
PGBENCH_PID=
psql_db -c "UPDATE group_control SET writers_done = true"

# Caught up: every partition's checkpoint at the head, which no longer moves.
caught_up=false
for ((i = 0; i < CATCH_UP * 10; i++)); do
	if is_true "SELECT min(p.checkpoint) >= eventstore.head()
	              FROM eventstore.subscription_partitions p WHERE p.subscription = 'stress'"; then
		caught_up=true
		break
	fi
	sleep 0.1
done
drained=$(( $(date +%s) - started ))

psql_db -c "UPDATE group_control SET stop = true"

# The members leave; one that does not within 15 s is stuck.
stuck=()
for ((i = 0; i < 150; i++)); do
	running=0
	for name in "${!MEMBER_PID[@]}"; do
		kill -0 "${MEMBER_PID[$name]}" 2>/dev/null && running=$((running + 1))
	done
	[ "$running" -eq 0 ] && break
	sleep 0.1
done
for name in "${!MEMBER_PID[@]}"; do
	pid=${MEMBER_PID[$name]}
	if kill -0 "$pid" 2>/dev/null; then
		stuck+=("$name")
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rc=0
	wait "$pid" || rc=$?
	MEMBER_FATE[$name]="exit status $rc"
	unset "MEMBER_PID[$name]"
done
sampler_rc=0
wait "$SAMPLER_PID" || sampler_rc=$?
SAMPLER_PID=

elapsed=$(( $(date +%s) - started ))

# --- Checks --------------------------------------------------------------------

check "the writers ran without errors (pgbench exit status $pgbench_rc)" \
	[ "$pgbench_rc" -eq 0 ]
if [ "$pgbench_rc" -ne 0 ]; then
	sed 's/^/# pgbench: /' "$WORK/pgbench.out" | tail -n 20
fi

failed_members=()
for name in "${!MEMBER_FATE[@]}"; do
	case ${MEMBER_FATE[$name]} in
		"kill -9" | terminated | "exit status 0") ;;
		*) failed_members+=("$name") ;;
	esac
done
check "the members not killed ran without errors and left (${#failed_members[@]} failed, ${#stuck[@]} stuck)" \
	[ ${#failed_members[@]} -eq 0 ]
for name in "${failed_members[@]}"; do
	echo "# $name: ${MEMBER_FATE[$name]}"
	sed "s/^/# $name: /" "$WORK/$name.out" | tail -n 10
done

check "the sampler ran without errors (psql exit status $sampler_rc)" [ "$sampler_rc" -eq 0 ]
if [ "$sampler_rc" -ne 0 ]; then
	sed 's/^/# sampler: /' "$WORK/sampler.out" | tail -n 10
fi

check "the group caught up with the head after the writers finished" $caught_up

check "some events were committed" \
	is_true "SELECT count(*) > 0 FROM eventstore.events"

check "every committed event was processed" \
	is_true "SELECT NOT EXISTS (SELECT insert_order, stream_id, stream_order FROM eventstore.events
	                            EXCEPT SELECT insert_order, stream_id, stream_order FROM processed)"

check "only committed events were processed" \
	is_true "SELECT NOT EXISTS (SELECT insert_order, stream_id, stream_order FROM processed
	                            EXCEPT SELECT insert_order, stream_id, stream_order FROM eventstore.events)"

check "no event was processed twice" \
	is_true "SELECT count(*) = count(DISTINCT insert_order) FROM processed"

check "each stream was processed in stream order" \
	is_true "SELECT NOT EXISTS (
	           SELECT 1 FROM (SELECT stream_order,
	                                 lag(stream_order) OVER (PARTITION BY stream_id ORDER BY id) AS prev
	                            FROM processed) p
	            WHERE p.stream_order <= p.prev)"

check "each event was processed by a member whose last join gave it the event's partition, within its lease" \
	is_true "SELECT NOT EXISTS (
	           SELECT 1 FROM processed x
	             JOIN eventstore.events e USING (insert_order)
	             JOIN eventstore.subscription_partitions sp
	               ON sp.subscription = 'stress' AND e.bucket BETWEEN sp.first_bucket AND sp.last_bucket
	            WHERE NOT EXISTS (
	                    SELECT 1 FROM (SELECT b.parts, b.lease_until FROM group_beliefs b
	                                    WHERE b.member = x.member AND b.joined_at <= x.processed_at
	                                    ORDER BY b.id DESC LIMIT 1) b
	                     WHERE sp.partition = ANY (b.parts) AND x.processed_at <= b.lease_until))"

samples=$(psql_db -c "SELECT count(*) FROM group_samples")
check "the sampler took samples while the group ran ($samples)" [ "$samples" -ge 20 ]

check "no sample found two members with a live lease believing they hold the same partition" \
	is_true "SELECT NOT EXISTS (SELECT 1 FROM group_samples WHERE held <> distinct_held)"

check "no sample found a member whose last join result was not its assignment" \
	is_true "SELECT NOT EXISTS (SELECT 1 FROM group_samples WHERE mismatched > 0)"

# From join to the member's next join or the end of its lease, whichever
# comes first, a member believes it holds what the join returned.
check "over the whole run, no two members believed they held a partition at the same time" \
	is_true "WITH b AS (
	           SELECT b.member, b.parts, b.joined_at,
	                  least(b.lease_until,
	                        lead(b.joined_at) OVER (PARTITION BY b.member ORDER BY b.id)) AS until
	             FROM group_beliefs b)
	         SELECT NOT EXISTS (
	           SELECT 1 FROM b x JOIN b y
	             ON x.member < y.member AND x.parts && y.parts
	            AND x.joined_at < y.until AND y.joined_at < x.until)"

check "members were killed while the group ran ($killed_signal by kill -9, $killed_terminate by pg_terminate_backend)" \
	[ "$((killed_signal > 0 && killed_terminate > 0))" -eq 1 ]

handovers=$(psql_db -c "
	SELECT count(*) FROM (SELECT b.member, lag(b.member) OVER (PARTITION BY p ORDER BY b.id) AS prev
	                        FROM group_beliefs b, unnest(b.parts) p) h
	 WHERE h.member <> h.prev")
check "partitions changed hands ($handovers times)" [ "$handovers" -gt 0 ]

read -r stalls stall_refusals <<<"$(psql_db -F ' ' -c "
	SELECT (SELECT count(*) FROM group_stalls WHERE started_at IS NOT NULL),
	       (SELECT count(*) FROM group_refusals WHERE stalled)")"
check "a member that stalled past its lease had its acknowledgement refused ($stall_refusals of $stalls stalls)" \
	[ "$((stalls > 0 && stall_refusals == stalls))" -eq 1 ]

read -r heartbeat_stalls waiting_samples <<<"$(psql_db -F ' ' -c "
	SELECT (SELECT count(*) FROM group_stalls WHERE started_at IS NOT NULL AND heartbeat),
	       (SELECT count(*) FROM group_samples WHERE lock_waits > 0)")"
check "a member stalled after a heartbeat inside its processing transaction ($heartbeat_stalls)" \
	[ "$heartbeat_stalls" -ge 1 ]
check "no sample found a member waiting for another transaction's row lock ($waiting_samples)" \
	[ "$waiting_samples" -eq 0 ]

transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
	"$WORK/pgbench.out")
transactions=${transactions:-0}
read -r events processed duplicates skips disorders joins rebalances refusals <<<"$(psql_db -F ' ' -c "
	SELECT (SELECT count(*) FROM eventstore.events),
	       (SELECT count(*) FROM processed),
	       (SELECT count(*) - count(DISTINCT insert_order) FROM processed),
	       (SELECT count(*) FROM (SELECT insert_order FROM eventstore.events
	                              EXCEPT SELECT insert_order FROM processed) s),
	       (SELECT count(*) FROM (SELECT stream_order,
	                                     lag(stream_order) OVER (PARTITION BY stream_id ORDER BY id) AS prev
	                                FROM processed) p WHERE p.stream_order <= p.prev),
	       (SELECT count(*) FROM group_beliefs),
	       (SELECT count(*) FROM (SELECT b.parts, lag(b.parts) OVER (PARTITION BY b.member ORDER BY b.id) AS prev
	                                FROM group_beliefs b) r WHERE r.parts <> r.prev),
	       (SELECT count(*) FROM group_refusals)")"

echo "# consumer: $MODE, writers: $WRITERS, transactions: $transactions, events committed: $events," \
	"processed: $processed, duplicates: $duplicates, skipped: $skips, out of order: $disorders;" \
	"members started: $NEXT_MEMBER, killed: $((killed_signal + killed_terminate)), stalled: $stalls;" \
	"joins: $joins, rebalances: $rebalances, handovers: $handovers, ES004 refusals: $refusals," \
	"samples: $samples (with a member waiting on a lock: $waiting_samples);" \
	"caught up after $drained s, seconds: $elapsed"

exit "$FAILED"
