/* llamagpu--0.1.0.sql: the first release of the llamagpu extension */

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
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION llm_generate IS 'generate a continuation of prompt with a registered model';

CREATE FUNCTION llm_generate_stream(prompt text, model text DEFAULT NULL, max_tokens int DEFAULT 256,
									temperature float8 DEFAULT 0.8, top_p float8 DEFAULT 0.95,
									top_k int DEFAULT 40, seed bigint DEFAULT NULL,
									stop text[] DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS SETOF text
	AS 'MODULE_PATHNAME', 'llm_generate_stream'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 256;
COMMENT ON FUNCTION llm_generate_stream IS 'generate like llm_generate, one row per piece as produced';

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

-- Privileges: nothing that runs a model is executable by PUBLIC.
REVOKE ALL ON FUNCTION
	llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_generate_stream(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_tokenize(text, text), llm_detokenize(int[], text), llm_count_tokens(text, text),
	llm_register_model(text, text, jsonb), llm_load_model(text), llm_unload_model(text),
	llm_drop_model(text), llm_grant_model(text, regrole), llm_grant_model(text),
	llm_revoke_model(text, regrole), llm_revoke_model(text),
	llm_stat_activity_internal(), llm_engine_status()
	FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
	llm_generate(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_generate_stream(text, text, int, float8, float8, int, bigint, text[], jsonb),
	llm_tokenize(text, text), llm_detokenize(int[], text), llm_count_tokens(text, text),
	llm_stat_activity_internal()
	TO llm_user;

GRANT EXECUTE ON FUNCTION
	llm_register_model(text, text, jsonb), llm_load_model(text), llm_unload_model(text),
	llm_drop_model(text), llm_grant_model(text, regrole), llm_grant_model(text),
	llm_revoke_model(text, regrole), llm_revoke_model(text), llm_engine_status()
	TO llm_admin;

GRANT SELECT ON llm_stat_activity TO llm_user;
