#!/usr/bin/env bash
#
# test/stress/run.sh
#	The global feed never skips and never repeats, under concurrent writers.
#
# Several pgbench clients append random batches (1..20 events) to ~50
# streams, sleep a random 0..20 ms between append and commit so that commits
# land out of position order, and roll back about one transaction in ten.
# Meanwhile ONE reader follows eventstore.read_all(last_seen, 100) in a loop,
# as a consumer would (as a plain FROM item, which runs as the streaming
# scan of src/feedscan.c; STRESS_READER=function reads it WITH ORDINALITY,
# which calls the function itself; STRESS_READER=filtered reads
# read_all(last_seen, 100, ARRAY['Stressed'], 'stress-1'), a category read),
# recording every (insert_order, event_id) it is given, in order.  When the writers are done and the reader has caught up, the
# script checks that the reader saw every committed event (that passes its
# filter) exactly once and in strictly increasing insert_order, and prints TAP-like "ok - " /
# "not ok - " lines plus one line of figures.  Exit status 1 on any failure.
#
# Runs against an already running cluster with eventstore in
# shared_preload_libraries; connection from PGHOST, PGPORT, PGUSER (a
# superuser: it creates and drops its own database, "stress" by default).
#
# Knobs (environment): STRESS_DB, STRESS_CLIENTS (6), STRESS_SECONDS (15),
# STRESS_STREAMS (50), STRESS_PAGE (100), STRESS_MAX_DELAY (20 ms; smaller
# values commit more often, so that a reader that took its snapshot before
# its head would be caught), PG_CONFIG or PGBIN.
# STRESS_READER=naive makes the reader select from eventstore.events by
# insert_order instead of calling read_all: a self-test of this script,
# which must then report skips and fail.

set -euo pipefail

PG_CONFIG=${PG_CONFIG:-pg_config}
PGBIN=${PGBIN:-$("$PG_CONFIG" --bindir)}
DB=${STRESS_DB:-stress}
CLIENTS=${STRESS_CLIENTS:-6}
DURATION=${STRESS_SECONDS:-15}
STREAMS=${STRESS_STREAMS:-50}
PAGE=${STRESS_PAGE:-100}
# Longest pause between an append and its commit, in milliseconds.
MAX_DELAY=${STRESS_MAX_DELAY:-20}
# After the writers are done, the reader must catch up within this many seconds.
CATCH_UP=${STRESS_CATCH_UP:-20}
READER=${STRESS_READER:-read_all}
case $READER in
	read_all | function | filtered | naive) ;;
	*) echo "STRESS_READER must be read_all, function, filtered or naive" >&2; exit 2 ;;
esac
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/eventstore-stress.XXXXXX")
READER_PID=
FAILED=0

. "$(dirname "${BASH_SOURCE[0]}")/stresslib.sh"

cleanup() {
	if [ -n "$READER_PID" ] && kill -0 "$READER_PID" 2>/dev/null; then
		kill "$READER_PID" 2>/dev/null || true
		wait "$READER_PID" 2>/dev/null || true
	fi
	psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

# --- Setup --------------------------------------------------------------------

psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
psql_admin -c "CREATE DATABASE \"$DB\"" >/dev/null
psql_db -v reader="$READER" >/dev/null <<'SQL'
CREATE EXTENSION eventstore;

-- What the reader must see: every committed event, or those that pass the
-- filtered reader's filter.
SELECT :'reader' = 'filtered' AS filtered \gset
CREATE VIEW stress_expected AS
	SELECT e.* FROM eventstore.events e
	 WHERE NOT :'filtered'::boolean
		OR (e.event_type = 'Stressed' AND starts_with(e.stream_id, 'stress-1'));

-- Not transactional: counts the rollbacks the writers chose to do.
CREATE SEQUENCE stress_aborts;

CREATE TABLE stress_control (
	writers_done	boolean NOT NULL,
	reader_outcome	text
);
INSERT INTO stress_control VALUES (false, NULL);

-- What the reader was given: read number, row number in it, the event.
CREATE TABLE stress_seen (
	read_no			integer NOT NULL,
	ord				bigint NOT NULL,
	insert_order	bigint NOT NULL,
	event_id		uuid NOT NULL,
	stream_id		text NOT NULL,
	stream_order	bigint NOT NULL,
	PRIMARY KEY (read_no, ord)
);

/*
 * The reader: one session, a fresh transaction per read, resuming after the
 * last position it was given.  It stops when a read that started after the
 * writers were done returns nothing, or gives up after catch_up_timeout.
 */
CREATE PROCEDURE stress_follow(page integer, catch_up_timeout interval, reader text)
LANGUAGE plpgsql AS $proc$
DECLARE
	v_last		bigint := 0;
	v_read		integer := 0;
	v_got		bigint;
	v_done		boolean;
	v_done_at	timestamptz;
BEGIN
	LOOP
		SELECT c.writers_done INTO v_done FROM stress_control c;
		IF v_done AND v_done_at IS NULL THEN
			v_done_at := clock_timestamp();
		END IF;

		v_read := v_read + 1;
		IF reader = 'read_all' THEN
			-- the plain FROM item: the streaming scan (src/feedscan.c)
			INSERT INTO stress_seen (read_no, ord, insert_order, event_id, stream_id, stream_order)
				SELECT v_read, row_number() OVER (), r.insert_order, r.event_id,
					   r.stream_id, r.stream_order
				  FROM eventstore.read_all(v_last, page) r;
		ELSIF reader = 'filtered' THEN
			-- a category read: a type of two, streams stress-1 and stress-1N
			INSERT INTO stress_seen (read_no, ord, insert_order, event_id, stream_id, stream_order)
				SELECT v_read, row_number() OVER (), r.insert_order, r.event_id,
					   r.stream_id, r.stream_order
				  FROM eventstore.read_all(v_last, page, ARRAY['Stressed'], 'stress-1') r;
		ELSIF reader = 'function' THEN
			-- WITH ORDINALITY: the function itself (src/read.c)
			INSERT INTO stress_seen (read_no, ord, insert_order, event_id, stream_id, stream_order)
				SELECT v_read, r.ord, r.insert_order, r.event_id, r.stream_id, r.stream_order
				  FROM eventstore.read_all(v_last, page)
					   WITH ORDINALITY AS r(insert_order, stream_id, stream_order, event_id,
											event_type, schema_version, data, metadata,
											recorded_at, partition_key, ord);
		ELSE
			INSERT INTO stress_seen (read_no, ord, insert_order, event_id, stream_id, stream_order)
				SELECT v_read, row_number() OVER (ORDER BY e.insert_order),
					   e.insert_order, e.event_id, e.stream_id, e.stream_order
				  FROM (SELECT * FROM eventstore.events
						 WHERE insert_order > v_last
						 ORDER BY insert_order LIMIT page) e;
		END IF;
		GET DIAGNOSTICS v_got = ROW_COUNT;
		IF v_got > 0 THEN
			SELECT s.insert_order INTO v_last
			  FROM stress_seen s
			 WHERE s.read_no = v_read
			 ORDER BY s.ord DESC LIMIT 1;
		END IF;
		COMMIT;

		IF v_got = 0 THEN
			IF v_done THEN
				UPDATE stress_control SET reader_outcome = 'caught up';
				COMMIT;
				RETURN;
			END IF;
			PERFORM pg_sleep(0.005);
		END IF;

		IF v_done_at IS NOT NULL AND clock_timestamp() - v_done_at > catch_up_timeout THEN
			UPDATE stress_control
			   SET reader_outcome = format('gave up at %s, head %s', v_last, eventstore.head());
			COMMIT;
			RETURN;
		END IF;
	END LOOP;
END
$proc$;
SQL

cat >"$WORK/append.sql" <<SQL
\\set stream random(1, $STREAMS)
\\set batch random(1, 20)
\\set delay random(0, $MAX_DELAY)
\\set roll random(1, 10)
BEGIN;
SELECT count(*) FROM eventstore.append('stress-' || :stream, ARRAY(SELECT eventstore.event(CASE WHEN i % 3 = 0 THEN 'Other' ELSE 'Stressed' END, pg_catalog.jsonb_build_object('client', :client_id, 'i', i)) FROM pg_catalog.generate_series(1, :batch) i));
\\sleep :delay ms
\\if :roll = 1
SELECT pg_catalog.nextval('stress_aborts');
ROLLBACK;
\\else
COMMIT;
\\endif
SQL

# --- Run -----------------------------------------------------------------------

started=$(date +%s)

psql_db -c "CALL stress_follow($PAGE, '$CATCH_UP seconds', '$READER')" \
	>"$WORK/reader.out" 2>&1 &
READER_PID=$!

pgbench_rc=0
"$PGBIN/pgbench" -n -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" \
	-f "$WORK/append.sql" "$DB" >"$WORK/pgbench.out" 2>&1 || pgbench_rc=$?

psql_db -c "UPDATE stress_control SET writers_done = true"

reader_rc=0
wait "$READER_PID" || reader_rc=$?
READER_PID=

elapsed=$(( $(date +%s) - started ))

# --- Checks --------------------------------------------------------------------

check "the writers ran without errors (pgbench exit status $pgbench_rc)" \
	[ "$pgbench_rc" -eq 0 ]
if [ "$pgbench_rc" -ne 0 ]; then
	sed 's/^/# pgbench: /' "$WORK/pgbench.out" | tail -n 20
fi

check "the reader ran without errors (psql exit status $reader_rc)" \
	[ "$reader_rc" -eq 0 ]
if [ "$reader_rc" -ne 0 ]; then
	sed 's/^/# reader: /' "$WORK/reader.out" | tail -n 20
fi

outcome=$(psql_db -c "SELECT coalesce(reader_outcome, 'none') FROM stress_control")
check "the reader caught up with the head after the writers finished ($outcome)" \
	[ "$outcome" = "caught up" ]

check "some events were committed" \
	is_true "SELECT count(*) > 0 FROM eventstore.events"

check "the reader saw every committed event it reads" \
	is_true "SELECT NOT EXISTS (SELECT insert_order, event_id FROM stress_expected
	                            EXCEPT SELECT insert_order, event_id FROM stress_seen)"

check "the reader saw only committed events it reads" \
	is_true "SELECT NOT EXISTS (SELECT insert_order, event_id FROM stress_seen
	                            EXCEPT SELECT insert_order, event_id FROM stress_expected)"

check "the reader saw no event twice" \
	is_true "SELECT count(*) = count(DISTINCT insert_order)
	            AND count(*) = count(DISTINCT event_id) FROM stress_seen"

check "the reader was given events in strictly increasing insert_order" \
	is_true "SELECT NOT EXISTS (
	           SELECT 1 FROM (SELECT insert_order,
	                                 lag(insert_order) OVER (ORDER BY read_no, ord) AS prev
	                            FROM stress_seen) s
	            WHERE s.insert_order <= s.prev)"

check "the reader got each event with its stored stream position" \
	is_true "SELECT NOT EXISTS (
	           SELECT 1 FROM stress_seen s JOIN eventstore.events e USING (insert_order)
	            WHERE (s.event_id, s.stream_id, s.stream_order)
	                  IS DISTINCT FROM (e.event_id, e.stream_id, e.stream_order))"

check "insert_order is unique across the log" \
	is_true "SELECT count(*) = count(DISTINCT insert_order) FROM eventstore.events"

check "every stream holds stream_order 1..version with no gap and no repeat" \
	is_true "SELECT NOT EXISTS (
	           SELECT 1 FROM eventstore.streams st
	             LEFT JOIN (SELECT stream_id, count(*) AS n, count(DISTINCT stream_order) AS d,
	                               min(stream_order) AS lo, max(stream_order) AS hi
	                          FROM eventstore.events GROUP BY stream_id) e USING (stream_id)
	            WHERE e.n IS DISTINCT FROM st.version OR e.d IS DISTINCT FROM st.version
	               OR e.lo IS DISTINCT FROM 1 OR e.hi IS DISTINCT FROM st.version)
	         AND (SELECT count(DISTINCT stream_id) FROM eventstore.events)
	           = (SELECT count(*) FROM eventstore.streams)"

check "within a stream, insert_order grows with stream_order" \
	is_true "SELECT NOT EXISTS (
	           SELECT 1 FROM (SELECT insert_order,
	                                 lag(insert_order) OVER (PARTITION BY stream_id
	                                                         ORDER BY stream_order) AS prev
	                            FROM eventstore.events) s
	            WHERE s.insert_order <= s.prev)"

transactions=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' \
	"$WORK/pgbench.out")
transactions=${transactions:-0}
aborted=$(psql_db -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM stress_aborts")
committed_xacts=$(psql_db -c "SELECT count(DISTINCT writer_xid) FROM eventstore.events")

check "committed appends ($committed_xacts) + rollbacks ($aborted) = pgbench transactions ($transactions)" \
	[ $((committed_xacts + aborted)) -eq "$transactions" ]

check "some transactions rolled back" [ "$aborted" -gt 0 ]

read -r events skips duplicates reads <<<"$(psql_db -F ' ' -c "
	SELECT (SELECT count(*) FROM eventstore.events),
	       (SELECT count(*) FROM (SELECT insert_order, event_id FROM stress_expected
	                              EXCEPT SELECT insert_order, event_id FROM stress_seen) x),
	       (SELECT count(*) - count(DISTINCT insert_order) FROM stress_seen),
	       (SELECT coalesce(max(read_no), 0) FROM stress_seen)")"

echo "# writers: $CLIENTS, transactions: $transactions, events committed: $events," \
	"transactions aborted: $aborted, reads: $reads, duplicates seen: $duplicates," \
	"skips found: $skips, seconds: $elapsed"

exit "$FAILED"
