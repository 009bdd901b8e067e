#!/bin/bash
# test/bench/run.sh: the benchmark suite of eventstore.
#
#     bash test/bench/run.sh            full run (3 repetitions, 40-45 min)
#     bash test/bench/run.sh --quick    smoke test (1 repetition, ~4 min)
#
# Like test/all.sh it installs missing packages, builds a copy of the tree
# and installs the extension, then starts ONE throwaway cluster (as the
# postgres user, on a free port) with durable settings: fsync,
# synchronous_commit and full_page_writes on, shared_buffers 4GB,
# wal_buffers 64MB, max_wal_size 8GB, checkpoint_timeout 30min,
# max_connections 50.  It prints a markdown table on stdout (progress goes to
# stderr) and writes test/bench/results/latest.md, latest.csv (one row per
# cell) and latest-raw.csv (one row per repetition).
#
# Every workload runs eventstore and its baselines in the same run,
# interleaved: for each client count, repetition 1 runs A, B, C, then
# repetition 2 runs A, B, C again, and so on, each a fresh pgbench run.  A
# cell reports the median over its repetitions of events/s, of the p50 and
# p99 latency of one transaction (one append or one read call; computed here
# from pgbench's per-transaction log), of WAL bytes per event (pg_stat_wal
# around the run, cluster-wide), and its ratio to the baseline it names.
# Every measured run starts with a CHECKPOINT, so that runs start equal and
# none inherits the writes of another; WAL per event therefore includes the
# full-page images of the pages a run touches first (more of them per event
# in short runs).  Method details: test/bench/benchlib.sh.
#
# Commit probe: every repetition (of every client count of a workload)
# starts with BENCH_PROBE_SECONDS of W1's "commit" script at 1 client,
# recorded as workload "probe" in latest-raw.csv and tabled in latest.md
# (min / median / max per workload).  Ratios are taken within a
# repetition; the probes show how much the machine drifted around them, and
# between one run and the next.
#
# Data: 10,000 streams s-1 .. s-10000 picked at random; events of ~200
# bytes of data and ~100 bytes of metadata (bench.payload/bench.metadata in
# bench.sql).  The baselines are in baseline.sql (schema "plain"); the
# peer is PgQ (extension pgq, package postgresql-15-pgq3), whose events
# carry the same bytes as text: data in ev_data, metadata in ev_extra1.
# PgQ is a queue, not an event store: no streams, versions or unique keys,
# one index (on ev_txid); nothing ticks it but the suite (no pgqd).
#
# pgbench runs -M prepared: each script's statements are parsed and planned
# once per connection (eventstore's functions keep their own plans in any
# case; a plain query run with -M simple pays its parse and plan on every
# call, which lowers the plain baselines).
#
# Workloads (clients 1, 2, 8 unless said; pgbench -j 2; -M prepared):
#   W1   one event per append to a random stream, autocommit:
#          es       SELECT * FROM eventstore.append(s, ARRAY[event(...)])
#          plain    SELECT plain.append(s, ...): advisory lock on the
#                   stream, then INSERT ... SELECT max(version) + 1
#          commit   INSERT INTO plain.tiny: the cost of a commit alone
#          pgq      SELECT pgq.insert_event('bench', type, data, metadata,
#                   NULL, NULL, NULL) (es shows it as "÷ pgq")
#   W2   a batch of 100 events to one random stream:
#          es              one append of an ARRAY[...] of 100 events
#          es-json         one append of the same events as one JSON array,
#                          sent as a text parameter (ratio: ÷ es)
#          es-param        the array form with each event's data and metadata
#                          sent as parameters (es has them as constants of its
#                          prepared statement, parsed once)
#          plain-multirow  advisory lock, then one INSERT of a VALUES list
#                          of 100 rows, versions = max(version) + i
#          setbased        the same lock, INSERT ... SELECT generate_series
#          pgq             BEGIN, one statement calling pgq.insert_event
#                          for each of 100 rows of a VALUES list, COMMIT
#                          (a statement per insert_event instead costs
#                          100 round trips: about a fifth of the events/s
#                          at 1 client, a third at 8)
#   W2b  batches of 1,000 events (clients 1, 2), es, against
#          copy-indexed    COPY of BENCH_COPY_ROWS (1M) events from a CSV
#                          file in one transaction into a fresh copy of
#                          plain.events with its indexes
#          copy-unindexed  the same into a table without indexes
#        (COPY is timed with clock_timestamp(), commit included)
#   W3   read a whole 100-event stream, clients 1 and 8 (on 2 cores, 1
#        client mostly waits on round trips; 8 keep the CPUs busy and show
#        what a call costs).  Streams r-1 .. r-N (BENCH_READ_STREAMS) made
#        by bench.make_read_streams, the same events in both stores,
#        appended round-robin over the streams (event 1 of every stream,
#        then event 2, ...), so a stream's 100 events lie on 100 different
#        heap pages as in a live store.  W3 runs first, while both stores
#        hold the read streams and nothing else (W6 reads them again in a
#        preloaded database):
#          es       SELECT * FROM eventstore.read_stream(r)  (10 columns)
#          plain    SELECT * FROM plain.events WHERE stream_id = r ORDER BY version
#                   (the 8 columns the table has: no schema_version,
#                   no partition_key)
#        events/s counts events read (100 per call)
#   W7   8 clients append one event each to ONE hot stream with an exact
#        expected version, retrying on conflict inside a PL/pgSQL function
#        (bench.es_append_expected / bench.plain_append_expected): events/s
#        are successful appends, the notes give the conflict rate
#        (conflicts / attempts)
#   W5   head lag: W1-style es appends with 2 clients while bench.head_lag()
#        samples, every 20 ms, the newest committed position and head();
#        the lag of an event is the time from the first sample that shows
#        it committed to the first sample whose head() covers it (method and
#        resolution: bench.sql).  Variants: no other transaction open
#        (control), a transaction that wrote in ANOTHER database kept open
#        for the whole run, and one that wrote to an unrelated table of the
#        SAME database.  Target: under 50 ms.
#   W6   scale: W1, W2 and W3 again, with BENCH_W6_CLIENTS clients, in two
#        new databases: one empty (variants "@0", only W3's read streams)
#        and one preloaded with BENCH_PRELOAD (10M) events in batches of
#        1,000 through pgbench with 2 clients (plain.events gets the same
#        through plain-multirow; both preloads are reported, 1 run each).
#        The @0 and @10M runs are interleaved; ratio = @10M / @0.  Both
#        databases grow by what the workloads append (W2 most: it runs
#        last), so "@0" means "starting empty".
#   W4   catch-up in the preloaded database: read the global feed from 0 in
#        pages of 1,000 until BENCH_CATCHUP events (bench.catchup('es'):
#        read_all in a PL/pgSQL loop) vs the same loop as a plain indexed
#        range scan over plain.events by id ('plain', one unpartitioned
#        table: the baseline) and over eventstore.events itself ('events',
#        8 partitions merged by a MergeAppend: "÷ events" in the notes);
#        1 client; p50/p99 are per page.  es-feed: one eventstore.open_feed
#        cursor fetched row by row in the same loop.  pgq: PgQ's consumer
#        path over a queue of BENCH_CATCHUP events ticked every 1,000
#        (bench.pgq_preload, reported as "W4 preload"; the queue holds only
#        those, where the other stores hold BENCH_PRELOAD): next_batch,
#        get_batch_events, finish_batch, the consumer moved back to the
#        first tick before each run.  These run inside the server, so they
#        show the server's cost alone.  All in one transaction; PgQ's
#        finish_batch writes (WAL per event), the others only read.
#   W8   W1 at 8 clients with 0 and with 8 followers attached (eventstore-follow
#        processes from the head: LISTEN, wake on the ticker's notifications,
#        read every event); ratio = with 8 / with 0.  Target: >= 0.95.
#        "shared": all processes scheduled freely, so the followers' reads
#        compete with the writers for the cores; "pinned": writers' backends
#        on core 0, followers, their backends and the ticker on core 1, so
#        the ratio shows what followers cost writers through the server.
#   W9   notification latency: W1 at 2 clients runs while a probe appends an
#        event every 50 ms carrying clock_timestamp(); one eventstore-follow
#        prints every event and each probe's latency is taken when its line
#        arrives.  p50/p99 are those latencies (from the append call, so its
#        commit is included); events/s is the load's.
#   W4c  the same pages read by a client (pgbench, rows sent over the
#        socket), clients 1 and 8: read_all at a random page among the
#        first BENCH_CATCHUP positions (es), 100 pages of FETCH 1000 from
#        one open_feed cursor per transaction (es-feed), a poll of 1,000
#        at the same random place from a subscription that takes every
#        event (es-poll, through the gate and poll's filter), the range scan over
#        plain.events by id (plain, the baseline; SELECT *, its 8 columns)
#        and over eventstore.events (events, the same 10 columns as
#        read_all); pgq: one transaction of next_batch, get_batch_events
#        (1,000 rows sent) and finish_batch, each client its own consumer
#        (w4c-0 ..), which reads the queue's batches in order and starts
#        again at the first tick after the last; p50/p99 per transaction.
#
# Knobs (environment; defaults full / --quick):
#   BENCH_SECONDS (10 / 2)   duration of one pgbench run
#   BENCH_REPS (3 / 1)       repetitions per cell
#   BENCH_PRELOAD (10000000 / 200000), BENCH_COPY_ROWS (1000000 / 100000)
#   BENCH_READ_STREAMS (1000 / 200), BENCH_W5_SECONDS (10 / 3)
#   BENCH_W6_CLIENTS ("2"), BENCH_CATCHUP (1000000 / BENCH_PRELOAD)
#   BENCH_PROBE_SECONDS (2 / 1)   duration of one commit probe
#   ES_KEEP=1 keeps the work directory (/tmp/eventstore.XXXXXX).
# Exit status 1 if any run failed (the table marks it).

set -u

BENCH_SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_SELF/../lib.sh"
. "$BENCH_SELF/benchlib.sh"

MODE=full
for arg in "$@"; do
	case $arg in
		--quick) MODE=quick ;;
		-h | --help)
			sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
			exit 0
			;;
		*) es_die "unknown argument $arg (try --help)" ;;
	esac
done

if [ "$MODE" = quick ]; then
	: "${BENCH_SECONDS:=2}" "${BENCH_REPS:=1}" "${BENCH_PRELOAD:=200000}"
	: "${BENCH_COPY_ROWS:=100000}" "${BENCH_READ_STREAMS:=200}" "${BENCH_W5_SECONDS:=3}"
	: "${BENCH_PROBE_SECONDS:=1}"
else
	: "${BENCH_SECONDS:=10}" "${BENCH_REPS:=3}" "${BENCH_PRELOAD:=10000000}"
	: "${BENCH_COPY_ROWS:=1000000}" "${BENCH_READ_STREAMS:=1000}" "${BENCH_W5_SECONDS:=10}"
	: "${BENCH_PROBE_SECONDS:=2}"
fi
: "${BENCH_W6_CLIENTS:=2}" "${BENCH_STREAMS:=10000}"
if [ -z "${BENCH_CATCHUP:-}" ]; then
	BENCH_CATCHUP=$((BENCH_PRELOAD < 1000000 ? BENCH_PRELOAD : 1000000))
fi
# W4c's pages of 1,000 (pgbench's :pages)
BENCH_PAGES=$((BENCH_CATCHUP / 1000))
CLIENTS="1 2 8"
# 10000000 -> 10M, 200000 -> 200k: the W6 variant names
PRELOAD_LABEL=$(awk -v n="$BENCH_PRELOAD" 'BEGIN {
	if (n >= 1000000 && n % 1000000 == 0) print n / 1000000 "M"
	else if (n >= 1000 && n % 1000 == 0) print n / 1000 "k"
	else print n }')
BENCH_RUN=0
BENCH_T0=$SECONDS

# Where the results land: the working tree, not the copy.
RESULTS=$ES_REPO/test/bench/results

# --- cluster -------------------------------------------------------------

# The durable settings, applied with ALTER SYSTEM and a restart on top of
# what es_cluster_start writes (port, socket, preload, fsync).
bench_configure() {
	bq postgres \
		-c "ALTER SYSTEM SET fsync = on" \
		-c "ALTER SYSTEM SET synchronous_commit = on" \
		-c "ALTER SYSTEM SET full_page_writes = on" \
		-c "ALTER SYSTEM SET shared_buffers = '4GB'" \
		-c "ALTER SYSTEM SET wal_buffers = '64MB'" \
		-c "ALTER SYSTEM SET max_wal_size = '8GB'" \
		-c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
		-c "ALTER SYSTEM SET max_connections = 50" \
		-c "ALTER SYSTEM SET shared_preload_libraries = 'eventstore'" ||
		return 1
	es_as_pg pg_ctl -D "$ES_WORK/cluster" -l "$ES_WORK/cluster.log" -w -t 120 restart >/dev/null || {
		tail -n 30 "$ES_WORK/cluster.log" >&2
		return 1
	}
}

# A database with the extension, PgQ and its queue "bench" (W1, W2), the
# baselines, the helpers and W3's read streams.
bench_create_db() {
	local db=$1
	bq postgres -c "CREATE DATABASE $db" &&
		bq "$db" -c "CREATE EXTENSION eventstore" -c "CREATE EXTENSION pgq" \
			-c "SELECT pgq.create_queue('bench')" \
			-f "$BENCH_SRC/baseline.sql" -f "$BENCH_SRC/bench.sql" >/dev/null &&
		bq "$db" -c "SELECT bench.make_read_streams($BENCH_READ_STREAMS)" >/dev/null &&
		bq "$db" -c "VACUUM ANALYZE" ||
		es_die "could not set up database $db"
}

# --- pgbench scripts -------------------------------------------------------

# The scripts spell the payloads out, so each one is parsed once per
# connection (-M prepared) and both stores get the same bytes.  Payload i
# is bench.payload(i) / bench.metadata(i).
gen_scripts() {
	local db=$1 p=$BENCH_WORK/payloads.tsv d1 m1 n
	bq "$db" -F $'\t' -c "SELECT i, bench.payload(i)::text, bench.metadata(i)::text
	                       FROM generate_series(1, 1000) i" >"$p" || es_die "payloads"
	IFS=$'\t' read -r _ d1 m1 <"$p"
	mkdir -p "$BENCH_SCRIPTS"

	cat >"$BENCH_SCRIPTS/w1_es.sql" <<-EOF
		-- W1 eventstore: one event appended to a random stream (autocommit)
		\set s random(1, :streams)
		SELECT * FROM eventstore.append('s-' || :s, ARRAY[eventstore.event('OrderPlaced', '$d1', '$m1')]);
	EOF
	cat >"$BENCH_SCRIPTS/w1_plain.sql" <<-EOF
		-- W1 plain: advisory lock on the stream, INSERT ... SELECT max(version) + 1
		\set s random(1, :streams)
		SELECT plain.append('s-' || :s, 'OrderPlaced', '$d1', '$m1');
	EOF
	cat >"$BENCH_SCRIPTS/w1_pgq.sql" <<-EOF
		-- W1 PgQ: one event into the queue "bench" (autocommit), the metadata in ev_extra1
		SELECT pgq.insert_event('bench', 'OrderPlaced', '$d1', '$m1', NULL, NULL, NULL);
	EOF
	cat >"$BENCH_SCRIPTS/w1_commit.sql" <<-EOF
		-- W1 commit: one tiny row per transaction, the cost of a commit
		\set s random(1, :streams)
		INSERT INTO plain.tiny (x) VALUES (:s);
	EOF
	for n in 100 1000; do
		gen_es_batch "$n" >"$BENCH_SCRIPTS/es_batch_$n.sql"
		gen_plain_batch "$n" >"$BENCH_SCRIPTS/plain_batch_$n.sql"
	done
	gen_pgq_batch 100 >"$BENCH_SCRIPTS/pgq_batch_100.sql"
	gen_es_json_batch >"$BENCH_SCRIPTS/es_json_batch_100.sql"
	BENCH_JSON_100=$(gen_es_json_value)
	gen_es_param_batch >"$BENCH_SCRIPTS/es_param_batch_100.sql"
	gen_es_param_args
	cat >"$BENCH_SCRIPTS/setbased_batch_100.sql" <<-EOF
		-- W2 setbased: 100 events to one random stream as INSERT ... SELECT over generate_series
		\set s random(1, :streams)
		BEGIN;
		SELECT pg_advisory_xact_lock(hashtext('s-' || :s));
		WITH base AS (SELECT coalesce(max(version), 0) AS v FROM plain.events WHERE stream_id = 's-' || :s)
		INSERT INTO plain.events (stream_id, version, event_id, event_type, data, metadata)
		SELECT 's-' || :s, base.v + g, gen_random_uuid(), 'OrderPlaced', '$d1'::jsonb, '$m1'::jsonb
		  FROM base, generate_series(1, 100) AS g;
		END;
	EOF
	cat >"$BENCH_SCRIPTS/w3_es.sql" <<-EOF
		-- W3 eventstore: read a whole 100-event stream
		\set r random(1, :nread)
		SELECT * FROM eventstore.read_stream('r-' || :r);
	EOF
	cat >"$BENCH_SCRIPTS/w3_plain.sql" <<-EOF
		-- W3 plain: read a whole 100-event stream
		\set r random(1, :nread)
		SELECT * FROM plain.events WHERE stream_id = 'r-' || :r ORDER BY version;
	EOF
	cat >"$BENCH_SCRIPTS/w7_es.sql" <<-EOF
		-- W7 eventstore: one event to the hot stream with its exact version, retried on ES001
		SELECT bench.es_append_expected('hot', '$d1', '$m1');
	EOF
	cat >"$BENCH_SCRIPTS/w7_plain.sql" <<-EOF
		-- W7 plain: one event to the hot stream as max(version) + 1, retried on unique violation
		SELECT bench.plain_append_expected('hot', '$d1', '$m1');
	EOF
	# W4 from a client: one page of 1,000 at a random place in the first
	# :pages thousand positions, the rows sent to pgbench
	cat >"$BENCH_SCRIPTS/w4_es.sql" <<-EOF
		-- W4 eventstore: one page of the global feed through read_all
		\set p random(0, :pages - 1) * 1000
		SELECT * FROM eventstore.read_all(:p, 1000);
	EOF
	cat >"$BENCH_SCRIPTS/w4_poll.sql" <<-EOF
		-- W4 eventstore: the same page polled from a subscription (no filter, no lock)
		\set p random(0, :pages - 1) * 1000
		SELECT * FROM eventstore.poll('catchup', 1000, :p);
	EOF
	cat >"$BENCH_SCRIPTS/w4_plain.sql" <<-EOF
		-- W4 baseline: the same page as an indexed range scan over plain.events (one table) by id
		\set p random(0, :pages - 1) * 1000
		SELECT * FROM plain.events WHERE id > :p ORDER BY id LIMIT 1000;
	EOF
	cat >"$BENCH_SCRIPTS/w4_events.sql" <<-EOF
		-- W4 baseline: the same page as an indexed range scan over eventstore.events (8 partitions)
		\set p random(0, :pages - 1) * 1000
		SELECT $ES_W4_COLUMNS FROM eventstore.events WHERE insert_order > :p ORDER BY insert_order LIMIT 1000;
	EOF
	cat >"$BENCH_SCRIPTS/w4_pgq.sql" <<-EOF
		-- W4 PgQ: the consumer's next batch of 1,000 (its own consumer per client), read and finished
		BEGIN;
		SELECT bench.pgq_next_batch('catchup', 'w4c-' || :client_id) AS batch \gset
		SELECT * FROM pgq.get_batch_events(:batch);
		SELECT pgq.finish_batch(:batch);
		COMMIT;
	EOF
	{
		echo "-- W4 eventstore: 100 pages of 1,000 fetched from one open_feed cursor"
		echo "\set p random(0, :pages - 100) * 1000"
		echo "BEGIN;"
		echo "SELECT eventstore.open_feed(:p, 'feed');"
		for ((n = 0; n < 100; n++)); do echo "FETCH 1000 FROM feed;"; done
		echo "COMMIT;"
	} >"$BENCH_SCRIPTS/w4_feed.sql"
	chown -R postgres: "$BENCH_WORK"
}

ES_W4_COLUMNS="insert_order, stream_id, stream_order, event_id, event_type, schema_version, data, metadata, recorded_at, partition_key"

# eventstore: N events to one random stream in one append call.
# eventstore, JSON: the same 100 events as one JSON array sent as a text
# parameter (pgbench's :batch100, set by bench_pgbench from BENCH_JSON_100),
# the way a driver sends them.
gen_es_json_batch() {
	echo "-- eventstore: 100 events to one random stream in one append, sent as one JSON parameter"
	echo '\set s random(1, :streams)'
	echo "SELECT count(*) FROM eventstore.append('s-' || :s, :batch100::jsonb);"
}

# eventstore, parameters: the array form with each event's data and
# metadata sent as parameters (pgbench's :d1 .. :d100, :m1 .. :m100, set by
# bench_pgbench from BENCH_PARAM_ARGS), the way a driver sends an ARRAY[...]
# of eventstore.event() calls; es keeps them as constants of its prepared
# statement, so their JSON is parsed once, at PREPARE.
gen_es_param_batch() {
	echo "-- eventstore: 100 events to one random stream in one append, data and metadata as parameters"
	echo '\set s random(1, :streams)'
	echo "SELECT count(*) FROM eventstore.append('s-' || :s, ARRAY["
	awk -v q="'" '{ printf "\teventstore.event(%sOrderPlaced%s, :d%d::jsonb, :m%d::jsonb)%s\n",
		q, q, NR, NR, (NR < 100 ? "," : "]);") }' < <(head -n 100 "$BENCH_WORK/payloads.tsv")
}

BENCH_PARAM_ARGS=()
gen_es_param_args() {
	local i d m
	BENCH_PARAM_ARGS=()
	while IFS=$'\t' read -r i d m; do
		BENCH_PARAM_ARGS+=(-D "d$i=$d" -D "m$i=$m")
	done < <(head -n 100 "$BENCH_WORK/payloads.tsv")
}

BENCH_JSON_100=""
gen_es_json_value() {
	head -n 100 "$BENCH_WORK/payloads.tsv" | awk -F'\t' '{
		printf "%s{\"type\": \"OrderPlaced\", \"data\": %s, \"metadata\": %s}",
			(NR > 1 ? ", " : "["), $2, $3 } END { print "]" }'
}

gen_es_batch() {
	local n=$1
	echo "-- eventstore: $n events to one random stream in one append"
	echo '\set s random(1, :streams)'
	echo "SELECT count(*) FROM eventstore.append('s-' || :s, ARRAY["
	head -n "$n" "$BENCH_WORK/payloads.tsv" | awk -F'\t' -v n="$n" -v q="'" '{
		printf "\teventstore.event(%sOrderPlaced%s, %s%s%s, %s%s%s)%s\n",
			q, q, q, $2, q, q, $3, q, (NR < n ? "," : "]);") }'
}

# plain: N events to one random stream as one multi-row INSERT, under the
# stream's advisory lock, versions max(version) + i.
gen_plain_batch() {
	local n=$1
	echo "-- plain: $n events to one random stream as one multi-row INSERT"
	echo '\set s random(1, :streams)'
	echo 'BEGIN;'
	echo "SELECT pg_advisory_xact_lock(hashtext('s-' || :s));"
	echo "WITH base AS (SELECT coalesce(max(version), 0) AS v FROM plain.events WHERE stream_id = 's-' || :s)"
	echo "INSERT INTO plain.events (stream_id, version, event_id, event_type, data, metadata)"
	echo "SELECT 's-' || :s, base.v + b.i, gen_random_uuid(), b.t, b.d, b.m"
	echo "  FROM base, (VALUES"
	head -n "$n" "$BENCH_WORK/payloads.tsv" | awk -F'\t' -v n="$n" -v q="'" '{
		printf "\t(%d, %sOrderPlaced%s, %s%s%s::jsonb, %s%s%s::jsonb)%s\n",
			NR, q, q, q, $2, q, q, $3, q, (NR < n ? "," : ") AS b(i, t, d, m);") }'
	echo 'END;'
}

# PgQ: N events into the queue "bench" in one transaction, one
# pgq.insert_event call per event, all in one statement over a VALUES list
# (so the client sends one statement, as for the other batches, not N).
gen_pgq_batch() {
	local n=$1
	echo "-- PgQ: $n events into the queue in one transaction, one insert_event each, one statement"
	echo 'BEGIN;'
	echo "SELECT count(pgq.insert_event('bench', 'OrderPlaced', b.d, b.m, NULL, NULL, NULL))"
	echo "  FROM (VALUES"
	head -n "$n" "$BENCH_WORK/payloads.tsv" | awk -F'\t' -v n="$n" -v q="'" '{
		printf "\t(%s%s%s, %s%s%s)%s\n", q, $2, q, q, $3, q, (NR < n ? "," : ") AS b(d, m);") }'
	echo 'COMMIT;'
}

# --- workloads -------------------------------------------------------------

# bench_probe DB LABEL REP: the commit-rate probe taken before every
# repetition, BENCH_PROBE_SECONDS of W1's commit script (one tiny row per
# transaction) at 1 client, recorded as workload "probe", variant LABEL
# (what it precedes).  Like every run it starts with a CHECKPOINT, so it
# sees the machine as the run after it will, not the writeback of the run
# before.  The report lists the probes, so that a machine that got slower
# or faster during a run, or between runs, shows.
bench_probe() {
	local db=$1 label=$2 rep=$3
	bench_pgbench "$db" 1 w1_commit.sql 1 -T "$BENCH_PROBE_SECONDS"
	bench_record probe 1 "$label" "$rep" "" ""
}

# run_matrix WORKLOAD DB "CLIENTS..." SPEC...
# SPEC is "variant|script|events per transaction|baseline|alt baselines|db";
# {c} in a baseline stands for the client count, db defaults to DB.  For
# each client count, each repetition starts with a commit probe and runs
# every SPEC once, the order rotated by one per repetition (A B C, B C A,
# C A B) so that no variant is always first.
run_matrix() {
	local workload=$1 db=$2 clients_list=$3
	shift 3
	local specs=("$@") n=$# c rep k spec name script per base alts sdb
	for c in $clients_list; do
		for ((rep = 1; rep <= BENCH_REPS; rep++)); do
			bench_probe "$db" "$workload c=$c" "$rep"
			for ((k = 0; k < n; k++)); do
				spec=${specs[(k + rep - 1) % n]}
				IFS='|' read -r name script per base alts sdb <<<"$spec"
				bench_pgbench "${sdb:-$db}" "$c" "$script" "$per"
				bench_record "$workload" "$c" "$name" "$rep" "${base//\{c\}/$c}" "${alts//\{c\}/$c}"
			done
		done
	done
}

# The variants of W1, W2 and W3: "variant|script|events per transaction".
W1_VARIANTS=("es|w1_es.sql|1" "plain|w1_plain.sql|1" "commit|w1_commit.sql|1")
W2_VARIANTS=("es|es_batch_100.sql|100" "plain-multirow|plain_batch_100.sql|100"
	"setbased|setbased_batch_100.sql|100")
W3_VARIANTS=("es|w3_es.sql|100" "plain|w3_plain.sql|100")

# W1 and W2 also run PgQ (not in W6: its queue is not preloaded).
w1() {
	run_matrix W1 "$1" "$CLIENTS" \
		"${W1_VARIANTS[0]}|W1/plain/{c}|W1/commit/{c};W1/pgq/{c}" "${W1_VARIANTS[1]}||" \
		"${W1_VARIANTS[2]}||" "pgq|w1_pgq.sql|1||"
}

w2() {
	run_matrix W2 "$1" "$CLIENTS" \
		"${W2_VARIANTS[0]}|W2/plain-multirow/{c}|W2/setbased/{c};W2/pgq/{c}" "${W2_VARIANTS[1]}||" \
		"${W2_VARIANTS[2]}||" "pgq|pgq_batch_100.sql|100||" \
		"es-json|es_json_batch_100.sql|100|W2/es/{c}|W2/es-param/{c};W2/plain-multirow/{c}" \
		"es-param|es_param_batch_100.sql|100|W2/es/{c}|"
}

w3() {
	run_matrix W3 "$1" "1 8" "${W3_VARIANTS[0]}|W3/plain/{c}|" "${W3_VARIANTS[1]}||"
}

# W6: the variants of one workload in the empty database (@0) and in the
# preloaded one (@10M), all interleaved; each @10M cell names its @0 cell
# as baseline.
w6() {
	local wl=$1 zero=$2 scale=$3
	shift 3
	local v specs=() name script per
	for v in "$@"; do
		IFS='|' read -r name script per <<<"$v"
		specs+=("$name@0|$script|$per|||$zero")
		specs+=("$name@$PRELOAD_LABEL|$script|$per|W6 $wl/$name@0/{c}||$scale")
	done
	run_matrix "W6 $wl" "$zero" "$BENCH_W6_CLIENTS" "${specs[@]}"
}

# W2b: es with batches of 1,000 against COPY of BENCH_COPY_ROWS events.
w2b() {
	local db=$1 rep c csv=$BENCH_WORK/copy.csv
	bq "$db" -c "COPY (SELECT 'c-' || (g % $BENCH_STREAMS + 1), g / $BENCH_STREAMS + 1,
	                          gen_random_uuid(), 'OrderPlaced', bench.payload(g), bench.metadata(g)
	                     FROM generate_series(0, $BENCH_COPY_ROWS - 1) g)
	             TO '$csv' WITH (FORMAT csv)" || es_die "could not write $csv"
	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		bench_probe "$db" W2b "$rep"
		for c in 1 2; do
			bench_pgbench "$db" "$c" es_batch_1000.sql 1000
			bench_record W2b "$c" es "$rep" "W2b/copy-indexed/1" "W2b/copy-unindexed/1"
		done
		copy_once "$db" "$csv" copy-indexed "INCLUDING ALL" "$rep"
		copy_once "$db" "$csv" copy-unindexed "INCLUDING DEFAULTS INCLUDING IDENTITY" "$rep"
	done
	rm -f "$csv"
}

# One COPY of the CSV file into a fresh table like plain.events, in one
# transaction, timed inside the server from before BEGIN to after COMMIT.
copy_once() {
	local db=$1 csv=$2 variant=$3 like=$4 rep=$5
	bq "$db" -c "DROP TABLE IF EXISTS plain.copy_target" \
		-c "CREATE TABLE plain.copy_target (LIKE plain.events $like)" || es_die "copy table"
	bench_psql_timed "$db" "
		SELECT clock_timestamp() AS t0 \gset
		BEGIN;
		COPY plain.copy_target (stream_id, version, event_id, event_type, data, metadata)
			FROM '$csv' WITH (FORMAT csv);
		COMMIT;
		SELECT $BENCH_COPY_ROWS, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), NULL, NULL;"
	bench_record W2b 1 "$variant" "$rep" "" ""
	bq "$db" -c "DROP TABLE plain.copy_target"
}

w7() {
	local db=$1
	run_matrix W7 "$db" 8 \
		"es|w7_es.sql|1|W7/plain/{c}|" \
		"plain|w7_plain.sql|1||"
}

# W5: one measurement.  OPEN_DB empty: no other transaction; otherwise a
# transaction that inserted into OPEN_DB's public.unrelated stays open
# (sleeping) for the whole run.
w5_once() {
	local db=$1 variant=$2 open_db=$3 rep=$4 base=$5
	local open_job="" sampler_job lagfile=$BENCH_WORK/lag.out row i
	bench_pre_run
	if [ -n "$open_db" ]; then
		es_as_pg PGAPPNAME=bench_open_txn psql -X -q -d "$open_db" \
			-c "BEGIN" -c "INSERT INTO public.unrelated VALUES (1)" \
			-c "SELECT pg_sleep(3600)" -c "COMMIT" >/dev/null 2>&1 &
		open_job=$!
		for ((i = 0; i < 100; i++)); do
			[ "$(bq postgres -c "SELECT count(*) FROM pg_stat_activity
			                      WHERE application_name = 'bench_open_txn'
			                        AND backend_xid IS NOT NULL AND state = 'active'")" = 1 ] && break
			sleep 0.1
		done
	fi
	bq "$db" -c "SELECT samples, observed, unresolved, lag_p50_ms, lag_p99_ms, lag_max_ms
	               FROM bench.head_lag($BENCH_W5_SECONDS + 1, 20)" >"$lagfile" 2>&1 &
	sampler_job=$!
	BENCH_SKIP_CHECKPOINT=1 bench_pgbench "$db" 2 w1_es.sql 1 -T "$BENCH_W5_SECONDS"
	wait "$sampler_job"
	local still_open=""
	if [ -n "$open_db" ]; then
		still_open=$(bq postgres -c "SELECT count(*) FROM pg_stat_activity
		                              WHERE application_name = 'bench_open_txn' AND backend_xid IS NOT NULL")
		bq postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		                 WHERE application_name = 'bench_open_txn'" >/dev/null
		wait "$open_job" 2>/dev/null
	fi
	row=$(tail -n 1 "$lagfile")
	case $row in
		*'|'*'|'*'|'*)
			IFS='|' read -r R_LAG_SAMPLES R_LAG_COMMITS R_LAG_UNRESOLVED \
				R_LAG_P50 R_LAG_P99 R_LAG_MAX <<<"$row"
			;;
		*)
			R_FAILED=1
			R_NOTE="sampler failed: $row"
			BENCH_FAILURES=$((BENCH_FAILURES + 1))
			;;
	esac
	if [ -n "$open_db" ] && [ "$still_open" != 1 ]; then
		R_FAILED=1
		R_NOTE+="; the other transaction was not open at the end"
		BENCH_FAILURES=$((BENCH_FAILURES + 1))
	fi
	bench_record W5 2 "$variant" "$rep" "$base" ""
}

w5() {
	local db=$1 rep
	bq postgres -c "CREATE DATABASE bench_other" || es_die "bench_other"
	bq bench_other -c "CREATE TABLE public.unrelated (x int)" || es_die "unrelated"
	bq "$db" -c "CREATE TABLE public.unrelated (x int)" || es_die "unrelated"
	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		bench_probe "$db" W5 "$rep"
		w5_once "$db" es-no-open-txn "" "$rep" ""
		w5_once "$db" es-open-txn-other-db bench_other "$rep" "W5/es-no-open-txn/2"
		w5_once "$db" es-open-txn-same-db "$db" "$rep" "W5/es-no-open-txn/2"
	done
	bq postgres -c "DROP DATABASE bench_other WITH (FORCE)"
}

# W6 preload: BENCH_PRELOAD events into each store, 1,000 per transaction,
# 2 clients; reported as one run each.
preload() {
	local db=$1 per_client=$((BENCH_PRELOAD / 1000 / 2))
	bench_pgbench "$db" 2 es_batch_1000.sql 1000 -t "$per_client"
	bench_record "W6 preload" 2 es 1 "W6 preload/plain-multirow/2" ""
	bench_pgbench "$db" 2 plain_batch_1000.sql 1000 -t "$per_client"
	bench_record "W6 preload" 2 plain-multirow 1 "" ""
	bq "$db" -c "VACUUM ANALYZE" || es_die "vacuum"
}

# W4's PgQ queue "catchup" in the preloaded database: BENCH_CATCHUP events
# in batches of 1,000 (bench.pgq_preload), one run; and W4c's consumers,
# w4c-0 .. w4c-7 (one per pgbench client), registered at its first tick.
pgq_preload() {
	local db=$1 i
	bq "$db" -c "SELECT pgq.create_queue('catchup')" >/dev/null || es_die "pgq queue"
	bench_psql_timed "$db" "SELECT clock_timestamp() AS t0 \gset
		CALL bench.pgq_preload('catchup', $BENCH_CATCHUP);
		SELECT $BENCH_CATCHUP, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), NULL, NULL;"
	bench_record "W4 preload" 1 pgq 1 "" ""
	for ((i = 0; i < 8; i++)); do
		bq "$db" -c "SELECT pgq.register_consumer_at('catchup', 'w4c-$i', bench.pgq_first_tick('catchup'))" \
			>/dev/null || es_die "pgq consumer"
	done
	bq "$db" -c "SELECT eventstore.create_subscription('catchup')" >/dev/null ||
		es_die "subscription"
	bq "$db" -c "VACUUM ANALYZE" || es_die "vacuum"
}

# W4 in the server, interleaved per repetition; es, es-feed and pgq name
# plain (one table) as baseline and the partitioned table as alternative.
w4() {
	local db=$1 rep source name
	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		bench_probe "$db" W4 "$rep"
		for source in es feed pgq events plain; do
			name=$source
			[ "$source" = feed ] && name=es-feed
			bench_psql_timed "$db" "SELECT events, seconds, p50_ms, p99_ms FROM bench.catchup('$source', $BENCH_CATCHUP)"
			case $source in
				es | feed) bench_record W4 1 "$name" "$rep" "W4/plain/1" "W4/events/1;W4/pgq/1" ;;
				pgq) bench_record W4 1 "$name" "$rep" "W4/plain/1" "W4/events/1" ;;
				*) bench_record W4 1 "$name" "$rep" "" "" ;;
			esac
		done
	done
}

# W4c: the same from a client at 1 and 8 clients, interleaved by run_matrix.
w4c() {
	local db=$1 alts="W4c/events/{c};W4c/pgq/{c}"
	run_matrix W4c "$db" "1 8" \
		"es|w4_es.sql|1000|W4c/plain/{c}|$alts" \
		"es-feed|w4_feed.sql|100000|W4c/plain/{c}|$alts" \
		"es-poll|w4_poll.sql|1000|W4c/plain/{c}|$alts" \
		"pgq|w4_pgq.sql|1000|W4c/plain/{c}|W4c/events/{c}" \
		"plain|w4_plain.sql|1000||" \
		"events|w4_events.sql|1000||"
}

# W8: W1 at 8 clients with 0 and with 8 followers attached.  A follower is
# an eventstore-follow process started at the head: it LISTENs, wakes on the
# ticker's notifications and reads every new event with read_all.  Two
# forms: "shared", everything scheduled freely on the machine's cores (the
# followers' reads then take CPU from the writers), and "pinned", with the
# writers' backends on core 0 and the followers, their backends and the
# ticker on core 1 (taskset), which leaves only what followers cost writers
# through the server itself: locks, notifications, the head.
w8_pin() {
	local db=$1 core=$2 filter=$3 pid
	for pid in $(bq "$db" -c "SELECT pid FROM pg_stat_activity WHERE $filter"); do
		taskset -p -c "$core" "$pid" >/dev/null 2>&1
	done
}

w8_once() {
	local db=$1 followers=$2 form=$3 rep=$4 base=$5 pids=() i head rc failed=0 pinner=""
	local launch=()
	head=$(bq "$db" -c "SELECT eventstore.head()") || es_die "head"
	[ "$form" = pinned ] && launch=(taskset -c 1)
	for ((i = 0; i < followers; i++)); do
		"${launch[@]}" "$PG_BINDIR/eventstore-follow" --from "$head" -d "$db" >/dev/null \
			2>>"$BENCH_LOGS/follow.err" &
		pids+=($!)
	done
	[ "$followers" -gt 0 ] && sleep 1
	if [ "$form" = pinned ]; then
		w8_pin "$db" 1 "application_name = 'eventstore-follow' OR backend_type = 'eventstore ticker'"
		( sleep 0.5; w8_pin "$db" 0 "application_name = 'pgbench'" ) &
		pinner=$!
	fi
	bench_pgbench "$db" 8 w1_es.sql 1
	[ -n "$pinner" ] && wait "$pinner"
	for i in "${pids[@]}"; do
		kill -TERM "$i"
		wait "$i"
		rc=$?
		[ "$rc" -eq 0 ] || failed=1
	done
	if [ "$failed" -ne 0 ]; then
		R_FAILED=1
		R_NOTE="a follower failed (see logs/follow.err)"
		BENCH_FAILURES=$((BENCH_FAILURES + 1))
	fi
	bench_record W8 8 "es-$followers-followers-$form" "$rep" "$base" ""
}

w8() {
	local db=$1 rep
	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		bench_probe "$db" W8 "$rep"
		w8_once "$db" 0 shared "$rep" ""
		w8_once "$db" 8 shared "$rep" "W8/es-0-followers-shared/8"
		[ "$(nproc)" -ge 2 ] || continue
		w8_once "$db" 0 pinned "$rep" ""
		w8_once "$db" 8 pinned "$rep" "W8/es-0-followers-pinned/8"
	done
	# the pinned ticker may run anywhere again
	w8_pin "$db" "0-$(($(nproc) - 1))" "backend_type = 'eventstore ticker'"
}

# W9: notification latency under append load.  While W1 runs at 2 clients,
# a probe appends one event every 50 ms whose data carries the time it was
# built (clock_timestamp() in the append call, so the figure includes the
# append and its commit); one eventstore-follow, woken by notifications,
# prints every event, and each probe's latency is taken as its line arrives.
# p50/p99 are those latencies; events/s is the load's.
w9_once() {
	local db=$1 rep=$2 head lat=$BENCH_WORK/latency.out pidfile=$BENCH_WORK/follow.pid
	local probe_job follow_job n sorted=$BENCH_WORK/latency.sorted
	head=$(bq "$db" -c "SELECT eventstore.head()") || es_die "head"
	: >"$lat"
	(
		sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$pidfile" \
			"$PG_BINDIR/eventstore-follow" --from "$head" -d "$db" 2>>"$BENCH_LOGS/follow.err" |
			perl -MTime::HiRes=time -ne '
				BEGIN { $| = 1 }
				printf "%.0f\n", (time() - $1) * 1e6 if /"Probe".*"sent": ([0-9.]+)/'
	) >"$lat" &
	follow_job=$!
	sleep 1
	(
		end=$((SECONDS + BENCH_W5_SECONDS))
		while [ "$SECONDS" -lt "$end" ]; do
			bq "$db" -c "SELECT 1 FROM eventstore.append('probe',
				ARRAY[eventstore.event('Probe',
					jsonb_build_object('sent', extract(epoch FROM clock_timestamp())))])" >/dev/null
			sleep 0.05
		done
	) &
	probe_job=$!
	BENCH_SKIP_CHECKPOINT=1 bench_pgbench "$db" 2 w1_es.sql 1 -T "$BENCH_W5_SECONDS"
	wait "$probe_job"
	sleep 1
	kill -TERM "$(cat "$pidfile")"
	wait "$follow_job"
	sort -n "$lat" >"$sorted"
	n=$(wc -l <"$sorted")
	R_P50=$(bench_percentile "$sorted" 0.50 1000)
	R_P99=$(bench_percentile "$sorted" 0.99 1000)
	R_NOTE="$n probes, max $(tail -n 1 "$sorted" | awk '{ printf "%.1f", $1 / 1000 }') ms"
	if [ "$n" -lt 10 ]; then
		R_FAILED=1
		R_NOTE+="; too few probes arrived"
		BENCH_FAILURES=$((BENCH_FAILURES + 1))
	fi
	bench_record W9 2 es-notify "$rep" "" ""
}

w9() {
	local db=$1 rep
	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		bench_probe "$db" W9 "$rep"
		w9_once "$db" "$rep"
	done
}

# --- report ----------------------------------------------------------------

report() {
	local md=$BENCH_WORK/latest.md table=$BENCH_WORK/table.md csv=$BENCH_WORK/latest.csv
	local probes=$BENCH_WORK/probes.md
	local pgversion mem cpu elapsed=$((SECONDS - BENCH_T0))

	bq postgres -v raw="$BENCH_RAW" -v csv="$csv" -v md="$table" -v probes="$probes" \
		-f "$BENCH_SRC/report.sql" >/dev/null || es_die "report.sql failed"

	pgversion=$(bq postgres -c "SELECT version()")
	mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

	{
		echo "# eventstore benchmark ($MODE mode)"
		echo
		echo "$(bq postgres -c "SELECT to_char(now(), 'YYYY-MM-DD HH24:MI TZ')"); eventstore $BENCH_COMMIT;" \
			"$BENCH_REPS repetition(s) of ${BENCH_SECONDS} s per cell, median reported;" \
			"$BENCH_STREAMS streams; W6 preload $BENCH_PRELOAD events; COPY $BENCH_COPY_ROWS rows."
		echo
		cat "$table"
		echo
		echo "events/s: appended (or read, W3/W4) events per second.  p50/p99: latency of one"
		echo "transaction (one append or read call; W4: one page of 1,000; W2b copy: none)."
		echo "ratio: this row's events/s divided by its baseline's (W6: preloaded / empty database)."
		echo "WAL B/event: pg_stat_wal.wal_bytes growth during the run / events (cluster-wide)."
		echo "Method and workloads: header of test/bench/run.sh."
		echo
		echo "## Commit probe"
		echo
		echo "Before every repetition: ${BENCH_PROBE_SECONDS} s of one-row commits (INSERT INTO plain.tiny)"
		echo "at 1 client.  Ratios above compare runs of the same repetition; these show how much"
		echo "the machine itself drifted during this run (compare them across runs, too)."
		echo
		cat "$probes"
		echo
		echo "## Machine"
		echo
		echo "- CPUs (nproc): $(nproc); memory: $mem; CPU: ${cpu:-unknown}"
		echo "- kernel: $(uname -sr)"
		echo "- $pgversion"
		echo "- run time: $((elapsed / 60)) min $((elapsed % 60)) s"
		echo
		echo "## Non-default settings (pg_settings WHERE source <> 'default')"
		echo
		echo "| name | value | source |"
		echo "|---|---|---|"
		bq postgres -F ' | ' -c "SELECT '| ' || name, current_setting(name), source || ' |'
		                          FROM pg_settings WHERE source <> 'default' ORDER BY name"
	} >"$md"

	cat "$md"
	mkdir -p "$RESULTS"
	cp "$md" "$RESULTS/latest.md"
	cp "$csv" "$RESULTS/latest.csv"
	cp "$BENCH_RAW" "$RESULTS/latest-raw.csv"
	bench_log "wrote $RESULTS/latest.md, latest.csv, latest-raw.csv"
}

# --- main ------------------------------------------------------------------

# All of it in one function, called from the last line: bash reads a script
# as it runs, so without this an edit to this file during a 30-minute run
# would make the running shell execute the edited bytes.
main() {
	es_install_packages
	es_trap_cleanup
	# The commit measured: the tree is copied now.
	BENCH_COMMIT=$(git -C "$ES_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ -n "$(git -C "$ES_REPO" status --porcelain -- src Makefile 2>/dev/null)" ]; then
		BENCH_COMMIT+=" (with uncommitted changes in src/)"
	fi
	es_make_workdir
	BENCH_SRC=$ES_WORK/src/test/bench
	BENCH_WORK=$ES_WORK/bench
	BENCH_SCRIPTS=$BENCH_WORK/scripts
	BENCH_LOGS=$BENCH_WORK/logs
	BENCH_RAW=$BENCH_WORK/raw.csv
	mkdir -p "$BENCH_LOGS"
	echo "$BENCH_RAW_HEADER" >"$BENCH_RAW"
	chown -R postgres: "$BENCH_WORK"

	bench_log "mode $MODE: building and installing"
	if ! es_build_install >"$ES_WORK/build.log" 2>&1; then
		tail -n 50 "$ES_WORK/build.log" >&2
		es_die "build failed"
	fi
	es_cluster_start cluster || es_die "the cluster did not start"
	bench_configure || es_die "could not apply the benchmark settings"
	bench_log "cluster on 127.0.0.1:$PGPORT, work dir $ES_WORK"

	bench_create_db bench0
	gen_scripts bench0

	# W3 first: both stores then hold the read streams and nothing else.
	bench_log "W3: stream reads"
	w3 bench0
	bench_log "W1: single-event appends"
	w1 bench0
	bench_log "W2: batches of 100"
	w2 bench0
	bench_log "W2b: batches of 1,000 vs COPY of $BENCH_COPY_ROWS"
	w2b bench0
	bench_log "W7: one hot stream, exact expected versions"
	w7 bench0
	bench_log "W5: head lag"
	w5 bench0
	bench_log "W8: appends with 0 and with 8 followers"
	w8 bench0
	bench_log "W9: notification latency"
	w9 bench0
	bq postgres -c "DROP DATABASE bench0 WITH (FORCE)"

	bench_log "W6: preloading $BENCH_PRELOAD events into each store"
	bench_create_db bench_zero
	bench_create_db bench_scale
	preload bench_scale
	bench_log "W4: PgQ queue of $BENCH_CATCHUP events"
	pgq_preload bench_scale
	bench_log "W4: catch-up over $BENCH_CATCHUP events"
	w4 bench_scale
	bench_log "W4c: catch-up from a client"
	w4c bench_scale
	# W3 first and W2 last: W2 appends the most, and the empty database grows
	# with what the workloads append.
	bench_log "W6: W3, W1, W2 in an empty and in the preloaded database"
	w6 W3 bench_zero bench_scale "${W3_VARIANTS[@]}"
	w6 W1 bench_zero bench_scale "${W1_VARIANTS[@]}"
	w6 W2 bench_zero bench_scale "${W2_VARIANTS[@]}"

	report
	if [ "$BENCH_FAILURES" -gt 0 ]; then
		bench_log "$BENCH_FAILURES run(s) failed"
		exit 1
	fi
	exit 0
}

main "$@"; exit
