#!/usr/bin/python3
# test/clients/python/group_member.py
# A consumer group member in psycopg2.  It joins the group (the join is
# also the heartbeat: renewed every third of the lease), and in a loop
# polls its partitions with eventstore.group_poll, processes the batch and
# acknowledges it with eventstore.group_ack, all in one transaction: if the
# member lost its partitions meanwhile, the acknowledgement fails (ES004),
# the processing rolls back with it, and the member joins again.  So every
# event is processed exactly once, by whichever member holds its partition.
# On SIGTERM or SIGINT it finishes the batch at hand, leaves the group
# (giving its partitions to the other members at once) and exits 0.
#
# Processing here writes what was handled into a read model table the
# member's role may insert into:
#
#     CREATE TABLE handled_events (seq bigserial PRIMARY KEY,
#         member text, insert_order bigint, stream_id text,
#         stream_order bigint, event_id uuid);
#
# python3 group_member.py [--batch N] [--lease-s S] [--wait-s S]
#                         [--max-events N] [--timeout-s S]
#                         SUBSCRIPTION MEMBER [CONNECTION]
#
# CONNECTION is a libpq connection string or URI (default:
# $DATABASE_URL).  Prints
#
#     partitions <p,q,...|none>   whenever the partitions held change
#     processed <insert_order> <stream_id> <stream_order>   once committed
#     left <true|false> processed=<n>

import argparse
import os
import signal
import sys
import time

import psycopg2

LEASE_LOST = 'ES004'

stopping = False


def on_signal(signum, frame):
    global stopping
    stopping = True


def handle(cur, member, event):
    """The processing: in the transaction of the poll and the acknowledgement."""
    insert_order, stream_id, stream_order, event_id = event[:4]
    cur.execute("""
        INSERT INTO handled_events (member, insert_order, stream_id, stream_order, event_id)
        VALUES (%s, %s, %s, %s, %s)""",
        (member, insert_order, stream_id, stream_order, event_id))


def heartbeat(conn, args, held):
    with conn, conn.cursor() as cur:  # one transaction, committed
        cur.execute("""
            SELECT partition FROM eventstore.group_join(%s, %s, lease => %s::interval)
             ORDER BY partition""",
            (args.subscription, args.member, '%g seconds' % args.lease_s))
        now = ','.join(str(p) for (p,) in cur.fetchall()) or 'none'
    if now != held:
        print('partitions %s' % now, flush=True)
    return now


def batch(conn, args):
    """One batch: poll, process, acknowledge, commit.  The events processed,
    or None if the lease was lost (nothing of the batch is kept)."""
    try:
        with conn, conn.cursor() as cur:  # commits, or rolls back on an error
            cur.execute("""
                SELECT insert_order, stream_id, stream_order, event_id, event_type, data
                  FROM eventstore.group_poll(%s, %s, %s, wait => %s::interval)""",
                (args.subscription, args.member, args.batch, '%g seconds' % args.wait_s))
            rows = cur.fetchall()
            for event in rows:
                handle(cur, args.member, event)
            if rows:
                cur.execute('SELECT eventstore.group_ack(%s, %s, %s)',
                            (args.subscription, args.member, rows[-1][0]))
        return rows
    except psycopg2.Error as err:
        if err.pgcode == LEASE_LOST:
            return None
        raise


def main():
    parser = argparse.ArgumentParser(description='a consumer group member')
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--lease-s', type=float, default=30)
    parser.add_argument('--wait-s', type=float, default=1)
    parser.add_argument('--max-events', type=int)
    parser.add_argument('--timeout-s', type=float)
    parser.add_argument('subscription')
    parser.add_argument('member')
    parser.add_argument('connection', nargs='?', default=os.environ.get('DATABASE_URL'))
    args = parser.parse_args()
    if not args.connection:
        parser.error('no CONNECTION and no DATABASE_URL')

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = None if args.timeout_s is None else time.monotonic() + args.timeout_s

    conn = psycopg2.connect(args.connection)  # transactions: BEGIN is implicit
    held, next_beat, processed = None, 0, 0
    while not stopping and (args.max_events is None or processed < args.max_events):
        if deadline is not None and time.monotonic() >= deadline:
            break
        if time.monotonic() >= next_beat:
            held = heartbeat(conn, args, held)
            next_beat = time.monotonic() + args.lease_s / 3
        rows = batch(conn, args)
        if rows is None:
            next_beat = 0  # join again at once
            continue
        for insert_order, stream_id, stream_order, *_ in rows:
            print('processed %d %s %d' % (insert_order, stream_id, stream_order), flush=True)
        processed += len(rows)

    with conn, conn.cursor() as cur:
        cur.execute('SELECT eventstore.group_leave(%s, %s)', (args.subscription, args.member))
        gone = cur.fetchone()[0]
    conn.close()
    print('left %s processed=%d' % ('true' if gone else 'false', processed), flush=True)


if __name__ == '__main__':
    try:
        main()
    except psycopg2.Error as err:
        sys.exit('error: %s (SQLSTATE %s)' % (str(err).strip(), err.pgcode))
