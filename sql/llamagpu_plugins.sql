-- The plugin registry (docs/plugins.md): tool and provider plugins, who may
-- install what, and the generate options that select an engine plugin.
-- Engine plugin files are tested in tests/tap/010_plugins.pl (their paths
-- and checksums depend on the build).
SET llamagpu.default_model = 'stories';
CREATE ROLE regress_plugin_admin IN ROLE llm_admin;
CREATE ROLE regress_plugin_user IN ROLE llm_user;
CREATE FUNCTION public.plugin_weather(city text) RETURNS text LANGUAGE sql AS $$SELECT 'sunny in ' || city$$;
COMMENT ON FUNCTION public.plugin_weather IS 'The weather in a city';
GRANT EXECUTE ON FUNCTION public.plugin_weather(text) TO llm_user;
SELECT llm_abi_version_ok FROM (SELECT llm_plugin_abi_version() = 1 AS llm_abi_version_ok) s;

\pset format unaligned
\pset tuples_only on
-- llm_user may neither install nor change plugins, nor read the registry
SET ROLE regress_plugin_user;
SELECT regress_error($$SELECT llm_install_plugin('weather', 'tool', 'plugin_weather(text)')$$);
SELECT regress_error($$SELECT * FROM llm_plugins$$);
SELECT regress_error($$SELECT llm_enable_plugin('weather')$$);
SELECT regress_error($$SELECT llm_plugin_inspect('/bin/true')$$);
RESET ROLE;

-- bad definitions, each with its reason
SET ROLE regress_plugin_admin;
SELECT regress_error($$SELECT llm_install_plugin('bad name', 'tool', 'plugin_weather(text)')$$);
SELECT regress_error($$SELECT llm_install_plugin('weather', 'widget', 'x')$$);
SELECT regress_error($$SELECT llm_install_plugin('weather', 'tool', 'no_such_function(text)')$$);
SELECT regress_error($$SELECT llm_install_plugin('weather', 'tool', 'plugin_weather(text)', options => '{"colour": 1}')$$);
SELECT regress_error($$SELECT llm_install_plugin('weather', 'tool', 'plugin_weather(text)', options => '[1]')$$);
SELECT regress_error($$SELECT llm_install_plugin('remote', 'provider', 'ftp://example.com', options => '{"model": "m"}')$$);
SELECT regress_error($$SELECT llm_install_plugin('remote', 'provider', 'https://example.com/v1')$$);
SELECT regress_error($$SELECT llm_install_plugin('remote', 'provider', 'https://example.com/v1', options => '{"model": "m", "api_key_secret": "nope"}')$$);
SELECT regress_error($$SELECT llm_install_plugin('remote', 'provider', 'https://example.com/v1', options => '{"model": "m", "colour": 1}')$$);
SELECT regress_error($$SELECT llm_install_plugin('remote', 'provider', 'https://example.com/v1', 'abc', '{"model": "m"}')$$);
-- engine plugins are native code: superuser only, whatever the path
SELECT regress_error($$SELECT llm_install_plugin('native', 'engine', '/tmp/x.so')$$);
SELECT regress_error($$INSERT INTO llm_plugin_registry (name, kind, source, checksum) VALUES ('native', 'engine', '/tmp/x.so', repeat('a', 64))$$);
SELECT regress_error($$SELECT llm_plugin_inspect('/bin/true')$$);
\pset tuples_only off
\pset format aligned

-- a tool plugin: installed disabled; enabling registers the tool, disabling unregisters it
SELECT name, kind, source, enabled, state, description FROM llm_install_plugin('weather', 'tool', 'plugin_weather(text)');
SELECT count(*) AS tools FROM llm_tools WHERE name = 'weather';
SELECT name, enabled, state FROM llm_enable_plugin('weather');
SELECT name, fn, description FROM llm_tools WHERE name = 'weather';
SELECT name, enabled, state FROM llm_enable_plugin('weather');	-- again: still one tool
SELECT count(*) AS tools FROM llm_tools WHERE name = 'weather';
SELECT name, enabled, state FROM llm_disable_plugin('weather');
SELECT count(*) AS tools FROM llm_tools WHERE name = 'weather';
SELECT name, enabled FROM llm_enable_plugin('weather');
SELECT llm_drop_plugin('weather');
SELECT count(*) AS tools FROM llm_tools WHERE name = 'weather';
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_drop_plugin('weather')$$);
SELECT regress_error($$SELECT llm_enable_plugin('weather')$$);
SELECT regress_error($$SELECT llm_disable_plugin('weather')$$);
\pset tuples_only off
\pset format aligned
SELECT name FROM llm_install_plugin('weather', 'tool', 'plugin_weather(text)', options => '{"description": "Weather report"}');
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_install_plugin('weather', 'tool', 'plugin_weather(text)')$$);
\pset tuples_only off
\pset format aligned
SELECT name, enabled, state, description FROM llm_enable_plugin('weather');
SELECT name, description FROM llm_tools WHERE name = 'weather';
RESET ROLE;
-- an enabled tool plugin is a tool like any other: llm_user runs it in a tool call
SET ROLE regress_plugin_user;
SELECT llm_run_tool_calls('[{"id": "c1", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}]');
RESET ROLE;
SELECT name FROM llm_disable_plugin('weather');
SET ROLE regress_plugin_user;
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_run_tool_calls('[{"id": "c1", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}]')$$);
\pset tuples_only off
\pset format aligned
RESET ROLE;

-- a provider plugin: the definition is checked, its API key is a secret's name
INSERT INTO llm_secrets (name, value) VALUES ('regress_provider_key', 'sk-not-a-real-key');
SET ROLE regress_plugin_admin;
SELECT name, kind, source, options, enabled, state, description
FROM llm_install_plugin('remote', 'provider', 'https://api.example.com/v1',
						options => '{"model": "gpt-x", "api_key_secret": "regress_provider_key"}');
SELECT name, enabled, state FROM llm_enable_plugin('remote');
-- enabled, it is the remote model of its name
SELECT name, provider, base_url, remote_model, api_key_secret FROM llm_models WHERE name = 'remote';
SELECT name, enabled, state FROM llm_disable_plugin('remote');
SELECT count(*) AS models FROM llm_models WHERE name = 'remote';
-- options of the remote model are checked when it is registered
SELECT name FROM llm_install_plugin('remote2', 'provider', 'http://127.0.0.1:9/v1', options => '{"model": "m", "max_retries": 99}');
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_enable_plugin('remote2')$$);
\pset tuples_only off
\pset format aligned
SELECT name, enabled FROM llm_plugins WHERE name = 'remote2';
SELECT llm_drop_plugin('remote2');
SELECT llm_drop_plugin('remote');
-- llm_admin may read the registry; nothing in it is a secret's value
SELECT name, kind, enabled, state FROM llm_plugins ORDER BY name;
RESET ROLE;

-- the generate options that select an engine plugin are checked before the engine sees them
\pset format unaligned
\pset tuples_only on
SELECT regress_error($$SELECT llm_generate('Once', max_tokens => 2, options => '{"logits_processor": 1}')$$);
SELECT regress_error($$SELECT llm_generate('Once', max_tokens => 2, options => '{"logits_processor": "a b"}')$$);
SELECT regress_error($$SELECT llm_generate('Once', max_tokens => 2, options => '{"logits_processor": "banwords", "plugin_options": [1]}')$$);
SELECT regress_error($$SELECT llm_generate('Once', max_tokens => 2, options => '{"logits_processor": "nosuch"}')$$);
\pset tuples_only off
\pset format aligned

SELECT llm_drop_plugin('weather');
DELETE FROM llm_secrets WHERE name = 'regress_provider_key';
DROP FUNCTION public.plugin_weather(text);
DROP ROLE regress_plugin_admin, regress_plugin_user;
