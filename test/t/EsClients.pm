# test/t/EsClients.pm
#	What the tests of the client examples in test/clients share: finding
#	node and Debian's python3 with psycopg2, installing node-postgres from the
#	committed lockfile into a temporary directory (npm ci into a copy of
#	test/clients/node: the checkout is never written), the URI an example
#	connects with, and running an example to its end or in the background.
#	Load EsEnv first:
#
#		use FindBin;
#		use lib $FindBin::RealBin;
#		use EsEnv;
#		use EsClients;

package EsClients;

use strict;
use warnings;

use Exporter 'import';
use File::Copy qw(copy);
use FindBin;
use IPC::Run;
use Time::HiRes qw(usleep time);

use PostgreSQL::Test::Utils;

use EsFollow ();

our @EXPORT = qw(find_program python_with_psycopg2 install_node_examples
  example_uri run_example start_example wait_for_output pump_for stop_example);

# The examples in the checkout (or in test/all.sh's copy of it).
our $clients = "$FindBin::RealBin/../clients";

# Debian's interpreter, where python3-psycopg2 is installed: not whatever
# python3 comes first on PATH.
our $python = '/usr/bin/python3';

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# The path of an executable found on PATH, or undef.
sub find_program
{
	my ($name) = @_;
	my ($path) = grep { -f $_ && -x _ } map { "$_/$name" } split(/:/, $ENV{PATH});
	return $path;
}

# Whether $python exists and imports psycopg2.
sub python_with_psycopg2
{
	return 0 if !-x $python;
	my ($out, $err);
	return IPC::Run::run([ $python, '-c', 'import psycopg2' ],
		'<', \undef, '>', \$out, '2>', \$err);
}

# Copy test/clients/node into "$dir/node" and install its locked
# dependencies there with npm ci (npm's cache in $dir too).  Returns
# ("$dir/node", '') or (undef, what npm said).
sub install_node_examples
{
	my ($dir) = @_;
	my $npm = find_program('npm');
	return (undef, 'npm is not installed') if !defined $npm;
	my $target = "$dir/node";
	mkdir $target or die "mkdir $target: $!";
	opendir(my $dh, "$clients/node") or die "opendir $clients/node: $!";
	for my $f (grep { !/^\./ && -f "$clients/node/$_" } readdir $dh)
	{
		copy("$clients/node/$f", "$target/$f") or die "copy $f: $!";
	}
	closedir $dh;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run(
		[
			$npm, 'ci', '--ignore-scripts', '--no-audit', '--no-fund',
			'--no-update-notifier', '--cache', "$dir/npm-cache"
		],
		init => sub { chdir $target or die "chdir $target: $!" },
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(300));
	return $ok ? ($target, '') : (undef, "npm ci failed:\n$out$err");
}

# The postgresql:// URI of a database on a node, through its Unix socket:
# both libpq (psycopg2) and node-postgres read it.
sub example_uri
{
	my ($node, $db) = @_;
	my $user = getpwuid($<);
	my $host = $node->host;
	$host =~ s/([^A-Za-z0-9._~\/-])/sprintf('%%%02X', ord($1))/ge;
	return "postgresql://$user@/$db?host=$host&port=" . $node->port;
}

# Run an example to its end: (exit code, stdout, stderr).
sub run_example
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($timeout));
	return ($? >> 8, $out, $err);
}

# Start an example in the background: (harness, \stdout, \stderr).
sub start_example
{
	my (@cmd) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# Pump a running example until its stdout matches $cond, a regular
# expression or a function of the output (true), or $seconds pass or it
# exits (false).
sub wait_for_output
{
	my ($h, $out, $cond, $seconds) = @_;
	my $deadline = time() + ($seconds // $timeout);
	my $test = ref($cond) eq 'CODE' ? $cond : sub { $_[0] =~ $cond };
	while (1)
	{
		$h->pump_nb if $h->pumpable;
		return 1 if $test->($$out);
		return 0 if time() > $deadline || !$h->pumpable;
		usleep(20_000);
	}
}

# Pump a running example for $seconds, whatever it prints.
sub pump_for
{
	my ($h, $seconds) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline && $h->pumpable)
	{
		$h->pump_nb;
		usleep(20_000);
	}
	return;
}

# Send a signal to a running example and wait for it to exit: its raw wait
# status (0: exit code 0), or undef if it did not exit within $seconds
# (then it is killed).
sub stop_example
{
	my ($h, $signal, $seconds) = @_;
	$h->signal($signal) if defined $signal && $h->pumpable;
	return EsFollow::wait_for_exit($h, $seconds // 20);
}

1;
