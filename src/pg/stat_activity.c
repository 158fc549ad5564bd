/*
 * stat_activity.c — llm_stat_activity (the engine's requests in flight) and
 * llm_engine_status (the engine process, as the supervisor sees it).
 */
#include "llamagpu.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(llm_stat_activity_internal);
PG_FUNCTION_INFO_V1(llm_engine_status);

#define STAT_ACTIVITY_COLS 9

typedef struct StatActivityState
{
	ReturnSetInfo *rsinfo;
} StatActivityState;

/* One "request" field: seq pid role model state n_prompt n_gen start_us tps. */
static void
add_request_row(const char *value, void *arg)
{
	StatActivityState *st = arg;
	Datum		values[STAT_ACTIVITY_COLS];
	bool		nulls[STAT_ACTIVITY_COLS] = {0};
	char	   *copy = pstrdup(value);
	char	   *f[STAT_ACTIVITY_COLS];
	char	   *p = copy;
	int64		start_us;

	for (int i = 0; i < STAT_ACTIVITY_COLS; i++)
	{
		f[i] = p;
		p = strchr(p, '\t');
		if (p == NULL && i < STAT_ACTIVITY_COLS - 1)
			return;				/* malformed: skip */
		if (p)
			*p++ = '\0';
	}
	values[0] = Int64GetDatum(strtoll(f[0], NULL, 10));
	values[1] = Int32GetDatum(atoi(f[1]));
	values[2] = DirectFunctionCall1(namein, CStringGetDatum(f[2]));
	values[3] = CStringGetTextDatum(f[3]);
	values[4] = CStringGetTextDatum(f[4]);
	values[5] = Int32GetDatum(atoi(f[5]));
	values[6] = Int32GetDatum(atoi(f[6]));
	start_us = strtoll(f[7], NULL, 10);
	values[7] = TimestampTzGetDatum(start_us -
									((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY));
	values[8] = Float8GetDatum(strtod(f[8], NULL));
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
}

/* llm_stat_activity_internal(): the engine's STATUS, one row per generation. */
Datum
llm_stat_activity_internal(PG_FUNCTION_ARGS)
{
	StatActivityState st;
	EngineConn *conn;
	EngineFrame res;

	InitMaterializedSRF(fcinfo, 0);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	/* no engine, no requests: do not wait for one to start */
	conn = EngineConnect(0, true);
	if (conn == NULL)
		return (Datum) 0;
	EngineCall(conn, LG_FRAME_STATUS, NULL, &res);
	EngineClose(conn);
	EngineFrameForEach(&res, "request", add_request_row, &st);
	return (Datum) 0;
}

/* llm_engine_status(): pid, state, restarts, started_at, socket, supervisor_pid. */
Datum
llm_engine_status(PG_FUNCTION_ARGS)
{
	static const char *const states[] = {"stopped", "running", "restarting", "stopping"};
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	LlamagpuShared snap;

	if (llamagpu_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("llamagpu must be loaded via shared_preload_libraries"),
				 errhint("Add llamagpu to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SpinLockAcquire(&llamagpu_shared->mutex);
	snap = *llamagpu_shared;
	SpinLockRelease(&llamagpu_shared->mutex);

	values[0] = Int32GetDatum(snap.engine_pid);
	nulls[0] = snap.engine_pid == 0;
	values[1] = CStringGetTextDatum(states[snap.state]);
	values[2] = Int32GetDatum(snap.restarts);
	values[3] = TimestampTzGetDatum(snap.started_at);
	nulls[3] = snap.started_at == 0;
	values[4] = CStringGetTextDatum(LlamagpuSocketPath());
	values[5] = Int32GetDatum(snap.supervisor_pid);
	nulls[5] = snap.supervisor_pid == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
