-- pgTAP: the objects the extension installs.
BEGIN;
SELECT plan(32);

SELECT has_extension('llamagpu');
SELECT has_schema('llamagpu');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'llamagpu'), '0.1.0', 'version 0.1.0');
SELECT is((SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
		   WHERE e.extname = 'llamagpu'), 'llamagpu', 'installed in schema llamagpu');

SELECT has_table('llamagpu', 'llm_models', 'registry table');
SELECT columns_are('llamagpu', 'llm_models',
	ARRAY['name', 'path', 'architecture', 'parameters', 'quantization', 'context_length',
		  'file_size', 'sha256', 'device', 'options', 'registered_by', 'registered_at',
		  'provider', 'base_url', 'remote_model', 'api_key_secret']);
SELECT col_is_pk('llamagpu', 'llm_models', 'name', 'model name is the primary key');
SELECT col_type_is('llamagpu', 'llm_models', 'options', 'jsonb', 'options is jsonb');
SELECT col_type_is('llamagpu', 'llm_models', 'parameters', 'bigint', 'parameters is bigint');
SELECT has_table('llamagpu', 'llm_model_grants', 'grants table');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'llamagpu.llm_model_grants'::regclass),
		  'grants table has row level security');
SELECT has_view('llamagpu', 'llm_stat_activity', 'activity view');
SELECT columns_are('llamagpu', 'llm_stat_activity',
	ARRAY['backend_pid', 'role', 'model', 'state', 'prompt_tokens', 'generated_tokens',
		  'started_at', 'tokens_per_second', 'request_id']);

SELECT has_function('llamagpu', 'llm_generate',
	ARRAY['text', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb']);
SELECT function_returns('llamagpu', 'llm_generate',
	ARRAY['text', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb'], 'text');
SELECT has_function('llamagpu', 'llm_generate_stream',
	ARRAY['text', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb']);
SELECT function_returns('llamagpu', 'llm_generate_stream',
	ARRAY['text', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb'], 'setof text');
SELECT function_returns('llamagpu', 'llm_tokenize', ARRAY['text', 'text'], 'integer[]');
SELECT function_returns('llamagpu', 'llm_detokenize', ARRAY['integer[]', 'text'], 'text');
SELECT function_returns('llamagpu', 'llm_count_tokens', ARRAY['text', 'text'], 'integer');
SELECT function_returns('llamagpu', 'llm_register_model', ARRAY['text', 'text', 'jsonb'], 'llamagpu.llm_models');
SELECT function_returns('llamagpu', 'llm_load_model', ARRAY['text'], 'boolean');
SELECT function_returns('llamagpu', 'llm_unload_model', ARRAY['text'], 'boolean');
SELECT function_returns('llamagpu', 'llm_drop_model', ARRAY['text'], 'boolean');
SELECT has_function('llamagpu', 'llm_grant_model', ARRAY['text', 'regrole']);
SELECT has_function('llamagpu', 'llm_revoke_model', ARRAY['text', 'regrole']);
SELECT has_function('llamagpu', 'llm_engine_status', '{}'::text[]);

-- defaults of llm_generate, as documented
SELECT is((SELECT pg_get_function_arguments('llamagpu.llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb)'::regprocedure)),
	'prompt text, model text DEFAULT NULL::text, max_tokens integer DEFAULT 256, temperature double precision DEFAULT 0.8, top_p double precision DEFAULT 0.95, top_k integer DEFAULT 40, seed bigint DEFAULT NULL::bigint, stop text[] DEFAULT NULL::text[], options jsonb DEFAULT NULL::jsonb',
	'llm_generate arguments and defaults');
SELECT is((SELECT pg_get_function_arguments('llamagpu.llm_tokenize(text, text)'::regprocedure)),
	'text, model text DEFAULT NULL::text', 'llm_tokenize arguments');

-- settings
SELECT is(current_setting('llamagpu.kv_cache_size'), '1GB', 'kv_cache_size default');
SELECT is(current_setting('llamagpu.request_timeout'), '0', 'request_timeout default');
SELECT throws_ok($$SET llamagpu.no_such_setting = 1$$, '42602', NULL, 'llamagpu.* prefix is reserved');

SELECT * FROM finish();
ROLLBACK;
