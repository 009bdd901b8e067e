// test/t/pooler_probe.js
//	What test/t/012_pgbouncer_modes.pl asks node-postgres to do through a
//	pooler, one request per run, printing what happened:
//
//	  listen URI SECONDS   LISTEN eventstore, print "listening", then each
//	                       notification ("notification <payload>") until
//	                       one came or SECONDS passed; then "received <n>"
//	  prepared URI         client A runs the named (protocol-level
//	                       prepared) statement "es_probe" twice and
//	                       disconnects, then client B runs a statement of
//	                       the same name: "A1 ok", "A2 ok", "B ok" or
//	                       "<who> error <SQLSTATE> <message>"
//	  params URI STREAM    an append with the batch as a jsonb parameter,
//	                       read_stream and read_all with parameters, all
//	                       unnamed statements: "appended <n>",
//	                       "read_stream <n>", "read_all <n>"
//
//	node-postgres comes from NODE_PATH (the test's npm ci of
//	test/clients/node).

'use strict';

const pg = require('pg');

pg.types.setTypeParser(pg.types.builtins.INT8, (text) => BigInt(text));

const [command, uri, arg] = process.argv.slice(2);

async function listen() {
	const client = new pg.Client({ connectionString: uri });
	await client.connect();
	let received = 0;
	let done;
	const finished = new Promise((resolve) => { done = resolve; });
	client.on('notification', (n) => {
		console.log(`notification ${n.payload}`);
		received++;
		done();
	});
	await client.query('LISTEN eventstore');
	console.log('listening');
	const timer = setTimeout(done, 1000 * Number(arg));
	await finished;
	clearTimeout(timer);
	console.log(`received ${received}`);
	await client.end();
}

async function named(client, who) {
	try {
		const { rows } = await client.query({
			name: 'es_probe',
			text: 'SELECT eventstore.head() AS head',
		});
		console.log(`${who} ok ${rows[0].head}`);
	} catch (err) {
		console.log(`${who} error ${err.code} ${err.message}`);
	}
}

async function prepared() {
	const a = new pg.Client({ connectionString: uri });
	await a.connect();
	await named(a, 'A1');
	await named(a, 'A2');
	await a.end();
	const b = new pg.Client({ connectionString: uri });
	await b.connect();
	await named(b, 'B');
	await b.end();
}

async function params() {
	const client = new pg.Client({ connectionString: uri });
	await client.connect();
	const batch = JSON.stringify([
		{ type: 'Probed', data: { n: 1 } },
		{ type: 'Probed', data: { n: 2 } },
	]);
	let r = await client.query(
		'SELECT * FROM eventstore.append($1, $2::jsonb, $3)', [arg, batch, null]);
	console.log(`appended ${r.rows.length}`);
	r = await client.query('SELECT * FROM eventstore.read_stream($1, $2, $3)', [arg, 1n, 100]);
	console.log(`read_stream ${r.rows.length}`);
	r = await client.query(
		'SELECT * FROM eventstore.read_all($1, $2) WHERE stream_id = $3', [0n, 100000, arg]);
	console.log(`read_all ${r.rows.length}`);
	await client.end();
}

const commands = { listen, prepared, params };
if (!commands[command] || !uri) {
	console.error('usage: pooler_probe.js listen|prepared|params URI [ARG]');
	process.exit(2);
}
commands[command]().catch((err) => {
	console.error(`error: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ''}`);
	process.exit(1);
});
