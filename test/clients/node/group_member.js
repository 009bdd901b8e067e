#!/usr/bin/env node
// test/clients/node/group_member.js
// A consumer group member in node-postgres.  It joins the group (the join
// is also the heartbeat: renewed every third of the lease), and in a loop
// polls its partitions with eventstore.group_poll, processes the batch and
// acknowledges it with eventstore.group_ack, all in one transaction: if the
// member lost its partitions meanwhile, the acknowledgement fails (ES004),
// the processing rolls back with it, and the member joins again.  So every
// event is processed exactly once, by whichever member holds its partition.
// On SIGTERM or SIGINT it finishes the batch at hand, leaves the group
// (giving its partitions to the other members at once) and exits 0.
//
// Processing here writes what was handled into a read model table the
// member's role may insert into:
//
//     CREATE TABLE handled_events (seq bigserial PRIMARY KEY,
//         member text, insert_order bigint, stream_id text,
//         stream_order bigint, event_id uuid);
//
// node group_member.js [--batch N] [--lease-s S] [--wait-s S]
//                      [--max-events N] [--timeout-s S]
//                      SUBSCRIPTION MEMBER [CONNECTION]
//
// CONNECTION is a postgresql:// URI (default: $DATABASE_URL).  Prints
//
//     partitions <p,q,...|none>   whenever the partitions held change
//     processed <insert_order> <stream_id> <stream_order>   once committed
//     left <true|false> processed=<n>

'use strict';

const { parseArgs } = require('node:util');
const pg = require('pg');

// Positions are int8: BigInt, never Number (exact only up to 2^53).
pg.types.setTypeParser(pg.types.builtins.INT8, (text) => BigInt(text));

const LEASE_LOST = 'ES004';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    batch: { type: 'string', default: '100' },
    'lease-s': { type: 'string', default: '30' },
    'wait-s': { type: 'string', default: '1' },
    'max-events': { type: 'string' },
    'timeout-s': { type: 'string' },
  },
});
const [subscription, member, connectionString = process.env.DATABASE_URL] = positionals;
if (!subscription || !member || !connectionString) {
  console.error('usage: group_member.js [--batch N] [--lease-s S] [--wait-s S] [--max-events N] [--timeout-s S] SUBSCRIPTION MEMBER [CONNECTION]');
  process.exit(2);
}
const leaseMs = 1000 * Number(opt['lease-s']);
const maxEvents = opt['max-events'] === undefined ? Infinity : Number(opt['max-events']);

let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
process.on('SIGINT', () => { stopping = true; });
if (opt['timeout-s'] !== undefined)
  setTimeout(() => { stopping = true; }, 1000 * Number(opt['timeout-s'])).unref();

// The processing: in the transaction of the poll and the acknowledgement.
async function handle(client, e) {
  await client.query(
    `INSERT INTO handled_events (member, insert_order, stream_id, stream_order, event_id)
     VALUES ($1, $2, $3, $4, $5)`,
    [member, e.insert_order, e.stream_id, e.stream_order, e.event_id]);
}

async function heartbeat(client, held) {
  const { rows } = await client.query(
    `SELECT partition FROM eventstore.group_join($1, $2, lease => $3::interval)
      ORDER BY partition`,
    [subscription, member, `${opt['lease-s']} seconds`]);
  const now = rows.map((r) => r.partition).join(',') || 'none';
  if (now !== held)
    console.log(`partitions ${now}`);
  return now;
}

// One batch: poll, process, acknowledge, commit.  Returns the events
// processed, or null if the lease was lost (nothing of the batch is kept).
async function batch(client) {
  await client.query('BEGIN');
  try {
    const { rows } = await client.query(
      `SELECT insert_order, stream_id, stream_order, event_id, event_type, data
         FROM eventstore.group_poll($1, $2, $3, wait => $4::interval)`,
      [subscription, member, Number(opt.batch), `${opt['wait-s']} seconds`]);
    for (const e of rows)
      await handle(client, e);
    if (rows.length > 0)
      await client.query('SELECT eventstore.group_ack($1, $2, $3)',
        [subscription, member, rows[rows.length - 1].insert_order]);
    await client.query('COMMIT');
    return rows;
  } catch (err) {
    await client.query('ROLLBACK');
    if (err.code === LEASE_LOST)
      return null;
    throw err;
  }
}

async function main() {
  const client = new pg.Client({ connectionString });
  await client.connect();
  let held = null, nextBeat = 0, processed = 0;
  while (!stopping && processed < maxEvents) {
    if (Date.now() >= nextBeat) {
      held = await heartbeat(client, held);
      nextBeat = Date.now() + leaseMs / 3;
    }
    const rows = await batch(client);
    if (rows === null) {
      nextBeat = 0;  // join again at once
      continue;
    }
    for (const e of rows)
      console.log(`processed ${e.insert_order} ${e.stream_id} ${e.stream_order}`);
    processed += rows.length;
  }
  const { rows } = await client.query('SELECT eventstore.group_leave($1, $2) AS gone',
    [subscription, member]);
  console.log(`left ${rows[0].gone} processed=${processed}`);
  await client.end();
}

main().catch((err) => {
  console.error(`error: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}`);
  process.exit(1);
});
