# test/t/EsPooler.pm
#	One PgBouncer for a TAP test, in front of one node: started as the user
#	the tests run as, on a free port of 127.0.0.1, with its socket,
#	configuration and log in the test's temporary directories and trust
#	authentication, serving one database alias per pooling mode asked for,
#	es_session, es_transaction, es_statement, each a pool of one server
#	connection, so that consecutive clients are certain to share it.
#
#		use EsPooler;
#		my $pgbouncer = EsPooler::binary() // plan skip_all => ...;
#		my $pool = EsPooler->start($pgbouncer, $node, qw(session transaction));
#		$pool->ready or ...;          # accepts connections (it waited)
#		psql -d $pool->via('transaction') ...
#		$pool->log; $pool->stop;      # stop: SIGTERM, true once it exited
#
#	A PgBouncer still running when the test ends is killed.

package EsPooler;

use strict;
use warnings;

use IPC::Run;
use Time::HiRes qw(usleep time);

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

my @started;

END
{
	local $?;
	for my $pool (@started)
	{
		$pool->{handle}->kill_kill if $pool->{handle} && $pool->{handle}->pumpable;
	}
}

# The pgbouncer binary (Debian's package installs it in /usr/sbin), or undef.
sub binary
{
	my ($found) = grep { -x $_ }
	  map { "$_/pgbouncer" } split(/:/, $ENV{PATH}), '/usr/sbin', '/usr/local/sbin';
	return $found;
}

# Start it and wait, up to the default timeout, until the first mode's alias
# accepts a connection.
sub start
{
	my ($class, $binary, $node, @modes) = @_;
	my $self = bless {
		dir => PostgreSQL::Test::Utils::tempdir(),
		port => PostgreSQL::Test::Cluster::get_free_port(),
		user => scalar getpwuid($<),
	}, $class;
	my $dir = $self->{dir};
	my $server = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
	my $socket_dir = PostgreSQL::Test::Utils::tempdir_short();

	PostgreSQL::Test::Utils::append_to_file("$dir/users.txt", qq{"$self->{user}" ""\n});
	PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", join('',
		"[databases]\n",
		(map { "es_$_ = $server pool_mode=$_ pool_size=1\n" } @modes),
		qq{
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $self->{port}
unix_socket_dir = $socket_dir
auth_type = trust
auth_file = $dir/users.txt
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
max_client_conn = 20
server_login_retry = 1
}));
	$self->{handle} = IPC::Run::start([ $binary, '-q', "$dir/pgbouncer.ini" ],
		'<', '/dev/null', '>', "$dir/pgbouncer.out", '2>&1');
	push @started, $self;

	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	$self->{ready} = 0;
	while (!$self->{ready} && time() < $deadline && $self->{handle}->pumpable)
	{
		my ($o, $e);
		$self->{ready} = IPC::Run::run(
			[ 'psql', '-X', '-qAt', '-d', $self->via($modes[0]), '-c', 'SELECT 1' ],
			'<', \undef, '>', \$o, '2>', \$e);
		usleep(100_000) if !$self->{ready};
	}
	return $self;
}

sub ready { return $_[0]{ready} }
sub port { return $_[0]{port} }
sub user { return $_[0]{user} }

# A connection string to the alias of a pooling mode.
sub via
{
	my ($self, $mode) = @_;
	return "host=127.0.0.1 port=$self->{port} dbname=es_$mode";
}

# The same as a URI with the user, for drivers.
sub via_uri
{
	my ($self, $mode) = @_;
	return "postgresql://$self->{user}\@127.0.0.1:$self->{port}/es_$mode";
}

# What it logged so far.
sub log
{
	my ($self) = @_;
	my $file = "$self->{dir}/pgbouncer.log";
	return -f $file ? PostgreSQL::Test::Utils::slurp_file($file) : '';
}

# SIGTERM, then wait up to 10 s: true once it has exited.  pumpable() is
# true while the process lives (it has no pipes to pump).
sub stop
{
	my ($self) = @_;
	$self->{handle}->signal('TERM');
	my $deadline = time() + 10;
	usleep(50_000) while $self->{handle}->pumpable && time() < $deadline;
	return !$self->{handle}->pumpable;
}

1;
