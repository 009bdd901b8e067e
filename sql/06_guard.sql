--
-- The schema the extension lives in: CREATE EXTENSION refuses a schema it
-- did not make as it makes it.
--
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT current_user AS superuser \gset

-- A database owner who is no superuser creates schema eventstore before the
-- extension is installed: as its owner it could drop the schema, and every
-- event with it.  CREATE EXTENSION refuses it and installs nothing.
CREATE ROLE es_regress_dbowner LOGIN;
CREATE DATABASE es_regress_owned OWNER es_regress_dbowner TEMPLATE template0;
\c es_regress_owned es_regress_dbowner
CREATE SCHEMA eventstore;
\c - :superuser
CREATE EXTENSION eventstore;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS extensions FROM pg_extension WHERE extname = 'eventstore';
SELECT count(*) AS objects FROM pg_depend WHERE refobjid = 'eventstore'::regnamespace;
-- Owned by a superuser, but holding an object, or granting privileges.
ALTER SCHEMA eventstore OWNER TO :superuser;
CREATE TABLE eventstore.leftover ();
CREATE EXTENSION eventstore;
\echo :LAST_ERROR_SQLSTATE
DROP TABLE eventstore.leftover;
GRANT USAGE ON SCHEMA eventstore TO es_regress_dbowner;
CREATE EXTENSION eventstore;
\echo :LAST_ERROR_SQLSTATE
REVOKE USAGE ON SCHEMA eventstore FROM es_regress_dbowner;
-- Owned by a superuser, empty, nothing granted: as CREATE EXTENSION makes it.
CREATE EXTENSION eventstore;
SELECT nspowner::regrole = current_user::regrole AS superuser_owns
  FROM pg_namespace WHERE nspname = 'eventstore';
-- DROP EXTENSION leaves the schema, with USAGE granted to eventstore_reader:
-- the extension can be created in it again.
DROP EXTENSION eventstore;
SELECT a.privilege_type, a.grantee::regrole
  FROM pg_namespace n, aclexplode(n.nspacl) a
 WHERE n.nspname = 'eventstore' AND a.grantee <> n.nspowner;
CREATE EXTENSION eventstore;
\c - es_regress_dbowner
DROP SCHEMA eventstore CASCADE;
\echo :LAST_ERROR_SQLSTATE
\c contrib_regression :superuser
DROP DATABASE es_regress_owned;
DROP ROLE es_regress_dbowner;
