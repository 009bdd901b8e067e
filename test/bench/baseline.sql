/*
 * test/bench/baseline.sql
 *		The baselines eventstore is measured against, in plain SQL: an event
 *		table as an application would write it by hand, and a table of tiny
 *		rows that measures the cost of a commit alone.
 *
 * Loaded by test/bench/run.sh into every benchmark database (schema "plain").
 * The pgbench scripts that use these objects are written by run.sh; see the
 * header of run.sh for what each workload measures.
 *
 *	plain.events	the hand-written event table: a global id (identity,
 *					primary key), a per-stream version (unique with the
 *					stream), a unique event id, and the same payload columns
 *					as eventstore.events
 *	plain.tiny		one small row per transaction: the "commit" baseline
 *	plain.append()	a single-event append: per-stream advisory lock, then
 *					INSERT ... SELECT coalesce(max(version), 0) + 1
 */

CREATE SCHEMA plain;

CREATE TABLE plain.events (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	stream_id	text NOT NULL,
	version		bigint NOT NULL,
	event_id	uuid NOT NULL UNIQUE,
	event_type	text NOT NULL,
	data		jsonb NOT NULL,
	metadata	jsonb,
	recorded_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (stream_id, version)
);

CREATE TABLE plain.tiny (
	id			bigserial,
	x			int
);

/*
 * plain.append(stream, type, data, metadata) returns the new version.
 *
 * The client sends one statement.  It could not be a single SQL statement:
 * in READ COMMITTED a statement's snapshot is taken before it waits for the
 * advisory lock, so "lock and read max(version)" in one statement reads a
 * stale version whenever it waited for another appender of the stream, and
 * fails on the unique key.  PL/pgSQL takes a new snapshot for each
 * statement, so the INSERT below sees what the previous lock holder
 * committed.
 */
CREATE FUNCTION plain.append(p_stream text, p_type text, p_data jsonb, p_metadata jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
	v bigint;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext(p_stream));
	INSERT INTO plain.events (stream_id, version, event_id, event_type, data, metadata)
	SELECT p_stream, coalesce(max(e.version), 0) + 1, gen_random_uuid(),
		   p_type, p_data, p_metadata
	  FROM plain.events e
	 WHERE e.stream_id = p_stream
	RETURNING version INTO v;
	RETURN v;
END
$$;
