-- pgTAP: the observability objects (llm_stat_models, llm_stat_engine's
-- engine-wide columns, llm_stat_reset, llm_metrics), their privileges and
-- the slow-request setting (docs/observability.md).
BEGIN;
SELECT plan(26);

SELECT has_view('llamagpu', 'llm_stat_models', 'models view');
SELECT columns_are('llamagpu', 'llm_stat_models',
	ARRAY['model', 'loaded', 'device', 'weights_bytes', 'kv_cache_bytes', 'memory_bytes', 'requests_active',
		  'requests', 'errors', 'outcomes', 'prompt_tokens', 'generated_tokens',
		  'ttft_p50_ms', 'ttft_p95_ms', 'ttft_p99_ms', 'itl_p50_ms', 'itl_p95_ms', 'itl_p99_ms',
		  'e2e_p50_ms', 'e2e_p95_ms', 'e2e_p99_ms', 'stats_reset',
		  'embedding_requests', 'embedding_inputs', 'embedding_prompt_tokens']);
SELECT col_type_is('llamagpu', 'llm_stat_models', 'outcomes', 'jsonb', 'outcomes is jsonb');
SELECT col_type_is('llamagpu', 'llm_stat_models', 'ttft_p99_ms', 'double precision', 'latencies are float8 ms');
SELECT col_type_is('llamagpu', 'llm_stat_engine', 'uptime', 'interval', 'uptime is an interval');
SELECT col_type_is('llamagpu', 'llm_stat_engine', 'restarts', 'integer', 'restarts is an int');
SELECT col_type_is('llamagpu', 'llm_stat_engine', 'engine_prefix_hit_rate', 'double precision', 'engine prefix hit rate is a fraction');
SELECT table_privs_are('llamagpu', 'llm_stat_models', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_stat_models', 'public', ARRAY[]::text[]);

SELECT has_function('llamagpu', 'llm_metrics', ARRAY[]::text[]);
SELECT function_returns('llamagpu', 'llm_metrics', ARRAY[]::text[], 'text');
SELECT function_returns('llamagpu', 'llm_stat_reset', ARRAY[]::text[], 'boolean');
SELECT function_privs_are('llamagpu', 'llm_metrics', ARRAY[]::text[], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_stat_models_internal', ARRAY[]::text[], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_stat_reset', ARRAY[]::text[], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_stat_reset', ARRAY[]::text[], 'llm_user', ARRAY[]::text[]);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_metrics()', 'EXECUTE'), 'PUBLIC cannot read the metrics');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_stat_reset()', 'EXECUTE'), 'PUBLIC cannot reset');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_stat_models_internal()', 'EXECUTE'), 'PUBLIC cannot read model counters');

-- llm_metrics() is text Prometheus' parser reads (checked in full by tests/tap/010_metrics.pl)
SELECT matches(llamagpu.llm_metrics(), '^# HELP llamagpu_up ', 'llm_metrics() starts with HELP');
SELECT matches(llamagpu.llm_metrics(), E'\n# TYPE vllm:e2e_request_latency_seconds histogram\n', 'histograms are typed');

-- the slow-request setting: off by default, milliseconds, a superuser setting
SELECT is(current_setting('llamagpu.log_min_duration'), '-1', 'log_min_duration is off by default');
SELECT is((SELECT context FROM pg_settings WHERE name = 'llamagpu.log_min_duration'), 'superuser', 'log_min_duration is SUSET');
SELECT is((SELECT unit FROM pg_settings WHERE name = 'llamagpu.log_min_duration'), 'ms', 'log_min_duration is in ms');
SELECT throws_ok($$SET llamagpu.log_min_duration = -2$$, '22023', NULL, 'below -1 is refused');

-- a user not granted llm_user sees none of it
CREATE ROLE tap_metrics_stranger;
SET ROLE tap_metrics_stranger;
SELECT throws_ok($$SELECT * FROM llamagpu.llm_stat_models$$, '42501', NULL, 'non-llm_user cannot see the models view');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
