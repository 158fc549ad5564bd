/*
 * pull.c — llm_pull_model (check everything that can be checked before a
 * byte is fetched, then start a download worker and, by default, wait for
 * it), llm_cancel_download and llm_clean_downloads.
 *
 * The transfer runs in a background worker of its own (pull_worker.c), so
 * neither the engine nor any other session waits on the network; the
 * calling session only sleeps on its latch.  Cancelling the waiting query
 * (or terminating its session) cancels the download it waits for; with
 * option "wait": false the download is independent of the session, and
 * llm_cancel_download(id) stops it.
 */
#include "llamagpu.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(llm_pull_model);
PG_FUNCTION_INFO_V1(llm_cancel_download);
PG_FUNCTION_INFO_V1(llm_clean_downloads);

#define MODEL_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
#define FILE_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-"
#define DEFAULT_TOKEN_SECRET "hf_token"
#define DOWNLOAD_START_GRACE_MS 60000	/* a worker not running this long after launch failed */

/* llm_pull_model's options, checked. */
typedef struct PullOptions
{
	bool		wait;
	char	   *sha256;
	char	   *token_secret;
	char	   *file_name;
	int			retries;
	int			stall_timeout;
	StringInfoData register_options;	/* context_size, description */
} PullOptions;

/* An option's value as an int within [min, max]. */
static int
option_int(JsonbValue *v, const char *key, int min, int max)
{
	int64		n;

	if (v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("option \"%s\" must be a number", key)));
	n = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if (n < min || n > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be between %d and %d", key, min, max)));
	return (int) n;
}

/* An option's value as a string. */
static char *
option_string(JsonbValue *v, const char *key)
{
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("option \"%s\" must be a string", key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Read llm_pull_model's options (NULL: all defaults). */
static void
parse_options(Jsonb *options, PullOptions *opt)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first_reg = true;

	memset(opt, 0, sizeof(*opt));
	opt->wait = true;
	opt->retries = 3;
	opt->stall_timeout = 60;
	initStringInfo(&opt->register_options);
	appendStringInfoChar(&opt->register_options, '{');
	if (options == NULL)
	{
		appendStringInfoChar(&opt->register_options, '}');
		return;
	}
	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "wait") == 0)
		{
			if (v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"%s\" must be a boolean", key)));
			opt->wait = v.val.boolean;
		}
		else if (strcmp(key, "sha256") == 0)
		{
			opt->sha256 = option_string(&v, key);
			if (strlen(opt->sha256) != 64 ||
				strspn(opt->sha256, "0123456789abcdefABCDEF") != 64)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"sha256\" must be 64 hexadecimal digits")));
			for (char *p = opt->sha256; *p; p++)
				*p = pg_tolower((unsigned char) *p);
		}
		else if (strcmp(key, "token_secret") == 0)
			opt->token_secret = option_string(&v, key);
		else if (strcmp(key, "file_name") == 0)
			opt->file_name = option_string(&v, key);
		else if (strcmp(key, "retries") == 0)
			opt->retries = option_int(&v, key, 0, 100);
		else if (strcmp(key, "stall_timeout") == 0)
			opt->stall_timeout = option_int(&v, key, 1, 3600);
		else if (strcmp(key, "context_size") == 0 || strcmp(key, "description") == 0)
		{
			/* llm_register_model's own options, passed on (it checks them again) */
			if (strcmp(key, "context_size") == 0)
				(void) option_int(&v, key, 0, INT_MAX);
			else
				(void) option_string(&v, key);
			if (!first_reg)
				appendStringInfoString(&opt->register_options, ", ");
			first_reg = false;
			escape_json(&opt->register_options, key);
			appendStringInfoString(&opt->register_options, ": ");
			if (v.type == jbvString)
				escape_json(&opt->register_options, pnstrdup(v.val.string.val, v.val.string.len));
			else
				appendStringInfoString(&opt->register_options,
									   DatumGetCString(DirectFunctionCall1(numeric_out,
																		   NumericGetDatum(v.val.numeric))));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized download option \"%s\"", key),
					 errhint("Valid options are: wait, sha256, token_secret, file_name, retries, "
							 "stall_timeout, context_size, description.")));
	}
	appendStringInfoChar(&opt->register_options, '}');
	if (opt->register_options.len >= (int) sizeof(((LlamagpuDownload *) NULL)->register_options))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("option \"description\" is too long"),
				 errdetail("The model's options take at most %d bytes here.",
						   (int) sizeof(((LlamagpuDownload *) NULL)->register_options) - 1),
				 errhint("Set a longer description afterwards with UPDATE llamagpu.llm_models.")));
}

/* The local file name: letters, digits, "._+-", not hidden, ending in .gguf. */
static void
check_file_name(const char *file_name, bool given)
{
	size_t		n = strlen(file_name);

	if (n == 0 || n > 200 || file_name[0] == '.' ||
		strspn(file_name, FILE_NAME_CHARS) != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid file name \"%s\"", file_name),
				 errdetail("A model file name has 1 to 200 letters, digits, \".\", \"_\", \"+\" and \"-\", and does not start with \".\"."),
				 given ? 0 : errhint("Name the local file with option \"file_name\".")));
	if (n < 6 || pg_strcasecmp(file_name + n - 5, ".gguf") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("file name \"%s\" does not end in \".gguf\"", file_name),
				 errdetail("llamagpu loads GGUF models only."),
				 given ? 0 : errhint("Name the local file with option \"file_name\".")));
}

/* The model name: the argument, else the file name less ".gguf". */
static char *
model_name(const char *arg, const char *file_name)
{
	char	   *name;

	if (arg)
		name = pstrdup(arg);
	else
	{
		name = pnstrdup(file_name, strlen(file_name) - 5);
		for (char *p = name; *p; p++)
			if (strchr(MODEL_NAME_CHARS, *p) == NULL)
				*p = '-';
		if (strlen(name) > 63)
			name[63] = '\0';
	}
	if (name[0] == '\0' || strlen(name) > 63 || strspn(name, MODEL_NAME_CHARS) != strlen(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid model name \"%s\"", name),
				 errdetail("Model names have 1 to 63 characters: letters, digits, \"_\", \".\", \":\" and \"-\".")));
	return name;
}

/* An error if a model of that name is registered. */
static void
check_model_absent(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	int			ret;
	bool		exists;

	SPI_connect();
	ret = SPI_execute_with_args("SELECT 1 FROM llamagpu.llm_models WHERE name = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	exists = SPI_processed > 0;
	SPI_finish();
	if (exists)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", name),
				 errhint("Pass another name, or drop it first with llamagpu.llm_drop_model('%s').", name)));
}

/* model_dir, resolved; it must be set and exist. */
static char *
model_dir(void)
{
	char	   *real;
	char	   *dir;

	if (llamagpu_model_dir == NULL || llamagpu_model_dir[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("llamagpu.model_dir is not set"),
				 errdetail("Downloaded models are stored under llamagpu.model_dir."),
				 errhint("Set llamagpu.model_dir in postgresql.conf and reload.")));
	real = realpath(llamagpu_model_dir, NULL);
	if (real == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not access llamagpu.model_dir \"%s\": %m", llamagpu_model_dir)));
	dir = pstrdup(real);
	free(real);
	return dir;
}

/*
 * Take a slot for a new download: a free one, else the one that finished
 * longest ago.  Errors if the same file or model is being downloaded.
 * Called with the lock held; returns -1 (lock held) when all are busy.
 */
static int
take_slot(const char *path, const char *name, int *busy_with)
{
	int			best = -1;

	*busy_with = -1;
	for (int i = 0; i < LLAMAGPU_MAX_DOWNLOADS; i++)
	{
		LlamagpuDownload *dl = &llamagpu_downloads->slots[i];

		/* a worker that died without saying so (it crashed, or never started) */
		if (dl->id != 0 && !DOWNLOAD_FINISHED(dl->state) &&
			((dl->pid != 0 && kill(dl->pid, 0) != 0 && errno == ESRCH) ||
			 (dl->pid == 0 && TimestampDifferenceExceeds(dl->started_at, GetCurrentTimestamp(),
														  DOWNLOAD_START_GRACE_MS))))
		{
			dl->state = DOWNLOAD_FAILED;
			dl->sqlstate = ERRCODE_INTERNAL_ERROR;
			strlcpy(dl->error, "the download worker exited unexpectedly", sizeof(dl->error));
			dl->finished_at = GetCurrentTimestamp();
		}
		if (dl->id != 0 && !DOWNLOAD_FINISHED(dl->state))
		{
			if (strcmp(dl->path, path) == 0 || strcmp(dl->name, name) == 0)
				*busy_with = i;
			continue;
		}
		if (best < 0 || dl->id == 0 ||
			(llamagpu_downloads->slots[best].id != 0 &&
			 dl->finished_at < llamagpu_downloads->slots[best].finished_at))
			best = i;
	}
	return *busy_with >= 0 ? -1 : best;
}

/* Register the worker of download slot i. */
static bool
launch_worker(int i, int64 id, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	LlamagpuWorkerInit(&worker, "llamagpu_download_worker_main", "llamagpu download");
	snprintf(worker.bgw_name, BGW_MAXLEN, "llamagpu download %lld", (long long) id);
	worker.bgw_main_arg = Int32GetDatum(i);
	memcpy(worker.bgw_extra, &id, sizeof(id));
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/* What the waiter needs to remember for its error cleanup. */
typedef struct PullWait
{
	int			slot;
	int64		id;
} PullWait;

/* Ask download slot/id to stop (no-op once it finished); returns whether it ran. */
static bool
request_cancel(int slot, int64 id)
{
	LlamagpuDownload *dl = &llamagpu_downloads->slots[slot];
	Latch	   *latch = NULL;
	bool		running = false;

	SpinLockAcquire(&llamagpu_downloads->mutex);
	if (dl->id == id && !DOWNLOAD_FINISHED(dl->state))
	{
		dl->cancel = true;
		latch = dl->worker_latch;
		running = true;
	}
	if (dl->id == id && dl->waiter_latch == MyLatch)
		dl->waiter_latch = NULL;
	SpinLockRelease(&llamagpu_downloads->mutex);
	if (latch)
		SetLatch(latch);
	return running;
}

/* The waiting query was cancelled or its session ends: cancel the download too. */
static void
cancel_on_error(int code, Datum arg)
{
	PullWait   *w = (PullWait *) DatumGetPointer(arg);

	(void) request_cancel(w->slot, w->id);
}

/* Wait for the download in slot w->slot to finish; returns a copy of it. */
static void
wait_download(PullWait *w, BackgroundWorkerHandle *handle, LlamagpuDownload *out)
{
	LlamagpuDownload *dl = &llamagpu_downloads->slots[w->slot];

	for (;;)
	{
		pid_t		pid;
		bool		finished;

		SpinLockAcquire(&llamagpu_downloads->mutex);
		finished = dl->id != w->id || DOWNLOAD_FINISHED(dl->state);
		if (dl->id == w->id)
			memcpy(out, dl, sizeof(*out));
		SpinLockRelease(&llamagpu_downloads->mutex);
		if (finished)
			break;
		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			/* it may have finished just now: look again before saying it died */
			SpinLockAcquire(&llamagpu_downloads->mutex);
			finished = DOWNLOAD_FINISHED(dl->state);
			SpinLockRelease(&llamagpu_downloads->mutex);
			if (!finished)
				DownloadFinish(dl, DOWNLOAD_FAILED, ERRCODE_INTERNAL_ERROR,
							   "the download worker exited unexpectedly");
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 200, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* Raise the error a failed or cancelled download ended with. */
static void
report_failure(LlamagpuDownload *dl)
{
	int			code = dl->sqlstate ? dl->sqlstate : ERRCODE_CONNECTION_FAILURE;

	if (dl->state == DOWNLOAD_CANCELLED)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("download %lld of \"%s\" was cancelled", (long long) dl->id, dl->source),
				 errdetail("The partial file was removed.")));
	ereport(ERROR,
			(errcode(code),
			 errmsg("could not download \"%s\": %s", dl->source, dl->error),
			 dl->partial_kept ?
			 errdetail("%lld of %lld bytes are kept in \"%s\".", (long long) dl->bytes_done,
					   (long long) dl->bytes_total, dl->partial) :
			 errdetail("No file was kept and no model was registered."),
			 dl->partial_kept ?
			 errhint("Call llm_pull_model again to resume; llamagpu.llm_clean_downloads() removes the partial file.") :
			 code == ERRCODE_INSUFFICIENT_PRIVILEGE ?
			 errhint("Store a token in llamagpu.llm_secrets and name it with option \"token_secret\".") : 0));
}

/* The result row of llm_pull_model. */
static Datum
result_row(FunctionCallInfo fcinfo, LlamagpuDownload *dl)
{
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = Int64GetDatum(dl->id);
	values[1] = CStringGetTextDatum(dl->name);
	values[2] = CStringGetTextDatum(DownloadStateName(dl->state));
	values[3] = CStringGetTextDatum(dl->path);
	nulls[4] = dl->bytes_total < 0;
	values[4] = Int64GetDatum(dl->bytes_total);
	nulls[5] = dl->sha256[0] == '\0';
	values[5] = CStringGetTextDatum(dl->sha256);
	values[6] = BoolGetDatum(dl->verified);
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

/*
 * llm_pull_model(source, name, options): download a GGUF file into
 * model_dir and register it.  Everything that can fail before the transfer
 * (source, names, options, token, an existing model or file) fails here,
 * before a worker starts.
 */
Datum
llm_pull_model(PG_FUNCTION_ARGS)
{
	char	   *source;
	HubSource	src;
	PullOptions opt;
	char	   *file_name;
	char	   *name;
	char	   *dir;
	char	   *path;
	char	   *partial_dir;
	LlamagpuDownload *dl;
	LlamagpuDownload copy;
	BackgroundWorkerHandle *handle;
	PullWait	w;
	int			busy_with;

	if (llamagpu_downloads == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("llamagpu must be loaded via shared_preload_libraries"),
				 errhint("Add llamagpu to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot download a model during recovery"),
				 errdetail("A downloaded model is registered, which writes to the database."),
				 errhint("Pull it on the primary; the registration replicates.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source must not be null")));
	source = text_to_cstring(PG_GETARG_TEXT_PP(0));
	HubParseSource(source, &src);
	parse_options(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), &opt);

	file_name = opt.file_name ? opt.file_name : src.file_name;
	check_file_name(file_name, opt.file_name != NULL);
	name = model_name(PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)), file_name);
	check_model_absent(name);

	/* the token: named, else hf_token for hub sources when it exists */
	if (opt.token_secret)
	{
		/* only its existence (and the caller's right to read it) is checked here */
		char	   *token = HubSecretValue(opt.token_secret, false);

		explicit_bzero(token, strlen(token));
		pfree(token);
	}
	else if (src.is_hub && HubSecretExists(DEFAULT_TOKEN_SECRET))
		opt.token_secret = DEFAULT_TOKEN_SECRET;
	if (opt.token_secret && !src.https && !src.loopback)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("refusing to send token \"%s\" over plain http", opt.token_secret),
				 errdetail("The source \"%s\" is neither https nor on this host.", src.url),
				 errhint("Use an https:// URL or endpoint.")));

	dir = model_dir();
	path = psprintf("%s/%s", dir, file_name);
	if (access(path, F_OK) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_FILE),
				 errmsg("file \"%s\" already exists", path),
				 errhint("Register it with llamagpu.llm_register_model(), or name another file with option \"file_name\".")));
	partial_dir = psprintf("%s/%s", dir, DOWNLOAD_PARTIAL_DIR);
	if (mkdir(partial_dir, S_IRWXU) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", partial_dir)));

	SpinLockAcquire(&llamagpu_downloads->mutex);
	w.slot = take_slot(path, name, &busy_with);
	if (w.slot < 0)
	{
		int64		other = busy_with >= 0 ? llamagpu_downloads->slots[busy_with].id : 0;

		SpinLockRelease(&llamagpu_downloads->mutex);
		if (busy_with >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("model \"%s\" is already being downloaded", name),
					 errdetail("Download %lld writes the same model or file.", (long long) other),
					 errhint("Wait for it (see llamagpu.llm_stat_downloads), or cancel it with llamagpu.llm_cancel_download(%lld).",
							 (long long) other)));
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many downloads are running"),
				 errdetail("At most %d downloads run at the same time.", LLAMAGPU_MAX_DOWNLOADS),
				 errhint("Retry when one of those in llamagpu.llm_stat_downloads has finished.")));
	}
	dl = &llamagpu_downloads->slots[w.slot];
	memset(dl, 0, sizeof(*dl));
	dl->id = w.id = llamagpu_downloads->next_id++;
	dl->state = DOWNLOAD_STARTING;
	dl->dboid = MyDatabaseId;
	dl->userid = GetUserId();
	strlcpy(dl->source, source, sizeof(dl->source));
	strlcpy(dl->url, src.url, sizeof(dl->url));
	strlcpy(dl->name, name, sizeof(dl->name));
	strlcpy(dl->path, path, sizeof(dl->path));
	snprintf(dl->partial, sizeof(dl->partial), "%s/%s.part", partial_dir, file_name);
	strlcpy(dl->token_secret, opt.token_secret ? opt.token_secret : "", sizeof(dl->token_secret));
	strlcpy(dl->expected_sha256, opt.sha256 ? opt.sha256 : "", sizeof(dl->expected_sha256));
	strlcpy(dl->register_options, opt.register_options.data, sizeof(dl->register_options));
	dl->retries = opt.retries;
	dl->stall_timeout = opt.stall_timeout;
	dl->https_only = src.https;
	dl->send_token_over_http = src.loopback;
	dl->bytes_total = -1;
	dl->started_at = dl->updated_at = GetCurrentTimestamp();
	dl->waiter_latch = opt.wait ? MyLatch : NULL;
	SpinLockRelease(&llamagpu_downloads->mutex);

	if (!launch_worker(w.slot, w.id, &handle))
	{
		DownloadFinish(dl, DOWNLOAD_FAILED, ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
					   "no background worker slot was free");
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start a download worker"),
				 errhint("Raise max_worker_processes.")));
	}

	if (!opt.wait)
	{
		SpinLockAcquire(&llamagpu_downloads->mutex);
		memcpy(&copy, dl, sizeof(copy));
		SpinLockRelease(&llamagpu_downloads->mutex);
		PG_RETURN_DATUM(result_row(fcinfo, &copy));
	}

	PG_ENSURE_ERROR_CLEANUP(cancel_on_error, PointerGetDatum(&w));
	{
		wait_download(&w, handle, &copy);
	}
	PG_END_ENSURE_ERROR_CLEANUP(cancel_on_error, PointerGetDatum(&w));

	SpinLockAcquire(&llamagpu_downloads->mutex);
	if (dl->id == w.id && dl->waiter_latch == MyLatch)
		dl->waiter_latch = NULL;
	SpinLockRelease(&llamagpu_downloads->mutex);
	if (copy.state != DOWNLOAD_DONE)
		report_failure(&copy);
	if (!copy.verified)
		ereport(WARNING,
				(errmsg("the download of \"%s\" was not verified", copy.source),
				 errdetail("The server published no SHA-256 and option \"sha256\" was not given; the model's sha256 is %s.",
						   copy.sha256),
				 errhint("Compare it with the one its publisher gives.")));
	PG_RETURN_DATUM(result_row(fcinfo, &copy));
}

/*
 * llm_cancel_download(id): stop a running download and wait (up to 10 s)
 * until its worker removed the partial file.  False if it was not running.
 */
Datum
llm_cancel_download(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	int			slot = -1;

	if (llamagpu_downloads == NULL)
		PG_RETURN_BOOL(false);
	SpinLockAcquire(&llamagpu_downloads->mutex);
	for (int i = 0; i < LLAMAGPU_MAX_DOWNLOADS; i++)
		if (llamagpu_downloads->slots[i].id == id)
			slot = i;
	SpinLockRelease(&llamagpu_downloads->mutex);
	if (slot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("download %lld does not exist", (long long) id),
				 errhint("See the downloads in llamagpu.llm_stat_downloads.")));
	if (!request_cancel(slot, id))
		PG_RETURN_BOOL(false);
	for (int waited = 0; waited < 10000; waited += 50)
	{
		bool		finished;

		SpinLockAcquire(&llamagpu_downloads->mutex);
		finished = llamagpu_downloads->slots[slot].id != id ||
			DOWNLOAD_FINISHED(llamagpu_downloads->slots[slot].state);
		SpinLockRelease(&llamagpu_downloads->mutex);
		if (finished)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	PG_RETURN_BOOL(true);
}

/*
 * llm_clean_downloads(): remove the partial files kept for a resume (those
 * no running download writes); returns how many files were removed.
 */
Datum
llm_clean_downloads(PG_FUNCTION_ARGS)
{
	char	   *partial_dir = psprintf("%s/%s", model_dir(), DOWNLOAD_PARTIAL_DIR);
	DIR		   *d = AllocateDir(partial_dir);
	struct dirent *de;
	int			removed = 0;

	if (d == NULL && errno == ENOENT)
		PG_RETURN_INT32(0);
	while ((de = ReadDir(d, partial_dir)) != NULL)
	{
		char	   *p;
		bool		in_use = false;

		if (de->d_name[0] == '.')
			continue;
		p = psprintf("%s/%s", partial_dir, de->d_name);
		SpinLockAcquire(&llamagpu_downloads->mutex);
		for (int i = 0; i < LLAMAGPU_MAX_DOWNLOADS; i++)
		{
			LlamagpuDownload *dl = &llamagpu_downloads->slots[i];
			size_t		n = strlen(dl->partial);

			/* the partial file and its ".source" companion */
			if (dl->id != 0 && !DOWNLOAD_FINISHED(dl->state) && strncmp(dl->partial, p, n) == 0)
				in_use = true;
			if (dl->id != 0 && DOWNLOAD_FINISHED(dl->state) && strncmp(dl->partial, p, n) == 0)
				dl->partial_kept = false;
		}
		SpinLockRelease(&llamagpu_downloads->mutex);
		if (!in_use && unlink(p) == 0)
			removed++;
	}
	FreeDir(d);
	PG_RETURN_INT32(removed);
}
