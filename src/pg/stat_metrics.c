/*
 * stat_metrics.c — llm_metrics(): the engine's numbers in the Prometheus
 * text exposition format (version 0.0.4), for a scraper reading them
 * through postgres_exporter or PostgREST (docs/observability.md).
 *
 * Where llama.cpp's server or vLLM export the same quantity, it is
 * exported under their name, type and label (model_name), so dashboards
 * made for them work; llama.cpp's own metrics carry no labels (one model
 * per server), ours add model_name, which a query without labels still
 * matches.  Everything else is named llamagpu_*.  The mapping table is in
 * docs/observability.md; keep it in step with the tables here.
 */
#include "llamagpu.h"

#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(llm_metrics);

/* A per-model number: false when the model has none (its line is left out). */
typedef bool (*ModelValueFn) (const StatModel *m, double *v);

typedef struct ModelFamily
{
	const char *name;
	const char *type;			/* counter or gauge */
	const char *help;
	ModelValueFn value;
} ModelFamily;

/* Sched counter i, when the model has a scheduler line. */
#define SCHED(i)	(m->has_sched ? (*v = (double) m->sched[i], true) : false)

static bool v_prompt_tokens(const StatModel *m, double *v) { *v = m->prompt_tokens; return m->has_metrics; }
static bool v_gen_tokens(const StatModel *m, double *v) { *v = m->gen_tokens; return m->has_metrics; }
static bool v_errors(const StatModel *m, double *v) { *v = m->errors; return m->has_metrics; }
static bool v_embed_requests(const StatModel *m, double *v) { *v = m->embed_requests; return m->has_metrics; }
static bool v_embed_inputs(const StatModel *m, double *v) { *v = m->embed_inputs; return m->has_metrics; }
static bool v_embed_tokens(const StatModel *m, double *v) { *v = m->embed_prompt_tokens; return m->has_metrics; }
static bool v_steps(const StatModel *m, double *v) { return SCHED(STAT_SCHED_STEPS); }
static bool v_running(const StatModel *m, double *v) { return SCHED(STAT_SCHED_RUNNING); }
static bool v_queued(const StatModel *m, double *v) { return SCHED(STAT_SCHED_QUEUED); }
static bool v_prefix_lookup(const StatModel *m, double *v) { return SCHED(STAT_SCHED_PREFIX_LOOKUP); }
static bool v_prefix_hit(const StatModel *m, double *v) { return SCHED(STAT_SCHED_PREFIX_HIT); }
static bool v_preemptions(const StatModel *m, double *v) { return SCHED(STAT_SCHED_PREEMPTIONS); }
static bool v_rejected(const StatModel *m, double *v) { return SCHED(STAT_SCHED_REJECTED); }
static bool v_batch_tokens(const StatModel *m, double *v) { return SCHED(STAT_SCHED_BATCH_TOKENS); }
static bool v_kv_used(const StatModel *m, double *v) { return SCHED(STAT_SCHED_KV_USED); }
static bool v_kv_total(const StatModel *m, double *v) { return SCHED(STAT_SCHED_KV_TOTAL); }
static bool v_kv_cached(const StatModel *m, double *v) { return SCHED(STAT_SCHED_KV_CACHED); }
static bool v_loaded(const StatModel *m, double *v) { *v = (m->loaded || m->has_sched) ? 1 : 0; return true; }
static bool v_weights(const StatModel *m, double *v) { *v = m->weights_bytes; return m->has_memory; }
static bool v_kv_bytes(const StatModel *m, double *v) { *v = m->kv_bytes; return m->has_memory; }

/* Positions held in the KV pool: blocks in use times the block size. */
static bool
v_kv_tokens(const StatModel *m, double *v)
{
	*v = (double) m->sched[STAT_SCHED_KV_USED] * m->sched[STAT_SCHED_KV_BLOCK_SIZE];
	return m->has_sched;
}

/* Blocks in use over blocks in the pool, 0..1. */
static bool
v_kv_ratio(const StatModel *m, double *v)
{
	if (!m->has_sched || m->sched[STAT_SCHED_KV_TOTAL] <= 0)
		return false;
	*v = (double) m->sched[STAT_SCHED_KV_USED] / m->sched[STAT_SCHED_KV_TOTAL];
	return true;
}

/* The per-model families with one unlabelled (but model_name) sample each. */
static const ModelFamily model_families[] = {
	{"llamacpp:prompt_tokens_total", "counter", "Number of prompt tokens processed.", v_prompt_tokens},
	{"llamacpp:tokens_predicted_total", "counter", "Number of generation tokens processed.", v_gen_tokens},
	{"llamacpp:n_decode_total", "counter", "Total number of batched decode steps.", v_steps},
	{"llamacpp:kv_cache_usage_ratio", "gauge", "KV-cache usage. 1 means 100 percent usage.", v_kv_ratio},
	{"llamacpp:kv_cache_tokens", "gauge", "KV-cache positions held by running requests.", v_kv_tokens},
	{"llamacpp:requests_processing", "gauge", "Number of requests processing.", v_running},
	{"llamacpp:requests_deferred", "gauge", "Number of requests deferred.", v_queued},
	{"vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", v_running},
	{"vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", v_queued},
	{"vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", v_kv_ratio},
	{"vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.", v_prefix_lookup},
	{"vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.", v_prefix_hit},
	{"vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the engine.", v_preemptions},
	{"vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", v_prompt_tokens},
	{"vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", v_gen_tokens},
	{"llamagpu_model_loaded", "gauge", "1 when the model is loaded in the engine, 0 when it was unloaded.", v_loaded},
	{"llamagpu_model_weights_bytes", "gauge", "Bytes of the model's weights (the tensor data of its GGUF file).", v_weights},
	{"llamagpu_model_kv_cache_bytes", "gauge", "Bytes of the model's KV block pool.", v_kv_bytes},
	{"llamagpu_request_errors_total", "counter", "Generations and embedding requests that ended with an error (cancellations not included).", v_errors},
	{"llamagpu_embedding_requests_total", "counter", "Embedding requests that ended, any outcome (also in vllm:request_success_total and llamagpu_requests_total).", v_embed_requests},
	{"llamagpu_embedding_inputs_total", "counter", "Texts embedded (one vector each).", v_embed_inputs},
	{"llamagpu_embedding_prompt_tokens_total", "counter", "Tokens of the embedded texts (also in vllm:prompt_tokens_total).", v_embed_tokens},
	{"llamagpu_requests_rejected_total", "counter", "Generations refused at once because the wait queue was full.", v_rejected},
	{"llamagpu_batch_tokens_total", "counter", "Tokens evaluated in batched steps, prompt and generated.", v_batch_tokens},
	{"llamagpu_kv_cache_blocks_used", "gauge", "KV blocks held by running requests.", v_kv_used},
	{"llamagpu_kv_cache_blocks_cached", "gauge", "Unused KV blocks kept for the prefix cache.", v_kv_cached},
	{"llamagpu_kv_cache_blocks_total", "gauge", "KV blocks in the model's pool.", v_kv_total},
};

/* The histograms, each under its vLLM name (ITL also under the older name). */
static const struct
{
	const char *name;
	int			kind;
	const char *help;
}			hist_families[] = {
	{"vllm:time_to_first_token_seconds", STAT_HIST_TTFT, "Histogram of time to first token in seconds."},
	{"vllm:inter_token_latency_seconds", STAT_HIST_ITL, "Histogram of inter-token latency in seconds."},
	{"vllm:time_per_output_token_seconds", STAT_HIST_ITL, "Histogram of time per output token in seconds (the same as vllm:inter_token_latency_seconds)."},
	{"vllm:e2e_request_latency_seconds", STAT_HIST_E2E, "Histogram of e2e request latency in seconds."},
};

/* Append a label value, escaped as the exposition format wants (\\, \", \n). */
static void
append_label_value(StringInfo buf, const char *s)
{
	appendStringInfoChar(buf, '"');
	for (; *s; s++)
	{
		if (*s == '\\')
			appendStringInfoString(buf, "\\\\");
		else if (*s == '"')
			appendStringInfoString(buf, "\\\"");
		else if (*s == '\n')
			appendStringInfoString(buf, "\\n");
		else
			appendStringInfoChar(buf, *s);
	}
	appendStringInfoChar(buf, '"');
}

/* The HELP and TYPE lines of a family. */
static void
append_header(StringInfo buf, const char *name, const char *type, const char *help)
{
	appendStringInfo(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A number: integers without a fraction, others with 15 significant digits (a double holds them exactly). */
static void
append_number(StringInfo buf, double v)
{
	if (v == (double) (int64) v && v < 1e15 && v > -1e15)
		appendStringInfo(buf, INT64_FORMAT, (int64) v);
	else
		appendStringInfo(buf, "%.15g", v);
}

/* One sample: name{model_name="..."[,label="value"]} value. */
static void
append_sample(StringInfo buf, const char *name, const char *model, const char *label,
			  const char *label_value, double v)
{
	bool		braces = model != NULL || label != NULL;

	appendStringInfoString(buf, name);
	if (braces)
		appendStringInfoChar(buf, '{');
	if (model != NULL)
	{
		appendStringInfoString(buf, "model_name=");
		append_label_value(buf, model);
	}
	if (label != NULL)
	{
		appendStringInfo(buf, "%s%s=", model ? "," : "", label);
		append_label_value(buf, label_value);
	}
	if (braces)
		appendStringInfoChar(buf, '}');
	appendStringInfoChar(buf, ' ');
	append_number(buf, v);
	appendStringInfoChar(buf, '\n');
}

/* How many of m's requests ended with one of the outcomes named (NULL-terminated). */
static int64
outcome_sum(const StatModel *m, const char *const *names)
{
	ListCell   *lc;
	int64		n = 0;

	foreach(lc, m->outcomes)
	{
		StatOutcome *o = lfirst(lc);

		for (int i = 0; names[i]; i++)
			if (strcmp(o->name, names[i]) == 0)
				n += o->count;
	}
	return n;
}

/* vllm:request_success_total by finished_reason, and llamagpu_requests_total by outcome. */
static void
append_outcomes(StringInfo buf, List *models)
{
	static const char *const stop[] = {"stop", "tool_calls", NULL};
	static const char *const length[] = {"length", NULL};
	static const char *const abort_[] = {"cancelled", "timeout", NULL};
	ListCell   *lc;

	append_header(buf, "vllm:request_success_total", "counter", "Count of successfully processed requests.");
	foreach(lc, models)
	{
		StatModel  *m = lfirst(lc);

		if (!m->has_metrics)
			continue;
		append_sample(buf, "vllm:request_success_total", m->name, "finished_reason", "stop",
					  outcome_sum(m, stop));
		append_sample(buf, "vllm:request_success_total", m->name, "finished_reason", "length",
					  outcome_sum(m, length));
		append_sample(buf, "vllm:request_success_total", m->name, "finished_reason", "abort",
					  outcome_sum(m, abort_));
	}
	append_header(buf, "llamagpu_requests_total", "counter",
				  "Generations and embedding requests that ended, by outcome (a finish reason or an error status).");
	foreach(lc, models)
	{
		StatModel  *m = lfirst(lc);
		ListCell   *oc;

		foreach(oc, m->outcomes)
		{
			StatOutcome *o = lfirst(oc);

			append_sample(buf, "llamagpu_requests_total", m->name, "outcome", o->name, o->count);
		}
	}
}

/* One histogram family over every model that has it. */
static void
append_histogram(StringInfo buf, const char *name, int kind, const char *help, List *models)
{
	char		sample[128];
	ListCell   *lc;

	append_header(buf, name, "histogram", help);
	foreach(lc, models)
	{
		StatModel  *m = lfirst(lc);
		const StatHist *h = &m->hist[kind];

		if (!h->present)
			continue;
		snprintf(sample, sizeof(sample), "%s_bucket", name);
		for (int i = 0; i <= h->nbounds; i++)
			append_sample(buf, sample, m->name, "le", i < h->nbounds ? h->bound_text[i] : "+Inf",
						  (double) h->cum[i]);
		snprintf(sample, sizeof(sample), "%s_sum", name);
		append_sample(buf, sample, m->name, NULL, NULL, h->sum);
		snprintf(sample, sizeof(sample), "%s_count", name);
		append_sample(buf, sample, m->name, NULL, NULL, (double) h->count);
	}
}

/* The engine-wide families. */
static void
append_engine(StringInfo buf, const EngineStatus *st)
{
	append_header(buf, "llamagpu_up", "gauge", "1 when the engine answers, 0 when it does not.");
	append_sample(buf, "llamagpu_up", NULL, NULL, NULL, st->reachable ? 1 : 0);
	if (llamagpu_shared != NULL)
	{
		int			restarts;

		SpinLockAcquire(&llamagpu_shared->mutex);
		restarts = llamagpu_shared->restarts;
		SpinLockRelease(&llamagpu_shared->mutex);
		append_header(buf, "llamagpu_engine_restarts_total", "counter",
					  "Times the supervisor started the engine again after the first start.");
		append_sample(buf, "llamagpu_engine_restarts_total", NULL, NULL, NULL, restarts);
	}
	if (st->has_uptime)
	{
		append_header(buf, "llamagpu_engine_uptime_seconds", "gauge", "Seconds since the engine started.");
		append_sample(buf, "llamagpu_engine_uptime_seconds", NULL, NULL, NULL, st->uptime_ms / 1000.0);
	}
	if (st->has_device_memory)
	{
		append_header(buf, "llamagpu_device_memory_used_bytes", "gauge",
					  "Device memory in use (a GPU: by every process; the CPU: the engine's resident set).");
		append_sample(buf, "llamagpu_device_memory_used_bytes", NULL, "device", st->device,
					  (double) st->device_memory_used);
		append_header(buf, "llamagpu_device_memory_total_bytes", "gauge",
					  "Device memory in all (the CPU: physical memory).");
		append_sample(buf, "llamagpu_device_memory_total_bytes", NULL, "device", st->device,
					  (double) st->device_memory_total);
	}
	if (st->has_grammar_cache)
	{
		append_header(buf, "llamagpu_grammar_cache_hits_total", "counter",
					  "Grammars and schemas found compiled in the engine's cache.");
		append_sample(buf, "llamagpu_grammar_cache_hits_total", NULL, NULL, NULL,
					  (double) st->grammar_cache_hits);
		append_header(buf, "llamagpu_grammar_cache_misses_total", "counter",
					  "Grammars and schemas the engine had to compile.");
		append_sample(buf, "llamagpu_grammar_cache_misses_total", NULL, NULL, NULL,
					  (double) st->grammar_cache_misses);
	}
}

/* llm_metrics(): the Prometheus text of everything above. */
Datum
llm_metrics(PG_FUNCTION_ARGS)
{
	EngineStatus st;
	StringInfoData buf;
	ListCell   *lc;

	EngineStatusFetch(&st, false);
	initStringInfo(&buf);
	append_engine(&buf, &st);
	for (int f = 0; f < lengthof(model_families); f++)
	{
		const ModelFamily *mf = &model_families[f];

		append_header(&buf, mf->name, mf->type, mf->help);
		foreach(lc, st.models)
		{
			StatModel  *m = lfirst(lc);
			double		v;

			if (mf->value(m, &v))
				append_sample(&buf, mf->name, m->name, NULL, NULL, v);
		}
	}
	append_outcomes(&buf, st.models);
	for (int h = 0; h < lengthof(hist_families); h++)
		append_histogram(&buf, hist_families[h].name, hist_families[h].kind, hist_families[h].help,
						 st.models);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(buf.data, buf.len));
}
