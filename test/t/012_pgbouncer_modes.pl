# test/t/012_pgbouncer_modes.pl
#	What works through PgBouncer in each pool mode, session, transaction and
#	statement: each cell of the table below is run through a real PgBouncer
#	and its outcome asserted, the cells that do not work shown to fail.
#
#	  append        both forms (event_in[] and jsonb), as literals (psql)
#	                and with the batch as a parameter (node-postgres)
#	  reads         read_stream, read_all and head, as literals and with
#	                parameters: the same rows as a direct connection
#	  cursor        BEGIN, open_feed, FETCH, COMMIT as four statements: in
#	                statement mode PgBouncer refuses the BEGIN and closes the
#	                connection; the same sent as one query string works
#	                there too
#	  LISTEN        a node-postgres client listens through the pool and an
#	                append is made directly: in session mode the ticker's
#	                notification reaches it, in the other modes nothing
#	                arrives (PgBouncer drops it: "got packet 'A' from server
#	                when not linked"), and the server connection keeps
#	                listening: a later client that holds it while the head
#	                moves receives the notification (in session mode
#	                PgBouncer's DISCARD ALL ends the LISTEN with the client)
#	  wait_for      a waiter through the pool returns the new head soon
#	                after a direct append, in every mode; the same with
#	                CALL wait_for_head, which holds no snapshot meanwhile
#	  prepared      named, protocol-level prepared statements: a second
#	                client preparing the name a first client prepared and
#	                left behind gets 42P05 in transaction and statement
#	                mode, where the server connection is shared; in session
#	                mode PgBouncer's DISCARD ALL cleans it up in between
#	  follow        eventstore-follow listening is woken by an append only
#	                in session mode; with --no-listen it is woken (by
#	                wait_for) in every mode
#
# The resulting table is printed as a note (prove -v).  One PgBouncer
# (test/t/EsPooler.pm): one alias per mode, each a pool of one server
# connection, so that consecutive clients share it.  Skipped without pgbouncer; the
# node-postgres cells are skipped without node.

use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;
use EsFollow;
use EsClients;
use EsPooler;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pgbouncer = EsPooler::binary();
plan skip_all => 'pgbouncer is not installed (Debian package "pgbouncer")'
  if !defined $pgbouncer;

if (!ok(-x $EsFollow::follow, "eventstore-follow is installed: $EsFollow::follow"))
{
	done_testing();
	exit 1;
}

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = PostgreSQL::Test::Cluster->new('modes');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eventstore');

# node-postgres for the cells that need a driver.
my $node_js = find_program('node');
my $node_modules;
if (defined $node_js)
{
	my ($dir, $why) = install_node_examples(PostgreSQL::Test::Utils::tempdir());
	ok(defined $dir, 'node-postgres installed from the lockfile with npm ci') or diag($why);
	$node_modules = "$dir/node_modules" if defined $dir;
}

# --- PgBouncer -------------------------------------------------------------------

my @modes = qw(session transaction statement);
my $pool = EsPooler->start($pgbouncer, $node, @modes);

sub via
{
	my ($mode) = @_;
	return $pool->via($mode);
}

sub via_uri
{
	my ($mode) = @_;
	return $pool->via_uri($mode);
}

# psql through a pool: (exit code, stdout, stderr).
sub pooled_psql
{
	my ($mode, $input, @args) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'psql', '-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-d', via($mode), @args ],
		'<', \$input, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
	chomp $out;
	return ($? >> 8, $out, $err);
}

sub probe
{
	my (@args) = @_;
	local $ENV{NODE_PATH} = $node_modules;
	return run_example($node_js, "$FindBin::RealBin/pooler_probe.js", @args);
}

sub start_probe
{
	my (@args) = @_;
	local $ENV{NODE_PATH} = $node_modules;
	return start_example($node_js, "$FindBin::RealBin/pooler_probe.js", @args);
}

sub direct
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql);
}

sub append_direct
{
	my ($stream, $n) = @_;
	return direct(qq{SELECT max(insert_order) FROM eventstore.append('$stream',
		ARRAY(SELECT eventstore.event('Direct', jsonb_build_object('n', g))
				FROM generate_series(1, $n) g))});
}

sub bouncer_log
{
	return $pool->log;
}

if (!ok($pool->ready, 'PgBouncer accepts connections on port ' . $pool->port))
{
	diag(bouncer_log());
	done_testing();
	exit 1;
}

# --- The cells ---------------------------------------------------------------------
#
# Each returns ('works' | 'fails', what was seen).

my %cell = (
	append => sub {
		my ($mode) = @_;
		my @seen;
		my ($rc1, $o1, $e1) = pooled_psql($mode, '', '-c', qq{
			SELECT count(*) FROM eventstore.append('text-$mode',
				ARRAY[eventstore.event('T', '{"n": 1}'), eventstore.event('T', '{"n": 2}')])});
		push @seen, "event_in[]: $o1$e1";
		my ($rc2, $o2, $e2) = pooled_psql($mode, '', '-c', qq{
			SELECT count(*) FROM eventstore.append('json-$mode',
				'[{"type": "T", "data": {"n": 1}}, {"type": "T", "data": {"n": 2}}]'::jsonb)});
		push @seen, "jsonb: $o2$e2";
		my $ok = $rc1 == 0 && $o1 eq '2' && $rc2 == 0 && $o2 eq '2';
		if (defined $node_modules)
		{
			my ($rc3, $o3, $e3) = probe('params', via_uri($mode), "param-$mode");
			push @seen, "jsonb parameter: " . ($o3 =~ /^(appended \d+)/m ? $1 : $e3);
			$ok &&= $rc3 == 0 && $o3 =~ /^appended 2$/m;
		}
		$ok &&= direct(qq{
			SELECT eventstore.stream_version('text-$mode') = 2
			   AND eventstore.stream_version('json-$mode') = 2}) eq 't';
		return ($ok ? 'works' : 'fails', join('; ', @seen));
	},
	reads => sub {
		my ($mode) = @_;
		my $q = q{
			SELECT (SELECT count(*) FROM eventstore.read_all(0, 100000)),
				   (SELECT string_agg(event_id::text, ',' ORDER BY stream_order)
					  FROM eventstore.read_stream('text-%s'))};
		my $want = direct(sprintf($q, $mode));
		my ($rc, $o, $e) = pooled_psql($mode, '', '-c', sprintf($q, $mode));
		my $ok = $rc == 0 && $o eq $want;
		my @seen = ("read_all, read_stream: " . ($ok ? 'the same rows' : "$o$e"));
		if (defined $node_modules)
		{
			my ($rc2, $o2, $e2) = probe('params', via_uri($mode), "param-$mode");
			my $got = join(', ', $o2 =~ /^(read_\w+ \d+)$/mg);
			push @seen, "with parameters: $got$e2";
			$ok &&= $rc2 == 0 && $o2 =~ /^read_stream 4$/m && $o2 =~ /^read_all 4$/m;
		}
		return ($ok ? 'works' : 'fails', join('; ', @seen));
	},
	cursor => sub {
		my ($mode) = @_;
		my $events = direct('SELECT count(*) FROM eventstore.events');
		my $sql = qq{BEGIN;
SELECT eventstore.open_feed(0, 'feed');
FETCH ALL FROM feed;
COMMIT;
};
		my ($rc, $o, $e) = pooled_psql($mode, $sql, '-f', '-');
		my @rows = grep { /^\d+\|/ } split /\n/, $o;
		my $ok = $rc == 0 && @rows == $events;
		my ($why) = $e =~ /^(?:\S+:\s+)?(?:FATAL|ERROR):\s+(.*)$/m;
		# The same transaction in one query string
		my ($rc1, $o1) = pooled_psql($mode, '', '-c',
			"BEGIN; SELECT eventstore.open_feed(0, 'one'); FETCH ALL FROM one; COMMIT");
		my $one = $rc1 == 0 && (grep { /^\d+\|/ } split /\n/, $o1) == $events;
		return ($ok ? 'works' : 'fails',
			($ok ? "$events rows fetched" : "refused: " . ($why // $e))
			  . '; as one query string: ' . ($one ? 'works' : 'fails'),
			$one);
	},
	wait_for => sub {
		my ($mode) = @_;
		my $head = direct('SELECT eventstore.head()');
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start([ 'psql', '-X', '-qAt', '-d', via($mode), '-c',
				"SELECT eventstore.wait_for($head, '20 seconds')" ],
			'<', \undef, '>', \$out, '2>', \$err);
		$node->poll_query_until('postgres', q{
			SELECT count(*) > 0 FROM pg_stat_activity
			 WHERE state = 'active' AND query LIKE 'SELECT eventstore.wait_for(%'})
		  or return ('fails', 'the waiter did not start');
		my $t0 = time();
		my $pos = append_direct("waited-$mode", 1);
		$h->finish;
		my $elapsed = time() - $t0;
		chomp $out;
		my $ok = $? == 0 && $out =~ /^\d+$/ && $out >= $pos && $elapsed < 5;
		return ($ok ? 'works' : 'fails',
			sprintf('returned %s %.2f s after the append%s', $out, $elapsed, $err));
	},
	wait_for_head => sub {
		my ($mode) = @_;
		my $head = direct('SELECT eventstore.head()');
		my ($out, $err) = ('', '');
		my $h = IPC::Run::start([ 'psql', '-X', '-qAt', '-d', via($mode), '-c',
				"CALL eventstore.wait_for_head($head, '20 seconds')" ],
			'<', \undef, '>', \$out, '2>', \$err);
		$node->poll_query_until('postgres', q{
			SELECT count(*) > 0 FROM pg_stat_activity
			 WHERE state = 'active' AND backend_xmin IS NULL
			   AND query LIKE 'CALL eventstore.wait_for_head(%'})
		  or return ('fails', 'the waiter did not start, or holds a snapshot');
		my $t0 = time();
		my $pos = append_direct("waited-head-$mode", 1);
		$h->finish;
		my $elapsed = time() - $t0;
		chomp $out;
		my $ok = $? == 0 && $out =~ /^\d+$/ && $out >= $pos && $elapsed < 5;
		return ($ok ? 'works' : 'fails',
			sprintf('no snapshot held; returned %s %.2f s after the append%s',
				$out, $elapsed, $err));
	},
	prepared => sub {
		my ($mode) = @_;
		my ($rc, $o, $e) = probe('prepared', via_uri($mode));
		pooled_psql($mode, '', '-c', 'DEALLOCATE ALL');
		my %r = map { /^(\w+) (ok|error \S+)/ ? ($1 => $2) : () } split /\n/, $o;
		my $ok = $rc == 0 && ($r{A1} // '') eq 'ok' && ($r{A2} // '') eq 'ok'
		  && ($r{B} // '') eq 'ok';
		my ($b) = $o =~ /^B (.*)$/m;
		return ($ok ? 'works' : 'fails', "the second client: " . ($b // $e));
	},
	listen => sub {
		my ($mode) = @_;
		my $before = length bouncer_log();
		my ($h, $out, $err) = start_probe('listen', via_uri($mode), 3);
		wait_for_output($h, $out, qr/^listening$/m)
		  or return ('fails', "the listener did not start: $$err");
		append_direct("notified-$mode", 1);
		my $rc = stop_example($h, undef, 20);
		my ($n) = $$out =~ /^received (\d+)$/m;
		my $dropped = substr(bouncer_log(), $before)
		  =~ /es_$mode\S* got packet 'A' from server when not linked/;

		# The listener is gone; another client that holds the server
		# connection while the head moves.
		my ($sout, $serr) = ('', '');
		my $s = IPC::Run::start([ 'psql', '-X', '-qAt', '-d', via($mode), '-c',
				'SELECT pg_sleep(1.5)' ],
			'<', \undef, '>', \$sout, '2>', \$serr);
		$node->poll_query_until('postgres', q{
			SELECT count(*) > 0 FROM pg_stat_activity
			 WHERE state = 'active' AND query = 'SELECT pg_sleep(1.5)'});
		append_direct("stray-$mode", 1);
		$s->finish;
		my $stray = $sout =~ /Asynchronous notification "eventstore"/;
		pooled_psql($mode, '', '-c', 'UNLISTEN *');
		return (defined $rc && $rc == 0 && ($n // 0) > 0 ? 'works' : 'fails',
			sprintf('%s notification(s) in 3 s%s; another client later %s', $n // '?',
				$dropped ? "; PgBouncer: got packet 'A' from server when not linked" : '',
				$stray ? 'received one' : 'received none'),
			{ dropped => $dropped, stray => $stray });
	},
	follow => sub {
		my ($mode, @args) = @_;
		my $from = direct('SELECT eventstore.head()');
		my $before = length bouncer_log();
		my ($h, $hout, $herr) = start_follow(@args, '--poll-interval', '600000',
			'--from', $from, via($mode));
		settle($h, $hout, 1);
		my $t0 = time();
		append_direct("followed-$mode", 3);
		my $n = wait_for_lines($h, $hout, 3, 3);
		my $elapsed = time() - $t0;
		$h->signal('TERM');
		my $status = wait_for_exit($h, 10);
		pooled_psql($mode, '', '-c', 'UNLISTEN *') if !grep { $_ eq '--no-listen' } @args;
		my $dropped = substr(bouncer_log(), $before)
		  =~ /es_$mode\S* got packet 'A' from server when not linked/;
		my $ok = $n == 3 && defined $status && $status == 0 && $$herr eq '';
		return ($ok ? 'works' : 'fails',
			$n == 3
			? sprintf('3 events printed %.2f s after the append', $elapsed)
			: "$n of 3 events printed within 3 s"
			  . ($dropped ? "; PgBouncer: got packet 'A' from server when not linked" : ''),
			$dropped);
	},);

# What each cell is expected to do, and how it is called.
my @rows = (
	[ 'append', 'append (event_in[] and jsonb)', [qw(works works works)], 'append' ],
	[ 'reads', 'read_stream, read_all, head', [qw(works works works)], 'reads' ],
	[ 'cursor', 'open_feed cursor in a transaction', [qw(works works fails)], 'cursor' ],
	[ 'wait_for', 'wait_for', [qw(works works works)], 'wait_for' ],
	[ 'wait_for_head', 'CALL wait_for_head', [qw(works works works)], 'wait_for_head' ],
	[ 'prepared', 'named prepared statements', [qw(works fails fails)], 'prepared', 1 ],
	[ 'follow-nolisten', 'eventstore-follow --no-listen', [qw(works works works)], 'follow',
		0, '--no-listen' ],
	[ 'listen', 'LISTEN / NOTIFY', [qw(works fails fails)], 'listen', 1 ],
	[ 'follow-listen', 'eventstore-follow (listening)', [qw(works fails fails)], 'follow' ],
);

my %table;
for my $mode (@modes)
{
	my $i = 0;
	for my $row (@rows)
	{
		my ($key, $label, $expect, $fn, $needs_node, @args) = @$row;
		my $want = $expect->[ (grep { $modes[$_] eq $mode } 0 .. 2)[0] ];
		if ($needs_node && !defined $node_modules)
		{
			SKIP: { skip "$label: node-postgres is not available", 1 }
			$table{$key}{$mode} = 'not tested';
			next;
		}
		my ($got, $seen, $extra) = $cell{$fn}->($mode, @args);
		is($got, $want, "$mode mode: $label $want ($seen)");
		$table{$key}{$mode} = "$got: $seen";

		# The details of the failures, as they are described.
		if ($key eq 'cursor')
		{
			ok($extra, "$mode mode: the cursor's transaction sent as one query string works");
			like($seen, qr/transaction blocks not allowed in statement pooling mode/,
				'statement mode: PgBouncer refuses the BEGIN')
			  if $mode eq 'statement';
		}
		if ($key eq 'listen')
		{
			if ($mode ne 'session')
			{
				ok($extra->{dropped}, "$mode mode: $label: PgBouncer dropped the notification");
				ok($extra->{stray},
					"$mode mode: the server connection kept listening for the next client");
			}
			else
			{
				ok(!$extra->{stray},
					'session mode: the next client of the server connection does not listen');
			}
		}
		if ($key eq 'follow-listen' && $mode ne 'session')
		{
			ok($extra, "$mode mode: $label: PgBouncer dropped the notification");
		}
		if ($key eq 'prepared' && $mode ne 'session')
		{
			like($seen, qr/42P05 prepared statement "es_probe" already exists/,
				"$mode mode: the second client meets the first one's statement");
		}
	}
}

# --- The table ----------------------------------------------------------------------

note('');
note('| | ' . join(' | ', @modes) . ' |');
note('|---|' . join('|', map { '---' } @modes) . '|');
for my $row (@rows)
{
	my ($key, $label) = @$row;
	note("| $label | " . join(' | ', map { $table{$key}{$_} } @modes) . ' |');
}
note('');

ok($pool->stop, 'PgBouncer stopped on SIGTERM');

$node->stop;
done_testing();
