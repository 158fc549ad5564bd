-- pgTAP: roles and privileges.
BEGIN;
SELECT plan(29);

SELECT has_role('llm_user');
SELECT has_role('llm_admin');
SELECT ok(NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'llm_user'), 'llm_user is NOLOGIN');
SELECT ok(NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'llm_admin'), 'llm_admin is NOLOGIN');
SELECT is_member_of('llm_user', 'llm_admin');

-- nothing that runs a model is executable by PUBLIC
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run llm_generate');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_generate_stream(text, text, int, float8, float8, int, bigint, text[], jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run llm_generate_stream');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_tokenize(text, text)', 'EXECUTE'), 'PUBLIC cannot tokenize');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_detokenize(int[], text)', 'EXECUTE'), 'PUBLIC cannot detokenize');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_count_tokens(text, text)', 'EXECUTE'), 'PUBLIC cannot count tokens');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_register_model(text, text, jsonb)', 'EXECUTE'), 'PUBLIC cannot register');

-- llm_user generates, llm_admin manages
SELECT function_privs_are('llamagpu', 'llm_generate',
	ARRAY['text', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb'],
	'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_tokenize', ARRAY['text', 'text'], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_register_model', ARRAY['text', 'text', 'jsonb'], 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_register_model', ARRAY['text', 'text', 'jsonb'], 'llm_admin', ARRAY['EXECUTE']);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_register_remote_model(text, text, text, text, jsonb)', 'EXECUTE'),
		  'PUBLIC cannot register remote models');
SELECT function_privs_are('llamagpu', 'llm_register_remote_model', ARRAY['text', 'text', 'text', 'text', 'jsonb'], 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_register_remote_model', ARRAY['text', 'text', 'text', 'text', 'jsonb'], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_load_model', ARRAY['text'], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_unload_model', ARRAY['text'], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_drop_model', ARRAY['text'], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_grant_model', ARRAY['text', 'regrole'], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_grant_model', ARRAY['text', 'regrole'], 'llm_user', '{}'::text[]);

-- tables
SELECT table_privs_are('llamagpu', 'llm_models', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_models', 'llm_admin', ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']);
SELECT table_privs_are('llamagpu', 'llm_model_grants', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_models', 'public', '{}'::text[]);
SELECT schema_privs_are('llamagpu', 'llm_user', ARRAY['USAGE']);

-- a user without llm_user is refused
CREATE ROLE tap_llm_stranger;
SET ROLE tap_llm_stranger;
SELECT throws_ok($$SELECT llamagpu.llm_tokenize('hi', 'x')$$, '42501', NULL, 'non-llm_user is refused');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
