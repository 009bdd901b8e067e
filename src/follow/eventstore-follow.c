/*-------------------------------------------------------------------------
 *
 * eventstore-follow.c
 *	  Print an eventstore's events as JSON lines and keep following them.
 *
 * A libpq client.  It reads the global feed with eventstore.read_all(), or a
 * durable subscription with eventstore.poll(), in batches, prints each event
 * as one JSON object per line on stdout, and when it has caught up waits for
 * the server's "eventstore" notifications (or, on a standby and with
 * --no-listen, in the server with eventstore.wait_for_head, for at most the poll
 * interval) before reading again.  The server
 * builds each line with json_build_object, so the escaping is PostgreSQL's
 * own.
 *
 * Connection poolers: every request is one statement in a transaction of
 * its own, sent unnamed (PQexecParams, or PQexec without parameters), and
 * nothing is kept in the session but the LISTEN, so a pooler in transaction
 * (or statement) mode may hand each request to another server connection.
 * Named prepared statements would outlive the client there: the next client
 * lent the same server connection would find them already prepared, or a
 * request would reach a server connection that never saw them.  The price
 * is a parse and plan of one short query per read (0.05 to 0.1 ms more per
 * read, measured with pgbench).  LISTEN cannot work through such a pooler
 * (a notification goes to whichever client holds the listening server
 * connection at the time, or nowhere); --no-listen leaves it out, and the
 * follower waits with eventstore.wait_for_head instead, one statement that
 * returns as soon as the head moves.  --exit-at-head never waits, so it
 * never listens.
 *
 * Positions and what survives a lost connection: the follower remembers the
 * position of the last event it printed, and moves it only after a whole
 * batch has been written and flushed.  A read that fails prints nothing of
 * its batch (libpq hands over a complete result or an error), so after a
 * reconnect the feed resumes after the last printed position: every event is
 * printed once.  In subscription mode with --ack, each flushed batch is then
 * acknowledged; on every (re)connect the follower resumes from the stored
 * checkpoint, so a batch printed but not acknowledged before the connection
 * broke is printed again (at-least-once delivery).
 *
 * Signals: SIGINT and SIGTERM set a flag and write a byte to a pipe that
 * every wait watches, so waits end at once; a batch being read is finished
 * (printed, flushed, acknowledged) first.  The exit status is then 0.
 * SIGPIPE is ignored: output that cannot be written (its reader has gone)
 * is a runtime error like any other, reported on stderr with exit status 1,
 * and a batch not wholly written is not acknowledged.  While it waits for
 * new events, the follower also watches a pipe on stdout, so that a reader
 * that has gone ends it then too, not only at the next event.
 *
 * src/follow/eventstore-follow.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/logging.h"
#include "getopt_long.h"
#include "libpq-fe.h"

#ifndef EVENTSTORE_VERSION
#define EVENTSTORE_VERSION "unknown"
#endif

/* Exit statuses. */
#define EXIT_OK			0
#define EXIT_RUNTIME	1
#define EXIT_USAGE		2

/* Reconnect backoff: first delay, doubled up to the maximum. */
#define RETRY_DELAY_MIN_MS	100
#define RETRY_DELAY_MAX_MS	5000

/* Limits of the options. */
#define BATCH_MAX			1000000
#define POLL_INTERVAL_MAX	86400000	/* one day, in ms */

/*
 * One event as a line of JSON, built by the server from the columns of
 * eventstore.recorded_event (alias e).  Everything is schema-qualified: the
 * session's search_path is the user's.
 */
#define EVENT_JSON \
	"pg_catalog.json_build_object(" \
	"'position', e.insert_order, " \
	"'stream_id', e.stream_id, " \
	"'stream_order', e.stream_order, " \
	"'event_id', e.event_id, " \
	"'event_type', e.event_type, " \
	"'schema_version', e.schema_version, " \
	"'partition_key', e.partition_key, " \
	"'recorded_at', e.recorded_at, " \
	"'data', e.data, " \
	"'metadata', e.metadata)::pg_catalog.text"

/* $1 after_position, $2 max_count */
static const char *const read_all_sql =
"SELECT e.insert_order, " EVENT_JSON
" FROM eventstore.read_all($1::pg_catalog.int8, $2::pg_catalog.int4) AS e"
" ORDER BY e.insert_order";

/* $1 subscription, $2 max_count, $3 after_position (NULL: the checkpoint) */
static const char *const poll_sql =
"SELECT e.insert_order, " EVENT_JSON
" FROM eventstore.poll(subscription => $1,"
" max_count => $2::pg_catalog.int4,"
" after_position => $3::pg_catalog.int8) AS e"
" ORDER BY e.insert_order";

/* $1 subscription, $2 position */
static const char *const ack_sql =
"SELECT eventstore.ack($1, $2::pg_catalog.int8)";

static const char *const recovery_sql =
"SELECT pg_catalog.pg_is_in_recovery()";

static const char *const listen_sql = "LISTEN eventstore";

typedef struct FollowOptions
{
	const char *conninfo;		/* NULL: libpq's defaults and environment */
	const char *subscription;	/* NULL: follow the global feed */
	int64		from;			/* --from */
	bool		from_given;
	bool		ack;
	int			batch;
	int			poll_interval_ms;
	bool		exit_at_head;
	bool		no_listen;		/* poll only: behind a transaction pooler */
	int			max_retries;	/* -1: not given */
} FollowOptions;

typedef struct Follower
{
	PGconn	   *conn;
	bool		standby;		/* the server is in recovery */
	bool		have_position;	/* false: poll from the checkpoint */
	int64		position;		/* read after this position */
	int64		waited_head;	/* the head the last wait_for returned; -1 none */
} Follower;

/* How a stretch of following ended. */
typedef enum FollowResult
{
	FOLLOW_OK,					/* keep going */
	FOLLOW_STOP,				/* a signal, or --exit-at-head at the head */
	FOLLOW_LOST,				/* the connection broke: reconnect */
	FOLLOW_ERROR				/* give up: exit status 1 */
} FollowResult;

/* What a wait ended with. */
typedef enum WaitResult
{
	WAIT_READY,					/* the socket is ready */
	WAIT_TIMEOUT,
	WAIT_STOP,					/* SIGINT or SIGTERM */
	WAIT_OUTPUT_GONE,			/* stdout is a pipe nobody reads any more */
	WAIT_FAILED					/* poll() failed; errno says why */
} WaitResult;

static const char *progname;
static volatile sig_atomic_t stop_requested = 0;
static int	stop_pipe[2] = {-1, -1};

/* stdout, when it is a pipe whose reader can be watched for; else -1 */
static int	output_pipe = -1;

static void
usage(void)
{
	printf("%s prints the events of an eventstore as JSON lines, one event a line,\n"
		   "and keeps following the log as it grows.\n\n", progname);
	printf("Usage:\n");
	printf("  %s [OPTION]... [CONNINFO]\n\n", progname);
	printf("Options:\n");
	printf("  -d, --dbname=CONNINFO      database name or connection string\n");
	printf("  -f, --from=POSITION        print the events after POSITION (default: 0)\n");
	printf("  -s, --subscription=NAME    follow subscription NAME instead of the whole feed\n");
	printf("  -a, --ack                  acknowledge each printed batch (with --subscription)\n");
	printf("  -b, --batch=N              read at most N events at a time (default: 1000)\n");
	printf("  -i, --poll-interval=MS     read at least every MS milliseconds while waiting\n"
		   "                             (default: 1000)\n");
	printf("  -e, --exit-at-head         exit once every event available now is printed\n");
	printf("  -L, --no-listen            do not LISTEN; wait in the server with\n"
		   "                             eventstore.wait_for_head (for a pooler in transaction\n"
		   "                             or statement mode)\n");
	printf("  -r, --max-retries=N        retry a failed connection at most N times in a row\n"
		   "                             (default: not at startup, without limit once\n"
		   "                             connected)\n");
	printf("  -V, --version              output version information, then exit\n");
	printf("  -?, --help                 show this help, then exit\n\n");
	printf("Connection parameters not given in CONNINFO come from the environment\n"
		   "(PGHOST, PGPORT, PGDATABASE, PGUSER, ...) and libpq's defaults.\n\n");
	printf("Exit status: 0 after SIGINT, SIGTERM or --exit-at-head; 1 on errors;\n"
		   "2 on bad usage.\n");
}

/*
 * SIGINT/SIGTERM: ask the main loop to stop, and wake whatever it waits on.
 */
static void
handle_stop_signal(SIGNAL_ARGS)
{
	int			save_errno = errno;

	stop_requested = 1;
	if (stop_pipe[1] >= 0)
	{
		if (write(stop_pipe[1], "x", 1) < 0)
		{
			/* the pipe is full: a wake-up is pending anyway */
		}
	}
	errno = save_errno;
}

static bool
set_nonblocking_cloexec(int fd)
{
	int			flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return false;
	return fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

static void
setup_signals(void)
{
	if (pipe(stop_pipe) < 0 ||
		!set_nonblocking_cloexec(stop_pipe[0]) ||
		!set_nonblocking_cloexec(stop_pipe[1]))
		pg_fatal("could not create pipe: %m");
	pqsignal(SIGINT, handle_stop_signal);
	pqsignal(SIGTERM, handle_stop_signal);
	/* a write to a closed pipe fails with EPIPE instead */
	pqsignal(SIGPIPE, SIG_IGN);
}

/*
 * Watch stdout while waiting if it is a pipe: poll() reports POLLERR on the
 * writing end of a pipe once nobody can read it.
 */
static void
setup_output(void)
{
	struct stat st;

	if (fstat(STDOUT_FILENO, &st) == 0 && S_ISFIFO(st.st_mode))
		output_pipe = STDOUT_FILENO;
}

/*
 * Output that cannot be written is a runtime error; errno says why.
 */
static FollowResult
output_failed(void)
{
	pg_log_error("could not write to standard output: %m");
	return FOLLOW_ERROR;
}

static int64
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until sock (if >= 0) is ready for events, a stop signal arrives, or
 * timeout_ms passes (-1: no timeout); with watch_output, also until the
 * pipe on stdout loses its reader.  An interrupted poll() counts as a
 * timeout: callers loop on their own deadlines.
 */
static WaitResult
wait_for(int sock, short events, int timeout_ms, bool watch_output)
{
	struct pollfd fds[3];
	int			nfds = 1;
	int			sock_index = -1;
	int			output_index = -1;
	int			rc;

	if (stop_requested)
		return WAIT_STOP;

	fds[0].fd = stop_pipe[0];
	fds[0].events = POLLIN;
	fds[0].revents = 0;
	if (sock >= 0)
	{
		sock_index = nfds++;
		fds[sock_index].fd = sock;
		fds[sock_index].events = events;
		fds[sock_index].revents = 0;
	}
	if (watch_output && output_pipe >= 0)
	{
		/* no events asked for: POLLERR and POLLHUP come anyway */
		output_index = nfds++;
		fds[output_index].fd = output_pipe;
		fds[output_index].events = 0;
		fds[output_index].revents = 0;
	}

	rc = poll(fds, nfds, timeout_ms);
	if (rc < 0 && errno != EINTR)
		return WAIT_FAILED;
	if (stop_requested)
		return WAIT_STOP;
	if (rc > 0 && output_index >= 0 && fds[output_index].revents != 0)
		return WAIT_OUTPUT_GONE;
	if (rc > 0 && sock_index >= 0 && fds[sock_index].revents != 0)
		return WAIT_READY;
	return WAIT_TIMEOUT;
}

/*
 * Sleep for ms milliseconds, or until a stop signal.  Returns false if
 * stopped.
 */
static bool
sleep_ms(int ms)
{
	int64		deadline = now_ms() + ms;

	for (;;)
	{
		int64		left = deadline - now_ms();

		if (stop_requested)
			return false;
		if (left <= 0)
			return true;
		if (wait_for(-1, 0, (int) left, false) == WAIT_STOP)
			return false;
	}
}

/*
 * The connect_timeout in effect for conn in milliseconds (libpq's rule:
 * at least 2 s), or -1 for none.
 */
static int
connect_timeout_ms(PGconn *conn)
{
	PQconninfoOption *options = PQconninfo(conn);
	PQconninfoOption *o;
	int			timeout = -1;

	if (options == NULL)
		return -1;
	for (o = options; o->keyword != NULL; o++)
	{
		if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL &&
			o->val[0] != '\0')
		{
			int			secs = atoi(o->val);

			if (secs > 0)
				timeout = Max(secs, 2) * 1000;
			break;
		}
	}
	PQconninfoFree(options);
	return timeout;
}

/*
 * Notices (a FATAL message before the server closes the connection, say)
 * go to stderr under the program's name.
 */
static void
notice_processor(void *arg, const char *message)
{
	fprintf(stderr, "%s: server: %s", progname, message);
}

/*
 * Open a connection with libpq's asynchronous connect, waited for here so
 * that a stop signal ends the wait (connect_timeout then bounds the whole
 * attempt).  Returns NULL and sets *stopped on a stop signal; returns NULL
 * with the error logged on failure (as a warning when the caller will
 * retry).
 */
static PGconn *
open_connection(const FollowOptions *opts, bool will_retry, bool *stopped)
{
	const char *keywords[3];
	const char *values[3];
	PGconn	   *conn;
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;
	int			timeout;
	int64		deadline = 0;

	*stopped = false;
	keywords[0] = "dbname";
	values[0] = opts->conninfo;
	keywords[1] = "fallback_application_name";
	values[1] = progname;
	keywords[2] = NULL;
	values[2] = NULL;

	conn = PQconnectStartParams(keywords, values, 1);
	if (conn == NULL)
		pg_fatal("out of memory");

	timeout = connect_timeout_ms(conn);
	if (timeout > 0)
		deadline = now_ms() + timeout;

	while (PQstatus(conn) != CONNECTION_BAD && status != PGRES_POLLING_OK)
	{
		int			wait_ms = -1;
		WaitResult	w;

		if (status == PGRES_POLLING_FAILED)
			break;
		if (timeout > 0)
		{
			int64		left = deadline - now_ms();

			if (left <= 0)
			{
				PQfinish(conn);
				if (will_retry)
					pg_log_warning("could not connect: timeout expired");
				else
					pg_log_error("could not connect: timeout expired");
				return NULL;
			}
			wait_ms = (int) left;
		}
		w = wait_for(PQsocket(conn),
					 status == PGRES_POLLING_READING ? POLLIN : POLLOUT,
					 wait_ms, false);
		if (w == WAIT_STOP)
		{
			PQfinish(conn);
			*stopped = true;
			return NULL;
		}
		if (w == WAIT_FAILED)
			pg_fatal("poll() failed: %m");
		if (w == WAIT_READY)
			status = PQconnectPoll(conn);
	}

	if (PQstatus(conn) != CONNECTION_OK)
	{
		if (will_retry)
			pg_log_warning("could not connect: %s", PQerrorMessage(conn));
		else
			pg_log_error("could not connect: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, notice_processor, NULL);
	/* the server functions' PL/pgSQL context is noise to a user */
	PQsetErrorContextVisibility(conn, PQSHOW_CONTEXT_NEVER);
	return conn;
}

/*
 * Does this failure mean the connection is gone (so that reconnecting may
 * help) rather than that the request itself is wrong?
 */
static bool
connection_lost(PGconn *conn, const PGresult *res)
{
	const char *sqlstate;

	if (PQstatus(conn) != CONNECTION_OK)
		return true;
	sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (sqlstate == NULL)
		return false;
	return strncmp(sqlstate, "08", 2) == 0 ||	/* connection exception */
		strcmp(sqlstate, "57P01") == 0 ||	/* admin_shutdown */
		strcmp(sqlstate, "57P02") == 0 ||	/* crash_shutdown */
		strcmp(sqlstate, "57P03") == 0; /* cannot_connect_now */
}

/*
 * Report a failed query: a lost connection as a warning (the caller
 * reconnects), anything else as an error.  Clears res.
 */
static FollowResult
query_failed(Follower *f, PGresult *res, const char *what)
{
	const char *message = res ? PQresultErrorMessage(res) : "";
	FollowResult result;

	if (message[0] == '\0')
		message = PQerrorMessage(f->conn);
	if (connection_lost(f->conn, res))
	{
		pg_log_warning("connection lost: %s", message);
		result = FOLLOW_LOST;
	}
	else
	{
		pg_log_error("%s: %s", what, message);
		result = FOLLOW_ERROR;
	}
	PQclear(res);
	return result;
}

/*
 * Ask whether the server is in recovery; start listening if it is not, if
 * the follower will wait (no --exit-at-head) and if --no-listen was not
 * given.  A server in recovery cannot store acknowledgements.
 */
static FollowResult
check_recovery_and_listen(Follower *f, const FollowOptions *opts)
{
	PGresult   *res = PQexec(f->conn, recovery_sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return query_failed(f, res, "could not query the server's state");
	f->standby = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (f->standby && opts->ack)
	{
		pg_log_error("the server is in recovery: acknowledgements are stored on the primary only");
		pg_log_error_hint("Connect to the primary, or follow without --ack.");
		return FOLLOW_ERROR;
	}
	if (f->standby || opts->no_listen || opts->exit_at_head)
		return FOLLOW_OK;

	res = PQexec(f->conn, listen_sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		return query_failed(f, res, "could not listen for notifications");
	PQclear(res);
	return FOLLOW_OK;
}

/*
 * Take every notification libpq holds; true if there was one.
 */
static bool
drain_notifications(PGconn *conn)
{
	PGnotify   *n;
	bool		any = false;

	while ((n = PQnotifies(conn)) != NULL)
	{
		any = true;
		PQfreemem(n);
	}
	return any;
}

/*
 * Acknowledge everything up to and including position.
 */
static FollowResult
ack(Follower *f, const FollowOptions *opts, int64 position)
{
	char		position_text[32];
	const char *params[2];
	PGresult   *res;

	snprintf(position_text, sizeof(position_text), INT64_FORMAT, position);
	params[0] = opts->subscription;
	params[1] = position_text;
	res = PQexecParams(f->conn, ack_sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return query_failed(f, res, "could not acknowledge");
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		pg_log_warning("the checkpoint of subscription \"%s\" was already at or beyond %s",
					   opts->subscription, position_text);
	PQclear(res);
	return FOLLOW_OK;
}

/*
 * Print the second column of every row of res, a line each, and flush:
 * false, with errno set, if stdout did not take it all.
 */
static bool
print_batch(const PGresult *res)
{
	int			n = PQntuples(res);
	int			i;

	for (i = 0; i < n; i++)
	{
		if (fputs(PQgetvalue(res, i, 1), stdout) == EOF ||
			putc('\n', stdout) == EOF)
			return false;
	}
	return fflush(stdout) == 0;
}

/*
 * Read one batch, print it, flush it, acknowledge it.  *count is the number
 * of events read.  Each read is an unnamed statement: see the banner on
 * connection poolers.
 */
static FollowResult
read_batch(Follower *f, const FollowOptions *opts, int *count)
{
	char		position_text[32];
	char		batch_text[16];
	const char *params[3];
	PGresult   *res;
	int			n;
	int64		last = 0;

	*count = 0;
	snprintf(position_text, sizeof(position_text), INT64_FORMAT, f->position);
	snprintf(batch_text, sizeof(batch_text), "%d", opts->batch);

	if (opts->subscription != NULL)
	{
		params[0] = opts->subscription;
		params[1] = batch_text;
		params[2] = f->have_position ? position_text : NULL;
		res = PQexecParams(f->conn, poll_sql, 3, NULL, params, NULL, NULL, 0);
	}
	else
	{
		params[0] = position_text;
		params[1] = batch_text;
		res = PQexecParams(f->conn, read_all_sql, 2, NULL, params, NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return query_failed(f, res, "could not read events");

	n = PQntuples(res);
	if (n > 0)
	{
		const char *text = PQgetvalue(res, n - 1, 0);
		char	   *end;

		errno = 0;
		last = strtoi64(text, &end, 10);
		if (errno != 0 || *end != '\0' || end == text)
		{
			pg_log_error("the server returned an invalid position \"%s\"", text);
			PQclear(res);
			return FOLLOW_ERROR;
		}
	}
	if (!print_batch(res))
	{
		int			save_errno = errno;

		PQclear(res);
		errno = save_errno;
		return output_failed();
	}
	PQclear(res);
	*count = n;
	if (n == 0)
		return FOLLOW_OK;

	f->position = last;
	f->have_position = true;
	if (opts->subscription != NULL && opts->ack)
		return ack(f, opts, last);
	return FOLLOW_OK;
}

/* The longest one server-side wait may take (a stop cancels it sooner). */
#define MAX_SERVER_WAIT_MS 30000

/*
 * Where LISTEN is not used (a standby, --no-listen): wait in the server
 * with CALL eventstore.wait_for_head, which holds no snapshot while it
 * waits (on a standby a held snapshot could hold back the replay of the
 * very tick it waits for), until the head passes what was read (the
 * larger of the last position printed and the head the last wait
 * returned: a filtered poll or a gap of aborted positions leaves the head
 * above the last event), for at most the poll interval.  A stop signal
 * cancels the wait.  One statement, sent unnamed, as every request.
 */
static FollowResult
wait_on_server(Follower *f, const FollowOptions *opts)
{
	static const char *const sql =
		"CALL eventstore.wait_for_head($1::bigint, $2::interval, NULL)";
	char		after[32];
	char		timeout[48];
	const char *values[2] = {after, timeout};
	int64		from = f->have_position ? f->position : 0;
	PGresult   *res;
	FollowResult result = FOLLOW_OK;

	if (f->waited_head > from)
		from = f->waited_head;
	snprintf(after, sizeof(after), INT64_FORMAT, from);
	snprintf(timeout, sizeof(timeout), "%d milliseconds",
			 Min(opts->poll_interval_ms, MAX_SERVER_WAIT_MS));
	if (!PQsendQueryParams(f->conn, sql, 2, NULL, values, NULL, NULL, 0))
	{
		pg_log_warning("connection lost: %s", PQerrorMessage(f->conn));
		return FOLLOW_LOST;
	}
	while (PQisBusy(f->conn))
	{
		WaitResult	w = wait_for(PQsocket(f->conn), POLLIN, -1, true);

		if (w == WAIT_STOP || w == WAIT_OUTPUT_GONE || w == WAIT_FAILED)
		{
			PGcancel   *cancel = PQgetCancel(f->conn);
			char		errbuf[256];

			if (cancel != NULL)
			{
				(void) PQcancel(cancel, errbuf, sizeof(errbuf));
				PQfreeCancel(cancel);
			}
			if (w == WAIT_STOP)
				result = FOLLOW_STOP;
			else if (w == WAIT_OUTPUT_GONE)
			{
				errno = EPIPE;
				result = output_failed();
			}
			else
			{
				pg_log_error("poll() failed: %m");
				result = FOLLOW_ERROR;
			}
			/* the cancelled statement's error comes next; drop it */
			while ((res = PQgetResult(f->conn)) != NULL)
				PQclear(res);
			return result;
		}
		if (w == WAIT_READY && !PQconsumeInput(f->conn))
		{
			pg_log_warning("connection lost: %s", PQerrorMessage(f->conn));
			return FOLLOW_LOST;
		}
	}
	while ((res = PQgetResult(f->conn)) != NULL)
	{
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			f->waited_head = strtoi64(PQgetvalue(res, 0, 0), NULL, 10);
		else if (result == FOLLOW_OK)
		{
			pg_log_warning("waiting failed: %s", PQresultErrorMessage(res));
			result = PQstatus(f->conn) == CONNECTION_OK ? FOLLOW_OK : FOLLOW_LOST;
			if (result == FOLLOW_OK)
				(void) sleep_ms(opts->poll_interval_ms);
		}
		PQclear(res);
	}
	return result;
}

/*
 * Wait until there may be something new: a notification or the poll
 * interval elapsed, or where LISTEN is not used, the head moving in the
 * server (wait_on_server).  A pipe on stdout that loses its reader
 * meanwhile is an output error.
 */
static FollowResult
wait_for_more(Follower *f, const FollowOptions *opts)
{
	int64		deadline = now_ms() + opts->poll_interval_ms;

	if (f->standby || opts->no_listen)
		return wait_on_server(f, opts);

	for (;;)
	{
		int64		left;
		WaitResult	w;

		if (drain_notifications(f->conn))
			return FOLLOW_OK;
		left = deadline - now_ms();
		if (left <= 0)
			return FOLLOW_OK;

		/*
		 * The socket is watched when not listening too: that is how a
		 * closed connection shows while idle.
		 */
		w = wait_for(PQsocket(f->conn), POLLIN, (int) left, true);
		if (w == WAIT_STOP)
			return FOLLOW_STOP;
		if (w == WAIT_OUTPUT_GONE)
		{
			errno = EPIPE;
			return output_failed();
		}
		if (w == WAIT_FAILED)
		{
			pg_log_error("poll() failed: %m");
			return FOLLOW_ERROR;
		}
		if (w == WAIT_READY && !PQconsumeInput(f->conn))
		{
			pg_log_warning("connection lost: %s", PQerrorMessage(f->conn));
			return FOLLOW_LOST;
		}
	}
}

/*
 * Follow over one connection until it breaks, a signal arrives, or (with
 * --exit-at-head) the head is reached.  *progressed tells whether a read
 * succeeded, which resets the reconnect backoff.
 */
static FollowResult
follow(Follower *f, const FollowOptions *opts, bool *progressed)
{
	FollowResult r;

	*progressed = false;
	r = check_recovery_and_listen(f, opts);
	if (r != FOLLOW_OK)
		return r;

	for (;;)
	{
		int			count;

		if (stop_requested)
			return FOLLOW_STOP;
		r = read_batch(f, opts, &count);
		if (r != FOLLOW_OK)
			return r;
		*progressed = true;
		if (count >= opts->batch)
			continue;			/* there may be more right away */
		if (opts->exit_at_head)
			return FOLLOW_STOP;

		/* A standby that was promoted can be listened to from now on. */
		if (f->standby && !opts->no_listen)
		{
			r = check_recovery_and_listen(f, opts);
			if (r != FOLLOW_OK)
				return r;
		}

		r = wait_for_more(f, opts);
		if (r != FOLLOW_OK)
			return r;
	}
}

/*
 * Parse a decimal integer in [min, max]; false if it is not one.
 */
static bool
parse_int64(const char *text, int64 min, int64 max, int64 *result)
{
	char	   *end;
	int64		value;

	errno = 0;
	value = strtoi64(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
		return false;
	*result = value;
	return true;
}

static void
bad_option(const char *option, const char *text, const char *expected)
{
	pg_log_error("invalid value \"%s\" for option %s: %s", text, option, expected);
	pg_log_error_hint("Try \"%s --help\" for more information.", progname);
	exit(EXIT_USAGE);
}

static void
usage_error(const char *message)
{
	pg_log_error("%s", message);
	pg_log_error_hint("Try \"%s --help\" for more information.", progname);
	exit(EXIT_USAGE);
}

/*
 * A connection string (not a plain database name) must parse; libpq would
 * refuse it on every attempt anyway.
 */
static void
check_conninfo(const char *conninfo)
{
	PQconninfoOption *options;
	char	   *errmsg = NULL;

	if (conninfo == NULL ||
		(strchr(conninfo, '=') == NULL &&
		 strncmp(conninfo, "postgresql://", 13) != 0 &&
		 strncmp(conninfo, "postgres://", 11) != 0))
		return;
	options = PQconninfoParse(conninfo, &errmsg);
	if (options == NULL)
	{
		pg_log_error("invalid connection string: %s",
					 errmsg ? errmsg : "out of memory");
		pg_log_error_hint("Try \"%s --help\" for more information.", progname);
		exit(EXIT_USAGE);
	}
	PQconninfoFree(options);
}

static void
parse_options(int argc, char **argv, FollowOptions *opts)
{
	static struct option long_options[] = {
		{"dbname", required_argument, NULL, 'd'},
		{"from", required_argument, NULL, 'f'},
		{"subscription", required_argument, NULL, 's'},
		{"ack", no_argument, NULL, 'a'},
		{"batch", required_argument, NULL, 'b'},
		{"poll-interval", required_argument, NULL, 'i'},
		{"exit-at-head", no_argument, NULL, 'e'},
		{"no-listen", no_argument, NULL, 'L'},
		{"max-retries", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 1},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	int			c;
	int64		value;

	memset(opts, 0, sizeof(*opts));
	opts->batch = 1000;
	opts->poll_interval_ms = 1000;
	opts->max_retries = -1;

	if (argc > 1)
	{
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-?") == 0)
		{
			usage();
			exit(EXIT_OK);
		}
		if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		{
			printf("%s (eventstore) %s\n", progname, EVENTSTORE_VERSION);
			exit(EXIT_OK);
		}
	}

	while ((c = getopt_long(argc, argv, "ab:d:ef:i:Lr:s:V", long_options, NULL)) != -1)
	{
		switch (c)
		{
			case 'a':
				opts->ack = true;
				break;
			case 'b':
				if (!parse_int64(optarg, 1, BATCH_MAX, &value))
					bad_option("--batch", optarg, "must be an integer from 1 to 1000000");
				opts->batch = (int) value;
				break;
			case 'd':
				opts->conninfo = optarg;
				break;
			case 'e':
				opts->exit_at_head = true;
				break;
			case 'L':
				opts->no_listen = true;
				break;
			case 'f':
				if (!parse_int64(optarg, 0, PG_INT64_MAX, &value))
					bad_option("--from", optarg, "must be a position, an integer from 0 up");
				opts->from = value;
				opts->from_given = true;
				break;
			case 'i':
				if (!parse_int64(optarg, 1, POLL_INTERVAL_MAX, &value))
					bad_option("--poll-interval", optarg,
							   "must be a number of milliseconds from 1 to 86400000");
				opts->poll_interval_ms = (int) value;
				break;
			case 'r':
				if (!parse_int64(optarg, 0, PG_INT32_MAX, &value))
					bad_option("--max-retries", optarg, "must be an integer from 0 up");
				opts->max_retries = (int) value;
				break;
			case 's':
				if (optarg[0] == '\0')
					usage_error("the subscription name must not be empty");
				opts->subscription = optarg;
				break;
			case 'V':
				printf("%s (eventstore) %s\n", progname, EVENTSTORE_VERSION);
				exit(EXIT_OK);
				break;
			case 1:				/* --help */
				usage();
				exit(EXIT_OK);
				break;
			default:
				/* getopt_long has complained already */
				pg_log_error_hint("Try \"%s --help\" for more information.", progname);
				exit(EXIT_USAGE);
		}
	}

	if (optind < argc)
	{
		if (opts->conninfo != NULL)
			usage_error("give the connection either with --dbname or as an argument, not both");
		opts->conninfo = argv[optind++];
	}
	if (optind < argc)
	{
		pg_log_error("too many command-line arguments (first is \"%s\")", argv[optind]);
		pg_log_error_hint("Try \"%s --help\" for more information.", progname);
		exit(EXIT_USAGE);
	}
	if (opts->ack && opts->subscription == NULL)
		usage_error("--ack needs --subscription");
	check_conninfo(opts->conninfo);
}

int
main(int argc, char **argv)
{
	FollowOptions opts;
	Follower	f;
	bool		connected_once = false;
	int			failures = 0;	/* failed attempts in a row */
	int			delay_ms = RETRY_DELAY_MIN_MS;

	pg_logging_init(argv[0]);
	progname = get_progname(argv[0]);
	parse_options(argc, argv, &opts);
	setup_signals();
	setup_output();

	memset(&f, 0, sizeof(f));
	f.position = opts.from;
	f.have_position = opts.subscription == NULL || opts.from_given;
	f.waited_head = -1;

	for (;;)
	{
		/* At startup, retry only when asked to; after a loss, by default. */
		int			limit = connected_once ? opts.max_retries :
			Max(opts.max_retries, 0);
		bool		will_retry = limit < 0 || failures < limit;
		bool		stopped;
		bool		progressed;
		FollowResult r;

		f.conn = open_connection(&opts, will_retry, &stopped);
		if (stopped)
			break;
		if (f.conn == NULL)
		{
			if (!will_retry)
			{
				if (failures > 0)
					pg_log_error("giving up after %d retries", failures);
				exit(EXIT_RUNTIME);
			}
		}
		else
		{
			if (connected_once)
			{
				if (opts.subscription != NULL && opts.ack)
					pg_log_info("reconnected, resuming from the checkpoint of subscription \"%s\"",
								opts.subscription);
				else if (f.have_position)
					pg_log_info("reconnected, resuming after position " INT64_FORMAT,
								f.position);
				else
					pg_log_info("reconnected");
			}
			connected_once = true;

			/*
			 * With --ack the stored checkpoint is the truth: what was printed
			 * but not acknowledged comes again.
			 */
			if (opts.subscription != NULL && opts.ack)
			{
				f.have_position = opts.from_given;
				f.position = opts.from;
			}

			f.waited_head = -1;	/* another server may have another head */
			r = follow(&f, &opts, &progressed);
			PQfinish(f.conn);
			f.conn = NULL;
			if (r == FOLLOW_STOP)
				break;
			if (r == FOLLOW_ERROR)
				exit(EXIT_RUNTIME);
			/* FOLLOW_LOST */
			if (progressed)
			{
				failures = 0;
				delay_ms = RETRY_DELAY_MIN_MS;
			}
			limit = opts.max_retries;
			if (limit >= 0 && failures >= limit)
			{
				if (failures > 0)
					pg_log_error("giving up after %d retries", failures);
				else
					pg_log_error("not reconnecting (--max-retries is 0)");
				exit(EXIT_RUNTIME);
			}
		}

		failures++;
		pg_log_info("retrying in %d ms", delay_ms);
		if (!sleep_ms(delay_ms))
			break;
		delay_ms = Min(delay_ms * 2, RETRY_DELAY_MAX_MS);
	}

	if (fflush(stdout) != 0)
	{
		output_failed();
		exit(EXIT_RUNTIME);
	}
	return EXIT_OK;
}
