# The extension against an engine with continuous batching's behaviour (a
# fake one, tests/tap/lib/fake_engine.pl): a full wait queue answers busy,
# and llm_generate_batch and table jobs wait and resubmit instead of
# failing; STATUS `sched` lines feed llm_stat_engine; priority reaches the
# engine.
use strict;
use warnings;
use FindBin;
use File::Basename qw(dirname);
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $fake = "$FindBin::RealBin/lib/fake_engine.pl";
my $node = llamagpu_node('fake', "llamagpu.engine_path = '$fake'\n");
my $sockdir = dirname($node->safe_psql('postgres', 'SELECT socket FROM llm_engine_status()'));
my $log = "$sockdir/requests.log";
# the socket directory may be /tmp/llamagpu-PORT, left by an earlier run on the same port
unlink $log;

# 30 prompts, a window of 64, an engine that takes 5 at a time: busy replies, then retries
my $prompts = "ARRAY(SELECT 'p' || i FROM generate_series(1, 30) i)";
is($node->safe_psql('postgres', qq{
	SELECT string_agg(ord || '=' || output, ',' ORDER BY ord) = string_agg(ord || '=echo: p' || ord, ',' ORDER BY ord)
	FROM llm_generate_batch($prompts, 'stories', temperature => 0)}),
	't', 'every output of a batch arrives, in order, though the engine was busy');
my @lines = split /\n/, slurp_file($log);
cmp_ok(scalar(@lines), '>', 30, sprintf('... after resubmitting (%d requests for 30 prompts)', scalar(@lines)));
cmp_ok($node->safe_psql('postgres', "SELECT rejected FROM llm_stat_engine"), '>', 0, '... the engine counted busy replies');

# the scheduler's counters
is($node->safe_psql('postgres', qq{
	SELECT model || ' ' || submitted || ' ' || finished || ' ' || steps || ' ' || batch_tokens || ' ' ||
		   avg_batch_fill || ' ' || kv_blocks_used || '/' || kv_blocks_cached || '/' || kv_blocks_total || ' ' ||
		   preemptions || ' ' || prefix_hit_rate || ' ' || max_batch_tokens || ' ' || kv_block_size
	FROM llm_stat_engine}),
	'fake 30 30 10 2560 0.5 40/25/100 3 0.25 512 16', 'llm_stat_engine from the sched line');

# measurements of a model with an odd name (the fake engine's): llm_stat_models,
# and llm_metrics()'s label escaping as Prometheus' parser reads it
is($node->safe_psql('postgres', q{
	SELECT requests || ' ' || errors || ' ' || outcomes::text || ' ' || prompt_tokens || ' ' || generated_tokens || ' ' ||
		   round(ttft_p50_ms) || ' ' || round(ttft_p95_ms) || ' ' || round(ttft_p99_ms) || ' ' || loaded
	FROM llm_stat_models WHERE model = E'q"uote\\\\back\nline'}),
	'3 1 {"stop": 2, "timeout": 1} 30 20 100 910 982 false', 'llm_stat_models from the metrics and histogram lines');
# malformed STATUS lines (the fake engine's model "malformed") are left out, each one alone:
# more buckets than kept, decreasing or non-numeric bounds, an unknown kind, too few fields
is($node->safe_psql('postgres', q{
	SELECT requests || ' ' || outcomes::text || ' ' || coalesce(ttft_p50_ms::text, 'null') || ' ' ||
		   coalesce(itl_p50_ms::text, 'null') || ' ' || coalesce(e2e_p50_ms::text, 'null')
	FROM llm_stat_models WHERE model = 'malformed'}),
	'4 {"x:y": 3} null null null', 'malformed histogram and outcome lines are left out');
unlike($node->safe_psql('postgres', 'SELECT llm_metrics()'), qr/model_name="malformed",le=/,
	'... and give no buckets in llm_metrics()');
# an EMBED reply with more vectors than inputs is refused before it is stored
is($node->safe_psql('postgres', "SELECT llm_embed('fine', 'stories')::text"), '{1,0}', 'an embedding from the fake engine');
my ($erc, $eout, $eerr) = $node->psql('postgres', "SELECT llm_embed('too many', 'stories')",
	extra_params => ['-v', 'VERBOSITY=verbose']);
like($eerr, qr/08P01: the llamagpu engine answered more embedding fields than the request has inputs/,
	'an EMBED reply with an embedding too many is a protocol error');
my $prom = PostgreSQL::Test::Utils::tempdir() . "/metrics.prom";
open my $pf, '>', $prom or die;
print $pf $node->safe_psql('postgres', 'SELECT llm_metrics()'), "\n";
close $pf;
my ($pyout, $pyerr) = run_command(['/usr/bin/python3', '-c', q{
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in f.samples:
        if (s.name == "vllm:request_success_total" and s.labels["finished_reason"] == "abort"
                and s.labels["model_name"] != "malformed"):
            print(repr(s.labels["model_name"]), s.value)
}, $prom]);
is($pyout, qq{'q"uote\\\\back\\nline' 1.0}, 'label values are escaped: the parser reads the name back') or diag($pyerr);

# priority reaches the engine
$node->safe_psql('postgres',
	"SELECT llm_generate('urgent', 'stories', options => '{\"priority\": 7}')");
like(slurp_file($log), qr/^urgent\t7$/m, 'priority is sent');
$node->safe_psql('postgres', "SELECT llm_generate('plain', 'stories')");
like(slurp_file($log), qr/^plain\t$/m, 'no priority, no field');

# llm_generate waits out busy replies too; the stream function reports them
is($node->safe_psql('postgres', "SELECT llm_generate('busy single', 'stories')"), 'echo: busy single',
	'llm_generate resubmits when the engine is busy');
is(scalar(() = slurp_file($log) =~ /^busy single\t/mg), 3, '... after two busy replies');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SELECT * FROM llm_generate_stream('busy stream', 'stories')", extra_params => ['-v', 'VERBOSITY=verbose']);
like($stderr, qr/53000: llamagpu engine is busy/, 'llm_generate_stream reports busy');

# a table job through the busy engine: every row once
$node->safe_psql('postgres', qq{
	CREATE TABLE src (id int PRIMARY KEY, p text);
	INSERT INTO src SELECT i, 'row' || i FROM generate_series(1, 45) i;
	CREATE TABLE dst (id int PRIMARY KEY, out text);
	SELECT llm_job_create('fake', 'src', 'id', 'p', 'dst', 'out', 'stories',
						  '{"temperature": 0, "batch_size": 20, "priority": -1}')});
ok(wait_for($node, "SELECT state FROM llm_stat_jobs WHERE name = 'fake'", 'done', 30), 'job done');
is($node->safe_psql('postgres', "SELECT count(*) FILTER (WHERE out = 'echo: ' || p) FROM dst JOIN src USING (id)"),
	'45', 'every row written, with its output');
is($node->safe_psql('postgres', "SELECT rows_done || '/' || rows_failed FROM llm_stat_jobs WHERE name = 'fake'"),
	'45/0', 'busy replies are not failures');
like(slurp_file($log), qr/^row1\t-1$/m, 'the job sends its priority');

$node->stop;
done_testing();
