# test/t/EsEnv.pm
#	Lets the TAP tests run under plain prove as well as under test/all.sh:
#	puts the server binaries on PATH and finds pg_regress (which
#	PostgreSQL::Test::Cluster::init calls) from pg_config.  It also holds the
#	queries several tests check the log with.  Load it before
#	PostgreSQL::Test::Cluster:
#
#		use FindBin;
#		use lib $FindBin::RealBin;
#		use EsEnv;

package EsEnv;

use strict;
use warnings;

use File::Basename qw(dirname);

my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my $bindir = `$pg_config --bindir`;
my $pgxs = `$pg_config --pgxs`;
chomp($bindir, $pgxs);
$ENV{PATH} = "$bindir:$ENV{PATH}" if $bindir;
$ENV{PG_REGRESS} //= dirname($pgxs) . '/../test/regress/pg_regress'
  if $pgxs;

# Everything of the log that must survive a dump or a crash, as one md5
# digest per aspect: %EsEnv::log_digest{events, placement, streams}.
our %log_digest = (
	events => q{
		SELECT md5(string_agg(e::text, E'\n' ORDER BY insert_order))
		  FROM eventstore.events e},
	placement => q{
		SELECT md5(string_agg(format('%s %s %s', tableoid::regclass, bucket, insert_order),
							  E'\n' ORDER BY insert_order))
		  FROM eventstore.events},
	streams => q{
		SELECT md5(string_agg(s::text, E'\n' ORDER BY stream_id))
		  FROM eventstore.streams s},);

# How many (insert_order, event_id) pairs differ between the stored events
# and a table "feed" of what read_all returned: 0 when the feed holds every
# stored event exactly once and nothing else.
our $feed_difference = q{
	SELECT count(*) FROM (
		(SELECT insert_order, event_id FROM eventstore.events
		 EXCEPT ALL SELECT insert_order, event_id FROM feed)
		UNION ALL
		(SELECT insert_order, event_id FROM feed
		 EXCEPT ALL SELECT insert_order, event_id FROM eventstore.events)) d};

1;
