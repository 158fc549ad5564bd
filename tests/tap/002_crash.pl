# Crash isolation: SIGKILL the engine while several sessions generate.
# Each gets an ERROR (SQLSTATE 58000) within a second, the supervisor starts
# a new engine, the next call succeeds, and Postgres itself never restarts.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# a slow engine (20 ms per token) so the generations are surely in flight
my $node = llamagpu_node('crash', "llamagpu.engine_options = '--debug-token-delay-ms 20'\n");

my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $idle = $node->background_psql('postgres');
my $idle_pid = $idle->query_safe('SELECT pg_backend_pid()');
chomp $idle_pid;

my $pid = engine_pid($node);
ok($pid > 0, 'engine is running');

my @runs;
for my $i (1 .. 3)
{
	push @runs, [
		start_psql($node,
			"SELECT llm_generate('Once upon a time', 'stories', max_tokens => 1000, temperature => 0)")
	];
}
ok(wait_for($node, "SELECT count(*) FROM llm_stat_activity WHERE state = 'generating'", '3'),
	'three generations in flight');

kill 'KILL', $pid;
my $t0 = time();
for my $r (@runs)
{
	my ($h, $out, $err) = @$r;
	$h->finish;
	my $elapsed = time() - $t0;
	like($$err, qr/ERROR:  58000: llamagpu engine terminated while processing the request/,
		'session got a clear error');
	cmp_ok($elapsed, '<', 1.0, sprintf('... within a second (%.3f s)', $elapsed));
}

my $new = wait_engine_restart($node, $pid);
ok($new > 0, "supervisor restarted the engine ($pid -> $new)");
ok($node->log_contains("llamagpu: engine \\(PID $pid\\) was terminated by signal 9"), 'death logged');
is($node->safe_psql('postgres',
		"SELECT length(llm_generate('Once upon a time', 'stories', max_tokens => 4, temperature => 0)) > 0"),
	't', 'next call succeeds');

is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $start_time,
	'postmaster did not restart');
my $still = $idle->query_safe('SELECT pg_backend_pid()');
chomp $still;
is($still, $idle_pid, 'other session kept its connection');
$idle->quit;

$node->stop;
done_testing();
