# test/t/011_clients.pl
#	The client examples of test/clients, for node-postgres and for psycopg2,
#	run for real against a server, each language in a database of its own.
#
#	append_retry: while the example waits between loading the stream and
#	appending, another session deposits into the same account; the
#	example's append meets the conflict (ES001 raised, or try_append's
#	outcome 'conflict'), loads again and appends on top: one conflict and
#	one retry per deposit, in either mode.  Then two runs of the example,
#	one in each mode, deposit into one account at once.  Each account then
#	holds every deposit exactly once with the ids the writers printed,
#	versions 1..n without a gap, and every balance is the previous one plus
#	its amount: no update was lost.
#
#	newsfeed: it prints the history up to the head, then, woken only by
#	notifications (its own poll interval is ten minutes), every event
#	appended while it runs, among them appends that committed while an
#	older one was still open; nothing while that one holds the head back,
#	then all of them.  What it printed is exactly the stored events in
#	insert_order, none twice; --max-events bounds a run (connecting to
#	$DATABASE_URL).
#
#	group_member: two members share the partitions of a consumer group
#	(four each, disjoint), process the backlog and new appends between them,
#	each member some of them; on SIGTERM a member leaves at once and the other
#	takes over every partition and processes the rest.  Every stored event is
#	handled exactly once, each stream's events in stream order, and each
#	member's output is what it wrote.
#
# node-postgres is installed with npm ci from the committed lockfile into a
# temporary directory.  A language whose runtime is absent (node, or Debian's
# /usr/bin/python3 with python3-psycopg2) is skipped; test/lib.sh installs
# both.

use strict;
use warnings;

use Time::HiRes qw(usleep time);

use FindBin;
use lib $FindBin::RealBin;
use EsEnv;
use EsClients;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node_js = find_program('node');
my $have_python = python_with_psycopg2();
plan skip_all => 'neither node nor /usr/bin/python3 with psycopg2 is installed'
  if !defined $node_js && !$have_python;

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

my $node = PostgreSQL::Test::Cluster->new('clients');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eventstore'
});
$node->start;

# --- The languages ---------------------------------------------------------------

my @languages;
if (defined $node_js)
{
	my ($dir, $why) = install_node_examples(PostgreSQL::Test::Utils::tempdir());
	if (!ok(defined $dir, 'node-postgres installed from the lockfile with npm ci'))
	{
		diag($why);
	}
	else
	{
		push @languages, {
			name => 'node',
			cmd => sub { my $ex = shift; return ($node_js, "$dir/$ex.js", @_) },
		};
	}
}
else
{
	SKIP: { skip 'node is not installed', 1 }
}
if ($have_python)
{
	push @languages, {
		name => 'python',
		cmd => sub {
			my $ex = shift;
			return ($EsClients::python, "$EsClients::clients/python/$ex.py", @_);
		},
	};
}
else
{
	SKIP: { skip '/usr/bin/python3 with psycopg2 is not installed', 1 }
}

# --- Helpers -------------------------------------------------------------------------

sub append_sql
{
	my ($stream, $n) = @_;
	return qq{SELECT count(*) FROM eventstore.append('$stream',
		ARRAY(SELECT eventstore.event('Happened', jsonb_build_object('n', g))
				FROM generate_series(1, $n) g));
};
}

# Every stored event as the newsfeed prints it, in insert_order.
sub stored_lines
{
	my ($db) = @_;
	my $lines = $node->safe_psql($db, q{
		SELECT string_agg(format('event %s %s %s %s', insert_order, stream_id,
								 stream_order, event_id), E'\n' ORDER BY insert_order)
		  FROM eventstore.events});
	return [ grep { $_ ne '' } split /\n/, $lines ];
}

sub lines_matching
{
	my ($text, $re) = @_;
	return [ grep { /$re/ } split /\n/, $text ];
}

sub count_matching
{
	my ($text, $re) = @_;
	return scalar @{ lines_matching($text, $re) };
}

# --- append_retry ------------------------------------------------------------------

# What a writer that deposits 100 into $stream at its current version sends.
sub intrusion_sql
{
	my ($stream) = @_;
	return qq{
		SELECT count(*) FROM eventstore.append('$stream',
			jsonb_build_array(jsonb_build_object('type', 'Deposited', 'data',
				jsonb_build_object('amount', 100, 'writer', 'intruder', 'balance', 100 +
					coalesce((SELECT (data->>'balance')::int
								FROM eventstore.read_stream('$stream', backwards => true,
															 max_count => 1)), 0)))),
			eventstore.stream_version('$stream'))};
}

# Run the example on $stream with a pause between load and append; during
# the pause after each deposit's first load, another session deposits into
# the same stream.  Returns the ids the example printed.
sub race
{
	my ($lang, $db, $stream, $mode, $count) = @_;
	my $what = "$lang->{name}: append_retry ($mode)";
	my $intruder = $node->background_psql($db);
	my ($h, $out, $err) = start_example($lang->{cmd}->('append_retry',
		$mode eq 'try' ? ('--try') : (),
		'--count', $count, '--pause-ms', 300, '--writer', $mode,
		$stream, example_uri($node, $db)));
	my ($seen, $intrusions) = (0, 0);
	while (wait_for_output($h, $out, sub { count_matching($_[0], qr/^loaded /) > $seen }))
	{
		my @lines = split /\n/, $$out;
		my @loads = grep { $lines[$_] =~ /^loaded / } 0 .. $#lines;
		$seen = @loads;
		# the first load of a deposit (not a reload after a conflict)
		next if $loads[-1] > 0 && $lines[ $loads[-1] - 1 ] =~ /^loaded /;
		$intruder->query_safe(intrusion_sql($stream));
		$intrusions++;
	}
	$intruder->quit;
	is(stop_example($h, undef, $timeout), 0, "$what on $stream: exit status 0");
	is($$err, '', "$what: nothing on stderr");
	is($intrusions, $count, "$what: another writer deposited during each deposit");
	my $appended = lines_matching($$out, qr/^appended /);
	is(scalar @$appended, $count, "$what: $count deposits");
	is(count_matching($$out, qr/^appended .* conflicts=1$/), $count,
		"$what: each met one conflict and was retried once")
	  or diag($$out);
	like($$out, qr/^done appended=$count duplicates=0 conflicts=$count$/m,
		"$what: the summary counts $count conflicts");
	return [ map { /event_id=(\S+)/ ? $1 : () } @$appended ];
}

# The stream holds $want events, versions without a gap, each balance the
# previous one plus its amount, each id once, among them @$ids.
sub check_chain
{
	my ($lang, $db, $stream, $ids, $want) = @_;
	my @rows = map { [ split /\|/ ] } split /\n/, $node->safe_psql($db, qq{
		SELECT stream_order, event_id, data->>'amount', data->>'balance'
		  FROM eventstore.read_stream('$stream')});
	is(scalar @rows, $want, "$lang->{name}: $stream holds $want events");
	my ($gaps, $lost, $balance) = (0, 0, 0);
	for my $i (0 .. $#rows)
	{
		my ($order, $id, $amount, $b) = @{ $rows[$i] };
		$gaps++ if $order != $i + 1;
		$lost++ if $b != $balance + $amount;
		$balance = $b;
	}
	is($gaps, 0, "$lang->{name}: $stream: versions 1..$want, no gap");
	is($lost, 0, "$lang->{name}: $stream: every balance is the previous one plus its amount");
	my %stored = map { $_->[1] => 1 } @rows;
	is(scalar(keys %stored), scalar @rows, "$lang->{name}: $stream: no event id twice");
	is(scalar(grep { $stored{$_} } @$ids), scalar @$ids,
		"$lang->{name}: $stream: every id the example printed is stored");
	return;
}

sub test_append_retry
{
	my ($lang, $db) = @_;
	for my $mode ('raise', 'try')
	{
		my $ids = race($lang, $db, "account-$mode", $mode, 3);
		check_chain($lang, $db, "account-$mode", $ids, 6);
	}

	# Two runs of the example at once, one in each mode, on one stream.
	my @runs = map {
		[ start_example($lang->{cmd}->('append_retry',
			$_ eq 'try' ? ('--try') : (), '--count', 10, '--pause-ms', 20,
			'--writer', $_, 'account-both', example_uri($node, $db))) ]
	} ('raise', 'try');
	my @ids;
	for my $run (@runs)
	{
		my ($h, $out, $err) = @$run;
		is(stop_example($h, undef, $timeout), 0,
			"$lang->{name}: append_retry, two at once: exit status 0")
		  or diag($$err);
		like($$out, qr/^done appended=10 duplicates=0 conflicts=\d+$/m,
			"$lang->{name}: append_retry, two at once: ten deposits each");
		my ($c) = $$out =~ /conflicts=(\d+)$/;
		note("$lang->{name}: append_retry, two at once: $c conflicts");
		push @ids, map { /event_id=(\S+)/ ? $1 : () } @{ lines_matching($$out, qr/^appended /) };
	}
	check_chain($lang, $db, 'account-both', \@ids, 20);
	return;
}

# --- newsfeed ------------------------------------------------------------------------

sub test_newsfeed
{
	my ($lang, $db) = @_;
	my $uri = example_uri($node, $db);
	$node->safe_psql($db, join('', map { append_sql("history-$_", 5) } 1 .. 3));

	my ($h, $out, $err) = start_example($lang->{cmd}->('newsfeed',
		'--page', 4, '--poll-ms', 600000, '--timeout-s', 120, $uri));
	ok(wait_for_output($h, $out, qr/^caught-up /m),
		"$lang->{name}: newsfeed caught up with the history");
	is_deeply(lines_matching($$out, qr/^event /), stored_lines($db),
		"$lang->{name}: newsfeed: the history is every stored event, in order");

	# An append left open holds the head back; appends that commit after it
	# are not printed until it commits.
	my $open = $node->background_psql($db);
	$open->query_safe('BEGIN');
	$open->query_safe(append_sql('live-open', 1));
	$node->safe_psql($db, join('', map { append_sql("live-$_", 2) } 1 .. 5));
	my $before = count_matching($$out, qr/^event /);
	pump_for($h, 1);
	is(count_matching($$out, qr/^event /), $before,
		"$lang->{name}: newsfeed: nothing above an open append");
	$open->query_safe('COMMIT');
	$open->quit;
	for my $i (1 .. 5)
	{
		$node->safe_psql($db, append_sql("live-late-$i", $i));
		usleep(50_000);
	}

	my $want = stored_lines($db);
	my $n = scalar @$want;
	ok(wait_for_output($h, $out, sub { count_matching($_[0], qr/^event /) >= $n }),
		"$lang->{name}: newsfeed: the live appends arrived, woken by notifications");
	pump_for($h, 0.5);
	is(stop_example($h, 'TERM'), 0, "$lang->{name}: newsfeed: SIGTERM, exit status 0");
	is($$err, '', "$lang->{name}: newsfeed: nothing on stderr");
	is_deeply(lines_matching($$out, qr/^event /), $want,
		"$lang->{name}: newsfeed: every stored event once, in insert_order");
	my ($last) = $want->[-1] =~ /^event (\d+) /;
	like($$out, qr/^stopped $last events=$n\n\z/m,
		"$lang->{name}: newsfeed: stopped at the last position");

	# The connection from DATABASE_URL this time.
	local $ENV{DATABASE_URL} = $uri;
	my ($rc, $o, $e) = run_example($lang->{cmd}->('newsfeed', '--max-events', 5));
	is($rc, 0, "$lang->{name}: newsfeed --max-events 5 on \$DATABASE_URL: exit status 0");
	my @first = @$want[ 0 .. 4 ];
	is_deeply(lines_matching($o, qr/^event /), \@first,
		"$lang->{name}: newsfeed --max-events 5: the first five events");
	return;
}

# --- group_member -------------------------------------------------------------------

# The partitions a member said it holds last, as a list.
sub held
{
	my ($out) = @_;
	my ($last) = $$out =~ /.*^partitions (\S+)$/ms;
	return [] if !defined $last || $last eq 'none';
	return [ split /,/, $last ];
}

# Pump the members until $cond is true or the time is up.
sub pump_members_until
{
	my ($members, $cond, $seconds) = @_;
	my $deadline = time() + ($seconds // $timeout);
	while (time() < $deadline)
	{
		for my $m (@$members)
		{
			$m->{h}->pump_nb if $m->{h}->pumpable;
		}
		return 1 if $cond->();
		usleep(50_000);
	}
	return 0;
}

sub all_handled
{
	my ($db) = @_;
	return $node->safe_psql($db, q{
		SELECT (SELECT count(*) FROM eventstore.events)
			 = (SELECT count(*) FROM handled_events)});
}

sub test_group
{
	my ($lang, $db) = @_;
	my $uri = example_uri($node, $db);
	my $sub = "$lang->{name}-group";
	$node->safe_psql($db, qq{
		CREATE TABLE handled_events (seq bigserial PRIMARY KEY,
			member text, insert_order bigint, stream_id text,
			stream_order bigint, event_id uuid);
		SELECT eventstore.create_subscription('$sub', consumer_group => true);});

	my @members;
	for my $name ('m1', 'm2')
	{
		my ($h, $out, $err) = start_example($lang->{cmd}->('group_member',
			'--lease-s', 3, '--wait-s', 0.5, '--batch', 10, '--timeout-s', 120,
			$sub, $name, $uri));
		push @members, { name => $name, h => $h, out => $out, err => $err };
	}
	my ($m1, $m2) = @members;
	ok( pump_members_until(\@members, sub {
			my @a = @{ held($m1->{out}) };
			my @b = @{ held($m2->{out}) };
			my %u = map { $_ => 1 } @a, @b;
			return @a == 4 && @b == 4 && keys(%u) == 8;
		}),
		"$lang->{name}: two members hold four partitions each, together all eight");
	ok(pump_members_until(\@members, sub { all_handled($db) eq 't' }),
		"$lang->{name}: the members processed the backlog");

	my $mark = $node->safe_psql($db, 'SELECT eventstore.head()');
	$node->safe_psql($db, join('', map { append_sql("group-a-$_", 3) } 1 .. 40));
	ok(pump_members_until(\@members, sub { all_handled($db) eq 't' }),
		"$lang->{name}: the members processed 120 new events");
	for my $m (@members)
	{
		cmp_ok($node->safe_psql($db, qq{
				SELECT count(*) FROM handled_events
				 WHERE member = '$m->{name}' AND insert_order > $mark}),
			'>', 0, "$lang->{name}: $m->{name} processed some of them");
	}

	is(stop_example($m1->{h}, 'TERM'), 0, "$lang->{name}: m1: SIGTERM, exit status 0");
	like(${ $m1->{out} }, qr/^left true processed=\d+\n\z/m,
		"$lang->{name}: m1 left the group");
	ok(pump_members_until([$m2], sub { @{ held($m2->{out}) } == 8 }),
		"$lang->{name}: m2 took over every partition");
	$mark = $node->safe_psql($db, 'SELECT eventstore.head()');
	$node->safe_psql($db, join('', map { append_sql("group-b-$_", 2) } 1 .. 20));
	ok(pump_members_until([$m2], sub { all_handled($db) eq 't' }),
		"$lang->{name}: m2 processed 40 more events");
	is(stop_example($m2->{h}, 'TERM'), 0, "$lang->{name}: m2: SIGTERM, exit status 0");
	like(${ $m2->{out} }, qr/^left true processed=\d+\n\z/m,
		"$lang->{name}: m2 left the group");
	for my $m (@members)
	{
		is(${ $m->{err} }, '', "$lang->{name}: $m->{name}: nothing on stderr");
	}

	is($node->safe_psql($db, q{
			SELECT count(*) FROM (
				(SELECT insert_order, event_id FROM eventstore.events
				 EXCEPT ALL SELECT insert_order, event_id FROM handled_events)
				UNION ALL
				(SELECT insert_order, event_id FROM handled_events
				 EXCEPT ALL SELECT insert_order, event_id FROM eventstore.events)) d}),
		0, "$lang->{name}: every stored event was handled exactly once");
	is($node->safe_psql($db, q{
			SELECT count(*) FROM (
				SELECT stream_order < lag(stream_order) OVER w AS back
				  FROM handled_events WINDOW w AS (PARTITION BY stream_id ORDER BY seq)) x
			 WHERE back}),
		0, "$lang->{name}: each stream's events were handled in stream order");
	is($node->safe_psql($db, qq{
			SELECT count(*) FROM handled_events
			 WHERE member = 'm1' AND insert_order > $mark}),
		0, "$lang->{name}: after m1 left, m2 handled everything");
	for my $m (@members)
	{
		my $printed = join("\n", sort map { s/^processed //r }
			  @{ lines_matching(${ $m->{out} }, qr/^processed /) });
		my $stored = $node->safe_psql($db, qq{
			SELECT string_agg(format('%s %s %s', insert_order, stream_id, stream_order),
							  E'\n' ORDER BY format('%s %s %s', insert_order, stream_id,
												   stream_order) COLLATE "C")
			  FROM handled_events WHERE member = '$m->{name}'});
		is($printed, $stored, "$lang->{name}: $m->{name} printed what it handled");
	}
	is($node->safe_psql($db, qq{
			SELECT count(*) FROM eventstore.subscription_members m
			  JOIN eventstore.subscriptions s ON s.consumer_group AND s.name = '$sub'}),
		0, "$lang->{name}: no member is left in the group");
	return;
}

# --- Each language --------------------------------------------------------------------

for my $lang (@languages)
{
	my $db = "$lang->{name}_examples";
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION eventstore');
	test_append_retry($lang, $db);
	test_newsfeed($lang, $db);
	test_group($lang, $db);
}

$node->stop;
done_testing();
