/* 00_core.sql: roles, the model registry, generation, chat, tools, monitoring, the response cache and table jobs */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION llamagpu" to load this file. \quit

-- Roles are cluster-wide and outlive the extension: create them only when absent.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'llm_user') THEN
		CREATE ROLE llm_user NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'llm_admin') THEN
		CREATE ROLE llm_admin NOLOGIN;
	END IF;
	IF NOT pg_catalog.pg_has_role('llm_admin', 'llm_user', 'MEMBER') THEN
		GRANT llm_user TO llm_admin;
	END IF;
END
$$;

GRANT USAGE ON SCHEMA @extschema@ TO llm_user, llm_admin;

-- The model registry.
CREATE TABLE llm_models (
	name			text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,63}$'),
	path			text NOT NULL,
	architecture	text NOT NULL,
	parameters		bigint NOT NULL,
	quantization	text NOT NULL,
	context_length	integer NOT NULL,
	file_size		bigint NOT NULL,
	sha256			text NOT NULL,
	device			text NOT NULL DEFAULT 'cpu',
	options			jsonb NOT NULL DEFAULT '{}',
	registered_by	name NOT NULL DEFAULT current_user,
	registered_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llm_models IS 'models registered with llamagpu';

-- Who may use which model: a row per (model, role); a member of the role may
-- generate with the model.  grantee 0 means PUBLIC.
CREATE TABLE llm_model_grants (
	model			text NOT NULL REFERENCES llm_models (name) ON DELETE CASCADE,
	grantee			oid NOT NULL,
	granted_by		name NOT NULL DEFAULT current_user,
	granted_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (model, grantee)
);
COMMENT ON TABLE llm_model_grants IS 'per-model usage grants; see llm_grant_model()';

ALTER TABLE llm_model_grants ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_model_grants_member ON llm_model_grants FOR SELECT
	USING (grantee = 0 OR pg_catalog.pg_has_role(grantee, 'MEMBER'));
CREATE POLICY llm_model_grants_admin ON llm_model_grants FOR ALL TO llm_admin
	USING (true) WITH CHECK (true);

GRANT SELECT ON llm_models, llm_model_grants TO llm_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON llm_models, llm_model_grants TO llm_admin;

SELECT pg_catalog.pg_extension_config_dump('llm_models', '');
SELECT pg_catalog.pg_extension_config_dump('llm_model_grants', '');

-- Generation.
CREATE FUNCTION llm_generate(prompt text, model text DEFAULT NULL, max_tokens int DEFAULT 256,
							 temperature float8 DEFAULT 0.8, top_p float8 DEFAULT 0.95,
							 top_k int DEFAULT 40, seed bigint DEFAULT NULL,
							 stop text[] DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS text
	AS 'MODULE_PATHNAME', 'llm_generate'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION llm_generate IS 'generate a continuation of prompt with a registered model';

CREATE FUNCTION llm_generate_batch(prompts text[], model text DEFAULT NULL, max_tokens int DEFAULT 256,
								   temperature float8 DEFAULT 0.8, top_p float8 DEFAULT 0.95,
								   top_k int DEFAULT 40, seed bigint DEFAULT NULL,
								   stop text[] DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS TABLE (ord int, output text)
	AS 'MODULE_PATHNAME', 'llm_generate_batch'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;
COMMENT ON FUNCTION llm_generate_batch IS 'generate for every prompt of an array at once; one row per element, in order';

CREATE FUNCTION llm_generate_stream(prompt text, model text DEFAULT NULL, max_tokens int DEFAULT 256,
									temperature float8 DEFAULT 0.8, top_p float8 DEFAULT 0.95,
									top_k int DEFAULT 40, seed bigint DEFAULT NULL,
									stop text[] DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS SETOF text
	AS 'MODULE_PATHNAME', 'llm_generate_stream'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 256;
COMMENT ON FUNCTION llm_generate_stream IS 'generate like llm_generate, one row per piece as produced';

-- Structured output (docs/structured-output.md): the engine constrains
-- sampling to a JSON Schema, a GBNF grammar or a set of labels.
CREATE FUNCTION llm_generate_json(prompt text, schema jsonb, model text DEFAULT NULL,
								  max_tokens int DEFAULT 1024, temperature float8 DEFAULT 0.8,
								  top_p float8 DEFAULT 0.95, top_k int DEFAULT 40,
								  seed bigint DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'llm_generate_json'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION llm_generate_json IS 'generate a JSON value that is valid against a JSON Schema';

CREATE FUNCTION llm_generate_grammar(prompt text, grammar text, model text DEFAULT NULL,
									 max_tokens int DEFAULT 256, temperature float8 DEFAULT 0.8,
									 top_p float8 DEFAULT 0.95, top_k int DEFAULT 40,
									 seed bigint DEFAULT NULL, stop text[] DEFAULT NULL,
									 options jsonb DEFAULT NULL)
	RETURNS text
	AS 'MODULE_PATHNAME', 'llm_generate_grammar'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION llm_generate_grammar IS 'generate text in the language of a GBNF grammar (start rule root)';

CREATE FUNCTION llm_classify(input text, labels text[], model text DEFAULT NULL,
							 instruction text DEFAULT NULL, temperature float8 DEFAULT 0,
							 seed bigint DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS text
	AS 'MODULE_PATHNAME', 'llm_classify'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION llm_classify IS 'the label, one of labels, that the model gives input';

-- Chat and tools.  Registered tools are Postgres functions a model may call
-- by name; llm_run_tool_calls runs them as the calling role.
CREATE TABLE llm_tools (
	name			text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
	fn				regprocedure NOT NULL UNIQUE,
	description		text,
	parameters		jsonb NOT NULL,			-- JSON Schema of the arguments, from the signature
	registered_by	name NOT NULL DEFAULT current_user,
	registered_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llm_tools IS 'Postgres functions registered as tools for llm_chat; see llm_register_tool()';
GRANT SELECT ON llm_tools TO llm_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON llm_tools TO llm_admin;
SELECT pg_catalog.pg_extension_config_dump('llm_tools', '');

CREATE FUNCTION llm_tool_schema(fn regprocedure) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'llm_tool_schema'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION llm_tool_schema IS 'the JSON Schema of a function''s arguments, as llm_register_tool derives it';

CREATE FUNCTION llm_register_tool(fn regprocedure, description text DEFAULT NULL, name text DEFAULT NULL)
	RETURNS llm_tools
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	tool_name text;
	result @extschema@.llm_tools;
BEGIN
	IF fn IS NULL THEN
		RAISE EXCEPTION 'fn must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	tool_name := coalesce(llm_register_tool.name, (SELECT p.proname FROM pg_proc p WHERE p.oid = fn));
	IF tool_name !~ '^[A-Za-z0-9_-]{1,64}$' THEN
		RAISE EXCEPTION 'invalid tool name "%"', tool_name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Tool names are 1 to 64 letters, digits, underscores and hyphens.',
				  HINT = 'Give a name with the argument name.';
	END IF;
	BEGIN
		INSERT INTO @extschema@.llm_tools (name, fn, description, parameters)
		VALUES (tool_name, fn,
				coalesce(llm_register_tool.description, pg_catalog.obj_description(fn, 'pg_proc')),
				@extschema@.llm_tool_schema(fn))
		RETURNING * INTO result;
	EXCEPTION WHEN unique_violation THEN
		IF EXISTS (SELECT FROM @extschema@.llm_tools t WHERE t.name = tool_name) THEN
			RAISE EXCEPTION 'tool "%" is already registered', tool_name
				USING ERRCODE = 'duplicate_object',
					  HINT = 'Give another name with the argument name, or unregister the tool first.';
		END IF;
		RAISE EXCEPTION 'function % is already registered as tool "%"', fn,
			(SELECT t.name FROM @extschema@.llm_tools t WHERE t.fn = llm_register_tool.fn)
			USING ERRCODE = 'duplicate_object';
	END;
	RETURN result;
END
$$;
COMMENT ON FUNCTION llm_register_tool IS 'register a function as a tool that llm_chat offers and llm_run_tool_calls runs';

CREATE FUNCTION llm_unregister_tool(name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	DELETE FROM @extschema@.llm_tools t WHERE t.name = llm_unregister_tool.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'tool "%" is not registered', llm_unregister_tool.name
			USING ERRCODE = 'undefined_object',
				  HINT = 'See the registered tools in llamagpu.llm_tools.';
	END IF;
	RETURN true;
END
$$;

CREATE FUNCTION llm_chat(messages jsonb, model text DEFAULT NULL, tools jsonb DEFAULT NULL,
						 tool_choice text DEFAULT 'auto', response_format jsonb DEFAULT NULL,
						 options jsonb DEFAULT NULL)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'llm_chat'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION llm_chat IS 'answer a conversation with the model''s chat template; an OpenAI chat.completion object';

CREATE FUNCTION llm_run_tool_calls(response jsonb) RETURNS jsonb
	AS 'MODULE_PATHNAME', 'llm_run_tool_calls'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_run_tool_calls IS 'run the registered tools an llm_chat answer calls, as the current role; the tool messages';

-- Tokenizer.
CREATE FUNCTION llm_tokenize(text, model text DEFAULT NULL) RETURNS int[]
	AS 'MODULE_PATHNAME', 'llm_tokenize'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE FUNCTION llm_detokenize(int[], model text DEFAULT NULL) RETURNS text
	AS 'MODULE_PATHNAME', 'llm_detokenize'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE FUNCTION llm_count_tokens(text, model text DEFAULT NULL) RETURNS int
	AS 'MODULE_PATHNAME', 'llm_count_tokens'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Model management.
CREATE FUNCTION llm_register_model(name text, path text, options jsonb DEFAULT NULL)
	RETURNS llm_models
	AS 'MODULE_PATHNAME', 'llm_register_model'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION llm_load_model(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'llm_load_model'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION llm_unload_model(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'llm_unload_model'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION llm_drop_model(name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM @extschema@.llm_models m WHERE m.name = llm_drop_model.name) THEN
		RAISE EXCEPTION 'model "%" does not exist', llm_drop_model.name
			USING ERRCODE = 'undefined_object',
				  HINT = 'See the registered models in llamagpu.llm_models.';
	END IF;
	-- The engine may not be running; the row goes anyway.
	BEGIN
		PERFORM @extschema@.llm_unload_model(llm_drop_model.name);
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
	DELETE FROM @extschema@.llm_models m WHERE m.name = llm_drop_model.name;
	RETURN true;
END
$$;

CREATE FUNCTION llm_grant_model(model text, grantee regrole) RETURNS void
	LANGUAGE sql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	INSERT INTO @extschema@.llm_model_grants (model, grantee) VALUES ($1, $2)
	ON CONFLICT DO NOTHING
$$;
CREATE FUNCTION llm_grant_model(model text) RETURNS void
	LANGUAGE sql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	INSERT INTO @extschema@.llm_model_grants (model, grantee) VALUES ($1, 0)
	ON CONFLICT DO NOTHING
$$;
COMMENT ON FUNCTION llm_grant_model(text) IS 'let every llm_user use the model';
CREATE FUNCTION llm_revoke_model(model text, grantee regrole) RETURNS void
	LANGUAGE sql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	DELETE FROM @extschema@.llm_model_grants g WHERE g.model = $1 AND g.grantee = $2
$$;
CREATE FUNCTION llm_revoke_model(model text) RETURNS void
	LANGUAGE sql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	DELETE FROM @extschema@.llm_model_grants g WHERE g.model = $1 AND g.grantee = 0
$$;

-- Monitoring.
CREATE FUNCTION llm_stat_activity_internal(
	OUT request_id bigint, OUT backend_pid int, OUT role name, OUT model text,
	OUT state text, OUT prompt_tokens int, OUT generated_tokens int,
	OUT started_at timestamptz, OUT tokens_per_second float8)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'llm_stat_activity_internal'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW llm_stat_activity AS
	SELECT backend_pid, role, model, state, prompt_tokens, generated_tokens,
		   started_at, tokens_per_second, request_id
	FROM @extschema@.llm_stat_activity_internal() a
	WHERE pg_catalog.pg_has_role('llm_admin', 'MEMBER')
	   OR pg_catalog.pg_has_role(a.role, 'MEMBER');
COMMENT ON VIEW llm_stat_activity IS 'one row per request in flight in the engine';

CREATE FUNCTION llm_engine_status(OUT pid int, OUT state text, OUT restarts int,
								  OUT started_at timestamptz, OUT socket text,
								  OUT supervisor_pid int)
	AS 'MODULE_PATHNAME', 'llm_engine_status'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION llm_engine_status IS 'the engine process as its supervisor sees it';

CREATE FUNCTION llm_stat_engine_internal(
	OUT model text, OUT path text, OUT requests bigint,
	OUT queued bigint, OUT running bigint, OUT submitted bigint, OUT finished bigint,
	OUT rejected bigint, OUT steps bigint, OUT batch_tokens bigint, OUT prompt_tokens bigint,
	OUT gen_tokens bigint, OUT preemptions bigint, OUT max_batch_tokens bigint,
	OUT kv_block_size bigint, OUT kv_blocks_total bigint, OUT kv_blocks_used bigint,
	OUT kv_blocks_cached bigint, OUT prefix_lookup_tokens bigint, OUT prefix_hit_tokens bigint,
	-- engine-wide (docs/observability.md): the same on every row
	OUT uptime interval, OUT restarts int, OUT engine_state text,
	OUT engine_queued bigint, OUT engine_running bigint,
	OUT engine_kv_blocks_used bigint, OUT engine_kv_blocks_total bigint,
	OUT engine_prefix_lookup_tokens bigint, OUT engine_prefix_hit_tokens bigint,
	OUT device text, OUT device_memory_used bigint, OUT device_memory_total bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'llm_stat_engine_internal'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW llm_stat_engine AS
	SELECT model, path, requests, queued, running, submitted, finished, rejected,
		   steps, batch_tokens, prompt_tokens, gen_tokens,
		   CASE WHEN steps > 0 AND max_batch_tokens > 0
				THEN batch_tokens::float8 / (steps * max_batch_tokens) END AS avg_batch_fill,
		   max_batch_tokens, kv_block_size, kv_blocks_used, kv_blocks_cached, kv_blocks_total,
		   preemptions, prefix_lookup_tokens, prefix_hit_tokens,
		   CASE WHEN prefix_lookup_tokens > 0
				THEN prefix_hit_tokens::float8 / prefix_lookup_tokens END AS prefix_hit_rate,
		   uptime, restarts, engine_state, engine_queued, engine_running,
		   engine_kv_blocks_used, engine_kv_blocks_total,
		   CASE WHEN engine_prefix_lookup_tokens > 0
				THEN engine_prefix_hit_tokens::float8 / engine_prefix_lookup_tokens END AS engine_prefix_hit_rate,
		   device, device_memory_used, device_memory_total
	FROM @extschema@.llm_stat_engine_internal();
COMMENT ON VIEW llm_stat_engine IS 'one row per model loaded in the engine, with its scheduler counters and the engine-wide numbers; one row with model NULL when none is loaded';

-- The response cache (opt-in: option "cache" or llamagpu.response_cache).
-- Written only by the extension, as the table's owner.
CREATE TABLE response_cache (
	key				bytea PRIMARY KEY,		-- sha256 of model identity, prompt and settings
	model			text NOT NULL,
	output			text NOT NULL,
	hits			bigint NOT NULL DEFAULT 0,
	created_at		timestamptz NOT NULL DEFAULT now(),
	last_used		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE response_cache IS 'answers to greedy requests, reused when the same request comes again';
-- llamagpu.response_cache_max_rows evicts the least recently used
CREATE INDEX response_cache_last_used ON response_cache (last_used);

CREATE FUNCTION llm_cache_clear() RETURNS bigint
	AS 'MODULE_PATHNAME', 'llm_cache_clear'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_cache_clear IS 'delete every cached response; returns how many';

-- Table jobs: a background worker per database generates for every row of
-- a source and writes the outputs to a target column (see docs/batching-sql.md).
CREATE TABLE llm_jobs (
	id				bigserial PRIMARY KEY,
	name			text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.:-]{1,63}$'),
	owner			oid NOT NULL,			-- the role the job runs as
	source			text NOT NULL,			-- as given: a table name or a query
	source_sql		text NOT NULL,			-- the FROM item it became
	id_column		text NOT NULL,
	id_type			text NOT NULL,			-- the id's type, to read last_id back
	prompt			text NOT NULL,			-- SQL expression over the source's columns
	target_table	text NOT NULL,			-- schema-qualified, quoted
	target_column	text NOT NULL,
	target_type		text NOT NULL,
	model			text,
	options			jsonb,
	search_path		text NOT NULL,			-- the creator's, for the source and prompt
	state			text NOT NULL DEFAULT 'running'
					CHECK (state IN ('running', 'paused', 'cancelled', 'done', 'failed')),
	last_id			text,					-- the last row done, in id order; NULL: none yet
	rows_total		bigint,
	rows_done		bigint NOT NULL DEFAULT 0,
	rows_failed		bigint NOT NULL DEFAULT 0,
	tokens			bigint NOT NULL DEFAULT 0,
	created_at		timestamptz NOT NULL DEFAULT now(),
	started_at		timestamptz,
	updated_at		timestamptz,
	finished_at		timestamptz,
	last_error		text
);
COMMENT ON TABLE llm_jobs IS 'table jobs; see llm_job_create()';

CREATE TABLE llm_job_failures (
	job_id			bigint NOT NULL REFERENCES llm_jobs (id) ON DELETE CASCADE,
	job				text NOT NULL,
	owner			oid NOT NULL,
	row_id			text NOT NULL,
	sqlstate		text NOT NULL,
	error			text NOT NULL,
	failed_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (job_id, row_id)
);
COMMENT ON TABLE llm_job_failures IS 'rows a table job could not generate or write, with the error';

-- Whether the current user may see (and manage) a job of owner: a member of
-- owner or of llm_admin.  A dropped owner's jobs are left to llm_admin.
CREATE FUNCTION llm_job_visible(owner oid) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT pg_has_role('llm_admin', 'MEMBER') OR
		   CASE WHEN EXISTS (SELECT FROM pg_roles r WHERE r.oid = $1)
				THEN pg_has_role($1, 'MEMBER') ELSE false END
$$;

ALTER TABLE llm_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_job_failures ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_jobs_owner ON llm_jobs FOR SELECT
	USING (@extschema@.llm_job_visible(owner));
CREATE POLICY llm_job_failures_owner ON llm_job_failures FOR SELECT
	USING (@extschema@.llm_job_visible(owner));
GRANT SELECT ON llm_jobs, llm_job_failures TO llm_user;

CREATE VIEW llm_stat_jobs AS
	SELECT j.name, j.state, j.owner::regrole AS owner,
		   j.rows_total, j.rows_done, j.rows_failed,
		   CASE WHEN j.state IN ('done', 'cancelled') THEN 0
				ELSE greatest(j.rows_total - j.rows_done - j.rows_failed, 0) END AS rows_pending,
		   j.tokens, r.rate,
		   CASE WHEN j.state = 'running' AND r.rate > 0
				THEN pg_catalog.make_interval(secs => greatest(j.rows_total - j.rows_done - j.rows_failed, 0) / r.rate)
		   END AS eta,
		   j.started_at AS started, j.updated_at AS updated, j.finished_at AS finished,
		   j.last_error, j.id
	FROM @extschema@.llm_jobs j,
		 LATERAL (SELECT CASE WHEN j.updated_at > j.started_at
							  THEN (j.rows_done + j.rows_failed) /
								   extract(epoch FROM j.updated_at - j.started_at)::float8
						 END AS rate) r
	WHERE @extschema@.llm_job_visible(j.owner);
COMMENT ON VIEW llm_stat_jobs IS 'progress of the table jobs the current user may see';

CREATE FUNCTION llm_job_create(name text, source text, id_column text, prompt text,
							   target_table text, target_column text,
							   model text DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'llm_job_create'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_job_create IS 'start a background job that generates for every row of source';
CREATE FUNCTION llm_job_pause(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'llm_job_pause'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION llm_job_resume(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'llm_job_resume'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION llm_job_cancel(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'llm_job_cancel'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION llm_job_drop(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'llm_job_drop'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_job_drop IS 'forget a job that is not running, with its failures';

SELECT pg_catalog.pg_extension_config_dump('llm_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('llm_job_failures', '');
SELECT pg_catalog.pg_extension_config_dump('llm_jobs_id_seq', '');

-- Privileges: nothing that runs a model is executable by PUBLIC.
REVOKE ALL ON FUNCTION
	llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_generate_stream(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_tokenize(text, text), llm_detokenize(int[], text), llm_count_tokens(text, text),
	llm_register_model(text, text, jsonb), llm_load_model(text), llm_unload_model(text),
	llm_drop_model(text), llm_grant_model(text, regrole), llm_grant_model(text),
	llm_revoke_model(text, regrole), llm_revoke_model(text),
	llm_stat_activity_internal(), llm_engine_status(),
	llm_generate_batch(text[], text, int, float8, float8, int, bigint, text[], jsonb),
	llm_stat_engine_internal(), llm_cache_clear(),
	llm_job_create(text, text, text, text, text, text, text, jsonb), llm_job_pause(text),
	llm_job_resume(text), llm_job_cancel(text), llm_job_drop(text),
	llm_generate_json(text, jsonb, text, int, float8, float8, int, bigint, jsonb),
	llm_generate_grammar(text, text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_classify(text, text[], text, text, float8, bigint, jsonb),
	llm_chat(jsonb, text, jsonb, text, jsonb, jsonb), llm_run_tool_calls(jsonb),
	llm_tool_schema(regprocedure), llm_register_tool(regprocedure, text, text),
	llm_unregister_tool(text)
	FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_generate_stream(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_tokenize(text, text), llm_detokenize(int[], text), llm_count_tokens(text, text),
	llm_stat_activity_internal(),
	llm_generate_batch(text[], text, int, float8, float8, int, bigint, text[], jsonb),
	llm_stat_engine_internal(),
	llm_job_create(text, text, text, text, text, text, text, jsonb), llm_job_pause(text),
	llm_job_resume(text), llm_job_cancel(text), llm_job_drop(text),
	llm_generate_json(text, jsonb, text, int, float8, float8, int, bigint, jsonb),
	llm_generate_grammar(text, text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_classify(text, text[], text, text, float8, bigint, jsonb),
	llm_chat(jsonb, text, jsonb, text, jsonb, jsonb), llm_run_tool_calls(jsonb),
	llm_tool_schema(regprocedure)
	TO llm_user;

GRANT EXECUTE ON FUNCTION
	llm_register_model(text, text, jsonb), llm_load_model(text), llm_unload_model(text),
	llm_drop_model(text), llm_grant_model(text, regrole), llm_grant_model(text),
	llm_revoke_model(text, regrole), llm_revoke_model(text), llm_engine_status(),
	llm_cache_clear(), llm_register_tool(regprocedure, text, text), llm_unregister_tool(text)
	TO llm_admin;

GRANT SELECT ON llm_stat_activity, llm_stat_engine, llm_stat_jobs TO llm_user;
REVOKE ALL ON response_cache FROM PUBLIC;
GRANT SELECT, DELETE ON response_cache TO llm_admin;
