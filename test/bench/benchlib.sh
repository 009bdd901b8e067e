# test/bench/benchlib.sh
#
# Helpers of test/bench/run.sh, on top of test/lib.sh.  Source it after
# lib.sh, once the cluster runs (PGHOST, PGPORT exported).  Everything runs
# as postgres through es_as_pg.
#
# Measurement, for every pgbench run (bench_pgbench):
#   - events/s: pgbench's "tps" (without initial connection time) times the
#     events one transaction appends or reads;
#   - latency: every transaction's latency from pgbench's per-transaction
#     log (-l), sorted here; p50 and p99 are nearest-rank percentiles;
#   - WAL: pg_stat_wal.wal_bytes before and after the run, read once every
#     pgbench backend has exited (an exiting backend flushes its WAL
#     counters first), divided by the events of the run; the difference of
#     pg_current_wal_lsn() and of wal_fpi (full-page images) are kept
#     beside it.  All are cluster-wide: nothing else runs, except
#     autovacuum, which does count.
#   - every measured run starts with a CHECKPOINT (bench_pre_run), so no
#     run inherits an earlier run's checkpoint, and each pays the
#     full-page images of the pages it is first to touch: WAL per event
#     includes them, and is higher in short runs.
#
# Each measurement becomes one line of $BENCH_RAW (CSV, header in
# BENCH_RAW_HEADER), aggregated at the end by test/bench/report.sql.
#
# Functions:
#   bq DB SQL...            psql -At as postgres, ON_ERROR_STOP
#   bench_log MSG           progress line on stderr
#   bench_wait_idle         wait until no pgbench backend is left
#   bench_wal               "wal_bytes lsn_bytes wal_fpi" of the cluster now
#   bench_wal_delta N A B   field N of bench_wal result B minus that of A
#   bench_pre_run           wait for idle, CHECKPOINT (see above)
#   bench_pgbench DB CLIENTS SCRIPT EVENTS_PER_TXN [PGBENCH ARGS...]
#                           one pgbench run of BENCH_SECONDS; sets R_* below
#   bench_psql_timed DB SQL run SQL returning "events|seconds|p50|p99";
#                           sets R_* the same way
#   bench_record WORKLOAD CLIENTS VARIANT REP BASELINE ALT_BASELINES
#                           append R_* as one line to $BENCH_RAW

BENCH_RAW_HEADER="seq,workload,clients,variant,rep,transactions,events,seconds,events_per_s,p50_ms,p99_ms,wal_bytes,lsn_bytes,wal_fpi,baseline,alt_baselines,conflicts,lag_p50_ms,lag_p99_ms,lag_max_ms,lag_unresolved,lag_samples,lag_commits,failed,note"
BENCH_SEQ=0
BENCH_FAILURES=0

bq() {
	local db=$1
	shift
	es_as_pg PGOPTIONS="-c client_min_messages=warning" \
		psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"
}

bench_log() {
	printf '[%4ds] %s\n' "$((SECONDS - BENCH_T0))" "$*" >&2
}

bench_wait_idle() {
	local i n
	for ((i = 0; i < 600; i++)); do
		n=$(bq postgres -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbench'") || return 1
		[ "$n" = 0 ] && return 0
		sleep 0.05
	done
	bench_log "warning: pgbench backends still there after 30 s"
}

# "wal_bytes lsn_bytes wal_fpi" of the cluster now.
bench_wal() {
	bq postgres -F ' ' -c "SELECT wal_bytes, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, wal_fpi
	                        FROM pg_stat_wal"
}

# The difference of field N (1-3) between two bench_wal results.
bench_wal_delta() {
	local n=$1 a b
	read -r -a a <<<"$2"
	read -r -a b <<<"$3"
	echo $((b[n - 1] - a[n - 1]))
}

# Before every measured run: a checkpoint, so that every run starts from
# the same state (no checkpoint of an earlier run's writes running under
# it) and pays the full-page images of the pages it touches first.
# BENCH_SKIP_CHECKPOINT=1 when the caller took it already.
bench_pre_run() {
	bench_wait_idle
	if [ "${BENCH_SKIP_CHECKPOINT:-0}" != 1 ]; then
		bq postgres -c "CHECKPOINT" || bench_log "warning: CHECKPOINT failed"
	fi
}

# Nearest-rank percentile P (0..1) of a file of sorted numbers, divided by DIV.
bench_percentile() {
	local file=$1 p=$2 div=$3 n
	n=$(wc -l <"$file")
	[ "$n" -gt 0 ] || return 0
	awk -v p="$p" -v n="$n" -v div="$div" '
		BEGIN { i = int(p * n); if (i < p * n) i++; if (i < 1) i = 1 }
		NR == i { printf "%.3f\n", $1 / div; exit }' "$file"
}

# Results of the last measurement.
bench_reset_result() {
	R_TXNS=0 R_EVENTS=0 R_SECONDS=0 R_EPS=0 R_P50="" R_P99="" R_WAL=0 R_LSN=0 R_FPI=0
	R_CONFLICTS="" R_LAG_P50="" R_LAG_P99="" R_LAG_MAX="" R_LAG_UNRESOLVED=""
	R_LAG_SAMPLES="" R_LAG_COMMITS=""
	R_FAILED=0 R_NOTE=""
}

# bench_pgbench DB CLIENTS SCRIPT EVENTS_PER_TXN [PGBENCH ARGS...]
# Runs SCRIPT for BENCH_SECONDS (or as the extra arguments say, e.g. -t)
# with pgbench -M prepared, -j 2 (at most one thread per client) and a
# per-transaction log.  Conflicts reported by bench.*_append_expected as
# NOTICEs are summed into R_CONFLICTS.
bench_pgbench() {
	local db=$1 clients=$2 script=$3 per_txn=$4
	shift 4
	local jobs=$((clients < 2 ? clients : 2))
	local tag prefix out err sorted rc w0 w1 duration=(-T "$BENCH_SECONDS")
	local a
	for a in "$@"; do
		case $a in -t | -T) duration=() ;; esac
	done

	bench_reset_result
	BENCH_RUN=$((BENCH_RUN + 1))
	tag=$(printf 'run%04d' "$BENCH_RUN")
	prefix=$BENCH_LOGS/$tag
	out=$prefix.out
	err=$prefix.err
	sorted=$prefix.sorted

	bench_pre_run
	w0=$(bench_wal)
	es_as_pg_wait pgbench -n -M prepared -c "$clients" -j "$jobs" "${duration[@]}" \
		-l --log-prefix="$prefix.log" \
		-D streams="$BENCH_STREAMS" -D nread="$BENCH_READ_STREAMS" -D pages="${BENCH_PAGES:-1}" \
		-D batch100="${BENCH_JSON_100:-[]}" "${BENCH_PARAM_ARGS[@]}" \
		"$@" -f "$BENCH_SCRIPTS/$script" "$db" >"$out" 2>"$err"
	rc=$?
	bench_wait_idle
	w1=$(bench_wal)

	R_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
	R_TXNS=${R_TXNS:-0}
	R_EPS=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
	R_EPS=$(awk -v t="${R_EPS:-0}" -v k="$per_txn" 'BEGIN { printf "%.1f", t * k }')
	R_EVENTS=$((R_TXNS * per_txn))
	R_SECONDS=$(awk -v e="$R_EVENTS" -v r="$R_EPS" 'BEGIN { if (r > 0) printf "%.3f", e / r; else print 0 }')
	R_WAL=$(bench_wal_delta 1 "$w0" "$w1")
	R_LSN=$(bench_wal_delta 2 "$w0" "$w1")
	R_FPI=$(bench_wal_delta 3 "$w0" "$w1")

	# column 3 of pgbench's log: the transaction's latency in microseconds
	cat "$prefix".log.* 2>/dev/null | awk '{ print $3 }' | sort -n >"$sorted"
	R_P50=$(bench_percentile "$sorted" 0.50 1000)
	R_P99=$(bench_percentile "$sorted" 0.99 1000)
	case $script in
		w7_*) R_CONFLICTS=$(awk '/bench conflicts: [0-9]+/ { n += $NF } END { print n + 0 }' "$err") ;;
	esac

	local failed
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
	if [ "$rc" -ne 0 ] || [ "${failed:-0}" -ne 0 ] || [ "$R_TXNS" -eq 0 ]; then
		R_FAILED=1
		R_NOTE="pgbench exit $rc; failed transactions ${failed:-?}"
		BENCH_FAILURES=$((BENCH_FAILURES + 1))
		bench_log "FAILED: pgbench $script (exit $rc), its stderr:"
		grep -v 'bench conflicts' "$err" | tail -n 15 | sed 's/^/    /' >&2
	fi
	rm -f "$prefix".log.* "$sorted"
	return 0
}

# bench_psql_timed DB SQL: a psql script (fed on stdin, so it may hold
# several statements and meta-commands) whose last output line is
# "events|seconds|p50_ms|p99_ms", timed inside the server with
# clock_timestamp().
bench_psql_timed() {
	local db=$1 sql=$2 w0 w1 row rc
	bench_reset_result
	bench_pre_run
	w0=$(bench_wal)
	row=$(printf '%s\n' "$sql" | bq "$db" -f - 2>"$BENCH_LOGS/psql.err")
	rc=$?
	row=$(printf '%s\n' "$row" | tail -n 1)
	w1=$(bench_wal)
	if [ "$rc" -ne 0 ] || [ -z "$row" ]; then
		R_FAILED=1
		R_NOTE="psql exit $rc"
		BENCH_FAILURES=$((BENCH_FAILURES + 1))
		bench_log "FAILED: $sql"
		sed 's/^/    /' "$BENCH_LOGS/psql.err" >&2
		return 0
	fi
	IFS='|' read -r R_EVENTS R_SECONDS R_P50 R_P99 <<<"$row"
	R_TXNS=1
	R_EPS=$(awk -v e="$R_EVENTS" -v s="$R_SECONDS" 'BEGIN { if (s > 0) printf "%.1f", e / s; else print 0 }')
	R_WAL=$(bench_wal_delta 1 "$w0" "$w1")
	R_LSN=$(bench_wal_delta 2 "$w0" "$w1")
	R_FPI=$(bench_wal_delta 3 "$w0" "$w1")
}

# bench_record WORKLOAD CLIENTS VARIANT REP BASELINE ALT_BASELINES
# BASELINE and each of ALT_BASELINES (separated by ";") name a cell as
# WORKLOAD/VARIANT/CLIENTS; the report divides this cell's events/s by
# theirs.
bench_record() {
	local workload=$1 clients=$2 variant=$3 rep=$4 baseline=$5 alts=$6
	BENCH_SEQ=$((BENCH_SEQ + 1))
	printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,"%s"\n' \
		"$BENCH_SEQ" "$workload" "$clients" "$variant" "$rep" "$R_TXNS" "$R_EVENTS" \
		"$R_SECONDS" "$R_EPS" "$R_P50" "$R_P99" "$R_WAL" "$R_LSN" "$R_FPI" "$baseline" "$alts" \
		"$R_CONFLICTS" "$R_LAG_P50" "$R_LAG_P99" "$R_LAG_MAX" "$R_LAG_UNRESOLVED" \
		"$R_LAG_SAMPLES" "$R_LAG_COMMITS" "$R_FAILED" "${R_NOTE//\"/\'}" >>"$BENCH_RAW"
	local extra=""
	[ -n "$R_CONFLICTS" ] && [ "$R_CONFLICTS" != 0 ] && extra+=" conflicts=$R_CONFLICTS"
	[ -n "$R_LAG_P99" ] && extra+=" head-lag p50/p99/max=$R_LAG_P50/$R_LAG_P99/$R_LAG_MAX ms"
	bench_log "$(printf '%-6s c=%-2s %-16s rep %s: %10.0f events/s  p50 %s ms  p99 %s ms  WAL %s B/event%s' \
		"$workload" "$clients" "$variant" "$rep" "$R_EPS" "${R_P50:--}" "${R_P99:--}" \
		"$(awk -v w="$R_WAL" -v e="$R_EVENTS" 'BEGIN { if (e > 0) printf "%.0f", w / e; else print "-" }')" \
		"$extra")"
}
