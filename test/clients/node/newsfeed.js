#!/usr/bin/env node
// test/clients/node/newsfeed.js
// The newsfeed from node-postgres: history, then live, without losing a
// wake-up.  The order is what makes it safe:
//
//   1. LISTEN eventstore, so that every tick from now on wakes us;
//   2. read the feed with eventstore.read_all, page after page, until a
//      page comes back short (read_all never returns anything above the
//      head, so a short page means caught up as of that read);
//   3. on each notification, read again from the last position read.
//
// An event that becomes visible between 2 and 3 has its notification
// queued by then, so it is read at the next round.  Notifications that
// arrive while a round is reading only mark that another round is due:
// rounds never overlap, so no event is printed twice.  The payload (the new
// head) is not needed.  It also reads every --poll-ms, as a follower
// should in case a notification is lost with a connection.  After a
// reconnect, LISTEN again first, then read from the last position.
//
// node newsfeed.js [--after POS] [--page N] [--max-events N]
//                  [--timeout-s S] [--poll-ms MS] [CONNECTION]
//
// CONNECTION is a postgresql:// URI (default: $DATABASE_URL).  Prints
//
//     event <insert_order> <stream_id> <stream_order> <event_id>
//     caught-up <position>        after each round of reads
//     stopped <position> events=<n>
//
// and exits 0 after --max-events events, --timeout-s seconds, or SIGTERM.

'use strict';

const { parseArgs } = require('node:util');
const pg = require('pg');

// Positions are int8: BigInt, never Number (exact only up to 2^53).
pg.types.setTypeParser(pg.types.builtins.INT8, (text) => BigInt(text));

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    after: { type: 'string', default: '0' },
    page: { type: 'string', default: '1000' },
    'max-events': { type: 'string' },
    'timeout-s': { type: 'string' },
    'poll-ms': { type: 'string', default: '10000' },
  },
});
const connectionString = positionals[0] ?? process.env.DATABASE_URL;
if (!connectionString) {
  console.error('usage: newsfeed.js [--after POS] [--page N] [--max-events N] [--timeout-s S] [--poll-ms MS] [CONNECTION]');
  process.exit(2);
}
const page = Number(opt.page);
const maxEvents = opt['max-events'] === undefined ? Infinity : Number(opt['max-events']);

const client = new pg.Client({ connectionString });
let position = BigInt(opt.after);
let printed = 0;
let reading = false;  // a round of reads is running
let again = false;  // woken meanwhile: read once more after it
let stopping = false;
const timers = [];

function stop() {
  if (stopping)
    return;
  stopping = true;
  timers.forEach(clearTimeout);
  console.log(`stopped ${position} events=${printed}`);
  client.end().then(() => process.exit(0), () => process.exit(1));
}

function fail(err) {
  console.error(`error: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}`);
  process.exit(1);
}

// Read up to the head, page by page.
async function round() {
  if (reading) {
    again = true;
    return;
  }
  reading = true;
  try {
    do {
      again = false;
      let rows;
      do {
        ({ rows } = await client.query(
          `SELECT insert_order, stream_id, stream_order, event_id
             FROM eventstore.read_all($1, $2)`,
          [position, page]));
        for (const e of rows) {
          if (stopping)
            return;
          console.log(`event ${e.insert_order} ${e.stream_id} ${e.stream_order} ${e.event_id}`);
          position = e.insert_order;
          if (++printed >= maxEvents)
            return stop();
        }
      } while (rows.length === page);
    } while (again && !stopping);
    console.log(`caught-up ${position}`);
  } finally {
    reading = false;
  }
}

async function main() {
  client.on('error', fail);
  await client.connect();
  client.on('notification', () => round().catch(fail));
  await client.query('LISTEN eventstore');  // first, before any read
  await round();
  const poll = () => {
    timers[0] = setTimeout(() => round().then(poll, fail), Number(opt['poll-ms']));
  };
  poll();
  if (opt['timeout-s'] !== undefined)
    timers[1] = setTimeout(stop, 1000 * Number(opt['timeout-s']));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(fail);
