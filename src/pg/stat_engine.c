/*
 * stat_engine.c — llm_stat_engine: one row per model loaded in the engine,
 * with its scheduler counters from the STATUS `sched` lines, and on every
 * row the engine-wide numbers (uptime, restarts, the sums over models,
 * device memory).  With no model loaded — or no engine running — there is
 * one row whose model is NULL, so the engine-wide numbers are always there.
 * An engine that sends no `sched` line (before continuous batching) gives
 * NULL counters.
 */
#include "llamagpu.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(llm_stat_engine_internal);

#define MODEL_COLS		(3 + STAT_SCHED_FIELDS)
#define ENGINE_COLS		12
#define ALL_COLS		(MODEL_COLS + ENGINE_COLS)

/* Fill the engine-wide columns (from MODEL_COLS on). */
static void
engine_columns(const EngineStatus *st, Datum *values, bool *nulls)
{
	static const char *const states[] = {"stopped", "running", "restarting", "stopping"};
	Datum	   *v = values + MODEL_COLS;
	bool	   *n = nulls + MODEL_COLS;
	int64		queued, running, kv_used, kv_total, lookup, hit;

	EngineStatusTotals(st, &queued, &running, &kv_used, &kv_total, &lookup, &hit);
	for (int i = 0; i < ENGINE_COLS; i++)
		n[i] = true;
	if (st->has_uptime)
	{
		Interval   *iv = palloc0(sizeof(Interval));

		iv->time = st->uptime_ms * 1000;
		v[0] = IntervalPGetDatum(iv);
		n[0] = false;
	}
	if (llamagpu_shared != NULL)
	{
		int			restarts;
		LlamagpuEngineState state;

		SpinLockAcquire(&llamagpu_shared->mutex);
		restarts = llamagpu_shared->restarts;
		state = llamagpu_shared->state;
		SpinLockRelease(&llamagpu_shared->mutex);
		v[1] = Int32GetDatum(restarts);
		n[1] = false;
		v[2] = CStringGetTextDatum(states[state]);
		n[2] = false;
	}
	if (st->reachable)
	{
		v[3] = Int64GetDatum(queued);
		v[4] = Int64GetDatum(running);
		v[5] = Int64GetDatum(kv_used);
		v[6] = Int64GetDatum(kv_total);
		v[7] = Int64GetDatum(lookup);
		v[8] = Int64GetDatum(hit);
		for (int i = 3; i <= 8; i++)
			n[i] = false;
	}
	if (st->has_device_memory)
	{
		v[9] = CStringGetTextDatum(st->device);
		v[10] = Int64GetDatum(st->device_memory_used);
		v[11] = Int64GetDatum(st->device_memory_total);
		n[9] = n[10] = n[11] = false;
	}
}

/* llm_stat_engine_internal(): the raw counters, one row per loaded model (or one engine row). */
Datum
llm_stat_engine_internal(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	EngineStatus st;
	ListCell   *lc;
	Datum		values[ALL_COLS];
	bool		nulls[ALL_COLS];
	int			rows = 0;

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	EngineStatusFetch(&st, false);
	memset(nulls, 0, sizeof(nulls));
	engine_columns(&st, values, nulls);
	foreach(lc, st.models)
	{
		StatModel  *m = lfirst(lc);

		/* a model known only by its request counters is not loaded: llm_stat_models shows it */
		if (!m->loaded && !m->has_sched)
			continue;
		values[0] = CStringGetTextDatum(m->name);
		values[1] = m->path ? CStringGetTextDatum(m->path) : (Datum) 0;
		nulls[0] = false;
		nulls[1] = m->path == NULL;
		values[2] = Int64GetDatum(m->refs);
		nulls[2] = false;
		for (int i = 0; i < STAT_SCHED_FIELDS; i++)
		{
			values[3 + i] = Int64GetDatum(m->sched[i]);
			nulls[3 + i] = !m->has_sched;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		rows++;
	}
	if (rows == 0)
	{
		for (int i = 0; i < MODEL_COLS; i++)
			nulls[i] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
