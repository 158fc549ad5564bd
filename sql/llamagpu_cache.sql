-- The response cache: greedy requests only, keyed by model file, prompt and
-- settings; hits counted; writes skipped where the transaction may not write.
\pset format unaligned
SET llamagpu.default_model = 'stories';
SELECT llm_cache_clear() >= 0 AS cleared;
SHOW llamagpu.response_cache;

-- off by default: nothing is stored
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0);
SELECT count(*) AS cached FROM llamagpu.response_cache;

-- the option turns it on for one call; the second identical call is a hit
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0, options => '{"cache": true}');
SELECT count(*) AS cached, sum(hits) AS hits FROM llamagpu.response_cache;
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0, options => '{"cache": true}');
SELECT model, hits, output, last_used >= created_at AS used_after_created FROM llamagpu.response_cache;

-- the setting turns it on for the session
SET llamagpu.response_cache = on;
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0);
SELECT hits FROM llamagpu.response_cache;
-- other settings, another prompt, another model are other keys
SELECT llm_generate('Once upon a time', max_tokens => 9, temperature => 0);
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0, stop => ARRAY['girl']);
SELECT llm_generate('Lily', max_tokens => 8, temperature => 0);
SELECT llm_generate('Once upon a time', model => 'stories_ctx16', max_tokens => 8, temperature => 0);
SELECT count(*) AS cached, sum(hits) AS hits FROM llamagpu.response_cache;
-- option names in another order are the same key
SELECT llm_generate('Lily', max_tokens => 8, temperature => 0, options => '{"min_p": 0.1, "repeat_penalty": 1.1}');
SELECT llm_generate('Lily', max_tokens => 8, temperature => 0, options => '{"repeat_penalty": 1.1, "min_p": 0.1}');
SELECT count(*) AS cached, sum(hits) AS hits FROM llamagpu.response_cache;

-- never for sampling: a non-greedy request is neither stored nor answered from the cache
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0.7, seed => 1) =
	   llm_generate('Once upon a time', max_tokens => 8, temperature => 0.7, seed => 1) AS same_seed_same_text;
SELECT llm_generate('Once upon a time', max_tokens => 8, seed => 1, options => '{"cache": true}') IS NOT NULL AS generated;
SELECT count(*) AS cached FROM llamagpu.response_cache;
-- "cache": false wins over the setting
SELECT llm_generate('A new prompt', max_tokens => 8, temperature => 0, options => '{"cache": false}');
SELECT count(*) AS cached FROM llamagpu.response_cache WHERE output = (SELECT llm_generate('A new prompt', max_tokens => 8, temperature => 0, options => '{"cache": false}'));

-- the batch function uses it per element
SELECT ord, output FROM llm_generate_batch(ARRAY['Once upon a time', 'Tom', NULL], max_tokens => 8, temperature => 0);
SELECT output, hits FROM llamagpu.response_cache WHERE model = 'stories' AND output IN (
	SELECT output FROM llm_generate_batch(ARRAY['Once upon a time', 'Tom'], max_tokens => 8, temperature => 0, options => '{"cache": false}'))
ORDER BY output;

-- a read-only transaction reads the cache but does not write it
BEGIN TRANSACTION READ ONLY;
SELECT llm_generate('Read only', max_tokens => 4, temperature => 0);
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0);
COMMIT;
SELECT count(*) AS stored_read_only FROM llamagpu.response_cache WHERE output = (
	SELECT llm_generate('Read only', max_tokens => 4, temperature => 0, options => '{"cache": false}'));
-- a parallel worker reads the cache but does not write it
SET force_parallel_mode = on;
SELECT llm_generate('In parallel', max_tokens => 4, temperature => 0);
RESET force_parallel_mode;
SELECT count(*) AS stored_in_parallel FROM llamagpu.response_cache WHERE output = (
	SELECT llm_generate('In parallel', max_tokens => 4, temperature => 0, options => '{"cache": false}'));

-- a rolled back transaction takes its cache rows with it
BEGIN;
SELECT llm_generate('Rolled back', max_tokens => 4, temperature => 0);
ROLLBACK;
SELECT count(*) AS kept_after_rollback FROM llamagpu.response_cache WHERE output = (
	SELECT llm_generate('Rolled back', max_tokens => 4, temperature => 0, options => '{"cache": false}'));

-- a size limit keeps the most recently used rows
SELECT llm_cache_clear() > 0 AS cleared;
SET llamagpu.response_cache_max_rows = 2;
SELECT llm_generate('One', max_tokens => 2, temperature => 0) IS NOT NULL,
	   llm_generate('Two', max_tokens => 2, temperature => 0) IS NOT NULL;
SELECT llm_generate('One', max_tokens => 2, temperature => 0) IS NOT NULL AS one_used_again;
SELECT llm_generate('Three', max_tokens => 2, temperature => 0) IS NOT NULL;
SELECT count(*) AS kept, sum(hits) AS hits FROM llamagpu.response_cache;
SELECT output = llm_generate('One', max_tokens => 2, temperature => 0, options => '{"cache": false}') AS one_kept
FROM llamagpu.response_cache ORDER BY last_used LIMIT 1;
RESET llamagpu.response_cache_max_rows;

-- users cannot read or write the cache table, nor clear it; llm_admin can
CREATE ROLE regress_cache_user IN ROLE llm_user;
CREATE ROLE regress_cache_admin IN ROLE llm_admin;
SELECT llm_grant_model('stories', 'regress_cache_user');
SET ROLE regress_cache_user;
SELECT regress_error($$SELECT count(*) FROM llamagpu.response_cache$$);
SELECT regress_error($$INSERT INTO llamagpu.response_cache (key, model, output) VALUES ('\x00', 'stories', 'planted')$$);
SELECT regress_error($$SELECT llamagpu.llm_cache_clear()$$);
-- but their greedy calls are answered from it
SELECT llamagpu.llm_generate('Once upon a time', 'stories', max_tokens => 8, temperature => 0);
SET ROLE regress_cache_admin;
SELECT count(*) > 0 AS admin_reads FROM llamagpu.response_cache;
SELECT llamagpu.llm_cache_clear() AS deleted;
RESET ROLE;
SELECT count(*) AS after_clear FROM llamagpu.response_cache;

-- the extension writes its tables as their owner, with search_path
-- pg_catalog: a user's operators never run with the owner's privileges
CREATE ROLE regress_cache_evil IN ROLE llm_user;
SELECT llm_grant_model('stories', 'regress_cache_evil');
CREATE SCHEMA regress_evil AUTHORIZATION regress_cache_evil;
SET ROLE regress_cache_evil;
CREATE FUNCTION regress_evil.eq(bytea, bytea) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN
		IF current_user <> 'regress_cache_evil' THEN RAISE NOTICE 'user operator ran as %', current_user; END IF;
		RETURN $1 OPERATOR(pg_catalog.=) $2;
	END$$;
CREATE OPERATOR regress_evil.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = regress_evil.eq);
CREATE FUNCTION regress_evil.eqt(text, text) RETURNS boolean LANGUAGE plpgsql AS
	$$BEGIN
		IF current_user <> 'regress_cache_evil' THEN RAISE NOTICE 'user operator ran as %', current_user; END IF;
		RETURN $1 OPERATOR(pg_catalog.=) $2;
	END$$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.eqt);
SET search_path = regress_evil, pg_catalog, llamagpu;
SELECT llm_generate('Once upon a time', 'stories', max_tokens => 8, temperature => 0, options => '{"cache": true}');
SELECT llm_generate('Evil', 'stories', max_tokens => 2, temperature => 0, options => '{"cache": true}');
SELECT public.regress_error($$SELECT llm_job_pause('nope')$$);
RESET ROLE;
RESET search_path;
SET search_path = public, llamagpu;
DROP SCHEMA regress_evil CASCADE;
SELECT llm_revoke_model('stories', 'regress_cache_evil');
SELECT llm_revoke_model('stories', 'regress_cache_user');
DROP ROLE regress_cache_user, regress_cache_admin, regress_cache_evil;
RESET llamagpu.response_cache;
