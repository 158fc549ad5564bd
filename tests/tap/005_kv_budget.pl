# The engine's batching limits: llamagpu.kv_cache_size is each loaded model's
# KV block pool, --max-seqs (through llamagpu.engine_options) the generations
# running at once.  Requests beyond --max-seqs wait in the model's queue; a
# prompt the whole pool cannot hold is refused; a context size larger than
# the engine's per-sequence limit is clamped to it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

# stories260K: one block of 32 positions is 20 kB of f16 K and V (5 layers,
# 4 KV heads of 8), so 1 MB is a pool of 51 blocks, 1632 positions (its
# context is 2048)
my $node = llamagpu_node('kv',
	"llamagpu.kv_cache_size = '1MB'\n"
	  . "llamagpu.engine_options = '--debug-token-delay-ms 20 --max-seqs 1'\n");
my $model = $ENV{LLAMAGPU_TEST_MODEL};

my $gen = "SELECT llm_generate('Once upon a time', 'stories', max_tokens => 25, temperature => 0)";
my @runs = map { [ start_psql($node, $gen) ] } 1 .. 2;
ok(wait_for($node, "SELECT string_agg(state, ',' ORDER BY state) FROM llm_stat_activity",
		'generating,queued'), 'second request waits in the queue (--max-seqs 1)');
for my $r (@runs)
{
	my ($h, $out, $err) = @$r;
	$h->finish;
	like($$out, qr/^, there was a little girl/, 'both requests complete');
	is($$err, '', '... without error');
}

# 450 * 4 + 2 = 1802 prompt tokens: within the context, beyond the pool
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT llm_generate(repeat('Once upon a time ', 450), 'stories', max_tokens => 4)",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($stderr, qr/53200: out of memory in the llamagpu engine/, 'a prompt larger than the pool is refused');
like($stderr, qr/KV cache pool holds 1632/, '... saying why');

$node->safe_psql('postgres',
	"SELECT llamagpu.llm_register_model('stories_big', '$model', '{\"context_size\": 100000}')");
like($node->safe_psql('postgres',
		"SELECT llm_generate('Once upon a time', 'stories_big', max_tokens => 4, temperature => 0)"),
	qr/^, there was/, 'a context size beyond the engine limit is clamped to it');

$node->stop;
done_testing();
