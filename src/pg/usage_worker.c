/*
 * usage_worker.c — the usage flusher: a background worker per database that
 * moves that database's records from the shared buffer (usage.c) into
 * llamagpu.llm_usage, and deletes rows older than llamagpu.usage_retention.
 *
 * It is started on demand by the first record of its database and exits
 * after a second without records, so it never keeps a database from being
 * dropped for long (DROP DATABASE waits five seconds for other sessions).
 * Records leave the buffer only after the transaction that wrote them
 * committed; a batch that cannot be written is tried three times, then
 * dropped, counted and logged, so one bad record cannot stop the flusher.
 * Retention runs when the flusher starts and every hour while it runs, so
 * it needs traffic: a database that generates nothing keeps its old rows
 * until it does.
 */
#include "llamagpu.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "usage.h"

#define FLUSH_BATCH			1000
#define START_GRACE_MS		5000	/* a worker not running this long after launch failed */
#define IDLE_EXIT_MS		1000
#define WAIT_MS				200
#define RETENTION_EVERY_MS	3600000
#define WRITE_TRIES			3

static UsageWorkerSlot *my_slot = NULL;

/* Register the flusher of a database. */
static bool
launch_worker(Oid dboid)
{
	BackgroundWorker worker;

	/* the next usage record relaunches it */
	LlamagpuWorkerInit(&worker, "llamagpu_usage_worker_main", "llamagpu usage flusher");
	snprintf(worker.bgw_name, BGW_MAXLEN, "llamagpu usage flusher for database %u", dboid);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	return RegisterDynamicBackgroundWorker(&worker, NULL);
}

/*
 * Wake the flusher of dboid, or launch one (see llamagpu.h).  A launch that
 * fails (no background worker slot) is tried again by a record appended
 * after START_GRACE_MS; the records wait in the buffer meanwhile.
 */
void
LlamagpuUsageWorkerEnsure(Oid dboid)
{
	UsageWorkerSlot *slot = NULL;
	Latch	   *latch = NULL;
	bool		launch = false;
	TimestampTz now = GetCurrentTimestamp();

	if (usage_shared == NULL)
		return;
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LLAMAGPU_MAX_USAGE_WORKERS; i++)
	{
		UsageWorkerSlot *s = &usage_shared->workers[i];

		if (s->dboid == dboid)
		{
			slot = s;
			break;
		}
		if (s->dboid == InvalidOid && slot == NULL)
			slot = s;
	}
	if (slot != NULL && slot->dboid == dboid)
	{
		if (slot->pid != 0)
			latch = slot->latch;
		else if (TimestampDifferenceExceeds(slot->launched_at, now, START_GRACE_MS))
		{
			slot->launched_at = now;
			launch = true;
		}
	}
	else if (slot != NULL)
	{
		slot->dboid = dboid;
		slot->pid = 0;
		slot->latch = NULL;
		slot->launched_at = now;
		launch = true;
	}
	LWLockRelease(usage_shared->lock);
	if (latch)
		SetLatch(latch);
	if (launch)
		(void) launch_worker(dboid);
}

/* Take the slot of our database; false if another flusher runs. */
static bool
claim_slot(Oid dboid)
{
	UsageWorkerSlot *free_slot = NULL;

	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LLAMAGPU_MAX_USAGE_WORKERS; i++)
	{
		UsageWorkerSlot *s = &usage_shared->workers[i];

		if (s->dboid == dboid)
		{
			if (s->pid != 0)
				break;			/* another one runs */
			my_slot = s;
			break;
		}
		if (s->dboid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (my_slot == NULL && free_slot != NULL)
	{
		bool		other = false;

		for (int i = 0; i < LLAMAGPU_MAX_USAGE_WORKERS; i++)
			other |= usage_shared->workers[i].dboid == dboid;
		if (!other)
			my_slot = free_slot;
	}
	if (my_slot)
	{
		my_slot->dboid = dboid;
		my_slot->pid = MyProcPid;
		my_slot->latch = MyLatch;
	}
	LWLockRelease(usage_shared->lock);
	return my_slot != NULL;
}

/* Give the slot back when the process exits, however it exits. */
static void
release_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	if (my_slot->pid == MyProcPid)
		memset(my_slot, 0, sizeof(*my_slot));
	LWLockRelease(usage_shared->lock);
	my_slot = NULL;
}

/* Order records by when they were appended. */
static int
record_cmp(const void *a, const void *b)
{
	uint64		x = ((const UsageRecord *) a)->seq;
	uint64		y = ((const UsageRecord *) b)->seq;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Copy up to FLUSH_BATCH of dboid's records out of the buffer (they stay there). */
static int
take_records(Oid dboid, UsageRecord *out, int *index)
{
	int			n = 0;

	LWLockAcquire(usage_shared->lock, LW_SHARED);
	for (int i = 0; i < usage_shared->capacity && n < FLUSH_BATCH; i++)
	{
		UsageRecord *r = &usage_shared->records[i];

		if (r->used && r->dboid == dboid)
		{
			out[n] = *r;
			index[n] = i;
			n++;
		}
	}
	LWLockRelease(usage_shared->lock);
	qsort(out, n, sizeof(UsageRecord), record_cmp);
	return n;
}

/* Free the records taken (written or given up on) and count them. */
static void
release_records(UsageRecord *recs, int *index, int n, bool written)
{
	int		   *free_list;

	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	free_list = (int *) &usage_shared->records[usage_shared->capacity];
	for (int i = 0; i < n; i++)
	{
		UsageRecord *r = &usage_shared->records[index[i]];

		if (!r->used)
			continue;
		r->used = false;
		free_list[usage_shared->n_free++] = index[i];
	}
	if (written)
		usage_shared->flushed += n;
	else
		usage_shared->dropped += n;
	LWLockRelease(usage_shared->lock);
}

/* A name, or NULL when empty. */
static Datum
name_or_null(const char *s, char *isnull)
{
	*isnull = s[0] == '\0' ? 'n' : ' ';
	return s[0] == '\0' ? (Datum) 0 : CStringGetTextDatum(s);
}

/* Insert records into llm_usage (in the current transaction). */
static void
insert_records(UsageRecord *recs, int n)
{
	Oid			types[18] = {TIMESTAMPTZOID, TIMESTAMPTZOID, OIDOID, TEXTOID, OIDOID, TEXTOID,
		INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	INT4OID, INT4OID, INT8OID, INT8OID, FLOAT8OID, INT4OID};
	SPIPlanPtr	plan;

	plan = SPI_prepare("INSERT INTO llamagpu.llm_usage (started_at, finished_at, role_id, role, "
					   "outer_role_id, outer_role, api_key_id, api_key, model, kind, status, sqlstate, "
					   "requests, errors, prompt_tokens, completion_tokens, duration_ms, backend_pid) "
					   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
					   18, types);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	for (int i = 0; i < n; i++)
	{
		UsageRecord *r = &recs[i];
		Datum		values[18];
		char		nulls[18];
		int			ret;

		memset(nulls, ' ', sizeof(nulls));
		values[0] = TimestampTzGetDatum(r->started);
		values[1] = TimestampTzGetDatum(r->finished);
		values[2] = ObjectIdGetDatum(r->role);
		values[3] = CStringGetTextDatum(NameStr(r->role_name));
		values[4] = ObjectIdGetDatum(r->outer_role);
		values[5] = CStringGetTextDatum(NameStr(r->outer_role_name));
		values[6] = Int64GetDatum(r->key_id);
		nulls[6] = r->key_id == 0 ? 'n' : ' ';
		values[7] = name_or_null(NameStr(r->key_name), &nulls[7]);
		values[8] = name_or_null(r->model, &nulls[8]);
		values[9] = CStringGetTextDatum(r->kind);
		values[10] = CStringGetTextDatum(r->status);
		values[11] = r->sqlstate ? CStringGetTextDatum(unpack_sql_state(r->sqlstate)) : (Datum) 0;
		nulls[11] = r->sqlstate ? ' ' : 'n';
		values[12] = Int32GetDatum(r->requests);
		values[13] = Int32GetDatum(r->errors);
		values[14] = Int64GetDatum(r->prompt_tokens);
		values[15] = Int64GetDatum(r->completion_tokens);
		values[16] = Float8GetDatum((double) (r->finished - r->started) / 1000.0);
		values[17] = Int32GetDatum(r->pid);
		ret = SPI_execute_plan(plan, values, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	}
}

/*
 * Run fn(arg) in a transaction of its own as the bootstrap superuser;
 * false (the error logged as a WARNING) if it failed.
 */
static bool
in_transaction(void (*fn) (void *arg), void *arg, const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		pgstat_report_activity(STATE_RUNNING, what);
		fn(arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ereport(WARNING,
				(errmsg("llamagpu usage flusher: could not %s: %s", what, edata->message)));
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

typedef struct FlushBatch
{
	UsageRecord *recs;
	int			n;
} FlushBatch;

/* in_transaction body: the batch's rows, unless the table is missing. */
static void
flush_body(void *arg)
{
	FlushBatch *b = arg;

	if (!OidIsValid(LlamagpuRelationOwner("llm_usage")))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"llamagpu.llm_usage\" does not exist")));
	insert_records(b->recs, b->n);
}

/* in_transaction body: delete rows past the retention. */
static void
retention_body(void *arg)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(llamagpu_usage_retention)};
	int			ret;

	if (!OidIsValid(LlamagpuRelationOwner("llm_usage")))
		return;
	ret = SPI_execute_with_args("DELETE FROM llamagpu.llm_usage "
								"WHERE finished_at < pg_catalog.now() - pg_catalog.make_interval(days => $1)",
								1, types, values, NULL, false, 0);
	if (ret != SPI_OK_DELETE)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("llamagpu usage flusher: deleted %llu usage rows older than %d days",
						(unsigned long long) SPI_processed, llamagpu_usage_retention)));
}

/* Write one batch of records; how many were taken (0: none buffered). */
static int
flush_once(Oid dboid, UsageRecord *recs, int *index)
{
	FlushBatch	b;
	bool		ok = false;

	b.recs = recs;
	b.n = take_records(dboid, recs, index);
	if (b.n == 0)
		return 0;
	for (int attempt = 0; attempt < WRITE_TRIES && !ok; attempt++)
	{
		if (attempt > 0)
		{
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
			CHECK_FOR_INTERRUPTS();
		}
		ok = in_transaction(flush_body, &b, "write usage records");
	}
	release_records(recs, index, b.n, ok);
	return b.n;
}

/* Log records dropped since the last time any flusher logged them. */
static void
log_dropped(void)
{
	uint64		n;

	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	n = usage_shared->dropped - usage_shared->dropped_logged;
	usage_shared->dropped_logged = usage_shared->dropped;
	LWLockRelease(usage_shared->lock);
	if (n > 0)
		ereport(WARNING,
				(errmsg("llamagpu: %llu usage records were dropped", (unsigned long long) n),
				 errdetail("The usage buffer (llamagpu.usage_buffer_size = %d records) was full, writing them to llamagpu.llm_usage failed, or their database was dropped.",
						   usage_shared->capacity),
				 errhint("Raise llamagpu.usage_buffer_size, or see the flusher's earlier messages.")));
}

/*
 * in_transaction body: drop the records of databases that no longer exist
 * (their flusher can never connect), so they do not fill the buffer.
 */
static void
purge_body(void *arg)
{
	Oid			dbs[64];
	int			n = 0;
	uint64		purged = 0;

	LWLockAcquire(usage_shared->lock, LW_SHARED);
	for (int i = 0; i < usage_shared->capacity && n < lengthof(dbs); i++)
	{
		UsageRecord *r = &usage_shared->records[i];
		bool		seen = false;

		if (!r->used)
			continue;
		for (int j = 0; j < n && !seen; j++)
			seen = dbs[j] == r->dboid;
		if (!seen)
			dbs[n++] = r->dboid;
	}
	LWLockRelease(usage_shared->lock);
	for (int j = 0; j < n; j++)
	{
		int		   *free_list;

		if (SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dbs[j])))
			continue;
		LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
		free_list = (int *) &usage_shared->records[usage_shared->capacity];
		for (int i = 0; i < usage_shared->capacity; i++)
		{
			UsageRecord *r = &usage_shared->records[i];

			if (r->used && r->dboid == dbs[j])
			{
				r->used = false;
				free_list[usage_shared->n_free++] = i;
				usage_shared->dropped++;
				purged++;
			}
		}
		LWLockRelease(usage_shared->lock);
	}
	if (purged > 0)
		ereport(LOG,
				(errmsg("llamagpu usage flusher: dropped %llu usage records of databases that no longer exist",
						(unsigned long long) purged)));
}

/* Exit if no record of ours is buffered: the slot goes in the same locked step. */
static bool
try_exit(Oid dboid)
{
	bool		any = false;

	LWLockAcquire(usage_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < usage_shared->capacity && !any; i++)
		any = usage_shared->records[i].used && usage_shared->records[i].dboid == dboid;
	if (!any && my_slot != NULL)
	{
		memset(my_slot, 0, sizeof(*my_slot));
		my_slot = NULL;
	}
	LWLockRelease(usage_shared->lock);
	return !any;
}

/* The flusher's main loop (see the file comment). */
void
llamagpu_usage_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext loop_cxt;
	UsageRecord *recs;
	int		   *index;
	TimestampTz idle_since;
	TimestampTz retention_at = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (usage_shared == NULL)
		LlamagpuShmemInit();
	if (usage_shared == NULL || !claim_slot(dboid))
		proc_exit(0);
	before_shmem_exit(release_slot, (Datum) 0);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("llamagpu usage flusher");

	recs = MemoryContextAlloc(TopMemoryContext, sizeof(UsageRecord) * FLUSH_BATCH);
	index = MemoryContextAlloc(TopMemoryContext, sizeof(int) * FLUSH_BATCH);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "llamagpu usage flusher",
									 ALLOCSET_DEFAULT_SIZES);
	(void) in_transaction(purge_body, NULL, "drop the records of dropped databases");
	idle_since = GetCurrentTimestamp();
	for (;;)
	{
		int			n;
		TimestampTz now;

		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		n = flush_once(dboid, recs, index);
		log_dropped();
		now = GetCurrentTimestamp();
		if (llamagpu_usage_retention > 0 && now >= retention_at)
		{
			(void) in_transaction(retention_body, NULL, "delete old usage rows");
			retention_at = TimestampTzPlusMilliseconds(now, RETENTION_EVERY_MS);
		}
		if (n == FLUSH_BATCH)
			continue;			/* more may be waiting */
		if (n > 0)
			idle_since = now;
		else if (TimestampDifferenceExceeds(idle_since, now, IDLE_EXIT_MS) && try_exit(dboid))
			proc_exit(0);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WAIT_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
