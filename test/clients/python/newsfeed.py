#!/usr/bin/python3
# test/clients/python/newsfeed.py
# The newsfeed from psycopg2: history, then live, without losing a
# wake-up.  The order is what makes it safe:
#
#   1. LISTEN eventstore, so that every tick from now on wakes us;
#   2. read the feed with eventstore.read_all, page after page, until a
#      page comes back short (read_all never returns anything above the
#      head, so a short page means caught up as of that read);
#   3. on each notification, read again from the last position read.
#
# An event that becomes visible between 2 and 3 has its notification
# queued by then, so it is read at the next round.  psycopg2 collects the
# notifications that arrive while a query runs into conn.notifies without
# the socket becoming readable again: look there before waiting on the
# socket, or such a wake-up is lost.  The payload (the new head) is not
# needed.  It also reads every --poll-ms, as a follower should in case a
# notification is lost with a connection.  After a reconnect, LISTEN again
# first, then read from the last position.
#
# python3 newsfeed.py [--after POS] [--page N] [--max-events N]
#                     [--timeout-s S] [--poll-ms MS] [CONNECTION]
#
# CONNECTION is a libpq connection string or URI (default:
# $DATABASE_URL).  Prints
#
#     event <insert_order> <stream_id> <stream_order> <event_id>
#     caught-up <position>        after each round of reads
#     stopped <position> events=<n>
#
# and exits 0 after --max-events events, --timeout-s seconds, or SIGTERM.

import argparse
import os
import select
import signal
import time

import psycopg2


class Stop(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description='history, then live')
    parser.add_argument('--after', type=int, default=0)
    parser.add_argument('--page', type=int, default=1000)
    parser.add_argument('--max-events', type=int)
    parser.add_argument('--timeout-s', type=float)
    parser.add_argument('--poll-ms', type=int, default=10000)
    parser.add_argument('connection', nargs='?', default=os.environ.get('DATABASE_URL'))
    args = parser.parse_args()
    if not args.connection:
        parser.error('no CONNECTION and no DATABASE_URL')

    def on_signal(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    deadline = None if args.timeout_s is None else time.monotonic() + args.timeout_s
    position = args.after
    printed = 0
    conn = psycopg2.connect(args.connection)
    conn.autocommit = True  # LISTEN takes effect at once
    cur = conn.cursor()
    try:
        cur.execute('LISTEN eventstore')  # first, before any read
        while True:
            # a round: read up to the head, page by page
            conn.notifies.clear()  # this round reads what they announced
            while True:
                cur.execute("""
                    SELECT insert_order, stream_id, stream_order, event_id
                      FROM eventstore.read_all(%s, %s)""", (position, args.page))
                rows = cur.fetchall()
                for insert_order, stream_id, stream_order, event_id in rows:
                    print('event %d %s %d %s' % (insert_order, stream_id, stream_order, event_id),
                          flush=True)
                    position = insert_order
                    printed += 1
                    if args.max_events is not None and printed >= args.max_events:
                        raise Stop()
                if len(rows) < args.page:
                    break
            print('caught-up %d' % position, flush=True)

            # wait for a notification, unless one came during the round
            while not conn.notifies:
                timeout = args.poll_ms / 1000
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout <= 0:
                        raise Stop()
                if select.select([conn], [], [], timeout) == ([], [], []):
                    break  # poll interval: read anyway
                conn.poll()
    except Stop:
        pass
    finally:
        conn.close()
    print('stopped %d events=%d' % (position, printed), flush=True)


if __name__ == '__main__':
    main()
