# The KV cache budget (llamagpu.kv_cache_size): requests that do not fit
# wait for running ones to finish; a request that can never fit is refused.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

# stories260K with 2048 positions takes 1.25 MB of f16 KV cache: 2 MB fits one
my $node = llamagpu_node('kv',
	"llamagpu.kv_cache_size = '2MB'\nllamagpu.engine_options = '--debug-token-delay-ms 20'\n");
my $model = $ENV{LLAMAGPU_TEST_MODEL};

my $gen = "SELECT llm_generate('Once upon a time', 'stories', max_tokens => 25, temperature => 0)";
my @runs = map { [ start_psql($node, $gen) ] } 1 .. 2;
ok(wait_for($node, "SELECT string_agg(state, ',' ORDER BY state) FROM llm_stat_activity",
		'generating,queued'), 'second request waits for KV cache');
for my $r (@runs)
{
	my ($h, $out, $err) = @$r;
	$h->finish;
	like($$out, qr/^, there was a little girl/, 'both requests complete');
	is($$err, '', '... without error');
}

$node->safe_psql('postgres',
	"SELECT llamagpu.llm_register_model('stories_big', '$model', '{\"context_size\": 100000}')");
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT llm_generate('Once upon a time', 'stories_big', max_tokens => 4)",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($stderr, qr/53200: out of memory in the llamagpu engine/, 'a context larger than the budget is refused');
like($stderr, qr/more than --kv-cache-size \(2 MB\)/, '... saying why');

$node->stop;
done_testing();
