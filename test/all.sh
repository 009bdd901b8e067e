#!/bin/bash
# test/all.sh: run every test suite of eventstore and print one closing line,
#
#     N passed, M failed
#
# exiting non-zero when M > 0 or when the harness itself broke.  Run it as root
# on Debian 12 from the repository: `bash test/all.sh`.  It installs missing
# packages, builds a copy of the tree (the working tree is not touched) and
# installs the extension (warnings are errors), then runs:
#
#   1. build       1 test: make (with -Werror) and make install succeeded
#   2. pg_regress  sql/NAME.sql against expected/NAME.out, one test each
#   3. isolation   test/isolation/specs/NAME.spec against
#                  test/isolation/expected/NAME.out, one test each
#   4. pgTAP       test/pgtap/*.sql with pg_prove, each assertion counts
#   5. stress      test/stress/run.sh (read_all as a FROM item, again with
#                  fast commits, then as a function, then filtered) and
#                  groups.sh, each
#                  "ok"/"not ok"
#                  line counts
#   6. TAP         test/t/*.pl with prove and PostgreSQL::Test::Cluster,
#                  each assertion counts
#
# Suites 2-5 share one throwaway cluster; TAP tests start their own.  A suite
# whose runner breaks counts at least one failure; a failing suite never stops
# the others.  Everything lives in /tmp/eventstore.XXXXXX, removed at the end
# unless ES_KEEP=1.  `bash test/all.sh --self-test` only checks the output
# parsers below.

set -u

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOTAL_PASSED=0
TOTAL_FAILED=0

# --- output parsers: each prints "PASSED FAILED" -------------------------

# pg_regress and pg_isolation_regress: PostgreSQL 15 prints
# "test NAME ... ok" / "... FAILED" (and "     NAME ... ok" inside parallel
# groups); 16 and later print TAP, "ok 1 - NAME" / "not ok 1 - NAME".
es_count_regress() {
	awk '
		/^not ok [0-9]+/                    { f++; next }
		/^ok [0-9]+/                        { p++; next }
		/ \.\.\. +ok( |$)/                  { p++; next }
		/ \.\.\. +failed \(ignored\)/       { p++; next }
		/ \.\.\. +FAILED/                   { f++; next }
		END { print p + 0, f + 0 }' "$1"
}

# prove and pg_prove: "Files=F, Tests=N, ..." gives the assertions run.  Each
# file in the "Test Summary Report" shows "(Wstat: ... Tests: T Failed: K)"
# and, if it stopped early, "Bad plan.  You planned P tests but ran T.": it
# counts K + (P - T) failures, and at least 1 (a file that died, a bad plan).
es_count_prove() {
	awk '
		function close_file() {
			if (in_file) failed += (file_failed > 0 ? file_failed : 1)
			in_file = 0
		}
		/^Files=[0-9]+, Tests=[0-9]+/ {
			close_file()
			s = $0; sub(/.*Tests=/, "", s); sub(/,.*/, "", s); tests = s + 0
		}
		/\(Wstat: .*Tests: [0-9]+ Failed: [0-9]+\)/ {
			close_file()
			s = $0; sub(/.*Failed: /, "", s); sub(/\).*/, "", s)
			failed_asserts += s; file_failed = s + 0; in_file = 1
		}
		in_file && /Bad plan.*You planned [0-9]+ tests but ran [0-9]+/ {
			s = $0; sub(/.*You planned /, "", s); planned = s + 0
			s = $0; sub(/.*but ran /, "", s); ran = s + 0
			if (planned > ran) file_failed += planned - ran
		}
		END { close_file(); print tests - failed_asserts, failed + 0 }' "$1"
}

# Stress script lines: "ok - what" / "not ok - what".
es_count_tap_lines() {
	awk '
		/^not ok( |$)/ { f++; next }
		/^ok( |$)/     { p++; next }
		END { print p + 0, f + 0 }' "$1"
}

# --- bookkeeping -----------------------------------------------------------

SUITE_NAME=""
SUITE_START=0

suite_begin() {
	SUITE_NAME=$1
	SUITE_START=$SECONDS
	echo
	echo "== $SUITE_NAME =="
}

# suite_end PASSED FAILED [RUNNER_EXIT_CODE]: a runner that failed while no
# test failed still counts one failure.
suite_end() {
	local passed=$1 failed=$2 rc=${3:-0}
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "   runner timed out (exit code $rc)"
	fi
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		echo "   runner exited with code $rc: counted as 1 failure"
		failed=1
	fi
	TOTAL_PASSED=$((TOTAL_PASSED + passed))
	TOTAL_FAILED=$((TOTAL_FAILED + failed))
	echo "-- $SUITE_NAME: $passed ok, $failed not ok ($((SECONDS - SUITE_START)) s)"
}

suite_skip() {
	echo "-- $SUITE_NAME: skipped, $1"
}

indent() {
	sed 's/^/    /'
}

finish() {
	es_cleanup
	trap - EXIT INT TERM
	echo
	echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
	[ "$TOTAL_FAILED" -eq 0 ]
	exit
}

# Runs as postgres in $ES_WORK/src, bounded in time.
run_pg() {
	local limit=$1
	shift
	es_as_pg_wait timeout --kill-after=10 "$limit" "$@"
}

# --- suites ----------------------------------------------------------------

suite_build() {
	local out rc
	suite_begin "1/6 build"
	out=$(es_build_install 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '%s\n' "$out" | tail -n 100 | indent
		echo "-- $SUITE_NAME: FAILED, no other suite runs"
		TOTAL_FAILED=1
		finish
	fi
	printf '%s\n' "$out" | grep -E ': (warning|error):' | indent
	suite_end 1 0
}

# One pg_regress-style suite: run_regress_suite TITLE RUNNER INPUTDIR
# OUTPUTDIR DATABASE EXTENSION, for the tests INPUTDIR/{sql,specs}/*.EXTENSION.
run_regress_suite() {
	local title=$1 runner=$2 inputdir=$3 outputdir=$4 db=$5 ext=$6
	local subdir=sql tests=() f out rc counts
	[ "$ext" = spec ] && subdir=specs
	out=$ES_WORK/$db.out
	suite_begin "$title"
	for f in "$ES_WORK/src/$inputdir/$subdir"/*."$ext"; do
		[ -e "$f" ] && tests+=("$(basename "$f" ."$ext")")
	done
	if [ ${#tests[@]} -eq 0 ]; then
		suite_skip "no $inputdir/$subdir/*.$ext"
		return
	fi
	run_pg 600 "$runner" \
		--inputdir="$inputdir" --outputdir="$outputdir" --bindir="$PG_BINDIR" \
		--host="$PGHOST" --port="$PGPORT" \
		--load-extension=eventstore --dbname="$db" \
		"${tests[@]}" >"$out" 2>&1
	rc=$?
	indent <"$out"
	if [ -s "$ES_WORK/src/$outputdir/regression.diffs" ]; then
		echo "   $outputdir/regression.diffs (first 200 lines):"
		head -n 200 "$ES_WORK/src/$outputdir/regression.diffs" | indent
	fi
	counts=$(es_count_regress "$out")
	suite_end ${counts% *} ${counts#* } "$rc"
}

suite_regress() {
	run_regress_suite "2/6 pg_regress" "$PGXS_DIR/src/test/regress/pg_regress" \
		. . contrib_regression sql
}

suite_isolation() {
	run_regress_suite "3/6 isolation" \
		"$PGXS_DIR/src/test/isolation/pg_isolation_regress" \
		test/isolation output_iso isolation_regression spec
}

suite_pgtap() {
	local files=() f out=$ES_WORK/pgtap.out rc counts
	suite_begin "4/6 pgTAP"
	for f in "$ES_WORK"/src/test/pgtap/*.sql; do
		[ -e "$f" ] && files+=("test/pgtap/$(basename "$f")")
	done
	if [ ${#files[@]} -eq 0 ]; then
		suite_skip "no test/pgtap/*.sql"
		return
	fi
	if ! run_pg 120 psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'CREATE DATABASE pgtap' >"$out" 2>&1 ||
		! run_pg 120 psql -X -q -v ON_ERROR_STOP=1 -d pgtap \
			-c 'CREATE EXTENSION pgtap' -c 'CREATE EXTENSION eventstore' >>"$out" 2>&1; then
		indent <"$out"
		suite_end 0 1
		return
	fi
	run_pg 600 pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d pgtap \
		"${files[@]}" >>"$out" 2>&1
	rc=$?
	indent <"$out"
	counts=$(es_count_prove "$out")
	suite_end ${counts% *} ${counts#* } "$rc"
}

suite_stress() {
	local out=$ES_WORK/stress.out rc fast_rc function_rc filtered_rc groups_rc counts
	suite_begin "5/6 stress"
	if [ ! -f "$ES_WORK/src/test/stress/run.sh" ]; then
		suite_skip "no test/stress/run.sh"
		return
	fi
	# the feed read as a FROM item (the streaming scan), then with commits
	# every millisecond or so (a reader that took its snapshot before its
	# head would skip), then as a function, then with a filter
	run_pg 900 bash test/stress/run.sh >"$out" 2>&1
	rc=$?
	run_pg 900 env STRESS_MAX_DELAY=1 STRESS_SECONDS=8 bash test/stress/run.sh >>"$out" 2>&1
	fast_rc=$?
	run_pg 900 env STRESS_READER=function STRESS_MAX_DELAY=1 STRESS_SECONDS=8 \
		bash test/stress/run.sh >>"$out" 2>&1
	function_rc=$?
	run_pg 900 env STRESS_READER=filtered STRESS_MAX_DELAY=1 STRESS_SECONDS=8 \
		bash test/stress/run.sh >>"$out" 2>&1
	filtered_rc=$?
	run_pg 300 bash test/stress/groups.sh >>"$out" 2>&1
	groups_rc=$?
	[ "$rc" -ne 0 ] || rc=$fast_rc
	[ "$rc" -ne 0 ] || rc=$function_rc
	[ "$rc" -ne 0 ] || rc=$filtered_rc
	[ "$rc" -ne 0 ] || rc=$groups_rc
	indent <"$out"
	counts=$(es_count_tap_lines "$out")
	suite_end ${counts% *} ${counts#* } "$rc"
}

# Mimics PGXS's prove_installcheck: TESTDIR puts tmp_check (nodes, logs,
# port locks) under $ES_WORK/src; PG_REGRESS is needed by
# PostgreSQL::Test::Cluster->init.  PGHOST/PGPORT are dropped: each node
# sets its own.
suite_tap() {
	local files=() f out=$ES_WORK/tap.out rc counts
	suite_begin "6/6 TAP"
	for f in "$ES_WORK"/src/test/t/*.pl; do
		[ -e "$f" ] && files+=("test/t/$(basename "$f")")
	done
	if [ ${#files[@]} -eq 0 ]; then
		suite_skip "no test/t/*.pl"
		return
	fi
	rm -rf "$ES_WORK/src/tmp_check"
	run_pg 1200 env -u PGHOST -u PGPORT \
		TESTDIR="$ES_WORK/src" \
		PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
		prove -I "$PGXS_DIR/src/test/perl/" -I . -I test/t "${files[@]}" >"$out" 2>&1
	rc=$?
	indent <"$out"
	if [ "$rc" -ne 0 ] && [ -d "$ES_WORK/src/tmp_check/log" ]; then
		echo "   TAP logs: ES_KEEP=1 keeps them in $ES_WORK/src/tmp_check/log"
	fi
	counts=$(es_count_prove "$out")
	suite_end ${counts% *} ${counts#* } "$rc"
}

# --- self-test of the parsers ----------------------------------------------

self_test() {
	local tmp bad=0
	tmp=$(mktemp)

	check() {
		local want=$1 got=$2 what=$3
		if [ "$want" = "$got" ]; then
			echo "ok - $what"
		else
			echo "not ok - $what: want '$want', got '$got'"
			bad=1
		fi
	}

	printf '%s\n' 'test append                       ... ok           35 ms' \
		'test read                         ... FAILED       20 ms' \
		'test crash                        ... FAILED (test process exited with exit code 2)        1 ms' \
		'     grouped                      ... ok           10 ms' >"$tmp"
	check "2 2" "$(es_count_regress "$tmp")" "pg_regress 15 format"

	printf '%s\n' 'ok 1         - append                       35 ms' \
		'not ok 2     - read                         20 ms' '1..2' >"$tmp"
	check "1 1" "$(es_count_regress "$tmp")" "pg_regress 16 TAP format"

	printf '%s\n' 'test/pgtap/a.sql .. ok' 'All tests successful.' \
		'Files=2, Tests=40,  1 wallclock secs' 'Result: PASS' >"$tmp"
	check "40 0" "$(es_count_prove "$tmp")" "prove, all passed"

	printf '%s\n' 'Test Summary Report' '-------------------' \
		'test/pgtap/a.sql (Wstat: 256 (exited 1) Tests: 10 Failed: 2)' \
		'  Failed tests:  3, 5' \
		'test/pgtap/b.sql (Wstat: 0 Tests: 8 Failed: 0)' \
		'  Parse errors: Bad plan.  You planned 9 tests but ran 8.' \
		'test/pgtap/c.sql (Wstat: 768 (exited 3) Tests: 10 Failed: 6)' \
		'  Failed tests:  5-10' \
		'  Parse errors: Bad plan.  You planned 75 tests but ran 10.' \
		'Files=3, Tests=28,  1 wallclock secs' 'Result: FAIL' >"$tmp"
	check "20 74" "$(es_count_prove "$tmp")" "prove, failures and a bad plan"

	printf '%s\n' 'Test Summary Report' \
		'test/t/001_crash.pl (Wstat: 768 (exited 3) Tests: 0 Failed: 0)' \
		'  Parse errors: No plan found in TAP output' \
		'Files=1, Tests=0,  1 wallclock secs' 'Result: FAIL' >"$tmp"
	check "0 1" "$(es_count_prove "$tmp")" "prove, a file that died before any test"

	printf '%s\n' 'ok - appends' 'not ok - feed skipped 3' 'ok' '# ok - comment' >"$tmp"
	check "2 1" "$(es_count_tap_lines "$tmp")" "stress lines"

	rm -f "$tmp"
	return "$bad"
}

# --- main ------------------------------------------------------------------

if [ "${1:-}" = "--self-test" ]; then
	self_test
	exit
fi

es_install_packages
es_trap_cleanup
es_make_workdir
suite_build
if ! es_cluster_start regress 2>"$ES_WORK/cluster.err"; then
	indent <"$ES_WORK/cluster.err"
	echo "-- the test cluster did not start: counted as 1 failure"
	TOTAL_FAILED=$((TOTAL_FAILED + 1))
	finish
fi
echo "   cluster: PostgreSQL $PG_MAJOR on 127.0.0.1:$PGPORT, work dir $ES_WORK"

suite_regress
suite_isolation
suite_pgtap
suite_stress
suite_tap

finish
