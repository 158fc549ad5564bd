-- pgTAP: API keys: lifecycle (create, check, rotate, expire, revoke), what
-- is stored, who may manage keys for whom, row-level security and column
-- privileges on llm_api_keys, malformed keys, the HTTP status table.
BEGIN;
SELECT plan(76);

CREATE ROLE tap_admin NOLOGIN IN ROLE llm_admin;
CREATE ROLE tap_admin2 NOLOGIN IN ROLE llm_admin;
CREATE ROLE tap_app NOLOGIN IN ROLE llm_user;
CREATE ROLE tap_app2 NOLOGIN IN ROLE llm_user;
CREATE ROLE tap_alice NOLOGIN IN ROLE tap_app;
CREATE ROLE tap_doomed NOLOGIN IN ROLE llm_user;
CREATE ROLE tap_rising NOLOGIN IN ROLE llm_user;
CREATE ROLE tap_super SUPERUSER NOLOGIN;
GRANT tap_app, tap_app2, tap_doomed, tap_rising TO tap_admin;

-- ---- the table and its privileges ----
SELECT has_table('llamagpu', 'llm_api_keys', 'llm_api_keys exists');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'llamagpu.llm_api_keys'::regclass), 'row-level security is on');
SELECT ok(NOT has_column_privilege('llm_user', 'llamagpu.llm_api_keys', 'hash', 'SELECT'), 'llm_user cannot read hash');
SELECT ok(NOT has_column_privilege('llm_user', 'llamagpu.llm_api_keys', 'salt', 'SELECT'), 'llm_user cannot read salt');
SELECT ok(NOT has_column_privilege('llm_admin', 'llamagpu.llm_api_keys', 'hash', 'SELECT'), 'llm_admin cannot read hash');
SELECT ok(NOT has_column_privilege('llm_admin', 'llamagpu.llm_api_keys', 'salt', 'SELECT'), 'llm_admin cannot read salt');
SELECT ok(has_column_privilege('llm_user', 'llamagpu.llm_api_keys', 'name', 'SELECT'), 'llm_user can read name');
SELECT ok(NOT has_table_privilege('llm_admin', 'llamagpu.llm_api_keys', 'INSERT'), 'llm_admin cannot insert keys (no hand-written hashes)');
SELECT ok(NOT has_column_privilege('llm_admin', 'llamagpu.llm_api_keys', 'hash', 'UPDATE'), 'llm_admin cannot write a hash');
SELECT ok(has_column_privilege('llm_admin', 'llamagpu.llm_api_keys', 'expires_at', 'UPDATE'), 'llm_admin can change expires_at');
SELECT ok(NOT has_function_privilege('llm_user', 'llamagpu.llm_create_api_key(text, regrole, timestamptz, int, bigint)', 'EXECUTE'),
		  'llm_user cannot create keys');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_rotate_api_key(text)', 'EXECUTE'), 'PUBLIC cannot rotate keys');
SELECT ok(has_function_privilege('public', 'llamagpu.llm_pre_request()', 'EXECUTE'), 'PUBLIC (PostgREST''s anonymous role) runs llm_pre_request');

-- ---- creating: the key text and what is stored ----
SET ROLE tap_admin;
SELECT llamagpu.llm_create_api_key('tap-a', 'tap_app', requests_per_minute => 5, tokens_per_day => 1000) AS key_a \gset
SELECT llamagpu.llm_create_api_key('tap-b', 'tap_app2') AS key_b \gset
RESET ROLE;
SELECT matches(:'key_a'::text, '^lgk_[A-Za-z0-9_-]{12}_[A-Za-z0-9_-]{43}$', 'a key is lgk_<12>_<43> base64url');
SELECT is((SELECT prefix FROM llamagpu.llm_api_keys WHERE name = 'tap-a'), substr(:'key_a', 5, 12), 'the stored prefix is the key''s');
SELECT is((SELECT hash FROM llamagpu.llm_api_keys WHERE name = 'tap-a'),
		  (SELECT sha256(salt || convert_to(substr(:'key_a', 18), 'UTF8')) FROM llamagpu.llm_api_keys WHERE name = 'tap-a'),
		  'the stored hash is sha256(salt || secret)');
SELECT is((SELECT count(*)::int FROM llamagpu.llm_api_keys WHERE strpos(encode(hash, 'escape'), substr(:'key_a', 18)) > 0
		   OR strpos(prefix, substr(:'key_a', 18, 10)) > 0), 0, 'the secret is stored nowhere');
SELECT isnt((SELECT salt FROM llamagpu.llm_api_keys WHERE name = 'tap-a'), (SELECT salt FROM llamagpu.llm_api_keys WHERE name = 'tap-b'),
			'each key has its own salt');
SELECT is((SELECT row(role::text, created_by, requests_per_minute, tokens_per_day)::text FROM llamagpu.llm_api_keys WHERE name = 'tap-a'),
		  '(tap_app,tap_admin,5,1000)', 'role, creator and limits are stored');

-- ---- who may create a key for whom ----
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-a', 'tap_app')$$, '42710', 'API key "tap-a" already exists', 'a name is unique');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap a', 'tap_app')$$, '42602', NULL, 'a name with a blank is refused');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key(NULL, 'tap_app')$$, '22004', NULL, 'a NULL name is refused');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', NULL)$$, '22004', NULL, 'a NULL role is refused');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_app', now() - interval '1 s')$$, '22023',
				 'expires_at must be in the future', 'an expiry in the past is refused');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_app', requests_per_minute => 0)$$, '22023', NULL,
				 'requests_per_minute 0 is refused');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_app', tokens_per_day => -1)$$, '22023', NULL,
				 'tokens_per_day -1 is refused');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_super')$$, '42501',
				 'cannot create an API key for superuser role "tap_super"', 'even a superuser cannot create a key for a superuser');
SET ROLE tap_admin;
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_admin2')$$, '42501',
				 'only a superuser may create an API key for role "tap_admin2"', 'an llm_admin cannot create a key for an llm_admin member');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_admin')$$, '42501', NULL, '... not even for itself');
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_alice')$$, '42501',
				 'permission denied to create an API key for role "tap_alice"', 'an llm_admin cannot create a key for a role it is not a member of');
RESET ROLE;
SELECT lives_ok($$SELECT llamagpu.llm_create_api_key('tap-admin2', 'tap_admin2')$$, 'a superuser may create a key for an llm_admin member');
SET ROLE tap_app;
SELECT throws_ok($$SELECT llamagpu.llm_create_api_key('tap-x', 'tap_app')$$, '42501', NULL, 'llm_user cannot create a key, not even its own');
RESET ROLE;

-- ---- row-level security ----
SET ROLE tap_app;
SELECT results_eq($$SELECT name FROM llamagpu.llm_api_keys ORDER BY name$$, ARRAY['tap-a'], 'a role sees its own keys only');
SELECT throws_ok($$SELECT hash FROM llamagpu.llm_api_keys$$, '42501', NULL, '... never the hash');
SELECT throws_ok($$UPDATE llamagpu.llm_api_keys SET expires_at = now() + interval '1 year'$$, '42501', NULL,
				 '... and cannot change its expiry');
SELECT results_eq($$SELECT name, state FROM llamagpu.llm_stat_api_keys$$, $$VALUES ('tap-a', 'active')$$,
				  'llm_stat_api_keys shows the same rows');
SET ROLE tap_alice;
SELECT results_eq($$SELECT name FROM llamagpu.llm_api_keys ORDER BY name$$, ARRAY['tap-a'], 'a member of the key''s role sees it');
SET ROLE tap_app2;
SELECT results_eq($$SELECT name FROM llamagpu.llm_api_keys ORDER BY name$$, ARRAY['tap-b'], 'another role sees only its own');
SET ROLE tap_admin;
SELECT results_eq($$SELECT name FROM llamagpu.llm_api_keys ORDER BY name$$, ARRAY['tap-a', 'tap-admin2', 'tap-b'], 'llm_admin sees every key');
UPDATE llamagpu.llm_api_keys SET tokens_per_day = 2000 WHERE name IN ('tap-a', 'tap-admin2');
RESET ROLE;
SELECT is((SELECT tokens_per_day FROM llamagpu.llm_api_keys WHERE name = 'tap-a'), 2000::bigint,
		  'llm_admin changes the limits of a key of a role it is a member of');
SELECT is((SELECT tokens_per_day FROM llamagpu.llm_api_keys WHERE name = 'tap-admin2'), NULL::bigint,
		  '... not of a key of a role it is not a member of');

-- ---- checking a key, expiry, rotation ----
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', overlay(:'key_a' placing (CASE WHEN substr(:'key_a', 40, 1) = 'A' THEN 'B' ELSE 'A' END) from 40 for 1)),
				 '28P01', 'API key is not valid', 'one changed character of the secret: not valid');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', overlay(:'key_a' placing 'AAAAAAAAAAAA' from 5 for 12)),
				 '28P01', 'API key is not valid', 'an unknown prefix: the same error');
UPDATE llamagpu.llm_api_keys SET expires_at = now() - interval '1 minute' WHERE name = 'tap-a';
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', :'key_a'), '28000', 'API key "tap-a" has expired', 'an expired key is refused');
SELECT throws_ok($$SELECT llamagpu.llm_rotate_api_key('tap-a')$$, '55000', 'API key "tap-a" has expired', 'an expired key cannot be rotated');
UPDATE llamagpu.llm_api_keys SET expires_at = now() + interval '1 day' WHERE name = 'tap-a';
SET ROLE tap_admin;
SELECT llamagpu.llm_rotate_api_key('tap-a') AS key_a2 \gset
RESET ROLE;
SELECT isnt(substr(:'key_a2', 5, 12), substr(:'key_a', 5, 12), 'rotation gives a new prefix');
SELECT is((SELECT hash FROM llamagpu.llm_api_keys WHERE name = 'tap-a'),
		  (SELECT sha256(salt || convert_to(substr(:'key_a2', 18), 'UTF8')) FROM llamagpu.llm_api_keys WHERE name = 'tap-a'),
		  '... and stores the new secret''s hash');
SELECT ok((SELECT rotated_at IS NOT NULL AND requests_per_minute = 5 FROM llamagpu.llm_api_keys WHERE name = 'tap-a'),
		  '... keeping the key''s limits, noting rotated_at');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', :'key_a'), '28P01', 'API key is not valid', 'the old secret no longer works');
SELECT is(llamagpu.llm_current_api_key(), NULL::text, 'no key before one is checked');
SELECT is(llamagpu.llm_api_key_authenticate(:'key_a2')::text, 'tap_app', 'the new secret works: the key''s role');
SELECT is(llamagpu.llm_current_api_key(), 'tap-a', 'the key is the transaction''s key');
SELECT is(llamagpu.llm_api_key_authenticate(:'key_a2')::text, 'tap_app', 'checking the same key again is fine');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', :'key_b'), '28000',
				 'this transaction already authenticated with API key "tap-a"', 'a second key in the same transaction is refused');

-- ---- revoking ----
SET ROLE tap_app2;
SELECT throws_ok($$SELECT llamagpu.llm_revoke_api_key('tap-a')$$, '42704', 'API key "tap-a" does not exist',
				 'a role cannot revoke (or see) another role''s key');
SET ROLE tap_alice;
SELECT is(llamagpu.llm_revoke_api_key('tap-a'), true, 'a member of the key''s role revokes it');
SELECT is(llamagpu.llm_revoke_api_key('tap-a'), false, '... a second time: false');
RESET ROLE;
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', :'key_a2'), '28000', 'API key "tap-a" has been revoked',
				 'a revoked key is refused');
SELECT throws_ok($$SELECT llamagpu.llm_rotate_api_key('tap-a')$$, '55000', 'API key "tap-a" has been revoked', 'a revoked key cannot be rotated');
SELECT throws_ok($$SELECT llamagpu.llm_revoke_api_key('nope')$$, '42704', 'API key "nope" does not exist', 'revoking an unknown key');
SELECT is((SELECT state FROM llamagpu.llm_stat_api_keys WHERE name = 'tap-a'), 'revoked', 'llm_stat_api_keys says revoked');

-- ---- the role changes after the key was made ----
SET ROLE tap_admin;
SELECT llamagpu.llm_create_api_key('tap-doomed', 'tap_doomed') AS key_doomed \gset
SELECT llamagpu.llm_create_api_key('tap-rising', 'tap_rising') AS key_rising \gset
RESET ROLE;
DROP ROLE tap_doomed;
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', :'key_doomed'), '28000',
				 'the role of API key "tap-doomed" no longer exists', 'a dropped role''s key is refused');
SET ROLE tap_app;
SELECT lives_ok($$SELECT count(*) FROM llamagpu.llm_api_keys$$, 'reading keys with a dropped role''s key among them works');
RESET ROLE;
ALTER ROLE tap_rising SUPERUSER;
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', :'key_rising'), '28000', NULL,
				 'a key whose role became a superuser is refused');

-- ---- malformed keys: a specific error each, never a crash ----
SELECT throws_ok($$SELECT llamagpu.llm_api_key_authenticate(NULL)$$, '28000', 'API key must not be null', 'NULL');
SELECT throws_ok($$SELECT llamagpu.llm_api_key_authenticate('')$$, '28000', 'malformed API key', 'empty');
SELECT throws_ok($$SELECT llamagpu.llm_api_key_authenticate('lgk_')$$, '28000', 'malformed API key', 'the tag alone');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', upper(:'key_b')), '28000', 'malformed API key', 'LGK_ in capitals');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', overlay(:'key_b' placing '!' from 20 for 1)),
				 '28000', 'malformed API key', 'a character outside base64url');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', overlay(:'key_b' placing 'x' from 17 for 1)),
				 '28000', 'malformed API key', 'no "_" after the prefix');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', :'key_b' || 'x'), '28000', 'malformed API key', 'one character too many');
SELECT throws_ok(format('SELECT llamagpu.llm_api_key_authenticate(%L)', overlay(:'key_b' placing 'é' from 30 for 1)),
				 '28000', 'malformed API key', 'a non-ASCII character');
SELECT throws_ok($$SELECT llamagpu.llm_api_key_authenticate('lgk_' || repeat('a', 10000000))$$, '28000', 'malformed API key', 'ten megabytes');

-- random texts and one-character mutations of a real key: only ever the
-- two errors of a key that does not authenticate
CREATE FUNCTION pg_temp.fuzz_keys(base text, n int) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
	pool text[] := ARRAY['A', 'z', '0', '_', '-', '!', ' ', 'é', '€', '😀', E'\t', '.', '=', '/', '+'];
	k text;
	seen text[] := '{}';
	msg text;
BEGIN
	PERFORM setseed(0.42);
	FOR i IN 1 .. n LOOP
		IF i % 2 = 0 THEN
			-- one character of the real key replaced by a different one
			LOOP
				k := overlay(base placing pool[1 + floor(random() * array_length(pool, 1))::int]
							 from 1 + floor(random() * length(base))::int for 1);
				EXIT WHEN k <> base;
			END LOOP;
		ELSE
			k := CASE WHEN random() < 0.5 THEN 'lgk_' ELSE '' END;
			FOR j IN 1 .. floor(random() * 70)::int LOOP
				k := k || pool[1 + floor(random() * array_length(pool, 1))::int];
			END LOOP;
		END IF;
		BEGIN
			PERFORM llamagpu.llm_api_key_authenticate(k);
			seen := seen || ('accepted: ' || k);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
			IF NOT (SQLSTATE || ' ' || msg) = ANY (seen) THEN
				seen := seen || (SQLSTATE || ' ' || msg);
			END IF;
		END;
	END LOOP;
	RETURN (SELECT array_agg(x ORDER BY x) FROM unnest(seen) x);
END $$;
SELECT is(pg_temp.fuzz_keys(:'key_b', 2000), ARRAY['28000 malformed API key', '28P01 API key is not valid'],
		  '2000 random and mutated keys: malformed or not valid, nothing else');

-- ---- the HTTP status of an error ----
SELECT results_eq($$SELECT llamagpu.llm_http_status(s) FROM unnest(ARRAY['53400', '28P01', '42501', '42704', '54000', '53300', '22023', '25006', 'PT418', 'XX000']) s$$,
				  ARRAY[429, 401, 403, 404, 413, 503, 400, 405, 418, 500], 'llm_http_status: llamagpu''s conditions and PostgREST''s table');
SELECT throws_ok($$SELECT llamagpu.llm_raise_http('53400', 'limit', NULL, 'Retry in 9 seconds.')$$, 'PGRST',
				 '{"code" : "53400", "message" : "limit", "details" : null, "hint" : "Retry in 9 seconds."}',
				 'llm_raise_http raises PostgREST''s PGRST error with the JSON body');

SELECT * FROM finish();
ROLLBACK;
