/*
 * test/bench/report.sql
 *		Aggregate the raw measurements of test/bench/run.sh into one row per
 *		cell (workload, clients, variant) and write them as CSV and as a
 *		markdown table.
 *
 * psql variables: raw (the raw CSV, one line per repetition), csv and md
 * (the files to write), probes (the markdown table of the commit probes).  Runs in temporary tables of any database, as a
 * superuser: the CSV files are read and written by the server (psql's
 * \copy does not expand variables).
 *
 * Per cell: the median over its repetitions of events/s, of p50, of p99
 * and of WAL bytes per event; the ratio of its median events/s to that of
 * its baseline cell (and, in the notes, to its other baselines); for W7 the
 * conflict rate (conflicts / attempts, attempts = conflicts + successful
 * appends) over all repetitions; for W5 the median of the head lag figures.
 *
 * The commit probes (workload "probe", one before every repetition; the
 * variant names what it preceded) are no cells: they get a table of their
 * own, per variant and over all, with min, median and max commits/s and the
 * probes in the order they ran.
 */
\set ON_ERROR_STOP 1

CREATE TEMP TABLE raw (
	seq				int,
	workload		text,
	clients			int,
	variant			text,
	rep				int,
	transactions	bigint,
	events			bigint,
	seconds			float8,
	events_per_s	float8,
	p50_ms			float8,
	p99_ms			float8,
	wal_bytes		bigint,
	lsn_bytes		bigint,
	wal_fpi			bigint,
	baseline		text,
	alt_baselines	text,
	conflicts		bigint,
	lag_p50_ms		float8,
	lag_p99_ms		float8,
	lag_max_ms		float8,
	lag_unresolved	int,
	lag_samples		int,
	lag_commits		int,
	failed			int,
	note			text
);
COPY raw FROM :'raw' WITH (FORMAT csv, HEADER true);

CREATE TEMP TABLE cell AS
SELECT workload, clients, variant,
	   min(seq) AS seq,
	   count(*) AS reps,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY events_per_s) AS events_per_s,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY p50_ms) AS p50_ms,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY p99_ms) AS p99_ms,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY wal_bytes::float8 / nullif(events, 0)) AS wal_per_event,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY lsn_bytes::float8 / nullif(events, 0)) AS lsn_per_event,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY wal_fpi::float8 / nullif(events, 0)) AS fpi_per_event,
	   max(baseline) AS baseline,
	   max(alt_baselines) AS alt_baselines,
	   sum(conflicts)::float8 / nullif(sum(conflicts) + sum(transactions), 0) AS conflict_rate,
	   sum(conflicts) AS conflicts,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_p50_ms) AS lag_p50_ms,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_p99_ms) AS lag_p99_ms,
	   max(lag_max_ms) AS lag_max_ms,
	   sum(lag_unresolved) AS lag_unresolved,
	   sum(lag_samples) AS lag_samples,
	   sum(lag_commits) AS lag_commits,
	   sum(failed) AS failed,
	   string_agg(DISTINCT nullif(note, ''), '; ') AS note
  FROM raw
 WHERE workload <> 'probe'
 GROUP BY workload, clients, variant;

/* A reference WORKLOAD/VARIANT/CLIENTS to the events/s of that cell. */
CREATE TEMP VIEW ref AS
SELECT c.workload || '/' || c.variant || '/' || c.clients AS name,
	   c.events_per_s
  FROM cell c;

CREATE TEMP TABLE result AS
SELECT c.seq, c.workload, c.clients, c.variant, c.reps,
	   c.events_per_s, c.p50_ms, c.p99_ms,
	   c.events_per_s / nullif(b.events_per_s, 0) AS ratio,
	   CASE WHEN c.baseline <> '' THEN
			split_part(c.baseline, '/', 2) ||
			CASE WHEN split_part(c.baseline, '/', 1) <> c.workload
					  OR split_part(c.baseline, '/', 3)::int <> c.clients
				 THEN ' (' || split_part(c.baseline, '/', 1) || ', c=' || split_part(c.baseline, '/', 3) || ')'
				 ELSE '' END
	   END AS baseline,
	   c.wal_per_event, c.lsn_per_event, c.fpi_per_event,
	   c.conflict_rate, c.lag_p50_ms, c.lag_p99_ms, c.lag_max_ms,
	   c.failed,
	   concat_ws('; ',
			(SELECT string_agg(format('÷ %s: %s', split_part(a, '/', 2),
									  to_char(c.events_per_s / nullif(r.events_per_s, 0), 'FM990.00')), '; ')
			   FROM unnest(string_to_array(nullif(c.alt_baselines, ''), ';')) a
			   LEFT JOIN ref r ON r.name = a),
			CASE WHEN c.conflict_rate IS NOT NULL THEN
				format('conflict rate %s%% (%s conflicts)',
					   to_char(100 * c.conflict_rate, 'FM990.0'), c.conflicts) END,
			CASE WHEN c.lag_p50_ms IS NOT NULL THEN
				format('head lag p50 %s ms, p99 %s ms, max %s ms over %s commits seen in %s samples%s (target p99 < 50 ms: %s)',
					   round(c.lag_p50_ms::numeric, 1), round(c.lag_p99_ms::numeric, 1),
					   round(c.lag_max_ms::numeric, 1), c.lag_commits, c.lag_samples,
					   CASE WHEN c.lag_unresolved > 0
							THEN format(', %s unresolved', c.lag_unresolved) ELSE '' END,
					   CASE WHEN c.lag_p99_ms < 50 AND coalesce(c.lag_unresolved, 0) = 0
							THEN 'met' ELSE 'NOT met' END) END,
			CASE WHEN c.failed > 0 THEN format('FAILED in %s of %s runs', c.failed, c.reps) END,
			c.note,
			CASE WHEN c.reps > 1 THEN format('median of %s', c.reps) END) AS notes
  FROM cell c
  LEFT JOIN ref b ON b.name = c.baseline;

COPY (SELECT workload, clients, variant, reps, round(events_per_s::numeric, 1) AS events_per_s, round(p50_ms::numeric, 3) AS p50_ms, round(p99_ms::numeric, 3) AS p99_ms, round(ratio::numeric, 3) AS ratio, baseline, round(wal_per_event::numeric, 1) AS wal_bytes_per_event, round(lsn_per_event::numeric, 1) AS wal_lsn_bytes_per_event, round(fpi_per_event::numeric, 4) AS full_page_images_per_event, round(conflict_rate::numeric, 4) AS conflict_rate, round(lag_p50_ms::numeric, 1) AS head_lag_p50_ms, round(lag_p99_ms::numeric, 1) AS head_lag_p99_ms, round(lag_max_ms::numeric, 1) AS head_lag_max_ms, failed, notes FROM result ORDER BY seq) TO :'csv' WITH (FORMAT csv, HEADER true);

/* Numbers for people: three significant digits, at least integers for rates. */
CREATE FUNCTION pg_temp.fmt(x float8) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN CASE
	WHEN x IS NULL THEN '-'
	WHEN abs(x) >= 100 THEN to_char(round(x), 'FM999,999,999,990')
	WHEN abs(x) >= 10 THEN to_char(x, 'FM990.0')
	WHEN abs(x) >= 1 THEN to_char(x, 'FM990.00')
	ELSE to_char(x, 'FM990.000')
END;

\pset format unaligned
\pset tuples_only on
\o :md
SELECT '| workload | clients | variant | events/s | p50 ms | p99 ms | ratio | baseline | WAL B/event | notes |';
SELECT '|---|---:|---|---:|---:|---:|---:|---|---:|---|';
SELECT format('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
			  workload, clients, variant, pg_temp.fmt(events_per_s),
			  pg_temp.fmt(p50_ms), pg_temp.fmt(p99_ms),
			  coalesce(to_char(ratio, 'FM990.00'), '-'), coalesce(baseline, '-'),
			  CASE WHEN wal_per_event IS NULL THEN '-' ELSE to_char(round(wal_per_event), 'FM999,999,990') END,
			  coalesce(notes, ''))
  FROM result ORDER BY seq;
\o

\o :probes
SELECT '| before | probes | min commits/s | median | max | max ÷ min | in order |';
SELECT '|---|---:|---:|---:|---:|---:|---|';
SELECT format('| %s | %s | %s | %s | %s | %s | %s |',
			  coalesce(variant, 'all'), count(*), pg_temp.fmt(min(events_per_s)),
			  pg_temp.fmt(percentile_cont(0.5) WITHIN GROUP (ORDER BY events_per_s)),
			  pg_temp.fmt(max(events_per_s)),
			  to_char(max(events_per_s) / nullif(min(events_per_s), 0), 'FM990.00'),
			  CASE WHEN variant IS NULL THEN ''
				   ELSE string_agg(pg_temp.fmt(events_per_s), ', ' ORDER BY seq) END)
  FROM raw
 WHERE workload = 'probe'
 GROUP BY GROUPING SETS ((variant), ())
 ORDER BY variant IS NULL, min(seq);
\o
