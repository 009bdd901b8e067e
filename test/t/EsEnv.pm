# test/t/EsEnv.pm
#	Lets the TAP tests run under plain prove as well as under test/all.sh:
#	puts the server binaries on PATH and finds pg_regress (which
#	PostgreSQL::Test::Cluster::init calls) from pg_config.  Load it before
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

1;
