/* 60_metrics.sql: llm_stat_models, llm_stat_reset, llm_metrics (docs/observability.md) */

-- The engine's measurements per model it has loaded or served since it
-- started (or since llm_stat_reset).  Embedding requests count in
-- requests, outcomes ("stop"), prompt_tokens and the e2e latency, as vLLM
-- counts pooling requests, and again in the embedding_* columns.  Latencies are in milliseconds,
-- quantiles of fixed-bucket histograms (see docs/observability.md).
CREATE FUNCTION llm_stat_models_internal(
	OUT model text, OUT loaded boolean, OUT device text,
	OUT weights_bytes bigint, OUT kv_cache_bytes bigint, OUT requests_active bigint,
	OUT requests bigint, OUT errors bigint, OUT outcomes jsonb,
	OUT prompt_tokens bigint, OUT generated_tokens bigint,
	OUT ttft_p50_ms float8, OUT ttft_p95_ms float8, OUT ttft_p99_ms float8,
	OUT itl_p50_ms float8, OUT itl_p95_ms float8, OUT itl_p99_ms float8,
	OUT e2e_p50_ms float8, OUT e2e_p95_ms float8, OUT e2e_p99_ms float8,
	OUT stats_reset timestamptz,
	OUT embedding_requests bigint, OUT embedding_inputs bigint, OUT embedding_prompt_tokens bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'llm_stat_models_internal'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Every registered model, and any other the engine knows (dropped since it
-- was used): a model the engine never served has zero counts.
CREATE VIEW llm_stat_models AS
	SELECT COALESCE(r.name, s.model) AS model,
		   COALESCE(s.loaded, false) AS loaded,
		   s.device,
		   s.weights_bytes, s.kv_cache_bytes,
		   s.weights_bytes + s.kv_cache_bytes AS memory_bytes,
		   COALESCE(s.requests_active, 0) AS requests_active,
		   COALESCE(s.requests, 0) AS requests,
		   COALESCE(s.errors, 0) AS errors,
		   COALESCE(s.outcomes, '{}') AS outcomes,
		   COALESCE(s.prompt_tokens, 0) AS prompt_tokens,
		   COALESCE(s.generated_tokens, 0) AS generated_tokens,
		   s.ttft_p50_ms, s.ttft_p95_ms, s.ttft_p99_ms,
		   s.itl_p50_ms, s.itl_p95_ms, s.itl_p99_ms,
		   s.e2e_p50_ms, s.e2e_p95_ms, s.e2e_p99_ms,
		   s.stats_reset,
		   COALESCE(s.embedding_requests, 0) AS embedding_requests,
		   COALESCE(s.embedding_inputs, 0) AS embedding_inputs,
		   COALESCE(s.embedding_prompt_tokens, 0) AS embedding_prompt_tokens
	FROM @extschema@.llm_models r
	FULL JOIN @extschema@.llm_stat_models_internal() s ON s.model = r.name;
COMMENT ON VIEW llm_stat_models IS 'per model: loaded, device, memory, requests by outcome, tokens, latency quantiles';

CREATE FUNCTION llm_stat_reset() RETURNS boolean
	AS 'MODULE_PATHNAME', 'llm_stat_reset'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION llm_stat_reset() IS 'zero the engine''s request counters and latency histograms; false when no engine runs';

CREATE FUNCTION llm_metrics() RETURNS text
	AS 'MODULE_PATHNAME', 'llm_metrics'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION llm_metrics() IS 'the engine''s metrics in the Prometheus text format, under llama.cpp''s and vLLM''s names where they have one';

REVOKE ALL ON FUNCTION llm_stat_models_internal(), llm_stat_reset(), llm_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_stat_models_internal(), llm_metrics() TO llm_user;
GRANT EXECUTE ON FUNCTION llm_stat_reset() TO llm_admin;
GRANT SELECT ON llm_stat_models TO llm_user;
