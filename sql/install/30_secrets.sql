/* 30_secrets.sql: secrets (hub tokens, provider API keys) that only llm_admin can read */

-- A secret is referred to by name (a model's api_key_secret, a download's
-- token_secret); its value never goes into a setting, a log line or a
-- function argument that pg_stat_activity would show.  Load a value with
--   \copy llamagpu.llm_secrets (name, value) FROM 'token.txt'
-- (COPY data is not part of the statement text), or llm_set_secret() when
-- the statement text may be seen.
CREATE TABLE llm_secrets (
	name			text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,63}$'),
	value			text NOT NULL,
	created_by		name NOT NULL DEFAULT current_user,
	updated_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llm_secrets IS 'tokens and API keys referred to by name; readable by llm_admin only';
REVOKE ALL ON llm_secrets FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON llm_secrets TO llm_admin;
SELECT pg_catalog.pg_extension_config_dump('llm_secrets', '');

CREATE FUNCTION llm_set_secret(name text, value text) RETURNS void
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
	INSERT INTO @extschema@.llm_secrets AS s (name, value) VALUES ($1, $2)
	ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = now(),
		created_by = current_user
	$$;
COMMENT ON FUNCTION llm_set_secret IS 'store (or replace) a secret; its value appears in the statement text';
CREATE FUNCTION llm_drop_secret(name text) RETURNS boolean
	LANGUAGE sql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
	WITH d AS (DELETE FROM @extschema@.llm_secrets s WHERE s.name = $1 RETURNING 1)
	SELECT count(*) > 0 FROM d
	$$;
REVOKE ALL ON FUNCTION llm_set_secret(text, text), llm_drop_secret(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_set_secret(text, text), llm_drop_secret(text) TO llm_admin;
