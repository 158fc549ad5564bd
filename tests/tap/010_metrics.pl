# Observability (docs/observability.md): llm_stat_engine's engine-wide
# columns, llm_stat_models, llm_stat_reset, llm_metrics() checked by
# Prometheus' parser (lib/check_metrics.py) against the views, who may call
# what, and the engine's events in the server log under one prefix with
# the backend's PID.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = llamagpu_node('metrics');
my $epid = engine_pid($node);
ok($epid > 0, 'engine is running');

# no model loaded: one engine row
is($node->safe_psql('postgres', q{
	SELECT c.n || ' ' || (model IS NULL) || ' ' || (uptime >= '0'::interval) || ' ' || restarts || ' ' ||
		   engine_state || ' ' || engine_queued || ' ' || (device IS NOT NULL) || ' ' ||
		   (device_memory_used > 0) || ' ' || (device_memory_total >= device_memory_used) ||
		   ' ' || (queued IS NULL)
	FROM llm_stat_engine, (SELECT count(*) AS n FROM llm_stat_engine) c}),
	'1 true true 0 running 0 true true true true', 'no model loaded: one row with model NULL and the engine-wide numbers');
is($node->safe_psql('postgres', "SELECT model || ' ' || loaded || ' ' || requests || ' ' || (ttft_p50_ms IS NULL) FROM llm_stat_models"),
	'stories false 0 true', 'a registered model never used: not loaded, no requests, no latencies');

my $scrape = sub {
	my ($file) = @_;
	my $text = $node->safe_psql('postgres', 'SELECT llm_metrics()');
	open my $fh, '>', $file or die "$file: $!";
	print $fh "$text\n";
	close $fh;
	return $text;
};
my $dir = PostgreSQL::Test::Utils::tempdir();
my $first = $scrape->("$dir/first.prom");
like($first, qr/^llamagpu_up 1$/m, 'llm_metrics(): the engine is up');

# generations, logged as slow (threshold 0), from a backend whose PID we know
my $bpid = $node->safe_psql('postgres', q{
	SET llamagpu.log_min_duration = 0;
	SELECT llm_generate('Once upon a time', 'stories', max_tokens => 12, temperature => 0);
	SELECT llm_generate('The little dog', 'stories', max_tokens => 7, temperature => 0);
	SELECT count(*) FROM llm_generate_batch(ARRAY['Tom had', 'Lily saw', 'One day'], 'stories', max_tokens => 5);
	SELECT pg_backend_pid()});
$bpid = (split /\n/, $bpid)[-1];
# one that fails in the engine: a token outside the vocabulary
my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT llm_generate('Hi', 'stories', options => '{"logit_bias": {"999999": 1}}')});
isnt($ret, 0, 'a bad logit_bias fails');
# embeddings (another session): requests with a prompt and no decode steps,
# logged as slow too
my $embed_pid = $node->safe_psql('postgres', q{
	SET llamagpu.log_min_duration = 0;
	SELECT count(*) FROM llm_embed('Once upon a time', 'stories');
	SELECT count(*) FROM llm_embed_batch(ARRAY['The little dog', 'Lily'], 'stories');
	SELECT pg_backend_pid()});
$embed_pid = (split /\n/, $embed_pid)[-1];

my $second = $scrape->("$dir/second.prom");
my $expected = $node->safe_psql('postgres', q{
	SELECT json_build_object(
		'models', (SELECT json_agg(m) FROM llm_stat_models m),
		'engine', (SELECT json_agg(e) FROM llm_stat_engine e))});
open my $fh, '>', "$dir/expected.json" or die;
print $fh $expected;
close $fh;

is($node->safe_psql('postgres', q{
	SELECT loaded || ' ' || device || ' ' || (weights_bytes > 0) || ' ' || (kv_cache_bytes > 0) || ' ' ||
		   (memory_bytes = weights_bytes + kv_cache_bytes) || ' ' || requests || ' ' || errors || ' ' ||
		   (prompt_tokens > 0) || ' ' || (generated_tokens <= 12 + 7 + 15) || ' ' ||
		   (ttft_p50_ms > 0 AND ttft_p50_ms <= ttft_p95_ms AND ttft_p95_ms <= ttft_p99_ms) || ' ' ||
		   (itl_p50_ms <= itl_p99_ms) || ' ' || (e2e_p50_ms > 0 AND e2e_p50_ms <= e2e_p99_ms) || ' ' ||
		   (outcomes ->> 'range') || ' ' || (stats_reset <= now())
	FROM llm_stat_models WHERE model = 'stories'}),
	'true cpu true true true 8 1 true true true true true 1 true',
	'llm_stat_models after six generations, one failed, and two embedding requests');
is($node->safe_psql('postgres', q{
	SELECT embedding_requests || ' ' || embedding_inputs || ' ' ||
		   (embedding_prompt_tokens > 0 AND embedding_prompt_tokens < prompt_tokens) || ' ' ||
		   ((outcomes ->> 'stop')::int >= 2) || ' ' ||
		   (requests = (SELECT sum(value::int) FROM jsonb_each_text(outcomes)))
	FROM llm_stat_models WHERE model = 'stories'}),
	'2 3 true true true',
	'... the embedding requests counted apart too: two, three inputs, their tokens part of prompt_tokens');
is($node->safe_psql('postgres', q{
	SELECT count(*) || ' ' || bool_and(model = 'stories') || ' ' || bool_and(engine_running = running) || ' ' ||
		   bool_and(engine_kv_blocks_total = kv_blocks_total) || ' ' || bool_and(submitted = finished)
	FROM llm_stat_engine}),
	'1 true true true true', 'llm_stat_engine: one row per loaded model, engine-wide sums over them');

my ($pout, $perr) = run_command(['/usr/bin/python3', "$FindBin::RealBin/lib/check_metrics.py",
	"$dir/first.prom", "$dir/second.prom", "$dir/expected.json"]);
my @notok = grep { /^not ok/ } split /\n/, $pout;
my $oks = () = $pout =~ /^ok/mg;
diag($pout . $perr) if @notok || $perr;
ok($oks > 50 && !@notok && $perr eq '', "llm_metrics() passes Prometheus' parser and agrees with the views ($oks checks)");

# privileges: llm_user reads, only llm_admin resets
$node->safe_psql('postgres', q{
	CREATE ROLE metrics_user LOGIN IN ROLE llm_user;
	CREATE ROLE metrics_admin LOGIN IN ROLE llm_admin;
	CREATE ROLE metrics_nobody LOGIN});
is($node->safe_psql('postgres', q{SET ROLE metrics_user; SELECT length(llm_metrics()) > 0, count(*) FROM llm_stat_models}),
	't|1', 'llm_user may call llm_metrics() and read llm_stat_models');
($ret, $out, $err) = $node->psql('postgres', 'SET ROLE metrics_user; SELECT llm_stat_reset()');
like($err, qr/permission denied for function llm_stat_reset/, 'llm_user may not reset');
($ret, $out, $err) = $node->psql('postgres', 'SET ROLE metrics_nobody; SELECT llamagpu.llm_metrics()');
like($err, qr/permission denied/, 'a role without llm_user may not read the metrics');
is($node->safe_psql('postgres', 'SET ROLE metrics_admin; SELECT llm_stat_reset()'), 't', 'llm_admin resets');
is($node->safe_psql('postgres', q{
	SELECT requests || ' ' || errors || ' ' || prompt_tokens || ' ' || (ttft_p50_ms IS NULL) || ' ' || loaded
	FROM llm_stat_models WHERE model = 'stories'}),
	'0 0 0 true true', '... counters and histograms start again; the model stays loaded');
like($node->safe_psql('postgres', 'SELECT llm_metrics()'),
	qr/^vllm:e2e_request_latency_seconds_count\{model_name="stories"\} 0$/m, '... llm_metrics() too');

# unloading: the model stays in llm_stat_models, not loaded
$node->safe_psql('postgres', "SELECT llm_unload_model('stories')");
ok(wait_for($node, "SELECT loaded FROM llm_stat_models WHERE model = 'stories'", 'f'), 'unloaded: loaded is false');
is($node->safe_psql('postgres', q{SELECT count(*) || max(coalesce(model, '-')) FROM llm_stat_engine}),
	'1-', 'no model loaded again: the engine row');

# the log: one prefix, the backend's PID on request events
$node->stop;
my $log = slurp_file($node->logfile);
like($log, qr/llamagpu: engine started \(PID $epid\)/, 'start logged by the supervisor');
like($log, qr/llamagpu: engine\[$epid\] INFO: started, listening on/, 'start logged by the engine');
like($log, qr/llamagpu: engine\[$epid\] INFO: loading model "stories" from \S+ \(backend PID $bpid\)/,
	'model load logged with the backend PID');
like($log, qr/llamagpu: engine\[$epid\] INFO: slow request: [0-9.]+ ms, model "stories", backend PID $bpid, role "\w+", \d+ prompt tokens, 12 generated, outcome length/,
	'slow request logged with the backend PID');
my $slow = () = $log =~ /INFO: slow request:/g;
is($slow, 7, '... every request of those sessions (the failed one ran in another), none of the others');
my $embed_slow = () = $log =~ /INFO: slow request: [0-9.]+ ms, model "stories", backend PID $embed_pid, role "\w+", [1-9]\d* prompt tokens, 0 generated, outcome stop/g;
is($embed_slow, 2, 'slow embedding requests logged with their PID, prompt tokens and outcome');
like($log, qr/llamagpu: engine\[$epid\] INFO: statistics reset/, 'reset logged by the engine');
like($log, qr/LOG:  llamagpu: statistics reset by backend PID \d+/, '... and by the backend');
like($log, qr/llamagpu: engine\[$epid\] INFO: unloading model "stories" \(\d+ requests using it are cancelled\) \(backend PID \d+\)/,
	'unload logged with the backend PID');
like($log, qr/llamagpu: stopping the engine \(PID $epid\)/, 'stop logged by the supervisor');
like($log, qr/llamagpu: engine\[$epid\] INFO: stopping/, 'stop logged by the engine');
my @engine_lines = grep { /engine\[$epid\]/ } split /\n/, $log;
ok(!grep({ !/^llamagpu: engine\[$epid\] (ERROR|WARNING|INFO|DEBUG): / } @engine_lines),
	'every engine line starts with the prefix');

done_testing();
