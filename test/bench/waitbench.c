/*-------------------------------------------------------------------------
 *
 * waitbench.c
 *	  The clients of test/bench/wait.sh: a latency probe for
 *	  eventstore.wait_for and LISTEN, and a crowd of waiting sessions.
 *
 *		waitbench latency -w WRITER_CONNINFO -r READER_CONNINFO
 *				  -m waitfor|listen -R RATE -s SECONDS -t STREAM
 *				  [-T WAIT_TIMEOUT] [-o CSV]
 *		waitbench waiters -c CONNINFO -n N -m loop|parked|listen
 *
 * latency: a writer thread appends one event per call to stream STREAM at
 * a steady RATE per second for SECONDS (autocommit; the event's data is
 * {"seq": n}), and records, on CLOCK_MONOTONIC, when it sent the call and
 * when the call returned.  PQexecParams returns after ReadyForQuery, which
 * the server sends once the implicit transaction has committed (its commit
 * record flushed, synchronous_commit on): the return is the commit
 * acknowledgement.  A reader thread on its own connection (the primary,
 * PgBouncer or a standby) follows the feed from the head it finds at start:
 * with -m waitfor it calls eventstore.wait_for(last, WAIT_TIMEOUT) (default
 * '1 second') and, when the head returned is above last, reads
 * eventstore.read_all(last, 1000) (again while pages come back full); with
 * -m listen it LISTENs on
 * "eventstore" and reads the same way on every notification.  The moment
 * read_all's result has arrived is the time the reader has the event.  Both
 * threads are in one process and read CLOCK_MONOTONIC: the latency from the
 * acknowledgement compares no two clocks.  Printed on stdout, one line:
 *
 *		events=N lost=L p50=.. p99=.. max=.. min=.. mean=.. call_p50=..
 *		send_p50=.. send_p99=..
 *		[commit_p50=.. commit_p99=.. commit_max=..]
 *
 * (milliseconds): p50 .. mean are the latency from the commit
 * acknowledgement to the reader having the event; call_p50 is the append's
 * own round trip (send to acknowledgement); send_p50/p99 the latency from
 * the append call's start; commit_* the latency from the commit timestamp
 * (pg_xact_commit_timestamp of the event's row, taken by the server just
 * before it writes and flushes the commit record; only with
 * track_commit_timestamp on), against the reader's CLOCK_REALTIME, the
 * same machine's clock.  Nearest-rank percentiles.  lost counts events the
 * reader had not read 5 seconds after the writer's last one.  With -o, one
 * CSV line per event: seq, send_us, ack_us, read_us (from the start; -1:
 * not read), commit_to_read_us (empty without a commit timestamp).
 *
 * waiters: N connections, each in a loop of eventstore.wait_for calls sent
 * asynchronously and watched with poll(), so one process and one thread
 * serve them all.  -m loop: each call waits after the head its previous
 * call returned (the first after 0): it returns whenever the head has
 * moved, and is sent again at once.  -m parked: each waits after a
 * position far beyond the head, with a timeout of 5 seconds, so it sleeps
 * in the server and never returns early (the ticker does not wake it: the
 * head does not pass its position); -m parked-head: the same with CALL
 * eventstore.wait_for_head, which holds no snapshot while it waits.  -m listen: no wait_for, each connection LISTENs on
 * "eventstore" and its notifications are read as they come (counted as
 * returns), for comparison.  Runs until SIGTERM or SIGINT, then cancels
 * every call in progress (a backend in wait_for does not notice a closed
 * socket until the call ends), closes the connections and prints
 *
 *		connections=N returns=R seconds=S
 *
 * Every statement is sent unnamed (PQexecParams, PQsendQueryParams), so a
 * pooler in transaction mode may serve each from another server connection.
 *
 * test/bench/waitbench.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define READ_PAGE	1000
#define GRACE_US	5000000

static const char *progname = "waitbench";

/* --- helpers -------------------------------------------------------------- */

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", progname);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

/* Microseconds since the epoch: the clock of the server's timestamps. */
static int64_t
now_rt_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Microseconds on CLOCK_MONOTONIC. */
static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_until_us(int64_t t)
{
	struct timespec ts;

	ts.tv_sec = t / 1000000;
	ts.tv_nsec = (t % 1000000) * 1000;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static PGconn *
connect_or_die(const char *conninfo)
{
	PGconn	   *conn = PQconnectdb(conninfo);

	if (PQstatus(conn) != CONNECTION_OK)
		die("could not connect: %s", PQerrorMessage(conn));
	return conn;
}

/* One statement with text parameters; dies unless it returns rows. */
static PGresult *
query_or_die(PGconn *conn, const char *sql, int nparams,
			 const char *const *params)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		die("query failed: %s", PQerrorMessage(conn));
	return res;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..1] of n sorted values, in milliseconds. */
static double
percentile_ms(const int64_t *sorted, int n, double p)
{
	int			i = (int) (p * n);

	if (i < p * n)
		i++;
	if (i < 1)
		i = 1;
	return sorted[i - 1] / 1000.0;
}

/* --- latency -------------------------------------------------------------- */

static const char *writer_conninfo;
static const char *reader_conninfo;
static const char *stream;
static int	use_listen;
static int	rate = 50;
static int	seconds = 20;
static const char *wait_timeout = "1 second";
static int	nevents;
static int64_t start_us;
static int64_t *sent_us;
static int64_t *acked_us;
static int64_t *read_us;
static int64_t *read_rt_us;
static int64_t *commit_rt_us;
static atomic_int reader_ready;
static atomic_int writer_done;
static atomic_llong writer_end_us;

static void *
writer_main(void *arg)
{
	PGconn	   *conn = connect_or_die(writer_conninfo);
	int64_t		period = 1000000 / rate;
	char		seqbuf[16];
	const char *params[2] = {stream, seqbuf};

	(void) arg;
	while (!atomic_load(&reader_ready))
		usleep(1000);
	start_us = now_us() + 100000;
	for (int seq = 0; seq < nevents; seq++)
	{
		PGresult   *res;

		sleep_until_us(start_us + seq * period);
		snprintf(seqbuf, sizeof(seqbuf), "%d", seq);
		sent_us[seq] = now_us();
		res = query_or_die(conn,
						   "SELECT max(insert_order) FROM eventstore.append($1, "
						   "ARRAY[eventstore.event('Probe', "
						   "pg_catalog.jsonb_build_object('seq', $2::int))])",
						   2, params);
		acked_us[seq] = now_us();
		PQclear(res);
	}
	atomic_store(&writer_end_us, now_us());
	atomic_store(&writer_done, 1);
	PQfinish(conn);
	return NULL;
}

/*
 * Read everything after *after, page by page; returns the events of the
 * stream that were new.
 */
static int
read_new(PGconn *conn, int64_t *after)
{
	int			found = 0;

	for (;;)
	{
		char		afterbuf[24];
		const char *params[2] = {afterbuf, stream};
		PGresult   *res;
		int64_t		t;
		int64_t		trt;
		int			n;

		snprintf(afterbuf, sizeof(afterbuf), "%" PRId64, *after);
		res = query_or_die(conn,
						   "SELECT insert_order, "
						   "CASE WHEN stream_id = $2 THEN (data->>'seq')::int END "
						   "FROM eventstore.read_all($1::bigint, 1000)",
						   2, params);
		t = now_us();
		trt = now_rt_us();
		n = PQntuples(res);
		for (int i = 0; i < n; i++)
		{
			int64_t		pos = strtoll(PQgetvalue(res, i, 0), NULL, 10);

			if (pos > *after)
				*after = pos;
			if (!PQgetisnull(res, i, 1))
			{
				int			seq = atoi(PQgetvalue(res, i, 1));

				if (seq >= 0 && seq < nevents && read_us[seq] == 0)
				{
					read_us[seq] = t;
					read_rt_us[seq] = trt;
					found++;
				}
			}
		}
		PQclear(res);
		if (n < READ_PAGE)
			return found;
	}
}

/*
 * The commit timestamps of the events appended (track_commit_timestamp):
 * the time the server took just before it wrote and flushed each commit
 * record, on the clock the reader's CLOCK_REALTIME reads.  Left 0 when
 * the server does not track them.
 */
static void
fetch_commit_times(void)
{
	PGconn	   *conn = connect_or_die(writer_conninfo);
	const char *params[1] = {stream};
	PGresult   *res;

	res = PQexecParams(conn,
					   "SELECT (e.data->>'seq')::int, "
					   "(extract(epoch FROM pg_catalog.pg_xact_commit_timestamp(e.xmin)) "
					   "* 1000000)::bigint "
					   "FROM eventstore.events e WHERE e.stream_id = $1",
					   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
	{
		for (int i = 0; i < PQntuples(res); i++)
		{
			int			seq = atoi(PQgetvalue(res, i, 0));

			if (seq >= 0 && seq < nevents && !PQgetisnull(res, i, 1))
				commit_rt_us[seq] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		}
	}
	PQclear(res);
	PQfinish(conn);
}

static void
run_latency(const char *csv)
{
	PGconn	   *conn;
	PGresult   *res;
	pthread_t	writer;
	int64_t		after;
	int			seen = 0;
	int64_t    *lat;
	int64_t    *call;
	int64_t    *fromsend;
	int64_t    *fromcommit;
	int			n = 0;
	int			ncommit = 0;
	int64_t		sum = 0;

	nevents = rate * seconds;
	sent_us = calloc(nevents, sizeof(int64_t));
	acked_us = calloc(nevents, sizeof(int64_t));
	read_us = calloc(nevents, sizeof(int64_t));
	read_rt_us = calloc(nevents, sizeof(int64_t));
	commit_rt_us = calloc(nevents, sizeof(int64_t));
	lat = calloc(nevents, sizeof(int64_t));
	call = calloc(nevents, sizeof(int64_t));
	fromsend = calloc(nevents, sizeof(int64_t));
	fromcommit = calloc(nevents, sizeof(int64_t));
	if (!sent_us || !acked_us || !read_us || !read_rt_us || !commit_rt_us ||
		!lat || !call || !fromsend || !fromcommit)
		die("%s", "out of memory");

	conn = connect_or_die(reader_conninfo);
	if (use_listen)
	{
		res = PQexec(conn, "LISTEN eventstore");
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			die("LISTEN failed: %s", PQerrorMessage(conn));
		PQclear(res);
	}
	res = query_or_die(conn, "SELECT eventstore.head()", 0, NULL);
	after = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);

	if (pthread_create(&writer, NULL, writer_main, NULL) != 0)
		die("%s", "could not start the writer thread");
	atomic_store(&reader_ready, 1);

	while (seen < nevents)
	{
		int			moved = 0;

		if (atomic_load(&writer_done) &&
			now_us() - atomic_load(&writer_end_us) > GRACE_US)
			break;
		if (use_listen)
		{
			struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
			PGnotify   *note;

			if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
				die("poll failed: %s", strerror(errno));
			if (!PQconsumeInput(conn))
				die("connection lost: %s", PQerrorMessage(conn));
			while ((note = PQnotifies(conn)) != NULL)
			{
				moved = 1;
				PQfreemem(note);
			}
		}
		else
		{
			char		afterbuf[24];
			const char *params[2] = {afterbuf, wait_timeout};
			int64_t		head;

			snprintf(afterbuf, sizeof(afterbuf), "%" PRId64, after);
			res = query_or_die(conn,
							   "SELECT eventstore.wait_for($1::bigint, $2::interval)",
							   2, params);
			head = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			PQclear(res);
			moved = head > after;
			if (moved)
			{
				seen += read_new(conn, &after);
				/* a short page: everything up to that head was read */
				if (head > after)
					after = head;
				continue;
			}
		}
		if (moved)
			seen += read_new(conn, &after);
	}
	pthread_join(writer, NULL);
	PQfinish(conn);
	fetch_commit_times();

	for (int i = 0; i < nevents; i++)
	{
		if (read_us[i] == 0)
			continue;
		lat[n] = read_us[i] - acked_us[i];
		call[n] = acked_us[i] - sent_us[i];
		fromsend[n] = read_us[i] - sent_us[i];
		if (commit_rt_us[i] != 0)
			fromcommit[ncommit++] = read_rt_us[i] - commit_rt_us[i];
		sum += lat[n];
		n++;
	}
	if (csv != NULL)
	{
		FILE	   *f = fopen(csv, "w");

		if (f == NULL)
			die("could not write %s", csv);
		fprintf(f, "seq,send_us,ack_us,read_us,commit_to_read_us\n");
		for (int i = 0; i < nevents; i++)
		{
			fprintf(f, "%d,%" PRId64 ",%" PRId64 ",%" PRId64 ",", i,
					sent_us[i] - start_us, acked_us[i] - start_us,
					read_us[i] ? read_us[i] - start_us : -1);
			if (read_us[i] && commit_rt_us[i])
				fprintf(f, "%" PRId64, read_rt_us[i] - commit_rt_us[i]);
			fputc('\n', f);
		}
		fclose(f);
	}
	if (n == 0)
	{
		printf("events=0 lost=%d\n", nevents);
		exit(1);
	}
	qsort(lat, n, sizeof(int64_t), cmp_int64);
	qsort(call, n, sizeof(int64_t), cmp_int64);
	qsort(fromsend, n, sizeof(int64_t), cmp_int64);
	printf("events=%d lost=%d p50=%.3f p99=%.3f max=%.3f min=%.3f mean=%.3f "
		   "call_p50=%.3f send_p50=%.3f send_p99=%.3f",
		   n, nevents - n,
		   percentile_ms(lat, n, 0.50), percentile_ms(lat, n, 0.99),
		   lat[n - 1] / 1000.0, lat[0] / 1000.0, (double) sum / n / 1000.0,
		   percentile_ms(call, n, 0.50),
		   percentile_ms(fromsend, n, 0.50), percentile_ms(fromsend, n, 0.99));
	if (ncommit > 0)
	{
		qsort(fromcommit, ncommit, sizeof(int64_t), cmp_int64);
		printf(" commit_p50=%.3f commit_p99=%.3f commit_max=%.3f",
			   percentile_ms(fromcommit, ncommit, 0.50),
			   percentile_ms(fromcommit, ncommit, 0.99),
			   fromcommit[ncommit - 1] / 1000.0);
	}
	putchar('\n');
}

/* --- waiters -------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested = 0;

static void
on_stop(int signo)
{
	(void) signo;
	stop_requested = 1;
}

/* Send the next wait of a connection: wait_for, or CALL wait_for_head. */
static void
send_wait(PGconn *conn, int parked, int procedure, int64_t after)
{
	char		afterbuf[24];
	const char *params[2] = {afterbuf, parked ? "5 seconds" : "30 seconds"};

	snprintf(afterbuf, sizeof(afterbuf), "%" PRId64, after);
	if (!PQsendQueryParams(conn,
						   procedure ?
						   "CALL eventstore.wait_for_head($1::bigint, $2::interval, NULL)" :
						   "SELECT eventstore.wait_for($1::bigint, $2::interval)",
						   2, NULL, params, NULL, NULL, 0))
		die("could not send: %s", PQerrorMessage(conn));
}

static void
run_waiters(const char *conninfo, int n, const char *mode)
{
	int			procedure = strcmp(mode, "parked-head") == 0;
	int			parked = procedure || strcmp(mode, "parked") == 0;
	int			listen = strcmp(mode, "listen") == 0;
	PGconn	  **conns = calloc(n, sizeof(PGconn *));
	int64_t    *after = calloc(n, sizeof(int64_t));
	struct pollfd *pfds = calloc(n, sizeof(struct pollfd));
	int64_t		returns = 0;
	int64_t		t0;
	struct sigaction sa;

	if (!conns || !after || !pfds)
		die("%s", "out of memory");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	for (int i = 0; i < n; i++)
	{
		conns[i] = connect_or_die(conninfo);
		if (listen)
		{
			PGresult   *res = PQexec(conns[i], "LISTEN eventstore");

			if (PQresultStatus(res) != PGRES_COMMAND_OK)
				die("LISTEN failed: %s", PQerrorMessage(conns[i]));
			PQclear(res);
		}
		/* parked: far beyond any head this run can reach */
		after[i] = parked ? INT64_C(4611686018427387904) : 0;
		pfds[i].fd = PQsocket(conns[i]);
		pfds[i].events = POLLIN;
	}
	t0 = now_us();
	for (int i = 0; i < n && !listen; i++)
		send_wait(conns[i], parked, procedure, after[i]);

	while (!stop_requested)
	{
		int			ready = poll(pfds, n, 200);

		if (ready < 0)
		{
			if (errno == EINTR)
				continue;
			die("poll failed: %s", strerror(errno));
		}
		for (int i = 0; i < n && ready > 0; i++)
		{
			PGresult   *res;
			int			done = 0;

			if (pfds[i].revents == 0)
				continue;
			ready--;
			if (!PQconsumeInput(conns[i]))
				die("connection lost: %s", PQerrorMessage(conns[i]));
			if (listen)
			{
				PGnotify   *note;

				while ((note = PQnotifies(conns[i])) != NULL)
				{
					returns++;
					PQfreemem(note);
				}
				continue;
			}
			while (!PQisBusy(conns[i]))
			{
				res = PQgetResult(conns[i]);
				if (res == NULL)
				{
					done = 1;
					break;
				}
				if (PQresultStatus(res) != PGRES_TUPLES_OK)
					die("wait_for failed: %s", PQerrorMessage(conns[i]));
				if (!parked)
					after[i] = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
				returns++;
				PQclear(res);
			}
			if (done)
				send_wait(conns[i], parked, procedure, after[i]);
		}
	}

	for (int i = 0; i < n && !listen; i++)
	{
		PGcancel   *cancel = PQgetCancel(conns[i]);
		char		errbuf[256];

		if (cancel != NULL)
		{
			(void) PQcancel(cancel, errbuf, sizeof(errbuf));
			PQfreeCancel(cancel);
		}
	}
	for (int i = 0; i < n; i++)
		PQfinish(conns[i]);
	printf("connections=%d returns=%" PRId64 " seconds=%.3f\n",
		   n, returns, (now_us() - t0) / 1e6);
}

/* --- main ----------------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr,
			"usage: %s latency -w WRITER -r READER -m waitfor|listen -R RATE -s SECONDS -t STREAM\n"
			"               [-T WAIT_TIMEOUT] [-o CSV]\n"
			"       %s waiters -c CONNINFO -n N -m loop|parked|listen\n",
			progname, progname);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *mode = NULL;
	const char *conninfo = NULL;
	const char *csv = NULL;
	int			n = 100;
	int			opt;

	if (argc < 2)
		usage();
	optind = 2;
	while ((opt = getopt(argc, argv, "w:r:m:R:s:t:T:o:c:n:")) != -1)
	{
		switch (opt)
		{
			case 'w':
				writer_conninfo = optarg;
				break;
			case 'r':
				reader_conninfo = optarg;
				break;
			case 'm':
				mode = optarg;
				break;
			case 'R':
				rate = atoi(optarg);
				break;
			case 's':
				seconds = atoi(optarg);
				break;
			case 't':
				stream = optarg;
				break;
			case 'T':
				wait_timeout = optarg;
				break;
			case 'o':
				csv = optarg;
				break;
			case 'c':
				conninfo = optarg;
				break;
			case 'n':
				n = atoi(optarg);
				break;
			default:
				usage();
		}
	}
	if (strcmp(argv[1], "latency") == 0)
	{
		if (!writer_conninfo || !reader_conninfo || !stream || !mode ||
			rate < 1 || rate > 1000000 || seconds < 1)
			usage();
		if (strcmp(mode, "listen") == 0)
			use_listen = 1;
		else if (strcmp(mode, "waitfor") != 0)
			usage();
		run_latency(csv);
	}
	else if (strcmp(argv[1], "waiters") == 0)
	{
		if (!conninfo || !mode || n < 1)
			usage();
		if (strcmp(mode, "parked") != 0 && strcmp(mode, "parked-head") != 0 &&
			strcmp(mode, "loop") != 0 && strcmp(mode, "listen") != 0)
			usage();
		run_waiters(conninfo, n, mode);
	}
	else
		usage();
	return 0;
}
