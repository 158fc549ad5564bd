# The supervisor: the engine is its child, starts with the server, restarts
# on a settings change (and only then), and stops with the server.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = llamagpu_node('supervisor');

my $pid = engine_pid($node);
ok($pid > 0, 'engine is running');

# the engine is the supervisor's child, not the postmaster's
my $sup = $node->safe_psql('postgres', "SELECT supervisor_pid FROM llm_engine_status()");
ok($sup > 0, 'supervisor is running');
my ($ppid) = slurp_file("/proc/$pid/status") =~ /^PPid:\s+(\d+)/m;
is($ppid, $sup, 'engine is a child of the supervisor');

is($node->safe_psql('postgres', "SELECT llm_count_tokens('Once upon a time', 'stories')"),
	'5', 'engine answers');

# a reload that changes nothing the engine uses keeps it
$node->safe_psql('postgres', "ALTER SYSTEM SET work_mem = '8MB'");
$node->reload;
sleep 1;
is(engine_pid($node), $pid, 'unrelated reload keeps the engine');

# a changed engine setting restarts it
$node->safe_psql('postgres', "ALTER SYSTEM SET llamagpu.threads = 2");
$node->reload;
my $new = wait_engine_restart($node, $pid);
ok($new > 0, "engine restarted after llamagpu.threads changed ($pid -> $new)");
ok(!kill(0, $pid), 'old engine is gone');
like(slurp_file("/proc/$new/cmdline"), qr/--threads\x002\x00/, 'new engine got --threads 2');
is($node->safe_psql('postgres', "SELECT llm_count_tokens('Once upon a time', 'stories')"),
	'5', 'restarted engine answers');
is($node->safe_psql('postgres', "SELECT restarts FROM llm_engine_status()"), '1', 'one restart counted');
ok($node->log_contains('llamagpu: engine settings changed; restarting the engine'), 'restart logged');

# an engine that cannot start: back-off, a clear error, and recovery
$node->safe_psql('postgres', "ALTER SYSTEM SET llamagpu.engine_path = '/nonexistent/llamagpu'");
$node->reload;
ok(wait_for($node, "SELECT state FROM llm_engine_status()", 'restarting'), 'missing engine binary: restarting');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET llamagpu.connect_timeout = '300ms'; SELECT llm_count_tokens('Once upon a time', 'stories')",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($stderr, qr/57P03: llamagpu engine is not available/, '... calls fail with 57P03');
ok($node->log_contains('could not execute "/nonexistent/llamagpu"'), '... exec failure logged');
ok($node->log_contains('llamagpu: restarting the engine in 200 ms'), '... with growing back-off');
is($node->safe_psql('postgres', q{
	SELECT count(*) || ' ' || bool_and(model IS NULL AND uptime IS NULL AND engine_queued IS NULL) || ' ' ||
		   max(engine_state) || ' ' || (max(restarts) = (SELECT restarts FROM llm_engine_status()))
	FROM llm_stat_engine}),
	'1 true restarting true', '... llm_stat_engine: one row, the supervisor\'s state, no engine numbers');
like($node->safe_psql('postgres', 'SELECT llm_metrics()'), qr/^llamagpu_up 0$/m, '... llm_metrics(): llamagpu_up 0');
$node->safe_psql('postgres', "ALTER SYSTEM RESET llamagpu.engine_path");
$node->reload;
$new = wait_engine_restart($node, 0, 40);
ok($new > 0, 'engine back once the path is fixed');
is($node->safe_psql('postgres', "SELECT llm_count_tokens('Once upon a time', 'stories')"),
	'5', '... and answers');

# the engine stops with the server, and starts with it again
$node->stop('fast');
ok(!kill(0, $new), 'engine stopped with the server');
$node->start;
ok(wait_engine_restart($node, $new) > 0, 'engine back after a server restart');
is($node->safe_psql('postgres', "SELECT llm_count_tokens('Once upon a time', 'stories')"),
	'5', 'engine answers after a server restart');

$node->stop;
done_testing();
