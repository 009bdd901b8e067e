# test/t/004_positions.pl
#	Positions are never reused and the head never goes backwards: across
#	DROP/CREATE EXTENSION and a crash, data-only restores into a store in
#	use, restores with a non-default partition count, and direct inserts.
#
# One preloaded cluster, one database per case.
#
# "recreate": the extension is dropped and created again in the same server
# run, appends follow, and the server crashes.  DROP EXTENSION drops the log,
# and the new log starts afresh from position 1 (whether or not the server
# restarts in between); within the new log positions are never reused and
# the head after recovery is not below the head before the crash.
#
# "b": a data-only dump of "a" (200 events) is restored into a store that
# already holds an event at a position a's dump holds too: the restore is
# refused (two events at one position) and leaves nothing behind; direct
# INSERTs of a stored position or of one out of range are refused too.
# "b2" (below) gets the same dump into a store in use whose positions do not
# collide with a's: every restored event arrives, once.
#
# "c" is created with eventstore.partitions = 4 and restored with pg_dump
# -Fc / pg_restore into "d" with the same setting: everything arrives, in 4
# partitions.  Restoring the same dump with the default of 8 partitions
# fails loudly, which is why the setting is needed.
#
# "direct": a superuser's INSERT into eventstore.events of positions above
# the head holds the head below them while its transaction is open, and
# after its commit new appends go above them.
#
# Finally, restarts after the allocator was moved other than by append: after
# a direct INSERT, after a data-only restore that set the sequence back, and
# after DROP/CREATE EXTENSION with no append in between.  The allocator
# starts above the sequence and above every stored position.

use strict;
use warnings;


use FindBin;
use lib $FindBin::RealBin;
use EsEnv;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('positions');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'eventstore'");
$node->start;

# Appends $n events to $stream in database $db, optionally in a transaction
# that rolls back; returns the positions handed out.
sub append_positions
{
	my ($db, $stream, $n, $rollback) = @_;
	my $select = qq{
		SELECT insert_order FROM eventstore.append('$stream',
			ARRAY(SELECT eventstore.event('Happened', jsonb_build_object('i', i))
					FROM generate_series(1, $n) AS i))};
	my $out =
	  $rollback
	  ? $node->safe_psql($db, "BEGIN; $select; ROLLBACK;")
	  : $node->safe_psql($db, $select);
	return split /\n/, $out;
}

sub max_of
{
	my $max = shift;
	for (@_) { $max = $_ if $_ > $max; }
	return $max;
}

# Everything of the log, as digests (see 002_dump_restore.pl).
my %digest = (
	%EsEnv::log_digest,
	position_blocks => q{
		SELECT last_value FROM eventstore.position_blocks},);

# --- 1. DROP EXTENSION, CREATE EXTENSION, then a crash ---------------------------------

$node->safe_psql('postgres', 'CREATE DATABASE recreate');
$node->safe_psql('recreate', 'CREATE EXTENSION eventstore');

# Positions handed out by the first log: committed ones and burnt ones.
my @handed_out;
push @handed_out, append_positions('recreate', "first-$_", 5) for 1 .. 4;
push @handed_out, append_positions('recreate', 'first-burnt', 3, 'rollback');
push @handed_out, append_positions('recreate', 'first-1', 2);
my $first_max = max_of(@handed_out);
my $head_before_drop = $node->safe_psql('recreate', 'SELECT eventstore.head()');
cmp_ok($head_before_drop, '>=', $first_max,
	"recreate: the first log handed out up to $first_max, head $head_before_drop");

# Drop and create in one session, which appends right away.
my ($in_session) = split /\n/, $node->safe_psql('recreate', q{
	DROP EXTENSION eventstore;
	CREATE EXTENSION eventstore;
	SELECT insert_order FROM eventstore.append('second-0',
		ARRAY[eventstore.event('Happened', '{}')]);
});
is($in_session, 1,
	'recreate: the new log starts afresh: the first append gets position 1');
is($node->safe_psql('recreate', 'SELECT count(*) FROM eventstore.events'),
	1, 'recreate: the dropped log is gone, the new log holds one event');

my @second;
push @second, $in_session;
push @second, append_positions('recreate', "second-$_", 4) for 1 .. 3;
push @second, append_positions('recreate', 'second-burnt', 2, 'rollback');
push @second, append_positions('recreate', 'second-1', 1);
my %seen_second;
is( scalar(grep { $seen_second{$_}++ } @second),
	0, 'recreate: the new log hands out no position twice, burnt ones included');

my $handed_max = max_of(@second);
my $head_before_crash = $node->safe_psql('recreate', 'SELECT eventstore.head()');
cmp_ok($head_before_crash, '>=',
	$node->safe_psql('recreate', 'SELECT max(insert_order) FROM eventstore.events'),
	'recreate: the head covers the new log');

$node->stop('immediate');
my $log_offset = -s $node->logfile;
$node->start;
ok( $node->log_contains(
		'database system was interrupted|was not properly shut down', $log_offset),
	'recreate: the server went through crash recovery');

my $head_after_crash = $node->safe_psql('recreate', 'SELECT eventstore.head()');
cmp_ok($head_after_crash, '>=', $head_before_crash,
	"recreate: after the crash the head ($head_after_crash) is not below "
	  . "the head before it ($head_before_crash)");

my @after = append_positions('recreate', 'after-crash', 3);
cmp_ok($after[0], '>', $handed_max,
	"recreate: a new append after the crash gets $after[0], above every position "
	  . "the new log handed out before ($handed_max)");
cmp_ok($after[0], '>', $head_before_crash,
	'recreate: ... and above the head before the crash');
my ($n_recreated, $distinct_recreated) = split /\|/, $node->safe_psql('recreate', q{
	SELECT count(*), count(DISTINCT insert_order) FROM eventstore.events});
is($distinct_recreated, $n_recreated, 'recreate: insert_order is unique');
cmp_ok($node->safe_psql('recreate', 'SELECT eventstore.head()'),
	'>=', $after[-1], 'recreate: the head passes the new append');

# --- 2. Data-only restore into a store in use ------------------------------------------

$node->safe_psql('postgres', 'CREATE DATABASE a');
$node->safe_psql('a', 'CREATE EXTENSION eventstore');
# 200 events: 10 rounds over 20 streams, so positions interleave across
# streams and partitions.
$node->safe_psql('a', q{
	SELECT count(*)
	  FROM generate_series(1, 10) AS round,
		   generate_series(1, 20) AS s,
		   LATERAL eventstore.append('a-' || s,
				ARRAY[eventstore.event('Happened',
									   jsonb_build_object('round', round, 's', s))])});
my ($a_count, $a_min, $a_max) = split /\|/, $node->safe_psql('a', q{
	SELECT count(*), min(insert_order), max(insert_order) FROM eventstore.events});
is($a_count, 200, 'a: 200 events');
my $a_events = $node->safe_psql('a', $digest{events});
my $a_streams = $node->safe_psql('a', $digest{streams});

my $data_dump = $node->basedir . '/a-data.dump';
$node->command_ok([ 'pg_dump', '--data-only', '-Fc', '-f', $data_dump, '-d', 'a' ],
	'a: pg_dump --data-only -Fc');

$node->safe_psql('postgres', 'CREATE DATABASE b');
$node->safe_psql('b', 'CREATE EXTENSION eventstore');
my ($b_own_pos, $b_own_id) = split /\|/, $node->safe_psql('b', q{
	SELECT insert_order, event_id FROM eventstore.append('b-own',
		ARRAY[eventstore.event('Own', '{}')])});
my $b_head_before = $node->safe_psql('b', 'SELECT eventstore.head()');
cmp_ok($b_head_before, '>=', $b_own_pos, "b: holds its own event at $b_own_pos");

# a's positions start at 1 like b's own event: restored, b would hold two
# events at one position, which readers could not tell apart.  The restore
# is refused, and in one transaction it leaves nothing behind.
$node->command_fails_like(
	[ 'pg_restore', '--data-only', '--single-transaction', '--exit-on-error',
	  '-d', 'b', $data_dump ],
	qr/insert_order $b_own_pos is stored twice/,
	"b: a restore that would store position $b_own_pos twice is refused");
is( $node->safe_psql('b', q{
		SELECT (SELECT count(*) FROM eventstore.events) || '|'
			|| (SELECT count(*) FROM eventstore.streams)}),
	'1|1',
	'b: ... and nothing of it is stored');
# (the positions the refused restore was given are not handed out again:
# the head may pass them, as it passes those of an aborted append)
cmp_ok($node->safe_psql('b', 'SELECT eventstore.head()'), '>=', $b_head_before,
	'b: ... the head did not go back');
is($node->safe_psql('b', "SELECT count(*) FROM eventstore.read_all($b_head_before, 1000000)"),
	0, "b: ... and a reader resuming from b's head before the restore finds nothing new");
my @b_new = append_positions('b', 'b-after-restore', 2);
cmp_ok($b_new[0], '>', $b_own_pos, "b: a new append gets $b_new[0], above b's own event");

# A direct INSERT of a position that is stored already is refused the same
# way, and so are positions out of range: at or below 0, and at the top
# where the allocator would wrap.
my ($rc, $out, $err) = $node->psql('b', qq{
	INSERT INTO eventstore.events VALUES ($b_own_pos, 1, now(), pg_current_xact_id(),
		eventstore.bucket_of('twin'), 1, gen_random_uuid(), 'twin',
		'Inserted', 'twin', '{}', NULL)});
like($err, qr/ERROR:  insert_order $b_own_pos is stored twice/,
	'b: a direct INSERT of a stored position is refused');
for my $bad ('0', '-5', '9223372036854775807')
{
	($rc, $out, $err) = $node->psql('b', qq{
		INSERT INTO eventstore.events VALUES ($bad, 1, now(), pg_current_xact_id(),
			eventstore.bucket_of('far'), 1, gen_random_uuid(), 'far',
			'Inserted', 'far', '{}', NULL)});
	like($err, qr/ERROR:  insert_order $bad is out of range/,
		"b: a direct INSERT of position $bad is refused");
}
my @b_last = append_positions('b', 'b-after-refusals', 1);
cmp_ok($b_last[0], '>', $b_new[1], "b: appends go on after the refusals ($b_last[0])");
is($node->safe_psql('b', q{
		SELECT count(*) FROM (SELECT insert_order FROM eventstore.events
							   GROUP BY insert_order HAVING count(*) > 1) d}),
	0, 'b: every insert_order is unique');

# --- 3. A non-default partition count through pg_dump -Fc --------------------------------

$node->safe_psql('postgres', 'CREATE DATABASE c');
$node->safe_psql('c', q{
	SET eventstore.partitions = 4;
	CREATE EXTENSION eventstore;
});
is( $node->safe_psql('c', q{
		SELECT count(*) FROM pg_inherits WHERE inhparent = 'eventstore.events'::regclass}),
	4, 'c: created with 4 partitions');
$node->safe_psql('c', q{
	SELECT count(*)
	  FROM generate_series(1, 3) AS round,
		   generate_series(1, 16) AS s,
		   LATERAL eventstore.append('c-' || s,
				ARRAY(SELECT eventstore.event('Happened',
						jsonb_build_object('round', round, 's', s, 'i', i))
						FROM generate_series(1, 1 + (s + round) % 3) AS i))});
is($node->safe_psql('c', 'SELECT count(DISTINCT tableoid) FROM eventstore.events'),
	4, 'c: events in all 4 partitions');

my %c_before;
$c_before{$_} = $node->safe_psql('c', $digest{$_}) for sort keys %digest;
my ($c_count, $c_max) = split /\|/,
  $node->safe_psql('c', 'SELECT count(*), max(insert_order) FROM eventstore.events');

my $c_dump = $node->basedir . '/c.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $c_dump, '-d', 'c' ], 'c: pg_dump -Fc');

$node->safe_psql('postgres', 'CREATE DATABASE d');
{
	local $ENV{PGOPTIONS} = '-c eventstore.partitions=4';
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'd', $c_dump ],
		'd: pg_restore with eventstore.partitions = 4');
}
is( $node->safe_psql('d', q{
		SELECT count(*) FROM pg_inherits WHERE inhparent = 'eventstore.events'::regclass}),
	4, 'd: has 4 partitions');
for my $aspect (sort keys %digest)
{
	is($node->safe_psql('d', $digest{$aspect}),
		$c_before{$aspect}, "d: restored $aspect equal c's");
}
is($node->safe_psql('d', 'SELECT count(*) FROM eventstore.read_all(0, 1000000)'),
	$c_count, "d: read_all(0) returns all $c_count events");
cmp_ok($node->safe_psql('d', 'SELECT eventstore.head()'),
	'>=', $c_max, 'd: the head covers every restored event');
my @d_new = append_positions('d', 'c-1', 1);
cmp_ok($d_new[0], '>', $c_max,
	"d: a new append gets $d_new[0], above the restored maximum $c_max");

# Without the setting the new database gets the default 8 partitions, and the
# dump's data for c's 4 partitions has nowhere to go.
$node->safe_psql('postgres', 'CREATE DATABASE d8');
$node->command_fails_like(
	[ 'pg_restore', '-d', 'd8', $c_dump ],
	qr/relation "eventstore\.events_0000_0255" does not exist/,
	'd8: pg_restore without eventstore.partitions = 4 fails, naming the missing partition');
is( $node->safe_psql('d8', q{
		SELECT (SELECT count(*) FROM pg_inherits
				 WHERE inhparent = 'eventstore.events'::regclass)
			   || '|' || (SELECT count(*) FROM eventstore.events)}),
	'8|0', 'd8: it has 8 partitions and no event');

# --- 4. A direct INSERT above the head ---------------------------------------------------

$node->safe_psql('postgres', 'CREATE DATABASE direct');
$node->safe_psql('direct', 'CREATE EXTENSION eventstore');
my @direct_before;
push @direct_before, append_positions('direct', "before-$_", 3) for 1 .. 2;
my $h0 = $node->safe_psql('direct', 'SELECT eventstore.head()');
cmp_ok($h0, '>=', max_of(@direct_before), "direct: head $h0 before the insert");

# One row through the parent, one straight into its partition; the second
# far above the block the allocator has reserved.
my ($low, $high) = ($h0 + 10, $h0 + 100_000);
my $bucket = $node->safe_psql('direct', q{SELECT eventstore.bucket_of('direct-1')});
my $part = sprintf('events_%04d_%04d', int($bucket / 128) * 128,
	int($bucket / 128) * 128 + 127);
my $row = sub {
	my ($pos, $order) = @_;
	return qq{($pos, $order, now(), pg_current_xact_id(), $bucket, 1,
		gen_random_uuid(), 'direct-1', 'Inserted', 'direct-1', '{}', NULL)};
};

my $inserter = $node->background_psql('direct');
my $inserter_pid = $inserter->query_safe('SELECT pg_backend_pid()');
$inserter->query_safe('BEGIN');
$inserter->query_safe(
	'INSERT INTO eventstore.events VALUES ' . $row->($low, 1));
$inserter->query_safe(
	"INSERT INTO eventstore.$part VALUES " . $row->($high, 2));
# The stream's row as a restore loads it, with COPY (an INSERT into streams
# is refused).
$inserter->query_safe(qq{
	COPY eventstore.streams FROM PROGRAM 'echo direct-1,direct-1,$bucket,2,now,now'
		WITH (FORMAT csv)});

is($node->safe_psql('direct', 'SELECT eventstore.head()'),
	$h0, "direct: while the INSERT is open, the head stays at $h0");
is( $node->safe_psql('direct', qq{
		SELECT min(pid) || '|' || min(lowest_position) FROM eventstore.appenders}),
	$inserter_pid . '|' . ($h0 + 1),
	'direct: the inserting transaction shows as the appender holding the head');

# An append meanwhile goes above the inserted positions, and is held too.
my @meanwhile = append_positions('direct', 'meanwhile', 2);
cmp_ok($meanwhile[0], '>', $high,
	"direct: an append while the INSERT is open gets $meanwhile[0], above $high");
is($node->safe_psql('direct', 'SELECT eventstore.head()'),
	$h0, "direct: the head is still held at $h0 after that append committed");
is($node->safe_psql('direct', "SELECT count(*) FROM eventstore.read_all($h0, 1000)"),
	0, 'direct: read_all from the head returns nothing while the INSERT is open');

$inserter->query_safe('COMMIT');
$inserter->quit;

my $h1 = $node->safe_psql('direct', 'SELECT eventstore.head()');
cmp_ok($h1, '>=', $meanwhile[-1],
	"direct: after the commit the head ($h1) passes the inserted rows and the append");
is( $node->safe_psql('direct', qq{
		SELECT string_agg(insert_order::text, ',' ORDER BY o)
		  FROM eventstore.read_all($h0, 1000) WITH ORDINALITY
			   AS r(insert_order, stream_id, stream_order, event_id, event_type,
					schema_version, data, metadata, recorded_at, partition_key, o)}),
	join(',', $low, $high, @meanwhile),
	'direct: a reader resuming from the old head gets the inserted rows and the append, in order');
my @direct_after = append_positions('direct', 'after', 1);
cmp_ok($direct_after[0], '>',
	$node->safe_psql('direct',
		"SELECT max(insert_order) FROM eventstore.events WHERE stream_id <> 'after'"),
	"direct: after the commit a new append gets $direct_after[0], above every stored position");
is( $node->safe_psql('direct',
		'SELECT count(*) - count(DISTINCT insert_order) FROM eventstore.events'),
	0, 'direct: insert_order is unique');

# --- 5. Positions kept only in memory, lost by a restart (known failures) ------------------

# Each case moves the allocator above stored positions in shared memory
# only; the sequence eventstore.position_blocks stays behind until the next
# block is reserved, so after a restart the highest stored position counts.
#
# "direct2": a direct INSERT above the reserved block, with no append before
# the restart (a crash does the same).  "b2": a data-only restore of a's
# dump into a store whose sequence is ahead of a's: the restore's SEQUENCE
# SET moves b2's sequence back below b2's own positions.
$node->safe_psql('postgres', 'CREATE DATABASE direct2');
$node->safe_psql('direct2', 'CREATE EXTENSION eventstore');
append_positions('direct2', 'before', 1);
my $far = 1_000_000;
$node->safe_psql('direct2', qq{
	INSERT INTO eventstore.events VALUES ($far, 1, now(), pg_current_xact_id(),
		eventstore.bucket_of('direct-far'), 1, gen_random_uuid(), 'direct-far',
		'Inserted', 'direct-far', '{}', NULL)});
my $d2_head = $node->safe_psql('direct2', 'SELECT eventstore.head()');
cmp_ok($d2_head, '>=', $far, "direct2: the head covers the inserted $far");

$node->safe_psql('postgres', 'CREATE DATABASE b2');
$node->safe_psql('b2', 'CREATE EXTENSION eventstore');
# a rolled-back append reserves b2's first block without keeping a
# position a's restore would collide with
append_positions('b2', 'b2-own', 1, 1);
$node->restart;
# the first append after a restart reserves a new block: b2's sequence is
# now ahead of a's
my ($b2_pos) = append_positions('b2', 'b2-own', 1);
cmp_ok($b2_pos, '>', $a_max, "b2: holds a position ($b2_pos) above a's");
$node->command_ok([ 'pg_restore', '--data-only', '--exit-on-error', '-d', 'b2', $data_dump ],
	'b2: pg_restore --data-only of a');
my $b2_head = $node->safe_psql('b2', 'SELECT eventstore.head()');
my $b2_max = $node->safe_psql('b2', 'SELECT max(insert_order) FROM eventstore.events');
cmp_ok($b2_head, '>=', $b2_max, "b2: the head ($b2_head) covers every event");
is($node->safe_psql('b2', "$digest{events} WHERE stream_id LIKE 'a-%'"),
	$a_events, "b2: every restored event arrived, equal to a's");
is($node->safe_psql('b2', "$digest{streams} WHERE stream_id LIKE 'a-%'"),
	$a_streams, "b2: every restored stream arrived, equal to a's");
$node->safe_psql('b2', q{
	CREATE TABLE feed AS
		SELECT insert_order, event_id FROM eventstore.read_all(0, 1000000)});
is($node->safe_psql('b2', $EsEnv::feed_difference),
	0, 'b2: read_all(0) returns every event of b2 exactly once');

# "recreate2": DROP and CREATE EXTENSION with no append before the restart:
# the new, empty log's head is 0 before and after the restart.
$node->safe_psql('postgres', 'CREATE DATABASE recreate2');
$node->safe_psql('recreate2', 'CREATE EXTENSION eventstore');
append_positions('recreate2', 'first', 5);
$node->safe_psql('recreate2', 'DROP EXTENSION eventstore; CREATE EXTENSION eventstore;');
my $r2_head = $node->safe_psql('recreate2', 'SELECT eventstore.head()');
is($r2_head, 0, 'recreate2: after DROP/CREATE the new log is empty, its head 0');

$node->restart;

{
	cmp_ok($node->safe_psql('direct2', 'SELECT eventstore.head()'),
		'>=', $d2_head, 'direct2: after a restart the head is not below the head before it');
	my ($d2_new) = append_positions('direct2', 'after', 1);
	cmp_ok($d2_new, '>', $far,
		"direct2: after a restart a new append gets $d2_new, above the inserted $far");

	cmp_ok($node->safe_psql('b2', 'SELECT eventstore.head()'),
		'>=', $b2_head, 'b2: after a restart the head is not below the head before it');
	my ($b2_new) = append_positions('b2', 'b2-after', 1);
	cmp_ok($b2_new, '>', $b2_max,
		"b2: after a restart a new append gets $b2_new, above every stored position ($b2_max)");
	is( $node->safe_psql('b2', qq{
			SELECT count(*) FROM eventstore.events
			 WHERE insert_order = $b2_new AND stream_id <> 'b2-after'}),
		0,
		'b2: ... a position no stored event has');

	is($node->safe_psql('recreate2', 'SELECT eventstore.head()'),
		0, q{recreate2: after a restart the empty log's head is still 0});
	my ($r2_new) = append_positions('recreate2', 'after', 1);
	is($r2_new, 1, 'recreate2: its first append gets position 1');
	cmp_ok($node->safe_psql('recreate2', 'SELECT eventstore.head()'),
		'>=', $r2_new, 'recreate2: ... and the head passes it');
}

$node->stop;

done_testing();
