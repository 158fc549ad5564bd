/*
 * guc.c — the llamagpu.* settings, all defined here.
 */
#include "llamagpu.h"

#include <limits.h>

#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "utils/guc.h"

char	   *llamagpu_engine_path = NULL;
char	   *llamagpu_socket_directory = NULL;
int			llamagpu_threads = 0;
char	   *llamagpu_device = NULL;
int			llamagpu_kv_cache_size = 1024;
int			llamagpu_context_size = 0;
char	   *llamagpu_default_model = NULL;
char	   *llamagpu_model_dir = NULL;
char	   *llamagpu_hub_endpoint = NULL;
int			llamagpu_request_timeout = 0;
int			llamagpu_connect_timeout = 10000;
int			llamagpu_log_level = 2;
int			llamagpu_log_min_duration = -1;
char	   *llamagpu_engine_options = NULL;
int			llamagpu_max_batch_tokens = 512;
int			llamagpu_max_queued_requests = 256;
bool		llamagpu_response_cache = false;
int			llamagpu_response_cache_max_rows = 0;
int			llamagpu_quota_entries = 1024;
int			llamagpu_usage_buffer_size = 8192;
int			llamagpu_usage_retention = 90;

static char default_engine_path[MAXPGPATH];

/*
 * llamagpu.device: auto, cpu, or cuda:N / hip:N / gpu:N.  Only the form is
 * checked here; whether the device exists is the engine's to say when it
 * starts (it logs the reason and the supervisor reports it).
 */
static bool
check_device(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;
	const char *num = NULL;

	if (v == NULL || pg_strcasecmp(v, "auto") == 0 || pg_strcasecmp(v, "cpu") == 0)
		return true;
	if (pg_strncasecmp(v, "cuda", 4) == 0)
		num = v + 4;
	else if (pg_strncasecmp(v, "hip", 3) == 0 || pg_strncasecmp(v, "gpu", 3) == 0)
		num = v + 3;
	if (num != NULL && *num == '\0')
		return true;
	if (num != NULL && *num == ':' && num[1] != '\0' && strlen(num + 1) <= 4 &&
		strspn(num + 1, "0123456789") == strlen(num + 1))
		return true;
	GUC_check_errdetail("The device must be \"auto\", \"cpu\", or \"cuda:N\" (also \"hip:N\", \"gpu:N\").");
	return false;
}

static const struct config_enum_entry log_level_options[] = {
	{"error", 0, false},
	{"warning", 1, false},
	{"info", 2, false},
	{"debug", 3, false},
	{NULL, 0, false}
};

/* The name the engine's --log-level takes. */
const char *
LlamagpuLogLevelName(int level)
{
	return log_level_options[level >= 0 && level <= 3 ? level : 2].name;
}

/* Define every llamagpu.* setting. */
void
LlamagpuGucInit(void)
{
	/* the engine is installed next to the postgres binary */
	strlcpy(default_engine_path, my_exec_path, MAXPGPATH);
	get_parent_directory(default_engine_path);
	join_path_components(default_engine_path, default_engine_path, "llamagpu");

	DefineCustomStringVariable("llamagpu.engine_path",
							   "Path of the llamagpu executable started as the engine.",
							   NULL,
							   &llamagpu_engine_path,
							   default_engine_path,
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("llamagpu.socket_directory",
							   "Directory of the engine's Unix socket (created with mode 0700).",
							   "Empty means pg_llamagpu in the data directory, or /tmp/llamagpu-PORT "
							   "when that path would be too long for a socket.",
							   &llamagpu_socket_directory,
							   "",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.threads",
							"Threads each loaded model's batched steps use in the engine.",
							"0 means one per CPU.",
							&llamagpu_threads,
							0, 0, 1024,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("llamagpu.device",
							   "Where the engine computes: auto, cpu, or a GPU such as cuda:0.",
							   "auto uses the first GPU when the engine was built with GPU support "
							   "and a device is visible, otherwise the CPU.  Takes effect when the "
							   "engine (re)starts.",
							   &llamagpu_device,
							   "auto",
							   PGC_SIGHUP, 0,
							   check_device, NULL, NULL);

	DefineCustomIntVariable("llamagpu.kv_cache_size",
							"Size of each loaded model's pool of KV cache blocks, shared by its running sequences.",
							"0 means room for 64 sequences (the engine's --max-seqs) of the context size.  When the pool is full, generations wait or are preempted and recomputed.",
							&llamagpu_kv_cache_size,
							1024, 0, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_MB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.context_size",
							"Context length (positions) of each request unless its model says otherwise.",
							"0 means the model's training context, at most 4096.",
							&llamagpu_context_size,
							0, 0, 1048576,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("llamagpu.default_model",
							   "Model used when a function's model argument is NULL.",
							   NULL,
							   &llamagpu_default_model,
							   "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("llamagpu.model_dir",
							   "Directory under which non-superusers may register model files.",
							   "Empty means only superusers may register models.",
							   &llamagpu_model_dir,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("llamagpu.hub_endpoint",
							   "Base URL of the model hub that hf:// sources name.",
							   "A Hugging Face mirror or an offline hub serving the same paths.",
							   &llamagpu_hub_endpoint,
							   "https://huggingface.co",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.request_timeout",
							"Longest time one engine request may run.",
							"0 disables the timeout.",
							&llamagpu_request_timeout,
							0, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.connect_timeout",
							"How long a session waits for the engine to become available.",
							NULL,
							&llamagpu_connect_timeout,
							10000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("llamagpu.log_level",
							 "Detail of the engine's messages in the server log.",
							 NULL,
							 &llamagpu_log_level,
							 2, log_level_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.log_min_duration",
							"Generations that take at least this long are logged by the engine.",
							"The line gives the time, model, backend PID, role, tokens and outcome; -1 logs none.",
							&llamagpu_log_min_duration,
							-1, -1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("llamagpu.engine_options",
							   "Extra command-line options for the engine, separated by spaces.",
							   NULL,
							   &llamagpu_engine_options,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.max_batch_tokens",
							"Most tokens the engine evaluates in one batched step of a model.",
							"Prompt tokens and one token per generating sequence share this budget.",
							&llamagpu_max_batch_tokens,
							512, 1, 1048576,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.max_queued_requests",
							"Most requests waiting to run per model before the engine answers busy.",
							"llm_generate_batch and table jobs keep fewer than this in flight, and retry on busy.",
							&llamagpu_max_queued_requests,
							256, 1, 1048576,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("llamagpu.response_cache",
							 "Answer greedy requests from llamagpu.response_cache when possible.",
							 "The option \"cache\" of a call overrides this.",
							 &llamagpu_response_cache,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.response_cache_max_rows",
							"Most rows kept in llamagpu.response_cache; the least recently used go first.",
							"0 means no limit.  Each store then reads up to this many index entries.",
							&llamagpu_response_cache_max_rows,
							0, 0, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.quota_entries",
							"Roles and API keys whose requests and tokens are counted in shared memory.",
							"Per database; a call whose role or key has a quota is refused when no counter is left.",
							&llamagpu_quota_entries,
							1024, 16, 1048576,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.usage_buffer_size",
							"Usage records the shared buffer holds until the usage flusher writes them to llm_usage.",
							"When it is full, records are dropped and counted (llm_stat_usage).",
							&llamagpu_usage_buffer_size,
							8192, 64, 1048576,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("llamagpu.usage_retention",
							"Days llm_usage keeps a row; the usage flusher deletes older ones.",
							"0 keeps rows forever.",
							&llamagpu_usage_retention,
							90, 0, 36500,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("llamagpu");
}

/*
 * The socket directory: the setting, else DataDir/pg_llamagpu, else (when
 * that would not fit a socket address) /tmp/llamagpu-PORT.
 */
const char *
LlamagpuSocketDir(void)
{
	static char dir[MAXPGPATH];

	if (dir[0] != '\0')
		return dir;
	if (llamagpu_socket_directory && llamagpu_socket_directory[0] != '\0')
		strlcpy(dir, llamagpu_socket_directory, sizeof(dir));
	else
	{
		snprintf(dir, sizeof(dir), "%s/pg_llamagpu", DataDir);
		if (!is_absolute_path(dir) ||
			strlen(dir) + 1 + strlen(LG_PROTO_SOCKET_NAME) >= 100)
			snprintf(dir, sizeof(dir), "/tmp/llamagpu-%d", PostPortNumber);
	}
	return dir;
}

/* The engine's socket: SOCKETDIR/engine.sock. */
const char *
LlamagpuSocketPath(void)
{
	static char path[MAXPGPATH];

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "%s/%s", LlamagpuSocketDir(), LG_PROTO_SOCKET_NAME);
	return path;
}
