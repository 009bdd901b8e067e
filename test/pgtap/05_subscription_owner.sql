/*
 * test/pgtap/05_subscription_owner.sql
 *
 * Subscriptions belong to someone.  Each has an owner role; only roles with
 * the privileges of that role (pg_has_role ... 'USAGE') and members of
 * eventstore_admin may poll, acknowledge, join, leave, pause, resume or drop
 * it; everybody else is refused with 42501, EXECUTE or not.  Acted out per
 * role: the owner role, a member of it, a member that does not inherit,
 * another reader, a writer, an admin, a superuser.
 *
 * pg_prove connects as a superuser and every role is taken with SET ROLE, so
 * a check against session_user would let everyone through; the SECURITY
 * DEFINER wrappers at the end catch a check against the outer user id (the
 * role SET ROLE chose) instead of the current one.  The subscriptions are
 * created and the roles dropped inside the transaction, which is rolled
 * back.  Role names carry the file's name so that pg_prove -j cannot
 * collide.
 */
BEGIN;
SELECT plan(49);

CREATE ROLE pgtap05_owner NOLOGIN IN ROLE eventstore_reader;
CREATE ROLE pgtap05_member NOLOGIN IN ROLE pgtap05_owner;
CREATE ROLE pgtap05_noinherit NOLOGIN NOINHERIT IN ROLE pgtap05_owner;
CREATE ROLE pgtap05_reader NOLOGIN IN ROLE eventstore_reader;
CREATE ROLE pgtap05_writer NOLOGIN IN ROLE eventstore_writer;
CREATE ROLE pgtap05_admin NOLOGIN IN ROLE eventstore_admin;
-- the one that does not inherit gets what it needs to reach the check
GRANT USAGE ON SCHEMA eventstore TO pgtap05_noinherit;
GRANT EXECUTE ON FUNCTION eventstore.poll(text, integer, bigint, boolean, interval) TO pgtap05_noinherit;

-- An admin creates two subscriptions for the owner role and one for itself.
SET ROLE pgtap05_admin;
DO $$
BEGIN
	PERFORM eventstore.create_subscription('pgtap05_plain', owner => 'pgtap05_owner');
	PERFORM eventstore.create_subscription('pgtap05_group', consumer_group => true,
		owner => 'pgtap05_owner');
	PERFORM eventstore.create_subscription('pgtap05_spare', owner => 'pgtap05_owner');
	PERFORM eventstore.create_subscription('pgtap05_admins');
END
$$;
RESET ROLE;
-- the group's first member, whose partitions the others must not touch
DO $$ BEGIN PERFORM eventstore.group_join('pgtap05_group', 'victim'); END $$;

\set denied_plain 'permission denied for subscription "pgtap05_plain"'
\set denied_group 'permission denied for subscription "pgtap05_group"'

-- The owner column ---------------------------------------------------------------

SELECT col_type_is('eventstore', 'subscriptions', 'owner', 'regrole',
	'subscriptions.owner is a regrole (pg_dump writes role names)');
SELECT col_not_null('eventstore', 'subscriptions', 'owner',
	'every subscription has an owner');
SELECT results_eq(
	$$SELECT name, owner::text FROM eventstore.subscriptions
	   WHERE name LIKE 'pgtap05%' ORDER BY name$$,
	$$VALUES ('pgtap05_admins'::text, 'pgtap05_admin'::text),
			 ('pgtap05_group', 'pgtap05_owner'), ('pgtap05_plain', 'pgtap05_owner'),
			 ('pgtap05_spare', 'pgtap05_owner')$$,
	'owner => names the owner; without it the creator (the role SET ROLE chose, not the session user) owns it');

/*
 * The six calls that consume the two subscriptions, made as role r with
 * member name m: poll and acknowledge the plain one, join the group, poll
 * and acknowledge in it, leave it.  Each must succeed, or with refused each
 * must fail with 42501 and the subscription's message.
 */
CREATE FUNCTION pg_temp.consume_as(r name, m text, refused boolean)
RETURNS SETOF text
LANGUAGE plpgsql AS $fn$
DECLARE
	c record;
	call text;
BEGIN
	EXECUTE pg_catalog.format('SET ROLE %I', r);
	FOR c IN
		SELECT * FROM (VALUES
			(1, 'poll', 'pgtap05_plain',
			 $$SELECT * FROM eventstore.poll('pgtap05_plain')$$),
			(2, 'acknowledge', 'pgtap05_plain',
			 $$SELECT eventstore.ack('pgtap05_plain', eventstore.head())$$),
			(3, 'join the group as %s', 'pgtap05_group',
			 $$SELECT * FROM eventstore.group_join('pgtap05_group', %L)$$),
			(4, 'poll the group as %s', 'pgtap05_group',
			 $$SELECT * FROM eventstore.group_poll('pgtap05_group', %L)$$),
			(5, 'acknowledge in the group as %s', 'pgtap05_group',
			 $$SELECT eventstore.group_ack('pgtap05_group', %L, eventstore.head())$$),
			(6, 'make %s leave the group', 'pgtap05_group',
			 $$SELECT eventstore.group_leave('pgtap05_group', %L)$$)) v(n, what, sub, sql)
		 ORDER BY n
	LOOP
		call := pg_catalog.format(c.sql, m);
		IF refused THEN
			RETURN NEXT throws_ok(call, '42501',
				pg_catalog.format('permission denied for subscription "%s"', c.sub),
				pg_catalog.format('%s may not %s', r, pg_catalog.format(c.what, m)));
		ELSE
			RETURN NEXT lives_ok(call,
				pg_catalog.format('%s may %s', r, pg_catalog.format(c.what, m)));
		END IF;
	END LOOP;
	RESET ROLE;
END
$fn$;

-- The owner role, and a member of it ------------------------------------------------

SELECT * FROM pg_temp.consume_as('pgtap05_owner', 'o1', false);
SELECT * FROM pg_temp.consume_as('pgtap05_member', 'm1', false);
SET ROLE pgtap05_owner;
SELECT throws_ok($$SELECT eventstore.pause_subscription('pgtap05_plain')$$, '42501',
	'permission denied for function pause_subscription',
	'the owner role may not pause (admins manage subscriptions)');
SELECT throws_ok($$SELECT * FROM eventstore.poll('pgtap05_admins')$$, '42501',
	'permission denied for subscription "pgtap05_admins"',
	'the owner role may not poll the admin''s subscription');
RESET ROLE;

-- A member that does not inherit the owner's privileges (USAGE, not MEMBER)

SET ROLE pgtap05_noinherit;
SELECT throws_ok($$SELECT * FROM eventstore.poll('pgtap05_plain')$$, '42501', :'denied_plain',
	'a NOINHERIT member of the owner role may not poll without SET ROLE');
RESET ROLE;

-- Another reader and a writer: refused everything, nothing changes -----------------

SELECT * FROM pg_temp.consume_as('pgtap05_reader', 'victim', true);
SELECT * FROM pg_temp.consume_as('pgtap05_writer', 'victim', true);
SET ROLE pgtap05_reader;
SELECT throws_ok($$SELECT * FROM eventstore.poll('pgtap05_plain', lock => true)$$, '42501',
	:'denied_plain', 'another reader may not lock the subscription');
SELECT throws_ok($$SELECT * FROM eventstore.group_join('pgtap05_group', 'intruder')$$, '42501',
	:'denied_group', 'another reader may not join the group under a name of its own');
RESET ROLE;
SELECT results_eq(
	$$SELECT p.member, count(*)::int FROM eventstore.subscription_partitions p
	   WHERE p.subscription = 'pgtap05_group' GROUP BY p.member$$,
	$$VALUES ('victim'::text, 8)$$,
	'the member still holds every partition');
SELECT results_eq(
	$$SELECT m.member FROM eventstore.subscription_members m
	   WHERE m.subscription = 'pgtap05_group' ORDER BY 1$$,
	$$VALUES ('victim'::text)$$,
	'and no other member joined');

-- An admin: everything, on every subscription ----------------------------------------

SELECT * FROM pg_temp.consume_as('pgtap05_admin', 'victim', false);
SET ROLE pgtap05_admin;
SELECT lives_ok($$SELECT eventstore.pause_subscription('pgtap05_spare')$$,
	'an admin may pause');
SELECT lives_ok($$SELECT eventstore.resume_subscription('pgtap05_spare')$$,
	'an admin may resume');
SELECT ok(eventstore.drop_subscription('pgtap05_spare'), 'an admin may drop');
RESET ROLE;

-- A superuser has every role's privileges -----------------------------------------

SELECT lives_ok($$SELECT * FROM eventstore.poll('pgtap05_plain')$$,
	'a superuser may poll any subscription');

-- SECURITY DEFINER callers: the check is against the current user ------------------

CREATE SCHEMA pgtap05;
GRANT USAGE ON SCHEMA pgtap05 TO pgtap05_reader, pgtap05_admin;
-- a reader's function that acknowledges the owner's subscription
CREATE FUNCTION pgtap05.reader_skips() RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT eventstore.ack('pgtap05_plain', eventstore.head()) $$;
ALTER FUNCTION pgtap05.reader_skips() OWNER TO pgtap05_reader;
-- the owner's function that does the same, for whoever may call it
CREATE FUNCTION pgtap05.owner_acks() RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT eventstore.ack('pgtap05_plain', eventstore.head()) $$;
ALTER FUNCTION pgtap05.owner_acks() OWNER TO pgtap05_owner;
GRANT EXECUTE ON FUNCTION pgtap05.reader_skips(), pgtap05.owner_acks()
	TO pgtap05_reader, pgtap05_admin;

SET ROLE pgtap05_admin;
SELECT throws_ok('SELECT pgtap05.reader_skips()', '42501', :'denied_plain',
	'an admin calling a reader''s SECURITY DEFINER function is checked as that reader');
RESET ROLE;
SET ROLE pgtap05_reader;
SELECT lives_ok('SELECT pgtap05.owner_acks()',
	'a reader calling the owner''s SECURITY DEFINER function is checked as the owner');
RESET ROLE;

-- The internal functions behind the gate ---------------------------------------------

SET ROLE pgtap05_reader;
SELECT throws_ok(
	$$SELECT * FROM eventstore.poll_internal('pgtap05_plain', 10, NULL, false, NULL, 'pgtap05_owner')$$,
	'42501', 'permission denied for function poll_internal',
	'nobody may call an internal function');
RESET ROLE;
-- granted by mistake, they run with the caller's rights, which reach neither
-- the internal helpers nor the tables: a forged caller gains nothing
GRANT EXECUTE ON FUNCTION eventstore.ack_internal(text, bigint, regrole),
	eventstore.group_join_internal(text, text, interval, regrole) TO pgtap05_reader;
SET ROLE pgtap05_reader;
SELECT throws_ok(
	$$SELECT eventstore.ack_internal('pgtap05_plain', eventstore.head(), 'pgtap05_owner')$$,
	'42501', 'permission denied for function subscription_row',
	'ack_internal granted by mistake runs as its caller');
SELECT throws_ok(
	$$SELECT * FROM eventstore.group_join_internal('pgtap05_group', 'intruder', '30 seconds',
												   'pgtap05_owner')$$,
	'42501', 'permission denied for function subscription_row',
	'group_join_internal granted by mistake runs as its caller');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
