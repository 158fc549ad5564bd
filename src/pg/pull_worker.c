/*
 * pull_worker.c — the background worker that runs one download: fetch the
 * file with libcurl into a partial file under model_dir/.llamagpu-downloads,
 * resuming what an earlier attempt left (an HTTP range, guarded by If-Range),
 * retry transient failures with back-off, verify the size and the SHA-256
 * (the hub's X-Linked-Etag and/or the one given), move the file to its final
 * name only then, and register the model as the user who asked.
 *
 * What becomes of the partial file: a transient failure that outlasts the
 * retries (connection lost, stalled, 5xx, the server shutting down) keeps it,
 * so that the next llm_pull_model of the same source resumes; everything
 * else (cancelled, 4xx, checksum or size mismatch, disk full, registration
 * refused) removes it, and a refused registration removes the final file too.
 * The sha256 of the bytes is computed while they arrive (and over the kept
 * part when resuming), so verification costs no second read.
 */
#include "llamagpu.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#define RETRY_FIRST_MS	500

/* The worker's own resource owner (cryptohash contexts need one between transactions). */
static ResourceOwner download_owner = NULL;
#define RETRY_MAX_MS	10000

/* One download as the worker runs it (the slot holds what others see). */
typedef struct Transfer
{
	LlamagpuDownload *dl;
	int64		id;
	char	   *token;			/* read from llm_secrets; never logged */
	int			fd;				/* the partial file, open for appending */
	char		sidecar[MAXPGPATH]; /* partial + ".source": URL and validator */
	pg_cryptohash_ctx *sha;		/* over bytes [0, written) */
	int64		written;		/* bytes in the partial file */
	int64		offset;			/* bytes kept when this attempt started */
	/* of the response being received */
	long		status;
	bool		body_started;
	int64		content_length;
	int64		range_start;
	int64		range_total;
	char		etag[256];
	/* from any hop (the hub's redirect carries them) */
	char		linked_sha256[65];
	int64		linked_size;
	/* what stopped the transfer */
	int			write_errno;
	bool		cancelled;
	bool		shutdown;
	char		protocol_error[256];
	TimestampTz attempt_started;
	TimestampTz pm_checked;
} Transfer;

/* Whether the slot still belongs to our download and was asked to stop. */
static bool
cancel_requested(Transfer *t)
{
	bool		cancel;

	SpinLockAcquire(&llamagpu_downloads->mutex);
	cancel = t->dl->id != t->id || t->dl->cancel;
	SpinLockRelease(&llamagpu_downloads->mutex);
	return cancel;
}

/* Set the slot's state (not a final one: DownloadFinish does those). */
static void
set_state(Transfer *t, DownloadState state)
{
	SpinLockAcquire(&llamagpu_downloads->mutex);
	if (!DOWNLOAD_FINISHED(t->dl->state))
		t->dl->state = state;
	t->dl->updated_at = GetCurrentTimestamp();
	SpinLockRelease(&llamagpu_downloads->mutex);
}

/* The total size of the file, as far as the responses say (-1: unknown). */
static int64
known_total(Transfer *t)
{
	if (t->status == 206 && t->range_total >= 0)
		return t->range_total;
	if (t->status == 200 && t->content_length >= 0)
		return t->content_length;
	if (t->status == 206 && t->content_length >= 0)
		return t->range_start + t->content_length;
	return t->linked_size;
}

/* Publish progress: bytes, total, rate over this attempt. */
static void
publish_progress(Transfer *t)
{
	TimestampTz now = GetCurrentTimestamp();
	double		secs = (now - t->attempt_started) / 1000000.0;

	SpinLockAcquire(&llamagpu_downloads->mutex);
	t->dl->bytes_done = t->written;
	t->dl->bytes_total = known_total(t);
	t->dl->rate = secs > 0.05 ? (t->written - t->offset) / secs : 0;
	t->dl->updated_at = now;
	SpinLockRelease(&llamagpu_downloads->mutex);
}

/* A header value with surrounding spaces, a weak-validator "W/" and quotes removed. */
static void
header_value(const char *v, size_t n, char *out, size_t outsize, bool strip_quotes)
{
	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (strip_quotes)
	{
		if (n >= 2 && v[0] == 'W' && v[1] == '/')
			v += 2, n -= 2;
		if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
			v++, n -= 2;
	}
	n = Min(n, outsize - 1);
	memcpy(out, v, n);
	out[n] = '\0';
}

/* libcurl's header callback: the status and the headers we use, of every hop. */
static size_t
on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	Transfer   *t = arg;
	size_t		n = size * nitems;
	char		value[256];
	const char *colon = memchr(buf, ':', n);
	size_t		klen = colon ? colon - buf : 0;

	if (n > 5 && strncmp(buf, "HTTP/", 5) == 0)
	{
		const char *sp = memchr(buf, ' ', n);

		t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		t->body_started = false;
		t->content_length = -1;
		t->range_start = 0;
		t->range_total = -1;
		t->etag[0] = '\0';
		return n;
	}
	if (colon == NULL)
		return n;
	header_value(colon + 1, n - klen - 1, value, sizeof(value), true);
	if (klen == 13 && pg_strncasecmp(buf, "x-linked-etag", klen) == 0)
	{
		if (strlen(value) == 64 && strspn(value, "0123456789abcdefABCDEF") == 64)
		{
			for (int i = 0; i < 64; i++)
				t->linked_sha256[i] = pg_tolower((unsigned char) value[i]);
			t->linked_sha256[64] = '\0';
		}
	}
	else if (klen == 13 && pg_strncasecmp(buf, "x-linked-size", klen) == 0)
		t->linked_size = strtoll(value, NULL, 10);
	else if (klen == 14 && pg_strncasecmp(buf, "content-length", klen) == 0)
		t->content_length = strtoll(value, NULL, 10);
	else if (klen == 13 && pg_strncasecmp(buf, "content-range", klen) == 0)
	{
		/* bytes START-END/TOTAL */
		const char *p = strchr(value, ' ');
		const char *slash = strchr(value, '/');

		if (p)
			t->range_start = strtoll(p + 1, NULL, 10);
		if (slash && slash[1] != '*')
			t->range_total = strtoll(slash + 1, NULL, 10);
	}
	else if (klen == 4 && pg_strncasecmp(buf, "etag", klen) == 0)
		header_value(colon + 1, n - klen - 1, t->etag, sizeof(t->etag), false);
	return n;
}

/* Start the hash and the file over from byte 0. */
static bool
restart_from_zero(Transfer *t)
{
	if (ftruncate(t->fd, 0) != 0 || lseek(t->fd, 0, SEEK_SET) != 0)
	{
		t->write_errno = errno;
		return false;
	}
	t->written = t->offset = 0;
	pg_cryptohash_free(t->sha);
	t->sha = pg_cryptohash_create(PG_SHA256);
	return t->sha != NULL && pg_cryptohash_init(t->sha) == 0;
}

/* Record the source and validator of the partial file (what a resume checks). */
static void
write_sidecar(Transfer *t)
{
	FILE	   *f = fopen(t->sidecar, "w");

	if (f == NULL)
		return;					/* only costs a resume */
	fprintf(f, "%s\n%s\n", t->dl->url, t->etag);
	fclose(f);
}

/* libcurl's write callback: append to the partial file and the hash. */
static size_t
on_body(char *buf, size_t size, size_t nitems, void *arg)
{
	Transfer   *t = arg;
	size_t		n = size * nitems;
	size_t		done = 0;

	if (!t->body_started)
	{
		t->body_started = true;
		if (t->status == 206 && t->range_start != t->written)
		{
			snprintf(t->protocol_error, sizeof(t->protocol_error),
					 "the server sent bytes from %lld, not from %lld",
					 (long long) t->range_start, (long long) t->written);
			return 0;
		}
		/* a range request answered with the whole file (If-Range did not match) */
		if (t->status != 206 && t->written > 0 && !restart_from_zero(t))
			return 0;
		write_sidecar(t);
	}
	while (done < n)
	{
		ssize_t		w = write(t->fd, buf + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
		{
			t->write_errno = w < 0 ? errno : ENOSPC;
			return 0;
		}
		done += w;
	}
	if (pg_cryptohash_update(t->sha, (uint8 *) buf, n) < 0)
	{
		snprintf(t->protocol_error, sizeof(t->protocol_error), "could not compute SHA-256");
		return 0;
	}
	t->written += n;
	return n;
}

/* libcurl's progress callback (at least once a second): publish, and stop if asked. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	Transfer   *t = arg;
	TimestampTz now = GetCurrentTimestamp();

	publish_progress(t);
	if (cancel_requested(t))
	{
		t->cancelled = true;
		return 1;
	}
	if (ShutdownRequestPending)
	{
		t->shutdown = true;
		return 1;
	}
	if (TimestampDifferenceExceeds(t->pm_checked, now, 1000))
	{
		t->pm_checked = now;
		if (!PostmasterIsAlive())
			proc_exit(1);
	}
	return 0;
}

/* Sleep ms, waking early on cancel or shutdown; false if the wait was cut short. */
static bool
retry_wait(Transfer *t, int ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (cancel_requested(t))
			t->cancelled = true;
		if (ShutdownRequestPending)
			t->shutdown = true;
		if (t->cancelled || t->shutdown)
			return false;
		if (left <= 0)
			return true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* Remove the partial file and its sidecar. */
static void
remove_partial(Transfer *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	(void) unlink(t->dl->partial);
	(void) unlink(t->sidecar);
}

/*
 * Open the partial file: keep what it holds when its sidecar names the same
 * URL (and hash those bytes), else start empty.  Returns the validator to
 * send with If-Range ("" when none).
 */
static bool
open_partial(Transfer *t, char *validator, size_t size)
{
	FILE	   *f = fopen(t->sidecar, "r");
	char		url[sizeof(t->dl->url) + 2] = "";
	bool		same = false;
	char	   *buf;
	ssize_t		n;

	validator[0] = '\0';
	if (f)
	{
		if (fgets(url, sizeof(url), f) && fgets(validator, size, f))
			validator[strcspn(validator, "\r\n")] = '\0';
		url[strcspn(url, "\r\n")] = '\0';
		same = strcmp(url, t->dl->url) == 0;
		fclose(f);
	}
	t->fd = open(t->dl->partial, O_RDWR | O_CREAT | O_NOFOLLOW | (same ? 0 : O_TRUNC) | PG_BINARY,
				 S_IRUSR | S_IWUSR);
	if (t->fd < 0)
	{
		t->write_errno = errno;
		return false;
	}
	if (!same)
		validator[0] = '\0';
	t->sha = pg_cryptohash_create(PG_SHA256);
	if (t->sha == NULL || pg_cryptohash_init(t->sha) < 0)
		return false;
	t->written = 0;
	buf = palloc(1024 * 1024);
	while ((n = read(t->fd, buf, 1024 * 1024)) > 0)
	{
		if (pg_cryptohash_update(t->sha, (uint8 *) buf, n) < 0)
			return false;
		t->written += n;
		if (cancel_requested(t))
		{
			t->cancelled = true;
			break;
		}
		if (ShutdownRequestPending)
		{
			t->shutdown = true;
			break;
		}
	}
	pfree(buf);
	if (n < 0)
	{
		t->write_errno = errno;
		return false;
	}
	return true;
}

/* One attempt: GET from t->written on.  Returns libcurl's code. */
static CURLcode
attempt(Transfer *t, const char *validator)
{
	struct curl_slist *headers;
	CURL	   *curl;
	CURLcode	res;
	char		errbuf[CURL_ERROR_SIZE] = "";

	curl = HubCurlNew(t->dl->url, (t->dl->https_only || t->dl->send_token_over_http) ? t->token : NULL,
					  t->dl->https_only, &headers);
	if (curl == NULL)
	{
		snprintf(t->protocol_error, sizeof(t->protocol_error), "could not initialize libcurl");
		return CURLE_FAILED_INIT;
	}
	t->offset = t->written;
	t->attempt_started = GetCurrentTimestamp();
	t->status = 0;
	t->protocol_error[0] = '\0';
	if (t->written > 0)
	{
		curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, (curl_off_t) t->written);
		if (validator[0])
		{
			char	   *h = psprintf("If-Range: %s", validator);

			headers = curl_slist_append(headers, h);
			curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
		}
	}
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, t);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long) t->dl->stall_timeout);

	res = curl_easy_perform(curl);
	if (res != CURLE_OK && t->protocol_error[0] == '\0')
		strlcpy(t->protocol_error, errbuf[0] ? errbuf : curl_easy_strerror(res),
				sizeof(t->protocol_error));
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	publish_progress(t);
	return res;
}

/* Whether a failed attempt may succeed when tried again. */
static bool
transient(Transfer *t, CURLcode res)
{
	switch (res)
	{
		case CURLE_HTTP_RETURNED_ERROR:
			return t->status == 408 || t->status == 429 || t->status >= 500;
		case CURLE_PARTIAL_FILE:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_GOT_NOTHING:
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			return true;
		default:
			return false;
	}
}

/* Fail the download for a failed attempt that will not be retried. */
static void
fail_attempt(Transfer *t, CURLcode res, bool keep)
{
	int			code = ERRCODE_CONNECTION_FAILURE;
	const char *url = t->dl->url;

	if (keep)
	{
		SpinLockAcquire(&llamagpu_downloads->mutex);
		t->dl->partial_kept = true;
		SpinLockRelease(&llamagpu_downloads->mutex);
		if (t->fd >= 0)
			close(t->fd);
		t->fd = -1;
	}
	else
		remove_partial(t);

	if (t->write_errno)
	{
		code = t->write_errno == ENOSPC ? ERRCODE_DISK_FULL : ERRCODE_IO_ERROR;
		DownloadFinish(t->dl, DOWNLOAD_FAILED, code, "could not write \"%s\": %s",
					   t->dl->partial, strerror(t->write_errno));
		return;
	}
	if (res == CURLE_HTTP_RETURNED_ERROR)
	{
		if (t->status == 404)
			code = ERRCODE_UNDEFINED_FILE;
		else if (t->status == 401 || t->status == 403)
			code = ERRCODE_INSUFFICIENT_PRIVILEGE;
		DownloadFinish(t->dl, DOWNLOAD_FAILED, code, "the server answered HTTP %ld for %s",
					   t->status, url);
		return;
	}
	DownloadFinish(t->dl, DOWNLOAD_FAILED, code, "%s%s", t->protocol_error,
				   keep ? " (after all retries)" : "");
}

/* Read the token (as the user who asked), in a transaction of its own. */
static void
read_token(Transfer *t)
{
	if (t->dl->token_secret[0] == '\0')
		return;
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	SetUserIdAndSecContext(t->dl->userid, SECURITY_LOCAL_USERID_CHANGE);
	t->token = MemoryContextStrdup(TopMemoryContext, HubSecretValue(t->dl->token_secret, false));
	PopActiveSnapshot();
	CommitTransactionCommand();
	CurrentResourceOwner = download_owner;
}

/* Check size and checksums; false (download failed) on a mismatch. */
static bool
verify(Transfer *t, int64 total, char *hex)
{
	uint8		digest[32];
	const char *expected[2] = {t->dl->expected_sha256, t->linked_sha256};
	bool		verified = false;

	set_state(t, DOWNLOAD_VERIFYING);
	if (total >= 0 && t->written != total)
	{
		remove_partial(t);
		DownloadFinish(t->dl, DOWNLOAD_FAILED, ERRCODE_DATA_CORRUPTED,
					   "the file has %lld bytes, the server announced %lld",
					   (long long) t->written, (long long) total);
		return false;
	}
	if (pg_cryptohash_final(t->sha, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256");
	pg_cryptohash_free(t->sha);
	t->sha = NULL;
	hex_encode((const char *) digest, 32, hex);
	hex[64] = '\0';
	for (int i = 0; i < lengthof(expected); i++)
	{
		if (expected[i][0] == '\0')
			continue;
		if (strcmp(expected[i], hex) != 0)
		{
			remove_partial(t);
			DownloadFinish(t->dl, DOWNLOAD_FAILED, ERRCODE_DATA_CORRUPTED,
						   "checksum mismatch: SHA-256 %s, %s %s", hex,
						   i == 0 ? "expected (option sha256)" : "published by the server", expected[i]);
			return false;
		}
		verified = true;
	}
	SpinLockAcquire(&llamagpu_downloads->mutex);
	t->dl->verified = verified;
	strlcpy(t->dl->sha256, hex, sizeof(t->dl->sha256));
	SpinLockRelease(&llamagpu_downloads->mutex);
	return true;
}

/* Move the verified partial file to its final name (never over an existing file). */
static bool
install_file(Transfer *t)
{
	if (pg_fsync(t->fd) != 0)
	{
		t->write_errno = errno;
		return false;
	}
	close(t->fd);
	t->fd = -1;
	if (link(t->dl->partial, t->dl->path) != 0)
	{
		int			e = errno;

		remove_partial(t);
		DownloadFinish(t->dl, DOWNLOAD_FAILED, e == EEXIST ? ERRCODE_DUPLICATE_FILE : ERRCODE_IO_ERROR,
					   "could not create \"%s\": %s", t->dl->path, strerror(e));
		return false;
	}
	remove_partial(t);
	return true;
}

/*
 * Register the model as the user who asked (llm_register_model's own
 * checks: the GGUF header read by the engine, the name, the path).  On
 * failure the file is removed.
 */
static void
register_model(Transfer *t)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];

	set_state(t, DOWNLOAD_REGISTERING);
	args[0] = CStringGetTextDatum(t->dl->name);
	args[1] = CStringGetTextDatum(t->dl->path);
	args[2] = CStringGetTextDatum(t->dl->register_options);
	StartTransactionCommand();
	PG_TRY();
	{
		int			ret;

		PushActiveSnapshot(GetTransactionSnapshot());
		SetUserIdAndSecContext(t->dl->userid, SECURITY_LOCAL_USERID_CHANGE);
		SPI_connect();
		ret = SPI_execute_with_args("SELECT llamagpu.llm_register_model($1, $2, $3::jsonb)",
									3, argtypes, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		CurrentResourceOwner = download_owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		CurrentResourceOwner = download_owner;
		(void) unlink(t->dl->path);
		DownloadFinish(t->dl, DOWNLOAD_FAILED, edata->sqlerrcode,
					   "the downloaded file could not be registered: %s", edata->message);
		return;
	}
	PG_END_TRY();
	DownloadFinish(t->dl, DOWNLOAD_DONE, 0, NULL);
}

/* Fetch with retries; true when the whole file is in the partial file. */
static bool
fetch(Transfer *t)
{
	char		validator[256];
	int			wait_ms = RETRY_FIRST_MS;

	if (!open_partial(t, validator, sizeof(validator)))
	{
		fail_attempt(t, CURLE_WRITE_ERROR, false);
		return false;
	}
	SpinLockAcquire(&llamagpu_downloads->mutex);
	t->dl->resumed_from = t->written;
	SpinLockRelease(&llamagpu_downloads->mutex);
	set_state(t, DOWNLOAD_RUNNING);

	for (int n = 1; !t->cancelled && !t->shutdown; n++)
	{
		CURLcode	res;

		SpinLockAcquire(&llamagpu_downloads->mutex);
		t->dl->attempts = n;
		SpinLockRelease(&llamagpu_downloads->mutex);
		res = attempt(t, validator);
		if (res == CURLE_OK)
			return true;
		if (t->cancelled || t->shutdown)
			break;
		/* a range past the end (the file changed, or it is complete): start over */
		if (res == CURLE_HTTP_RETURNED_ERROR && t->status == 416 && t->written > 0 && n <= t->dl->retries)
		{
			if (!restart_from_zero(t))
				break;
			continue;
		}
		if (t->write_errno || !transient(t, res) || n > t->dl->retries)
		{
			fail_attempt(t, res, !t->write_errno && transient(t, res) && t->written > 0);
			return false;
		}
		elog(LOG, "llamagpu download %lld: attempt %d failed (%s), retrying in %d ms",
			 (long long) t->id, n, t->protocol_error, wait_ms);
		/* the next attempt resumes from what this one wrote, with the validator it saw */
		strlcpy(validator, t->etag, sizeof(validator));
		if (!retry_wait(t, wait_ms))
			break;
		wait_ms = Min(wait_ms * 2, RETRY_MAX_MS);
	}
	if (t->cancelled)
	{
		remove_partial(t);
		DownloadFinish(t->dl, DOWNLOAD_CANCELLED, ERRCODE_QUERY_CANCELED, "cancelled");
	}
	else if (t->shutdown)
	{
		SpinLockAcquire(&llamagpu_downloads->mutex);
		t->dl->partial_kept = t->written > 0;
		SpinLockRelease(&llamagpu_downloads->mutex);
		if (t->written == 0)
			remove_partial(t);
		DownloadFinish(t->dl, DOWNLOAD_FAILED, ERRCODE_ADMIN_SHUTDOWN,
					   "the download worker was asked to stop");
	}
	else
		fail_attempt(t, CURLE_WRITE_ERROR, false);
	return false;
}

/* The worker of download slot main_arg (its id in bgw_extra). */
void
llamagpu_download_worker_main(Datum main_arg)
{
	int			slot = DatumGetInt32(main_arg);
	Transfer	t;
	char		hex[65];
	Oid			dboid;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	if (llamagpu_downloads == NULL)
		LlamagpuShmemInit();

	memset(&t, 0, sizeof(t));
	t.fd = -1;
	t.linked_size = -1;
	t.dl = &llamagpu_downloads->slots[slot];
	memcpy(&t.id, MyBgworkerEntry->bgw_extra, sizeof(t.id));
	SpinLockAcquire(&llamagpu_downloads->mutex);
	if (t.dl->id != t.id || t.dl->state != DOWNLOAD_STARTING)
	{
		SpinLockRelease(&llamagpu_downloads->mutex);
		proc_exit(0);			/* cancelled before we started */
	}
	t.dl->pid = MyProcPid;
	t.dl->worker_latch = MyLatch;
	dboid = t.dl->dboid;
	SpinLockRelease(&llamagpu_downloads->mutex);
	snprintf(t.sidecar, sizeof(t.sidecar), "%s.source", t.dl->partial);

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("llamagpu download");
	/* cryptohash contexts belong to a resource owner */
	download_owner = ResourceOwnerCreate(NULL, "llamagpu download");
	CurrentResourceOwner = download_owner;

	PG_TRY();
	{
		read_token(&t);
		if (fetch(&t) && verify(&t, known_total(&t), hex) && install_file(&t))
			register_model(&t);
		else if (!DOWNLOAD_FINISHED(t.dl->state))
			fail_attempt(&t, CURLE_WRITE_ERROR, false);
	}
	PG_CATCH();
	{
		ErrorData  *edata = CopyErrorData();

		/* an unexpected error: say so in the slot, then let the worker end as usual */
		if (t.fd >= 0)
			remove_partial(&t);
		DownloadFinish(t.dl, DOWNLOAD_FAILED, edata->sqlerrcode, "%s", edata->message);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (t.token)
		explicit_bzero(t.token, strlen(t.token));
	proc_exit(0);
}
