/*
 * stat_models.c — llm_stat_models_internal (the engine's measurements per
 * model: whether it is loaded, where, its memory, requests by outcome,
 * tokens, latency quantiles) and llm_stat_reset.  The view llm_stat_models
 * joins it with the registry (sql/install/60_metrics.sql).
 */
#include "llamagpu.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(llm_stat_models_internal);
PG_FUNCTION_INFO_V1(llm_stat_reset);

#define MODELS_COLS		24

/* A model's outcomes as a jsonb object {"stop": 3, "timeout": 1}. */
static Datum
outcomes_jsonb(const StatModel *m)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	foreach(lc, m->outcomes)
	{
		StatOutcome *o = lfirst(lc);

		if (buf.len > 1)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, o->name);
		appendStringInfo(&buf, ": " INT64_FORMAT, o->count);
	}
	appendStringInfoChar(&buf, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* Put a quantile in milliseconds, or NULL when the histogram is empty. */
static void
put_quantile(const StatHist *h, double q, Datum *value, bool *isnull)
{
	double		s = StatHistQuantile(h, q);

	*isnull = isnan(s);
	*value = Float8GetDatum(isnan(s) ? 0 : s * 1000.0);
}

/* llm_stat_models_internal(): one row per model the engine has loaded or served. */
Datum
llm_stat_models_internal(PG_FUNCTION_ARGS)
{
	static const double quantiles[] = {0.5, 0.95, 0.99};
	ReturnSetInfo *rsinfo;
	EngineStatus st;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EngineStatusFetch(&st, false);

	foreach(lc, st.models)
	{
		StatModel  *m = lfirst(lc);
		Datum		values[MODELS_COLS];
		bool		nulls[MODELS_COLS] = {0};
		int			c = 0;

		values[c++] = CStringGetTextDatum(m->name);
		values[c++] = BoolGetDatum(m->loaded || m->has_sched);
		nulls[c] = !m->has_memory;
		values[c++] = m->has_memory ? CStringGetTextDatum(m->device) : (Datum) 0;
		nulls[c] = !m->has_memory;
		values[c++] = Int64GetDatum(m->weights_bytes);
		nulls[c] = !m->has_memory;
		values[c++] = Int64GetDatum(m->kv_bytes);
		values[c++] = Int64GetDatum(m->refs);
		values[c++] = Int64GetDatum(m->requests);
		values[c++] = Int64GetDatum(m->errors);
		values[c++] = outcomes_jsonb(m);
		values[c++] = Int64GetDatum(m->prompt_tokens);
		values[c++] = Int64GetDatum(m->gen_tokens);
		for (int k = 0; k < STAT_HIST_COUNT; k++)
			for (int q = 0; q < 3; q++)
			{
				put_quantile(&m->hist[k], quantiles[q], &values[c], &nulls[c]);
				c++;
			}
		nulls[c] = st.stats_reset_unix_us == 0;
		values[c++] = TimestampTzGetDatum(StatUnixUsToTimestamp(st.stats_reset_unix_us));
		/* embeddings, also counted in requests, outcomes and prompt_tokens above */
		values[c++] = Int64GetDatum(m->embed_requests);
		values[c++] = Int64GetDatum(m->embed_inputs);
		values[c++] = Int64GetDatum(m->embed_prompt_tokens);
		Assert(c == MODELS_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * llm_stat_reset(): zero the engine's request counters and latency
 * histograms (llm_stat_models, llm_metrics()).  The schedulers' counters
 * in llm_stat_engine count since their model was loaded and stay.  False
 * when no engine is running (there is nothing to reset).
 */
Datum
llm_stat_reset(PG_FUNCTION_ARGS)
{
	EngineStatus st;

	EngineStatusFetch(&st, true);
	if (st.reachable)
		ereport(LOG,
				(errmsg("llamagpu: statistics reset by backend PID %d", MyProcPid)));
	PG_RETURN_BOOL(st.reachable);
}
