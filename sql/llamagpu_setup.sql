-- Setup for the llamagpu regression tests.  scripts/test.sh runs them
-- against a cluster with llamagpu preloaded, llamagpu.model_dir set, and
-- LLAMAGPU_TEST_MODEL / LLAMAGPU_TEST_REFS naming stories260K.gguf and its
-- greedy reference.  pg_regress created the extension (--load-extension).
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = public, llamagpu', current_database()); END $$;
\getenv model_path LLAMAGPU_TEST_MODEL
SET search_path = public, llamagpu;

SELECT extname, extversion, nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'llamagpu';

-- the engine is up
SELECT state, pid IS NOT NULL AS has_pid, socket LIKE '%/engine.sock' AS socket_ok
FROM llm_engine_status();

SELECT name, architecture, parameters, quantization, context_length, file_size, sha256, device, options
FROM llm_register_model('stories', :'model_path');
-- the same file with a 16-position context, to test prompts that do not fit
SELECT name, options FROM llm_register_model('stories_ctx16', :'model_path', '{"context_size": 16}');

-- For the error tests: run a statement, show its SQLSTATE, message and hint
-- (psql's verbose mode would also show source line numbers).
CREATE FUNCTION public.regress_error(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	det text;
	hnt text;
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	-- the model directory is a temporary one: hide its name
	RETURN regexp_replace(st || ': ' || msg
		|| CASE WHEN det <> '' THEN E'\nDETAIL: ' || det ELSE '' END
		|| CASE WHEN hnt <> '' THEN E'\nHINT: ' || hnt ELSE '' END,
		'/tmp/llamagpu-[^/]*/models', '$model_dir', 'g');
END
$$;

-- llamagpu.device: a reload setting whose form is checked when it is set
SELECT current_setting('llamagpu.device') AS device,
	(SELECT context FROM pg_settings WHERE name = 'llamagpu.device') AS context;
ALTER SYSTEM SET llamagpu.device = 'tpu:0';
ALTER SYSTEM SET llamagpu.device = 'cuda:x';
ALTER SYSTEM SET llamagpu.device = 'cuda:1';
ALTER SYSTEM RESET llamagpu.device;
