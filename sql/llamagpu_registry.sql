-- The model registry: registering, loading, unloading, dropping, and every
-- way registration can fail without leaving anything behind.
\pset format unaligned
\getenv model_path LLAMAGPU_TEST_MODEL
SELECT count(*) AS models_before FROM llm_models;

-- duplicate name
SELECT regress_error(format('SELECT llm_register_model(%L, %L)', 'stories', :'model_path'));
-- invalid names
SELECT regress_error(format('SELECT llm_register_model(%L, %L)', '', :'model_path'));
SELECT regress_error(format('SELECT llm_register_model(%L, %L)', 'bad name', :'model_path'));
SELECT regress_error(format('SELECT llm_register_model(%L, %L)', NULL, :'model_path'));
SELECT regress_error($$SELECT llm_register_model('x', NULL)$$);
SELECT regress_error($$SELECT llm_register_model('x', '')$$);
-- missing file
SELECT regress_error($$SELECT llm_register_model('missing', '/nonexistent/model.gguf')$$);
-- a relative path is taken under llamagpu.model_dir
SELECT regress_error($$SELECT llm_register_model('missing', 'no-such-file.gguf')$$);
-- not a GGUF file at all
COPY (SELECT 'this is not a model') TO '/tmp/llamagpu_regress_text.gguf';
SELECT regress_error($$SELECT llm_register_model('text', '/tmp/llamagpu_regress_text.gguf')$$);
-- GGUF magic, then garbage: the engine rejects it
COPY (SELECT 'GGUF' || repeat('x', 100)) TO '/tmp/llamagpu_regress_trunc.gguf';
SELECT regress_error($$SELECT llm_register_model('trunc', '/tmp/llamagpu_regress_trunc.gguf')$$);
-- a GGUF v3 header announcing more tensors than the file can hold
SELECT lo_from_bytea(0, '\x474755460300000001000000000000000000000000000000'::bytea) AS lo \gset
SELECT lo_export(:lo, '/tmp/llamagpu_regress_count.gguf'), lo_unlink(:lo);
SELECT regress_error($$SELECT llm_register_model('count', '/tmp/llamagpu_regress_count.gguf')$$);
-- a directory
SELECT regress_error($$SELECT llm_register_model('dir', '/tmp')$$);
-- bad options
SELECT regress_error(format('SELECT llm_register_model(%L, %L, %L)', 'opts', :'model_path', '{"colour": "red"}'));
SELECT regress_error(format('SELECT llm_register_model(%L, %L, %L)', 'opts', :'model_path', '{"context_size": "big"}'));
SELECT regress_error(format('SELECT llm_register_model(%L, %L, %L)', 'opts', :'model_path', '[1, 2]'));

-- nothing was half-registered
SELECT count(*) AS models_after FROM llm_models;

-- relative path under model_dir
SELECT name, architecture, path = :'model_path' AS same_path
FROM llm_register_model('relative', 'stories260K.gguf');

-- loading and unloading
SELECT llm_load_model('relative');
SELECT llm_unload_model('relative');
SELECT llm_unload_model('relative');
SELECT regress_error($$SELECT llm_load_model('nope')$$);
SELECT regress_error($$SELECT llm_load_model(NULL)$$);

-- dropping
SELECT llm_drop_model('relative');
SELECT regress_error($$SELECT llm_drop_model('relative')$$);
SELECT name FROM llm_models ORDER BY name;
