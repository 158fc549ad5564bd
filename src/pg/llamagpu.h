/*
 * llamagpu.h — the Postgres side of llamagpu: settings, the supervisor
 * background worker, the engine protocol client and the SQL functions.
 */
#ifndef LLAMAGPU_H
#define LLAMAGPU_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
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
 */
void		EmbedRun(LlamagpuModel *model, const char *const *inputs, int n, bool normalize,
					 bool truncate, EmbedResult *res);
/* An input argument as UTF-8; it must not be empty. */
char	   *EmbedInputUtf8(text *input);
/* A vector as a real[] (float4) array. */
ArrayType  *EmbedVectorArray(const float *v, int n);
/*
 * One batch of an embedding job (the job worker's step, in its transaction,
 * SPI connected); false when no embedding job has rows pending.
 */
bool		EmbeddingJobStep(void);

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

/* ---- text (utf8.c) ---- */

/* Text from the engine's UTF-8 (invalid bytes become U+FFFD). */
text	   *LlamagpuTextFromUtf8(const char *s, int len);
/* A text argument converted to UTF-8. */
char	   *LlamagpuUtf8FromText(text *t);

#endif							/* LLAMAGPU_H */
