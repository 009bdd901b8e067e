#!/bin/bash
# test/bench/filters.sh: what a filtered read of the global feed costs.
#
#     bash test/bench/filters.sh       (7-9 minutes with the defaults)
#
# Like versus.sh it installs what it needs, runs as root, builds and
# installs this tree, and starts one throwaway cluster with run.sh's durable
# settings (shared_buffers 1GB: the data set is about 160 MB), autovacuum
# off (the script vacuums where the data changed).  It loads
# FILTERS_EVENTS (300,000) events, one per append, to streams picked at
# random among FILTERS_STREAMS (5,000): stream n is "order-n",
# "customer-n" or "invoice-n" (n mod 3) and has partition key "tenant-k",
# k = n mod FILTERS_TENANTS (50); every event is, at random, of type Common
# (70 %), Medium (29 %) or Rare (1 %), with ~190 bytes of data and ~60 of
# metadata.  Then VACUUM ANALYZE.
#
# Each read is a pgbench run of BENCH_SECONDS (5) at 1 client, -M prepared,
# rows sent to the client (SELECT *).  BENCH_REPS (3) times, in turn, every
# read below, then (the order of the two blocks alternating between
# repetitions) the index block; a cell is the median over repetitions.
#   ra-1000       read_all(p, 1000), no filter: the reference
#   ra-100        read_all(p, 100), no filter
#   common, medium, rare
#                 read_all(p, 100, event_types => ARRAY[type])
#   prefix        read_all(p, 100, stream_prefix => 'customer-')
#   tenant        read_all(p, 100, partition_keys => ARRAY['tenant-7'])
#   tail-*        read_all(head - D, 100, ARRAY[type]) for D = 10,000 and
#                 100,000, type Rare and Absent (a type never appended: a
#                 reader waiting at the head for events that do not come)
#   back, back-rare
#                 read_all_backwards(NULL, 20), without and with ['Rare']
#   feed-rare     BEGIN; open_feed(p, 'f', ARRAY['Rare']); FETCH 100; COMMIT
#   feed-rare-custom
#                 the same with plan_cache_mode = force_custom_plan
#   sql-rare      the plain query SELECT ... FROM eventstore.events WHERE
#                 event_type = 'Rare' AND p < insert_order <= head ORDER BY
#                 insert_order LIMIT 100: what an index on (event_type,
#                 insert_order) can give a query that names one type
# p is random(0, head - 20,000), the same in every script.  The index
# block creates the index eventstore.events_type_order on (event_type,
# insert_order), runs rare, back-rare, feed-rare, feed-rare-custom and
# sql-rare again, and drops it.
#
# Per cell: pages/s (pgbench's tps), events returned per page and
# positions spanned per page (from FILTERS_SAMPLES (200) pages read by a
# SQL function at the same random positions: the span of a full page is its
# last position minus after_position, of a short one the head minus
# after_position), events returned/s (pages/s times returned per page),
# index entries read per page (idx_tup_read of pg_stat_all_indexes summed
# over the log's partitions before and after the run, divided by the
# pages: the rows a page actually examined, all partitions and indexes
# included) and those entries per second.  The plans of open_feed's,
# read_all_backwards' and sql-rare's queries, without and with the index,
# are shown for a session's first call and its 7th (plans kept by SPI and
# PL/pgSQL may switch to a generic plan from the 6th call on), taken by
# auto_explain from the server log.
#
# Last, the cost of the index to appends: W1 of run.sh (one event per
# append to a random stream among s-1 .. s-5000, created beforehand, then
# one warm-up run) at 8 clients, FILTERS_W1_PAIRS (5) pairs of runs without
# and with the index (the order alternating), each run after a VACUUM of
# the log and bench_pgbench's CHECKPOINT; events/s, WAL bytes per event
# (cluster-wide, full-page images included), the ratio within each pair
# and its median.  After each W1 run, with the same index, FILTERS_BULK
# (20,000) such appends in one statement, timed in the server, with no
# CHECKPOINT between (few full-page images): the cost of the index entry
# without a commit per event (a second table, likewise).  amcheck's bt_index_check (heapallindexed)
# checks the index after its first run.  W1's streams have no partition
# key, so its events (all Common) fall in every partition, the one the 50
# tenants of the load left empty included: after W1 (ANALYZE) the plans
# are taken once more, since open_feed's generic plan depends on the
# partitions' statistics, and rare and feed-rare run again (BENCH_REPS
# times): each partition's scan reads ahead to its own next passing event,
# so a partition without one reads up to the head on every page.
#
# It prints markdown tables on stdout (progress goes to stderr) and removes
# everything at the end (ES_KEEP=1 keeps it).

set -u

BENCH_SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$BENCH_SELF/../lib.sh"
. "$BENCH_SELF/benchlib.sh"

: "${BENCH_SECONDS:=5}" "${BENCH_REPS:=3}"
: "${FILTERS_EVENTS:=300000}" "${FILTERS_STREAMS:=5000}" "${FILTERS_TENANTS:=50}"
: "${FILTERS_SAMPLES:=200}" "${FILTERS_W1_PAIRS:=5}" "${FILTERS_BULK:=20000}"
BENCH_STREAMS=$FILTERS_STREAMS
BENCH_READ_STREAMS=0
BENCH_RUN=0
BENCH_T0=$SECONDS
DB=filters
INDEX=eventstore.events_type_order
COLUMNS="insert_order, stream_id, stream_order, event_id, event_type, schema_version, data, metadata, recorded_at, partition_key"

# The reads, in the order they run: id, then a description for the table.
READ_CASES=(ra-1000 ra-100 common medium rare prefix tenant
	tail-rare-10k tail-rare-100k tail-absent-10k tail-absent-100k
	back back-rare feed-rare feed-rare-custom sql-rare)
INDEX_CASES=(rare back-rare feed-rare feed-rare-custom sql-rare)
declare -A LABEL=(
	[ra-1000]="read_all(p, 1000)"
	[ra-100]="read_all(p, 100)"
	[common]="read_all(p, 100, ARRAY['Common'])"
	[medium]="read_all(p, 100, ARRAY['Medium'])"
	[rare]="read_all(p, 100, ARRAY['Rare'])"
	[prefix]="read_all(p, 100, stream_prefix => 'customer-')"
	[tenant]="read_all(p, 100, partition_keys => ARRAY['tenant-7'])"
	[tail-rare-10k]="read_all(head - 10000, 100, ARRAY['Rare'])"
	[tail-rare-100k]="read_all(head - 100000, 100, ARRAY['Rare'])"
	[tail-absent-10k]="read_all(head - 10000, 100, ARRAY['Absent'])"
	[tail-absent-100k]="read_all(head - 100000, 100, ARRAY['Absent'])"
	[back]="read_all_backwards(NULL, 20)"
	[back-rare]="read_all_backwards(NULL, 20, ARRAY['Rare'])"
	[feed-rare]="open_feed(p, 'f', ARRAY['Rare']) + FETCH 100"
	[feed-rare-custom]="open_feed(p, 'f', ARRAY['Rare']) + FETCH 100, plan_cache_mode = force_custom_plan"
	[sql-rare]="SELECT ... FROM eventstore.events WHERE event_type = 'Rare' AND insert_order > p ORDER BY insert_order LIMIT 100"
)

# The cluster: run.sh's durable settings.
filters_cluster() {
	es_cluster_start filters || return 1
	bq postgres \
		-c "ALTER SYSTEM SET synchronous_commit = on" \
		-c "ALTER SYSTEM SET full_page_writes = on" \
		-c "ALTER SYSTEM SET shared_buffers = '1GB'" \
		-c "ALTER SYSTEM SET wal_buffers = '64MB'" \
		-c "ALTER SYSTEM SET max_wal_size = '8GB'" \
		-c "ALTER SYSTEM SET checkpoint_timeout = '30min'" \
		-c "ALTER SYSTEM SET max_connections = 50" \
		-c "ALTER SYSTEM SET autovacuum = off" >/dev/null || return 1
	es_as_pg pg_ctl -D "$ES_WORK/filters" -l "$ES_WORK/filters.log" -w -t 120 restart >/dev/null ||
		return 1
	bq postgres -c "CREATE DATABASE $DB" &&
		bq "$DB" -c "CREATE EXTENSION eventstore" -c "CREATE EXTENSION amcheck"
}

# The log: FILTERS_EVENTS single-event appends in statements of 50,000,
# one psql session (setseed makes the data the same from run to run).
filters_load() {
	local sql=$BENCH_WORK/load.sql first last
	echo "SELECT setseed(0.25);" >"$sql"
	for ((first = 1; first <= FILTERS_EVENTS; first += 50000)); do
		last=$((first + 49999 < FILTERS_EVENTS ? first + 49999 : FILTERS_EVENTS))
		cat >>"$sql" <<-EOF
			SELECT count(*) FROM (
			    SELECT g, floor(random() * $FILTERS_STREAMS)::int + 1 AS s, random() AS r
			      FROM generate_series($first, $last) g) x,
			  LATERAL eventstore.append(
			    (ARRAY['order-', 'customer-', 'invoice-'])[x.s % 3 + 1] || x.s,
			    ARRAY[eventstore.event(
			        CASE WHEN x.r < 0.70 THEN 'Common' WHEN x.r < 0.99 THEN 'Medium' ELSE 'Rare' END,
			        jsonb_build_object('n', x.g, 'note', repeat('x', 160)),
			        jsonb_build_object('correlation_id', md5(x.g::text)))],
			    NULL, 'tenant-' || (x.s % $FILTERS_TENANTS));
		EOF
	done
	bq "$DB" -f "$sql" >/dev/null &&
		bq "$DB" -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

# Helpers in schema fbench: one page's returned events and span, and the
# mean of both over random positions.
filters_functions() {
	bq "$DB" <<-'EOF'
		CREATE SCHEMA fbench;
		CREATE FUNCTION fbench.page(after bigint, n int, types text[], prefix text, keys text[],
		                            OUT returned bigint, OUT span bigint)
		LANGUAGE sql AS $$
		    SELECT count(*),
		           CASE WHEN count(*) = n THEN max(r.insert_order) - after
		                ELSE eventstore.head() - after END
		      FROM eventstore.read_all(after, n, types, prefix, keys) r
		$$;
		CREATE FUNCTION fbench.sample(n int, types text[], prefix text, keys text[],
		                              maxp bigint, samples int)
		RETURNS TABLE (returned numeric, span numeric)
		LANGUAGE sql AS $$
		    SELECT avg(p.returned), avg(p.span)
		      FROM (SELECT (random() * maxp)::bigint AS after
		              FROM generate_series(1, samples)) s,
		           LATERAL fbench.page(s.after, n, types, prefix, keys) p
		$$;
		CREATE FUNCTION fbench.back(types text[], OUT returned bigint, OUT span bigint)
		LANGUAGE sql AS $$
		    SELECT count(*), eventstore.head() - min(r.insert_order) + 1
		      FROM eventstore.read_all_backwards(NULL, 20, types) r
		$$;
		-- index entries read so far in the log's partitions (flushed stats)
		CREATE FUNCTION fbench.entries_read() RETURNS bigint
		LANGUAGE sql AS $$
		    SELECT COALESCE(sum(s.idx_tup_read), 0)::bigint
		      FROM pg_stat_all_indexes s
		      JOIN pg_inherits i ON i.inhrelid = s.relid
		     WHERE i.inhparent = 'eventstore.events'::regclass
		$$;
	EOF
}

# The pgbench scripts (after the load: the tail positions are constants).
filters_scripts() {
	local t10=$((HEAD - 10000)) t100=$((HEAD - 100000)) t
	mkdir -p "$BENCH_SCRIPTS"
	cd "$BENCH_SCRIPTS" || return 1
	printf '\\set p random(0, :maxp)\nSELECT * FROM eventstore.read_all(:p, 1000);\n' >ra-1000.sql
	printf '\\set p random(0, :maxp)\nSELECT * FROM eventstore.read_all(:p, 100);\n' >ra-100.sql
	for t in Common Medium Rare; do
		printf '\\set p random(0, :maxp)\nSELECT * FROM eventstore.read_all(:p, 100, ARRAY[%s]);\n' \
			"'$t'" >"$(echo "$t" | tr 'A-Z' 'a-z').sql"
	done
	printf '\\set p random(0, :maxp)\nSELECT * FROM eventstore.read_all(:p, 100, stream_prefix => %s);\n' \
		"'customer-'" >prefix.sql
	printf '\\set p random(0, :maxp)\nSELECT * FROM eventstore.read_all(:p, 100, partition_keys => ARRAY[%s]);\n' \
		"'tenant-7'" >tenant.sql
	printf 'SELECT * FROM eventstore.read_all(%s, 100, ARRAY[%s]);\n' "$t10" "'Rare'" >tail-rare-10k.sql
	printf 'SELECT * FROM eventstore.read_all(%s, 100, ARRAY[%s]);\n' "$t100" "'Rare'" >tail-rare-100k.sql
	printf 'SELECT * FROM eventstore.read_all(%s, 100, ARRAY[%s]);\n' "$t10" "'Absent'" >tail-absent-10k.sql
	printf 'SELECT * FROM eventstore.read_all(%s, 100, ARRAY[%s]);\n' "$t100" "'Absent'" >tail-absent-100k.sql
	printf 'SELECT * FROM eventstore.read_all_backwards(NULL, 20);\n' >back.sql
	printf 'SELECT * FROM eventstore.read_all_backwards(NULL, 20, ARRAY[%s]);\n' "'Rare'" >back-rare.sql
	cat >feed-rare.sql <<-'EOF'
		\set p random(0, :maxp)
		BEGIN;
		SELECT eventstore.open_feed(:p, 'f', ARRAY['Rare']);
		FETCH 100 FROM f;
		COMMIT;
	EOF
	cp feed-rare.sql feed-rare-custom.sql
	cat >sql-rare.sql <<-EOF
		\\set p random(0, :maxp)
		SELECT $COLUMNS FROM eventstore.events
		 WHERE event_type = 'Rare' AND insert_order > :p AND insert_order <= $HEAD
		 ORDER BY insert_order LIMIT 100;
	EOF
	cat >w1.sql <<-EOF
		\\set id random(1, $FILTERS_STREAMS)
		SELECT count(*) FROM eventstore.append('s-' || :id, ARRAY[eventstore.event('Common', '{}')]);
	EOF
	cd - >/dev/null || return 1
	chown -R postgres: "$BENCH_WORK"
}

# Returned events and span per page of each read, into $BENCH_WORK/pages
# ("id returned span"); the feed and SQL reads return read_all's page.
filters_sample() {
	local f=$BENCH_WORK/pages t10=$((HEAD - 10000)) t100=$((HEAD - 100000)) row
	local q="SELECT setseed(0.5); SELECT round(returned, 1), round(span) FROM fbench.sample"
	: >"$f"
	filters_sample_one() {
		row=$(bq "$DB" -F ' ' -c "$2" | tail -n 1) || es_die "sampling $1 failed"
		echo "$1 $row" >>"$f"
	}
	filters_sample_one ra-1000 "$q(1000, NULL, NULL, NULL, $MAXP, $FILTERS_SAMPLES)"
	filters_sample_one ra-100 "$q(100, NULL, NULL, NULL, $MAXP, $FILTERS_SAMPLES)"
	filters_sample_one common "$q(100, '{Common}', NULL, NULL, $MAXP, $FILTERS_SAMPLES)"
	filters_sample_one medium "$q(100, '{Medium}', NULL, NULL, $MAXP, $FILTERS_SAMPLES)"
	filters_sample_one rare "$q(100, '{Rare}', NULL, NULL, $MAXP, $FILTERS_SAMPLES)"
	filters_sample_one prefix "$q(100, NULL, 'customer-', NULL, $MAXP, $FILTERS_SAMPLES)"
	filters_sample_one tenant "$q(100, NULL, NULL, '{tenant-7}', $MAXP, $FILTERS_SAMPLES)"
	filters_sample_one tail-rare-10k "SELECT * FROM fbench.page($t10, 100, '{Rare}', NULL, NULL)"
	filters_sample_one tail-rare-100k "SELECT * FROM fbench.page($t100, 100, '{Rare}', NULL, NULL)"
	filters_sample_one tail-absent-10k "SELECT * FROM fbench.page($t10, 100, '{Absent}', NULL, NULL)"
	filters_sample_one tail-absent-100k "SELECT * FROM fbench.page($t100, 100, '{Absent}', NULL, NULL)"
	filters_sample_one back "SELECT * FROM fbench.back(NULL)"
	filters_sample_one back-rare "SELECT * FROM fbench.back('{Rare}')"
	row=$(awk '$1 == "rare" { print $2, $3 }' "$f")
	printf 'feed-rare %s\nfeed-rare-custom %s\nsql-rare %s\n' "$row" "$row" "$row" >>"$f"
}

# filters_measure ID REP VARIANT: one pgbench run of read ID; appends
# "variant,id,rep,pages,pages_per_s,p50_ms,entries_read" to $RAW.
filters_measure() {
	local id=$1 rep=$2 variant=$3 e0 e1 opts=""
	[ "$id" = feed-rare-custom ] && opts="-c plan_cache_mode=force_custom_plan"
	e0=$(bq "$DB" -c "SELECT fbench.entries_read()") || es_die "pg_stat_all_indexes"
	PGOPTIONS=$opts bench_pgbench "$DB" 1 "$id.sql" 1 -D maxp="$MAXP"
	[ "$R_FAILED" -eq 0 ] || es_die "pgbench $id failed"
	sleep 0.1 # the exiting backend's statistics
	e1=$(bq "$DB" -c "SELECT fbench.entries_read()") || es_die "pg_stat_all_indexes"
	echo "$variant,$id,$rep,$R_TXNS,$R_EPS,${R_P50:-0},$((e1 - e0))" >>"$RAW"
	bench_log "$(printf '%-5s %-17s rep %s: %8.0f pages/s  %8.0f entries/page' "$variant" "$id" "$rep" \
		"$R_EPS" "$(awk -v e=$((e1 - e0)) -v n="$R_TXNS" 'BEGIN { print e / n }')")"
}

filters_create_index() {
	bq "$DB" -c "CREATE INDEX events_type_order ON eventstore.events (event_type, insert_order)" ||
		es_die "CREATE INDEX on eventstore.events was refused"
}

filters_drop_index() {
	bq "$DB" -c "DROP INDEX $INDEX" ||
		es_die "DROP INDEX failed"
}

# The plans of the feed, backwards and SQL reads in one session, calls 1
# and 7, from auto_explain's lines in the server log; appends
# "variant|read|call 1|call 7" to $BENCH_WORK/plans.
filters_plans() {
	local variant=$1 log=$ES_WORK/filters.log from p=$((HEAD / 2)) i
	from=$(($(wc -c <"$log") + 1))
	{
		echo "LOAD 'auto_explain';"
		echo "SET auto_explain.log_min_duration = 0;"
		echo "SET auto_explain.log_nested_statements = on;"
		# sql-rare as pgbench -M prepared runs it: a prepared statement
		echo "PREPARE sql_rare(bigint) AS /* sql-rare */ SELECT $COLUMNS FROM eventstore.events"
		echo "  WHERE event_type = 'Rare' AND insert_order > \$1 AND insert_order <= $HEAD"
		echo "  ORDER BY insert_order LIMIT 100;"
		for ((i = 1; i <= 7; i++)); do
			echo "BEGIN; SELECT eventstore.open_feed($p, 'f', ARRAY['Rare']);"
			echo "FETCH 100 FROM f \\g /dev/null"
			echo "COMMIT;"
			echo "SELECT count(*) FROM eventstore.read_all_backwards(NULL, 20, ARRAY['Rare']);"
			echo "EXECUTE sql_rare($p) \\g /dev/null"
		done
	} | bq "$DB" >/dev/null || es_die "plans ($variant) failed"
	sleep 0.2
	tail -c +"$from" "$log" | awk -v variant="$variant" '
		# one plan per "duration: ... plan:" entry; its nodes, each once, in order
		function flush() {
			if (kind != "") {
				n[kind]++
				if (n[kind] == 1 || n[kind] == 7)
					plan[kind, n[kind]] = sig
			}
			kind = ""; sig = ""
		}
		/LOG:  duration: .* plan:/ { flush(); next }
		/LOG:|STATEMENT:|CONTEXT:/ { flush(); next }
		/Query Text: SELECT insert_order, stream_id/ { kind = "feed-rare"; next }
		/Query Text: SELECT e.insert_order/ { kind = "back-rare"; next }
		/Query Text: .*\/\* sql-rare \*\// { kind = "sql-rare"; next }
		kind != "" && /^\t/ {
			line = $0
			sub(/^[ \t]*(-> +)?/, "", line)
			sub(/ +\(cost.*/, "", line)
			if (line !~ /^(Limit|Sort|Incremental Sort|Merge Append|Append|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan|Seq Scan)( |$)/ ||
				line ~ /^Sort (Key|Method)/)
				next
			sub(/ using events_[0-9]+_[0-9]+_/, " using ", line)
			sub(/ on events_[0-9]+_[0-9]+_/, " on ", line)
			sub(/ on events_[0-9]+_[0-9]+( .*)?$/, "", line)
			sub(/ Scan Backward/, " Scan backward", line)
			if (index(" > " sig " > ", " > " line " > ") == 0)
				sig = (sig == "" ? line : sig " > " line)
		}
		END {
			flush()
			split("feed-rare back-rare sql-rare", k, " ")
			for (i = 1; i <= 3; i++)
				printf "%s|%s|%s|%s\n", variant, k[i], plan[k[i], 1], plan[k[i], 7]
		}' >>"$BENCH_WORK/plans"
}

# W1 with and without the index; appends "variant,rep,events_per_s,wal_per_event"
# to $W1RAW.  Every run starts after a VACUUM of the log and the streams
# (autovacuum is off) and bench_pgbench's CHECKPOINT.
filters_w1() {
	local rep variant
	bench_log "W1: creating streams s-1 .. s-$FILTERS_STREAMS, one warm-up run"
	bq "$DB" -c "SELECT count(*) FROM generate_series(1, $FILTERS_STREAMS) g,
	             LATERAL eventstore.append('s-' || g, ARRAY[eventstore.event('Common', '{}')])" >/dev/null ||
		es_die "creating the W1 streams failed"
	filters_vacuum
	bench_pgbench "$DB" 8 w1.sql 1
	for ((rep = 1; rep <= FILTERS_W1_PAIRS; rep++)); do
		for variant in $([ $((rep % 2)) = 1 ] && echo "without with" || echo "with without"); do
			[ "$variant" = with ] && filters_create_index
			filters_vacuum
			bench_pgbench "$DB" 8 w1.sql 1
			[ "$R_FAILED" -eq 0 ] || es_die "pgbench W1 ($variant) failed"
			echo "$variant,$rep,$R_EPS,$(awk -v w="$R_WAL" -v e="$R_EVENTS" 'BEGIN { printf "%.0f", w / e }')" >>"$W1RAW"
			bench_log "$(printf 'W1 c=8 %-7s index rep %s: %8.0f events/s' "$variant" "$rep" "$R_EPS")"
			filters_vacuum
			filters_bulk "$variant" "$rep"
			if [ "$variant" = with ]; then
				if [ "$rep" = 1 ]; then
					bq "$DB" -c "SELECT count(*) FROM pg_inherits i,
					             LATERAL bt_index_check(i.inhrelid::regclass, true)
					             WHERE i.inhparent = '$INDEX'::regclass" >/dev/null ||
						es_die "bt_index_check of $INDEX failed after W1"
					AMCHECK="bt_index_check (heapallindexed) of every partition's index: passed after W1"
				fi
				filters_drop_index
			fi
		done
	done
}

# filters_bulk VARIANT REP: FILTERS_BULK (20,000) appends of one event to
# random W1 streams in one statement, timed in the server, right after a W1
# run (no CHECKPOINT between: W1 touched the same pages, so few full-page
# images): the cost of an append without a commit of its own.  Appends
# "variant,rep,events_per_s,wal_per_event" to $BULKRAW.
filters_bulk() {
	local row
	row=$(bq "$DB" -F , <<-EOF
		SELECT clock_timestamp() AS t0, pg_current_wal_lsn() AS l0 \gset
		SELECT count(*)
		  FROM (SELECT floor(random() * $FILTERS_STREAMS)::int + 1 AS s
		          FROM generate_series(1, $FILTERS_BULK)) x,
		       LATERAL eventstore.append('s-' || x.s, ARRAY[eventstore.event('Common', '{}')]) \g /dev/null
		SELECT round($FILTERS_BULK / extract(epoch FROM clock_timestamp() - :'t0'::timestamptz), 1),
		       round(pg_wal_lsn_diff(pg_current_wal_lsn(), :'l0') / $FILTERS_BULK);
	EOF
	) || es_die "the one-statement appends failed"
	row=$(printf '%s\n' "$row" | tail -n 1)
	echo "$1,$2,$row" >>"$BULKRAW"
	bench_log "$(printf 'one statement %-7s index rep %s: %8.0f events/s' "$1" "$2" "${row%%,*}")"
}

filters_vacuum() {
	bq "$DB" -c "VACUUM eventstore.events, eventstore.streams" || es_die "VACUUM failed"
}

# The tables, on stdout.
filters_report() {
	local facts=$1
	echo "Filtered reads: $facts; 1 client, pgbench -M prepared -T $BENCH_SECONDS, rows sent to the client (SELECT *); median of $BENCH_REPS runs, interleaved; p = random(0, $MAXP)."
	echo
	echo "| read | pages/s | events returned/s | returned/page | positions spanned/page | index entries read/page | entries read/s | p50 ms |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	awk -F, -v cases="${READ_CASES[*]}" -v labels="$LABELS" -v pages="$BENCH_WORK/pages" '
		'"$FILTERS_AWK"'
		BEGIN {
			while ((getline l < pages) > 0) { split(l, a, " "); ret[a[1]] = a[2]; span[a[1]] = a[3] }
		}
		$1 == "none" { k = $2; n[k]++; tps[k, n[k]] = $5; p50[k, n[k]] = $6; epp[k, n[k]] = $7 / $4 }
		END {
			split(labels, lab, "\t")
			c = split(cases, ids, " ")
			for (i = 1; i <= c; i++) {
				k = ids[i]
				for (j = 1; j <= n[k]; j++) { t[j] = tps[k, j]; q[j] = p50[k, j]; e[j] = epp[k, j] }
				mt = median(t, n[k]); me = median(e, n[k])
				printf "| `%s` | %s | %s | %s | %s | %s | %s | %.3f |\n", lab[i], group(mt),
					group(mt * ret[k]), num(ret[k]), group(span[k]), group(me), millions(mt * me), median(q, n[k])
			}
		}' "$RAW"
	echo
	echo "With an index on (event_type, insert_order) (\`CREATE INDEX ON eventstore.events (event_type, insert_order)\`, allowed by the extension's event trigger; $INDEX_FACTS):"
	echo
	echo "| read | pages/s without | pages/s with | with ÷ without | entries read/page without | with |"
	echo "|---|---:|---:|---:|---:|---:|"
	awk -F, -v cases="${INDEX_CASES[*]}" -v all="${READ_CASES[*]}" -v labels="$LABELS" '
		'"$FILTERS_AWK"'
		{ k = $2; v = $1; r = $3; tps[v, k, r] = $5; epp[v, k, r] = $7 / $4; if (r > reps) reps = r }
		END {
			split(labels, lab, "\t")
			m = split(all, ids, " ")
			for (i = 1; i <= m; i++) name[ids[i]] = lab[i]
			c = split(cases, ks, " ")
			for (i = 1; i <= c; i++) {
				k = ks[i]
				for (r = 1; r <= reps; r++) {
					a[r] = tps["none", k, r]; b[r] = tps["index", k, r]; q[r] = b[r] / a[r]
					x[r] = epp["none", k, r]; y[r] = epp["index", k, r]
				}
				printf "| `%s` | %s | %s | %.2f | %s | %s |\n", name[k], group(median(a, reps)),
					group(median(b, reps)), median(q, reps), group(median(x, reps)), group(median(y, reps))
			}
		}' "$RAW"
	echo
	echo "Plans (auto_explain) in one session, of its 1st call and of its 7th (kept plans may turn generic from the 6th call on; sql-rare as a prepared statement, as pgbench -M prepared runs it):"
	echo
	echo "| query of | state | 1st call | 7th call |"
	echo "|---|---|---|---|"
	sort -t'|' -s -k2,2 "$BENCH_WORK/plans" |
		while IFS='|' read -r variant id first seventh; do
			printf '| `%s` | %s | %s | %s |\n' "${LABEL[$id]}" "$variant" "$first" "$seventh"
		done
	echo
	echo "After W1 ($AFTER_FACTS), median of $BENCH_REPS; p as before:"
	echo
	echo "| read | pages/s | index entries read/page |"
	echo "|---|---:|---:|"
	awk -F, -v all="${READ_CASES[*]}" -v labels="$LABELS" '
		'"$FILTERS_AWK"'
		$1 == "after" { k = $2; n[k]++; t[k, n[k]] = $5; e[k, n[k]] = $7 / $4 }
		END {
			split(labels, lab, "\t")
			m = split(all, ids, " ")
			for (i = 1; i <= m; i++) {
				k = ids[i]
				if (!(k in n)) continue
				for (j = 1; j <= n[k]; j++) { a[j] = t[k, j]; b[j] = e[k, j] }
				printf "| `%s` | %s | %s |\n", lab[i], group(median(a, n[k])), group(median(b, n[k]))
			}
		}' "$RAW"
	echo
	echo "W1 (one event per append to a random stream of $FILTERS_STREAMS, 8 clients, pgbench -j 2 -T $BENCH_SECONDS, a CHECKPOINT before each run), events/s; $AMCHECK:"
	echo
	filters_pairs "$W1RAW"
	echo
	echo "$FILTERS_BULK appends of one event to random streams of those in one statement (one transaction), timed in the server, right after each W1 run with the same index (no CHECKPOINT between, so few full-page images); events/s:"
	echo
	filters_pairs "$BULKRAW"
}

# filters_pairs CSV: the table of pairs without and with the index.
filters_pairs() {
	echo "| rep | without index | with index | with ÷ without | WAL B/event without | with |"
	echo "|---|---:|---:|---:|---:|---:|"
	awk -F, '
		'"$FILTERS_AWK"'
		{ e[$1, $2] = $3; w[$1, $2] = $4; if ($2 > reps) reps = $2 }
		END {
			for (r = 1; r <= reps; r++) {
				a[r] = e["without", r]; b[r] = e["with", r]; q[r] = b[r] / a[r]
				x[r] = w["without", r]; y[r] = w["with", r]
				printf "| %d | %s | %s | %.3f | %s | %s |\n", r, group(a[r]), group(b[r]), q[r], group(x[r]), group(y[r])
			}
			printf "| median | %s | %s | %.3f | %s | %s |\n", group(median(a, reps)), group(median(b, reps)),
				median(q, reps), group(median(x, reps)), group(median(y, reps))
		}' "$1"
}

# awk helpers shared by the tables
FILTERS_AWK='
	function median(v, n,    i, j, t, s) {
		for (i = 1; i <= n; i++) s[i] = v[i]
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && s[j - 1] > s[j]; j--) { t = s[j]; s[j] = s[j - 1]; s[j - 1] = t }
		return n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
	}
	function group(x,    s, r) {
		s = sprintf("%.0f", x); r = ""
		while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
		return s r
	}
	function millions(x) { return x >= 1e6 ? sprintf("%.1f M", x / 1e6) : group(x) }
	function num(x) { return x == int(x) ? group(x) : sprintf("%.1f", x) }
'

main() {
	local rep id block facts
	es_install_packages
	es_trap_cleanup
	es_make_workdir
	export PGHOST=$ES_WORK
	BENCH_WORK=$ES_WORK/bench
	BENCH_SCRIPTS=$BENCH_WORK/scripts
	BENCH_LOGS=$BENCH_WORK/logs
	RAW=$BENCH_WORK/raw.csv
	W1RAW=$BENCH_WORK/w1.csv
	BULKRAW=$BENCH_WORK/bulk.csv
	AMCHECK="amcheck not run"
	AFTER_FACTS=""
	mkdir -p "$BENCH_LOGS"
	: >"$RAW"
	: >"$W1RAW"
	: >"$BULKRAW"
	: >"$BENCH_WORK/plans"
	chown -R postgres: "$BENCH_WORK"
	LABELS=$(for id in "${READ_CASES[@]}"; do printf '%s\t' "${LABEL[$id]}"; done)

	bench_log "building this tree"
	es_build_install >"$ES_WORK/build.log" 2>&1 || {
		tail -n 30 "$ES_WORK/build.log" >&2
		es_die "building this tree failed"
	}
	filters_cluster || es_die "the cluster did not start"
	bench_log "loading $FILTERS_EVENTS events"
	filters_load || es_die "loading failed"
	filters_functions >/dev/null || es_die "creating the helper functions failed"
	HEAD=$(bq "$DB" -c "SELECT eventstore.head()")
	[ "$HEAD" -gt 120000 ] 2>/dev/null || es_die "the head is $HEAD: FILTERS_EVENTS must be above 120,000"
	MAXP=$((HEAD - 20000))
	facts=$(bq "$DB" <<-'EOF'
		SELECT format('%s events (head %s), %s streams, %s MB with indexes; %s; customer- streams hold %s %% of the events; tenant-7 %s %%, all in partition %s (%s %% of the log)',
		       (SELECT count(*) FROM eventstore.events), eventstore.head(),
		       (SELECT count(*) FROM eventstore.streams),
		       (SELECT round(sum(pg_total_relation_size(inhrelid)) / 1048576.0)
		          FROM pg_inherits WHERE inhparent = 'eventstore.events'::regclass),
		       (SELECT string_agg(format('%s %s %%', event_type, round(100.0 * n / total, 2)), ', ' ORDER BY n DESC)
		          FROM (SELECT event_type, count(*) AS n, sum(count(*)) OVER () AS total
		                  FROM eventstore.events GROUP BY 1) t),
		       (SELECT round(100.0 * count(*) FILTER (WHERE stream_id LIKE 'customer-%') / count(*), 1)
		          FROM eventstore.events),
		       (SELECT round(100.0 * count(*) FILTER (WHERE partition_key = 'tenant-7') / count(*), 2)
		          FROM eventstore.events),
		       p.oid::regclass,
		       (SELECT round(100.0 * count(*) FILTER (WHERE e.tableoid = p.oid) / count(*), 1)
		          FROM eventstore.events e))
		  FROM (SELECT tableoid AS oid FROM eventstore.events
		         WHERE partition_key = 'tenant-7' LIMIT 1) p
	EOF
	) || es_die "describing the data failed"
	bench_log "$facts"
	filters_scripts || es_die "writing the scripts failed"
	bench_log "sampling $FILTERS_SAMPLES pages of each read"
	filters_sample

	bench_log "plans"
	filters_plans "no extra index"
	filters_create_index
	INDEX_FACTS=$(bq "$DB" -c "SELECT 'its size ' || pg_size_pretty(sum(pg_relation_size(inhrelid)))
	                             FROM pg_inherits WHERE inhparent = '$INDEX'::regclass")
	filters_plans "with the index"
	filters_drop_index

	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		bench_log "repetition $rep of $BENCH_REPS"
		for block in $([ $((rep % 2)) = 1 ] && echo "none index" || echo "index none"); do
			if [ "$block" = none ]; then
				for id in "${READ_CASES[@]}"; do filters_measure "$id" "$rep" none; done
			else
				filters_create_index
				for id in "${INDEX_CASES[@]}"; do filters_measure "$id" "$rep" index; done
				filters_drop_index
			fi
		done
	done

	filters_w1

	# W1's streams have no partition key: now every partition holds events
	bq "$DB" -c "ANALYZE eventstore.events" || es_die "ANALYZE failed"
	AFTER_FACTS=$(bq "$DB" -c "
		SELECT format('head %s: W1 added %s events, all of type Common, to every partition; the partition with the fewest Rare events, %s, holds %s events, %s of them Rare',
		              eventstore.head(), eventstore.head() - $HEAD, t.rel, t.n, t.rare)
		  FROM (SELECT i.inhrelid::regclass AS rel, count(e.insert_order) AS n,
		               count(e.insert_order) FILTER (WHERE e.event_type = 'Rare') AS rare
		          FROM pg_inherits i
		          LEFT JOIN eventstore.events e ON e.tableoid = i.inhrelid
		         WHERE i.inhparent = 'eventstore.events'::regclass
		         GROUP BY i.inhrelid
		         ORDER BY rare, n DESC LIMIT 1) t") || es_die "describing the data after W1 failed"
	filters_plans "no extra index, after W1"
	for ((rep = 1; rep <= BENCH_REPS; rep++)); do
		for id in rare feed-rare; do filters_measure "$id" "$rep" after; done
	done
	filters_report "$facts"
	bench_log "done"
}

main "$@"; exit
