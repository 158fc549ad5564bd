-- Quotas and rate limits per role (shared-memory counters), and the usage
-- table: a row per call, written by the usage flusher whatever the call's
-- transaction does.
\pset format unaligned
SET llamagpu.default_model = 'stories';

-- quota errors: the retry time depends on the clock
CREATE FUNCTION quota_error(q text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(regress_error(q), 'Retry in [0-9]+ seconds', 'Retry in N seconds')
$$;

CREATE ROLE regress_q_admin IN ROLE llm_admin;
CREATE ROLE regress_q_team;
CREATE ROLE regress_q_alice IN ROLE llm_user;
CREATE ROLE regress_q_bob IN ROLE llm_user, regress_q_team;
CREATE ROLE regress_q_carol IN ROLE llm_user, regress_q_team;
SELECT llm_grant_model('stories'), llm_grant_model('stories_ctx16');
GRANT USAGE ON SCHEMA public TO llm_user;
GRANT EXECUTE ON FUNCTION regress_error(text), quota_error(text) TO llm_user;

-- only llm_admin sets quotas; limits must be positive
SET ROLE regress_q_alice;
SELECT regress_error($$SELECT llm_set_quota('regress_q_alice', 1000, NULL)$$);
SET ROLE regress_q_admin;
SELECT regress_error($$SELECT llm_set_quota('regress_q_alice', 0, NULL)$$);
SELECT regress_error($$SELECT llm_set_quota('regress_q_alice', NULL, -5)$$);
SELECT llm_set_quota('regress_q_alice', 2, NULL);
SELECT llm_set_quota('regress_q_bob', NULL, 10);
SELECT llm_set_quota('regress_q_team', 1, 1000000);
SELECT llm_set_quota('regress_q_team', 1, 500000);	-- replaces
SELECT role::regrole, requests_per_minute, tokens_per_day, set_by FROM llm_quotas
WHERE role::regrole::text LIKE 'regress_q%' ORDER BY role::regrole::text;
RESET ROLE;

-- a role's own row wins over its groups'; without one, its groups' apply
SELECT r, q.* FROM unnest(ARRAY['regress_q_alice', 'regress_q_bob', 'regress_q_carol', 'regress_q_admin']::regrole[]) r,
	LATERAL llm_effective_quota(r) q;

-- requests per minute: a burst of 2, then refused, naming the limit (53400)
SET ROLE regress_q_alice;
SELECT llm_generate('Once upon a time', max_tokens => 4, temperature => 0);
SELECT llm_generate('Once upon a time', max_tokens => 4, temperature => 0);
SELECT quota_error($$SELECT llm_generate('Once upon a time', max_tokens => 4, temperature => 0)$$);
-- every entry point is counted: a batch, a stream, chat, JSON
SELECT quota_error($$SELECT * FROM llm_generate_batch(ARRAY['a', NULL], max_tokens => 1)$$);
SELECT quota_error($$SELECT * FROM llm_generate_stream('Once', max_tokens => 1)$$);
SELECT quota_error($$SELECT llm_chat('[{"role": "user", "content": "hi"}]', options => '{"max_tokens": 1}')$$);
SELECT quota_error($$SELECT llm_generate_json('x', '{"type": "integer"}', max_tokens => 1)$$);
-- a batch larger than the limit can never pass
SELECT quota_error($$SELECT * FROM llm_generate_batch(ARRAY['a', 'b', 'c'], max_tokens => 1)$$);
-- alice sees her limits and counters, not bob's
SELECT role::regrole, requests_per_minute FROM llm_quotas ORDER BY role::regrole::text;
SELECT role, requests_per_minute, requests, rejected, tokens > 0 AS has_tokens, requests_available
FROM llm_stat_quotas ORDER BY role::text;
RESET ROLE;

-- tokens per day: charged when a call finishes; refused once the day's are used
SET ROLE regress_q_bob;
SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0);
SELECT quota_error($$SELECT llm_generate('Once upon a time', max_tokens => 8, temperature => 0)$$);
RESET ROLE;
SELECT role, requests, rejected, tokens, tokens_today FROM llm_stat_quotas
WHERE role::text = 'regress_q_bob';
-- the counters outlive the session; an admin can reset them
SELECT llm_quota_reset('regress_q_bob');
SELECT count(*) FROM llm_stat_quotas WHERE role::text = 'regress_q_bob';

-- carol has no row of her own: the team's limit of 1 per minute is hers (not shared with bob)
SET ROLE regress_q_carol;
SELECT llm_generate('Once upon a time', max_tokens => 2, temperature => 0);
SELECT quota_error($$SELECT llm_generate('Once upon a time', max_tokens => 2, temperature => 0)$$);
RESET ROLE;
SET ROLE regress_q_admin;
SELECT llm_drop_quota('regress_q_team'), llm_drop_quota('regress_q_team');
RESET ROLE;
SET ROLE regress_q_carol;
SELECT llm_generate('Once upon a time', max_tokens => 2, temperature => 0);
RESET ROLE;

-- usage rows are written even when the caller's transaction rolls back, and
-- for calls that fail in the engine
SET ROLE regress_q_carol;
BEGIN;
SELECT * FROM llm_generate_batch(ARRAY['Once upon a time', NULL, 'Lily'], max_tokens => 3, temperature => 0);
ROLLBACK;
SELECT regress_error($$SELECT llm_generate(repeat('Once upon a time ', 10), model => 'stories_ctx16')$$);
-- a stream read only in part is recorded as cancelled
SELECT llm_generate_stream('Once upon a time', max_tokens => 8, temperature => 0) LIMIT 2;
-- (in FROM, a set-returning function is read to its end)
SELECT count(*) FROM llm_generate_stream('Once upon a time', max_tokens => 3, temperature => 0);
SELECT llm_usage_flush();
-- carol sees her own rows only
SELECT role, model, kind, status, sqlstate, requests, errors, prompt_tokens, completion_tokens,
	   api_key IS NULL AS no_key, duration_ms >= 0 AS timed, backend_pid = pg_backend_pid() AS this_backend
FROM llm_usage ORDER BY id;
SELECT day = (now() AT TIME ZONE 'UTC')::date AS today, role, model, requests, tokens, errors, rejected
FROM llm_usage_daily ORDER BY model;
RESET ROLE;

-- everything, as the admin sees it: refused calls too
SET ROLE regress_q_admin;
SELECT role, kind, status, sqlstate, requests, errors, prompt_tokens + completion_tokens AS tokens
FROM llm_usage WHERE role::text LIKE 'regress_q%' ORDER BY id;
RESET ROLE;
-- the counters agree with the rows: admitted requests and charged tokens
SELECT c.role, c.requests = u.requests AS requests_agree, c.tokens = u.tokens AS tokens_agree,
	   c.rejected = u.rejected AS rejected_agree
FROM llm_stat_quotas c
JOIN (SELECT role_id, sum(requests) FILTER (WHERE status <> 'rejected') AS requests,
			 sum(prompt_tokens + completion_tokens) AS tokens,
			 coalesce(sum(requests) FILTER (WHERE status = 'rejected'), 0) AS rejected
	  FROM llm_usage GROUP BY role_id) u ON u.role_id = c.role
WHERE c.role::text IN ('regress_q_alice', 'regress_q_carol') ORDER BY c.role::text;
SELECT capacity > 0 AS has_capacity, buffered, flushed > 0 AS flushed, dropped FROM llm_stat_usage;

-- retention is a reload setting in days
SELECT context, unit, boot_val FROM pg_settings WHERE name = 'llamagpu.usage_retention';
SELECT name, context FROM pg_settings WHERE name IN ('llamagpu.quota_entries', 'llamagpu.usage_buffer_size') ORDER BY 1;

SELECT llm_revoke_model('stories'), llm_revoke_model('stories_ctx16');
REVOKE USAGE ON SCHEMA public FROM llm_user;
REVOKE EXECUTE ON FUNCTION regress_error(text), quota_error(text) FROM llm_user;
DELETE FROM llm_quotas WHERE role::regrole::text LIKE 'regress_q%';
DROP ROLE regress_q_admin, regress_q_team, regress_q_alice, regress_q_bob, regress_q_carol;
