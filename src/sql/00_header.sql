/*
 * eventstore--0.1.0.sql
 *
 * Assembled by the Makefile from the files in src/sql, in name order.  Each piece
 * holds one group of objects; read them in that order.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION eventstore" to load this file. \quit

/*
 * The schema.  CREATE EXTENSION creates schema eventstore, owned by the
 * superuser running it, unless it exists; a schema that exists is used as it
 * is.  Its owner could drop it, and the log with it (DROP SCHEMA ... CASCADE
 * drops the extension), and objects or privileges already in it would mix
 * with the extension's.  So the schema must be owned by a superuser, hold no
 * object but the extension itself (as DROP SCHEMA finds them, through
 * pg_depend) and grant nothing to other roles (USAGE to eventstore_reader
 * and eventstore_monitor aside, which DROP EXTENSION leaves): as CREATE EXTENSION makes it.
 * 55000: the caller may install extensions; the schema is in the wrong state.
 */
DO $schema$
DECLARE
	nsp pg_catalog.oid;
	owner pg_catalog.name;
	owner_is_super boolean;
	objects bigint;
	grantees bigint;
	problem text;
BEGIN
	SELECT n.oid, r.rolname, r.rolsuper INTO nsp, owner, owner_is_super
	  FROM pg_catalog.pg_namespace n
	  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
	 WHERE n.nspname OPERATOR(pg_catalog.=) 'eventstore';
	SELECT pg_catalog.count(*) INTO objects
	  FROM pg_catalog.pg_depend d
	 WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
	   AND d.refobjid OPERATOR(pg_catalog.=) nsp
	   AND NOT (d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
				AND d.objid OPERATOR(pg_catalog.=)
					(SELECT e.oid FROM pg_catalog.pg_extension e
					  WHERE e.extname OPERATOR(pg_catalog.=) 'eventstore'));
	-- USAGE for eventstore_reader and eventstore_monitor is what a dropped
	-- install leaves behind
	SELECT pg_catalog.count(*) INTO grantees
	  FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
	 WHERE n.oid OPERATOR(pg_catalog.=) nsp
	   AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
	   AND NOT (a.privilege_type OPERATOR(pg_catalog.=) 'USAGE'
				AND a.grantee OPERATOR(pg_catalog.=) ANY
					(SELECT r.oid FROM pg_catalog.pg_roles r
					  WHERE r.rolname OPERATOR(pg_catalog.=) ANY
						  (ARRAY['eventstore_reader', 'eventstore_monitor'])));

	IF NOT owner_is_super THEN
		problem := pg_catalog.format('It is owned by role "%s", which is not a superuser.', owner);
	ELSIF objects OPERATOR(pg_catalog.>) 0 THEN
		problem := pg_catalog.format('It already holds %s %s.', objects,
			CASE WHEN objects OPERATOR(pg_catalog.=) 1 THEN 'object' ELSE 'objects' END);
	ELSIF grantees OPERATOR(pg_catalog.>) 0 THEN
		problem := 'It grants privileges to roles other than its owner.';
	END IF;
	IF problem IS NOT NULL THEN
		RAISE EXCEPTION 'schema "eventstore" exists and cannot hold the event store'
			USING ERRCODE = '55000',
				  DETAIL = problem,
				  HINT = 'Drop schema "eventstore" before CREATE EXTENSION eventstore, '
						 'or have a superuser own it, empty and with no privileges granted.';
	END IF;
END
$schema$;

/*
 * Roles.  Roles are cluster-wide, so a second database that installs the
 * extension finds them already there; they are never dropped by DROP EXTENSION.
 */
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventstore_reader') THEN
		CREATE ROLE eventstore_reader NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventstore_writer') THEN
		CREATE ROLE eventstore_writer NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventstore_admin') THEN
		CREATE ROLE eventstore_admin NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'eventstore_monitor') THEN
		CREATE ROLE eventstore_monitor NOLOGIN;
	END IF;
END
$roles$;

GRANT eventstore_reader TO eventstore_writer;
GRANT eventstore_writer TO eventstore_admin;

GRANT eventstore_monitor TO eventstore_reader;

GRANT USAGE ON SCHEMA eventstore TO eventstore_reader, eventstore_monitor;
