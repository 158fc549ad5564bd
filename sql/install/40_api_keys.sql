/* 40_api_keys.sql: API keys (docs/http-api.md, docs/security.md) */

-- One row per key.  The key's text is returned once by llm_create_api_key
-- or llm_rotate_api_key and never stored: only its public prefix (to find
-- the row) and sha256(salt || secret).  Nobody but the owner (a superuser)
-- can read salt and hash, and rows are written only by the functions below,
-- so a key cannot be forged by writing a hash.  A revoked key keeps its row
-- (usage rows refer to it).
CREATE TABLE llm_api_keys (
	id					bigserial PRIMARY KEY,
	name				text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.:-]{1,63}$'),
	role				regrole NOT NULL,
	prefix				text NOT NULL UNIQUE CHECK (prefix ~ '^[A-Za-z0-9_-]{12}$'),
	salt				bytea NOT NULL CHECK (length(salt) = 16),
	hash				bytea NOT NULL CHECK (length(hash) = 32),
	created_at			timestamptz NOT NULL DEFAULT now(),
	created_by			name NOT NULL,
	rotated_at			timestamptz,
	expires_at			timestamptz,
	revoked_at			timestamptz,
	last_used_at		timestamptz,
	requests_per_minute	integer CHECK (requests_per_minute > 0),
	tokens_per_day		bigint CHECK (tokens_per_day > 0)
);
COMMENT ON TABLE llm_api_keys IS 'API keys: a role, limits and a salted hash of the secret; see llm_create_api_key()';
COMMENT ON COLUMN llm_api_keys.prefix IS 'public part of the key (lgk_<prefix>_<secret>), to find it and name it in logs';
COMMENT ON COLUMN llm_api_keys.last_used_at IS 'as of the last llm_api_keys_flush(); llm_stat_api_keys shows the live time';
COMMENT ON COLUMN llm_api_keys.requests_per_minute IS 'the key''s own limit, on top of its role''s; NULL: none';
COMMENT ON COLUMN llm_api_keys.tokens_per_day IS 'the key''s own limit, on top of its role''s; NULL: none';

-- Who sees a key: members of its role, and llm_admin.  A dropped role's
-- keys are left to llm_admin.
CREATE FUNCTION llm_api_key_visible(role oid) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT pg_has_role('llm_admin', 'MEMBER') OR
		   CASE WHEN EXISTS (SELECT FROM pg_roles r WHERE r.oid = $1)
				THEN pg_has_role($1, 'MEMBER') ELSE false END
$$;

ALTER TABLE llm_api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_api_keys_visible ON llm_api_keys FOR SELECT
	USING (@extschema@.llm_api_key_visible(role));
-- llm_admin may change a key's expiry and limits (columns granted below),
-- for keys of roles it is a member of: the same rule as creating one.
CREATE POLICY llm_api_keys_admin_update ON llm_api_keys FOR UPDATE TO llm_admin
	USING (CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = role)
				THEN pg_catalog.pg_has_role(role, 'MEMBER') ELSE false END)
	WITH CHECK (true);

REVOKE ALL ON llm_api_keys FROM PUBLIC;
GRANT SELECT (id, name, role, prefix, created_at, created_by, rotated_at, expires_at, revoked_at,
			  last_used_at, requests_per_minute, tokens_per_day)
	ON llm_api_keys TO llm_user, llm_admin;
GRANT UPDATE (expires_at, requests_per_minute, tokens_per_day) ON llm_api_keys TO llm_admin;
SELECT pg_catalog.pg_extension_config_dump('llm_api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('llm_api_keys_id_seq', '');

CREATE FUNCTION llm_create_api_key(name text, role regrole, expires_at timestamptz DEFAULT NULL,
								   requests_per_minute int DEFAULT NULL, tokens_per_day bigint DEFAULT NULL)
	RETURNS text
	AS 'MODULE_PATHNAME', 'llm_create_api_key'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_create_api_key IS 'create an API key acting as role; returns its text, the only time it is shown';

CREATE FUNCTION llm_rotate_api_key(name text) RETURNS text
	AS 'MODULE_PATHNAME', 'llm_rotate_api_key'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_rotate_api_key IS 'replace a key''s secret (the old one stops working at commit); returns the new text';

CREATE FUNCTION llm_revoke_api_key(name text) RETURNS boolean
	AS 'MODULE_PATHNAME', 'llm_revoke_api_key'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_revoke_api_key IS 'revoke a key for good; false if it already was';

-- Runs as its caller and reads the keys as their owner (C code), so the
-- anonymous role PostgREST starts a request with may call it.
CREATE FUNCTION llm_api_key_authenticate(key text) RETURNS regrole
	AS 'MODULE_PATHNAME', 'llm_api_key_authenticate'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_api_key_authenticate IS 'check an API key and make it this transaction''s key; its role (llm_pre_request switches to it)';

-- PARALLEL SAFE: a parallel worker reads its leader's key (request_key.c)
CREATE FUNCTION llm_current_api_key() RETURNS text
	AS 'MODULE_PATHNAME', 'llm_current_api_key'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION llm_current_api_key IS 'the name of the key this transaction authenticated with, or NULL';

CREATE FUNCTION llm_api_key_last_used(id bigint) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'llm_api_key_last_used'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION llm_api_keys_flush() RETURNS bigint
	AS 'MODULE_PATHNAME', 'llm_api_keys_flush'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_api_keys_flush IS 'write the last-used times held in shared memory into llm_api_keys';

-- Keys as their holders and administrators see them: live last use, state.
CREATE VIEW llm_stat_api_keys WITH (security_invoker = true) AS
	SELECT k.name, k.role, k.prefix,
		   CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
				WHEN k.expires_at <= now() THEN 'expired'
				ELSE 'active' END AS state,
		   k.created_at, k.created_by, k.rotated_at, k.expires_at, k.revoked_at,
		   GREATEST(k.last_used_at, @extschema@.llm_api_key_last_used(k.id)) AS last_used_at,
		   k.requests_per_minute, k.tokens_per_day, k.id
	FROM @extschema@.llm_api_keys k;
COMMENT ON VIEW llm_stat_api_keys IS 'API keys the current role may see, with state and live last-used time';

REVOKE ALL ON FUNCTION
	llm_create_api_key(text, regrole, timestamptz, int, bigint), llm_rotate_api_key(text),
	llm_revoke_api_key(text), llm_api_key_last_used(bigint), llm_api_keys_flush()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	llm_create_api_key(text, regrole, timestamptz, int, bigint), llm_rotate_api_key(text),
	llm_api_keys_flush()
	TO llm_admin;
GRANT EXECUTE ON FUNCTION llm_revoke_api_key(text), llm_api_key_last_used(bigint) TO llm_user;
-- llm_api_key_authenticate and llm_current_api_key stay executable by PUBLIC.
GRANT SELECT ON llm_stat_api_keys TO llm_user;
