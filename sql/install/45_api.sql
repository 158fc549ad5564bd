/* 45_api.sql: the HTTP API through PostgREST: errors as HTTP statuses, llm_pre_request, the api schema (docs/http-api.md) */

-- ---- errors as HTTP responses ----

-- The HTTP status a request that fails with sqlstate should get.  llamagpu's
-- own conditions first, then PostgREST's table (v12, docs/http-api.md) for
-- the rest, as for an authenticated request: a request through the api
-- schema acts as a key's or a JWT's role.
CREATE FUNCTION llm_http_status(sqlstate text) RETURNS int
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT CASE
		-- llamagpu
		WHEN $1 = '53400' THEN 429			-- quota or rate limit
		WHEN $1 LIKE '28%' THEN 401			-- API key not valid, revoked, expired
		WHEN $1 = '42501' THEN 403			-- model not granted (PostgREST: 401 without a JWT)
		WHEN $1 = '42704' THEN 404			-- model not registered or not loaded
		WHEN $1 = '54000' THEN 413			-- prompt too long for the context
		WHEN $1 IN ('53000', '53200', '53300', '57P03') THEN 503	-- engine busy, out of memory, not up
		WHEN $1 = '08P01' THEN 502			-- engine speaks another protocol
		WHEN $1 IN ('22P03', '58030') THEN 500	-- model file unreadable or invalid
		WHEN $1 = '55000' THEN 409			-- object not in the needed state
		-- PostgREST's table
		WHEN $1 LIKE '08%' THEN 503
		WHEN $1 LIKE '09%' THEN 500
		WHEN $1 LIKE '0L%' OR $1 LIKE '0P%' THEN 403
		WHEN $1 IN ('23503', '23505') THEN 409
		WHEN $1 = '25006' THEN 405
		WHEN $1 LIKE '25%' OR $1 LIKE '2D%' OR $1 LIKE '38%' OR $1 LIKE '39%' OR $1 LIKE '3B%'
			OR $1 LIKE '40%' THEN 500
		WHEN $1 LIKE '53%' THEN 503
		WHEN $1 LIKE '54%' OR $1 LIKE '55%' OR $1 LIKE '57%' OR $1 LIKE '58%' OR $1 LIKE 'F0%'
			OR $1 LIKE 'HV%' THEN 500
		WHEN $1 = 'P0001' THEN 400
		WHEN $1 LIKE 'P0%' OR $1 LIKE 'XX%' THEN 500
		WHEN $1 IN ('42883', '42P01') THEN 404
		WHEN $1 = '42P17' THEN 500
		WHEN $1 ~ '^PT[0-9]{3}$' THEN substr($1, 3)::int
		ELSE 400
	END
$$;
COMMENT ON FUNCTION llm_http_status IS 'the HTTP status the api schema answers an error of this SQLSTATE with';

-- Raise an error as PostgREST's "RAISE SQLSTATE 'PGRST'": message is the
-- JSON body (code, message, details, hint), detail the status and headers.
-- 401 gets WWW-Authenticate (RFC 6750); 429 and 503 get Retry-After, for a
-- quota error the seconds its hint names ("Retry in 20 seconds.").  A
-- remote model's provider refusing the server's own credential (28000,
-- "remote model provider refused the API key") is 502: the client's
-- credentials are fine, the upstream said no (a 401 would tell the client
-- to drop its key).
CREATE FUNCTION llm_raise_http(code text, message text, details text DEFAULT NULL,
							   hint text DEFAULT NULL, status int DEFAULT NULL)
	RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st int := coalesce(status,
		CASE WHEN code LIKE '28%' AND message LIKE 'remote model provider %' THEN 502 END,
		@extschema@.llm_http_status(code));
	headers jsonb := '{}';
	secs text;
BEGIN
	IF code = 'PGRST' THEN
		-- already an HTTP error (raised by a function the wrapper called)
		RAISE SQLSTATE 'PGRST' USING MESSAGE = message, DETAIL = coalesce(details, '');
	END IF;
	IF st = 401 THEN
		headers := jsonb_build_object('WWW-Authenticate', 'Bearer error="invalid_token"');
	ELSIF st = 429 THEN
		secs := substring(hint FROM '([0-9]{1,9}) seconds?');
		headers := jsonb_build_object('Retry-After', coalesce(secs, '60'));
	ELSIF st = 503 THEN
		headers := jsonb_build_object('Retry-After', CASE WHEN code = '57P03' THEN '5' ELSE '1' END);
	END IF;
	RAISE SQLSTATE 'PGRST' USING
		MESSAGE = json_build_object('code', code, 'message', message, 'details', details, 'hint', hint)::text,
		DETAIL = json_build_object('status', st, 'headers', headers)::text;
END
$$;
COMMENT ON FUNCTION llm_raise_http IS 'raise an error PostgREST answers with the mapped HTTP status and headers';

-- ---- db-pre-request ----

-- PostgREST's db-pre-request: runs after PostgREST set the role (the JWT's
-- or db-anon-role) and request.headers, before the RPC.  A request with an
-- API key ("Authorization: Bearer lgk_..." or "X-Api-Key: lgk_...") gets
-- the key checked and the key's role; one without keeps its role.  It runs
-- as its caller, because a role switch is refused inside SECURITY DEFINER;
-- the key is read by llm_api_key_authenticate as the table's owner.
CREATE FUNCTION llm_pre_request() RETURNS void
	LANGUAGE plpgsql VOLATILE
	AS $$
DECLARE
	headers jsonb;
	auth text;
	api_key text;
	key_role regrole;
	role_name text;
	setting text;
	st text;
	msg text;
	det text;
	hnt text;
BEGIN
	BEGIN
		headers := coalesce(nullif(pg_catalog.current_setting('request.headers', true), ''), '{}')::jsonb;
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
		PERFORM llamagpu.llm_raise_http(st, 'request.headers is not valid JSON',
			'PostgREST sets request.headers to a JSON object of the request''s headers: ' || msg || '.',
			NULL, 500);
	END;
	IF pg_catalog.jsonb_typeof(headers) IS DISTINCT FROM 'object' THEN
		PERFORM llamagpu.llm_raise_http('22023', 'request.headers is not a JSON object',
			'It is a JSON ' || pg_catalog.jsonb_typeof(headers) || '.', NULL, 500);
	END IF;
	auth := headers OPERATOR(pg_catalog.->>) 'authorization';
	api_key := headers OPERATOR(pg_catalog.->>) 'x-api-key';

	IF auth IS NOT NULL AND auth OPERATOR(pg_catalog.~*) '^bearer +lgk_' THEN
		IF api_key IS NOT NULL THEN
			PERFORM llamagpu.llm_raise_http('28000', 'request has two API keys',
				'It has both an Authorization: Bearer key and an X-Api-Key header.',
				'Send the key in one of them.', 400);
		END IF;
		api_key := pg_catalog.substring(auth, '^[^ ]+ +(.*)$');
	ELSIF api_key IS NOT NULL AND auth IS NOT NULL THEN
		-- PostgREST has already checked the JWT and set its role
		PERFORM llamagpu.llm_raise_http('28000', 'request has both a JWT and an API key',
			'A request acts as one role: the JWT''s or the key''s.',
			'Send only one of Authorization and X-Api-Key.', 400);
	END IF;
	IF api_key IS NULL THEN
		RETURN;
	END IF;
	api_key := pg_catalog.btrim(api_key);

	BEGIN
		key_role := llamagpu.llm_api_key_authenticate(api_key);
	EXCEPTION WHEN invalid_authorization_specification OR invalid_password THEN
		GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
			det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
		PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''), 401);
	END;

	role_name := pg_catalog.pg_get_userbyid(key_role);
	-- SET ROLE checks the session's role: PostgREST's authenticator
	IF NOT pg_catalog.pg_has_role(session_user, key_role, 'MEMBER') THEN
		PERFORM llamagpu.llm_raise_http('42501',
			pg_catalog.format('role "%s" cannot switch to role "%s" of the API key', session_user, role_name),
			'PostgREST connects as its authenticator role, which must be granted every role a key acts as.',
			pg_catalog.format('GRANT %I TO %I;', role_name, session_user), 500);
	END IF;
	-- the role's settings, as PostgREST applies a JWT role's: those of the
	-- role in any database, then in this one; only settings any role may
	-- set (context "user"), so none can fail for lack of privilege
	FOR setting IN
		SELECT s.setting
		FROM pg_catalog.pg_db_role_setting d, pg_catalog.unnest(d.setconfig) AS s(setting)
		WHERE d.setrole = key_role
		  AND d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
		  AND EXISTS (SELECT FROM pg_catalog.pg_settings p
					  WHERE p.name = pg_catalog.lower(pg_catalog.split_part(s.setting, '=', 1)) AND p.context = 'user')
		ORDER BY d.setdatabase
	LOOP
		PERFORM pg_catalog.set_config(pg_catalog.split_part(setting, '=', 1),
			pg_catalog.substr(setting, pg_catalog.strpos(setting, '=') + 1), true);
	END LOOP;
	PERFORM pg_catalog.set_config('role', role_name, true);
END
$$;
COMMENT ON FUNCTION llm_pre_request IS 'PostgREST db-pre-request: switch to the role of the request''s API key, if it has one';

-- llm_http_status, llm_raise_http and llm_pre_request stay executable by
-- PUBLIC: PostgREST's anonymous role calls llm_pre_request.

-- ---- the api schema: what PostgREST exposes (db-schemas = api) ----

-- An existing schema "api" (a common PostgREST name) is used as it is;
-- it must belong to a trusted role, because a schema's owner may drop the
-- functions in it.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'api') THEN
		CREATE SCHEMA api;
		COMMENT ON SCHEMA api IS 'llamagpu over HTTP: PostgREST exposes this schema (docs/http-api.md)';
	ELSE
		RAISE NOTICE 'schema "api" exists; llamagpu''s HTTP functions are added to it';
	END IF;
END
$$;
GRANT USAGE ON SCHEMA api TO llm_user;

-- Every wrapper calls its llamagpu function and turns an error into the
-- HTTP status of llm_http_status (a quota error into 429 with
-- Retry-After).  The functions run as the caller: the key's or JWT's role.

CREATE FUNCTION api.generate(prompt text, model text DEFAULT NULL, max_tokens int DEFAULT 256,
							 temperature float8 DEFAULT 0.8, top_p float8 DEFAULT 0.95,
							 top_k int DEFAULT 40, seed bigint DEFAULT NULL,
							 stop text[] DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN llamagpu.llm_generate(prompt, model, max_tokens, temperature, top_p, top_k, seed, stop, options);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.generate IS 'POST /rpc/generate: the continuation of prompt (llamagpu.llm_generate)';

CREATE FUNCTION api.chat(messages jsonb, model text DEFAULT NULL, tools jsonb DEFAULT NULL,
						 tool_choice text DEFAULT 'auto', response_format jsonb DEFAULT NULL,
						 options jsonb DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN llamagpu.llm_chat(messages, model, tools, tool_choice, response_format, options);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.chat IS 'POST /rpc/chat: an OpenAI chat.completion object (llamagpu.llm_chat)';

CREATE FUNCTION api.generate_json(prompt text, schema jsonb, model text DEFAULT NULL,
								  max_tokens int DEFAULT 1024, temperature float8 DEFAULT 0.8,
								  top_p float8 DEFAULT 0.95, top_k int DEFAULT 40,
								  seed bigint DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN llamagpu.llm_generate_json(prompt, schema, model, max_tokens, temperature, top_p, top_k, seed, options);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.generate_json IS 'POST /rpc/generate_json: a JSON value valid against schema (llamagpu.llm_generate_json)';

CREATE FUNCTION api.tokenize(input text, model text DEFAULT NULL) RETURNS int[]
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN llamagpu.llm_tokenize(input, model);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.tokenize IS 'GET or POST /rpc/tokenize: the token ids of input (llamagpu.llm_tokenize)';

CREATE FUNCTION api.detokenize(tokens int[], model text DEFAULT NULL) RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN llamagpu.llm_detokenize(tokens, model);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.detokenize IS 'GET or POST /rpc/detokenize: the text of token ids (llamagpu.llm_detokenize)';

-- Embeddings (llamagpu.llm_embed, llm_embed_batch; docs/embeddings.md).  The
-- calls are resolved when they run, so this part does not depend on the
-- embeddings part's order.  An embedding is a JSON array of numbers.
CREATE FUNCTION api.embed(input text, model text DEFAULT NULL, "normalize" boolean DEFAULT true,
						  truncate boolean DEFAULT false)
	RETURNS real[]
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN llamagpu.llm_embed(input, model, "normalize", truncate);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.embed IS 'POST /rpc/embed: the embedding of input, an array of numbers (llamagpu.llm_embed)';

-- PostgREST answers a set-returning function with a JSON array of its rows:
-- [{"ord": 1, "embedding": [...]}, ...].  The rows are all computed before
-- the first is returned, so an error is an HTTP status, never a cut-off body.
CREATE FUNCTION api.embed_batch(inputs text[], model text DEFAULT NULL, "normalize" boolean DEFAULT true,
								truncate boolean DEFAULT false)
	RETURNS TABLE (ord int, embedding real[])
	LANGUAGE plpgsql VOLATILE ROWS 100
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN QUERY SELECT b.ord, b.embedding
		FROM llamagpu.llm_embed_batch(inputs, model, "normalize", truncate) AS b;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
END
$$;
COMMENT ON FUNCTION api.embed_batch IS 'POST /rpc/embed_batch: one {ord, embedding} per element of inputs, in order (llamagpu.llm_embed_batch)';

-- The models the caller may use (the rule of llm_generate's check).
CREATE FUNCTION api.models()
	RETURNS TABLE (name text, architecture text, parameters bigint, quantization text,
				   context_length int, device text)
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT m.name, m.architecture, m.parameters, m.quantization, m.context_length, m.device
	FROM llamagpu.llm_models m
	WHERE pg_has_role('llm_admin', 'MEMBER') OR EXISTS (
		SELECT FROM llamagpu.llm_model_grants g
		WHERE g.model = m.name AND (g.grantee = 0 OR EXISTS (
			SELECT FROM pg_roles r WHERE r.oid = g.grantee AND pg_has_role(r.oid, 'MEMBER'))))
	ORDER BY m.name
$$;
COMMENT ON FUNCTION api.models IS 'GET /rpc/models: the models the caller may use';

-- Prometheus metrics (llamagpu.llm_metrics, docs/observability.md).  The
-- call is resolved when it runs, so this part does not depend on the
-- metrics part's order; without llm_metrics the answer is 404.
CREATE FUNCTION api.metrics() RETURNS text
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	st text; msg text; det text; hnt text;
BEGIN
	RETURN llamagpu.llm_metrics();
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	PERFORM llamagpu.llm_raise_http(st, msg, nullif(det, ''), nullif(hnt, ''));
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION api.metrics IS 'GET /rpc/metrics (Accept: text/plain): the Prometheus exposition (llamagpu.llm_metrics)';

REVOKE ALL ON FUNCTION
	api.generate(text, text, int, float8, float8, int, bigint, text[], jsonb),
	api.chat(jsonb, text, jsonb, text, jsonb, jsonb),
	api.generate_json(text, jsonb, text, int, float8, float8, int, bigint, jsonb),
	api.tokenize(text, text), api.detokenize(int[], text), api.models(), api.metrics(),
	api.embed(text, text, boolean, boolean), api.embed_batch(text[], text, boolean, boolean)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	api.generate(text, text, int, float8, float8, int, bigint, text[], jsonb),
	api.chat(jsonb, text, jsonb, text, jsonb, jsonb),
	api.generate_json(text, jsonb, text, int, float8, float8, int, bigint, jsonb),
	api.tokenize(text, text), api.detokenize(int[], text), api.models(), api.metrics(),
	api.embed(text, text, boolean, boolean), api.embed_batch(text[], text, boolean, boolean)
	TO llm_user;
