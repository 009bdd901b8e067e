#!/usr/bin/python3
# test/clients/python/append_retry.py
# Appending with optimistic concurrency from psycopg2.  Each command
# deposits an amount into an account stream: it loads the stream's last
# event (its stream_order is the stream's version, its data the balance),
# decides the new balance, and appends one "Deposited" event with that
# version as expected_version.  If another writer appended in between, the
# append raises SQLSTATE ES001: load again, decide again, append again.
# With --try the same loop calls eventstore.try_append, which returns the
# conflict as a row (outcome 'conflict') instead of raising it.
#
# The event id is chosen once per command and kept across retries: if a
# command is ever sent again after its append committed (the reply was
# lost with the connection, say), the stream already holds the id and the
# append answers with the stored event (duplicate = true) instead of
# depositing twice.
#
# python3 append_retry.py [--try] [--count N] [--pause-ms MS]
#                         [--writer NAME] STREAM [CONNECTION]
#
# CONNECTION is a libpq connection string or URI (default:
# $DATABASE_URL).  It makes --count deposits of 1, 2, ..., N; --pause-ms
# waits between loading and appending (as a slow decision would).  Prints
# what each load found, one line per deposit, and a summary:
#
#     loaded version=2 balance=3
#     appended stream_order=3 insert_order=65539 event_id=... balance=6 conflicts=1
#     done appended=2 duplicates=0 conflicts=1
#
# psycopg2 returns int8 as Python int, which is exact at any size: positions
# and versions need no special handling.  It sends parameters as untyped
# literals, so the JSON batch needs its ::jsonb cast (append has two forms).

import argparse
import json
import os
import sys
import time
import uuid

import psycopg2

VERSION_CONFLICT = 'ES001'


def load(cur, stream):
    """The stream's version and the account's balance: its last event."""
    cur.execute("""
        SELECT stream_order, data
          FROM eventstore.read_stream(%s, backwards => true, max_count => 1)""",
        (stream,))
    row = cur.fetchone()
    if row is None:
        return 0, 0
    return row[0], row[1]['balance']


def append_at(cur, stream, version, event, use_try):
    """Append one event at an expected version: the stored row as
    (stream_order, insert_order, duplicate), or None on a version conflict."""
    batch = json.dumps([event])
    if use_try:
        cur.execute("""
            SELECT stream_order, insert_order, duplicate, outcome, stream_version
              FROM eventstore.try_append(%s, %s::jsonb, %s)""",
            (stream, batch, version))
        row = cur.fetchone()
        return None if row[3] == 'conflict' else row[:3]
    try:
        cur.execute("""
            SELECT stream_order, insert_order, duplicate
              FROM eventstore.append(%s, %s::jsonb, %s)""",
            (stream, batch, version))
        return cur.fetchone()
    except psycopg2.Error as err:
        if err.pgcode == VERSION_CONFLICT:
            return None
        raise


def deposit(cur, args, amount):
    event_id = str(uuid.uuid4())
    conflicts = 0
    while True:
        version, balance = load(cur, args.stream)
        print('loaded version=%d balance=%d' % (version, balance), flush=True)
        event = {'id': event_id, 'type': 'Deposited',
                 'data': {'amount': amount, 'balance': balance + amount,
                          'writer': args.writer}}
        if args.pause_ms > 0:
            time.sleep(args.pause_ms / 1000)
        row = append_at(cur, args.stream, version, event, args.use_try)
        if row is not None:
            return row, event_id, balance + amount, conflicts
        conflicts += 1


def main():
    parser = argparse.ArgumentParser(description='deposits with retry on conflict')
    parser.add_argument('--try', dest='use_try', action='store_true')
    parser.add_argument('--count', type=int, default=1)
    parser.add_argument('--pause-ms', type=int, default=0)
    parser.add_argument('--writer', default='python-%d' % os.getpid())
    parser.add_argument('stream')
    parser.add_argument('connection', nargs='?', default=os.environ.get('DATABASE_URL'))
    args = parser.parse_args()
    if not args.connection:
        parser.error('no CONNECTION and no DATABASE_URL')

    conn = psycopg2.connect(args.connection)
    conn.autocommit = True  # each statement its own transaction
    appended = duplicates = conflicts = 0
    try:
        with conn.cursor() as cur:
            for amount in range(1, args.count + 1):
                (stream_order, insert_order, duplicate), event_id, balance, n = \
                    deposit(cur, args, amount)
                conflicts += n
                if duplicate:
                    duplicates += 1
                else:
                    appended += 1
                print('appended stream_order=%d insert_order=%d event_id=%s balance=%d conflicts=%d'
                      % (stream_order, insert_order, event_id, balance, n), flush=True)
    finally:
        conn.close()
    print('done appended=%d duplicates=%d conflicts=%d' % (appended, duplicates, conflicts))


if __name__ == '__main__':
    try:
        main()
    except psycopg2.Error as err:
        sys.exit('error: %s (SQLSTATE %s)' % (str(err).strip(), err.pgcode))
