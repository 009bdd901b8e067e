/*
 * The log: streams, events and the position counter.
 */

/*
 * Positions are handed out from shared memory in blocks reserved here.  The
 * sequence is only advanced by the extension's own allocator, one block at a
 * time; its WAL makes the reservation survive a crash, and pg_dump keeps its
 * value so that positions continue above the restored ones.
 */
CREATE SEQUENCE eventstore.position_blocks
	AS bigint INCREMENT BY 65536 MINVALUE 1 START WITH 1 NO CYCLE;
COMMENT ON SEQUENCE eventstore.position_blocks IS
'first position of the last block of global positions reserved by the allocator';

/*
 * Every append updates its stream's row (version, updated_at; neither is
 * indexed), so the update is HOT whenever the row's page has room for the
 * new version.  Pruning makes that room again, but not while a concurrent
 * transaction may still see the old versions; the fillfactor keeps about
 * 30 versions' worth of each page free for that.
 */
CREATE TABLE eventstore.streams (
	stream_id		text PRIMARY KEY,
	partition_key	text NOT NULL,
	bucket			integer NOT NULL,
	version			bigint NOT NULL CHECK (version > 0),
	created_at		timestamptz NOT NULL,
	updated_at		timestamptz NOT NULL
) WITH (fillfactor = 70);
COMMENT ON TABLE eventstore.streams IS
'one row per stream: its partition key, bucket and current version';

/*
 * Columns are ordered for alignment (fixed-width first).  Every unique key
 * starts with the bucket, so a table can later be split by bucket ranges
 * across machines.
 */
CREATE TABLE eventstore.events (
	insert_order	bigint NOT NULL,
	stream_order	bigint NOT NULL,
	recorded_at		timestamptz NOT NULL,
	writer_xid		xid8 NOT NULL,
	bucket			integer NOT NULL,
	schema_version	integer NOT NULL,
	event_id		uuid NOT NULL,
	stream_id		text NOT NULL,
	event_type		text NOT NULL,
	partition_key	text NOT NULL,
	data			jsonb NOT NULL,
	metadata		jsonb,
	CONSTRAINT events_pkey PRIMARY KEY (bucket, stream_id, stream_order),
	CONSTRAINT events_event_id_key UNIQUE (bucket, stream_id, event_id)
) PARTITION BY RANGE (bucket);
COMMENT ON TABLE eventstore.events IS
'the append-only log; write with eventstore.append(), read with eventstore.read_all() and eventstore.read_stream()';

CREATE INDEX events_insert_order_idx ON eventstore.events (insert_order);

SELECT pg_catalog.pg_extension_config_dump('eventstore.streams', '');
SELECT pg_catalog.pg_extension_config_dump('eventstore.position_blocks', '');
