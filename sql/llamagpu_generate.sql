-- Generation with stories260K: the greedy continuation must be llama.cpp's.
\getenv refs_path LLAMAGPU_TEST_REFS
SET llamagpu.default_model = 'stories';
SELECT (pg_read_file(:'refs_path')::jsonb) -> 'prompts' -> 0 AS ref \gset ref_

SELECT p->>'prompt' AS prompt, p->>'generated_text' AS expected
FROM (SELECT :'ref_ref'::jsonb AS p) s \gset

-- the end-to-end check
SELECT llm_generate('Once upon a time', max_tokens => 64, temperature => 0) AS answer \gset
SELECT :'answer' AS answer;
SELECT :'answer' = :'expected' AS matches_llama_cpp;

-- tokenizer agrees with llama.cpp's prompt tokenization
SELECT llm_tokenize('Once upon a time') AS ids,
	   llm_tokenize('Once upon a time') = ARRAY(SELECT jsonb_array_elements_text(:'ref_ref'::jsonb -> 'prompt_token_ids')::int) AS matches;
SELECT llm_count_tokens('Once upon a time');
-- llm_detokenize inverts llm_tokenize: BOS and SentencePiece's leading space are dropped
SELECT llm_detokenize(llm_tokenize('Once upon a time')) AS roundtrip;

-- streaming gives the same text, piece by piece
SELECT string_agg(piece, '') = :'expected' AS stream_matches, count(*) > 1 AS several_pieces
FROM llm_generate_stream('Once upon a time', max_tokens => 64, temperature => 0) AS piece;

-- stop strings end the text before the match
SELECT llm_generate('Once upon a time', max_tokens => 64, temperature => 0, stop => ARRAY['.']);
SELECT llm_generate('Once upon a time', max_tokens => 64, temperature => 0, stop => ARRAY['Lily', 'girl']);

-- max_tokens
SELECT count(*) BETWEEN 1 AND 5 AS at_most_5_pieces
FROM llm_generate_stream('Once upon a time', max_tokens => 5, temperature => 0);

-- sampling with a seed is reproducible
SELECT llm_generate('Once upon a time', max_tokens => 32, seed => 42) =
	   llm_generate('Once upon a time', max_tokens => 32, seed => 42) AS same_seed_same_text;
SELECT length(llm_generate('Once upon a time', max_tokens => 16, temperature => 0.7, top_p => 0.9, top_k => 10, seed => 7,
					   options => '{"min_p": 0.05, "repeat_penalty": 1.1, "penalty_last_n": 32, "logit_bias": {"2": -100}}')) > 0 AS with_options;

-- a function call in a query over a table
CREATE TEMP TABLE prompts (id int, prompt text);
INSERT INTO prompts VALUES (1, 'Once upon a time'), (2, 'Lily and Tom');
SELECT id, llm_count_tokens(llm_generate(prompt, max_tokens => 8, temperature => 0)) > 0 AS generated
FROM prompts ORDER BY id;

-- nothing is left running in the engine
SELECT count(*) AS in_flight FROM llm_stat_activity;
