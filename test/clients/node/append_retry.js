#!/usr/bin/env node
// test/clients/node/append_retry.js
// Appending with optimistic concurrency from node-postgres.  Each command
// deposits an amount into an account stream: it loads the stream's last
// event (its stream_order is the stream's version, its data the balance),
// decides the new balance, and appends one "Deposited" event with that
// version as expected_version.  If another writer appended in between, the
// append raises SQLSTATE ES001: load again, decide again, append again.
// With --try the same loop calls eventstore.try_append, which returns the
// conflict as a row (outcome 'conflict') instead of raising it.
//
// The event id is chosen once per command and kept across retries: if a
// command is ever sent again after its append committed (the reply was
// lost with the connection, say), the stream already holds the id and the
// append answers with the stored event (duplicate = true) instead of
// depositing twice.
//
// node append_retry.js [--try] [--count N] [--pause-ms MS] [--writer NAME]
//                      STREAM [CONNECTION]
//
// CONNECTION is a postgresql:// URI (default: $DATABASE_URL).  It makes
// --count deposits of 1, 2, ..., N; --pause-ms waits between loading and
// appending (as a slow decision would).  Prints what each load found, one
// line per deposit, and a summary:
//
//     loaded version=2 balance=3
//     appended stream_order=3 insert_order=65539 event_id=... balance=6 conflicts=1
//     done appended=2 duplicates=0 conflicts=1

'use strict';

const { randomUUID } = require('node:crypto');
const { parseArgs } = require('node:util');
const pg = require('pg');

// int8 columns (positions, versions, counts) arrive as strings by default,
// because a JavaScript Number is exact only up to 2^53 and positions go up
// to 2^63.  Here they are parsed as BigInt: exact, comparable with < and >
// (as strings "10" < "9"), and sent back as parameters as they are.  Never
// make a position a Number; JSON.stringify refuses a BigInt, so write one
// as a string where it goes into JSON.
pg.types.setTypeParser(pg.types.builtins.INT8, (text) => BigInt(text));

const VERSION_CONFLICT = 'ES001';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    try: { type: 'boolean', default: false },
    count: { type: 'string', default: '1' },
    'pause-ms': { type: 'string', default: '0' },
    writer: { type: 'string', default: `node-${process.pid}` },
  },
});
const [stream, connectionString = process.env.DATABASE_URL] = positionals;
if (!stream || !connectionString) {
  console.error('usage: append_retry.js [--try] [--count N] [--pause-ms MS] [--writer NAME] STREAM [CONNECTION]');
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The stream's version and the account's balance: its last event.
async function load(client) {
  const { rows } = await client.query(
    `SELECT stream_order, data
       FROM eventstore.read_stream($1, backwards => true, max_count => 1)`,
    [stream]);
  if (rows.length === 0)
    return { version: 0n, balance: 0 };
  return { version: rows[0].stream_order, balance: rows[0].data.balance };
}

// Append one event at an expected version.  Returns the stored row, or
// null on a version conflict.
async function appendAt(client, version, event) {
  const batch = JSON.stringify([event]);
  if (opt.try) {
    const { rows } = await client.query(
      `SELECT stream_order, insert_order, duplicate, outcome, stream_version
         FROM eventstore.try_append($1, $2::jsonb, $3)`,
      [stream, batch, version]);
    return rows[0].outcome === 'conflict' ? null : rows[0];
  }
  try {
    const { rows } = await client.query(
      `SELECT stream_order, insert_order, duplicate
         FROM eventstore.append($1, $2::jsonb, $3)`,
      [stream, batch, version]);
    return rows[0];
  } catch (err) {
    if (err.code === VERSION_CONFLICT)
      return null;
    throw err;
  }
}

async function deposit(client, amount) {
  const id = randomUUID();
  for (let conflicts = 0; ; conflicts++) {
    const { version, balance } = await load(client);
    console.log(`loaded version=${version} balance=${balance}`);
    const event = {
      id,
      type: 'Deposited',
      data: { amount, balance: balance + amount, writer: opt.writer },
    };
    if (Number(opt['pause-ms']) > 0)
      await sleep(Number(opt['pause-ms']));
    const row = await appendAt(client, version, event);
    if (row !== null)
      return { ...row, id, balance: event.data.balance, conflicts };
  }
}

async function main() {
  const client = new pg.Client({ connectionString });
  await client.connect();
  let appended = 0, duplicates = 0, conflicts = 0;
  try {
    for (let amount = 1; amount <= Number(opt.count); amount++) {
      const r = await deposit(client, amount);
      conflicts += r.conflicts;
      if (r.duplicate)
        duplicates++;
      else
        appended++;
      console.log(`appended stream_order=${r.stream_order} insert_order=${r.insert_order}`
        + ` event_id=${r.id} balance=${r.balance} conflicts=${r.conflicts}`);
    }
  } finally {
    await client.end();
  }
  console.log(`done appended=${appended} duplicates=${duplicates} conflicts=${conflicts}`);
}

main().catch((err) => {
  console.error(`error: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}`);
  process.exit(1);
});
