# LlamagpuTest.pm — helpers for the cluster-level TAP tests: a node with
# llamagpu preloaded and the test model registered, engine lookups, waits.
package LlamagpuTest;

use strict;
use warnings;
use Exporter 'import';
use File::Basename qw(dirname);
use Time::HiRes qw(time usleep);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(llamagpu_node engine_pid wait_for start_psql wait_engine_restart);

# A started node with llamagpu preloaded and model "stories" registered;
# extra settings are appended to postgresql.conf.  Skips when no model.
sub llamagpu_node
{
	my ($name, $extra_conf) = @_;
	my $model = $ENV{LLAMAGPU_TEST_MODEL} // '';

	plan skip_all => "SKIP: no test model (LLAMAGPU_TEST_MODEL is not set or absent)"
	  unless $model ne '' && -r $model;

	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $conf = "shared_preload_libraries = 'llamagpu'\n"
	  . "llamagpu.model_dir = '" . dirname($model) . "'\n"
	  . "llamagpu.threads = 1\n";
	$conf .= "llamagpu.engine_path = '$ENV{LLAMAGPU_ENGINE_PATH}'\n"
	  if $ENV{LLAMAGPU_ENGINE_PATH};
	$conf .= $extra_conf // '';
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION llamagpu');
	$node->safe_psql('postgres',
		"ALTER DATABASE postgres SET search_path = public, llamagpu");
	$node->safe_psql('postgres',
		"SELECT llamagpu.llm_register_model('stories', '$model')");
	return $node;
}

# The engine's PID as the supervisor reports it (0 while it is down).
sub engine_pid
{
	my ($node) = @_;
	my $pid = $node->safe_psql('postgres',
		"SELECT coalesce(pid, 0) FROM llamagpu.llm_engine_status() WHERE state = 'running'");
	return $pid eq '' ? 0 : $pid;
}

# Poll $sql until it returns $expected; false after $timeout seconds.
sub wait_for
{
	my ($node, $sql, $expected, $timeout) = @_;
	my $deadline = time() + ($timeout // 10);
	while (time() < $deadline)
	{
		my $got = $node->safe_psql('postgres', $sql);
		return 1 if $got eq $expected;
		usleep(20_000);
	}
	return 0;
}

# Start psql running $sql in the background; returns the harness and
# references to its stdout and stderr.
sub start_psql
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'psql', '-XAtq', '-v', 'VERBOSITY=verbose',
			'-d', $node->connstr('postgres'), '-c', $sql
		],
		'>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

# Wait until the engine runs with a PID other than $old; returns the new PID.
sub wait_engine_restart
{
	my ($node, $old, $timeout) = @_;
	my $deadline = time() + ($timeout // 10);
	while (time() < $deadline)
	{
		my $pid = engine_pid($node);
		return $pid if $pid && $pid != $old;
		usleep(20_000);
	}
	return 0;
}

1;
