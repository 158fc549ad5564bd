-- Embeddings: llm_embed, llm_embed_batch, llm_similarity, llm_embed_vector
-- (with a stand-in vector type: pgvector is not installed here).
-- stories260K is a decoder: last-token pooling, 64 floats.
\pset format unaligned
SET llamagpu.default_model = 'stories';

-- shape and norm
SELECT array_length(e, 1) AS dims, array_ndims(e) AS ndims,
	   round(sqrt((SELECT sum(x * x) FROM unnest(e) x))::numeric, 5) AS norm
FROM llm_embed('Once upon a time') e;
-- "normalize" => false: another length, the same direction
SELECT round(sqrt((SELECT sum(x * x) FROM unnest(r) x))::numeric, 5) <> 1 AS not_unit,
	   llm_similarity(r, n) > 0.99999 AS same_direction
FROM llm_embed('Once upon a time', "normalize" => false) r, llm_embed('Once upon a time') n;
-- deterministic, and different texts differ
SELECT llm_embed('Lily and Ben') = llm_embed('Lily and Ben') AS repeatable,
	   llm_embed('Lily and Ben') <> llm_embed('The little dog') AS texts_differ;
-- NULL in, NULL out
SELECT llm_embed(NULL) IS NULL AS null_for_null;

-- the batch equals each input alone, NULL elements are NULL rows, order kept
CREATE TEMP TABLE texts (i int, t text);
INSERT INTO texts VALUES (1, 'Once upon a time'), (2, NULL), (3, 'Lily and Ben went to the park.'),
	(4, 'x'), (5, 'The little dog'), (6, 'Once upon a time');
SELECT b.ord, b.embedding IS NULL AS is_null,
	   b.embedding IS NOT DISTINCT FROM (SELECT llm_embed(t) FROM texts WHERE i = b.ord) AS same_as_alone
FROM llm_embed_batch((SELECT array_agg(t ORDER BY i) FROM texts)) b;
-- more inputs than one request carries (16 a request, 4 in flight)
SELECT count(*) AS n, min(ord) AS first, max(ord) AS last,
	   count(DISTINCT embedding) AS distinct_vectors,
	   bool_and(embedding = llm_embed('Once upon a time')) AS all_equal
FROM llm_embed_batch(array_fill('Once upon a time'::text, ARRAY[70]));
SELECT count(*) AS rows_for_null FROM llm_embed_batch(NULL);
SELECT count(*) AS rows_for_empty FROM llm_embed_batch('{}');
SELECT ord, embedding IS NULL AS is_null FROM llm_embed_batch(ARRAY[NULL, NULL]::text[]);

-- similarity: a text is closest to itself
SELECT round(llm_similarity(llm_embed('The little dog'), llm_embed('The little dog'))::numeric, 6) AS self;
SELECT t, round(llm_similarity(llm_embed('Once upon a time'), e)::numeric, 4) = 1 AS is_query
FROM (SELECT t, llm_embed(t) e FROM texts WHERE t IS NOT NULL AND i < 6) s
ORDER BY llm_similarity(llm_embed('Once upon a time'), e) DESC LIMIT 2;
SELECT llm_similarity('{1,0}', '{0,1}') AS orthogonal, llm_similarity('{1,2,3}', '{-2,-4,-6}') AS opposite,
	   llm_similarity('{3,4}', '{6,8}') AS parallel, llm_similarity(NULL, '{1}') IS NULL AS null_for_null;

-- errors
SELECT regress_error($$SELECT llm_embed('')$$);
SELECT regress_error($$SELECT * FROM llm_embed_batch(ARRAY['a', '', 'b'])$$);
SELECT regress_error($$SELECT * FROM llm_embed_batch('{{a,b},{c,d}}')$$);
SELECT regress_error($$SELECT llm_embed('a', "normalize" => NULL)$$);
SELECT regress_error($$SELECT llm_embed('a', truncate => NULL)$$);
SELECT regress_error($$SELECT llm_embed('a', model => 'no_such_model')$$);
-- longer than the context (16 positions): an error unless truncate
SELECT regress_error($$SELECT llm_embed('Once upon a time there was a little girl named Lily who loved to play', 'stories_ctx16')$$);
SELECT regress_error($$SELECT * FROM llm_embed_batch(ARRAY['short', 'Once upon a time there was a little girl named Lily who loved to play'], 'stories_ctx16')$$);
SELECT array_length(llm_embed('Once upon a time there was a little girl named Lily who loved to play',
							  'stories_ctx16', truncate => true), 1) AS truncated_dims;
-- truncation keeps the first 16 tokens: not the whole text's vector
SELECT llm_embed('Once upon a time there was a little girl named Lily who loved to play', 'stories_ctx16', truncate => true)
	   <> llm_embed('Once upon a time there was a little girl named Lily who loved to play', 'stories', truncate => false) AS differs_from_full;
SELECT regress_error($$SELECT llm_similarity('{1,2}', '{1,2,3}')$$);
SELECT regress_error($$SELECT llm_similarity('{}', '{}')$$);
SELECT regress_error($$SELECT llm_similarity('{1,NULL}', '{1,2}')$$);
SELECT regress_error($$SELECT llm_similarity('{0,0}', '{1,2}')$$);
SELECT regress_error($$SELECT llm_similarity('{1,NaN}', '{1,2}')$$);
SELECT regress_error($$SELECT llm_similarity('{{1,2}}', '{1,2}')$$);

-- privileges: llm_user and a grant on the model, as for llm_generate
CREATE ROLE regress_embed_user;
SET ROLE regress_embed_user;
SELECT regress_error($$SELECT llamagpu.llm_embed('a', 'stories')$$);
RESET ROLE;
GRANT llm_user TO regress_embed_user;
SET ROLE regress_embed_user;
SELECT regress_error($$SELECT llamagpu.llm_embed('a', 'stories')$$);
RESET ROLE;
SELECT llm_grant_model('stories', 'regress_embed_user'), llm_grant_model('stories_ctx16', 'regress_embed_user');
SET ROLE regress_embed_user;
SELECT array_length(llamagpu.llm_embed('a', 'stories'), 1) AS dims;
SELECT count(*) AS rows FROM llamagpu.llm_embed_batch(ARRAY['a', 'b'], 'stories');
SELECT regress_error($$SELECT llamagpu.llm_embed(repeat('Once upon a time ', 10), 'stories_ctx16')$$);
RESET ROLE;
-- one usage record per call (a batch is one request), with the inputs' tokens
SELECT llm_usage_flush();
SELECT kind, status, sqlstate, requests, errors, prompt_tokens, completion_tokens
FROM llm_usage WHERE role::text = 'regress_embed_user' ORDER BY id;
SELECT llm_revoke_model('stories', 'regress_embed_user'), llm_revoke_model('stories_ctx16', 'regress_embed_user');
DROP ROLE regress_embed_user;

-- llm_embed_vector: none without a vector type
SELECT llm_enable_vector() AS enabled, to_regprocedure('llm_embed_vector(text,text,boolean,boolean)') IS NULL AS absent;
-- a STAND-IN for pgvector's type, made by this test: text in and out only
CREATE TYPE public.vector;
CREATE FUNCTION public.vector_in(cstring) RETURNS public.vector AS 'textin' LANGUAGE internal IMMUTABLE STRICT;
CREATE FUNCTION public.vector_out(public.vector) RETURNS cstring AS 'textout' LANGUAGE internal IMMUTABLE STRICT;
CREATE TYPE public.vector (INPUT = public.vector_in, OUTPUT = public.vector_out, LIKE = text);
SELECT llm_enable_vector() AS enabled;
SELECT pg_get_function_result('llm_embed_vector(text,text,boolean,boolean)'::regprocedure) AS returns,
	   (SELECT string_agg(e.extname || ':' || d.deptype::text, ',') FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
		WHERE d.objid = 'llm_embed_vector(text,text,boolean,boolean)'::regprocedure) AS depends_on,
	   has_function_privilege('llm_user', 'llm_embed_vector(text,text,boolean,boolean)', 'EXECUTE') AS llm_user_may,
	   has_function_privilege('public', 'llm_embed_vector(text,text,boolean,boolean)', 'EXECUTE') AS public_may;
-- the text form carries every float exactly
SELECT llm_embed_vector('Once upon a time')::text = '[' || array_to_string(llm_embed('Once upon a time'), ',') || ']' AS same,
	   string_to_array(trim(both '[]' from llm_embed_vector('Once upon a time')::text), ',')::real[]
		   = llm_embed('Once upon a time') AS exact;
-- idempotent; dropping the type takes the function with it, not the extension
SELECT llm_enable_vector() AS again;
DROP TYPE public.vector CASCADE;
SELECT to_regprocedure('llm_embed_vector(text,text,boolean,boolean)') IS NULL AS gone,
	   (SELECT count(*) FROM pg_extension WHERE extname = 'llamagpu') AS extension_kept;
-- the event trigger that makes it at CREATE EXTENSION vector (tested in
-- tests/tap/010_embedding_jobs.pl with a stand-in extension)
SELECT evtname, evtevent, evttags FROM pg_event_trigger WHERE evtname = 'llamagpu_vector';
