/* 80_pull.sql: downloading models from a hub (llm_pull_model), their progress, remote listings */

CREATE FUNCTION llm_pull_model(source text, name text DEFAULT NULL, options jsonb DEFAULT NULL,
							   OUT download_id bigint, OUT model text, OUT state text, OUT path text,
							   OUT size bigint, OUT sha256 text, OUT verified boolean)
	RETURNS record
	AS 'MODULE_PATHNAME', 'llm_pull_model'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_pull_model(text, text, jsonb) IS
	'download a GGUF model (hf://org/repo/file.gguf[@rev] or an https URL) into llamagpu.model_dir and register it';

CREATE FUNCTION llm_cancel_download(download_id bigint) RETURNS boolean
	AS 'MODULE_PATHNAME', 'llm_cancel_download'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_cancel_download(bigint) IS
	'stop a running download and remove its partial file; false if it was not running';

CREATE FUNCTION llm_clean_downloads() RETURNS integer
	AS 'MODULE_PATHNAME', 'llm_clean_downloads'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_clean_downloads() IS
	'remove the partial files that failed downloads kept for a resume';

CREATE FUNCTION llm_list_remote_files(repo text, revision text DEFAULT 'main', options jsonb DEFAULT NULL)
	RETURNS TABLE (path text, size bigint, quantization text, sha256 text, source text)
	AS 'MODULE_PATHNAME', 'llm_list_remote_files'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_list_remote_files(text, text, jsonb) IS
	'the GGUF files of a hub repository, with size, quantization and SHA-256';

CREATE FUNCTION llm_stat_downloads_internal(
	OUT download_id bigint, OUT datid oid, OUT usesysid oid, OUT pid int, OUT source text,
	OUT model text, OUT path text, OUT state text, OUT bytes_done bigint, OUT bytes_total bigint,
	OUT resumed_from bigint, OUT bytes_per_second float8, OUT attempts int, OUT verified boolean,
	OUT sha256 text, OUT error text, OUT started_at timestamptz, OUT updated_at timestamptz,
	OUT finished_at timestamptz)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'llm_stat_downloads_internal'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

CREATE VIEW llm_stat_downloads AS
	SELECT d.download_id, db.datname, r.rolname AS usename, d.pid, d.model, d.source, d.path,
		   d.state, d.bytes_done, d.bytes_total,
		   CASE WHEN d.bytes_total > 0
				THEN pg_catalog.round(100.0 * d.bytes_done / d.bytes_total, 1) END AS percent,
		   d.bytes_per_second, d.resumed_from, d.attempts, d.verified, d.sha256, d.error,
		   d.started_at, d.updated_at, d.finished_at
	FROM @extschema@.llm_stat_downloads_internal() d
	LEFT JOIN pg_catalog.pg_database db ON db.oid = d.datid
	LEFT JOIN pg_catalog.pg_roles r ON r.oid = d.usesysid
	WHERE pg_catalog.pg_has_role('llm_admin', 'MEMBER');
COMMENT ON VIEW llm_stat_downloads IS
	'model downloads: running ones with their progress, and the last finished ones';

REVOKE ALL ON FUNCTION
	llm_pull_model(text, text, jsonb), llm_cancel_download(bigint), llm_clean_downloads(),
	llm_list_remote_files(text, text, jsonb), llm_stat_downloads_internal()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	llm_pull_model(text, text, jsonb), llm_cancel_download(bigint), llm_clean_downloads(),
	llm_list_remote_files(text, text, jsonb), llm_stat_downloads_internal()
	TO llm_admin;
GRANT SELECT ON llm_stat_downloads TO llm_admin;
