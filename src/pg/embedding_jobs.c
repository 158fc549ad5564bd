/*
 * embedding_jobs.c — the job worker's side of embedding jobs
 * (llm_embedding_job_create, sql/install/70_embed.sql): one batch of queued
 * rows per step, in the worker's transaction.
 *
 * A step locks the oldest pending queue entries of the job that waited
 * longest (SKIP LOCKED), reads their rows' source text as the job's owner
 * (locking the rows, SKIP LOCKED: a row being changed right now waits for
 * the next batch, and its change cannot slip in between the read and the
 * write), embeds the texts in one engine request, writes the targets, and
 * marks the entries done (or deletes them) — all in the transaction the
 * worker commits, so after a crash or a killed engine a batch is either
 * wholly done or wholly to do: no row lost, none embedded twice.
 *
 * An error that may pass (the engine gone, busy) rolls the step back and the
 * worker retries; an input the engine refuses (too long without truncate)
 * fails that row only (the batch is redone row by row), recorded in its
 * queue entry until its source changes; any other error fails the job,
 * recorded in llm_embedding_jobs.last_error.
 */
#include "llamagpu.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(llm_embedding_model_check);
PG_FUNCTION_INFO_V1(llm_embedding_wake);

/* An embedding job, as the worker reads it. */
typedef struct EmbeddingJob
{
	int64		id;
	Oid			owner;
	char	   *table_name;
	char	   *id_column;
	char	   *id_type;
	char	   *source;
	char	   *target_column;
	char	   *target_type;
	char	   *model;
	bool		normalize;
	bool		truncate;
	int			batch_size;
	bool		keep_done;
	char	   *search_path;
	bool		progressed;		/* the batch did (or failed) some row */
} EmbeddingJob;

/* One queue entry of a batch. */
typedef struct EmbeddingRow
{
	int64		seq;
	char	   *row_id;
	bool		found;			/* the row was read (locked) */
	bool		gone;			/* the row no longer exists */
	char	   *text;			/* its source; NULL: none (the target becomes NULL) */
	int			input;			/* index among the batch's inputs, or -1 */
	float	   *vector;			/* [n_embd], or NULL */
	int			n_embd;
	int32		n_tokens;
	char	   *error;			/* the engine refused it */
} EmbeddingRow;

/* llm_embedding_model_check(model): the model name (default resolved), checked for the caller. */
Datum
llm_embedding_model_check(PG_FUNCTION_ARGS)
{
	LlamagpuModel *m = LlamagpuModelLookup(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)), true);

	PG_RETURN_TEXT_P(cstring_to_text(m->name));
}

/* llm_embedding_wake(): start (or wake) the job worker when this transaction commits. */
Datum
llm_embedding_wake(PG_FUNCTION_ARGS)
{
	LlamagpuJobWakeAtCommit();
	PG_RETURN_VOID();
}

/* Set search_path for the rest of the transaction. */
static void
set_path(const char *path)
{
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

/* Errors after which the step is simply tried again. */
static bool
transient(int sqlstate)
{
	return sqlstate == ERRCODE_SYSTEM_ERROR ||	/* the engine died mid-batch */
		sqlstate == ERRCODE_CANNOT_CONNECT_NOW ||
		sqlstate == ERRCODE_QUERY_CANCELED ||
		sqlstate == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlstate == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlstate == ERRCODE_LOCK_NOT_AVAILABLE ||
		sqlstate == ERRCODE_INSUFFICIENT_RESOURCES ||
		sqlstate == ERRCODE_CONFIGURATION_LIMIT_EXCEEDED ||	/* a quota: later */
		sqlstate == ERRCODE_ADMIN_SHUTDOWN;
}

/* Column col of SPI row i as a palloc'd string, or NULL. */
static char *
spi_text(int i, int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, col);

	return v ? pstrdup(v) : NULL;
}

/* The running job with pending rows that waited longest, or NULL. */
static EmbeddingJob *
pick_job(void)
{
	EmbeddingJob *job;
	bool		isnull;
	int			ret;

	ret = SPI_execute("SELECT pg_catalog.to_regclass('llamagpu.llm_embedding_queue') IS NOT NULL", true, 1);
	if (ret != SPI_OK_SELECT ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return NULL;			/* the extension was dropped, or is older */
	ret = SPI_execute("SELECT j.id, j.owner, j.table_name, j.id_column, j.id_type, j.source, j.target_column, "
					  " j.target_type, j.model, j.\"normalize\", j.truncate, j.batch_size, j.keep_done, j.search_path "
					  "FROM llamagpu.llm_embedding_jobs j WHERE j.state = 'running' AND EXISTS "
					  " (SELECT FROM llamagpu.llm_embedding_queue q WHERE q.job_id = j.id "
					  "  AND q.done_at IS NULL AND q.error IS NULL) "
					  "ORDER BY j.updated_at NULLS FIRST, j.id LIMIT 1", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return NULL;
	job = palloc0(sizeof(EmbeddingJob));
	job->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	job->owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	job->table_name = spi_text(0, 3);
	job->id_column = spi_text(0, 4);
	job->id_type = spi_text(0, 5);
	job->source = spi_text(0, 6);
	job->target_column = spi_text(0, 7);
	job->target_type = spi_text(0, 8);
	job->model = spi_text(0, 9);
	job->normalize = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 10, &isnull));
	job->truncate = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 11, &isnull));
	job->batch_size = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 12, &isnull));
	job->keep_done = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 13, &isnull));
	job->search_path = spi_text(0, 14);
	return job;
}

/* The row ids of rows[0..n) as a text[] datum. */
static Datum
row_id_array(EmbeddingRow *rows, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(rows[i].row_id);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* The row of rows[0..n) with row_id id, or NULL. */
static EmbeddingRow *
find_row(EmbeddingRow *rows, int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (strcmp(rows[i].row_id, id) == 0)
			return &rows[i];
	return NULL;
}

/*
 * Run fn(arg) in a subtransaction; NULL when it succeeded, else its error
 * (transient errors are thrown on).
 */
static ErrorData *
try_subxact(void (*fn) (void *), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (transient(edata->sqlerrcode))
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

/* What embed_inputs works on. */
typedef struct EmbedCall
{
	EmbeddingJob *job;
	LlamagpuModel *model;
	const char **inputs;
	int			n;
	EmbedResult res;
} EmbedCall;

/* Embed a call's inputs (for try_subxact). */
static void
embed_inputs(void *arg)
{
	EmbedCall  *c = arg;

	EmbedRun(c->model, c->inputs, c->n, c->job->normalize, c->job->truncate, "embed_job", &c->res);
}

/* Read, embed and write one batch of job as its owner; fills rows. */
static void
embed_rows(EmbeddingJob *job, EmbeddingRow *rows, int n)
{
	const char *idq = quote_identifier(job->id_column);
	Oid			types[2] = {TEXTARRAYOID, InvalidOid};
	Datum		values[2];
	EmbedCall	call = {0};
	bool		is_array = strcmp(job->target_type, "real[]") == 0;
	SPIPlanPtr	update;
	int			ret;

	/* the rows, locked; one being changed now is left for the next batch */
	values[0] = row_id_array(rows, n);
	ret = SPI_execute_with_args(psprintf("SELECT t.%s::text, (%s)::text FROM %s AS t "
										 "WHERE t.%s = ANY (CAST($1 AS %s[])) FOR NO KEY UPDATE OF t SKIP LOCKED",
										 idq, job->source, job->table_name, idq, job->id_type),
								1, types, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	call.inputs = palloc(sizeof(char *) * n);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		EmbeddingRow *r = find_row(rows, n, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));

		if (r == NULL)
			continue;
		r->found = true;
		r->text = spi_text(i, 2);
		/* no text (NULL or empty): no embedding */
		if (r->text && r->text[0] == '\0')
			r->text = NULL;
	}
	/* those not read: gone, or locked */
	ret = SPI_execute_with_args(psprintf("SELECT t.%s::text FROM %s AS t WHERE t.%s = ANY (CAST($1 AS %s[]))",
										 idq, job->table_name, idq, job->id_type),
								1, types, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	for (int i = 0; i < n; i++)
		rows[i].gone = !rows[i].found;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		EmbeddingRow *r = find_row(rows, n, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));

		if (r)
			r->gone = false;
	}
	for (int i = 0; i < n; i++)
	{
		rows[i].input = -1;
		if (rows[i].found && rows[i].text)
		{
			rows[i].input = call.n;
			call.inputs[call.n++] = LlamagpuUtf8FromText(cstring_to_text(rows[i].text));
		}
	}

	/* embed: the batch at once; if the engine refuses an input, row by row */
	call.job = job;
	call.model = LlamagpuModelLookup(job->model, true);
	if (call.n > 0 && try_subxact(embed_inputs, &call) != NULL)
	{
		for (int i = 0; i < n; i++)
		{
			EmbedCall	one = call;
			ErrorData  *e;

			if (rows[i].input < 0)
				continue;
			one.inputs = &call.inputs[rows[i].input];
			one.n = 1;
			e = try_subxact(embed_inputs, &one);
			if (e)
			{
				rows[i].error = e->detail ? psprintf("%s: %s", e->message, e->detail) : e->message;
				rows[i].input = -1;
				continue;
			}
			rows[i].vector = one.res.vectors;
			rows[i].n_embd = one.res.n_embd;
			rows[i].n_tokens = one.res.n_tokens[0];
		}
	}
	else
		for (int i = 0; i < n; i++)
			if (rows[i].input >= 0)
			{
				rows[i].vector = call.res.vectors + (size_t) rows[i].input * call.res.n_embd;
				rows[i].n_embd = call.res.n_embd;
				rows[i].n_tokens = call.res.n_tokens[rows[i].input];
			}

	/* write the targets (rows without text get NULL) */
	types[0] = TEXTOID;
	types[1] = FLOAT4ARRAYOID;
	update = SPI_prepare(psprintf("UPDATE %s AS t SET %s = %s WHERE t.%s = CAST($1 AS %s)",
								  job->table_name, quote_identifier(job->target_column),
								  is_array ? "$2" :
								  psprintf("CAST('[' || pg_catalog.array_to_string($2, ',') || ']' AS %s)",
										   job->target_type),
								  idq, job->id_type), 2, types);
	if (update == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	for (int i = 0; i < n; i++)
	{
		char		nulls[2] = {' ', ' '};

		if (!rows[i].found || rows[i].error)
			continue;
		if (rows[i].vector == NULL)
			nulls[1] = 'n';
		else
			values[1] = PointerGetDatum(EmbedVectorArray(rows[i].vector, rows[i].n_embd));
		values[0] = CStringGetTextDatum(rows[i].row_id);
		ret = SPI_execute_plan(update, values, nulls, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
}

/* Do one batch of job (see the file comment); in the worker's transaction, SPI connected. */
static void
embed_batch(EmbeddingJob *job)
{
	Oid			types[5] = {INT8OID, INT4OID};
	Datum		values[5];
	char		nulls[5];
	EmbeddingRow *rows;
	int			n;
	int64		done = 0;
	int64		failed = 0;
	int64		tokens = 0;
	char	   *last_error = NULL;
	Oid			save_userid;
	int			save_sec;
	int			ret;

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that created embedding job %lld no longer exists", (long long) job->id)));
	LlamagpuJobMarkerWrite(MyDatabaseId);

	/* the oldest pending entries, locked */
	values[0] = Int64GetDatum(job->id);
	values[1] = Int32GetDatum(job->batch_size);
	ret = SPI_execute_with_args("SELECT q.seq, q.row_id FROM llamagpu.llm_embedding_queue q "
								"WHERE q.job_id = $1 AND q.done_at IS NULL AND q.error IS NULL "
								"ORDER BY q.seq LIMIT $2 FOR UPDATE SKIP LOCKED",
								2, types, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	n = (int) SPI_processed;
	rows = palloc0(sizeof(EmbeddingRow) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		rows[i].seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		rows[i].row_id = spi_text(i, 2);
	}

	if (n > 0)
	{
		/* the owner's SQL, as the owner */
		GetUserIdAndSecContext(&save_userid, &save_sec);
		set_path(job->search_path);
		SetUserIdAndSecContext(job->owner,
							   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
		embed_rows(job, rows, n);
		SetUserIdAndSecContext(save_userid, save_sec);
		set_path("pg_catalog, pg_temp");
	}

	/* the bookkeeping, in the same transaction as the writes */
	for (int i = 0; i < n; i++)
	{
		EmbeddingRow *r = &rows[i];

		memset(nulls, ' ', sizeof(nulls));
		values[0] = Int64GetDatum(r->seq);
		if (r->error)
		{
			failed++;
			last_error = psprintf("row %s: %s", r->row_id, r->error);
			types[1] = TEXTOID;
			values[1] = CStringGetTextDatum(r->error);
			ret = SPI_execute_with_args("UPDATE llamagpu.llm_embedding_queue SET error = $2, "
										" failed_at = clock_timestamp() WHERE seq = $1",
										2, types, values, NULL, false, 0);
		}
		else if (!r->found && !r->gone)
			continue;			/* locked by someone changing it: the next batch */
		else if (job->keep_done)
		{
			done++;
			tokens += r->n_tokens;
			types[1] = TEXTOID;
			types[2] = INT4OID;
			values[1] = r->text ? CStringGetTextDatum(r->text) : (Datum) 0;
			nulls[1] = r->text ? ' ' : 'n';
			values[2] = Int32GetDatum(r->n_tokens);
			nulls[2] = r->vector ? ' ' : 'n';
			ret = SPI_execute_with_args("UPDATE llamagpu.llm_embedding_queue SET done_at = clock_timestamp(), "
										" source_md5 = pg_catalog.md5($2), n_tokens = $3 WHERE seq = $1",
										3, types, values, nulls, false, 0);
		}
		else
		{
			done++;
			tokens += r->n_tokens;
			ret = SPI_execute_with_args("DELETE FROM llamagpu.llm_embedding_queue WHERE seq = $1",
										1, types, values, NULL, false, 0);
		}
		if (ret != SPI_OK_UPDATE && ret != SPI_OK_DELETE)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	}
	types[1] = INT8OID;
	types[2] = INT8OID;
	types[3] = INT8OID;
	types[4] = TEXTOID;
	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(job->id);
	values[1] = Int64GetDatum(done);
	values[2] = Int64GetDatum(failed);
	values[3] = Int64GetDatum(tokens);
	values[4] = last_error ? CStringGetTextDatum(last_error) : (Datum) 0;
	nulls[4] = last_error ? ' ' : 'n';
	job->progressed = done + failed > 0;
	ret = SPI_execute_with_args("UPDATE llamagpu.llm_embedding_jobs SET rows_done = rows_done + $2, "
								" rows_failed = rows_failed + $3, tokens = tokens + $4, batches = batches + 1, "
								" updated_at = clock_timestamp(), last_error = coalesce($5, last_error) "
								"WHERE id = $1",
								5, types, values, nulls, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

/* What embed_batch_subxact runs. */
static void
embed_batch_fn(void *arg)
{
	embed_batch((EmbeddingJob *) arg);
}

/*
 * One step of the embedding jobs (job_worker.c's loop): a batch of the job
 * that waited longest.  In the worker's transaction, SPI connected,
 * search_path pg_catalog; transient errors are thrown (the worker
 * retries), others fail the job.
 */
EmbeddingStep
EmbeddingJobStep(void)
{
	EmbeddingJob *job = pick_job();
	ErrorData  *e;

	if (job == NULL)
		return EMBEDDING_STEP_NONE;
	pgstat_report_activity(STATE_RUNNING, psprintf("llamagpu embedding job %lld", (long long) job->id));
	e = try_subxact(embed_batch_fn, job);
	if (e)
	{
		Oid			types[2] = {INT8OID, TEXTOID};
		Datum		values[2];
		int			ret;

		ereport(WARNING,
				(errmsg("llamagpu embedding job %lld failed: %s", (long long) job->id, e->message)));
		values[0] = Int64GetDatum(job->id);
		values[1] = CStringGetTextDatum(e->message);
		ret = SPI_execute_with_args("UPDATE llamagpu.llm_embedding_jobs SET state = 'failed', last_error = $2, "
									" updated_at = clock_timestamp() WHERE id = $1",
									2, types, values, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		return EMBEDDING_STEP_WORKED;
	}
	/* every pending row is locked by someone changing it: wait rather than spin */
	return job->progressed ? EMBEDDING_STEP_WORKED : EMBEDDING_STEP_BLOCKED;
}
