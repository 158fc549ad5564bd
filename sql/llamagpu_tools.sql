-- Tools: registering Postgres functions (the JSON Schema derived from the
-- signature), running tool calls with llm_run_tool_calls as the calling
-- role, and the checks llm_chat makes before anything reaches the engine.
SET llamagpu.default_model = 'stories';

-- the schema of a function's arguments: names, types, defaults
CREATE TYPE tool_color AS ENUM ('red', 'green', 'blue');
CREATE TYPE tool_point AS (x int, y float8);
CREATE DOMAIN tool_percent AS numeric CHECK (VALUE BETWEEN 0 AND 100);
CREATE FUNCTION tool_add(a int, b int DEFAULT 1) RETURNS int LANGUAGE sql AS 'SELECT a + b';
COMMENT ON FUNCTION tool_add IS 'Adds two integers';
CREATE FUNCTION tool_types(s text, v varchar, d date, ts timestamptz, t time, u uuid, c tool_color,
						   ids int[], tags text[], j jsonb, p tool_point, n numeric, f float8,
						   ok boolean, small smallint, big bigint, pct tool_percent DEFAULT 50)
	RETURNS jsonb LANGUAGE sql
	AS $$SELECT jsonb_build_object('s', s, 'v', v, 'd', d, 'ts', ts, 't', t, 'u', u, 'c', c, 'ids', ids,
								   'tags', tags, 'j', j, 'p', p, 'n', n, 'f', f, 'ok', ok,
								   'small', small, 'big', big, 'pct', pct)$$;
SELECT jsonb_pretty(llm_tool_schema('tool_add(int, int)'));
SELECT jsonb_pretty(llm_tool_schema('tool_types'::regproc::regprocedure));

-- functions that cannot be tools, each with its reason
CREATE FUNCTION tool_unnamed(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION tool_out(a int, OUT b int) LANGUAGE sql AS 'SELECT a';
CREATE FUNCTION tool_inout(INOUT a int) LANGUAGE sql AS 'SELECT a';
CREATE FUNCTION tool_variadic(VARIADIC xs int[]) RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION tool_table(a int) RETURNS TABLE (x int) LANGUAGE sql AS 'SELECT a';
CREATE FUNCTION tool_point_arg(p point) RETURNS text LANGUAGE sql AS 'SELECT p::text';
CREATE FUNCTION tool_any(x anyelement) RETURNS text LANGUAGE sql AS 'SELECT x::text';
CREATE PROCEDURE tool_proc(a int) LANGUAGE sql AS 'SELECT 1';
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_tool_schema('tool_unnamed(int)')$$);
SELECT regress_error($$SELECT llm_tool_schema('tool_out(int)')$$);
SELECT regress_error($$SELECT llm_tool_schema('tool_inout(int)')$$);
SELECT regress_error($$SELECT llm_tool_schema('tool_variadic(int[])')$$);
SELECT regress_error($$SELECT llm_tool_schema('tool_table(int)')$$);
SELECT regress_error($$SELECT llm_tool_schema('tool_point_arg(point)')$$);
SELECT regress_error($$SELECT llm_tool_schema('tool_any(anyelement)')$$);
SELECT regress_error($$SELECT llm_tool_schema('tool_proc(int)')$$);
SELECT regress_error($$SELECT llm_tool_schema('max(int)')$$);
\pset tuples_only off
\pset format aligned

-- registering: the name is the function's unless given; the description its comment unless given
SELECT name, fn, description, parameters = llm_tool_schema(fn) AS schema_derived, registered_by
FROM llm_register_tool('tool_add(int, int)');
SELECT name, fn, description FROM llm_register_tool('tool_types'::regproc::regprocedure, 'Echoes its arguments', 'echo');
CREATE FUNCTION tool_whoami() RETURNS text LANGUAGE sql AS 'SELECT current_user::text';
CREATE FUNCTION tool_series(n int) RETURNS SETOF int LANGUAGE sql AS 'SELECT generate_series(1, n)';
CREATE FUNCTION tool_nothing(x text DEFAULT NULL) RETURNS text LANGUAGE sql AS 'SELECT NULL::text';
SELECT name FROM llm_register_tool('tool_whoami()', 'The current role');
SELECT name FROM llm_register_tool('tool_series(int)', 'The integers 1 to n');
SELECT name FROM llm_register_tool('tool_nothing(text)');
CREATE FUNCTION tool_check(d date DEFAULT NULL, c tool_color DEFAULT NULL, ids int[] DEFAULT NULL,
						   pct tool_percent DEFAULT NULL) RETURNS text LANGUAGE sql AS 'SELECT concat(d, c, ids, pct)';
SELECT name FROM llm_register_tool('tool_check(date, tool_color, int[], tool_percent)');
SELECT name, fn, description FROM llm_tools ORDER BY name;
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_register_tool('tool_add(int, int)')$$);
SELECT regress_error($$SELECT llm_register_tool('tool_whoami()', NULL, 'tool_add')$$);
SELECT regress_error($$SELECT llm_register_tool('tool_add(int, int)', NULL, 'bad name')$$);
SELECT regress_error($$SELECT llm_register_tool('tool_unnamed(int)')$$);
SELECT regress_error($$SELECT llm_register_tool(NULL)$$);
SELECT regress_error($$SELECT llm_unregister_tool('no_such_tool')$$);
SELECT count(*) AS tools FROM llm_tools;
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_check", "arguments": {"ids": [1, "x"]}}}]')$$);

-- running tool calls: an llm_chat answer, a message, or the array of calls
SELECT jsonb_pretty(llm_run_tool_calls('{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0,
	"message": {"role": "assistant", "content": null, "tool_calls": [
		{"id": "call_1", "type": "function", "function": {"name": "tool_add", "arguments": "{\"a\": 2, \"b\": 40}"}},
		{"id": "call_2", "type": "function", "function": {"name": "tool_add", "arguments": "{\"a\": 2}"}}]},
	"finish_reason": "tool_calls"}]}'));
SELECT llm_run_tool_calls('{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
	"function": {"name": "tool_series", "arguments": "{\"n\": 3}"}}]}') -> 0 ->> 'content' AS setof_result;
SELECT llm_run_tool_calls('[{"id": "c", "type": "function", "function": {"name": "tool_whoami", "arguments": "{}"}}]') -> 0 ->> 'content' AS who;
SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_nothing", "arguments": ""}}]') -> 0 ->> 'content' AS null_result;
-- every parameter type, from JSON (arguments as an object are taken too)
SELECT jsonb_pretty((llm_run_tool_calls('[{"id": "c", "type": "function", "function": {"name": "echo", "arguments": {
	"s": "text", "v": "var", "d": "2024-02-29", "ts": "2024-02-29T12:30:00Z", "t": "12:30:00",
	"u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "c": "green", "ids": [1, 2, 3], "tags": ["x", "y"],
	"j": {"nested": [1, {"k": null}]}, "p": {"x": 1, "y": 2.5}, "n": 1.25, "f": 1e3, "ok": true,
	"small": 7, "big": 9007199254740993, "pct": 12.5}}}]') -> 0 ->> 'content')::jsonb);
-- no tool calls: no tool messages
SELECT llm_run_tool_calls('{"role": "assistant", "content": "hello"}') AS no_calls,
	   llm_run_tool_calls('{"choices": [{"message": {"role": "assistant", "content": "hi", "tool_calls": null}}]}') AS null_calls,
	   llm_run_tool_calls(NULL) IS NULL AS null_in_null_out;

-- bad tool calls
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "no_such_tool", "arguments": "{}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "{}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "{\"a\": 1, \"c\": 2}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "{\"a\": \"one\"}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "{\"a\": 1.5}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "{\"a\": 3000000000}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "{\"a\": 1"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "[1]"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_check", "arguments": {"d": "2024-02-30"}}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_check", "arguments": {"c": "purple"}}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_check", "arguments": {"ids": 5}}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_add", "arguments": "{\"a\": 1}"}}, {"id": "d", "function": {"arguments": "{}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"function": {"name": "tool_add", "arguments": "{\"a\": 1}"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "type": "retrieval", "function": {"name": "tool_add"}}]')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('"hello"')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('{"choices": []}')$$);
SELECT regress_error($$SELECT llm_run_tool_calls('{"tool_calls": 5}')$$);
-- the function's own errors come through
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_check", "arguments": {"pct": 101}}}]')$$);

-- privileges: tools run as the calling role, which needs EXECUTE
CREATE ROLE regress_tool_user IN ROLE llm_user;
CREATE ROLE regress_tool_admin IN ROLE llm_admin;
CREATE FUNCTION tool_secret(x int) RETURNS text LANGUAGE sql AS 'SELECT ''secret '' || x';
REVOKE EXECUTE ON FUNCTION tool_secret(int) FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO regress_tool_user;
SET ROLE regress_tool_admin;
SELECT name FROM llamagpu.llm_register_tool('tool_secret(int)', 'A secret');
SET ROLE regress_tool_user;
SELECT llamagpu.llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_whoami", "arguments": "{}"}}]') -> 0 ->> 'content' AS runs_as_caller;
SELECT regress_error($$SELECT llamagpu.llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_secret", "arguments": "{\"x\": 1}"}}]')$$);
-- llm_user reads the registry but does not change it
SELECT count(*) > 0 AS sees_tools FROM llamagpu.llm_tools;
SELECT regress_error($$SELECT llamagpu.llm_register_tool('tool_whoami()', NULL, 'mine')$$);
SELECT regress_error($$SELECT llamagpu.llm_unregister_tool('tool_add')$$);
SELECT regress_error($$DELETE FROM llamagpu.llm_tools$$);
RESET ROLE;
GRANT EXECUTE ON FUNCTION tool_secret(int) TO regress_tool_user;
SET ROLE regress_tool_user;
SELECT llamagpu.llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_secret", "arguments": "{\"x\": 1}"}}]') -> 0 ->> 'content' AS granted;
RESET ROLE;
SET ROLE regress_tool_admin;
SELECT llamagpu.llm_unregister_tool('tool_secret');
RESET ROLE;

-- a dropped function: its tool cannot run
CREATE FUNCTION tool_gone(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
SELECT name FROM llm_register_tool('tool_gone(int)');
DROP FUNCTION tool_gone(int);
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c", "function": {"name": "tool_gone", "arguments": "{\"x\": 1}"}}]')$$);
SELECT llm_unregister_tool('tool_gone');

-- llm_chat checks its arguments before anything is sent
SELECT regress_error($$SELECT llm_chat(NULL)$$);
SELECT regress_error($$SELECT llm_chat('{"role": "user", "content": "hi"}')$$);
SELECT regress_error($$SELECT llm_chat('[]')$$);
SELECT regress_error($$SELECT llm_chat('[1]')$$);
SELECT regress_error($$SELECT llm_chat('[{"content": "hi"}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "robot", "content": "hi"}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user"}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": null}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": 5}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": [{"type": "text"}]}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi", "name": 1}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": null}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": {}}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 5}}]}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1, 2]"}}]}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{\"a\": "}}]}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": " "}}]}, {"role": "tool", "tool_call_id": "c", "content": "x"}]', model => 'nope')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}, {"role": "tool", "content": "42"}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '{}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '[1]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '["no_such_tool"]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '[{"type": "retrieval"}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '[{"type": "function", "function": {"name": "bad name"}}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '[{"type": "function", "function": {"name": "f", "parameters": [1]}}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '["tool_add", {"type": "function", "function": {"name": "tool_add"}}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tool_choice => 'required')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '["tool_add"]', tool_choice => 'tool_sub')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', response_format => '{"type": "xml"}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', response_format => '"json_object"')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', response_format => '{"type": "json_schema"}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', response_format => '{"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', tools => '["tool_add"]', options => '{"grammar": "root ::= \"x\""}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', response_format => '{"type": "json_object"}', options => '{"json_schema": {"type": "object"}}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', options => '{"batch_size": 4}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', options => '{"max_tokens": 0}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', options => '{"chat_template": ""}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', model => 'nope')$$);
\pset tuples_only off
\pset format aligned

SELECT llm_unregister_tool(name) FROM llm_tools WHERE name IN ('tool_whoami', 'tool_series', 'tool_nothing', 'tool_check') ORDER BY name;
DROP FUNCTION tool_secret(int);
REVOKE USAGE ON SCHEMA public FROM regress_tool_user;
DROP ROLE regress_tool_user, regress_tool_admin;
