# test/lib.sh
#
# Shared helpers for test/all.sh and test/demo.sh.  Source it, do not run it.
#
# Everything here assumes Debian 12 and root: packages come from apt, the
# extension is built with PGXS for PostgreSQL 15 and installed system-wide,
# and every server (and initdb, which refuses root) runs as the "postgres"
# user through runuser.  Each run gets its own work directory,
# /tmp/eventstore.XXXXXX (ES_WORK), holding the clusters, their logs, their
# sockets and a copy of the repository for suites that write results next to
# their inputs.  es_cleanup stops every server started under ES_WORK and
# removes it, unless ES_KEEP=1.
#
# Functions:
#   es_install_packages      apt-get install what is missing (idempotent)
#   es_make_workdir          create ES_WORK and copy the repository into it
#   es_build_install         make clean; make -j2 && make install, in the copy
#   es_free_port             print a free TCP port on 127.0.0.1
#   es_cluster_start NAME    initdb + start a cluster in $ES_WORK/NAME
#   es_as_pg CMD...          run CMD as postgres in $ES_WORK/src
#   es_as_pg_wait CMD...     the same, interruptible by INT and TERM
#   es_cleanup               stop servers, remove ES_WORK (see ES_KEEP)
#   es_trap_cleanup          install es_cleanup on EXIT, INT and TERM

PG_MAJOR=15
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BINDIR/pg_config
PGXS_DIR=/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
export PG_CONFIG
export PATH="$PG_BINDIR:$PATH"

# Root of the repository: the parent of this file's directory.
ES_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# postgresql-contrib is part of postgresql-15 on Debian 12 (it provides the
# virtual package postgresql-contrib-15); perl and procps are there on most
# images but prove and pkill come from them.  pgbouncer is for
# test/t/008_pooler.pl, which starts its own (the package's service is not
# used).  PgQ is a peer of eventstore in test/bench (no pgqd: the suite
# ticks its queues itself).  prometheus-postgres-exporter is for
# test/t/013_metrics.pl, which runs its own with
# monitoring/postgres_exporter.yaml.  python3-psycopg2 (for
# /usr/bin/python3) and node with its npm run the client examples of
# test/clients (test/t/011_clients.pl, 012_pgbouncer_modes.pl); Debian's
# nodejs and npm are installed only where no node is found, since a node
# installed otherwise brings an npm that Debian's npm would conflict with.
ES_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
	postgresql-$PG_MAJOR-pgtap libtap-parser-sourcehandler-pgtap-perl
	libipc-run-perl make gcc libc6-dev perl procps pgbouncer
	postgresql-$PG_MAJOR-pgq3 prometheus-postgres-exporter python3-psycopg2"

ES_WORK=""
ES_CLUSTERS=()
ES_CHILD=""

es_log() {
	printf '%s\n' "$*" >&2
}

es_die() {
	es_log "error: $*"
	exit 1
}

es_require_root() {
	[ "$(id -u)" -eq 0 ] || es_die "run this as root (it installs packages and runs servers as postgres)"
}

es_pkg_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# Debian would otherwise create and start a "main" cluster on port 5432 when
# postgresql-15 is installed.  Done after postgresql-common is installed (its
# postinst writes createcluster.conf) and before postgresql-15 is.
es_no_main_cluster() {
	local conf=/etc/postgresql-common/createcluster.conf
	mkdir -p /etc/postgresql-common
	if grep -q '^[# ]*create_main_cluster' "$conf" 2>/dev/null; then
		sed -i 's/^[# ]*create_main_cluster.*/create_main_cluster = false/' "$conf"
	else
		echo 'create_main_cluster = false' >>"$conf"
	fi
}

es_apt_install() {
	DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 \
		apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"$@" >/dev/null ||
		es_die "apt-get install $* failed"
}

es_install_packages() {
	local pkg missing=()

	es_require_root
	for pkg in $ES_PACKAGES; do
		es_pkg_installed "$pkg" || missing+=("$pkg")
	done
	command -v node >/dev/null || missing+=(nodejs npm)
	if [ ${#missing[@]} -eq 0 ]; then
		return 0
	fi

	es_log "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
		es_die "apt-get update failed"
	if ! es_pkg_installed "postgresql-$PG_MAJOR"; then
		es_pkg_installed postgresql-common || es_apt_install postgresql-common
		es_no_main_cluster
	fi
	es_apt_install "${missing[@]}"
}

# Create ES_WORK, owned by postgres, with a copy of the repository in
# $ES_WORK/src: without .git and without what earlier runs left in the tree.
es_make_workdir() {
	id postgres >/dev/null 2>&1 || es_die "no postgres user: is postgresql-$PG_MAJOR installed?"
	ES_WORK=$(mktemp -d /tmp/eventstore.XXXXXX) || es_die "mktemp failed"
	export ES_WORK
	mkdir -p "$ES_WORK/src" "$ES_WORK/tmp"
	tar -C "$ES_REPO" --exclude=./.git --exclude=./tmp_check --exclude=./results \
		--exclude=./output_iso --exclude=./log --exclude=./test/bench/results \
		-cf - . | tar -C "$ES_WORK/src" -xf - ||
		es_die "could not copy the repository to $ES_WORK/src"
	chown -R postgres: "$ES_WORK"
}

# Build the copy in $ES_WORK/src (the working tree is left alone) with the
# Makefile's -Werror, and install into the system PostgreSQL.  Returns
# non-zero if either fails; the compiler's output is on stdout/stderr.
es_build_install() {
	es_require_root
	(
		cd "$ES_WORK/src" || exit 1
		make clean PG_CONFIG="$PG_CONFIG" >/dev/null 2>&1
		make -j2 PG_CONFIG="$PG_CONFIG" && make install PG_CONFIG="$PG_CONFIG" >/dev/null
	) || return 1
	chown -R postgres: "$ES_WORK/src"
}

# Run a command as postgres in $ES_WORK/src with the test environment:
# PATH, PGHOST, PGPORT and PGUSER as exported here.  runuser may reset the
# environment, so it is passed explicitly.  Prefix the command with VAR=value
# words to add or override variables (env syntax).
es_as_pg() {
	(
		cd "$ES_WORK/src" || exit 1
		runuser -u postgres -- env \
			PATH="$PATH" PG_CONFIG="$PG_CONFIG" HOME="$ES_WORK" TMPDIR="$ES_WORK/tmp" \
			LC_ALL=C.UTF-8 \
			${PGHOST:+PGHOST="$PGHOST"} ${PGPORT:+PGPORT="$PGPORT"} PGUSER=postgres \
			"$@"
	)
}

# es_as_pg_wait CMD...: es_as_pg in the background, waited for, so that an
# INT or TERM reaches the traps at once instead of after CMD; es_cleanup then
# kills what is still running.  Returns CMD's exit code.
es_as_pg_wait() {
	local rc
	es_as_pg "$@" &
	ES_CHILD=$!
	wait "$ES_CHILD"
	rc=$?
	ES_CHILD=""
	return "$rc"
}

# Stop a process and everything below it.
es_kill_tree() {
	local pid=$1 child
	kill -STOP "$pid" 2>/dev/null
	for child in $(pgrep -P "$pid"); do
		es_kill_tree "$child"
	done
	kill -KILL "$pid" 2>/dev/null
}

es_port_in_use() {
	# A connect that succeeds means something listens there.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

es_free_port() {
	local port tries
	port=$((20000 + RANDOM % 20000))
	for ((tries = 0; tries < 200; tries++)); do
		if ! es_port_in_use "$port"; then
			echo "$port"
			return 0
		fi
		port=$((port + 1))
		[ "$port" -le 40000 ] || port=20000
	done
	es_die "no free port found"
}

# es_cluster_start NAME: a new cluster in $ES_WORK/NAME, logging to
# $ES_WORK/NAME.log, with the extension preloaded.  Exports PGHOST, PGPORT
# and PGUSER for it.  Returns non-zero, after showing why, if it cannot start
# (a library that fails to load in shared_preload_libraries shows up here).
es_cluster_start() {
	local name=$1 data port
	data="$ES_WORK/$name"
	port=$(es_free_port) || return 1

	if ! es_as_pg initdb -D "$data" -A trust -E UTF8 --no-locale -U postgres \
		>"$ES_WORK/$name.initdb.log" 2>&1; then
		cat "$ES_WORK/$name.initdb.log" >&2
		es_log "initdb of $data failed"
		return 1
	fi
	cat >>"$data/postgresql.conf" <<-EOF

		# added by test/lib.sh
		port = $port
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$ES_WORK'
		shared_preload_libraries = 'eventstore'
		max_prepared_transactions = 10
		fsync = on
		logging_collector = off
	EOF
	ES_CLUSTERS+=("$data")
	if ! es_as_pg pg_ctl -D "$data" -l "$ES_WORK/$name.log" -w -t 60 start >/dev/null; then
		tail -n 30 "$ES_WORK/$name.log" >&2
		es_log "cluster $name did not start"
		return 1
	fi
	export PGHOST="$ES_WORK" PGPORT="$port" PGUSER=postgres
}

# Kill a running es_as_pg_wait command, then stop every server started under
# ES_WORK: the clusters started here, then anything else with a postmaster.pid
# below ES_WORK (TAP tests' nodes), then any process still naming ES_WORK on
# its command line.  Removes ES_WORK unless ES_KEEP=1.
es_cleanup() {
	local data pidfile pid i

	if [ -n "$ES_CHILD" ]; then
		es_kill_tree "$ES_CHILD"
		ES_CHILD=""
	fi
	[ -n "$ES_WORK" ] && [ -d "$ES_WORK" ] || return 0

	for data in "${ES_CLUSTERS[@]}"; do
		[ -f "$data/postmaster.pid" ] || continue
		es_as_pg pg_ctl -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	done

	while IFS= read -r pidfile; do
		pid=$(head -n 1 "$pidfile" 2>/dev/null)
		case "$pid" in '' | *[!0-9]*) continue ;; esac
		# A stale file's pid may belong to someone else by now.
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$ES_WORK/" || continue
		if kill -0 "$pid" 2>/dev/null; then
			kill -QUIT "$pid" 2>/dev/null
			for ((i = 0; i < 50; i++)); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null
		fi
	done < <(find "$ES_WORK" -name postmaster.pid -type f 2>/dev/null)

	pkill -KILL -f -- "$ES_WORK/" 2>/dev/null || true

	if [ "${ES_KEEP:-0}" = 1 ]; then
		es_log "ES_KEEP=1: kept $ES_WORK"
	else
		rm -rf "$ES_WORK"
	fi
	ES_WORK=""
}

es_on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	es_cleanup
	exit "$rc"
}

es_trap_cleanup() {
	trap es_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
