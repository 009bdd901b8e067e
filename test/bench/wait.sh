#!/bin/bash
# test/bench/wait.sh: waiting without LISTEN -- how soon eventstore.wait_for
# hands a reader a new event, on the primary, through PgBouncer and on a
# hot standby, and what 100 waiting sessions cost the writers.
#
#     bash test/bench/wait.sh                 full run (about 12 min)
#     bash test/bench/wait.sh --quick         smoke test (about 3 min)
#     bash test/bench/wait.sh --out FILE      also write the report to FILE
#     bash test/bench/wait.sh --no-build      use the extension as installed
#     bash test/bench/wait.sh --profile       add a perf profile of each
#                                             variant of part 2 (see below)
#
# Not part of the per-commit tests.  PostgreSQL is taken from PG_CONFIG
# (default /usr/lib/postgresql/15/bin/pg_config); unless --no-build, the
# tree is copied, built and installed there, as run.sh does.  Like run.sh
# it runs as root, installs what is missing (apt-get: the test packages of
# test/lib.sh, libpq-dev, and linux-perf for --profile), and runs every
# server as the postgres user, on free ports, in a throwaway directory
# (/tmp/eventstore.XXXXXX, removed at the end; ES_KEEP=1 keeps it):
#
#   primary  shared_preload_libraries = 'eventstore' and run.sh's durable
#            settings (fsync, synchronous_commit, full_page_writes on,
#            shared_buffers 4GB, wal_buffers 64MB, max_wal_size 8GB,
#            checkpoint_timeout 30min), max_connections 200 (the 100
#            waiters, 8 writers and what else connects); in part 1 also
#            track_commit_timestamp = on
#   standby  a streaming hot standby made with pg_basebackup -R (shared
#            buffers 256MB; log_recovery_conflict_waits on, deadlock_timeout
#            100ms, so that replay waiting for a reader's snapshot is logged)
#   pooler   Debian's pgbouncer in front of the primary, pool_mode
#            transaction, default_pool_size 20
# The standby and the pooler are stopped, and the primary restarted
# without commit timestamps, before part 2.
#
# The clients are test/bench/waitbench.c (compiled here against libpq; its
# header has the details): one C process per measurement.  It adds
# microseconds to figures of milliseconds, times writer and reader on one
# clock (two threads of one process), and serves 100 waiting connections
# from one thread with poll(), so the client's own cost hides little of
# what the server costs.
#
# Part 1, latency.  A writer appends single events at a steady rate
# (WAIT_RATE, default 50/s) to one stream of the database "wait" on the
# primary, directly, autocommit; a reader on another connection follows the
# feed from the head: eventstore.wait_for(last, WAIT_TIMEOUT) (default
# '1 second'), then read_all(last, 1000) whenever the head returned is
# above last.  The latency of an event is from the writer's commit
# acknowledgement (the append call's return: libpq returns after
# ReadyForQuery, which the server sends once the commit record is flushed)
# to the arrival of the read_all result that holds it; it can be slightly
# negative when the reader is quicker than the writer's own client.  The
# table also gives it from the commit timestamp (pg_xact_commit_timestamp
# of the event's row, taken before the commit record is written and
# flushed, against the reader's clock: same machine).  The paths: the
# reader on the primary directly; through PgBouncer in transaction mode
# (every statement lent a server connection of the pool); on the hot
# standby (wait_for looks for a replayed tick every 20 ms; the writer still
# appends on the primary); and, for reference, LISTEN "eventstore" on the
# primary instead of wait_for (the ticker's NOTIFY, then the same
# read_all).  The primary and the standby are also measured at a sparse
# rate (WAIT_SPARSE_RATE, default 5/s), and the standby with
# hot_standby_feedback on ("feedback") and with that and wal_writer_delay
# 10ms on the primary ("flush"): the ticker commits asynchronously, and a
# standby receives WAL only once the primary has flushed it.  Each path
# runs WAIT_LAT_ROUNDS times for WAIT_LAT_SECONDS, interleaved (every path
# once, then again), and its samples are pooled: p50, p99 (nearest rank),
# max and the count.  "replay waits" counts the standby's log lines
# "recovery still waiting" during the path's runs.  Then the replay-conflict
# probe, with default settings and with hot_standby_feedback on: a standby
# session waits (timeout 5 s) after the standby's head, the primary updates
# a row of a scratch table and vacuums it (a prune record that removes a
# row version the waiter's snapshot may still see), then appends one
# event; reported is when the waiter returned and whether with that event.
#
# Part 2, cost of waiting sessions.  run.sh's W1 (one event per append to
# a random one of 10,000 streams, pgbench -M prepared, 8 clients, -j 2;
# every run starts with a CHECKPOINT, benchlib.sh) on the primary alone,
# after a 10 s warm-up that creates the streams, in four variants, each
# run WAIT_W1_SECONDS, interleaved: for WAIT_PAIRS repetitions every
# variant once, the order rotated by one per repetition:
#   none    no other session
#   parked  WAIT_WAITERS (100) sessions in eventstore.wait_for(2^62, '5
#           seconds'): asleep on their latches, which the ticker does not
#           set (the head never passes what they wait for); they never
#           return early.  Each holds its statement's snapshot while it
#           waits, as any running statement does
#   parked-head  the same with CALL eventstore.wait_for_head, which holds
#           no snapshot while it waits
#   loop    WAIT_WAITERS sessions each in a loop of wait_for(the head its
#           last call returned): a call returns as soon as the head is above
#           that and is sent again at once (no reading, so this is the
#           cheapest follower that wakes on every move of the head)
#   listen  WAIT_WAITERS sessions that LISTEN on "eventstore" and read
#           their notifications, for comparison
# The waiters connect and are all waiting before the run starts, and are
# cancelled after it.  Reported per variant: the median events/s over the
# repetitions, the median of its per-repetition ratio to "none" (target:
# with waiters >= 0.98 x without), the waiters' returns (notifications)
# per second, ticks per second (eventstore.ticks), the CPU used per second
# of the run (from /proc, in % of one core) by the waiters' backends, the
# ticker and the waiting client, and how busy the whole machine was (% of
# all cores; other work on the machine counts there).
#
# --profile: then one more W1 run of each variant under `perf record -a -g`
# (10 s of 15): CPU samples by role (writers' backends, waiters' backends,
# ticker, clients, the rest of the machine) and the top symbols of the
# waiters' backends, the ticker and the writers' backends, in the report.
#
# Knobs (environment; full / --quick): WAIT_RATE (50), WAIT_SPARSE_RATE
# (5), WAIT_TIMEOUT ('1 second'), WAIT_LAT_SECONDS (8 / 5),
# WAIT_LAT_ROUNDS (2 / 1), WAIT_W1_SECONDS (20 / 5), WAIT_PAIRS (5 / 2),
# WAIT_WAITERS (100), WAIT_VARIANTS (the variants of part 2, "none parked
# parked-head loop listen").
#
# Timings on a shared machine are noisy: the variants are interleaved and
# medians and ratios reported for that reason.  The report goes to stdout
# and to test/bench/results/wait.md (and FILE with --out); part 2's runs
# to test/bench/results/wait-raw.csv.

set -u

# PG_CONFIG as given, before lib.sh sets the system's.
WAIT_PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

BENCH_SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_SELF/../lib.sh"
. "$BENCH_SELF/benchlib.sh"

PG_CONFIG=$WAIT_PG_CONFIG
export PG_CONFIG

MODE=full
BUILD=1
PROFILE=0
OUT=""
while [ $# -gt 0 ]; do
	case $1 in
		--quick) MODE=quick ;;
		--no-build) BUILD=0 ;;
		--profile) PROFILE=1 ;;
		--out)
			[ $# -ge 2 ] || es_die "--out needs a file name"
			OUT=$2
			shift
			;;
		-h | --help)
			sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
			exit 0
			;;
		*) es_die "unknown argument $1 (try --help)" ;;
	esac
	shift
done
case $OUT in '' | /*) ;; *) OUT=$PWD/$OUT ;; esac

if [ "$MODE" = quick ]; then
	: "${WAIT_LAT_SECONDS:=5}" "${WAIT_LAT_ROUNDS:=1}" "${WAIT_W1_SECONDS:=5}" "${WAIT_PAIRS:=2}"
else
	: "${WAIT_LAT_SECONDS:=8}" "${WAIT_LAT_ROUNDS:=2}" "${WAIT_W1_SECONDS:=20}" "${WAIT_PAIRS:=5}"
fi
: "${WAIT_RATE:=50}" "${WAIT_SPARSE_RATE:=5}" "${WAIT_WAITERS:=100}" "${WAIT_TIMEOUT:=1 second}"
BENCH_SECONDS=$WAIT_W1_SECONDS
BENCH_STREAMS=10000
BENCH_READ_STREAMS=0
BENCH_RUN=0
BENCH_T0=$SECONDS
DB="wait"
RESULTS=$ES_REPO/test/bench/results

# Processes started here, stopped by wait_cleanup by their pid.
WAIT_PIDS=()
BOUNCER_PIDFILE=""

# --- setup -------------------------------------------------------------------

wait_packages() {
	local pkg missing=()
	es_install_packages
	for pkg in libpq-dev pgbouncer; do
		es_pkg_installed "$pkg" || missing+=("$pkg")
	done
	[ "$PROFILE" = 1 ] && ! command -v perf >/dev/null && missing+=(linux-perf)
	if [ ${#missing[@]} -gt 0 ]; then
		es_log "installing: ${missing[*]}"
		es_apt_install "${missing[@]}"
	fi
}

# The PostgreSQL of PG_CONFIG first on PATH, for the servers and clients.
wait_use_pg_config() {
	[ -x "$PG_CONFIG" ] || es_die "PG_CONFIG $PG_CONFIG is not executable"
	PG_BINDIR=$("$PG_CONFIG" --bindir) || es_die "$PG_CONFIG failed"
	PATH="$PG_BINDIR:$PATH"
	export PATH
	"$PG_CONFIG" --version | grep -q "PostgreSQL $PG_MAJOR\." ||
		es_die "$PG_CONFIG is not PostgreSQL $PG_MAJOR"
}

wait_build() {
	if [ "$BUILD" = 1 ]; then
		bench_log "building and installing into $("$PG_CONFIG" --pkglibdir)"
		if ! es_build_install >"$ES_WORK/build.log" 2>&1; then
			tail -n 50 "$ES_WORK/build.log" >&2
			es_die "build failed"
		fi
	fi
	WAITBENCH=$ES_WORK/waitbench
	gcc -O2 -Wall -Wextra -Werror -I"$("$PG_CONFIG" --includedir)" \
		-o "$WAITBENCH" "$BENCH_SRC/waitbench.c" \
		-L"$("$PG_CONFIG" --libdir)" -lpq -lpthread ||
		es_die "could not compile waitbench.c"
}

# Stop what this script started, by pid: waiters and clients, PgBouncer
# (its pid file), then es_cleanup (the clusters, the work directory unless
# ES_KEEP=1).
wait_cleanup() {
	local pid
	for pid in "${WAIT_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	if [ -n "$BOUNCER_PIDFILE" ] && [ -f "$BOUNCER_PIDFILE" ]; then
		pid=$(cat "$BOUNCER_PIDFILE")
		case $pid in '' | *[!0-9]*) ;; *) kill -TERM "$pid" 2>/dev/null ;; esac
	fi
	es_cleanup
}

wait_on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	wait_cleanup
	exit "$rc"
}

# The primary: run.sh's durable settings, room for the waiters.
wait_primary() {
	es_cluster_start primary || es_die "the primary did not start"
	PRIMARY_PORT=$PGPORT
	bq postgres \
		-c "ALTER SYSTEM SET fsync = on" \
		-c "ALTER SYSTEM SET synchronous_commit = on" \
		-c "ALTER SYSTEM SET full_page_writes = on" \
		-c "ALTER SYSTEM SET shared_buffers = '4GB'" \
		-c "ALTER SYSTEM SET wal_buffers = '64MB'" \
		-c "ALTER SYSTEM SET max_wal_size = '8GB'" \
		-c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
		-c "ALTER SYSTEM SET max_connections = 200" \
		-c "ALTER SYSTEM SET track_commit_timestamp = on" \
		-c "ALTER SYSTEM SET shared_preload_libraries = 'eventstore'" ||
		es_die "could not configure the primary"
	es_as_pg pg_ctl -D "$ES_WORK/primary" -l "$ES_WORK/primary.log" -w -t 120 restart >/dev/null || {
		tail -n 30 "$ES_WORK/primary.log" >&2
		es_die "the primary did not restart"
	}
	bq postgres -c "CREATE DATABASE $DB" &&
		bq "$DB" -c "CREATE EXTENSION eventstore" \
			-f "$BENCH_SRC/baseline.sql" -f "$BENCH_SRC/bench.sql" >/dev/null ||
		es_die "could not set up database $DB"
	# the ticker starts with the first use of the extension
	bq "$DB" -c "SELECT 1 FROM eventstore.append('warm-up', ARRAY[eventstore.event('WarmUp', '{}')])" \
		>/dev/null || es_die "first append failed"
	wait_until "$DB" "SELECT count(*) = 1 FROM pg_stat_activity
	                   WHERE backend_type = 'eventstore ticker' AND datname = '$DB'" ||
		es_die "no ticker in database $DB"
}

# wait_until DB SQL [PORT]: poll SQL (returning t/f) for up to 60 s.
wait_until() {
	local db=$1 sql=$2 port=${3:-$PRIMARY_PORT} i
	for ((i = 0; i < 600; i++)); do
		[ "$(PGPORT=$port bq "$db" -c "$sql" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

wait_standby() {
	local data=$ES_WORK/standby
	STANDBY_PORT=$(es_free_port)
	es_as_pg pg_basebackup -D "$data" -h "$ES_WORK" -p "$PRIMARY_PORT" -U postgres \
		-R -X stream -c fast >"$ES_WORK/basebackup.log" 2>&1 || {
		cat "$ES_WORK/basebackup.log" >&2
		es_die "pg_basebackup failed"
	}
	# postgresql.auto.conf is read last: the primary's ALTER SYSTEM values
	# are there, so the standby's own go after them
	cat >>"$data/postgresql.auto.conf" <<-EOF
		port = $STANDBY_PORT
		shared_buffers = '256MB'
		hot_standby = on
		log_recovery_conflict_waits = on
		deadlock_timeout = '100ms'
	EOF
	ES_CLUSTERS+=("$data")
	es_as_pg pg_ctl -D "$data" -l "$ES_WORK/standby.log" -w -t 120 start >/dev/null || {
		tail -n 30 "$ES_WORK/standby.log" >&2
		es_die "the standby did not start"
	}
	wait_until postgres "SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming'" ||
		es_die "the standby does not stream"
	wait_until "$DB" "SELECT pg_is_in_recovery() AND eventstore.head() > 0" "$STANDBY_PORT" ||
		es_die "the standby does not see the ticks"
}

wait_bouncer() {
	local dir=$ES_WORK/pgbouncer i
	BOUNCER_PORT=$(es_free_port)
	mkdir -p "$dir"
	echo '"postgres" ""' >"$dir/users.txt"
	cat >"$dir/pgbouncer.ini" <<-EOF
		[databases]
		$DB = host=$ES_WORK port=$PRIMARY_PORT dbname=$DB

		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $BOUNCER_PORT
		unix_socket_dir = $dir
		auth_type = trust
		auth_file = $dir/users.txt
		pool_mode = transaction
		default_pool_size = 20
		max_client_conn = 200
		logfile = $dir/pgbouncer.log
		pidfile = $dir/pgbouncer.pid
	EOF
	chown -R postgres: "$dir"
	BOUNCER_PIDFILE=$dir/pgbouncer.pid
	es_as_pg pgbouncer -q -d "$dir/pgbouncer.ini" || es_die "pgbouncer did not start"
	for ((i = 0; i < 100; i++)); do
		es_as_pg psql -X -At -h 127.0.0.1 -p "$BOUNCER_PORT" -d "$DB" -c "SELECT 1" \
			>/dev/null 2>&1 && return 0
		sleep 0.1
	done
	cat "$dir/pgbouncer.log" >&2
	es_die "pgbouncer does not accept connections on port $BOUNCER_PORT"
}

# Before part 2: the primary alone, without commit timestamps, as in run.sh.
wait_primary_alone() {
	local pid
	pid=$(cat "$BOUNCER_PIDFILE" 2>/dev/null)
	case $pid in '' | *[!0-9]*) ;; *) kill -TERM "$pid" 2>/dev/null ;; esac
	BOUNCER_PIDFILE=""
	es_as_pg pg_ctl -D "$ES_WORK/standby" -m fast -w -t 60 stop >/dev/null ||
		bench_log "warning: the standby did not stop"
	bq postgres -c "ALTER SYSTEM SET track_commit_timestamp = off" ||
		es_die "could not configure the primary"
	es_as_pg pg_ctl -D "$ES_WORK/primary" -l "$ES_WORK/primary.log" -w -t 120 restart >/dev/null || {
		tail -n 30 "$ES_WORK/primary.log" >&2
		es_die "the primary did not restart"
	}
	bq "$DB" -c "SELECT 1 FROM eventstore.append('warm-up', ARRAY[eventstore.event('WarmUp', '{}')])" \
		>/dev/null || es_die "append failed"
	wait_until "$DB" "SELECT count(*) = 1 FROM pg_stat_activity
	                   WHERE backend_type = 'eventstore ticker' AND datname = '$DB'" ||
		es_die "no ticker in database $DB"
}

# --- part 1: latency ---------------------------------------------------------

conn_primary() { echo "host=$ES_WORK port=$PRIMARY_PORT dbname=$DB user=postgres"; }
conn_bouncer() { echo "host=127.0.0.1 port=$BOUNCER_PORT dbname=$DB user=postgres"; }
conn_standby() { echo "host=$ES_WORK port=$STANDBY_PORT dbname=$DB user=postgres"; }

# Settings a latency path runs with (reloaded before each run):
#   default  as installed
#   feedback hot_standby_feedback = on on the standby
#   flush    that, and wal_writer_delay = 10ms on the primary
lat_settings() {
	local want=$1 fb=off wwd=DEFAULT i
	[ "$want" = "$LAT_CURRENT" ] && return 0
	case $want in
		feedback) fb=on ;;
		flush) fb=on wwd="'10ms'" ;;
	esac
	PGPORT=$STANDBY_PORT bq postgres -c "ALTER SYSTEM SET hot_standby_feedback = $fb" \
		-c "SELECT pg_reload_conf()" >/dev/null &&
		bq postgres -c "ALTER SYSTEM SET wal_writer_delay = $wwd" -c "SELECT pg_reload_conf()" \
			>/dev/null || es_die "could not apply settings $want"
	# the primary shows the standby's xmin once its feedback arrives
	for ((i = 0; i < 300; i++)); do
		[ "$(bq postgres -c "SELECT (backend_xmin IS NOT NULL) = ('$fb' = 'on') FROM pg_stat_replication")" = t ] &&
			break
		sleep 0.1
	done
	LAT_CURRENT=$want
}

# The paths: "label|reader|mode|rate|reader connection|settings".
lat_paths() {
	LAT_PATHS=(
		"primary, direct|wait_for + read_all|waitfor|$WAIT_RATE|primary|default"
		"PgBouncer, transaction mode|wait_for + read_all|waitfor|$WAIT_RATE|bouncer|default"
		"hot standby|wait_for + read_all|waitfor|$WAIT_RATE|standby|default"
		"primary, direct (reference)|LISTEN + read_all|listen|$WAIT_RATE|primary|default"
		"primary, direct|wait_for + read_all|waitfor|$WAIT_SPARSE_RATE|primary|default"
		"hot standby|wait_for + read_all|waitfor|$WAIT_SPARSE_RATE|standby|default"
		"hot standby|wait_for + read_all|waitfor|$WAIT_RATE|standby|feedback"
		"hot standby|wait_for + read_all|waitfor|$WAIT_SPARSE_RATE|standby|feedback"
		"hot standby|wait_for + read_all|waitfor|$WAIT_RATE|standby|flush"
		"hot standby|wait_for + read_all|waitfor|$WAIT_SPARSE_RATE|standby|flush"
	)
}

# How often the standby's startup process has logged waiting for a
# conflicting snapshot (log_recovery_conflict_waits, after deadlock_timeout).
replay_waits() {
	grep -c 'recovery still waiting after' "$ES_WORK/standby.log" 2>/dev/null
}

# One latency run: path number K, round R; appends its samples to
# $LAT_DIR/K.samples ("latency_us from_call_us append_us commit_to_read_us"
# per event), its lost count to $LAT_DIR/K.lost and the standby's replay
# waits during it to $LAT_DIR/K.waits.
lat_once() {
	local k=$1 r=$2 label reader mode rate target settings csv out w0 w1
	IFS='|' read -r label reader mode rate target settings <<<"${LAT_PATHS[k]}"
	lat_settings "$settings"
	csv=$LAT_DIR/$k.$r.csv
	w0=$(replay_waits)
	out=$(es_as_pg "$WAITBENCH" latency -w "$(conn_primary)" -r "$("conn_$target")" \
		-m "$mode" -R "$rate" -s "$WAIT_LAT_SECONDS" -T "$WAIT_TIMEOUT" -t "latency-$k-$r" \
		-o "$csv" 2>>"$LAT_DIR/errors")
	w1=$(replay_waits)
	echo $((w1 - w0)) >>"$LAT_DIR/$k.waits"
	bench_log "latency: $label, $reader, $rate/s, $settings, round $r: $out"
	[ -f "$csv" ] || {
		BENCH_FAILURES=$((BENCH_FAILURES + 1))
		return 0
	}
	awk -F, 'NR > 1 && $4 >= 0 { print $4 - $3, $4 - $2, $3 - $2, ($5 == "" ? "-" : $5) }' "$csv" \
		>>"$LAT_DIR/$k.samples"
	awk -F, 'NR > 1 && $4 < 0 { n++ } END { print n + 0 }' "$csv" >>"$LAT_DIR/$k.lost"
}

# Column C of a samples file: nearest-rank percentile P (0..1) in ms, or
# "max" / "count".
lat_stat() {
	local file=$1 col=$2 p=$3
	awk -v c="$col" '$c != "-" { print $c }' "$file" | sort -n | awk -v p="$p" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "-"; exit }
			if (p == "count") { print NR; exit }
			if (p == "max") { printf "%.2f\n", v[NR] / 1000; exit }
			i = int(p * NR); if (i < p * NR) i++; if (i < 1) i = 1
			printf "%.2f\n", v[i] / 1000 }'
}

sum_file() {
	awk '{ n += $1 } END { print n + 0 }' "$1" 2>/dev/null || echo 0
}

part_latency() {
	local r k n label reader mode rate target settings s lost waits
	LAT_DIR=$ES_WORK/latency
	LAT_CURRENT=default
	mkdir -p "$LAT_DIR"
	chown postgres: "$LAT_DIR"
	lat_paths
	n=${#LAT_PATHS[@]}
	for ((r = 1; r <= WAIT_LAT_ROUNDS; r++)); do
		for ((k = 0; k < n; k++)); do
			lat_once "$k" "$r"
		done
	done
	lat_settings default
	LAT_TABLE=$ES_WORK/latency.md
	{
		echo "| path | reader | settings | appends/s | events | p50 ms | p99 ms | max ms | from commit timestamp p50 / p99 ms | append call p50 ms | replay waits |"
		echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		for ((k = 0; k < n; k++)); do
			IFS='|' read -r label reader mode rate target settings <<<"${LAT_PATHS[k]}"
			s=$LAT_DIR/$k.samples
			touch "$s"
			lost=$(sum_file "$LAT_DIR/$k.lost")
			waits=$(sum_file "$LAT_DIR/$k.waits")
			[ "$target" = standby ] || waits=-
			[ "$lost" -gt 0 ] && BENCH_FAILURES=$((BENCH_FAILURES + 1))
			printf '| %s | %s | %s | %s | %s%s | %s | %s | %s | %s / %s | %s | %s |\n' \
				"$label" "$reader" "$settings" "$rate" "$(lat_stat "$s" 1 count)" \
				"$([ "$lost" -gt 0 ] && echo " ($lost lost)")" \
				"$(lat_stat "$s" 1 0.50)" "$(lat_stat "$s" 1 0.99)" "$(lat_stat "$s" 1 max)" \
				"$(lat_stat "$s" 4 0.50)" "$(lat_stat "$s" 4 0.99)" "$(lat_stat "$s" 3 0.50)" "$waits"
		done
	} >"$LAT_TABLE"
}

# The replay-conflict probe, with SETTINGS: a standby session waits (timeout
# 5 s) after the standby's head; on the primary a row of a scratch table is
# updated and the table vacuumed (its prune record removes a row version the
# waiter's snapshot may still see), then one event is appended.  Prints
# "SECONDS_FROM_THE_APPEND HEAD_RETURNED POSITION_APPENDED".
conflict_probe() {
	local settings=$1 head pos out=$ES_WORK/probe.out job t_append t_end i
	lat_settings "$settings"
	head=$(PGPORT=$STANDBY_PORT bq "$DB" -c "SELECT eventstore.head()") || es_die "standby head"
	(
		PGPORT=$STANDBY_PORT bq "$DB" -c "SELECT eventstore.wait_for($head, '5 seconds')" >"$out" 2>&1
		date +%s.%N >>"$out"
	) &
	job=$!
	for ((i = 0; i < 100; i++)); do
		[ "$(PGPORT=$STANDBY_PORT bq postgres -c "SELECT count(*) FROM pg_stat_activity
		      WHERE wait_event_type = 'Extension' AND query LIKE '%wait_for%'")" = 1 ] && break
		sleep 0.05
	done
	bq "$DB" -c "UPDATE public.scratch SET v = v + 1" -c "VACUUM public.scratch" >/dev/null ||
		es_die "scratch table"
	sleep 0.2
	t_append=$(date +%s.%N)
	pos=$(bq "$DB" -c "SELECT max(insert_order) FROM eventstore.append('probe',
	                     ARRAY[eventstore.event('Probe', '{}')])") || es_die "probe append"
	wait "$job"
	t_end=$(tail -n 1 "$out")
	echo "$(awk -v a="$t_append" -v b="$t_end" 'BEGIN { printf "%.2f", b - a }') $(head -n 1 "$out") $pos"
}

part_conflicts() {
	local settings r
	bq "$DB" -c "CREATE TABLE public.scratch (id int PRIMARY KEY, v int)" \
		-c "INSERT INTO public.scratch VALUES (1, 0)" >/dev/null || es_die "scratch table"
	wait_until "$DB" "SELECT to_regclass('public.scratch') IS NOT NULL" "$STANDBY_PORT" ||
		es_die "the standby does not replay"
	CONFLICT_TABLE=$ES_WORK/conflicts.md
	{
		echo "| settings | standby waiter returned, s after the append | head returned | position appended | |"
		echo "|---|---:|---:|---:|---|"
	} >"$CONFLICT_TABLE"
	for settings in default feedback; do
		read -r -a r <<<"$(conflict_probe "$settings")"
		bench_log "replay-conflict probe, $settings: returned ${r[0]} s after the append, head ${r[1]}, appended ${r[2]}"
		printf '| %s | %s | %s | %s | %s |\n' "$settings" "${r[0]}" "${r[1]}" "${r[2]}" \
			"$([ "${r[1]}" -ge "${r[2]}" ] 2>/dev/null && echo "woken by the event" ||
				echo "returned at its timeout, without the event")" >>"$CONFLICT_TABLE"
	done
	lat_settings default
}

# --- part 2: cost of waiting sessions to W1 ------------------------------------

# run.sh's W1 eventstore script (gen_scripts there), with payload 1.
w1_script() {
	local d1 m1
	BENCH_SCRIPTS=$BENCH_WORK/scripts
	mkdir -p "$BENCH_SCRIPTS"
	IFS=$'\t' read -r d1 m1 < <(bq "$DB" -F $'\t' -c "SELECT bench.payload(1)::text, bench.metadata(1)::text")
	[ -n "$d1" ] || es_die "payload"
	cat >"$BENCH_SCRIPTS/w1_es.sql" <<-EOF
		-- W1 eventstore: one event appended to a random stream (autocommit)
		\set s random(1, :streams)
		SELECT * FROM eventstore.append('s-' || :s, ARRAY[eventstore.event('OrderPlaced', '$d1', '$m1')]);
	EOF
	chown -R postgres: "$BENCH_WORK"
}

# CPU ticks (utime + stime, 1/CLK_TCK s) of the given pids, summed.
cpu_ticks() {
	local pid sum=0 f
	for pid in "$@"; do
		f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		f=${f##*) }
		set -- $f
		sum=$((sum + ${12} + ${13}))
	done
	echo "$sum"
}

# core_pct TICKS SECONDS HZ: CPU ticks as % of one core over SECONDS.
core_pct() {
	awk -v c="$1" -v s="$2" -v hz="$3" 'BEGIN { printf "%.1f", (s > 0 ? 100 * c / hz / s : 0) }'
}

# "busy total" jiffies of the whole machine.
machine_ticks() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}

waiter_pids() {
	bq "$DB" -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'waitbench'"
}

ticker_pid() {
	bq "$DB" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'eventstore ticker' AND datname = '$DB'"
}

last_tick() {
	bq "$DB" -c "SELECT coalesce(max(tick_id), 0) FROM eventstore.ticks"
}

# Start WAIT_WAITERS waiters in MODE; sets WAITERS_PID once all wait.
waiters_start() {
	local mode=$1 i n state="AND state = 'active'"
	[ "$mode" = listen ] && state=""
	"$WAITBENCH" waiters -c "$(conn_primary) application_name=waitbench" \
		-n "$WAIT_WAITERS" -m "$mode" >"$BENCH_WORK/waiters.out" 2>>"$BENCH_WORK/waiters.err" &
	WAITERS_PID=$!
	WAIT_PIDS+=("$WAITERS_PID")
	for ((i = 0; i < 300; i++)); do
		n=$(bq "$DB" -c "SELECT count(*) FROM pg_stat_activity
		                  WHERE application_name = 'waitbench' $state")
		[ "$n" -ge "$WAIT_WAITERS" ] && break
		kill -0 "$WAITERS_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ "${n:-0}" -ge "$WAIT_WAITERS" ] || {
		cat "$BENCH_WORK/waiters.err" >&2
		es_die "the waiters did not start"
	}
	sleep 1
}

# Stop the waiters (they cancel their calls), wait until their backends
# are gone; sets WAITERS_RETURNS.
waiters_stop() {
	local i
	kill -TERM "$WAITERS_PID"
	wait "$WAITERS_PID"
	WAIT_PIDS=()
	WAITERS_RETURNS=$(sed -n 's/.*returns=\([0-9]*\).*/\1/p' "$BENCH_WORK/waiters.out")
	for ((i = 0; i < 300; i++)); do
		[ "$(bq "$DB" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'waitbench'")" = 0 ] &&
			return 0
		sleep 0.1
	done
	bench_log "warning: waiter backends still there after 30 s"
}

# One W1 run with variant V (none, parked, loop) in repetition REP.
w1_once() {
	local v=$1 rep=$2 wpids=() tpid c0 c1 t0 t1 m0 m1 k0 k1 s0 s1 returns=0 secs
	local hz busy total
	WAITERS_PID=""
	[ "$v" != none ] && waiters_start "$v"
	[ -n "$WAITERS_PID" ] && mapfile -t wpids < <(waiter_pids)
	tpid=$(ticker_pid)
	bench_pre_run
	BENCH_SKIP_CHECKPOINT=1
	c0=$(cpu_ticks "${wpids[@]}")
	t0=$(cpu_ticks $tpid)
	k0=$(cpu_ticks $WAITERS_PID)
	m0=$(machine_ticks)
	s0=$(last_tick)
	bench_pgbench "$DB" 8 w1_es.sql 1
	BENCH_SKIP_CHECKPOINT=0
	c1=$(cpu_ticks "${wpids[@]}")
	t1=$(cpu_ticks $tpid)
	k1=$(cpu_ticks $WAITERS_PID)
	m1=$(machine_ticks)
	s1=$(last_tick)
	secs=$R_SECONDS
	if [ -n "$WAITERS_PID" ]; then
		waiters_stop
		returns=${WAITERS_RETURNS:-0}
	fi
	hz=$(getconf CLK_TCK)
	read -r busy total <<<"$(awk -v a="$m0" -v b="$m1" 'BEGIN {
		split(a, x, " "); split(b, y, " "); print y[1] - x[1], y[2] - x[2] }')"
	printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$rep" "$v" "$R_EPS" "$R_P50" "$R_P99" "$secs" \
		"$returns" "$((s1 - s0))" \
		"$(core_pct $((c1 - c0)) "$secs" "$hz")" "$(core_pct $((t1 - t0)) "$secs" "$hz")" \
		"$(core_pct $((k1 - k0)) "$secs" "$hz")" \
		"$(awk -v b="$busy" -v t="$total" 'BEGIN { printf "%.0f", (t > 0 ? 100 * b / t : 0) }')" \
		>>"$W1_RAW"
	bench_log "$(printf 'W1 c=8 %-7s rep %s: %8.0f events/s  p50 %s ms  p99 %s ms  %s waiter returns  %s ticks' \
		"$v" "$rep" "$R_EPS" "$R_P50" "$R_P99" "$returns" "$((s1 - s0))")"
	[ "$R_FAILED" = 0 ] || es_die "W1 run failed"
}

read -r -a W1_VARIANTS <<<"${WAIT_VARIANTS:-none parked parked-head loop listen}"

part_cost() {
	local rep k n=${#W1_VARIANTS[@]}
	W1_RAW=$ES_WORK/w1-raw.csv
	echo "rep,variant,events_per_s,p50_ms,p99_ms,seconds,waiter_returns,ticks,waiters_cpu_pct,ticker_cpu_pct,client_cpu_pct,machine_busy_pct" >"$W1_RAW"
	w1_script
	bench_log "W1 warm-up (creates the $BENCH_STREAMS streams), 10 s"
	bench_pgbench "$DB" 8 w1_es.sql 1 -T 10
	for ((rep = 1; rep <= WAIT_PAIRS; rep++)); do
		for ((k = 0; k < n; k++)); do
			w1_once "${W1_VARIANTS[(k + rep - 1) % n]}" "$rep"
		done
	done
	W1_TABLE=$ES_WORK/w1.md
	awk -F, -v waiters="$WAIT_WAITERS" '
		function median(a, n,   i, j, t) {
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		function fmt(x,   s, o) {
			s = sprintf("%.0f", x); o = ""
			while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
			return s o
		}
		NR == 1 { next }
		{
			v = $2; r = $1
			eps[v, r] = $3; reps[r] = 1; seen[v] = 1
			n[v]++
			e[v, n[v]] = $3; p50[v, n[v]] = $4; p99[v, n[v]] = $5
			ret[v, n[v]] = $6 > 0 ? $7 / $6 : 0; tk[v, n[v]] = $6 > 0 ? $8 / $6 : 0
			wc[v, n[v]] = $9; tc[v, n[v]] = $10; cc[v, n[v]] = $11; mb[v, n[v]] = $12
		}
		END {
			print "| variant | runs | median events/s | min – max | ratio to none | p50 / p99 ms | waiter returns/s | ticks/s | CPU % of a core: waiter backends / ticker / client | machine busy % |"
			print "|---|---:|---:|---|---:|---:|---:|---:|---|---:|"
			no = split("none parked parked-head loop listen", order, " ")
			for (o = 1; o <= no; o++) {
				v = order[o]
				if (!(v in seen)) continue
				k = n[v]
				delete a; for (i = 1; i <= k; i++) a[i] = e[v, i]; med = median(a, k)
				lo = a[1]; hi = a[k]
				ratio = "-"
				if (v != "none") {
					m = 0; delete q
					for (r in reps) if ((v, r) in eps && ("none", r) in eps && eps["none", r] > 0)
						q[++m] = eps[v, r] / eps["none", r]
					if (m > 0) {
						ratio = sprintf("%.3f", median(q, m))
						lo_q = q[1]; hi_q = q[m]
						ratio = ratio " (" sprintf("%.2f", lo_q) "–" sprintf("%.2f", hi_q) ")"
					}
				}
				delete a; for (i = 1; i <= k; i++) a[i] = p50[v, i]; mp50 = median(a, k)
				delete a; for (i = 1; i <= k; i++) a[i] = p99[v, i]; mp99 = median(a, k)
				delete a; for (i = 1; i <= k; i++) a[i] = ret[v, i]; mret = median(a, k)
				delete a; for (i = 1; i <= k; i++) a[i] = tk[v, i]; mtk = median(a, k)
				delete a; for (i = 1; i <= k; i++) a[i] = wc[v, i]; mwc = median(a, k)
				delete a; for (i = 1; i <= k; i++) a[i] = tc[v, i]; mtc = median(a, k)
				delete a; for (i = 1; i <= k; i++) a[i] = cc[v, i]; mcc = median(a, k)
				delete a; for (i = 1; i <= k; i++) a[i] = mb[v, i]; mmb = median(a, k)
				name = v == "none" ? "none" : v " (" waiters " waiters)"
				printf "| %s | %d | %s | %s – %s | %s | %.3f / %.3f | %s | %s | %s / %s / %s | %.0f |\n",
					name, k, fmt(med), fmt(lo), fmt(hi), ratio, mp50, mp99,
					v == "none" ? "-" : fmt(mret), fmt(mtk),
					v == "none" ? "-" : sprintf("%.0f", mwc), sprintf("%.0f", mtc),
					v == "none" ? "-" : sprintf("%.0f", mcc), mmb
			}
		}' "$W1_RAW" >"$W1_TABLE"
}

# --- profile -------------------------------------------------------------------

# One W1 run (15 s) per variant under perf record -a -g (10 s of it, from
# 3 s in): CPU samples by role (the processes of this cluster by
# pg_stat_activity, the clients by pid; "other" is the rest of the machine)
# and the top symbols of the waiters' backends, the ticker (with callees,
# so that what its calls cost shows) and the writers' backends.
part_profile() {
	local v data roles perfjob rolesjob role pids
	PROFILE_TXT=$ES_WORK/profile.txt
	: >"$PROFILE_TXT"
	for v in "${W1_VARIANTS[@]}"; do
		bench_log "profile: W1 with $v"
		WAITERS_PID=""
		[ "$v" != none ] && waiters_start "$v"
		data=$ES_WORK/perf-$v.data
		roles=$ES_WORK/roles-$v.txt
		(
			sleep 3
			perf record -q -a -g -o "$data" -- sleep 10 >/dev/null 2>&1
		) &
		perfjob=$!
		(
			sleep 2
			bq "$DB" -F ' ' -c "SELECT pid, CASE WHEN application_name = 'pgbench' THEN 'writers-backends'
			                          WHEN application_name = 'waitbench' THEN 'waiters-backends'
			                          WHEN backend_type = 'eventstore ticker' THEN 'ticker'
			                          ELSE 'server-other' END
			                     FROM pg_stat_activity" >"$roles"
			pgrep -x pgbench | sed 's/$/ pgbench-client/' >>"$roles"
			[ -n "$WAITERS_PID" ] && echo "$WAITERS_PID waiters-client" >>"$roles"
		) &
		rolesjob=$!
		BENCH_SECONDS=15 bench_pgbench "$DB" 8 w1_es.sql 1
		wait "$perfjob" "$rolesjob"
		[ -n "$WAITERS_PID" ] && waiters_stop
		{
			echo "=== W1 at 8 clients, variant $v ($(printf '%.0f' "$R_EPS") events/s): CPU samples by role, % of all (2 CPUs x 10 s) ==="
			perf report -i "$data" --no-children --sort pid --stdio 2>/dev/null |
				awk -v roles="$roles" '
					BEGIN { while ((getline l < roles) > 0) { split(l, f, " "); if (!(f[1] in r)) r[f[1]] = f[2] } }
					/^ *[0-9.]+%/ {
						pct = $1; sub("%", "", pct)
						pid = $2; sub(":.*", "", pid)
						role = (pid in r) ? r[pid] : "other"
						if (pid == "0") role = "idle"
						s[role] += pct
					}
					END { for (k in s) printf "  %-18s %6.2f %%\n", k, s[k] }' | sort -k2 -rn
			for role in waiters-backends ticker writers-backends; do
				pids=$(awk -v want="$role" '$2 == want { print $1 }' "$roles" | sort -u | paste -sd, -)
				[ -n "$pids" ] || continue
				if [ "$role" = ticker ]; then
					echo "--- $role: top symbols with their callees (% of all samples) ---"
					perf report -i "$data" --children --pid "$pids" --sort dso,sym --stdio -g none \
						2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 20
				else
					echo "--- $role: top symbols, self time (% of all samples) ---"
					perf report -i "$data" --no-children --pid "$pids" --sort dso,sym --stdio -g none \
						2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 20
				fi
			done
			echo
		} >>"$PROFILE_TXT"
	done
}

# --- report --------------------------------------------------------------------

report() {
	local md=$ES_WORK/wait.md cpu mem pgversion elapsed=$((SECONDS - BENCH_T0)) targets
	pgversion=$(bq postgres -c "SELECT version()")
	mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	targets=$(awk -F'|' 'NR > 2 && $2 !~ /^ none/ {
		v = $2; sub(/^ /, "", v); sub(/ \(.*/, "", v); split($6, a, " ")
		printf "%s%s %s (%s)", (n++ ? ", " : ""), v, a[1], (a[1] >= 0.98 ? "met" : "missed") }' "$W1_TABLE")
	{
		echo "# eventstore: waiting without LISTEN ($MODE mode)"
		echo
		echo "$(bq postgres -c "SELECT to_char(now(), 'YYYY-MM-DD HH24:MI TZ')"); eventstore $BENCH_COMMIT;" \
			"$(nproc) CPUs, $mem, ${cpu:-unknown CPU}; $pgversion; $(pgbouncer --version 2>/dev/null | head -n 1);" \
			"run time $((elapsed / 60)) min $((elapsed % 60)) s."
		echo
		echo "## Latency: from the append's commit acknowledgement to the reader having the event"
		echo
		echo "A writer appends single events at a steady rate on the primary; the reader, as named,"
		echo "follows the feed from the head (wait_for timeout '$WAIT_TIMEOUT')."
		echo "$WAIT_LAT_ROUNDS round(s) of $WAIT_LAT_SECONDS s per path, interleaved, samples pooled."
		echo "From commit timestamp: the same from pg_xact_commit_timestamp of the event (taken"
		echo "before the commit record is flushed). Settings: default; feedback ="
		echo "hot_standby_feedback on; flush = that and wal_writer_delay 10ms on the primary."
		echo "Replay waits: times the standby's replay waited > 100 ms for a reader's snapshot."
		echo
		cat "$LAT_TABLE"
		echo
		echo "Replay conflict: a standby session in wait_for (timeout 5 s) while the primary"
		echo "vacuums a row version the waiter's snapshot may still see, then appends one event:"
		echo
		cat "$CONFLICT_TABLE"
		echo
		echo "## Cost of $WAIT_WAITERS waiting sessions to W1 (single-event appends, 8 clients)"
		echo
		echo "$WAIT_PAIRS repetitions of ${WAIT_W1_SECONDS} s per variant, interleaved (order rotated);"
		echo "max_connections 200 in every run. Ratio: median of the per-repetition ratios (range)."
		echo "parked: wait_for far beyond the head (never woken by a tick, never returning; holds"
		echo "its statement's snapshot); parked-head: the same with CALL wait_for_head (no snapshot);"
		echo "loop: wait_for(the head last returned) again at once; listen: LISTEN eventstore."
		echo
		cat "$W1_TABLE"
		echo
		echo "Target: with $WAIT_WAITERS waiters >= 0.98 x without: $targets."
		echo "Method: header of test/bench/wait.sh."
		if [ "$PROFILE" = 1 ]; then
			echo
			echo "## Profile"
			echo
			echo '```'
			cat "$PROFILE_TXT"
			echo '```'
		fi
	} >"$md"
	cat "$md"
	mkdir -p "$RESULTS"
	cp "$md" "$RESULTS/wait.md"
	cp "$W1_RAW" "$RESULTS/wait-raw.csv"
	[ -n "$OUT" ] && cp "$md" "$OUT"
	bench_log "wrote $RESULTS/wait.md${OUT:+ and $OUT}"
}

# --- main ------------------------------------------------------------------

# All of it in one function, called from the last line (see run.sh).
main() {
	wait_packages
	wait_use_pg_config
	trap wait_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	BENCH_COMMIT=$(git -C "$ES_REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ "$BUILD" = 0 ]; then
		BENCH_COMMIT="as installed in $("$PG_CONFIG" --pkglibdir) (--no-build; tree at $BENCH_COMMIT)"
	elif [ -n "$(git -C "$ES_REPO" status --porcelain -- src Makefile 2>/dev/null)" ]; then
		BENCH_COMMIT+=" (with uncommitted changes in src/)"
	fi
	es_make_workdir
	BENCH_SRC=$ES_WORK/src/test/bench
	BENCH_WORK=$ES_WORK/bench
	BENCH_LOGS=$BENCH_WORK/logs
	mkdir -p "$BENCH_LOGS"
	chown -R postgres: "$BENCH_WORK"
	wait_build

	wait_primary
	wait_standby
	wait_bouncer
	bench_log "primary on port $PRIMARY_PORT, standby on $STANDBY_PORT, PgBouncer on $BOUNCER_PORT; work dir $ES_WORK"

	bench_log "part 1: latency"
	part_latency
	part_conflicts
	wait_primary_alone
	bench_log "part 2: W1 at 8 clients with and without $WAIT_WAITERS waiters"
	part_cost
	[ "$PROFILE" = 1 ] && part_profile
	report
	if [ "$BENCH_FAILURES" -gt 0 ]; then
		bench_log "$BENCH_FAILURES measurement(s) failed or lost events"
		exit 1
	fi
	exit 0
}

main "$@"; exit
