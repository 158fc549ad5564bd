-- pgTAP: the structured-output functions, the tools registry and who may use them.
BEGIN;
SELECT plan(39);

-- objects
SELECT has_table('llamagpu', 'llm_tools', 'tools registry table');
SELECT columns_are('llamagpu', 'llm_tools',
	ARRAY['name', 'fn', 'description', 'parameters', 'registered_by', 'registered_at']);
SELECT col_is_pk('llamagpu', 'llm_tools', 'name', 'tool name is the primary key');
SELECT col_type_is('llamagpu', 'llm_tools', 'fn', 'regprocedure', 'fn is regprocedure');
SELECT col_is_unique('llamagpu', 'llm_tools', 'fn', 'a function is registered once');
SELECT col_type_is('llamagpu', 'llm_tools', 'parameters', 'jsonb', 'parameters is jsonb');
SELECT function_returns('llamagpu', 'llm_generate_json',
	ARRAY['text', 'jsonb', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'jsonb'], 'jsonb');
SELECT function_returns('llamagpu', 'llm_generate_grammar',
	ARRAY['text', 'text', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb'], 'text');
SELECT function_returns('llamagpu', 'llm_classify',
	ARRAY['text', 'text[]', 'text', 'text', 'double precision', 'bigint', 'jsonb'], 'text');
SELECT function_returns('llamagpu', 'llm_chat', ARRAY['jsonb', 'text', 'jsonb', 'text', 'jsonb', 'jsonb'], 'jsonb');
SELECT function_returns('llamagpu', 'llm_run_tool_calls', ARRAY['jsonb'], 'jsonb');
SELECT function_returns('llamagpu', 'llm_register_tool', ARRAY['regprocedure', 'text', 'text'], 'llamagpu.llm_tools');
SELECT function_returns('llamagpu', 'llm_unregister_tool', ARRAY['text'], 'boolean');
SELECT function_returns('llamagpu', 'llm_tool_schema', ARRAY['regprocedure'], 'jsonb');

-- signatures and defaults, as documented
SELECT is((SELECT pg_get_function_arguments('llamagpu.llm_chat(jsonb, text, jsonb, text, jsonb, jsonb)'::regprocedure)),
	'messages jsonb, model text DEFAULT NULL::text, tools jsonb DEFAULT NULL::jsonb, tool_choice text DEFAULT ''auto''::text, response_format jsonb DEFAULT NULL::jsonb, options jsonb DEFAULT NULL::jsonb',
	'llm_chat arguments and defaults');
SELECT is((SELECT pg_get_function_arguments('llamagpu.llm_generate_json(text, jsonb, text, int, float8, float8, int, bigint, jsonb)'::regprocedure)),
	'prompt text, schema jsonb, model text DEFAULT NULL::text, max_tokens integer DEFAULT 1024, temperature double precision DEFAULT 0.8, top_p double precision DEFAULT 0.95, top_k integer DEFAULT 40, seed bigint DEFAULT NULL::bigint, options jsonb DEFAULT NULL::jsonb',
	'llm_generate_json arguments and defaults');
SELECT is((SELECT pg_get_function_arguments('llamagpu.llm_classify(text, text[], text, text, float8, bigint, jsonb)'::regprocedure)),
	'input text, labels text[], model text DEFAULT NULL::text, instruction text DEFAULT NULL::text, temperature double precision DEFAULT 0, seed bigint DEFAULT NULL::bigint, options jsonb DEFAULT NULL::jsonb',
	'llm_classify arguments and defaults');

-- nothing that runs a model or a tool is executable by PUBLIC
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_generate_json(text, jsonb, text, int, float8, float8, int, bigint, jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run llm_generate_json');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_generate_grammar(text, text, text, int, float8, float8, int, bigint, text[], jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run llm_generate_grammar');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_classify(text, text[], text, text, float8, bigint, jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run llm_classify');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_chat(jsonb, text, jsonb, text, jsonb, jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run llm_chat');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_run_tool_calls(jsonb)', 'EXECUTE'),
		  'PUBLIC cannot run tool calls');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_register_tool(regprocedure, text, text)', 'EXECUTE'),
		  'PUBLIC cannot register tools');

-- llm_user generates and runs tools; llm_admin registers them
SELECT function_privs_are('llamagpu', 'llm_generate_json',
	ARRAY['text', 'jsonb', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'jsonb'],
	'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_generate_grammar',
	ARRAY['text', 'text', 'text', 'integer', 'double precision', 'double precision', 'integer', 'bigint', 'text[]', 'jsonb'],
	'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_classify',
	ARRAY['text', 'text[]', 'text', 'text', 'double precision', 'bigint', 'jsonb'], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_chat', ARRAY['jsonb', 'text', 'jsonb', 'text', 'jsonb', 'jsonb'],
	'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_run_tool_calls', ARRAY['jsonb'], 'llm_user', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_register_tool', ARRAY['regprocedure', 'text', 'text'], 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_register_tool', ARRAY['regprocedure', 'text', 'text'], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_unregister_tool', ARRAY['text'], 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_unregister_tool', ARRAY['text'], 'llm_admin', ARRAY['EXECUTE']);
SELECT table_privs_are('llamagpu', 'llm_tools', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_tools', 'llm_admin', ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']);
SELECT table_privs_are('llamagpu', 'llm_tools', 'public', '{}'::text[]);

-- an llm_user cannot register a tool; an llm_admin can, and only for a valid function
CREATE ROLE tap_tool_user IN ROLE llm_user;
CREATE ROLE tap_tool_admin IN ROLE llm_admin;
CREATE FUNCTION public.tap_tool_double(x int) RETURNS int LANGUAGE sql AS 'SELECT 2 * x';
SET ROLE tap_tool_user;
SELECT throws_ok($$SELECT llamagpu.llm_register_tool('public.tap_tool_double(int)')$$, '42501', NULL,
				 'llm_user cannot register tools');
SET ROLE tap_tool_admin;
SELECT is((SELECT name FROM llamagpu.llm_register_tool('public.tap_tool_double(int)', 'Doubles x')),
		  'tap_tool_double', 'llm_admin registers a tool');
SET ROLE tap_tool_user;
SELECT is(llamagpu.llm_run_tool_calls('[{"id": "1", "function": {"name": "tap_tool_double", "arguments": "{\"x\": 21}"}}]') -> 0 ->> 'content',
		  '42', 'llm_user runs a registered tool it may execute');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION public.tap_tool_double(int) FROM PUBLIC;
SET ROLE tap_tool_user;
SELECT throws_ok($$SELECT llamagpu.llm_run_tool_calls('[{"id": "1", "function": {"name": "tap_tool_double", "arguments": "{\"x\": 1}"}}]')$$,
				 '42501', NULL, 'a tool the role may not execute is refused');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
