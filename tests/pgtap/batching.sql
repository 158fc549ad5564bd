-- pgTAP: the objects of batching (llm_generate_batch, table jobs, the
-- response cache, llm_stat_engine), their privileges and settings.
BEGIN;
SELECT plan(59);

-- llm_generate_batch: llm_generate's arguments and defaults, after the array
SELECT has_function('llamagpu', 'llm_generate_batch',
	ARRAY['text[]', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb']);
SELECT is((SELECT pg_get_function_arguments('llamagpu.llm_generate_batch(text[], text, int, float8, float8, int, bigint, text[], jsonb)'::regprocedure)),
	'prompts text[], ' || substr((SELECT pg_get_function_arguments('llamagpu.llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb)'::regprocedure)),
								 length('prompt text, ') + 1),
	'llm_generate_batch takes llm_generate''s arguments and defaults');
SELECT is((SELECT pg_get_function_result('llamagpu.llm_generate_batch(text[], text, int, float8, float8, int, bigint, text[], jsonb)'::regprocedure)),
	'TABLE(ord integer, output text)', 'llm_generate_batch returns (ord, output)');
SELECT function_privs_are('llamagpu', 'llm_generate_batch',
	ARRAY['text[]', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb'],
	'llm_user', ARRAY['EXECUTE']);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_generate_batch(text[], text, int, float8, float8, int, bigint, text[], jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run llm_generate_batch');

-- parallel safety, as documented
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'llamagpu.llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb)'::regprocedure),
		  's', 'llm_generate is parallel safe');
SELECT is((SELECT provolatile FROM pg_proc WHERE oid = 'llamagpu.llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb)'::regprocedure),
		  'v', 'llm_generate is volatile');
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'llamagpu.llm_job_create(text, text, text, text, text, text, text, jsonb)'::regprocedure),
		  'u', 'llm_job_create is parallel unsafe');

-- the response cache
SELECT has_table('llamagpu', 'response_cache', 'response cache table');
SELECT columns_are('llamagpu', 'response_cache', ARRAY['key', 'model', 'output', 'hits', 'created_at', 'last_used']);
SELECT col_is_pk('llamagpu', 'response_cache', 'key', 'cache key is the primary key');
SELECT col_type_is('llamagpu', 'response_cache', 'key', 'bytea', 'cache key is bytea');
SELECT table_privs_are('llamagpu', 'response_cache', 'llm_user', '{}'::text[]);
SELECT table_privs_are('llamagpu', 'response_cache', 'public', '{}'::text[]);
SELECT table_privs_are('llamagpu', 'response_cache', 'llm_admin', ARRAY['SELECT', 'DELETE']);
SELECT function_returns('llamagpu', 'llm_cache_clear', '{}'::text[], 'bigint');
SELECT function_privs_are('llamagpu', 'llm_cache_clear', '{}'::text[], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_cache_clear', '{}'::text[], 'llm_user', '{}'::text[]);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_cache_clear()', 'EXECUTE'), 'PUBLIC cannot clear the cache');

-- jobs
SELECT has_table('llamagpu', 'llm_jobs', 'jobs table');
SELECT has_table('llamagpu', 'llm_job_failures', 'job failures table');
SELECT columns_are('llamagpu', 'llm_job_failures',
	ARRAY['job_id', 'job', 'owner', 'row_id', 'sqlstate', 'error', 'failed_at']);
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'llamagpu.llm_jobs'::regclass), 'jobs table has row level security');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'llamagpu.llm_job_failures'::regclass), 'failures table has row level security');
SELECT table_privs_are('llamagpu', 'llm_jobs', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_job_failures', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_jobs', 'public', '{}'::text[]);
SELECT has_view('llamagpu', 'llm_stat_jobs', 'job progress view');
SELECT columns_are('llamagpu', 'llm_stat_jobs',
	ARRAY['name', 'state', 'owner', 'rows_total', 'rows_done', 'rows_failed', 'rows_pending', 'tokens',
		  'rate', 'eta', 'started', 'updated', 'finished', 'last_error', 'id']);
SELECT table_privs_are('llamagpu', 'llm_stat_jobs', 'llm_user', ARRAY['SELECT']);
SELECT function_returns('llamagpu', 'llm_job_create',
	ARRAY['text', 'text', 'text', 'text', 'text', 'text', 'text', 'jsonb'], 'bigint');
SELECT is((SELECT pg_get_function_arguments('llamagpu.llm_job_create(text, text, text, text, text, text, text, jsonb)'::regprocedure)),
	'name text, source text, id_column text, prompt text, target_table text, target_column text, model text DEFAULT NULL::text, options jsonb DEFAULT NULL::jsonb',
	'llm_job_create arguments and defaults');
SELECT function_privs_are('llamagpu', 'llm_job_create',
	ARRAY['text', 'text', 'text', 'text', 'text', 'text', 'text', 'jsonb'], 'llm_user', ARRAY['EXECUTE']);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_job_create(text, text, text, text, text, text, text, jsonb)', 'EXECUTE'),
		  'PUBLIC cannot create jobs');
SELECT function_privs_are('llamagpu', 'llm_job_pause', ARRAY['text'], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_job_resume', ARRAY['text'], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_job_cancel', ARRAY['text'], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_job_drop', ARRAY['text'], 'llm_user', ARRAY['EXECUTE']);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_job_cancel(text)', 'EXECUTE'), 'PUBLIC cannot cancel jobs');

-- the engine view
SELECT has_view('llamagpu', 'llm_stat_engine', 'engine view');
SELECT columns_are('llamagpu', 'llm_stat_engine',
	ARRAY['model', 'path', 'requests', 'queued', 'running', 'submitted', 'finished', 'rejected',
		  'steps', 'batch_tokens', 'prompt_tokens', 'gen_tokens', 'avg_batch_fill', 'max_batch_tokens',
		  'kv_block_size', 'kv_blocks_used', 'kv_blocks_cached', 'kv_blocks_total', 'preemptions',
		  'prefix_lookup_tokens', 'prefix_hit_tokens', 'prefix_hit_rate',
		  'uptime', 'restarts', 'engine_state', 'engine_queued', 'engine_running',
		  'engine_kv_blocks_used', 'engine_kv_blocks_total', 'engine_prefix_hit_rate',
		  'device', 'device_memory_used', 'device_memory_total']);
SELECT col_type_is('llamagpu', 'llm_stat_engine', 'avg_batch_fill', 'double precision', 'avg_batch_fill is a fraction');
SELECT col_type_is('llamagpu', 'llm_stat_engine', 'prefix_hit_rate', 'double precision', 'prefix_hit_rate is a fraction');
SELECT table_privs_are('llamagpu', 'llm_stat_engine', 'llm_user', ARRAY['SELECT']);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_stat_engine_internal()', 'EXECUTE'), 'PUBLIC cannot read engine counters');

-- settings
SELECT is(current_setting('llamagpu.max_batch_tokens'), '512', 'max_batch_tokens default');
SELECT is(current_setting('llamagpu.max_queued_requests'), '256', 'max_queued_requests default');
SELECT is(current_setting('llamagpu.response_cache'), 'off', 'response_cache default off');
SELECT is((SELECT context FROM pg_settings WHERE name = 'llamagpu.response_cache'), 'user', 'response_cache is USERSET');
SELECT is(current_setting('llamagpu.response_cache_max_rows'), '0', 'response_cache_max_rows default: no limit');
SELECT is((SELECT context FROM pg_settings WHERE name = 'llamagpu.response_cache_max_rows'), 'superuser', 'response_cache_max_rows is SUSET');
SELECT is((SELECT context FROM pg_settings WHERE name = 'llamagpu.max_batch_tokens'), 'sighup', 'max_batch_tokens is SIGHUP');
SELECT is((SELECT context FROM pg_settings WHERE name = 'llamagpu.max_queued_requests'), 'sighup', 'max_queued_requests is SIGHUP');
SELECT matches((SELECT short_desc FROM pg_settings WHERE name = 'llamagpu.kv_cache_size'),
			   'per|each loaded model', 'kv_cache_size is described as the per-model block pool');

-- a user not granted llm_user can do none of it
CREATE ROLE tap_batch_stranger;
SET ROLE tap_batch_stranger;
SELECT throws_ok($$SELECT * FROM llamagpu.llm_generate_batch(ARRAY['hi'])$$, '42501', NULL, 'non-llm_user cannot batch');
SELECT throws_ok($$SELECT llamagpu.llm_job_create('j', 't', 'id', 'p', 't', 'o')$$, '42501', NULL, 'non-llm_user cannot create jobs');
SELECT throws_ok($$SELECT * FROM llamagpu.llm_stat_jobs$$, '42501', NULL, 'non-llm_user cannot see jobs');
SELECT throws_ok($$SELECT * FROM llamagpu.llm_stat_engine$$, '42501', NULL, 'non-llm_user cannot see the engine');
SELECT throws_ok($$SELECT * FROM llamagpu.response_cache$$, '42501', NULL, 'non-llm_user cannot read the cache');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
