#!/bin/bash
# test/bench/versus.sh: W1 at 8 clients on this tree and on an earlier
# revision, each against its plain baseline, in one run.
#
#     bash test/bench/versus.sh REV        e.g. REV = 1d5df30
#
# Builds REV (from git) and installs it, starts cluster "base" (which keeps
# REV's library loaded), creates its database; then builds and installs
# this tree, starts cluster "new" and creates its database.  Both clusters
# run side by side with the settings of run.sh (shared_buffers 2GB each).
# Then, BENCH_REPS times (default 5), in turn: base es, base plain, new es,
# new plain, each a pgbench run of BENCH_SECONDS (default 10) of W1 (one
# event per append to a random stream, 8 clients, -M prepared; the scripts
# are run.sh's).  Each repetition gives the ratio es / plain within its
# cluster; the table shows every repetition, the medians, and the median of
# new's ratio divided by base's: 1.0 means no change relative to the same
# baseline on the same machine at the same time.  Like run.sh it installs
# what it needs, runs as root, and removes everything at the end (ES_KEEP=1
# keeps it).

set -u

BENCH_SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_SELF/../lib.sh"
. "$BENCH_SELF/benchlib.sh"

: "${BENCH_SECONDS:=10}" "${BENCH_REPS:=5}" "${BENCH_STREAMS:=10000}"
BENCH_READ_STREAMS=0
BENCH_RUN=0
BENCH_T0=$SECONDS
CLIENTS=8

# versus_cluster NAME: a cluster with run.sh's durable settings; prints its port.
versus_cluster() {
	local name=$1
	es_cluster_start "$name" >&2 || return 1
	bq postgres \
		-c "ALTER SYSTEM SET synchronous_commit = on" \
		-c "ALTER SYSTEM SET full_page_writes = on" \
		-c "ALTER SYSTEM SET shared_buffers = '2GB'" \
		-c "ALTER SYSTEM SET wal_buffers = '64MB'" \
		-c "ALTER SYSTEM SET max_wal_size = '8GB'" \
		-c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
		-c "ALTER SYSTEM SET max_connections = 50" >/dev/null || return 1
	es_as_pg pg_ctl -D "$ES_WORK/$name" -l "$ES_WORK/$name.log" -w -t 120 restart >/dev/null ||
		return 1
	bq postgres -c "CREATE DATABASE w1" &&
		bq w1 -c "CREATE EXTENSION eventstore" \
			-f "$BENCH_SRC/baseline.sql" -f "$BENCH_SRC/bench.sql" >/dev/null ||
		return 1
	echo "$PGPORT"
}

# versus_run PORT SCRIPT: one measured run; prints events/s.
versus_run() {
	PGPORT=$1 bench_pgbench w1 "$CLIENTS" "$2" 1
	[ "$R_FAILED" -eq 0 ] || es_die "pgbench $2 failed on port $1"
	echo "$R_EPS"
}

main() {
	local rev=${1:-} base_port new_port rep
	local -a base_es base_plain new_es new_plain
	[ -n "$rev" ] || es_die "usage: bash test/bench/versus.sh REV"
	git -C "$ES_REPO" rev-parse --verify -q "$rev^{commit}" >/dev/null ||
		es_die "$rev is not a commit of $ES_REPO"

	es_install_packages
	es_trap_cleanup
	es_make_workdir
	# both clusters put their sockets here (es_cluster_start)
	export PGHOST=$ES_WORK
	BENCH_SRC=$ES_WORK/src/test/bench
	BENCH_WORK=$ES_WORK/bench
	BENCH_SCRIPTS=$BENCH_WORK/scripts
	BENCH_LOGS=$BENCH_WORK/logs
	mkdir -p "$BENCH_LOGS" "$ES_WORK/base-src"
	chown -R postgres: "$BENCH_WORK"

	bench_log "building $rev"
	git -C "$ES_REPO" archive "$rev" | tar -x -C "$ES_WORK/base-src" ||
		es_die "git archive $rev failed"
	(
		cd "$ES_WORK/base-src" &&
			make -j2 PG_CONFIG="$PG_CONFIG" >/dev/null &&
			make install PG_CONFIG="$PG_CONFIG" >/dev/null
	) || es_die "building $rev failed"
	base_port=$(versus_cluster base) || es_die "cluster base did not start"

	bench_log "building this tree"
	es_build_install >"$ES_WORK/build.log" 2>&1 || es_die "building this tree failed"
	new_port=$(versus_cluster new) || es_die "cluster new did not start"
	PGPORT=$new_port gen_versus_scripts

	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		bench_log "repetition $rep of $BENCH_REPS"
		base_es+=("$(versus_run "$base_port" w1_es.sql)")
		base_plain+=("$(versus_run "$base_port" w1_plain.sql)")
		new_es+=("$(versus_run "$new_port" w1_es.sql)")
		new_plain+=("$(versus_run "$new_port" w1_plain.sql)")
	done

	echo "W1, $CLIENTS clients, $BENCH_SECONDS s per run, events/s; base = $rev, new = $(git -C "$ES_REPO" rev-parse --short HEAD)"
	echo
	echo "| rep | base es | base plain | base ratio | new es | new plain | new ratio | new ratio / base ratio |"
	echo "|---|---|---|---|---|---|---|---|"
	for ((rep = 0; rep < BENCH_REPS; rep++)); do
		awk -v r=$((rep + 1)) -v be="${base_es[rep]}" -v bp="${base_plain[rep]}" \
			-v ne="${new_es[rep]}" -v np="${new_plain[rep]}" 'BEGIN {
			printf "| %d | %.0f | %.0f | %.3f | %.0f | %.0f | %.3f | %.3f |\n",
				r, be, bp, be / bp, ne, np, ne / np, (ne / np) / (be / bp) }'
	done
	printf '%s\n' "${base_es[@]}" >"$BENCH_WORK/be"
	printf '%s\n' "${base_plain[@]}" >"$BENCH_WORK/bp"
	printf '%s\n' "${new_es[@]}" >"$BENCH_WORK/ne"
	printf '%s\n' "${new_plain[@]}" >"$BENCH_WORK/np"
	paste "$BENCH_WORK/be" "$BENCH_WORK/bp" "$BENCH_WORK/ne" "$BENCH_WORK/np" | awk '
		function median(a, n,    i, j, t) {
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		{ n++; be[n] = $1; bp[n] = $2; ne[n] = $3; np[n] = $4
		  br[n] = $1 / $2; nr[n] = $3 / $4; q[n] = nr[n] / br[n] }
		END {
			printf "| median | %.0f | %.0f | %.3f | %.0f | %.0f | %.3f | %.3f |\n",
				median(be, n), median(bp, n), median(br, n),
				median(ne, n), median(np, n), median(nr, n), median(q, n)
		}'
}

# The W1 scripts of run.sh, with its payload.
gen_versus_scripts() {
	local p=$BENCH_WORK/payloads.tsv d1 m1
	bq w1 -F $'\t' -c "SELECT bench.payload(1)::text, bench.metadata(1)::text" >"$p" ||
		es_die "payloads"
	IFS=$'\t' read -r d1 m1 <"$p"
	mkdir -p "$BENCH_SCRIPTS"
	cat >"$BENCH_SCRIPTS/w1_es.sql" <<-EOF
		\set s random(1, :streams)
		SELECT * FROM eventstore.append('s-' || :s, ARRAY[eventstore.event('OrderPlaced', '$d1', '$m1')]);
	EOF
	cat >"$BENCH_SCRIPTS/w1_plain.sql" <<-EOF
		\set s random(1, :streams)
		SELECT plain.append('s-' || :s, 'OrderPlaced', '$d1', '$m1');
	EOF
	chown -R postgres: "$BENCH_WORK"
}

main "$@"; exit
