-- Bad input to the generation and tokenizer functions: each gets its own
-- SQLSTATE, a message and (where useful) a hint; regress_error() shows them.
\pset format unaligned
\pset tuples_only on
SET llamagpu.default_model = 'stories';

-- prompt
SELECT regress_error($$SELECT llm_generate(NULL)$$);
SELECT regress_error($$SELECT llm_generate('')$$);
-- max_tokens
SELECT regress_error($$SELECT llm_generate('Hi', max_tokens => 0)$$);
SELECT regress_error($$SELECT llm_generate('Hi', max_tokens => -5)$$);
SELECT regress_error($$SELECT llm_generate('Hi', max_tokens => 2000000)$$);
-- temperature
SELECT regress_error($$SELECT llm_generate('Hi', temperature => -0.5)$$);
SELECT regress_error($$SELECT llm_generate('Hi', temperature => 'NaN')$$);
SELECT regress_error($$SELECT llm_generate('Hi', temperature => 'Infinity')$$);
-- top_p, top_k
SELECT regress_error($$SELECT llm_generate('Hi', top_p => 1.5)$$);
SELECT regress_error($$SELECT llm_generate('Hi', top_p => 'NaN')$$);
SELECT regress_error($$SELECT llm_generate('Hi', top_k => -1)$$);
-- stop strings
SELECT regress_error($$SELECT llm_generate('Hi', stop => ARRAY['a', NULL])$$);
SELECT regress_error($$SELECT llm_generate('Hi', stop => ARRAY[''])$$);
-- options
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"temprature": 0.5}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"min_p": "high"}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"min_p": 2}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"penalty_last_n": 1.5}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '"min_p"')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"logit_bias": [1]}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"logit_bias": {"x": 1}}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"logit_bias": {"1": "a"}}')$$);
SELECT regress_error($$SELECT llm_generate('Hi', options => '{"logit_bias": {"100000": -1}}')$$);
-- models
SELECT regress_error($$SELECT llm_generate('Hi', model => 'nope')$$);
RESET llamagpu.default_model;
SELECT regress_error($$SELECT llm_generate('Hi')$$);
SELECT regress_error($$SELECT llm_tokenize('Hi')$$);
SET llamagpu.default_model = 'stories';
-- a prompt longer than the context
SELECT regress_error($$SELECT llm_generate(repeat('Once upon a time ', 10), model => 'stories_ctx16')$$);
-- tokenizer
SELECT regress_error($$SELECT llm_detokenize('{1, 100000}')$$);
SELECT regress_error($$SELECT llm_detokenize('{1, -1}')$$);
SELECT regress_error($$SELECT llm_detokenize('{1, NULL}')$$);
SELECT llm_tokenize(NULL) IS NULL AS null_in_null_out;
-- the stream function checks the same things
SELECT regress_error($$SELECT * FROM llm_generate_stream('')$$);
SELECT regress_error($$SELECT * FROM llm_generate_stream('Hi', max_tokens => 0)$$);
