/*
 * Privileges.  Nothing is granted to PUBLIC; PUBLIC does not even have USAGE
 * on the schema.  Monitors may read the counters, the head and the lag of
 * subscriptions, never an event; readers
 * (who are monitors too) may read everything and consume subscriptions
 * (poll, acknowledge, join groups), writers also append and send signals,
 * admins hold both and alone create, drop, pause and resume subscriptions.
 * EXECUTE is only the first check: a subscription is used only by roles with
 * the privileges of its owner, and by admins (src/gate.c).  The internal
 * functions behind the subscription functions are granted to nobody.
 */
REVOKE ALL ON ALL ROUTINES IN SCHEMA eventstore FROM PUBLIC;
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
GRANT SELECT ON eventstore.ticks, eventstore.subscriptions,
	eventstore.subscription_partitions, eventstore.subscription_members,
	eventstore.subscription_lag, eventstore.dead_letters, eventstore.dead_letter_events
	TO eventstore_reader;

GRANT EXECUTE ON FUNCTION
	eventstore.event(text, jsonb, jsonb, uuid, integer),
	eventstore.bucket_of(text),
	eventstore.head(),
	eventstore.wait_for(bigint, interval),
	eventstore.read_all(bigint, integer, text[], text, text[]),
	eventstore.read_all_backwards(bigint, integer, text[], text, text[]),
	eventstore.open_feed(bigint, text, text[], text, text[]),
	eventstore.read_stream(text, bigint, integer, boolean),
	eventstore.stream_version(text),
	eventstore.open_appenders(),
	eventstore.subscription_matches(text[], text, text[], text, text, text),
	eventstore.poll(text, integer, bigint, boolean, interval),
	eventstore.ack(text, bigint),
	eventstore.group_join(text, text, interval),
	eventstore.group_leave(text, text),
	eventstore.group_poll(text, text, integer, interval),
	eventstore.group_ack(text, text, bigint),
	eventstore.nack(text, bigint, text, interval),
	eventstore.group_nack(text, text, bigint, text, interval)
	TO eventstore_reader;

GRANT EXECUTE ON PROCEDURE eventstore.wait_for_head(bigint, interval, bigint)
	TO eventstore_reader;

GRANT EXECUTE ON FUNCTION
	eventstore.append(text, eventstore.event_in[], bigint, text),
	eventstore.append(text, jsonb, bigint, text),
	eventstore.try_append(text, eventstore.event_in[], bigint, text),
	eventstore.try_append(text, jsonb, bigint, text),
	eventstore.append_multi(jsonb),
	eventstore.try_append_multi(jsonb),
	eventstore.signal(text, text)
	TO eventstore_writer;

GRANT SELECT ON eventstore.stats, eventstore.subscription_lag TO eventstore_monitor;
GRANT EXECUTE ON FUNCTION
	eventstore.head(),
	eventstore.stats_counters(),
	eventstore.subscription_matches(text[], text, text[], text, text, text)
	TO eventstore_monitor;

GRANT EXECUTE ON FUNCTION
	eventstore.reset_stats()
	TO eventstore_admin;

GRANT EXECUTE ON FUNCTION
	eventstore.create_subscription(text, text, bigint, timestamptz, text[], text, text[], boolean, regrole, integer),
	eventstore.drop_subscription(text, boolean),
	eventstore.pause_subscription(text, boolean),
	eventstore.resume_subscription(text),
	eventstore.replay_dead_letters(text, bigint[]),
	eventstore.drop_dead_letters(text, bigint[])
	TO eventstore_admin;
