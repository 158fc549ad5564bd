/* 50_quota_usage.sql: quotas and rate limits per role, the usage table and its views (see docs/security.md) */

-- Limits per role.  NULL: no limit of that kind.  A role's own row is its
-- limit; a role without a row gets, per kind, the smallest limit of the
-- roles whose privileges it has (llm_effective_quota).  Counted per role:
-- a limit set on a group is what each member may use, not a pool.
CREATE TABLE llm_quotas (
	role				oid PRIMARY KEY,
	requests_per_minute	integer CHECK (requests_per_minute > 0),
	tokens_per_day		bigint CHECK (tokens_per_day > 0),
	set_by				name NOT NULL DEFAULT current_user,
	set_at				timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llm_quotas IS 'requests per minute and tokens per day per role; see llm_set_quota()';

-- Whether the current user has the privileges of role (a dropped role: no).
CREATE FUNCTION llm_role_visible(role oid) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT CASE WHEN EXISTS (SELECT FROM pg_roles r WHERE r.oid = $1)
				THEN pg_has_role($1, 'USAGE') ELSE false END
$$;

ALTER TABLE llm_quotas ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_quotas_member ON llm_quotas FOR SELECT
	USING (@extschema@.llm_role_visible(role));
CREATE POLICY llm_quotas_admin ON llm_quotas FOR ALL TO llm_admin
	USING (true) WITH CHECK (true);
GRANT SELECT ON llm_quotas TO llm_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON llm_quotas TO llm_admin;
SELECT pg_catalog.pg_extension_config_dump('llm_quotas', '');

CREATE FUNCTION llm_set_quota(role regrole, requests_per_minute int, tokens_per_day bigint)
	RETURNS void
	LANGUAGE sql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	INSERT INTO @extschema@.llm_quotas AS q (role, requests_per_minute, tokens_per_day)
	VALUES ($1, $2, $3)
	ON CONFLICT (role) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
		tokens_per_day = excluded.tokens_per_day, set_by = current_user, set_at = now()
$$;
COMMENT ON FUNCTION llm_set_quota IS 'limit a role''s requests per minute and tokens per day (NULL: no limit)';
CREATE FUNCTION llm_drop_quota(role regrole) RETURNS boolean
	LANGUAGE sql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	WITH d AS (DELETE FROM @extschema@.llm_quotas q WHERE q.role = $1 RETURNING 1)
	SELECT count(*) > 0 FROM d
$$;
COMMENT ON FUNCTION llm_drop_quota IS 'remove a role''s own limits (it falls back to its groups'')';

-- The limits that apply to a role: its own row, else the smallest of its
-- groups' (roles whose privileges it has, through INHERIT memberships).  A
-- superuser has the privileges of every role, so only its own row applies.
-- The extension calls it as the table's owner; a user calling it sees only
-- the rows RLS shows (their own and their groups').
CREATE FUNCTION llm_effective_quota(role regrole, OUT requests_per_minute int,
									OUT tokens_per_day bigint, OUT source text)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT CASE WHEN o.role IS NOT NULL THEN o.requests_per_minute ELSE g.rpm END,
		   CASE WHEN o.role IS NOT NULL THEN o.tokens_per_day ELSE g.tpd END,
		   CASE WHEN o.role IS NOT NULL THEN 'own' WHEN g.n > 0 THEN 'inherited' ELSE 'none' END
	FROM (SELECT min(q.requests_per_minute) AS rpm, min(q.tokens_per_day) AS tpd, count(*) AS n
		  FROM @extschema@.llm_quotas q
		  WHERE q.role <> $1
			AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = $1)
			AND EXISTS (SELECT FROM pg_roles r WHERE r.oid = q.role)
			AND pg_has_role($1, q.role, 'USAGE')) g
	LEFT JOIN @extschema@.llm_quotas o ON o.role = $1
$$;

-- The shared-memory counters of this database (since the server started).
CREATE FUNCTION llm_quota_counters(OUT subject text, OUT role oid, OUT api_key_id bigint,
								   OUT name text, OUT requests_per_minute int,
								   OUT tokens_per_day bigint, OUT requests bigint,
								   OUT rejected bigint, OUT tokens bigint,
								   OUT tokens_today bigint, OUT requests_available int)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'llm_quota_counters'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE VIEW llm_stat_quotas AS
	SELECT c.subject, c.role::regrole AS role, c.api_key_id, c.name,
		   c.requests_per_minute, c.tokens_per_day, c.requests, c.rejected, c.tokens,
		   c.tokens_today, c.requests_available
	FROM @extschema@.llm_quota_counters() c;	-- it shows a user only its roles' and their keys' counters
COMMENT ON VIEW llm_stat_quotas IS 'requests and tokens counted per role and API key since the server started';

CREATE FUNCTION llm_quota_reset(role regrole) RETURNS bigint
	AS 'MODULE_PATHNAME', 'llm_quota_reset'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_quota_reset IS 'forget a role''s counters: a full bucket and no tokens used today';

-- Usage: a row per generation call (a batch is one call of many requests),
-- written by the usage flusher from the shared buffer, so that a call that
-- fails or whose transaction rolls back is still recorded.
CREATE TABLE llm_usage (
	id					bigserial PRIMARY KEY,
	started_at			timestamptz NOT NULL,
	finished_at			timestamptz NOT NULL,
	role_id				oid NOT NULL,			-- whose privileges and quota applied
	role				name NOT NULL,
	outer_role_id		oid NOT NULL,			-- who called, outside SECURITY DEFINER functions
	outer_role			name NOT NULL,
	api_key_id			bigint,					-- the key the transaction authenticated with
	api_key				text,
	model				text,
	kind				text NOT NULL,			-- generate, batch, stream, chat, json, grammar, classify, job, embed, embed_batch, embed_job
	status				text NOT NULL CHECK (status IN ('ok', 'error', 'rejected', 'cancelled')),
	sqlstate			text,
	requests			integer NOT NULL,
	errors				integer NOT NULL,		-- requests that failed (or were refused)
	prompt_tokens		bigint NOT NULL,
	completion_tokens	bigint NOT NULL,
	duration_ms			double precision NOT NULL,
	backend_pid			integer NOT NULL
);
CREATE INDEX llm_usage_finished_at ON llm_usage (finished_at);
COMMENT ON TABLE llm_usage IS 'one row per generation or embedding call, kept llamagpu.usage_retention days';

-- Whether the current user may see a usage row: its role's or its caller's
-- (a member of either), or everything for llm_admin.
CREATE FUNCTION llm_usage_visible(role_id oid, outer_role_id oid) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT pg_has_role('llm_admin', 'MEMBER') OR
		   CASE WHEN EXISTS (SELECT FROM pg_roles r WHERE r.oid = $1)
				THEN pg_has_role($1, 'MEMBER') ELSE false END OR
		   CASE WHEN EXISTS (SELECT FROM pg_roles r WHERE r.oid = $2)
				THEN pg_has_role($2, 'MEMBER') ELSE false END
$$;

ALTER TABLE llm_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_usage_own ON llm_usage FOR SELECT
	USING (@extschema@.llm_usage_visible(role_id, outer_role_id));
GRANT SELECT ON llm_usage TO llm_user;
-- llm_admin may delete (e.g. before the retention would); nobody writes but the flusher
GRANT DELETE ON llm_usage TO llm_admin;
CREATE POLICY llm_usage_admin_delete ON llm_usage FOR DELETE TO llm_admin USING (true);
SELECT pg_catalog.pg_extension_config_dump('llm_usage', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage_id_seq', '');

-- The views run with the caller's privileges, so the table's RLS applies.
CREATE VIEW llm_usage_daily WITH (security_invoker = true) AS
	SELECT (u.finished_at AT TIME ZONE 'UTC')::date AS day, u.role, u.model,
		   sum(u.requests) AS requests,
		   sum(u.prompt_tokens) AS prompt_tokens,
		   sum(u.completion_tokens) AS completion_tokens,
		   sum(u.prompt_tokens + u.completion_tokens) AS tokens,
		   sum(u.errors) AS errors,
		   coalesce(sum(u.requests) FILTER (WHERE u.status = 'rejected'), 0) AS rejected,
		   pg_catalog.make_interval(secs => sum(u.duration_ms) / 1000) AS time
	FROM @extschema@.llm_usage u
	GROUP BY 1, 2, 3;
COMMENT ON VIEW llm_usage_daily IS 'requests, tokens, errors and time per UTC day, role and model';

CREATE VIEW llm_usage_keys_daily WITH (security_invoker = true) AS
	SELECT (u.finished_at AT TIME ZONE 'UTC')::date AS day, u.api_key, u.role,
		   sum(u.requests) AS requests,
		   sum(u.prompt_tokens + u.completion_tokens) AS tokens,
		   sum(u.errors) AS errors,
		   coalesce(sum(u.requests) FILTER (WHERE u.status = 'rejected'), 0) AS rejected,
		   max(u.finished_at) AS last_used
	FROM @extschema@.llm_usage u
	WHERE u.api_key_id IS NOT NULL
	GROUP BY 1, 2, 3;
COMMENT ON VIEW llm_usage_keys_daily IS 'requests and tokens per UTC day and API key';

CREATE VIEW llm_usage_by_kind WITH (security_invoker = true) AS
	SELECT u.role, u.model, u.kind,
		   sum(u.requests) AS requests,
		   sum(u.prompt_tokens + u.completion_tokens) AS tokens,
		   sum(u.errors) AS errors,
		   avg(u.duration_ms) FILTER (WHERE u.status = 'ok') AS avg_ms,
		   max(u.finished_at) AS last_used
	FROM @extschema@.llm_usage u
	GROUP BY 1, 2, 3;
COMMENT ON VIEW llm_usage_by_kind IS 'requests and tokens per role, model and kind of call';

-- The shared buffer between the calls and the flusher.
CREATE FUNCTION llm_usage_buffer(OUT capacity int, OUT buffered int, OUT appended bigint,
								 OUT flushed bigint, OUT dropped bigint, OUT flushers int)
	AS 'MODULE_PATHNAME', 'llm_usage_buffer'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
CREATE VIEW llm_stat_usage AS SELECT * FROM @extschema@.llm_usage_buffer();
COMMENT ON VIEW llm_stat_usage IS 'the usage buffer: records appended, written and dropped since the server started';
CREATE FUNCTION llm_usage_flush(timeout_ms int DEFAULT 10000) RETURNS boolean
	AS 'MODULE_PATHNAME', 'llm_usage_flush'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_usage_flush IS 'wait until this database''s usage records so far are in llm_usage';

REVOKE ALL ON FUNCTION
	llm_set_quota(regrole, int, bigint), llm_drop_quota(regrole), llm_quota_reset(regrole),
	llm_effective_quota(regrole), llm_quota_counters(), llm_usage_buffer(), llm_usage_flush(int)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_effective_quota(regrole), llm_quota_counters(), llm_usage_buffer(),
	llm_usage_flush(int) TO llm_user;
GRANT EXECUTE ON FUNCTION
	llm_set_quota(regrole, int, bigint), llm_drop_quota(regrole), llm_quota_reset(regrole)
	TO llm_admin;
GRANT SELECT ON llm_stat_quotas, llm_stat_usage, llm_usage_daily, llm_usage_keys_daily,
	llm_usage_by_kind TO llm_user;
