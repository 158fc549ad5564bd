-- llm_generate_batch: one request per element on one connection, rows in
-- array order, NULL elements NULL without a request; its argument errors;
-- the priority option.
\pset format unaligned
SET llamagpu.default_model = 'stories';

-- each output is what llm_generate gives for that prompt alone
CREATE TEMP TABLE batch_prompts (i int, p text);
INSERT INTO batch_prompts VALUES (1, 'Once upon a time'), (2, NULL), (3, 'Lily and Tom'),
	(4, 'The cat sat'), (5, NULL), (6, 'Once upon a time');
SELECT b.ord, b.output IS NULL AS is_null,
	   b.output IS NOT DISTINCT FROM
		   (SELECT CASE WHEN p IS NOT NULL THEN llm_generate(p, max_tokens => 16, temperature => 0) END
			FROM batch_prompts WHERE i = b.ord)
		   AS same_as_llm_generate
FROM llm_generate_batch((SELECT array_agg(p ORDER BY i) FROM batch_prompts),
						max_tokens => 16, temperature => 0) b;
-- ord follows the position, whatever the array's lower bound
SELECT ord, output FROM llm_generate_batch('[0:1]={"Once upon a time","Lily"}'::text[], max_tokens => 4, temperature => 0);
-- more elements than the window of requests in flight (64)
SELECT count(*) AS n, count(DISTINCT output) AS distinct_outputs, min(ord) AS first, max(ord) AS last,
	   bool_and(output = ', there was') AS all_right
FROM llm_generate_batch(array_fill('Once upon a time'::text, ARRAY[150]), max_tokens => 3, temperature => 0);
-- nothing, for nothing
SELECT count(*) AS rows_for_null FROM llm_generate_batch(NULL);
SELECT count(*) AS rows_for_empty FROM llm_generate_batch('{}');
SELECT ord, output IS NULL AS is_null FROM llm_generate_batch(ARRAY[NULL, NULL]::text[]);

-- errors, with the element they are about
CREATE FUNCTION regress_error_context(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	ctx text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
	RETURN st || ': ' || msg || E'\nCONTEXT: ' || split_part(ctx, E'\n', 1);
END
$$;
SELECT regress_error_context($$SELECT * FROM llm_generate_batch(ARRAY['Hi', 'there', ''])$$);
SELECT regress_error_context($$SELECT * FROM llm_generate_batch(ARRAY['Hi', repeat('Once upon a time ', 10), 'there'], model => 'stories_ctx16', max_tokens => 2)$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY[['a', 'b'], ['c', 'd']])$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], max_tokens => 0)$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], temperature => -1)$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], model => 'nope')$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], options => '{"cache": "yes"}')$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], options => '{"priority": 1.5}')$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], options => '{"priority": 10000000}')$$);
SELECT regress_error($$SELECT * FROM llm_generate_batch(ARRAY['Hi'], options => '{"priority": "high"}')$$);
-- a failed batch leaves nothing running (the engine frees cancelled requests within a token)
DO $$
BEGIN
	FOR i IN 1 .. 250 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM llm_stat_activity);
		PERFORM pg_sleep(0.02);
	END LOOP;
END
$$;
SELECT count(*) AS in_flight FROM llm_stat_activity;

-- priority is passed to the engine (which may ignore it)
SELECT llm_generate('Once upon a time', max_tokens => 4, temperature => 0, options => '{"priority": 5}');
SELECT output FROM llm_generate_batch(ARRAY['Once upon a time'], max_tokens => 4, temperature => 0, options => '{"priority": -5}');

-- llm_generate is parallel safe and runs in a parallel worker
SELECT proparallel FROM pg_proc WHERE oid = 'llm_generate'::regproc;
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SELECT llm_generate('Once upon a time', max_tokens => 4, temperature => 0) AS in_worker;
RESET force_parallel_mode;
RESET parallel_setup_cost;

-- the engine's models and scheduler counters (NULL from an engine without a scheduler)
SELECT model, requests >= 0 AS has_requests,
	   (avg_batch_fill IS NULL OR avg_batch_fill BETWEEN 0 AND 1) AS fill_ok,
	   (prefix_hit_rate IS NULL OR prefix_hit_rate BETWEEN 0 AND 1) AS hit_rate_ok,
	   (kv_blocks_used IS NULL OR kv_blocks_used <= kv_blocks_total) AS kv_ok
FROM llm_stat_engine WHERE model = 'stories';
