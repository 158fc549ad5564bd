# Cancellation: statement_timeout, pg_cancel_backend, llamagpu.request_timeout,
# a client that goes away, and a stream closed early all stop the generation
# in the engine and free its sequence at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = llamagpu_node('cancel', "llamagpu.engine_options = '--debug-token-delay-ms 20'\n");
my $long = "llm_generate('Once upon a time', 'stories', max_tokens => 1000, temperature => 0)";
my $in_flight = "SELECT count(*) FROM llm_stat_activity";

# statement_timeout
my $s = $node->background_psql('postgres', on_error_stop => 0);
$s->query_safe("SET statement_timeout = '300ms'");
my $t0 = time();
$s->query("SELECT $long");
my $elapsed = time() - $t0;
like($s->{stderr}, qr/canceling statement due to statement timeout/, 'statement_timeout stops generation');
$s->{stderr} = '';
cmp_ok($elapsed, '<', 0.3 + 0.1, sprintf('... within 100 ms of the timeout (%.3f s)', $elapsed));
is($node->safe_psql('postgres', $in_flight), '0', '... and the engine freed the sequence');
$s->query_safe("RESET statement_timeout");

# llamagpu.request_timeout (enforced by the engine)
$s->query_safe("SET llamagpu.request_timeout = '200ms'");
$s->query("SELECT $long");
like($s->{stderr}, qr/llamagpu request timed out/, 'request_timeout stops generation');
$s->{stderr} = '';
$s->query_safe("RESET llamagpu.request_timeout");
ok(wait_for($node, $in_flight, '0', 2), '... and the engine freed the sequence');
$s->quit;

# pg_cancel_backend
my ($h, $out, $err) = start_psql($node, "SELECT $long");
ok(wait_for($node, "$in_flight WHERE state = 'generating'", '1'), 'generation in flight');
my $bpid = $node->safe_psql('postgres', "SELECT backend_pid FROM llm_stat_activity");
$node->safe_psql('postgres', "SELECT pg_cancel_backend($bpid)");
$t0 = time();
$h->finish;
$elapsed = time() - $t0;
like($$err, qr/57014: canceling statement due to user request/, 'pg_cancel_backend stops generation');
cmp_ok($elapsed, '<', 0.1, sprintf('... within 100 ms (%.3f s)', $elapsed));
# the engine drops a cancelled sequence between two steps: on a loaded machine that can be just
# after the backend has already returned
ok(wait_for($node, $in_flight, '0', 2), '... and the engine freed the sequence');

# a client that disappears
($h, $out, $err) = start_psql($node, "SELECT $long");
ok(wait_for($node, "$in_flight WHERE state = 'generating'", '1'), 'generation in flight');
$h->kill_kill;
ok(wait_for($node, $in_flight, '0', 2), 'closed client connection frees the sequence');

# a stream read only in part
is($node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT * FROM llm_generate_stream('Once upon a time', 'stories', max_tokens => 1000) LIMIT 3) s"),
	'3', 'LIMIT on a stream');
ok(wait_for($node, $in_flight, '0', 1), '... frees the sequence');

$node->stop;
done_testing();
