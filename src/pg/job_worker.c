/*
 * job_worker.c — the background worker that runs one database's table jobs.
 *
 * Each step takes the running job that waited longest and does one batch of
 * it in ONE transaction: read the next rows after the job's last_id (in id
 * order), generate their prompts concurrently on one engine connection,
 * write every output to the target (UPDATE by id, else INSERT), record
 * per-row failures, and advance last_id and the counters.  Whatever stops
 * the batch midway (the engine killed, Postgres crashing, the worker
 * terminated) rolls all of it back, and the batch is done again from the
 * same last_id: no row is lost, none is written twice.
 *
 * The job's SQL (source, prompt expression, writes) runs as the job's
 * owner, with the owner's search_path, as a security-restricted operation;
 * the worker's own bookkeeping runs as the bootstrap superuser with
 * search_path pg_catalog, so nothing the owner defines can run with the
 * worker's privileges.  A per-row failure (the engine refused the prompt,
 * the target refused the value) is recorded and the job goes on; an error
 * of the job itself (the source table dropped, a privilege revoked) marks
 * the job failed; a lost engine makes the worker wait and retry.
 */
#include "llamagpu.h"

#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "parser/parse_type.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/wait_event.h"

#define RETRY_MIN_MS		1000	/* first wait after a transient failure */
#define RETRY_MAX_MS		30000	/* the wait doubles up to this */

typedef enum JobStep
{
	JOB_STEP_IDLE,				/* no job to run */
	JOB_STEP_WORKED,			/* did a batch (or ended a job) */
	JOB_STEP_WAIT				/* the engine is not there: wait, then retry */
} JobStep;

/* A job row, as the worker reads it. */
typedef struct Job
{
	int64		id;
	char	   *name;
	Oid			owner;
	char	   *source_sql;
	char	   *id_column;
	char	   *id_type;
	char	   *prompt;
	char	   *target_table;
	char	   *target_column;
	char	   *target_type;
	char	   *model;
	Jsonb	   *options;
	char	   *search_path;
	char	   *last_id;		/* NULL: none yet */
	bool		started;
} Job;

/* What became of one row of a batch. */
typedef struct JobRow
{
	char	   *row_id;
	int			sqlstate;		/* 0: written */
	char	   *error;
} JobRow;

static LlamagpuJobSlot *my_slot = NULL;
static bool embedding_turn = false;	/* this step tries the embedding jobs first */

/* Take the slot of our database; false if another worker runs it. */
static bool
claim_slot(Oid dboid)
{
	LlamagpuJobSlot *slot = NULL;
	bool		ok = true;

	SpinLockAcquire(&llamagpu_shared->mutex);
	for (int i = 0; i < LLAMAGPU_MAX_JOB_WORKERS; i++)
		if (llamagpu_shared->jobs[i].dboid == dboid)
			slot = &llamagpu_shared->jobs[i];
	if (slot && slot->pid > 0 && slot->pid != MyProcPid && kill(slot->pid, 0) == 0)
		ok = false;
	if (ok && slot == NULL)
	{
		for (int i = 0; i < LLAMAGPU_MAX_JOB_WORKERS && slot == NULL; i++)
			if (llamagpu_shared->jobs[i].dboid == InvalidOid)
				slot = &llamagpu_shared->jobs[i];
		if (slot)
		{
			memset(slot, 0, sizeof(*slot));
			slot->dboid = dboid;
		}
		else
			ok = false;
	}
	if (ok)
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		my_slot = slot;
	}
	SpinLockRelease(&llamagpu_shared->mutex);
	return ok;
}

/* On exit: free the slot, so that the next create starts a new worker. */
static void
release_slot(int code, Datum arg)
{
	SpinLockAcquire(&llamagpu_shared->mutex);
	if (my_slot && my_slot->pid == MyProcPid)
		memset(my_slot, 0, sizeof(*my_slot));
	my_slot = NULL;
	SpinLockRelease(&llamagpu_shared->mutex);
}

/* Set search_path for the rest of the transaction. */
static void
set_search_path(const char *path)
{
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/* Run sql (must succeed) with text/oid/int8/jsonb arguments. */
static void
spi_run(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			ret = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (ret != expect)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/* A column of the first SPI result row as a string copied to cxt, or NULL. */
static char *
spi_value(int col, MemoryContext cxt)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? MemoryContextStrdup(cxt, v) : NULL;
}

/* The running job that waited longest, or NULL. */
static Job *
pick_job(void)
{
	Job		   *job;
	bool		isnull;
	Datum		d;
	int			ret;

	ret = SPI_execute("SELECT pg_catalog.to_regclass('llamagpu.llm_jobs') IS NOT NULL", true, 1);
	if (ret != SPI_OK_SELECT ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return NULL;			/* the extension was dropped */
	ret = SPI_execute("SELECT id, name, owner, source_sql, id_column, id_type, prompt, "
					  " target_table, target_column, target_type, model, options, search_path, "
					  " last_id, started_at IS NOT NULL "
					  "FROM llamagpu.llm_jobs WHERE state = 'running' "
					  "ORDER BY updated_at NULLS FIRST, id LIMIT 1", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return NULL;

	job = palloc0(sizeof(Job));
	job->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	job->name = spi_value(2, CurrentMemoryContext);
	job->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	job->source_sql = spi_value(4, CurrentMemoryContext);
	job->id_column = spi_value(5, CurrentMemoryContext);
	job->id_type = spi_value(6, CurrentMemoryContext);
	job->prompt = spi_value(7, CurrentMemoryContext);
	job->target_table = spi_value(8, CurrentMemoryContext);
	job->target_column = spi_value(9, CurrentMemoryContext);
	job->target_type = spi_value(10, CurrentMemoryContext);
	job->model = spi_value(11, CurrentMemoryContext);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 12, &isnull);
	job->options = isnull ? NULL : DatumGetJsonbPCopy(d);
	job->search_path = spi_value(13, CurrentMemoryContext);
	job->last_id = spi_value(14, CurrentMemoryContext);
	job->started = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 15, &isnull));
	return job;
}

/*
 * Write one output to the target, in a subtransaction: false (and
 * row->error) if refused.  The text goes through the target type's input
 * function and then an assignment, as an INSERT of a literal would: a value
 * too long for varchar(n) is an error, not silently cut as a cast would.
 */
static bool
write_row(SPIPlanPtr update, SPIPlanPtr insert, Oid typinput, Oid typioparam,
		  JobRow *row, BatchItem *item)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Datum		values[2];
	bool		ok = true;

	values[0] = CStringGetTextDatum(row->row_id);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		int			ret;

		values[1] = OidInputFunctionCall(typinput,
										 text_to_cstring(LlamagpuTextFromUtf8(item->output.data,
																			  item->output.len)),
										 typioparam, -1);
		ret = SPI_execute_plan(update, values, NULL, false, 0);

		if (ret == SPI_OK_UPDATE && SPI_processed == 0)
			ret = SPI_execute_plan(insert, values, NULL, false, 0);
		if (ret < 0)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* an interrupt is not the row's fault */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		row->sqlstate = edata->sqlerrcode;
		row->error = pstrdup(edata->message);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Do one batch of job (see the file comment); in a transaction, SPI connected. */
static void
run_batch(Job *job)
{
	GenerateArgs args;
	GenerateRequest req;
	int			batch_size;
	int64		total = -1;
	char	   *sql;
	const char *idq = quote_identifier(job->id_column);
	Oid			types[9];
	Datum		values[9];
	char		nulls[9];
	int			n;
	BatchItem  *items;
	JobRow	   *rows;
	int64		done = 0;
	int64		failed = 0;
	int64		tokens = 0;
	char	   *last_error = NULL;
	Oid			save_userid;
	int			save_sec;
	SPIPlanPtr	update;
	SPIPlanPtr	insert;
	Oid			target_type;
	int32		target_typmod;
	Oid			typinput;
	Oid			typioparam;
	int			ret;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that created job \"%s\" no longer exists", job->name)));
	LlamagpuJobMarkerWrite(MyDatabaseId);

	/* from here to the writes: the owner's SQL, as the owner */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	set_search_path(job->search_path);
	SetUserIdAndSecContext(job->owner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);

	JobOptionsToArgs(job->options, job->model, &args, &batch_size);
	GenerateRequestBuild(&args, &req);
	req.kind = "job";
	/* a step must fit the owner's rate limit, or it would wait forever */
	batch_size = Min(batch_size, LlamagpuQuotaMaxRequests());

	if (!job->started)
	{
		bool		isnull;

		ret = SPI_execute(psprintf("SELECT count(*) FROM %s AS s WHERE s.%s IS NOT NULL",
								   job->source_sql, idq), true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
		total = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* the next rows in id order (a row without an id cannot be written back) */
	sql = psprintf("SELECT s.%s::text, (%s)::text FROM %s AS s WHERE s.%s IS NOT NULL %s ORDER BY s.%s LIMIT %d",
				   idq, job->prompt, job->source_sql, idq,
				   job->last_id ? psprintf("AND s.%s > CAST($1 AS %s)", idq, job->id_type) : "",
				   idq, batch_size);
	types[0] = TEXTOID;
	values[0] = job->last_id ? CStringGetTextDatum(job->last_id) : (Datum) 0;
	ret = SPI_execute_with_args(sql, job->last_id ? 1 : 0, types, values, NULL, true, batch_size);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	n = (int) SPI_processed;
	items = palloc0(sizeof(BatchItem) * Max(n, 1));
	rows = palloc0(sizeof(JobRow) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		char	   *prompt = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		rows[i].row_id = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		if (prompt == NULL)
		{
			rows[i].sqlstate = ERRCODE_NULL_VALUE_NOT_ALLOWED;
			rows[i].error = "prompt is null";
		}
		else if (prompt[0] == '\0')
		{
			rows[i].sqlstate = ERRCODE_ZERO_LENGTH_CHARACTER_STRING;
			rows[i].error = "prompt is empty";
		}
		else
			items[i].prompt = LlamagpuUtf8FromText(cstring_to_text(prompt));
	}

	if (n > 0)
	{
		/* generate; a lost engine raises here and the whole batch is redone */
		GenerateBatchRun(&req, items, n, Min(batch_size, GenerateBatchWindow()), false, "row");

		/* the output as a value of the target column's type (typmod applied on assignment) */
		parseTypeString(job->target_type, &target_type, &target_typmod, false);
		getTypeInputInfo(target_type, &typinput, &typioparam);
		types[0] = TEXTOID;
		types[1] = target_type;
		update = SPI_prepare(psprintf("UPDATE %s SET %s = $2 WHERE %s = CAST($1 AS %s)",
									  job->target_table, quote_identifier(job->target_column),
									  idq, job->id_type), 2, types);
		insert = SPI_prepare(psprintf("INSERT INTO %s (%s, %s) VALUES (CAST($1 AS %s), $2)",
									  job->target_table, idq, quote_identifier(job->target_column),
									  job->id_type), 2, types);
		if (update == NULL || insert == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		for (int i = 0; i < n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (rows[i].sqlstate != 0)
				continue;
			if (items[i].state == BATCH_ITEM_FAILED)
				rows[i].error = EngineGenerateErrorText(&items[i].error, req.constrained, &rows[i].sqlstate);
			else if (items[i].state == BATCH_ITEM_DONE && req.json &&
					 !GenerateOutputIsWholeJson(items[i].output.data, items[i].output.len))
			{
				/* cut short by max_tokens: never write half a value, even to a text column */
				rows[i].sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
				rows[i].error = "generated JSON value is incomplete (raise max_tokens)";
			}
			else if (items[i].state == BATCH_ITEM_DONE &&
					 write_row(update, insert, typinput, typioparam, &rows[i], &items[i]))
				tokens += items[i].n_gen;
		}
	}
	SetUserIdAndSecContext(save_userid, save_sec);
	set_search_path("pg_catalog, pg_temp");

	/* the bookkeeping, in the same transaction as the writes */
	for (int i = 0; i < n; i++)
	{
		if (rows[i].sqlstate == 0)
		{
			done++;
			continue;
		}
		failed++;
		last_error = psprintf("row %s: %s", rows[i].row_id, rows[i].error);
		types[0] = INT8OID;
		types[1] = TEXTOID;
		types[2] = OIDOID;
		types[3] = TEXTOID;
		types[4] = TEXTOID;
		types[5] = TEXTOID;
		values[0] = Int64GetDatum(job->id);
		values[1] = CStringGetTextDatum(job->name);
		values[2] = ObjectIdGetDatum(job->owner);
		values[3] = CStringGetTextDatum(rows[i].row_id);
		values[4] = CStringGetTextDatum(unpack_sql_state(rows[i].sqlstate));
		values[5] = CStringGetTextDatum(rows[i].error);
		spi_run("INSERT INTO llamagpu.llm_job_failures (job_id, job, owner, row_id, sqlstate, error) "
				"VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, row_id) DO UPDATE "
				"SET sqlstate = EXCLUDED.sqlstate, error = EXCLUDED.error, failed_at = now()",
				6, types, values, NULL, SPI_OK_INSERT);
	}

	types[0] = INT8OID;
	types[1] = TEXTOID;
	types[2] = INT8OID;
	types[3] = INT8OID;
	types[4] = INT8OID;
	types[5] = INT8OID;
	types[6] = TEXTOID;
	types[7] = TEXTOID;
	types[8] = BOOLOID;
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(job->id);
	values[1] = n > 0 ? CStringGetTextDatum(rows[n - 1].row_id) : (Datum) 0;
	nulls[1] = n > 0 ? ' ' : 'n';
	values[2] = Int64GetDatum(done);
	values[3] = Int64GetDatum(failed);
	values[4] = Int64GetDatum(tokens);
	values[5] = Int64GetDatum(total);
	values[6] = last_error ? CStringGetTextDatum(last_error) : (Datum) 0;
	nulls[6] = last_error ? ' ' : 'n';
	values[7] = job->last_id ? CStringGetTextDatum(job->last_id) : (Datum) 0;
	nulls[7] = job->last_id ? ' ' : 'n';
	values[8] = BoolGetDatum(n == 0);
	/* last_id guards against another worker having done this batch meanwhile */
	ret = SPI_execute_with_args("UPDATE llamagpu.llm_jobs SET "
								" last_id = coalesce($2, last_id), "
								" rows_done = rows_done + $3, rows_failed = rows_failed + $4, "
								" tokens = tokens + $5, "
								" rows_total = CASE WHEN $6 >= 0 THEN $6 ELSE rows_total END, "
								" started_at = coalesce(started_at, now()), updated_at = clock_timestamp(), "
								" last_error = coalesce($7, last_error), "
								" state = CASE WHEN $9 AND state = 'running' THEN 'done' ELSE state END, "
								" finished_at = CASE WHEN $9 AND state = 'running' THEN clock_timestamp() "
								"                    ELSE finished_at END "
								"WHERE id = $1 AND last_id IS NOT DISTINCT FROM $8",
								9, types, values, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("progress of llamagpu job \"%s\" changed concurrently", job->name)));
}

/* Errors after which the batch is simply tried again. */
static bool
error_is_transient(int sqlstate)
{
	return sqlstate == ERRCODE_SYSTEM_ERROR ||	/* the engine died mid-batch */
		sqlstate == ERRCODE_CANNOT_CONNECT_NOW ||	/* the engine is not up (yet) */
		sqlstate == ERRCODE_QUERY_CANCELED ||
		sqlstate == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlstate == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlstate == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlstate == ERRCODE_INSUFFICIENT_RESOURCES ||
		sqlstate == ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;	/* the owner's quota: wait */
}

/* Note an error on the job in a transaction of its own; fail the job if fatal. */
static void
note_job_error(int64 job_id, const char *message, bool fatal)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			types[3] = {INT8OID, TEXTOID, BOOLOID};
	Datum		values[3];

	values[0] = Int64GetDatum(job_id);
	values[1] = CStringGetTextDatum(message);
	values[2] = BoolGetDatum(fatal);
	PG_TRY();
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		set_search_path("pg_catalog, pg_temp");
		spi_run("UPDATE llamagpu.llm_jobs SET last_error = $2, updated_at = clock_timestamp(), "
				" state = CASE WHEN $3 AND state = 'running' THEN 'failed' ELSE state END, "
				" finished_at = CASE WHEN $3 AND state = 'running' THEN clock_timestamp() ELSE finished_at END "
				"WHERE id = $1",
				3, types, values, NULL, SPI_OK_UPDATE);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
}

/* One step: a batch of the next job, in a transaction; errors end here. */
static JobStep
run_step(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile JobStep result = JOB_STEP_WORKED;
	volatile int64 job_id = 0;
	char	   *volatile job_name = NULL;

	PG_TRY();
	{
		Job		   *job;
		EmbeddingStep embedding;

		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		set_search_path("pg_catalog, pg_temp");
		/* table jobs and embedding jobs (embedding_jobs.c) take turns */
		embedding_turn = !embedding_turn;
		job_name = MemoryContextStrdup(cxt, "(embedding)");
		embedding = embedding_turn ? EmbeddingJobStep() : EMBEDDING_STEP_NONE;
		if (embedding == EMBEDDING_STEP_WORKED)
			;
		else if ((job = pick_job()) == NULL)
		{
			if (!embedding_turn)
				embedding = EmbeddingJobStep();
			if (embedding == EMBEDDING_STEP_NONE)
				result = JOB_STEP_IDLE;
			else if (embedding == EMBEDDING_STEP_BLOCKED)
				result = JOB_STEP_WAIT;
		}
		else
		{
			job_id = job->id;
			job_name = MemoryContextStrdup(cxt, job->name);
			pgstat_report_activity(STATE_RUNNING, psprintf("llamagpu job %s", job->name));
			run_batch(job);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		bool		transient;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		transient = error_is_transient(edata->sqlerrcode);
		ereport(transient ? LOG : WARNING,
				(errmsg("llamagpu job \"%s\": %s", job_name ? job_name : "?", edata->message),
				 transient ? errdetail("The batch will be done again.") : 0));
		if (job_id != 0)
			note_job_error(job_id, edata->message, !transient);
		result = transient || job_id == 0 ? JOB_STEP_WAIT : JOB_STEP_WORKED;
	}
	PG_END_TRY();
	return result;
}

/* The job worker's main loop (see the file comment). */
void
llamagpu_job_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext loop_cxt;
	int			retry_ms = RETRY_MIN_MS;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (llamagpu_shared == NULL)
		LlamagpuShmemInit();
	if (!claim_slot(dboid))
		proc_exit(0);
	before_shmem_exit(release_slot, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("llamagpu job worker");

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "llamagpu job worker",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		uint64		seen;
		JobStep		step;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		SpinLockAcquire(&llamagpu_shared->mutex);
		seen = my_slot->requests;
		SpinLockRelease(&llamagpu_shared->mutex);

		step = run_step();
		if (step == JOB_STEP_IDLE)
		{
			char		path[MAXPGPATH];
			bool		exit_now;

			/* no job left: exit, unless a create or resume came meanwhile */
			LlamagpuJobMarkerPath(dboid, path, sizeof(path));
			(void) unlink(path);
			SpinLockAcquire(&llamagpu_shared->mutex);
			exit_now = my_slot->requests == seen;
			if (exit_now)
			{
				memset(my_slot, 0, sizeof(*my_slot));
				my_slot = NULL;
			}
			SpinLockRelease(&llamagpu_shared->mutex);
			if (exit_now)
				proc_exit(0);
			LlamagpuJobMarkerWrite(dboid);
		}
		else if (step == JOB_STEP_WAIT)
		{
			/* the engine is away: wait longer each time, so a long outage does not flood the log */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 retry_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			retry_ms = Min(retry_ms * 2, RETRY_MAX_MS);
		}
		else
			retry_ms = RETRY_MIN_MS;
	}
}
