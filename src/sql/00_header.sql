/*
 * eventstore--0.1.0.sql
 *
 * Assembled by the Makefile from the files in src/sql, in name order.  Each piece
 * holds one group of objects; read them in that order.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION eventstore" to load this file. \quit

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
END
$roles$;

GRANT eventstore_reader TO eventstore_writer;
GRANT eventstore_writer TO eventstore_admin;

GRANT USAGE ON SCHEMA eventstore TO eventstore_reader;
