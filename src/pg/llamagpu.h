/*
 * llamagpu.h — the Postgres side of llamagpu: settings, the supervisor
 * background worker, the engine protocol client and the SQL functions.
 */
#ifndef LLAMAGPU_H
#define LLAMAGPU_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "postmaster/bgworker.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "serve_protocol.h"

/* ---- settings (guc.c) ---- */

extern char *llamagpu_engine_path;
extern char *llamagpu_socket_directory;
extern int	llamagpu_threads;
extern char *llamagpu_device;
extern int	llamagpu_kv_cache_size;
extern int	llamagpu_context_size;
extern char *llamagpu_default_model;
extern char *llamagpu_model_dir;
extern int	llamagpu_request_timeout;
extern int	llamagpu_connect_timeout;
extern int	llamagpu_log_level;
extern char *llamagpu_engine_options;
extern int	llamagpu_max_batch_tokens;
extern int	llamagpu_max_queued_requests;
extern bool llamagpu_response_cache;
extern int	llamagpu_response_cache_max_rows;

void		LlamagpuGucInit(void);
/* The engine's socket path (DIR/engine.sock) from llamagpu.socket_directory. */
const char *LlamagpuSocketDir(void);
const char *LlamagpuSocketPath(void);
const char *LlamagpuLogLevelName(int level);

/* ---- shared state and the supervisor (llamagpu.c, supervisor.c) ---- */

typedef enum LlamagpuEngineState
{
	LLAMAGPU_ENGINE_STOPPED = 0,
	LLAMAGPU_ENGINE_RUNNING,
	LLAMAGPU_ENGINE_BACKOFF,	/* died; restarting after a delay */
	LLAMAGPU_ENGINE_STOPPING
} LlamagpuEngineState;

/* How many databases may run table jobs at the same time. */
#define LLAMAGPU_MAX_JOB_WORKERS 16

/* The job worker of one database (jobs.c). */
typedef struct LlamagpuJobSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* 0 while starting */
	Latch	   *latch;			/* the worker's latch, once it runs */
	uint64		requests;		/* bumped by every create/resume */
	TimestampTz launched_at;
} LlamagpuJobSlot;

typedef struct LlamagpuShared
{
	slock_t		mutex;
	pid_t		supervisor_pid;
	pid_t		engine_pid;
	LlamagpuEngineState state;
	int			restarts;		/* times the engine was started after the first */
	TimestampTz started_at;
	LlamagpuJobSlot jobs[LLAMAGPU_MAX_JOB_WORKERS];	/* under mutex */
} LlamagpuShared;

extern LlamagpuShared *llamagpu_shared;

void		LlamagpuShmemInit(void);
/* A database-connected dynamic worker running function, never restarted (the caller names it). */
void		LlamagpuWorkerInit(BackgroundWorker *worker, const char *function, const char *type);
/* The owner of table llamagpu.relname, or InvalidOid. */
Oid			LlamagpuRelationOwner(const char *relname);

/* What LlamagpuActAsOwner changed. */
typedef struct LlamagpuActAs
{
	Oid			userid;
	int			sec;
	int			nestlevel;
} LlamagpuActAs;

/* Become the owner of llamagpu.relname, search_path pg_catalog; and back. */
void		LlamagpuActAsOwner(const char *relname, LlamagpuActAs *save);
void		LlamagpuActAsUser(LlamagpuActAs *save);
void		LlamagpuSupervisorRegister(void);
PGDLLEXPORT void llamagpu_supervisor_main(Datum main_arg);

/* ---- the engine protocol client (engine_client.c) ---- */

typedef struct EngineConn EngineConn;

typedef struct EngineFrame
{
	char		type;
	uint32		id;
	StringInfoData payload;
} EngineFrame;

/*
 * Connect and say HELLO, waiting up to wait_ms for the engine to come up.
 * The connection lives in CurrentMemoryContext and is closed when that
 * context is reset or deleted (so an ERROR closes it, which the engine takes
 * as cancellation).  With wait_ms 0 and missing_ok, NULL when unreachable.
 */
EngineConn *EngineConnect(int wait_ms, bool missing_ok);
void		EngineClose(EngineConn *conn);
/* Send a request frame; returns its id. */
uint32		EngineSendRequest(EngineConn *conn, char type, StringInfo fields);
/* Wait for the next frame (interruptible); errors on a lost connection. */
void		EngineReadFrame(EngineConn *conn, EngineFrame *frame);
/* The same, giving up after timeout_ms (-1: never); false on timeout. */
bool		EngineReadFrameTimeout(EngineConn *conn, EngineFrame *frame, int timeout_ms);
/* Send CANCEL for request id if that can be done at once; never raises. */
void		EngineCancelNoWait(EngineConn *conn, uint32 id);
/* Send a request and wait for its RESULT; ERROR frames become ereports. */
void		EngineCall(EngineConn *conn, char type, StringInfo fields, EngineFrame *result);

/* Append "key\0value\0". */
void		EngineField(StringInfo buf, const char *key, const char *value);
void		EngineFieldInt(StringInfo buf, const char *key, int64 value);
void		EngineFieldFloat(StringInfo buf, const char *key, double value);
/* The first value of key in a payload of fields, or NULL. */
const char *EngineFrameGet(EngineFrame *frame, const char *key);
/* Call fn for every field named key. */
void		EngineFrameForEach(EngineFrame *frame, const char *key,
							   void (*fn) (const char *value, void *arg), void *arg);

/* ---- errors (errors.c) ---- */

/* Raise the ERROR an engine ERROR frame describes. */
void		EngineReportError(EngineFrame *frame) pg_attribute_noreturn();
/* An ERROR frame as a SQLSTATE and one line of text (not raised). */
char	   *EngineErrorText(EngineFrame *frame, int *sqlstate);
/*
 * The same for a GENERATE request; constrained: it carried a grammar, a
 * JSON schema or tools, so "unsupported" is about them, not the model.
 */
void		EngineReportGenerateError(EngineFrame *frame, bool constrained) pg_attribute_noreturn();
char	   *EngineGenerateErrorText(EngineFrame *frame, bool constrained, int *sqlstate);
/* Raise the ERROR for a lost engine connection. */
void		EngineReportLost(void) pg_attribute_noreturn();

/* ---- the model registry (models.c) ---- */

typedef struct LlamagpuModel
{
	char	   *name;
	char	   *path;
	int			context_size;	/* from the model's options; 0 = engine default */
	char	   *sha256;			/* the file's identity, for the response cache */
	/* a remote model (providers.c); provider NULL for a local one */
	char	   *provider;
	char	   *base_url;
	char	   *remote_model;
	char	   *api_key_secret;	/* name of its llm_secrets row, or NULL */
	char	   *options;		/* the model's options (JSON text): the provider's settings */
} LlamagpuModel;

/*
 * Look up a registered model by name (NULL: llamagpu.default_model) and
 * check that the current user may use it.
 */
LlamagpuModel *LlamagpuModelLookup(const char *name, bool check_usage);
/* Add the fields naming model to a request. */
void		LlamagpuModelFields(StringInfo buf, LlamagpuModel *model);

/* ---- remote models (providers.c) ---- */

/* Add a remote model's endpoint and API key (read as llm_secrets' owner) to a GENERATE. */
void		LlamagpuProviderFields(StringInfo buf, LlamagpuModel *model);

/* ---- generation requests (generate_request.c) ---- */

/* The arguments llm_generate takes after the prompt; has_x false = NULL. */
typedef struct GenerateArgs
{
	char	   *model;			/* NULL: llamagpu.default_model */
	bool		has_max_tokens;
	int32		max_tokens;
	bool		has_temperature;
	double		temperature;
	bool		has_top_p;
	double		top_p;
	bool		has_top_k;
	int32		top_k;
	bool		has_seed;
	int64		seed;
	ArrayType  *stop;			/* text[] or NULL */
	Jsonb	   *options;		/* or NULL */
	/* set by the calling function, not by the user's options: */
	const char *grammar;		/* GBNF text (llm_generate_grammar, llm_classify) */
	const char *json_schema;	/* JSON Schema text (llm_generate_json) */
	bool		chat;			/* llm_chat: the chat_template option is allowed */
} GenerateArgs;

/* A checked GENERATE request, less its prompt. */
typedef struct GenerateRequest
{
	LlamagpuModel *model;
	StringInfoData key_fields;	/* what decides the output: the cache key covers these */
	StringInfoData other_fields;	/* model path, monitoring, priority, timeout */
	bool		greedy;			/* temperature 0 */
	bool		use_cache;		/* answer from and store in the response cache */
	bool		constrained;	/* a grammar, JSON schema or tools shape the output */
	bool		json;			/* a JSON schema: the output is one JSON value */
	bool		chat;			/* messages instead of a prompt (llm_chat) */
	const char *kind;			/* what usage records call it: generate, chat, json, batch, job, ... */
} GenerateRequest;

/* Arguments model.. options of llm_generate-like functions, from argument first on. */
void		GenerateArgsFromCall(FunctionCallInfo fcinfo, int first, GenerateArgs *args);
/* The same for functions without the stop argument (model .. seed, options). */
void		GenerateArgsFromCallNoStop(FunctionCallInfo fcinfo, int first, GenerateArgs *args);
/* A JSON Schema given as jsonb (object, boolean, or a string holding the schema's text) as text. */
char	   *GenerateSchemaText(JsonbValue *v, const char *what);
/* Check the arguments, look up the model, build the request. */
void		GenerateRequestBuild(GenerateArgs *args, GenerateRequest *req);
/* A prompt argument as UTF-8, checked (not empty). */
char	   *GeneratePromptUtf8(text *prompt);
/* The GENERATE payload for one prompt (UTF-8); a chat request sends no prompt. */
void		GenerateRequestPayload(GenerateRequest *req, const char *prompt, StringInfo out);

/* ---- structured output (structured.c) ---- */

/* Whether an output (UTF-8, as the engine sent it) is one whole JSON value. */
bool		GenerateOutputIsWholeJson(const char *utf8, int len);

/* ---- pipelined generation of many prompts (generate_batch.c) ---- */

typedef enum BatchItemState
{
	BATCH_ITEM_SKIP,			/* NULL prompt: no request */
	BATCH_ITEM_PENDING,			/* to be sent (again, after busy) */
	BATCH_ITEM_SENT,
	BATCH_ITEM_DONE,
	BATCH_ITEM_FAILED			/* error holds the engine's ERROR frame */
} BatchItemState;

typedef struct BatchItem
{
	const char *prompt;			/* UTF-8; NULL: skipped */
	BatchItemState state;
	uint32		id;
	StringInfoData output;		/* UTF-8 as the engine sent it */
	EngineFrame error;
	int64		n_gen;
	int64		n_prompt;
	char		finish[16];		/* the END frame's finish ("" when unknown: cached) */
	char	   *message;		/* the END frame's message (chat requests), or NULL */
	bool		cached;			/* answered from the response cache */
	uint8		key[32];		/* response cache key, when the request uses the cache */
} BatchItem;

/*
 * Generate every item on one connection, at most `window` requests in
 * flight.  raise_errors: the first failure is raised (naming its item with
 * `what` unless NULL), and everything in flight is cancelled; otherwise
 * failures stay in the items.  The response cache is used as req says.
 */
void		GenerateBatchRun(GenerateRequest *req, BatchItem *items, int n,
							 int window, bool raise_errors, const char *what);
/* Requests in flight per batch: 64, and never more than the engine queues. */
int			GenerateBatchWindow(void);

/* ---- tools (tool_schema.c, tool_calls.c) ---- */

/* How a parameter type is written in JSON. */
typedef enum ToolKind
{
	TOOL_INTEGER,
	TOOL_NUMBER,
	TOOL_BOOLEAN,
	TOOL_STRING,
	TOOL_ENUM,					/* a string, one of the labels */
	TOOL_JSON,					/* any JSON value */
	TOOL_ARRAY,
	TOOL_COMPOSITE,				/* an object, one member per attribute */
	TOOL_UNSUPPORTED
} ToolKind;

/* The kind of a type (domains are their base type); *elem: an array's element type. */
ToolKind	ToolTypeKind(Oid typid, Oid *elem);

/* A tool function's arguments, checked: names, types, and how many have defaults. */
typedef struct ToolSignature
{
	char	   *schema;			/* the function's schema and name, quoted */
	char	   *name;
	int			nargs;
	Oid		   *types;
	char	  **names;
	int			ndefaults;		/* the last ndefaults arguments may be left out */
	bool		retset;
} ToolSignature;

/* Read and check the signature of function fn (errors name what is wrong). */
void		ToolSignatureRead(Oid fn, ToolSignature *sig);
/* The OpenAI function definition of a registered tool (JSON text), or NULL. */
char	   *ToolDefinitionJson(const char *name);

/* ---- response cache (response_cache.c) ---- */

/* The cache key of one request (sha256 of a canonical form). */
void		ResponseCacheKey(GenerateRequest *req, const char *prompt, uint8 *key);
/* The cached output (UTF-8) for key, or NULL; counts the hit. */
char	   *ResponseCacheLookup(GenerateRequest *req, const uint8 *key);
/* Store an output, when this transaction may write. */
void		ResponseCacheStore(GenerateRequest *req, const uint8 *key, const char *output, int len);

/* ---- table jobs (jobs.c, job_worker.c) ---- */

#define JOB_BATCH_SIZE_DEFAULT	32
#define JOB_BATCH_SIZE_MAX		1024

/*
 * A job's options jsonb as llm_generate's arguments, and its batch size.
 * llm_chat takes its options the same way, with batch_size NULL (the key is
 * then an unknown option).
 */
void		JobOptionsToArgs(Jsonb *options, const char *model, GenerateArgs *args, int *batch_size);
/* Have the job worker of this database started (or woken) when the transaction commits. */
void		LlamagpuJobWakeAtCommit(void);
/* Start (or wake) the job worker of a database. */
void		LlamagpuJobWorkerEnsure(Oid dboid);
/* Launch the job workers of databases with active jobs (supervisor start). */
void		LlamagpuJobWorkersRelaunch(void);
/* The marker file of a database with active jobs. */
void		LlamagpuJobMarkerPath(Oid dboid, char *path, size_t size);
/* Create the marker (a failure only warns). */
void		LlamagpuJobMarkerWrite(Oid dboid);
PGDLLEXPORT void llamagpu_job_worker_main(Datum main_arg);

/* ---- embeddings (embed_request.c, embed.c, embedding_jobs.c) ---- */

/* What EmbedRun returns: n vectors of n_embd floats, in input order. */
typedef struct EmbedResult
{
	int			n;
	int			n_embd;			/* 0 when n is 0 */
	float	   *vectors;		/* [n][n_embd] */
	int32	   *n_tokens;		/* [n] tokens of each input (after truncation) */
	int64		tokens;			/* all inputs' tokens */
	int			n_truncated;
} EmbedResult;

/*
 * Embed inputs[0..n) (UTF-8, not empty) with model on one engine
 * connection; engine errors are raised (an input named by its number).
 * One request of kind ("embed", "embed_batch", "embed_job") for the quota
 * and the usage records.
 */
void		EmbedRun(LlamagpuModel *model, const char *const *inputs, int n, bool normalize,
					 bool truncate, const char *kind, EmbedResult *res);
/* An input argument as UTF-8; it must not be empty. */
char	   *EmbedInputUtf8(text *input);
/* A vector as a real[] (float4) array. */
ArrayType  *EmbedVectorArray(const float *v, int n);
/* What an embedding job step did. */
typedef enum EmbeddingStep
{
	EMBEDDING_STEP_NONE,		/* no job has rows pending */
	EMBEDDING_STEP_WORKED,		/* a batch (or a job failed) */
	EMBEDDING_STEP_BLOCKED		/* rows pending, all locked by transactions changing them */
} EmbeddingStep;

/* One batch of an embedding job (the job worker's step, in its transaction, SPI connected). */
EmbeddingStep EmbeddingJobStep(void);

/* ---- the API key of the current transaction (request_key.c) ---- */

/*
 * What llm_pre_request learned from a valid API key: who the requests of
 * this transaction act for and what the key itself is limited to.  Set only
 * by C code after the key's secret was checked, so SQL cannot forge it.
 */
typedef struct LlamagpuApiKey
{
	int64		id;				/* llm_api_keys.id */
	char		name[NAMEDATALEN];
	Oid			role;			/* the role the key acts as */
	int32		requests_per_minute;	/* the key's own limit; 0: none */
	int64		tokens_per_day; /* the key's own limit; 0: none */
} LlamagpuApiKey;

/* The key of the current transaction, or NULL (no key: a session or JWT). */
const LlamagpuApiKey *LlamagpuCurrentApiKey(void);
/* Set it (NULL clears); it is cleared when the transaction ends. */
void		LlamagpuSetCurrentApiKey(const LlamagpuApiKey *key);
/* Shared memory through which parallel workers see their leader's key. */
void		RequestKeyShmemRequest(void);
void		RequestKeyShmemInit(void);

/* ---- quotas, rate limits and usage (quota.c, usage.c, usage_worker.c) ---- */

extern int	llamagpu_quota_entries;
extern int	llamagpu_usage_buffer_size;
extern int	llamagpu_usage_retention;

/* How many databases may have a usage flusher at the same time. */
#define LLAMAGPU_MAX_USAGE_WORKERS 16

/*
 * One admitted call, from admission to its usage record: who it ran as and
 * for which key, taken when it was admitted, so the record and the token
 * charge name the same role and key whatever the call does meanwhile.
 */
typedef struct LlamagpuUsageScope
{
	bool		open;			/* admitted and not yet finished */
	Oid			role;			/* the current user: its privileges and quota applied */
	NameData	role_name;
	Oid			outer_role;		/* the role outside any SECURITY DEFINER function */
	NameData	outer_role_name;
	int64		key_id;			/* 0: no API key */
	NameData	key_name;
	char		model[64];
	char		kind[16];		/* generate, batch, stream, chat, json, ... */
	int			n_requests;
	TimestampTz started;
	int64		pieces;			/* what a stream returned so far (its tokens if cut short) */
} LlamagpuUsageScope;

/*
 * Admit n_requests requests of kind for the current user and API key: the
 * request-per-minute buckets of both are charged, and the call is refused
 * with SQLSTATE 53400 when a bucket or a day's tokens would be exceeded (a
 * usage record with status "rejected" is written then).  scope then belongs
 * to the caller, who must LlamagpuUsageFinish it, also on error.
 */
void		LlamagpuQuotaAdmit(LlamagpuUsageScope *scope, LlamagpuModel *model,
							   const char *kind, int n_requests);
/* The most requests one call of the current user can be admitted with (INT_MAX: any). */
int			LlamagpuQuotaMaxRequests(void);
/*
 * The call is over: charge its tokens to the role's and key's day and
 * append its usage record (never raises; sqlstate 0: succeeded; errors:
 * how many of its requests failed).  A second call does nothing.
 */
void		LlamagpuUsageFinish(LlamagpuUsageScope *scope, int64 prompt_tokens,
								int64 completion_tokens, int errors, int sqlstate);
/* The same, from a PG_CATCH block: the error being handled gives the SQLSTATE. */
void		LlamagpuUsageFinishError(LlamagpuUsageScope *scope, int64 prompt_tokens,
									 int64 completion_tokens, int errors);
/* Shared memory for counters and records (shmem request and startup hooks). */
Size		LlamagpuQuotaShmemSize(void);
void		LlamagpuQuotaShmemInit(void);
Size		LlamagpuUsageShmemSize(void);
void		LlamagpuUsageShmemInit(void);
void		LlamagpuQuotaShmemRequest(void);
void		LlamagpuUsageShmemRequest(void);
/* Charge tokens to the counters of a scope's role and key (usage.c calls it). */
void		LlamagpuQuotaChargeTokens(LlamagpuUsageScope *scope, int64 tokens);
/* Append a finished call's record to the shared buffer (never raises). */
void		LlamagpuUsageAppend(LlamagpuUsageScope *scope, int64 prompt_tokens,
								int64 completion_tokens, int errors, int sqlstate,
								const char *status);
/* Start (or wake) the usage flusher of a database (never raises). */
void		LlamagpuUsageWorkerEnsure(Oid dboid);
PGDLLEXPORT void llamagpu_usage_worker_main(Datum main_arg);

/* ---- API keys (api_key_secret.c, api_keys.c, api_key_auth.c, api_key_usage.c) ---- */

/*
 * An API key reads lgk_<prefix>_<secret>: the tag, 12 base64url characters
 * of public prefix (72 random bits: it finds the key's row and names the
 * key in logs) and 43 of secret (256 random bits).  The database keeps
 * only sha256(salt || secret) with a 16-byte random salt.
 */
#define API_KEY_TAG				"lgk_"
#define API_KEY_TAG_LEN			4
#define API_KEY_PREFIX_LEN		12
#define API_KEY_SECRET_LEN		43
#define API_KEY_LEN				(API_KEY_TAG_LEN + API_KEY_PREFIX_LEN + 1 + API_KEY_SECRET_LEN)
#define API_KEY_SALT_LEN		16
#define API_KEY_HASH_LEN		32

/* A key's text split into its parts (each NUL-terminated). */
typedef struct ApiKeyParts
{
	char		prefix[API_KEY_PREFIX_LEN + 1];
	char		secret[API_KEY_SECRET_LEN + 1];
} ApiKeyParts;

/* A new key: its text (API_KEY_LEN + 1 bytes), and the salt and hash to store. */
void		ApiKeyGenerate(char *key, ApiKeyParts *parts, uint8 *salt, uint8 *hash);
/* Split a key's text; an ERROR (SQLSTATE 28000) says what is wrong with it. */
void		ApiKeyParse(const char *key, size_t len, ApiKeyParts *parts);
/* sha256(salt || secret). */
void		ApiKeyHash(const uint8 *salt, const char *secret, uint8 *hash);
/* Compare two hashes in time that does not depend on where they differ. */
bool		ApiKeyHashEqual(const uint8 *a, const uint8 *b);

/* Reserve the shared table of keys' last-used times (when preloaded). */
void		ApiKeyUsageShmemRegister(void);
/* Note that key keyid of this database was used now. */
void		ApiKeyUsageRecord(int64 keyid);

/* ---- model downloads (download_shmem.c, pull.c, pull_worker.c, hub.c, remote_files.c) ---- */

extern char *llamagpu_hub_endpoint;

/* Downloads shown at once: running ones, then the most recent finished ones. */
#define LLAMAGPU_MAX_DOWNLOADS	16
#define DOWNLOAD_PARTIAL_DIR	".llamagpu-downloads"	/* under model_dir */

typedef enum DownloadState
{
	DOWNLOAD_FREE = 0,
	DOWNLOAD_STARTING,			/* the worker was registered, not yet running */
	DOWNLOAD_RUNNING,			/* transferring (or waiting to retry) */
	DOWNLOAD_VERIFYING,			/* complete; checking size and SHA-256 */
	DOWNLOAD_REGISTERING,		/* verified and renamed; llm_register_model runs */
	DOWNLOAD_DONE,
	DOWNLOAD_FAILED,
	DOWNLOAD_CANCELLED
} DownloadState;

#define DOWNLOAD_FINISHED(s) ((s) >= DOWNLOAD_DONE)

/* One download, in shared memory under LlamagpuDownloads.mutex. */
typedef struct LlamagpuDownload
{
	int64		id;				/* 0: never used */
	DownloadState state;
	Oid			dboid;
	Oid			userid;			/* who asked */
	pid_t		pid;			/* the worker, once it runs */
	Latch	   *worker_latch;
	Latch	   *waiter_latch;	/* the llm_pull_model waiting, or NULL */
	bool		cancel;			/* asked to stop */
	char		source[1024];	/* as given (never holds a token) */
	char		url[2048];		/* what is fetched first */
	char		name[64];		/* the model to register */
	char		path[MAXPGPATH];	/* the final file */
	char		partial[MAXPGPATH]; /* the file being written */
	char		token_secret[64];	/* llm_secrets name, or "" */
	char		expected_sha256[65];	/* given in options, or "" */
	char		sha256[65];		/* the file's, once verified */
	char		register_options[512];	/* jsonb text for llm_register_model */
	int			retries;		/* transient failures retried */
	int			stall_timeout;	/* seconds without data before a retry */
	bool		https_only;		/* refuse redirects to plain http */
	bool		send_token_over_http;	/* the first host is loopback */
	int64		bytes_done;
	int64		bytes_total;	/* -1: unknown */
	int64		resumed_from;	/* bytes kept from an earlier attempt */
	double		rate;			/* bytes per second, this attempt */
	int			attempts;
	bool		verified;		/* a published or given SHA-256 matched */
	bool		partial_kept;	/* failed, partial file kept for a resume */
	int			sqlstate;		/* of the failure */
	char		error[512];
	TimestampTz started_at;
	TimestampTz updated_at;
	TimestampTz finished_at;
} LlamagpuDownload;

typedef struct LlamagpuDownloads
{
	slock_t		mutex;
	int64		next_id;
	LlamagpuDownload slots[LLAMAGPU_MAX_DOWNLOADS];
} LlamagpuDownloads;

extern LlamagpuDownloads *llamagpu_downloads;

Size		LlamagpuDownloadsShmemSize(void);
void		LlamagpuDownloadsShmemInit(void);
const char *DownloadStateName(DownloadState state);
/* Finish a download: state, SQLSTATE and message; wakes the waiter. */
void		DownloadFinish(LlamagpuDownload *dl, DownloadState state, int sqlstate,
						   const char *fmt,...) pg_attribute_printf(4, 5);
PGDLLEXPORT void llamagpu_download_worker_main(Datum main_arg);

/* A parsed source: the URL to fetch and the file name to give it. */
typedef struct HubSource
{
	char	   *url;
	char	   *file_name;		/* the last path segment, decoded */
	bool		is_hub;			/* hf:// (the default token applies) */
	bool		https;
	bool		loopback;		/* the host is 127.0.0.1, ::1 or localhost */
} HubSource;

/* hf://org/repo/file.gguf[@rev] or an http(s) URL. */
void		HubParseSource(const char *source, HubSource *src);
/* The endpoint setting without a trailing slash, checked. */
char	   *HubEndpoint(void);
/* Whether url's host is a loopback address (a token may go there over http). */
bool		HubUrlIsLoopback(const char *url);
/* The quantization a GGUF file name says (Q4_K_M, F16, ...), or NULL. */
char	   *HubQuantizationFromName(const char *file_name);
/* A secret's value, read as the current user (NULL if missing_ok and absent). */
char	   *HubSecretValue(const char *secret, bool missing_ok);
/* Whether the current user may read llm_secrets and a secret of that name exists. */
bool		HubSecretExists(const char *secret);
struct curl_slist;

/* A libcurl easy handle for url with the options every hub request uses. */
void	   *HubCurlNew(const char *url, const char *token, bool https_only,
					   struct curl_slist **headers);

/* ---- engine statistics (stat_status.c, stat_engine.c, stat_models.c, stat_metrics.c) ---- */

extern int	llamagpu_log_min_duration;

/* The counters of a STATUS "sched" line after the model's name, in order (docs/protocol.md). */
#define STAT_SCHED_QUEUED			0
#define STAT_SCHED_RUNNING			1
#define STAT_SCHED_SUBMITTED		2
#define STAT_SCHED_FINISHED			3
#define STAT_SCHED_REJECTED			4
#define STAT_SCHED_STEPS			5
#define STAT_SCHED_BATCH_TOKENS		6
#define STAT_SCHED_PROMPT_TOKENS	7
#define STAT_SCHED_GEN_TOKENS		8
#define STAT_SCHED_PREEMPTIONS		9
#define STAT_SCHED_MAX_BATCH_TOKENS 10
#define STAT_SCHED_KV_BLOCK_SIZE	11
#define STAT_SCHED_KV_TOTAL			12
#define STAT_SCHED_KV_USED			13
#define STAT_SCHED_KV_CACHED		14
#define STAT_SCHED_PREFIX_LOOKUP	15
#define STAT_SCHED_PREFIX_HIT		16
#define STAT_SCHED_FIELDS			17

#define STAT_HIST_TTFT		0
#define STAT_HIST_ITL		1
#define STAT_HIST_E2E		2
#define STAT_HIST_COUNT		3
#define STAT_MAX_BUCKETS	64

/* The STATUS names of the histogram kinds ("ttft", "itl", "e2e"). */
extern const char *const StatHistNames[STAT_HIST_COUNT];

/* A latency histogram in seconds: cumulative counts per upper bound, the last +Inf. */
typedef struct StatHist
{
	bool		present;
	int64		count;
	double		sum;
	int			nbounds;
	double	   *bounds;
	char	  **bound_text;		/* as the engine wrote them (Prometheus le labels) */
	int64	   *cum;			/* nbounds + 1 */
} StatHist;

/* How many of a model's requests ended one way ("stop", "timeout", ...). */
typedef struct StatOutcome
{
	char	   *name;
	int64		count;
} StatOutcome;

/* One model as STATUS describes it. */
typedef struct StatModel
{
	char	   *name;
	bool		loaded;			/* listed by a "model" line */
	char	   *path;
	int64		refs;			/* requests using it now */
	bool		has_sched;
	int64		sched[STAT_SCHED_FIELDS];
	bool		has_memory;
	char	   *device;
	int64		weights_bytes;
	int64		kv_bytes;
	bool		has_metrics;
	int64		requests;		/* ended, any outcome */
	int64		errors;			/* ended with an error other than cancellation */
	int64		prompt_tokens;
	int64		gen_tokens;
	int64		embed_requests; /* of requests, the embedding ones */
	int64		embed_inputs;	/* vectors they returned */
	int64		embed_prompt_tokens;	/* of prompt_tokens, theirs */
	List	   *outcomes;		/* of StatOutcome */
	StatHist	hist[STAT_HIST_COUNT];
} StatModel;

/* The engine's STATUS reply. */
typedef struct EngineStatus
{
	bool		reachable;		/* false: not running; the rest is empty */
	int			pid;
	bool		has_uptime;
	int64		uptime_ms;
	int64		stats_reset_unix_us;
	bool		has_device_memory;
	char	   *device;
	int64		device_memory_used;
	int64		device_memory_total;
	bool		has_grammar_cache;
	int64		grammar_cache_entries;
	int64		grammar_cache_hits;
	int64		grammar_cache_misses;
	List	   *models;			/* of StatModel */
} EngineStatus;

/* Ask the engine for STATUS (reset: zero its request counters first); never waits for it to start. */
void		EngineStatusFetch(EngineStatus *st, bool reset);
/* A histogram's q-quantile in seconds, as Prometheus' histogram_quantile; NaN when empty. */
double		StatHistQuantile(const StatHist *h, double q);
/* Sums over the loaded models' schedulers. */
void		EngineStatusTotals(const EngineStatus *st, int64 *queued, int64 *running, int64 *kv_used,
							   int64 *kv_total, int64 *prefix_lookup, int64 *prefix_hit);
/* Unix microseconds as a timestamptz. */
#define StatUnixUsToTimestamp(us) \
	((TimestampTz) (us) - ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY))

/* ---- engine plugins (plugins.c, plugin_files.c; docs/plugins.md) ---- */

struct JsonbValue;

/* Check the GENERATE option logits_processor or plugin_options and add its field. */
void		PluginGenerateOption(StringInfo fields, const char *key, struct JsonbValue *v);
/* DataDir/llamagpu_plugins: the plugin lists and crash marks. */
const char *PluginDir(void);
/* Replace a file's content atomically (temporary file and rename). */
void		PluginWriteFile(const char *path, const char *data, size_t len);
/* The crash marks: names and reasons (lists of C strings, the same length). */
void		PluginReadCrashed(List **names, List **reasons);
/* Mark names (C strings) disabled after crashes, for reason. */
void		PluginMarkCrashed(List *names, const char *reason);
/* Forget the crash marks of names (C strings). */
void		PluginClearCrashed(List *names);
/*
 * The engine's --plugin values (NAME:SHA256:PATH) for every database's
 * enabled engine plugins less the crashed ones; *names gets their names.
 */
List	   *PluginEngineArgs(List **names);
/* DROP EXTENSION llamagpu in this transaction: this database's plugin list goes at commit. */
void		PluginExtensionDropped(void);
/* DROP DATABASE db in this transaction: its plugin list goes at commit. */
void		PluginDatabaseDropped(Oid db);
/* The object access hook that calls the two above (plugin_drop.c). */
void		PluginDropHookInit(void);

/* ---- text (utf8.c) ---- */

/* Text from the engine's UTF-8 (invalid bytes become U+FFFD). */
text	   *LlamagpuTextFromUtf8(const char *s, int len);
/* A text argument converted to UTF-8. */
char	   *LlamagpuUtf8FromText(text *t);

#endif							/* LLAMAGPU_H */
