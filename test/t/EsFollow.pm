# test/t/EsFollow.pm
#	What the tests of eventstore-follow share: running the follower (to its
#	end, or in the background and pumped), decoding its JSON lines, and the
#	stored events it must print, read from eventstore.events independently
#	of read_all.  The follower is the one `make install` put into
#	PostgreSQL's bindir ($EsFollow::follow).  Load EsEnv first:
#
#		use FindBin;
#		use lib $FindBin::RealBin;
#		use EsEnv;
#		use EsFollow;

package EsFollow;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(usleep time);

use PostgreSQL::Test::Utils;

our @EXPORT = qw(run_follow start_follow count_lines wait_for_lines settle
  wait_for_exit parse_output stored_events append_events positions
  strictly_increasing);

my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $bindir = `$pg_config --bindir`;
chomp $bindir;
our $follow = "$bindir/eventstore-follow";

my $json = JSON::PP->new->utf8;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# Run the follower to its end: (exit code, stdout, stderr).
sub run_follow
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $follow, @args ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($timeout));
	return ($? >> 8, $out, $err);
}

# Start the follower in the background: (harness, \stdout, \stderr).
sub start_follow
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ $follow, @args ],
		'<', \undef, '>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

sub count_lines
{
	my ($text) = @_;
	my $n = () = $text =~ /\n/g;
	return $n;
}

# Pump a running follower until its stdout holds at least $want lines, or
# $seconds pass, or it exits.  Returns the number of lines.
sub wait_for_lines
{
	my ($h, $out, $want, $seconds) = @_;
	my $deadline = time() + ($seconds // $timeout);
	while (1)
	{
		$h->pump_nb if $h->pumpable;
		my $n = count_lines($$out);
		return $n if $n >= $want || time() > $deadline || !$h->pumpable;
		usleep(20_000);
	}
}

# Pump for a while, whatever comes; returns the number of lines.
sub settle
{
	my ($h, $out, $seconds) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline && $h->pumpable)
	{
		$h->pump_nb;
		usleep(20_000);
	}
	return count_lines($$out);
}

# Wait for the follower to exit: its raw wait status, or undef if it did
# not exit within $seconds (then it is killed).
sub wait_for_exit
{
	my ($h, $seconds) = @_;
	my $deadline = time() + $seconds;
	while ($h->pumpable && time() < $deadline)
	{
		$h->pump_nb;
		usleep(20_000);
	}
	if ($h->pumpable)
	{
		$h->kill_kill;
		return undef;
	}
	$h->finish;
	return $h->full_result(0);
}

# Decode the follower's stdout: every line must be one JSON object and the
# output must end with a newline.  Returns (\@events, $bad_lines).
sub parse_output
{
	my ($text) = @_;
	my @events;
	my $bad = 0;
	$bad++ if $text ne '' && substr($text, -1) ne "\n";
	for my $line (split /\n/, $text)
	{
		my $e = eval { $json->decode($line) };
		if (ref($e) eq 'HASH')
		{
			push @events, $e;
		}
		else
		{
			$bad++;
			Test::More::diag("not a JSON object: $line");
		}
	}
	return (\@events, $bad);
}

# Every event stored on $node after a position (and up to one, if given),
# straight from eventstore.events, in the follower's format.
sub stored_events
{
	my ($node, $after, $up_to) = @_;
	$after //= 0;
	my $upper = defined $up_to ? "AND insert_order <= $up_to" : '';
	return $json->decode(
		$node->safe_psql('postgres', qq{
		SELECT coalesce(json_agg(json_build_object(
				'position', insert_order, 'stream_id', stream_id,
				'stream_order', stream_order, 'event_id', event_id,
				'event_type', event_type, 'schema_version', schema_version,
				'partition_key', partition_key, 'recorded_at', recorded_at,
				'data', data, 'metadata', metadata) ORDER BY insert_order), '[]')
		  FROM eventstore.events WHERE insert_order > $after $upper}));
}

# Append $n events on $node to each of the streams "$prefix-0" ..
# "$prefix-($streams-1)", one append per stream, with text that needs
# escaping in JSON.
sub append_events
{
	my ($node, $prefix, $streams, $n) = @_;
	for my $s (0 .. $streams - 1)
	{
		$node->safe_psql('postgres', qq{
			SELECT count(*) FROM eventstore.append(
				'$prefix-$s',
				ARRAY(SELECT eventstore.event(
						'Happened',
						jsonb_build_object('n', g, 'stream', $s,
							'text', E'quote " backslash \\\\ newline \\n tab \\t ü € \\u0001'),
						CASE WHEN g % 3 = 0 THEN jsonb_build_object('by', 'follow-test') END,
						schema_version => 1 + g % 2)
					  FROM generate_series(1, $n) g),
				partition_key => CASE WHEN $s % 2 = 0 THEN 'key "$s"' END)});
	}
	return;
}

# The positions of a list of events, and whether they strictly increase.
sub positions
{
	my ($events) = @_;
	return [ map { $_->{position} } @$events ];
}

sub strictly_increasing
{
	my ($list) = @_;
	for my $i (1 .. $#$list)
	{
		return 0 if $list->[$i] <= $list->[ $i - 1 ];
	}
	return 1;
}

1;
