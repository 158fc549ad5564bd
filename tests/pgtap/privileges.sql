-- pgTAP: what each kind of role can and cannot do — a role with no
-- llamagpu role, llm_user, llm_admin, a superuser — directly and through
-- SECURITY DEFINER functions; row-level security on every table that holds
-- per-role data; whose quota applies and what usage records.
BEGIN;
SELECT plan(84);

SELECT lives_ok($$SELECT llamagpu.llm_register_model('tap_priv', 'stories260K.gguf')$$,
				'the superuser registers a model');
CREATE ROLE tap_p_stranger;
CREATE ROLE tap_p_user IN ROLE llm_user;
CREATE ROLE tap_p_other IN ROLE llm_user;
CREATE ROLE tap_p_admin IN ROLE llm_admin;
CREATE SCHEMA tap_p AUTHORIZATION tap_p_admin;

-- ---- what is granted (catalog checks) ----

-- every table with per-role rows has row-level security and a policy
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
				WHERE c.relnamespace = 'llamagpu'::regnamespace
				  AND c.relname IN ('llm_model_grants', 'llm_quotas', 'llm_usage', 'llm_jobs',
									'llm_job_failures', 'llm_api_keys', 'llm_embedding_jobs',
									'llm_embedding_queue')
				  AND NOT c.relrowsecurity ORDER BY 1),
		  '{}'::text[], 'per-role tables have row-level security enabled');
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
				WHERE c.relnamespace = 'llamagpu'::regnamespace
				  AND c.relname IN ('llm_model_grants', 'llm_quotas', 'llm_usage', 'llm_jobs',
									'llm_job_failures', 'llm_api_keys', 'llm_embedding_jobs',
									'llm_embedding_queue')
				  AND NOT EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid) ORDER BY 1),
		  '{}'::text[], 'per-role tables have policies');
-- every C function is granted to llm_user or llm_admin and to no one else
-- (but the owner), except the superuser-only llm_plugin_inspect and the
-- two PUBLIC ones above
SELECT is(ARRAY(SELECT p.oid::regprocedure::text || ': ' ||
					   coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
												   ',' ORDER BY 1)
								 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
								 WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), '-')
				FROM pg_proc p
				WHERE p.pronamespace = 'llamagpu'::regnamespace
				  AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
				  AND p.oid::regprocedure::text NOT IN ('llamagpu.llm_api_key_authenticate(text)',
														'llamagpu.llm_current_api_key()',
														'llamagpu.llm_plugin_inspect(text,text)')
				  AND coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ',')
								FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
								WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), '-')
					  NOT IN ('llm_user', 'llm_admin')
				ORDER BY 1),
		  '{}'::text[], 'every C function is executable by llm_user or llm_admin alone');
-- every table llm_user may write (any column) keeps each role to its rows
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
				WHERE c.relnamespace = 'llamagpu'::regnamespace AND c.relkind = 'r'
				  AND (has_table_privilege('llm_user', c.oid, 'INSERT') OR has_table_privilege('llm_user', c.oid, 'DELETE')
					   OR has_any_column_privilege('llm_user', c.oid, 'UPDATE'))
				  AND NOT (c.relrowsecurity AND EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid))
				ORDER BY 1),
		  '{}'::text[], 'every table llm_user may write has row-level security and a policy');
-- no C function of the extension is executable by PUBLIC, but the two that
-- PostgREST's anonymous role needs to present an API key (llm_pre_request)
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
				WHERE p.pronamespace = 'llamagpu'::regnamespace
				  AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
				  AND has_function_privilege('public', p.oid, 'EXECUTE')
				  AND p.oid::regprocedure::text NOT IN ('llamagpu.llm_api_key_authenticate(text)',
														'llamagpu.llm_current_api_key()')
				ORDER BY 1),
		  '{}'::text[], 'PUBLIC cannot execute any C function of llamagpu but key authentication');
-- every SECURITY DEFINER function of the extension pins its search_path
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
				WHERE p.pronamespace = 'llamagpu'::regnamespace AND p.prosecdef
				  AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, pg_temp%', false)
				ORDER BY 1),
		  '{}'::text[], 'SECURITY DEFINER functions set search_path = pg_catalog, pg_temp');

SELECT table_privs_are('llamagpu', 'llm_quotas', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_quotas', 'llm_admin', ARRAY['DELETE', 'INSERT', 'SELECT', 'UPDATE']);
SELECT table_privs_are('llamagpu', 'llm_quotas', 'public', '{}'::text[]);
SELECT table_privs_are('llamagpu', 'llm_usage', 'llm_user', ARRAY['SELECT']);
SELECT table_privs_are('llamagpu', 'llm_usage', 'llm_admin', ARRAY['DELETE', 'SELECT']);
SELECT table_privs_are('llamagpu', 'llm_usage', 'public', '{}'::text[]);
SELECT table_privs_are('llamagpu', 'llm_secrets', 'llm_user', '{}'::text[]);
SELECT table_privs_are('llamagpu', 'llm_secrets', 'llm_admin', ARRAY['DELETE', 'INSERT', 'SELECT', 'UPDATE']);
SELECT table_privs_are('llamagpu', 'response_cache', 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_set_quota', ARRAY['regrole', 'integer', 'bigint'], 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_set_quota', ARRAY['regrole', 'integer', 'bigint'], 'llm_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('llamagpu', 'llm_drop_quota', ARRAY['regrole'], 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_quota_reset', ARRAY['regrole'], 'llm_user', '{}'::text[]);
SELECT function_privs_are('llamagpu', 'llm_quota_reset', ARRAY['regrole'], 'llm_admin', ARRAY['EXECUTE']);
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_set_quota(regrole, int, bigint)', 'EXECUTE'),
		  'PUBLIC cannot set quotas');
SELECT ok(has_table_privilege('llm_user', 'llamagpu.llm_usage_daily', 'SELECT')
		  AND NOT has_table_privilege('public', 'llamagpu.llm_usage_daily', 'SELECT'),
		  'llm_usage_daily: llm_user, not PUBLIC');
SELECT is((SELECT reloptions FROM pg_class WHERE oid = 'llamagpu.llm_usage_daily'::regclass),
		  ARRAY['security_invoker=true'], 'llm_usage_daily applies the caller''s row-level security');

-- ---- a role with no llamagpu role ----
SET ROLE tap_p_stranger;
SELECT throws_ok($$SELECT llamagpu.llm_generate('Hi', 'tap_priv', max_tokens => 1)$$, '42501',
				 NULL, 'stranger: cannot generate');
SELECT throws_ok($$SELECT count(*) FROM llamagpu.llm_usage$$, '42501', NULL, 'stranger: cannot read llm_usage');
SELECT throws_ok($$SELECT count(*) FROM llamagpu.llm_stat_quotas$$, '42501', NULL, 'stranger: cannot read llm_stat_quotas');
SELECT throws_ok($$SELECT llamagpu.llm_set_quota('tap_p_stranger', NULL, NULL)$$, '42501', NULL,
				 'stranger: cannot set a quota');
RESET ROLE;

-- ---- llm_user, before any grant ----
SET ROLE tap_p_user;
SELECT throws_ok($$SELECT llamagpu.llm_generate('Hi', 'tap_priv', max_tokens => 1)$$, '42501',
				 'permission denied for model "tap_priv"', 'user: no model without a grant');
SELECT throws_ok($$SELECT llamagpu.llm_grant_model('tap_priv', 'tap_p_user')$$, '42501', NULL,
				 'user: cannot grant itself a model');
SELECT throws_ok($$SELECT llamagpu.llm_register_model('mine', 'stories260K.gguf')$$, '42501', NULL,
				 'user: cannot register models');
SELECT throws_ok($$SELECT llamagpu.llm_set_quota('tap_p_user', 100000, NULL)$$, '42501', NULL,
				 'user: cannot raise its own quota');
SELECT throws_ok($$INSERT INTO llamagpu.llm_quotas (role, requests_per_minute) VALUES ('tap_p_user'::regrole, 1)$$,
				 '42501', NULL, 'user: cannot write llm_quotas');
SELECT throws_ok($$SELECT llamagpu.llm_quota_reset('tap_p_user')$$, '42501', NULL,
				 'user: cannot reset its counters');
SELECT throws_ok($$INSERT INTO llamagpu.llm_usage (started_at, finished_at, role_id, role, outer_role_id, outer_role,
					 kind, status, requests, errors, prompt_tokens, completion_tokens, duration_ms, backend_pid)
					 VALUES (now(), now(), 1, 'x', 1, 'x', 'generate', 'ok', 1, 0, 0, 0, 0, 0)$$,
				 '42501', NULL, 'user: cannot forge usage rows');
SELECT throws_ok($$DELETE FROM llamagpu.llm_usage$$, '42501', NULL, 'user: cannot delete usage rows');
SELECT throws_ok($$SELECT count(*) FROM llamagpu.llm_secrets$$, '42501', NULL, 'user: cannot read secrets');
SELECT throws_ok($$SELECT count(*) FROM llamagpu.response_cache$$, '42501', NULL,
				 'user: cannot read the response cache (other roles'' outputs)');
RESET ROLE;

-- ---- llm_admin: manages, but superuser-only stays superuser-only ----
SET ROLE tap_p_admin;
SELECT lives_ok($$SELECT llamagpu.llm_grant_model('tap_priv', 'tap_p_user')$$, 'admin: grants a model');
SELECT lives_ok($$SELECT llamagpu.llm_grant_model('tap_priv', 'tap_p_other')$$, 'admin: grants a model to another');
SELECT lives_ok($$SELECT llamagpu.llm_set_quota('tap_p_other', 1000, 1000000)$$, 'admin: sets a quota');
SELECT lives_ok($$SELECT llamagpu.llm_set_quota('tap_p_admin', 1, NULL)$$, 'admin: sets its own quota');
SELECT throws_ok($$SET llamagpu.response_cache_max_rows = 5$$, '42501', NULL,
				 'admin: cannot change a superuser setting');
SELECT throws_ok($$SELECT llamagpu.llm_register_model('outside', '/etc/passwd')$$, '42501', NULL,
				 'admin: cannot register a file outside llamagpu.model_dir');
SELECT is((SELECT count(*)::int FROM llamagpu.llm_secrets), 0, 'admin: reads secrets');
RESET ROLE;

-- ---- llm_user with a grant: generates; sees only its own rows ----
SET ROLE tap_p_user;
SELECT lives_ok($$SELECT llamagpu.llm_generate('Once upon a time', 'tap_priv', max_tokens => 2, temperature => 0)$$,
				'user: generates with the granted model');
SELECT is((SELECT array_agg(grantee::regrole::text) FROM llamagpu.llm_model_grants WHERE model = 'tap_priv'),
		  ARRAY['tap_p_user'], 'user: sees its own grant, not the other''s');
RESET ROLE;
SET ROLE tap_p_other;
SELECT lives_ok($$SELECT * FROM llamagpu.llm_generate_batch(ARRAY['Once', 'Lily'], 'tap_priv', max_tokens => 2)$$,
				'other: generates a batch');
SELECT is((SELECT array_agg(role::regrole::text) FROM llamagpu.llm_quotas), ARRAY['tap_p_other'],
		  'other: sees its own quota only');
RESET ROLE;

-- ---- SECURITY DEFINER: the owner's privileges and quota apply; the caller is recorded ----
SET ROLE tap_p_admin;
CREATE FUNCTION tap_p.story(t text) RETURNS text
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
	AS $$ SELECT llamagpu.llm_generate(t, 'tap_priv', max_tokens => 2, temperature => 0) $$;
CREATE FUNCTION tap_p.story_invoker(t text) RETURNS text
	LANGUAGE sql SET search_path = pg_catalog, pg_temp
	AS $$ SELECT llamagpu.llm_generate(t, 'tap_priv', max_tokens => 2, temperature => 0) $$;
REVOKE ALL ON FUNCTION tap_p.story(text), tap_p.story_invoker(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA tap_p TO tap_p_stranger;
GRANT EXECUTE ON FUNCTION tap_p.story(text), tap_p.story_invoker(text) TO tap_p_stranger;
RESET ROLE;
SET ROLE tap_p_stranger;
SELECT is(tap_p.story('Once upon a time'), ', there', 'stranger: generates through the admin''s SECURITY DEFINER function');
SELECT throws_ok($$SELECT tap_p.story('Once upon a time')$$, '53400',
				 'rate limit of 1 request per minute exceeded for role "tap_p_admin"',
				 'stranger: the owner''s quota applies inside the function');
SELECT throws_ok($$SELECT tap_p.story_invoker('Once upon a time')$$, '42501', NULL,
				 'stranger: a SECURITY INVOKER function runs with the caller''s privileges');
SELECT throws_ok($$SELECT llamagpu.llm_generate('Hi', 'tap_priv', max_tokens => 1)$$, '42501', NULL,
				 'stranger: still cannot generate directly');
RESET ROLE;

-- ---- usage rows and their row-level security ----
SELECT ok(llamagpu.llm_usage_flush(), 'usage records flushed');
SELECT is((SELECT array_agg(status || ':' || role || '<-' || outer_role ORDER BY id) FROM llamagpu.llm_usage
		   WHERE outer_role = 'tap_p_stranger'),
		  ARRAY['ok:tap_p_admin<-tap_p_stranger', 'rejected:tap_p_admin<-tap_p_stranger'],
		  'a definer call is recorded as the owner''s, with the caller as outer_role');
SELECT is((SELECT array_agg(kind || ':' || requests ORDER BY id) FROM llamagpu.llm_usage
		   WHERE role IN ('tap_p_user', 'tap_p_other')),
		  ARRAY['generate:1', 'batch:2'], 'the superuser sees every role''s rows');
SET ROLE tap_p_user;
SELECT is((SELECT array_agg(DISTINCT role::text) FROM llamagpu.llm_usage), ARRAY['tap_p_user'],
		  'user: sees only its own usage');
SELECT is((SELECT sum(requests)::int FROM llamagpu.llm_usage_daily), 1, 'user: its daily view counts only its own');
SELECT is((SELECT array_agg(role::text) FROM llamagpu.llm_stat_quotas), ARRAY['tap_p_user'],
		  'user: sees only its own counters');
RESET ROLE;
SET ROLE tap_p_other;
SELECT is((SELECT array_agg(DISTINCT role::text) FROM llamagpu.llm_usage), ARRAY['tap_p_other'],
		  'other: sees only its own usage');
RESET ROLE;
SET ROLE tap_p_admin;
SELECT is((SELECT count(DISTINCT role)::int FROM llamagpu.llm_usage
		   WHERE role IN ('tap_p_user', 'tap_p_other', 'tap_p_admin')), 3, 'admin: sees everyone''s usage');
SELECT ok((SELECT count(*) FROM llamagpu.llm_stat_quotas WHERE role::text IN ('tap_p_user', 'tap_p_other')) = 2,
		  'admin: sees everyone''s counters');
RESET ROLE;

-- ---- jobs: a role sees its own jobs and failures, not another's ----
INSERT INTO llamagpu.llm_jobs (name, owner, source, source_sql, id_column, id_type, prompt,
							   target_table, target_column, target_type, search_path, state)
VALUES ('tap_p_job', 'tap_p_user'::regrole, 't', 't', 'id', 'integer', 'p', 't', 'c', 'text', 'public', 'done');
INSERT INTO llamagpu.llm_job_failures (job_id, job, owner, row_id, sqlstate, error)
SELECT id, name, owner, '1', '22000', 'x' FROM llamagpu.llm_jobs WHERE name = 'tap_p_job';
SET ROLE tap_p_user;
SELECT is((SELECT count(*)::int FROM llamagpu.llm_jobs WHERE name = 'tap_p_job'), 1, 'user: sees its job');
SELECT is((SELECT count(*)::int FROM llamagpu.llm_job_failures WHERE job = 'tap_p_job'), 1, 'user: sees its job''s failures');
SELECT throws_ok($$UPDATE llamagpu.llm_jobs SET state = 'running'$$, '42501', NULL, 'user: cannot write llm_jobs');
RESET ROLE;
SET ROLE tap_p_other;
SELECT is((SELECT count(*)::int FROM llamagpu.llm_jobs WHERE name = 'tap_p_job'), 0, 'other: does not see it');
SELECT is((SELECT count(*)::int FROM llamagpu.llm_job_failures WHERE job = 'tap_p_job'), 0, 'other: nor its failures');
SELECT throws_ok($$SELECT llamagpu.llm_job_drop('tap_p_job')$$, NULL, NULL, 'other: cannot drop it');
RESET ROLE;
SET ROLE tap_p_admin;
SELECT is((SELECT count(*)::int FROM llamagpu.llm_jobs WHERE name = 'tap_p_job'), 1, 'admin: sees it');
RESET ROLE;

-- ---- API keys: a role sees its own keys only; the key's limits apply on top of the role's ----
CREATE TEMP TABLE tap_p_keys AS
	SELECT llamagpu.llm_create_api_key('tap_p_key_user', 'tap_p_user', NULL, 1, NULL) AS key;
GRANT SELECT ON tap_p_keys TO PUBLIC;
SELECT is((SELECT count(*)::int FROM llamagpu.llm_api_keys WHERE name = 'tap_p_key_user'), 1,
		  'superuser: creates a key for user with 1 request a minute');
SELECT lives_ok($$SELECT llamagpu.llm_create_api_key('tap_p_key_other', 'tap_p_other')$$,
				'superuser: creates a key for other');
SET ROLE tap_p_user;
SELECT is((SELECT array_agg(name) FROM llamagpu.llm_api_keys WHERE name LIKE 'tap_p_key%'),
		  ARRAY['tap_p_key_user'], 'user: sees its own key, not other''s');
SELECT throws_ok($$SELECT hash FROM llamagpu.llm_api_keys$$, '42501', NULL, 'user: cannot read key hashes');
RESET ROLE;
SET ROLE tap_p_other;
SELECT is((SELECT array_agg(name) FROM llamagpu.llm_api_keys WHERE name LIKE 'tap_p_key%'),
		  ARRAY['tap_p_key_other'], 'other: sees its own key only');
RESET ROLE;

-- ---- whose limits apply: own row, else the groups', never a superuser's groups ----
SELECT lives_ok($$SELECT llamagpu.llm_set_quota('llm_user', 600, NULL)$$, 'superuser: sets a quota on llm_user');
SELECT is((SELECT source || ':' || requests_per_minute FROM llamagpu.llm_effective_quota('tap_p_user')),
		  'inherited:600', 'a member without its own row gets the group''s limit');
SELECT is((SELECT source || ':' || requests_per_minute FROM llamagpu.llm_effective_quota('tap_p_other')),
		  'own:1000', 'its own row wins over the group''s');
SELECT is((SELECT source FROM llamagpu.llm_effective_quota(current_user::regrole)), 'none',
		  'a superuser does not inherit groups'' limits');
SELECT is((SELECT source || ':' || requests_per_minute FROM llamagpu.llm_effective_quota('tap_p_admin')),
		  'own:1', 'llm_admin members inherit llm_user''s limit unless they have their own');

-- last, because a transaction keeps the key it authenticated with
SELECT is((SELECT llamagpu.llm_api_key_authenticate(key)::text FROM tap_p_keys), 'tap_p_user',
		  'the key authenticates as its role');
SET ROLE tap_p_user;
SELECT lives_ok($$SELECT llamagpu.llm_generate('Once upon a time', 'tap_priv', max_tokens => 1)$$,
				'user with a key: the first request of the minute passes');
SELECT throws_ok($$SELECT llamagpu.llm_generate('Once upon a time', 'tap_priv', max_tokens => 1)$$, '53400',
				 'rate limit of 1 request per minute exceeded for API key "tap_p_key_user"',
				 'user with a key: the key''s own limit applies on top of the role''s');
RESET ROLE;
SELECT ok(llamagpu.llm_usage_flush(), 'usage records flushed');
SELECT is((SELECT array_agg(status || ':' || api_key ORDER BY id) FROM llamagpu.llm_usage WHERE api_key = 'tap_p_key_user'),
		  ARRAY['ok:tap_p_key_user', 'rejected:tap_p_key_user'], 'usage rows name the key');

SELECT * FROM finish();
ROLLBACK;
