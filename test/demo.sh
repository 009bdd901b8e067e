#!/bin/bash
# test/demo.sh: eventstore in five minutes, on a throwaway cluster.
#
# Run as root on Debian 12 from the repository: `bash test/demo.sh`.  It
# installs missing packages, builds and installs the extension, starts one
# PostgreSQL 15 cluster in /tmp/eventstore.XXXXXX with eventstore preloaded,
# and walks through a learning platform: every student's practice is a
# stream ("student-N") and the student's school is its partition key
# ("school-M").  Each step prints the SQL it runs and what came back:
#
#   1. create the database and the extension
#   2. 8 concurrent clients append practice for 5 s (pgbench, test/demo/)
#   3. a retried batch: same event ids, same answer, nothing written twice
#   4. a version conflict: SQLSTATE ES001
#   5. reading the global feed up to head(), then exactly what came after
#   6. the newsfeed flow: history up to the head, then live through
#      eventstore-follow, woken by the ticker's notification
#   7. a durable subscription with a filter, acknowledged, and its lag
#   8. how to connect
#
# The cluster keeps running afterwards; the last lines say how to connect and
# how to stop it.  If a step fails, the cluster is stopped and removed
# (ES_KEEP=1 keeps the directory).

set -u

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DB=eventstore_demo
STEP=0
PGBENCH_SECONDS=5

step() {
	STEP=$((STEP + 1))
	echo
	echo "== $STEP. $* =="
}

# Print SQL, then run it in the demo database (stop at the first error).
run_sql() {
	local sql=$1 db=${2:-$DB}
	printf '%s\n' "$sql" | sed 's/^/  sql> /'
	echo
	printf '%s\n' "$sql" |
		psql -X -v ON_ERROR_STOP=1 -P pager=off -d "$db" 2>&1 |
		sed 's/^/  /'
	[ "${PIPESTATUS[1]}" -eq 0 ] || es_die "step $STEP failed"
}

# Run SQL silently and print its single value.
query() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1" || es_die "step $STEP failed: $1"
}

# --- setup -----------------------------------------------------------------

es_install_packages
es_trap_cleanup

echo "== building and installing eventstore =="
es_make_workdir
build_log=$(es_build_install 2>&1) || {
	printf '%s\n' "$build_log" | tail -n 60
	es_die "build failed"
}
es_cluster_start demo || es_die "the demo cluster did not start (ES_KEEP=1 keeps its log)"
echo "cluster: PostgreSQL $PG_MAJOR on 127.0.0.1:$PGPORT, data in $ES_WORK/demo"

# --- 1. database and extension ---------------------------------------------

step "a database with the extension"
run_sql "CREATE DATABASE $DB;" postgres
run_sql "CREATE EXTENSION eventstore;"

# --- 2. concurrent appends -------------------------------------------------

step "8 clients append practice for $PGBENCH_SECONDS s"
echo "  Nine in ten transactions append one ExerciseCompleted event"
echo "  (test/demo/practice.sql), one in ten appends a lesson of ten events"
echo "  in one batch (test/demo/lesson.sql):"
echo
sed -n '/^\\set/,$p' "$ES_REPO/test/demo/practice.sql" | sed 's/^/  practice.sql> /'
echo
before=$(query "SELECT count(*) FROM eventstore.events") || exit 1
echo "  events before: $before"
cmd=(pgbench -n -c 8 -j 2 -T "$PGBENCH_SECONDS" --max-tries=10
	-f "$ES_REPO/test/demo/practice.sql@9" -f "$ES_REPO/test/demo/lesson.sql@1" "$DB")
echo "  \$ ${cmd[*]}"
start_ns=$(date +%s%N)
bench_out=$("${cmd[@]}" 2>&1)
bench_rc=$?
end_ns=$(date +%s%N)
printf '%s\n' "$bench_out" |
	grep -E '^(number of (clients|transactions actually|failed)|duration|latency average|tps|SQL script| - [0-9]+ transactions)|rror' |
	sed 's/^/  | /'
[ "$bench_rc" -eq 0 ] || es_die "pgbench failed (exit code $bench_rc)"
after=$(query "SELECT count(*) FROM eventstore.events") || exit 1
tps=$(printf '%s\n' "$bench_out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -n 1)
echo
echo "  events after:  $after"
awk -v n="$((after - before))" -v ns="$((end_ns - start_ns))" -v tps="${tps:-0}" 'BEGIN {
	s = ns / 1e9
	printf "  pgbench: %.0f transactions/s; %d events in %.1f s = %.0f events/s\n", tps, n, s, n / s
}'

# --- 3. a retried batch ----------------------------------------------------

step "a retried batch is answered, not written twice"
echo "  A new student's first lesson: three events with ids chosen by the"
echo "  client, expected_version 0 (the stream must not exist yet)."
BATCH_SQL="SELECT * FROM eventstore.append(
    'student-2001',
    ARRAY[
        eventstore.event('LessonStarted', '{\"lesson\": 1}', '{\"school\": \"school-7\"}',
                         '00000000-0000-4000-8000-000000000001'),
        eventstore.event('ExerciseCompleted', '{\"exercise\": 11, \"score\": 80}', '{\"school\": \"school-7\"}',
                         '00000000-0000-4000-8000-000000000002'),
        eventstore.event('LessonFinished', '{\"lesson\": 1}', '{\"school\": \"school-7\"}',
                         '00000000-0000-4000-8000-000000000003')],
    0,
    'school-7');"
echo
first=$(run_sql "$BATCH_SQL")
rc=$?
printf '%s\n' "$first"
[ "$rc" -eq 0 ] || exit 1
echo
echo "  The client timed out and sends the identical call again:"
echo
second=$(run_sql "$BATCH_SQL")
rc=$?
printf '%s\n' "$second"
[ "$rc" -eq 0 ] || exit 1
# Compare the result rows (event_id | stream_order | insert_order | duplicate).
printf '%s\n%s\n' "$first" "$second" | awk -F'|' '
	NF == 4 && $1 !~ /event_id/ {
		key = $1 "|" $2 "|" $3; gsub(/ /, "", $4)
		if (n < 3) { first[n++] = key; if ($4 != "f") bad = 1 }
		else { if (key != first[m++] || $4 != "t") bad = 1 }
	}
	END { exit (n == 3 && m == 3 && !bad) ? 0 : 1 }' ||
	es_die "the retry did not return the same three rows with duplicate = true"
version=$(query "SELECT eventstore.stream_version('student-2001')") || exit 1
[ "$version" = 3 ] || es_die "the retry changed the stream: version $version"
echo
echo "  check: every row came back with duplicate = true and the same positions;"
echo "  stream version is still $version."

# --- 4. a version conflict -------------------------------------------------

step "a version conflict"
echo "  A second device still believes student-2001 is at version 1:"
echo
run_sql "DO \$\$
DECLARE
    detail text;
BEGIN
    PERFORM * FROM eventstore.append(
        'student-2001',
        ARRAY[eventstore.event('LessonStarted', '{\"lesson\": 2}', '{\"school\": \"school-7\"}')],
        1,
        'school-7');
    RAISE EXCEPTION 'the append should have failed';
EXCEPTION WHEN SQLSTATE 'ES001' THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'SQLSTATE %: %', SQLSTATE, SQLERRM;
    RAISE NOTICE 'detail: %', detail;
END
\$\$;"
version=$(query "SELECT eventstore.stream_version('student-2001')") || exit 1
[ "$version" = 3 ] || es_die "the failed append changed the stream: version $version"
echo "  Nothing was written: stream version is $version."

# --- 5. the global feed ----------------------------------------------------

step "reading the global feed"
echo "  head() is the position up to which read_all() can be trusted to be"
echo "  complete; a reader that remembers it later reads exactly what came after."
echo
run_sql "SELECT eventstore.head() AS head \\gset
\\echo head = :head
SELECT insert_order, stream_id, stream_order, event_type, partition_key, data
  FROM eventstore.read_all(0, 5);
SELECT count(*) AS events_up_to_head
  FROM eventstore.events WHERE insert_order <= :head;
SELECT * FROM eventstore.append(
    'student-2001',
    ARRAY[eventstore.event('LessonStarted', '{\"lesson\": 2}', '{\"school\": \"school-7\"}'),
          eventstore.event('ExerciseCompleted', '{\"exercise\": 21, \"score\": 95}', '{\"school\": \"school-7\"}'),
          eventstore.event('LessonFinished', '{\"lesson\": 2}', '{\"school\": \"school-7\"}')],
    3,
    'school-7');
SELECT insert_order, stream_id, stream_order, event_type, data
  FROM eventstore.read_all(:head, 100);
SELECT count(*) = 3 AND bool_and(stream_id = 'student-2001') AS only_the_new_events
  FROM eventstore.read_all(:head, 100) \\gset
\\if :only_the_new_events
\\echo check: read_all(head, 100) returned exactly the three new events
\\else
DO \$\$ BEGIN RAISE EXCEPTION 'read_all(head, 100) did not return exactly the three new events'; END \$\$;
\\endif"

# --- 6. live: a follower wakes on the ticker's notification ----------------

step "the newsfeed: history up to the head, then live"
echo "  A page shows a student's feed: it takes the head, loads history up to"
echo "  it, then follows what comes after.  eventstore-follow does the live part:"
echo "  it LISTENs on \"eventstore\", which the database's ticker notifies when"
echo "  the head moves (writers never notify), and prints each event as JSON."
head=$(query "SELECT eventstore.head()") || exit 1
echo
echo "  head = $head; history: $(query "SELECT count(*) FROM eventstore.read_all(0, 1000000)") events up to it"
follow_out=$ES_WORK/follow.out
"$PG_BINDIR/eventstore-follow" --from "$head" --poll-interval 60000 -d "$DB" \
	>"$follow_out" 2>"$ES_WORK/follow.err" &
follow_pid=$!
echo "  \$ eventstore-follow --from $head --poll-interval 60000 -d $DB &"
sleep 1
run_sql "SELECT insert_order, stream_order FROM eventstore.append('student-2002',
    ARRAY[eventstore.event('LessonStarted', '{\"lesson\": 1}'),
          eventstore.event('LessonFinished', '{\"lesson\": 1}')], 0, 'school-7');"
start_ns=$(date +%s%N)
while [ "$(wc -l <"$follow_out")" -lt 2 ] && [ $(($(date +%s%N) - start_ns)) -lt 5000000000 ]; do
	sleep 0.01
done
got_ms=$((($(date +%s%N) - start_ns) / 1000000))
kill -TERM "$follow_pid"
wait "$follow_pid"
follow_rc=$?
echo "  the follower printed (within ~$got_ms ms of the commit; its poll interval is 60 s,"
echo "  so the notification woke it):"
sed 's/^/  | /' "$follow_out"
[ "$(wc -l <"$follow_out")" -eq 2 ] && grep -q '"student-2002"' "$follow_out" ||
	es_die "the follower did not print exactly the two new events (stderr: $(cat "$ES_WORK/follow.err"))"
[ "$follow_rc" -eq 0 ] || es_die "the follower did not exit cleanly on SIGTERM ($follow_rc)"
echo "  It exited with status 0 on SIGTERM."

# --- 7. a durable subscription ---------------------------------------------

step "a durable subscription with a filter, and its lag"
run_sql "SELECT eventstore.create_subscription('lessons-finished',
    event_types => ARRAY['LessonFinished'], partition_keys => ARRAY['school-7']);
SELECT insert_order, stream_id, event_type FROM eventstore.poll('lessons-finished', 10);
SELECT eventstore.ack('lessons-finished',
    (SELECT max(insert_order) FROM eventstore.poll('lessons-finished', 10)));
SELECT name, checkpoint, head, events_behind FROM eventstore.subscription_lag;"

# --- 8. how to connect -----------------------------------------------------

step "the cluster keeps running"
trap - EXIT INT TERM
cat <<EOF
  connect:  psql -h 127.0.0.1 -p $PGPORT -U postgres $DB
  stop:     runuser -u postgres -- $PG_BINDIR/pg_ctl -D $ES_WORK/demo stop
  clean up: rm -rf $ES_WORK
EOF
