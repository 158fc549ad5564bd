/* 90_plugins.sql: the plugin registry (docs/plugins.md) */

-- A plugin is one of three kinds:
--   tool      a Postgres function offered to models in tool calls; enabling
--             registers it in llm_tools, disabling unregisters it
--   provider  a remote OpenAI-compatible endpoint (base URL, model id, the
--             name of the llm_secrets row holding its API key)
--   engine    a shared library the engine process (`llamagpu serve`) loads;
--             native code, so only a superuser may install or enable one
-- The registry is written through the functions below; llm_admin may read
-- it.  The view llm_plugins adds what the engine reports.
CREATE TABLE llm_plugin_registry (
	name			text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,63}$'),
	kind			text NOT NULL CHECK (kind IN ('tool', 'provider', 'engine')),
	version			text,					-- engine: what the library reports
	source			text NOT NULL,			-- tool: regprocedure; provider: base URL; engine: file path
	checksum		text CHECK (checksum ~ '^[0-9a-f]{64}$'),	-- engine: SHA-256 of the file
	enabled			boolean NOT NULL DEFAULT false,
	options			jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(options) = 'object'),
	description		text,
	last_error		text,					-- why the last enable failed, or NULL
	installed_by	name NOT NULL DEFAULT current_user,
	installed_at	timestamptz NOT NULL DEFAULT now(),
	CHECK (kind <> 'engine' OR checksum IS NOT NULL)
);
COMMENT ON TABLE llm_plugin_registry IS 'installed plugins; written by llm_install_plugin and friends, read through llm_plugins';
REVOKE ALL ON llm_plugin_registry FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON llm_plugin_registry TO llm_admin;
SELECT pg_catalog.pg_extension_config_dump('llm_plugin_registry', '');

-- llm_admin manages tools and providers; engine plugins are native code the
-- engine runs as the database server's operating system user, so only a
-- superuser may add one, enable one or change one.  Anyone who may write
-- the table may disable or delete one (that only takes code away).  A
-- trigger, so the rule holds however the row is written.
CREATE FUNCTION llm_plugin_registry_guard() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
		RETURN NEW;
	END IF;
	IF TG_OP = 'INSERT' AND NEW.kind = 'engine' THEN
		RAISE EXCEPTION 'permission denied to install engine plugin "%"', NEW.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'An engine plugin is native code that runs in the engine process as the database server''s operating system user.',
				  HINT = 'Ask a superuser to install it.';
	END IF;
	IF TG_OP = 'UPDATE' AND (OLD.kind = 'engine' OR NEW.kind = 'engine') AND
		(NEW.enabled OR (NEW.name, NEW.kind, NEW.version, NEW.source, NEW.checksum, NEW.options)
			IS DISTINCT FROM (OLD.name, OLD.kind, OLD.version, OLD.source, OLD.checksum, OLD.options)) THEN
		RAISE EXCEPTION 'permission denied to enable or change engine plugin "%"', OLD.name
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'An engine plugin is native code that runs in the engine process as the database server''s operating system user.',
				  HINT = 'Ask a superuser to enable it.';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER llm_plugin_registry_guard BEFORE INSERT OR UPDATE ON llm_plugin_registry
	FOR EACH ROW EXECUTE FUNCTION llm_plugin_registry_guard();

-- What a plugin-check of an engine plugin file says (the file is examined by
-- `llamagpu plugin-check` in a subprocess: a backend never loads plugin code).
CREATE FUNCTION llm_plugin_inspect(path text, expected_sha256 text DEFAULT NULL,
								   OUT status text, OUT sha256 text, OUT abi_version int,
								   OUT name text, OUT version text, OUT description text, OUT error text)
	AS 'MODULE_PATHNAME', 'llm_plugin_inspect'
	LANGUAGE C VOLATILE;
COMMENT ON FUNCTION llm_plugin_inspect IS 'what `llamagpu plugin-check` says of an engine plugin file (superuser only)';

-- Engine plugins the engine reports (loaded, failed to load) and those the
-- supervisor disabled after repeated crashes.
CREATE FUNCTION llm_plugin_engine_state(OUT name text, OUT state text, OUT error text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'llm_plugin_engine_state'
	LANGUAGE C VOLATILE;

-- Rewrite the engine's plugin list at commit (and forget the crash marks of
-- clear_crashed); the supervisor then restarts the engine with it.
CREATE FUNCTION llm_plugin_engine_sync(clear_crashed text[] DEFAULT '{}') RETURNS void
	AS 'MODULE_PATHNAME', 'llm_plugin_engine_sync'
	LANGUAGE C VOLATILE;

-- Any change of the registry, through the functions or not, rewrites the
-- engine's list at commit (a change that leaves it as it was restarts nothing).
CREATE FUNCTION llm_plugin_registry_changed() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	PERFORM @extschema@.llm_plugin_engine_sync('{}');
	RETURN NULL;
END
$$;
CREATE TRIGGER llm_plugin_registry_changed AFTER INSERT OR UPDATE OR DELETE ON llm_plugin_registry
	FOR EACH STATEMENT EXECUTE FUNCTION llm_plugin_registry_changed();

CREATE VIEW llm_plugins AS
	SELECT r.name, r.kind, r.version, r.source, r.checksum,
		   r.enabled AND coalesce(s.state, '') <> 'crashed' AS enabled,
		   r.options,
		   CASE WHEN NOT r.enabled THEN 'disabled'
				WHEN r.kind <> 'engine' THEN 'enabled'
				ELSE coalesce(s.state, 'pending') END AS state,
		   CASE WHEN r.enabled AND s.state IN ('crashed', 'failed') THEN s.error
				ELSE r.last_error END AS last_error,
		   r.description, r.installed_by, r.installed_at
	FROM @extschema@.llm_plugin_registry r
	LEFT JOIN @extschema@.llm_plugin_engine_state() s ON r.kind = 'engine' AND s.name = r.name;
COMMENT ON VIEW llm_plugins IS 'installed plugins; state: disabled, enabled, pending (engine: not loaded yet), loaded, failed (the engine could not load it), crashed (disabled after repeated engine crashes)';
REVOKE ALL ON llm_plugins FROM PUBLIC;
GRANT SELECT ON llm_plugins TO llm_admin;

-- Error unless the current user is a superuser (native code in the engine
-- runs as the database server's operating system user).
CREATE FUNCTION llm_plugin_require_superuser(action text, plugin text) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
		RAISE EXCEPTION 'permission denied to % engine plugin "%"', action, plugin
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = 'An engine plugin is native code that runs in the engine process as the database server''s operating system user.',
				  HINT = 'Ask a superuser to do it.';
	END IF;
END
$$;

-- The options of a provider plugin: model and api_key_secret, then those of
-- llm_register_remote_model (docs/models.md, "Remote providers").
CREATE FUNCTION llm_plugin_provider_options() RETURNS text[]
	LANGUAGE sql IMMUTABLE
	AS $$SELECT ARRAY['model', 'api_key_secret', 'connect_timeout_ms', 'timeout_ms', 'max_retries',
					  'retry_base_ms', 'retry_max_ms', 'prompt_api', 'stream', 'sampling_extensions',
					  'context_size', 'description']$$;

-- A provider definition is valid: http(s) base URL, a model id, an existing secret.
CREATE FUNCTION llm_plugin_check_provider(name text, source text, options jsonb) RETURNS void
	LANGUAGE plpgsql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF source !~ '^https?://[^/?#[:space:]]+(/[^?#[:space:]]*)?$' THEN
		RAISE EXCEPTION 'invalid base URL "%" for provider plugin "%"', source, name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The base URL of an OpenAI-compatible endpoint is an http:// or https:// URL without query or fragment.',
				  HINT = 'For example https://api.openai.com/v1.';
	END IF;
	IF jsonb_typeof(options->'model') IS DISTINCT FROM 'string' OR options->>'model' = '' THEN
		RAISE EXCEPTION 'provider plugin "%" needs the option "model"', name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'The option "model" is the model id the endpoint knows, a non-empty string.';
	END IF;
	IF options ? 'api_key_secret' THEN
		IF jsonb_typeof(options->'api_key_secret') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION 'option "api_key_secret" of provider plugin "%" must be a string', name
				USING ERRCODE = 'datatype_mismatch';
		END IF;
		IF NOT EXISTS (SELECT FROM @extschema@.llm_secrets s WHERE s.name = options->>'api_key_secret') THEN
			RAISE EXCEPTION 'secret "%" does not exist', options->>'api_key_secret'
				USING ERRCODE = 'undefined_object',
					  DETAIL = 'Provider plugin "' || name || '" names it as its API key.',
					  HINT = 'Store the key first: \copy llamagpu.llm_secrets (name, value) FROM ''key.txt''.';
		END IF;
	END IF;
	-- the others are llm_register_remote_model's options, which it checks when the plugin is enabled
	IF EXISTS (SELECT FROM jsonb_object_keys(options) k WHERE k <> ALL (@extschema@.llm_plugin_provider_options())) THEN
		RAISE EXCEPTION 'unrecognized option "%" for provider plugin "%"',
			(SELECT k FROM jsonb_object_keys(options) k WHERE k <> ALL (@extschema@.llm_plugin_provider_options()) LIMIT 1), name
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Provider options are ' || array_to_string(@extschema@.llm_plugin_provider_options(), ', ') || '.';
	END IF;
END
$$;

-- Not SET search_path: a tool's function is named as the caller would name
-- it (it runs as the caller, who could only fool themselves); everything
-- else is qualified.
CREATE FUNCTION llm_install_plugin(name text, kind text, source text, checksum text DEFAULT NULL,
								   options jsonb DEFAULT NULL)
	RETURNS llm_plugins
	LANGUAGE plpgsql VOLATILE
	AS $$
DECLARE
	opts jsonb := coalesce(options, '{}');
	info record;
	proc regprocedure;
	descr text;
	plugin_version text;
	result @extschema@.llm_plugins;
BEGIN
	IF name IS NULL OR kind IS NULL OR source IS NULL THEN
		RAISE EXCEPTION 'name, kind and source must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF name !~ '^[A-Za-z0-9_-]{1,63}$' THEN
		RAISE EXCEPTION 'invalid plugin name "%"', name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Plugin names are 1 to 63 letters, digits, underscores and hyphens.';
	END IF;
	IF pg_catalog.jsonb_typeof(opts) <> 'object' THEN
		RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM @extschema@.llm_plugin_registry r WHERE r.name = llm_install_plugin.name) THEN
		RAISE EXCEPTION 'plugin "%" is already installed', name
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Drop it first with llm_drop_plugin, or choose another name.';
	END IF;

	IF kind = 'tool' THEN
		BEGIN
			proc := source::regprocedure;
		EXCEPTION WHEN undefined_function OR invalid_text_representation OR undefined_object OR syntax_error THEN
			RAISE EXCEPTION 'function % does not exist', source
				USING ERRCODE = 'undefined_function',
					  DETAIL = 'The source of a tool plugin is a function signature, like myschema.lookup(text).';
		END;
		IF EXISTS (SELECT FROM pg_catalog.jsonb_object_keys(opts) k WHERE k <> 'description') THEN
			RAISE EXCEPTION 'unrecognized option for tool plugin "%"', name
				USING ERRCODE = 'invalid_parameter_value', HINT = 'A tool plugin takes the option description.';
		END IF;
		IF checksum IS NOT NULL THEN
			RAISE EXCEPTION 'a tool plugin has no checksum' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		-- stored schema-qualified, so it means the same function to everyone
		source := (SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(f.proname) || '(' ||
						  pg_catalog.oidvectortypes(f.proargtypes) || ')'
				   FROM pg_catalog.pg_proc f JOIN pg_catalog.pg_namespace n ON n.oid = f.pronamespace
				   WHERE f.oid = proc);
		descr := coalesce(opts->>'description', pg_catalog.obj_description(proc, 'pg_proc'));
	ELSIF kind = 'provider' THEN
		PERFORM @extschema@.llm_plugin_check_provider(name, source, opts);
		IF checksum IS NOT NULL THEN
			RAISE EXCEPTION 'a provider plugin has no checksum' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		descr := 'OpenAI-compatible endpoint ' || source || ', model ' || (opts->>'model');
	ELSIF kind = 'engine' THEN
		PERFORM @extschema@.llm_plugin_require_superuser('install', name);
		IF source !~ '^/' THEN
			RAISE EXCEPTION 'engine plugin path "%" is not absolute', source
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF checksum IS NOT NULL AND pg_catalog.lower(checksum) !~ '^[0-9a-f]{64}$' THEN
			RAISE EXCEPTION 'invalid checksum "%"', checksum
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'The checksum of an engine plugin is the SHA-256 of its file, 64 hexadecimal digits.';
		END IF;
		checksum := pg_catalog.lower(checksum);
		info := @extschema@.llm_plugin_inspect(source, checksum);
		IF info.status = 'checksum' THEN
			RAISE EXCEPTION 'checksum mismatch for engine plugin "%"', name
				USING ERRCODE = 'data_corrupted',
					  DETAIL = pg_catalog.format('The file %s has SHA-256 %s, not %s.', source, info.sha256, checksum),
					  HINT = 'Give the checksum of the file you mean to install, or check that the file was not changed.';
		ELSIF info.status = 'abi' THEN
			RAISE EXCEPTION 'engine plugin "%" implements ABI version %, this engine implements version %',
				name, coalesce(info.abi_version::text, 'out of range'), @extschema@.llm_plugin_abi_version()
				USING ERRCODE = 'feature_not_supported',
					  HINT = 'Rebuild the plugin against this version''s lg_plugin.h.';
		ELSIF info.status <> 'ok' THEN
			RAISE EXCEPTION 'file "%" is not a loadable engine plugin', source
				USING ERRCODE = CASE info.status WHEN 'open' THEN 'undefined_file' ELSE 'invalid_parameter_value' END,
					  DETAIL = info.error || '.',
					  HINT = 'An engine plugin is a shared library exporting lg_plugin_init (see docs/plugins.md).';
		END IF;
		IF info.name <> name THEN
			RAISE EXCEPTION 'engine plugin file "%" calls itself "%", not "%"', source, info.name, name
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Install it under the name the plugin gives itself.';
		END IF;
		checksum := info.sha256;
		plugin_version := info.version;
		descr := nullif(info.description, '');
	ELSE
		RAISE EXCEPTION 'invalid plugin kind "%"', kind
			USING ERRCODE = 'invalid_parameter_value', HINT = 'The kinds are tool, provider and engine.';
	END IF;

	INSERT INTO @extschema@.llm_plugin_registry (name, kind, version, source, checksum, options, description)
	VALUES (name, kind, plugin_version, source, checksum, opts, descr);
	SELECT * INTO result FROM @extschema@.llm_plugins p WHERE p.name = llm_install_plugin.name;
	RETURN result;
END
$$;
COMMENT ON FUNCTION llm_install_plugin IS 'install a plugin (disabled; see llm_enable_plugin); engine plugins: superuser only';

-- The registry row of an installed plugin, locked for the caller's change; an error when none.
CREATE FUNCTION llm_plugin_lock(plugin text) RETURNS llm_plugin_registry
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	p @extschema@.llm_plugin_registry;
BEGIN
	SELECT * INTO p FROM @extschema@.llm_plugin_registry r WHERE r.name = plugin FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'plugin "%" is not installed', plugin
			USING ERRCODE = 'undefined_object', HINT = 'See the installed plugins in llamagpu.llm_plugins.';
	END IF;
	RETURN p;
END
$$;

CREATE FUNCTION llm_enable_plugin(name text) RETURNS llm_plugins
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	p @extschema@.llm_plugin_registry;
	info record;
	result @extschema@.llm_plugins;
BEGIN
	p := @extschema@.llm_plugin_lock(name);
	IF p.kind = 'tool' THEN
		-- enabling twice is harmless; a tool of that name that is not this function is an error
		IF NOT EXISTS (SELECT FROM @extschema@.llm_tools t WHERE t.name = p.name AND t.fn = p.source::regprocedure) THEN
			PERFORM @extschema@.llm_register_tool(p.source::regprocedure, p.description, p.name);
		END IF;
	ELSIF p.kind = 'provider' THEN
		PERFORM @extschema@.llm_plugin_check_provider(p.name, p.source, p.options);
		PERFORM @extschema@.llm_plugin_provider_enable(p.name, p.source, p.options);
	ELSE
		PERFORM @extschema@.llm_plugin_require_superuser('enable', name);
		-- the file must still be the one installed
		info := @extschema@.llm_plugin_inspect(p.source, p.checksum);
		IF info.status <> 'ok' THEN
			RAISE EXCEPTION '%', CASE info.status WHEN 'checksum' THEN format('checksum mismatch for engine plugin "%s"', name)
									 ELSE format('engine plugin "%s" cannot be loaded', name) END
				USING ERRCODE = CASE info.status WHEN 'checksum' THEN 'data_corrupted' WHEN 'abi' THEN 'feature_not_supported'
								ELSE 'invalid_parameter_value' END,
					  DETAIL = info.error || '.',
					  HINT = 'Drop the plugin and install the file again if it was changed on purpose.';
		END IF;
	END IF;
	UPDATE @extschema@.llm_plugin_registry r SET enabled = true, last_error = NULL WHERE r.name = p.name;
	IF p.kind = 'engine' THEN
		PERFORM @extschema@.llm_plugin_engine_sync(ARRAY[p.name]);
	END IF;
	SELECT * INTO result FROM @extschema@.llm_plugins v WHERE v.name = p.name;
	RETURN result;
END
$$;
COMMENT ON FUNCTION llm_enable_plugin IS 'enable a plugin: register the tool, the remote model, or (at commit) restart the engine with the engine plugin';

CREATE FUNCTION llm_disable_plugin(name text) RETURNS llm_plugins
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	p @extschema@.llm_plugin_registry;
	result @extschema@.llm_plugins;
BEGIN
	p := @extschema@.llm_plugin_lock(name);
	PERFORM @extschema@.llm_plugin_deactivate(p);
	UPDATE @extschema@.llm_plugin_registry r SET enabled = false WHERE r.name = p.name;
	IF p.kind = 'engine' THEN
		PERFORM @extschema@.llm_plugin_engine_sync(ARRAY[p.name]);
	END IF;
	SELECT * INTO result FROM @extschema@.llm_plugins v WHERE v.name = p.name;
	RETURN result;
END
$$;
COMMENT ON FUNCTION llm_disable_plugin IS 'disable a plugin: unregister the tool or remote model, or (at commit) restart the engine without the engine plugin';

CREATE FUNCTION llm_drop_plugin(name text) RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	p @extschema@.llm_plugin_registry;
BEGIN
	p := @extschema@.llm_plugin_lock(name);
	PERFORM @extschema@.llm_plugin_deactivate(p);
	DELETE FROM @extschema@.llm_plugin_registry r WHERE r.name = p.name;
	IF p.kind = 'engine' THEN
		PERFORM @extschema@.llm_plugin_engine_sync(ARRAY[p.name]);
	END IF;
	RETURN true;
END
$$;
COMMENT ON FUNCTION llm_drop_plugin IS 'disable and remove a plugin';

-- What disabling undoes: the tool's registration, the provider's remote model.
CREATE FUNCTION llm_plugin_deactivate(p llm_plugin_registry) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF p.kind = 'tool' AND p.enabled THEN
		DELETE FROM @extschema@.llm_tools t WHERE t.name = p.name;
	ELSIF p.kind = 'provider' AND p.enabled THEN
		PERFORM @extschema@.llm_plugin_provider_disable(p.name);
	END IF;
END
$$;

-- Providers: an enabled provider plugin is the remote model of the same
-- name (llm_register_remote_model, docs/models.md, "Remote providers"), which llm_generate,
-- llm_chat and the others route to; disabling drops that model.  A build
-- without remote models stores and validates the definition only.
CREATE FUNCTION llm_plugin_provider_enable(name text, source text, options jsonb) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF to_regproc('@extschema@.llm_register_remote_model') IS NULL THEN
		RAISE NOTICE 'provider plugin "%" is stored, but this build has no remote models', name
			USING DETAIL = 'llm_register_remote_model is not installed, so no model routes to the endpoint.';
		RETURN;
	END IF;
	IF EXISTS (SELECT FROM @extschema@.llm_models m WHERE m.name = llm_plugin_provider_enable.name) THEN
		RAISE EXCEPTION 'model "%" already exists', name
			USING ERRCODE = 'duplicate_object',
				  DETAIL = 'Enabling provider plugin "' || name || '" registers the remote model of that name.',
				  HINT = 'Drop the model, or install the provider under another name.';
	END IF;
	EXECUTE 'SELECT FROM @extschema@.llm_register_remote_model($1, $2, $3, $4, $5)'
		USING name, source, options->>'model', options->>'api_key_secret',
			  nullif(options - 'model' - 'api_key_secret', '{}'::jsonb);
END
$$;

CREATE FUNCTION llm_plugin_provider_disable(name text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $$
BEGIN
	IF to_regproc('@extschema@.llm_register_remote_model') IS NULL THEN
		RETURN;
	END IF;
	IF EXISTS (SELECT FROM @extschema@.llm_models m WHERE m.name = llm_plugin_provider_disable.name) THEN
		EXECUTE 'SELECT FROM @extschema@.llm_drop_model($1)' USING name;
	END IF;
END
$$;

CREATE FUNCTION llm_plugin_abi_version() RETURNS int
	AS 'MODULE_PATHNAME', 'llm_plugin_abi_version'
	LANGUAGE C IMMUTABLE;
COMMENT ON FUNCTION llm_plugin_abi_version IS 'the engine plugin ABI version (LG_PLUGIN_ABI_VERSION) this build implements';

REVOKE ALL ON FUNCTION
	llm_plugin_inspect(text, text), llm_plugin_engine_state(), llm_plugin_engine_sync(text[]),
	llm_plugin_require_superuser(text, text), llm_plugin_check_provider(text, text, jsonb),
	llm_install_plugin(text, text, text, text, jsonb), llm_enable_plugin(text),
	llm_disable_plugin(text), llm_drop_plugin(text), llm_plugin_deactivate(llm_plugin_registry),
	llm_plugin_provider_enable(text, text, jsonb), llm_plugin_provider_disable(text),
	llm_plugin_provider_options(), llm_plugin_abi_version(), llm_plugin_lock(text)
	FROM PUBLIC;
-- a constant, but no C function of llamagpu is executable by PUBLIC
GRANT EXECUTE ON FUNCTION llm_plugin_abi_version() TO llm_user;
GRANT EXECUTE ON FUNCTION
	llm_plugin_engine_state(), llm_plugin_engine_sync(text[]),
	llm_plugin_require_superuser(text, text), llm_plugin_check_provider(text, text, jsonb),
	llm_install_plugin(text, text, text, text, jsonb), llm_enable_plugin(text),
	llm_disable_plugin(text), llm_drop_plugin(text), llm_plugin_deactivate(llm_plugin_registry),
	llm_plugin_provider_enable(text, text, jsonb), llm_plugin_provider_disable(text),
	llm_plugin_provider_options(), llm_plugin_lock(text)
	TO llm_admin;
