/*
 * stat_engine.c — llm_stat_engine: one row per model loaded in the engine,
 * with its scheduler counters from the STATUS `sched` lines.  An engine
 * that sends no `sched` line (before continuous batching) gives NULLs.
 */
#include "llamagpu.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(llm_stat_engine_internal);

#define SCHED_FIELDS	18		/* name and 17 counters, docs/protocol.md */
#define ENGINE_COLS		(3 + SCHED_FIELDS - 1)

typedef struct StatEngineModel
{
	char	   *name;
	char	   *path;
	int64		requests;
	bool		has_sched;
	int64		sched[SCHED_FIELDS - 1];
} StatEngineModel;

typedef struct StatEngineState
{
	List	   *models;			/* of StatEngineModel */
} StatEngineState;

/* Split a TAB-separated line into at most max fields; returns the count. */
static int
split_tabs(char *line, char **f, int max)
{
	int			n = 0;

	while (n < max)
	{
		f[n++] = line;
		line = strchr(line, '\t');
		if (line == NULL)
			break;
		*line++ = '\0';
	}
	return n;
}

/* The model entry called name, created if new. */
static StatEngineModel *
model_entry(StatEngineState *st, const char *name)
{
	ListCell   *lc;
	StatEngineModel *m;

	foreach(lc, st->models)
	{
		m = lfirst(lc);
		if (strcmp(m->name, name) == 0)
			return m;
	}
	m = palloc0(sizeof(StatEngineModel));
	m->name = pstrdup(name);
	st->models = lappend(st->models, m);
	return m;
}

/* One "model" field: name TAB path TAB requests. */
static void
add_model(const char *value, void *arg)
{
	char	   *f[3];
	int			n = split_tabs(pstrdup(value), f, 3);
	StatEngineModel *m = model_entry(arg, f[0]);

	if (n >= 2)
		m->path = pstrdup(f[1]);
	if (n >= 3)
		m->requests = strtoll(f[2], NULL, 10);
}

/* One "sched" field: name and the counters. */
static void
add_sched(const char *value, void *arg)
{
	char	   *f[SCHED_FIELDS];
	int			n = split_tabs(pstrdup(value), f, SCHED_FIELDS);
	StatEngineModel *m = model_entry(arg, f[0]);

	m->has_sched = true;
	/* counters a newer engine adds at the end are ignored; missing ones read 0 */
	for (int i = 1; i < SCHED_FIELDS; i++)
		m->sched[i - 1] = i < n ? strtoll(f[i], NULL, 10) : 0;
}

/* llm_stat_engine_internal(): the raw counters, one row per loaded model. */
Datum
llm_stat_engine_internal(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo;
	StatEngineState st = {NIL};
	EngineConn *conn;
	EngineFrame res;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	/* no engine, no models: do not wait for one to start */
	conn = EngineConnect(0, true);
	if (conn == NULL)
		return (Datum) 0;
	EngineCall(conn, LG_FRAME_STATUS, NULL, &res);
	EngineClose(conn);
	EngineFrameForEach(&res, "model", add_model, &st);
	EngineFrameForEach(&res, "sched", add_sched, &st);

	foreach(lc, st.models)
	{
		StatEngineModel *m = lfirst(lc);
		Datum		values[ENGINE_COLS];
		bool		nulls[ENGINE_COLS] = {0};

		values[0] = CStringGetTextDatum(m->name);
		values[1] = m->path ? CStringGetTextDatum(m->path) : (Datum) 0;
		nulls[1] = m->path == NULL;
		values[2] = Int64GetDatum(m->requests);
		for (int i = 0; i < SCHED_FIELDS - 1; i++)
		{
			values[3 + i] = Int64GetDatum(m->sched[i]);
			nulls[3 + i] = !m->has_sched;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
