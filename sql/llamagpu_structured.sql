-- Structured output end to end with stories260K: JSON Schema, grammars,
-- labels, chat with a template and tool calls.  The model writes nonsense,
-- but constrained nonsense: every check is that an output is valid (fits
-- the schema, is one of the labels, calls a tool with valid arguments), not
-- what it says.
SET llamagpu.default_model = 'stories';

-- llm_generate_json: an object of the schema, for several seeds
CREATE TEMP TABLE schemas (name text PRIMARY KEY, s jsonb);
INSERT INTO schemas VALUES ('person', '{
	"type": "object",
	"properties": {
		"name": {"type": "string", "maxLength": 12},
		"age": {"type": "integer", "minimum": 0, "maximum": 120},
		"kind": {"enum": ["cat", "dog", "bird"]},
		"tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}
	},
	"required": ["name", "age", "kind", "tags"],
	"additionalProperties": false
}');
SELECT seed,
	   jsonb_typeof(j) = 'object' AS object,
	   (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(j) k) = ARRAY['age', 'kind', 'name', 'tags'] AS keys,
	   jsonb_typeof(j -> 'name') = 'string' AND length(j ->> 'name') <= 12 AS name,
	   jsonb_typeof(j -> 'age') = 'number' AND (j ->> 'age')::numeric BETWEEN 0 AND 120
		   AND (j ->> 'age')::numeric = trunc((j ->> 'age')::numeric) AS age,
	   j ->> 'kind' IN ('cat', 'dog', 'bird') AS kind,
	   jsonb_typeof(j -> 'tags') = 'array' AND jsonb_array_length(j -> 'tags') <= 3
		   AND NOT EXISTS (SELECT FROM jsonb_array_elements(j -> 'tags') e WHERE jsonb_typeof(e) <> 'boolean') AS tags
FROM schemas, generate_series(1, 6) seed,
	 LATERAL llm_generate_json('Once upon a time', s, seed => seed, max_tokens => 200) j
WHERE name = 'person'
ORDER BY seed;
-- greedy is reproducible
SELECT llm_generate_json('Lily', s, temperature => 0, max_tokens => 200) =
	   llm_generate_json('Lily', s, temperature => 0, max_tokens => 200) AS greedy_same
FROM schemas WHERE name = 'person';
-- other schema shapes: a boolean schema, a scalar, an array, a string holding the schema's text
SELECT jsonb_typeof(llm_generate_json('Once', 'true', seed => 1, max_tokens => 100)) IS NOT NULL AS any_value;
SELECT jsonb_typeof(j) = 'number' AND j::text::numeric BETWEEN 10 AND 20 AS bounded_number
FROM llm_generate_json('Once', '{"type": "number", "minimum": 10, "maximum": 20}', seed => 2, max_tokens => 40) j;
SELECT jsonb_typeof(j) = 'array' AND jsonb_array_length(j) BETWEEN 1 AND 2
	   AND NOT EXISTS (SELECT FROM jsonb_array_elements_text(j) e WHERE e NOT IN ('a', 'b')) AS enum_array
FROM llm_generate_json('Once', '{"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2}',
					   seed => 3, max_tokens => 40) j;
SELECT j ? 'zebra' AND j ? 'ant' AS text_schema
FROM llm_generate_json('Once', to_jsonb('{"type": "object", "properties": {"zebra": {"type": "boolean"}, "ant": {"type": "boolean"}}, "required": ["zebra", "ant"], "additionalProperties": false}'::text),
					   seed => 4, max_tokens => 60) j;

-- json_schema as an option of llm_generate: the text as generated.  A jsonb
-- schema lists properties in jsonb's key order ("ant" before "zebra"); a
-- string keeps the order written ("zebra" first); compact: no whitespace
SELECT position('"ant"' IN out) < position('"zebra"' IN out) AS jsonb_order, out ~ '\s' AS has_space
FROM llm_generate('Once', seed => 5, max_tokens => 60, options => '{"json_compact": true, "json_schema":
	{"type": "object", "properties": {"zebra": {"type": "boolean"}, "ant": {"type": "boolean"}},
	 "required": ["zebra", "ant"], "additionalProperties": false}}') out;
SELECT position('"zebra"' IN out) < position('"ant"' IN out) AS written_order, out::jsonb ?& ARRAY['zebra', 'ant'] AS valid
FROM llm_generate('Once', seed => 5, max_tokens => 60, options => jsonb_build_object('json_schema',
	'{"type": "object", "properties": {"zebra": {"type": "boolean"}, "ant": {"type": "boolean"}}, "required": ["zebra", "ant"], "additionalProperties": false}')) out;
-- json_strict: no properties beyond those listed, although the schema does not say so
SELECT seed, (SELECT coalesce(bool_and(k IN ('a', 'b')), true) FROM jsonb_object_keys(out::jsonb) k) AS only_listed
FROM generate_series(1, 4) seed,
	 LATERAL llm_generate('Once', seed => seed, max_tokens => 100,
						  options => '{"json_strict": true, "json_schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}}}') out
ORDER BY seed;

-- llm_generate_grammar: the output is in the grammar's language
SELECT seed, out ~ '^[0-9]{3}-[a-z]{1,3}$' AS matches
FROM generate_series(1, 4) seed,
	 LATERAL llm_generate_grammar('Once', E'root ::= digit digit digit "-" [a-z] [a-z]? [a-z]?\ndigit ::= [0-9]',
								  seed => seed, max_tokens => 16) out
ORDER BY seed;
SELECT bool_and(llm_generate_grammar('Once upon a time', 'root ::= "yes" | "no"', seed => seed, max_tokens => 8) IN ('yes', 'no')) AS yes_or_no
FROM generate_series(1, 6) seed;
-- the grammar option works with every generation function
SELECT llm_generate('Once', seed => 1, max_tokens => 8, options => '{"grammar": "root ::= \"up\" | \"down\""}') IN ('up', 'down') AS generate;
SELECT string_agg(piece, '') IN ('up', 'down') AS stream
FROM llm_generate_stream('Once', seed => 1, max_tokens => 8, options => '{"grammar": "root ::= \"up\" | \"down\""}') piece;
SELECT ord, output IN ('up', 'down') AS batch
FROM llm_generate_batch(ARRAY['Once', 'Lily', NULL, 'Tom'], seed => 1, max_tokens => 8,
						options => '{"grammar": "root ::= \"up\" | \"down\""}')
ORDER BY ord;

-- the grammar and the schema are part of the response cache's key
SELECT llm_cache_clear() >= 0 AS cleared;
SELECT llm_generate('Once', temperature => 0, max_tokens => 8, options => '{"cache": true, "grammar": "root ::= \"up\" | \"down\""}') IN ('up', 'down') AS first;
SELECT llm_generate('Once', temperature => 0, max_tokens => 8, options => '{"cache": true, "grammar": "root ::= \"left\" | \"right\""}') IN ('left', 'right') AS other_grammar;
SELECT llm_generate('Once', temperature => 0, max_tokens => 8, options => '{"cache": true, "grammar": "root ::= \"up\" | \"down\""}') IN ('up', 'down') AS again;
SELECT jsonb_typeof(llm_generate_json('Once', '{"type": "boolean"}', temperature => 0, max_tokens => 8, options => '{"cache": true}')) AS json_cached;
SELECT jsonb_typeof(llm_generate_json('Once', '{"type": "boolean"}', temperature => 0, max_tokens => 8, options => '{"cache": true}')) AS json_hit;
SELECT count(*) AS entries, sum(hits) AS hits FROM llamagpu.response_cache;
SELECT llm_cache_clear() AS cleared;

-- a table job writes constrained values into a jsonb column
CREATE TABLE structured_src (id int PRIMARY KEY, body text);
INSERT INTO structured_src SELECT i, 'Story ' || i FROM generate_series(1, 4) i;
CREATE TABLE structured_out (id int, answer jsonb);
CREATE FUNCTION structured_job_wait(job text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	s text;
BEGIN
	FOR i IN 1 .. 600 LOOP
		SELECT state INTO s FROM llamagpu.llm_stat_jobs WHERE name = job;
		IF s <> 'running' THEN
			RETURN s;
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
	RETURN 'timed out: ' || s;
END
$$;
SELECT llm_job_create('structured', 'structured_src', 'id', 'body', 'structured_out', 'answer', 'stories',
	'{"max_tokens": 40, "seed": 1, "json_schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false}}') > 0 AS created;
SELECT structured_job_wait('structured') AS state;
SELECT id, jsonb_typeof(answer -> 'ok') AS ok FROM structured_out ORDER BY id;
SELECT llm_job_drop('structured');

-- llm_classify: always one of the labels; NULL input gives NULL
CREATE TEMP TABLE reviews (id int, body text);
INSERT INTO reviews VALUES (1, 'I loved every page of this book.'), (2, 'The worst film I have seen.'),
						   (3, 'It was fine.'), (4, NULL), (5, '');
SELECT id, CASE WHEN body IS NULL THEN label IS NULL ELSE label IN ('positive', 'negative', 'neutral') END AS valid
FROM reviews, LATERAL llm_classify(body, ARRAY['positive', 'negative', 'neutral']) label
ORDER BY id;
-- greedy by default, so repeatable
SELECT llm_classify('Once upon a time', ARRAY['story', 'poem']) = llm_classify('Once upon a time', ARRAY['story', 'poem']) AS repeatable;
-- labels that are prefixes of each other, that need escaping in the grammar, non-ASCII
SELECT bool_and(llm_classify('Once upon a time', ARRAY['cat', 'category', 'say "hi"', E'back\\slash', 'café', E'two\nlines'],
							 temperature => 1, seed => seed)
				IN ('cat', 'category', 'say "hi"', E'back\\slash', 'café', E'two\nlines')) AS always_a_label
FROM generate_series(1, 8) seed;
SELECT llm_classify('Tom', ARRAY['boy', 'girl'], instruction => 'Is this a boy or a girl?') IN ('boy', 'girl') AS instruction;

-- llm_chat with a template given as an option (stories260K has none)
CREATE TEMP TABLE chat_opts AS SELECT jsonb_build_object('max_tokens', 16, 'temperature', 0, 'chat_template',
	$t${% for m in messages %}{{ m.role }}: {{ m.content or '' }}
{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}$t$) AS o;
SELECT r ->> 'object' AS object, r ->> 'id' ~ '^chatcmpl-[0-9a-f]{24}$' AS id,
	   (r ->> 'created')::bigint BETWEEN extract(epoch FROM now())::bigint - 600 AND extract(epoch FROM now())::bigint + 600 AS created,
	   r ->> 'model' AS model, jsonb_array_length(r -> 'choices') AS choices, r #>> '{choices,0,index}' AS index,
	   r #>> '{choices,0,message,role}' AS role, jsonb_typeof(r #> '{choices,0,message,content}') AS content,
	   r #>> '{choices,0,finish_reason}' IN ('stop', 'length') AS finish,
	   (r #>> '{usage,completion_tokens}')::int BETWEEN 1 AND 16 AS completion_tokens,
	   (r #>> '{usage,total_tokens}')::int = (r #>> '{usage,prompt_tokens}')::int + (r #>> '{usage,completion_tokens}')::int AS total
FROM chat_opts, llm_chat('[{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Once upon a time"}]',
						 options => o) r;
-- the template renders the conversation; the greedy answer is llm_generate's on the rendered text
SELECT (r #>> '{usage,prompt_tokens}')::int = llm_count_tokens(E'system: You tell stories.\nuser: Once upon a time\nassistant:') AS prompt_tokens,
	   r #>> '{choices,0,message,content}' = llm_generate(E'system: You tell stories.\nuser: Once upon a time\nassistant:',
														 max_tokens => 16, temperature => 0) AS same_as_generate
FROM chat_opts, llm_chat('[{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Once upon a time"}]',
						 options => o) r;
-- response_format: the content is JSON of the schema
SELECT jsonb_typeof(c) = 'object' AND jsonb_typeof(c -> 'ok') = 'boolean' AS json_content
FROM chat_opts, llm_chat('[{"role": "user", "content": "Answer"}]', options => o || '{"max_tokens": 40}',
	response_format => '{"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": false}}}') r,
	 LATERAL (SELECT (r #>> '{choices,0,message,content}')::jsonb AS c) x;
-- (an object of anything may not end within max_tokens: then it is a prefix of one)
SELECT CASE WHEN r #>> '{choices,0,finish_reason}' = 'stop'
			THEN jsonb_typeof((r #>> '{choices,0,message,content}')::jsonb) = 'object'
			ELSE left(r #>> '{choices,0,message,content}', 1) = '{' END AS json_object
FROM chat_opts, llm_chat('[{"role": "user", "content": "Answer"}]', options => o || '{"max_tokens": 60}',
						 response_format => '{"type": "json_object"}') r;

-- tools: a call that must be made (tool_choice required) has valid arguments and runs
CREATE FUNCTION structured_add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b';
SELECT name FROM llm_register_tool('structured_add(int, int)', 'Adds a and b');
SELECT r #>> '{choices,0,finish_reason}' AS finish,
	   jsonb_array_length(r #> '{choices,0,message,tool_calls}') >= 1 AS has_calls,
	   r #>> '{choices,0,message,tool_calls,0,type}' AS type,
	   r #>> '{choices,0,message,tool_calls,0,function,name}' AS name,
	   jsonb_typeof(r #> '{choices,0,message,tool_calls,0,function,arguments}') AS arguments_is,
	   (r #>> '{choices,0,message,tool_calls,0,function,arguments}')::jsonb ?& ARRAY['a', 'b'] AS arguments_valid,
	   (llm_run_tool_calls(r) -> 0 ->> 'content')::bigint =
		   ((r #>> '{choices,0,message,tool_calls,0,function,arguments}')::jsonb ->> 'a')::bigint +
		   ((r #>> '{choices,0,message,tool_calls,0,function,arguments}')::jsonb ->> 'b')::bigint AS tool_ran
FROM chat_opts, llm_chat('[{"role": "user", "content": "What is 2 + 3?"}]', tools => '["structured_add"]',
						 tool_choice => 'required', options => o || '{"max_tokens": 200}') r;
-- a named tool among several, as an OpenAI definition (json_strict: its
-- schema's silence on additionalProperties forbids them, so the call ends)
SELECT r #>> '{choices,0,message,tool_calls,0,function,name}' AS name,
	   (r #>> '{choices,0,message,tool_calls,0,function,arguments}')::jsonb ->> 'city' IN ('Paris', 'Rome') AS arguments_valid,
	   (SELECT array_agg(k) FROM jsonb_object_keys((r #>> '{choices,0,message,tool_calls,0,function,arguments}')::jsonb) k) AS keys
FROM chat_opts, llm_chat('[{"role": "user", "content": "Weather?"}]', tool_choice => 'weather',
	options => o || '{"max_tokens": 200, "json_strict": true}',
	tools => '["structured_add", {"type": "function", "function": {"name": "weather", "description": "The weather in a city",
			  "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}, "required": ["city"]}}}]') r;

-- a chat loop in plpgsql: call the model, run its tool calls, give it the results, until it answers
CREATE FUNCTION structured_chat_loop(question text, opts jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
	messages jsonb := jsonb_build_array(jsonb_build_object('role', 'user', 'content', question));
	response jsonb;
	choice text := 'required';		-- the first turn must call the tool, later ones must not
BEGIN
	FOR turn IN 1 .. 3 LOOP
		response := llm_chat(messages, tools => '["structured_add"]', tool_choice => choice, options => opts);
		messages := messages || jsonb_build_array(response #> '{choices,0,message}');
		EXIT WHEN response #>> '{choices,0,finish_reason}' <> 'tool_calls';
		messages := messages || llm_run_tool_calls(response);
		choice := 'none';
	END LOOP;
	RETURN messages;
END
$$;
SELECT jsonb_array_length(m) AS messages,
	   m #>> '{1,role}' AS second, m #>> '{2,role}' AS third, m #>> '{3,role}' AS fourth,
	   m #>> '{2,tool_call_id}' = m #>> '{1,tool_calls,0,id}' AS ids_match,
	   jsonb_typeof(m #> '{3,content}') AS answer
FROM chat_opts, structured_chat_loop('What is 2 + 3?', o || '{"max_tokens": 200}') m;

-- a real model's template (Llama 3.1, JSON tool calls, the ipython role for results)
\set llama31 `cat "${LLAMAGPU_SHARED:-../shared}/fixtures/chat-templates/meta-llama-Llama-3.1-8B-Instruct.jinja"`
CREATE TEMP TABLE llama_opts AS SELECT jsonb_build_object('chat_template', :'llama31', 'max_tokens', 200, 'temperature', 0) AS o;
CREATE TEMP TABLE turn1 AS
SELECT llm_chat('[{"role": "user", "content": "What is 2 + 3?"}]', tools => '["structured_add"]', tool_choice => 'required',
				options => o) AS r
FROM llama_opts;
SELECT r #>> '{choices,0,finish_reason}' AS finish, r #>> '{choices,0,message,tool_calls,0,function,name}' AS name,
	   jsonb_typeof(r #> '{choices,0,message,content}') AS content
FROM turn1;
-- the second turn renders the call and its result; arguments sent as a JSON string (as
-- llm_chat returns them) render exactly as the same arguments given as an object
SELECT (a #>> '{usage,prompt_tokens}')::int > (r #>> '{usage,prompt_tokens}')::int AS longer_prompt,
	   a #>> '{usage,prompt_tokens}' = b #>> '{usage,prompt_tokens}' AS arguments_as_object
FROM turn1, llama_opts,
	 LATERAL (SELECT jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'What is 2 + 3?'),
									   r #> '{choices,0,message}') || llm_run_tool_calls(r) AS m) conv,
	 LATERAL llm_chat(conv.m, tools => '["structured_add"]', tool_choice => 'none', options => o || '{"max_tokens": 4}') a,
	 LATERAL llm_chat(jsonb_set(conv.m, '{1,tool_calls,0,function,arguments}', (conv.m #>> '{1,tool_calls,0,function,arguments}')::jsonb),
					  tools => '["structured_add"]', tool_choice => 'none', options => o || '{"max_tokens": 4}') b;

-- errors the engine finds: invalid grammars and schemas, templates
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_generate_grammar('Hi', 'root ::= undefined_rule')$$);
SELECT regress_error($$SELECT llm_generate_grammar('Hi', 'root ::= "unterminated')$$);
SELECT regress_error($$SELECT llm_generate_grammar('Hi', 'start ::= "x"')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '{"type": "nonsense"}')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '{"$ref": "#/$defs/missing"}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"json_schema": {"type": "object", "properties": {"a": {"type": "frobnicate"}}}}')$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], options => '{"grammar": "root ::= ("}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', options => '{"chat_template": "{% if %}"}')$$);
SELECT regress_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', options => '{"chat_template": "{{ raise_exception(\"no users here\") }}"}')$$);
-- a value cut short by max_tokens is an error, never a guess
SELECT regress_error($$SELECT llm_generate_json('Once', '{"type": "array", "items": {"type": "integer"}, "minItems": 40}', max_tokens => 5)$$);

-- errors found before anything is sent
SELECT regress_error($$SELECT llm_generate_json(NULL, '{}')$$);
SELECT regress_error($$SELECT llm_generate_json('', '{}')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', NULL)$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '[1]')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '42')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '"not json"')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '"[1, 2]"')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '{}', max_tokens => 0)$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '{}', options => '{"json_schema": {}}')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '{}', options => '{"grammar": "root ::= \"x\""}')$$);
SELECT regress_error($$SELECT llm_generate_json('Hi', '{}', options => '{"json_compact": 1}')$$);
SELECT regress_error($$SELECT llm_generate_grammar(NULL, 'root ::= "x"')$$);
SELECT regress_error($$SELECT llm_generate_grammar('Hi', NULL)$$);
SELECT regress_error($$SELECT llm_generate_grammar('Hi', '')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"grammar": "root ::= \"x\"", "json_schema": {}}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"grammar": ""}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"grammar": 5}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"json_schema": [1]}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"json_strict": "yes"}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"chat_template": "x"}')$$);
SELECT regress_error($$SELECT llm_classify('Hi', NULL)$$);
SELECT regress_error($$SELECT llm_classify('Hi', '{}')$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY['a', NULL])$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY['a', ''])$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY['a', 'b', 'a'])$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY[['a', 'b'], ['c', 'd']])$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY['a', 'b'], instruction => '')$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY['a', 'b'], temperature => -1)$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY['a', 'b'], options => '{"grammar": "root ::= \"x\""}')$$);
SELECT regress_error($$SELECT llm_classify('Hi', ARRAY['a', 'b'], model => 'nope')$$);
\pset tuples_only off
\pset format aligned

SELECT llm_unregister_tool('structured_add');
-- nothing is left running in the engine
SELECT count(*) AS in_flight FROM llm_stat_activity;
