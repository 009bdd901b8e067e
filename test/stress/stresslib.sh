# test/stress/stresslib.sh: helpers shared by the stress scripts.  The
# sourcing script sets PGBIN and DB, and FAILED=0 before its checks.

psql_admin() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
psql_db() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

check() {
	# check DESCRIPTION COMMAND...: "ok - " when COMMAND succeeds
	local desc=$1
	shift
	if "$@"; then
		echo "ok - $desc"
	else
		echo "not ok - $desc"
		FAILED=1
	fi
}

# A query whose single result must be "t".
is_true() { [ "$(psql_db -c "$1")" = t ]; }
