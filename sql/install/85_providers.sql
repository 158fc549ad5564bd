/* 85_providers.sql: remote models behind an OpenAI-compatible endpoint (docs/models.md, "Remote providers") */

-- A remote model is a row of llm_models with a provider: the engine sends
-- its requests to base_url instead of loading weights.  path holds the
-- base URL too (for views that show where a model lives), sha256 a hash of
-- the endpoint and remote model (the response cache's model identity).
-- The API key is not here: api_key_secret names a row of llm_secrets,
-- which only llm_admin can read; the extension reads it as the table's
-- owner when it sends a request.
ALTER TABLE llm_models
	ADD COLUMN provider text,
	ADD COLUMN base_url text,
	ADD COLUMN remote_model text,
	ADD COLUMN api_key_secret text,
	ADD CONSTRAINT llm_models_provider_check CHECK (
		(provider IS NULL AND base_url IS NULL AND remote_model IS NULL AND api_key_secret IS NULL)
		OR (provider = 'openai-compatible' AND base_url IS NOT NULL AND remote_model IS NOT NULL));
COMMENT ON COLUMN llm_models.provider IS 'NULL for a local model; ''openai-compatible'' for a remote one';
COMMENT ON COLUMN llm_models.base_url IS 'a remote model''s endpoint, e.g. https://api.openai.com/v1';
COMMENT ON COLUMN llm_models.remote_model IS 'the model id the provider knows the model by';
COMMENT ON COLUMN llm_models.api_key_secret IS 'name of the llm_secrets row holding the API key, or NULL';

CREATE FUNCTION llm_register_remote_model(name text, base_url text, remote_model text,
										  api_key_secret text DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS llm_models
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	opt record;
	ints text[] := ARRAY['connect_timeout_ms', 'timeout_ms', 'max_retries', 'retry_base_ms',
						 'retry_max_ms', 'context_size'];
	bools text[] := ARRAY['stream', 'sampling_extensions'];
	result @extschema@.llm_models;
BEGIN
	IF name IS NULL OR base_url IS NULL OR remote_model IS NULL THEN
		RAISE EXCEPTION 'name, base_url and remote_model must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[A-Za-z0-9_.:-]{1,63}$' THEN
		RAISE EXCEPTION 'invalid model name "%"', name
			USING ERRCODE = 'invalid_name',
				  DETAIL = 'Model names have 1 to 63 characters: letters, digits, "_", ".", ":" and "-".';
	END IF;
	IF EXISTS (SELECT FROM @extschema@.llm_models m WHERE m.name = llm_register_remote_model.name) THEN
		RAISE EXCEPTION 'model "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  HINT = format('Drop it first with llamagpu.llm_drop_model(%L).', name);
	END IF;
	-- the endpoint: scheme and host, an optional path; no credentials, query or fragment
	IF base_url !~ '^https?://[^/?#@[:space:]]+(/[^?#[:space:]]*)?$' THEN
		RAISE EXCEPTION 'invalid base_url "%"', base_url
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A base URL is http:// or https://, a host, and an optional path, without credentials, query or fragment.',
				  HINT = 'Give the URL the OpenAI API paths are under, e.g. https://api.openai.com/v1; put the API key in llamagpu.llm_secrets.';
	END IF;
	IF remote_model = '' OR length(remote_model) > 256 OR remote_model ~ '[[:cntrl:]]' THEN
		RAISE EXCEPTION 'invalid remote_model "%"', remote_model
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The remote model id has 1 to 256 characters and no control characters.';
	END IF;
	IF api_key_secret IS NOT NULL AND NOT EXISTS (
			SELECT FROM @extschema@.llm_secrets s WHERE s.name = api_key_secret) THEN
		RAISE EXCEPTION 'secret "%" does not exist', api_key_secret
			USING ERRCODE = 'undefined_object',
				  HINT = 'Store the API key first, e.g. with \copy llamagpu.llm_secrets (name, value) FROM ''key.txt''.';
	END IF;
	IF options IS NOT NULL THEN
		IF jsonb_typeof(options) <> 'object' THEN
			RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		FOR opt IN SELECT * FROM jsonb_each(options) LOOP
			IF opt.key = ANY (ints) THEN
				IF jsonb_typeof(opt.value) <> 'number' OR opt.value::numeric <> trunc(opt.value::numeric)
						OR opt.value::numeric < 0 OR opt.value::numeric > 2147483647
						OR (opt.key = 'max_retries' AND opt.value::numeric > 10)
						OR (opt.key IN ('connect_timeout_ms', 'retry_base_ms', 'retry_max_ms')
							AND opt.value::numeric < 1) THEN
					RAISE EXCEPTION 'option "%" must be an integer in range', opt.key
						USING ERRCODE = 'invalid_parameter_value',
							  DETAIL = format('The value given was %s; max_retries is at most 10, timeouts and waits are milliseconds.', opt.value);
				END IF;
			ELSIF opt.key = ANY (bools) THEN
				IF jsonb_typeof(opt.value) <> 'boolean' THEN
					RAISE EXCEPTION 'option "%" must be a boolean', opt.key
						USING ERRCODE = 'datatype_mismatch';
				END IF;
			ELSIF opt.key = 'prompt_api' THEN
				IF opt.value NOT IN ('"completions"', '"chat"') THEN
					RAISE EXCEPTION 'option "prompt_api" must be "completions" or "chat"'
						USING ERRCODE = 'invalid_parameter_value';
				END IF;
			ELSIF opt.key = 'description' THEN
				IF jsonb_typeof(opt.value) <> 'string' THEN
					RAISE EXCEPTION 'option "description" must be a string' USING ERRCODE = 'datatype_mismatch';
				END IF;
			ELSE
				RAISE EXCEPTION 'unrecognized remote model option "%"', opt.key
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Valid options are: connect_timeout_ms, timeout_ms, max_retries, retry_base_ms, retry_max_ms, prompt_api, stream, sampling_extensions, context_size, description.';
			END IF;
		END LOOP;
	END IF;

	INSERT INTO @extschema@.llm_models AS m
		(name, path, architecture, parameters, quantization, context_length, file_size, sha256,
		 device, options, provider, base_url, remote_model, api_key_secret)
	VALUES (name, base_url, 'remote', 0, 'remote',
			coalesce((options ->> 'context_size')::int, 0), 0,
			encode(sha256(convert_to('openai-compatible ' || base_url || ' ' || remote_model, 'UTF8')), 'hex'),
			'remote', coalesce(options, '{}'), 'openai-compatible', base_url, remote_model, api_key_secret)
	RETURNING m.* INTO result;
	RETURN result;
END
$$;
COMMENT ON FUNCTION llm_register_remote_model IS 'register a model served by an OpenAI-compatible endpoint';
REVOKE ALL ON FUNCTION llm_register_remote_model(text, text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_register_remote_model(text, text, text, text, jsonb) TO llm_admin;
