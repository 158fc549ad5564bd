/*
 * download_shmem.c — the downloads' shared state (one slot per download,
 * written by its worker, read by llm_stat_downloads and the waiting
 * llm_pull_model) and the llm_stat_downloads_internal() view function.
 *
 * A slot is kept after its download finishes so that the view shows how it
 * ended; a new download takes a free slot, else the finished slot that
 * ended longest ago.  Shared memory does not survive a restart, and neither
 * does the history.
 */
#include "llamagpu.h"

#include <signal.h>

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(llm_stat_downloads_internal);

LlamagpuDownloads *llamagpu_downloads = NULL;

static const char *const state_names[] = {
	[DOWNLOAD_FREE] = "free",
	[DOWNLOAD_STARTING] = "starting",
	[DOWNLOAD_RUNNING] = "running",
	[DOWNLOAD_VERIFYING] = "verifying",
	[DOWNLOAD_REGISTERING] = "registering",
	[DOWNLOAD_DONE] = "done",
	[DOWNLOAD_FAILED] = "failed",
	[DOWNLOAD_CANCELLED] = "cancelled",
};

/* The view's name for a state. */
const char *
DownloadStateName(DownloadState state)
{
	if (state < DOWNLOAD_FREE || state > DOWNLOAD_CANCELLED)
		return "unknown";
	return state_names[state];
}

/* Shared memory the downloads need. */
Size
LlamagpuDownloadsShmemSize(void)
{
	return MAXALIGN(sizeof(LlamagpuDownloads));
}

/* Attach to the downloads' state, creating it the first time (AddinShmemInitLock held). */
void
LlamagpuDownloadsShmemInit(void)
{
	bool		found;

	llamagpu_downloads = ShmemInitStruct("llamagpu downloads", sizeof(LlamagpuDownloads), &found);
	if (!found)
	{
		memset(llamagpu_downloads, 0, sizeof(LlamagpuDownloads));
		SpinLockInit(&llamagpu_downloads->mutex);
		llamagpu_downloads->next_id = 1;
	}
}

/*
 * Finish a download and wake whoever waits for it.  Called by the worker,
 * or by a waiter that saw the worker gone without finishing.
 */
void
DownloadFinish(LlamagpuDownload *dl, DownloadState state, int sqlstate, const char *fmt,...)
{
	char		msg[sizeof(dl->error)] = "";
	Latch	   *waiter;

	if (fmt)
	{
		va_list		ap;

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	SpinLockAcquire(&llamagpu_downloads->mutex);
	if (!DOWNLOAD_FINISHED(dl->state))
	{
		dl->state = state;
		dl->sqlstate = sqlstate;
		strlcpy(dl->error, msg, sizeof(dl->error));
		dl->finished_at = dl->updated_at = GetCurrentTimestamp();
		if (state != DOWNLOAD_RUNNING)
			dl->rate = 0;
	}
	waiter = dl->waiter_latch;
	SpinLockRelease(&llamagpu_downloads->mutex);
	if (waiter)
		SetLatch(waiter);
}

#define STAT_DOWNLOADS_COLS 19

/*
 * llm_stat_downloads_internal(): one row per slot in use.  The slot is
 * copied under the lock, then turned into a row outside it.
 */
Datum
llm_stat_downloads_internal(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (llamagpu_downloads == NULL)
		PG_RETURN_VOID();

	for (int i = 0; i < LLAMAGPU_MAX_DOWNLOADS; i++)
	{
		LlamagpuDownload dl;
		Datum		values[STAT_DOWNLOADS_COLS];
		bool		nulls[STAT_DOWNLOADS_COLS] = {0};
		int			c = 0;

		SpinLockAcquire(&llamagpu_downloads->mutex);
		memcpy(&dl, &llamagpu_downloads->slots[i], sizeof(dl));
		SpinLockRelease(&llamagpu_downloads->mutex);
		if (dl.id == 0)
			continue;

		values[c++] = Int64GetDatum(dl.id);
		values[c++] = ObjectIdGetDatum(dl.dboid);
		values[c++] = ObjectIdGetDatum(dl.userid);
		nulls[c] = dl.pid == 0;
		values[c++] = Int32GetDatum(dl.pid);
		values[c++] = CStringGetTextDatum(dl.source);
		values[c++] = CStringGetTextDatum(dl.name);
		values[c++] = CStringGetTextDatum(dl.path);
		values[c++] = CStringGetTextDatum(DownloadStateName(dl.state));
		values[c++] = Int64GetDatum(dl.bytes_done);
		nulls[c] = dl.bytes_total < 0;
		values[c++] = Int64GetDatum(dl.bytes_total);
		values[c++] = Int64GetDatum(dl.resumed_from);
		values[c++] = Float8GetDatum(dl.rate);
		values[c++] = Int32GetDatum(dl.attempts);
		values[c++] = BoolGetDatum(dl.verified);
		nulls[c] = dl.sha256[0] == '\0';
		values[c++] = CStringGetTextDatum(dl.sha256);
		nulls[c] = dl.error[0] == '\0';
		values[c++] = CStringGetTextDatum(dl.error);
		values[c++] = TimestampTzGetDatum(dl.started_at);
		values[c++] = TimestampTzGetDatum(dl.updated_at);
		nulls[c] = dl.finished_at == 0;
		values[c++] = TimestampTzGetDatum(dl.finished_at);
		Assert(c == STAT_DOWNLOADS_COLS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
