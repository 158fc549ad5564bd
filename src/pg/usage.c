/*
 * usage.c — the usage record of every generation call, kept in a shared
 * buffer until the database's usage flusher (usage_worker.c) writes it to
 * llamagpu.llm_usage.
 *
 * The caller never writes the table itself: that would add a write to every
 * call, and the row would vanish when the caller's transaction rolls back,
 * which is exactly when an audit needs it.  Appending is a copy under an
 * LWLock.  The buffer has llamagpu.usage_buffer_size records; when it is
 * full (the flusher cannot keep up, or cannot start) the record is dropped
 * and counted: llm_stat_usage shows the count and the flusher logs it.
 */
#include "llamagpu.h"

#include "access/xlog.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/wait_event.h"

#include "usage.h"

PG_FUNCTION_INFO_V1(llm_usage_buffer);
PG_FUNCTION_INFO_V1(llm_usage_flush);

UsageShared *usage_shared = NULL;

/* Ask for the buffer's space and lock (shmem request hook). */
void
LlamagpuUsageShmemRequest(void)
{
	RequestAddinShmemSpace(LlamagpuUsageShmemSize());
	RequestNamedLWLockTranche("llamagpu_usage", 1);
}

/* Space for the buffer: the header, the records and the free list. */
Size
LlamagpuUsageShmemSize(void)
{
	Size		size = offsetof(UsageShared, records);

	size = add_size(size, mul_size(llamagpu_usage_buffer_size, sizeof(UsageRecord)));
	size = add_size(size, mul_size(llamagpu_usage_buffer_size, sizeof(int)));
	return MAXALIGN(size);
}

/* The free list follows the records. */
static int *
free_list(void)
{
	return (int *) &usage_shared->records[usage_shared->capacity];
}

/* Create or attach to the buffer (with AddinShmemInitLock held). */
void
LlamagpuUsageShmemInit(void)
{
	bool		found;

	usage_shared = ShmemInitStruct("llamagpu usage buffer", LlamagpuUsageShmemSize(), &found);
	if (!found)
	{
		memset(usage_shared, 0, offsetof(UsageShared, records));
		usage_shared->lock = &(GetNamedLWLockTranche("llamagpu_usage"))->lock;
		usage_shared->capacity = llamagpu_usage_buffer_size;
		for (int i = 0; i < usage_shared->capacity; i++)
		{
			usage_shared->records[i].used = false;
			free_list()[i] = usage_shared->capacity - 1 - i;
		}
		usage_shared->n_free = usage_shared->capacity;
	}
}

/* Append a finished call's record (see llamagpu.h). */
void
LlamagpuUsageAppend(LlamagpuUsageScope *scope, int64 prompt_tokens, int64 completion_tokens,
					int errors, int sqlstate, const char *status)
{
	UsageRecord *r;
	TimestampTz now = GetCurrentTimestamp();
	bool		standby;

	if (usage_shared == NULL)
		return;
	standby = RecoveryInProgress();
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	if (standby)
	{
		/* a standby cannot write llm_usage: counted, and the flusher is not started */
		usage_shared->dropped++;
		LWLockRelease(usage_shared->lock);
		return;
	}
	if (usage_shared->n_free == 0)
		usage_shared->dropped++;	/* the flusher logs it */
	else
	{
		r = &usage_shared->records[free_list()[--usage_shared->n_free]];
		r->used = true;
		r->seq = ++usage_shared->appended;
		r->dboid = MyDatabaseId;
		r->started = scope->started;
		r->finished = now;
		r->role = scope->role;
		r->role_name = scope->role_name;
		r->outer_role = scope->outer_role;
		r->outer_role_name = scope->outer_role_name;
		r->key_id = scope->key_id;
		r->key_name = scope->key_name;
		memcpy(r->model, scope->model, sizeof(r->model));
		memcpy(r->kind, scope->kind, sizeof(r->kind));
		strlcpy(r->status, status, sizeof(r->status));
		r->requests = scope->n_requests;
		r->errors = errors;
		r->prompt_tokens = prompt_tokens;
		r->completion_tokens = completion_tokens;
		r->sqlstate = sqlstate;
		r->pid = MyProcPid;
	}
	LWLockRelease(usage_shared->lock);
	/* a full buffer needs its flusher all the more */
	LlamagpuUsageWorkerEnsure(MyDatabaseId);
}

/* The call is over (see llamagpu.h). */
void
LlamagpuUsageFinish(LlamagpuUsageScope *scope, int64 prompt_tokens, int64 completion_tokens,
					int errors, int sqlstate)
{
	if (!scope->open)
		return;
	scope->open = false;
	LlamagpuQuotaChargeTokens(scope, prompt_tokens + completion_tokens);
	LlamagpuUsageAppend(scope, prompt_tokens, completion_tokens, errors, sqlstate,
						sqlstate == 0 ? "ok" : sqlstate == ERRCODE_QUERY_CANCELED ? "cancelled" : "error");
}

/* The same in a PG_CATCH block: the SQLSTATE is the error's being handled. */
void
LlamagpuUsageFinishError(LlamagpuUsageScope *scope, int64 prompt_tokens, int64 completion_tokens,
						 int errors)
{
	int			code = geterrcode();

	LlamagpuUsageFinish(scope, prompt_tokens, completion_tokens, errors,
						code != 0 ? code : ERRCODE_INTERNAL_ERROR);
}

/* Whether records of database dboid appended up to seq are still buffered. */
static bool
buffered_up_to(Oid dboid, uint64 seq)
{
	bool		found = false;

	LWLockAcquire(usage_shared->lock, LW_SHARED);
	for (int i = 0; i < usage_shared->capacity && !found; i++)
	{
		UsageRecord *r = &usage_shared->records[i];

		found = r->used && r->dboid == dboid && r->seq <= seq;
	}
	LWLockRelease(usage_shared->lock);
	return found;
}

/*
 * llm_usage_flush(timeout_ms int) RETURNS boolean: wait until the records
 * of this database appended before the call are in llm_usage (true), or the
 * timeout passed (false).  For tests and for reading one's own usage at once.
 */
Datum
llm_usage_flush(PG_FUNCTION_ARGS)
{
	int			timeout_ms = PG_ARGISNULL(0) ? 10000 : PG_GETARG_INT32(0);
	TimestampTz deadline;
	uint64		target;

	if (usage_shared == NULL)
		PG_RETURN_BOOL(true);
	if (timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must not be negative")));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	LWLockAcquire(usage_shared->lock, LW_SHARED);
	target = usage_shared->appended;
	LWLockRelease(usage_shared->lock);
	while (buffered_up_to(MyDatabaseId, target))
	{
		if (GetCurrentTimestamp() >= deadline)
			PG_RETURN_BOOL(false);
		LlamagpuUsageWorkerEnsure(MyDatabaseId);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_BOOL(true);
}

/*
 * llm_usage_buffer() RETURNS record: the buffer's size, what it holds, and
 * how many records were appended, written and dropped since the start.
 */
Datum
llm_usage_buffer(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	int			workers = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (usage_shared == NULL)
	{
		memset(values, 0, sizeof(values));
		for (int i = 0; i < 6; i++)
			nulls[i] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	LWLockAcquire(usage_shared->lock, LW_SHARED);
	for (int i = 0; i < LLAMAGPU_MAX_USAGE_WORKERS; i++)
		if (usage_shared->workers[i].dboid != InvalidOid && usage_shared->workers[i].pid != 0)
			workers++;
	values[0] = Int32GetDatum(usage_shared->capacity);
	values[1] = Int32GetDatum(usage_shared->capacity - usage_shared->n_free);
	values[2] = Int64GetDatum((int64) usage_shared->appended);
	values[3] = Int64GetDatum((int64) usage_shared->flushed);
	values[4] = Int64GetDatum((int64) usage_shared->dropped);
	values[5] = Int32GetDatum(workers);
	LWLockRelease(usage_shared->lock);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
