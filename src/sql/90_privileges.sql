/*
 * Privileges.  Nothing is granted to PUBLIC; PUBLIC does not even have USAGE
 * on the schema.  Readers may read everything, writers also append, admins
 * hold both (later administrative functions are granted to them alone).
 */
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA eventstore FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA eventstore FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA eventstore FROM PUBLIC;

GRANT SELECT ON eventstore.events, eventstore.streams, eventstore.appenders
	TO eventstore_reader;
DO $grant_partitions$
DECLARE
	part regclass;
BEGIN
	FOR part IN SELECT inhrelid::regclass FROM pg_catalog.pg_inherits
				 WHERE inhparent = 'eventstore.events'::regclass LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON %s TO eventstore_reader', part);
	END LOOP;
END
$grant_partitions$;
GRANT SELECT ON SEQUENCE eventstore.position_blocks TO eventstore_reader;

GRANT EXECUTE ON FUNCTION
	eventstore.event(text, jsonb, jsonb, uuid, integer),
	eventstore.bucket_of(text),
	eventstore.head(),
	eventstore.read_all(bigint, integer),
	eventstore.open_feed(bigint, text),
	eventstore.read_stream(text, bigint, integer, boolean),
	eventstore.stream_version(text),
	eventstore.open_appenders()
	TO eventstore_reader;

GRANT EXECUTE ON FUNCTION
	eventstore.append(text, eventstore.event_in[], bigint, text)
	TO eventstore_writer;
