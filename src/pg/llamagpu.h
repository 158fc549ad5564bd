/*
 * llamagpu.h — the Postgres side of llamagpu: settings, the supervisor
 * background worker, the engine protocol client and the SQL functions.
 */
#ifndef LLAMAGPU_H
#define LLAMAGPU_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "serve_protocol.h"

/* ---- settings (guc.c) ---- */

extern char *llamagpu_engine_path;
extern char *llamagpu_socket_directory;
extern int	llamagpu_threads;
extern int	llamagpu_kv_cache_size;
extern int	llamagpu_context_size;
extern char *llamagpu_default_model;
extern char *llamagpu_model_dir;
extern int	llamagpu_request_timeout;
extern int	llamagpu_connect_timeout;
extern int	llamagpu_log_level;
extern char *llamagpu_engine_options;

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

typedef struct LlamagpuShared
{
	slock_t		mutex;
	pid_t		supervisor_pid;
	pid_t		engine_pid;
	LlamagpuEngineState state;
	int			restarts;		/* times the engine was started after the first */
	TimestampTz started_at;
} LlamagpuShared;

extern LlamagpuShared *llamagpu_shared;

void		LlamagpuShmemInit(void);
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
/* Raise the ERROR for a lost engine connection. */
void		EngineReportLost(void) pg_attribute_noreturn();

/* ---- the model registry (models.c) ---- */

typedef struct LlamagpuModel
{
	char	   *name;
	char	   *path;
	int			context_size;	/* from the model's options; 0 = engine default */
} LlamagpuModel;

/*
 * Look up a registered model by name (NULL: llamagpu.default_model) and
 * check that the current user may use it.
 */
LlamagpuModel *LlamagpuModelLookup(const char *name, bool check_usage);
/* Add the fields naming model to a request. */
void		LlamagpuModelFields(StringInfo buf, LlamagpuModel *model);

/* ---- text (utf8.c) ---- */

/* Text from the engine's UTF-8 (invalid bytes become U+FFFD). */
text	   *LlamagpuTextFromUtf8(const char *s, int len);
/* A text argument converted to UTF-8. */
char	   *LlamagpuUtf8FromText(text *t);

#endif							/* LLAMAGPU_H */
