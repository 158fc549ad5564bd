/*
 * embed_request.c — embeddings from the engine: EMBED requests on one
 * connection (docs/protocol.md), shared by llm_embed, llm_embed_batch and
 * embedding jobs.
 *
 * A long list goes out as several EMBED requests of EMBED_CHUNK inputs, a
 * few in flight at once, so the engine can start on the first while the
 * others arrive and no reply grows huge.  A busy reply puts its chunk back
 * to be sent again after a pause.  Each reply carries the vectors as base64
 * of little-endian float32, decoded here bit for bit.
 */
#include "llamagpu.h"

#include "common/base64.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/wait_event.h"

#define EMBED_CHUNK			16	/* inputs per EMBED request */
#define EMBED_WINDOW		4	/* requests in flight */
#define BUSY_PAUSE_MIN_MS	10
#define BUSY_PAUSE_MAX_MS	1000

typedef enum ChunkState
{
	CHUNK_PENDING,
	CHUNK_SENT,
	CHUNK_DONE
} ChunkState;

typedef struct EmbedChunk
{
	int			first;			/* index of its first input */
	int			n;
	ChunkState	state;
	uint32		id;
} EmbedChunk;

/* Raise the ERROR an EMBED request's ERROR frame describes. */
static void
embed_report_error(EngineFrame *frame)
{
	const char *status = EngineFrameGet(frame, "status");
	const char *message = EngineFrameGet(frame, "message");
	char	   *detail = message ? psprintf("%s.", message) : NULL;

	if (detail)
		detail[0] = pg_toupper((unsigned char) detail[0]);
	if (status && strcmp(status, LG_WIRE_CONTEXT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("input is too long for the model's context"),
				 detail ? errdetail_internal("%s", detail) : 0,
				 errhint("Shorten the input, or pass truncate => true to embed its first tokens only.")));
	if (status && strcmp(status, LG_WIRE_UNSUPPORTED) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model cannot compute embeddings"),
				 detail ? errdetail_internal("%s", detail) : 0,
				 errhint("Use a model the engine can embed with: a BERT-family encoder (bert, nomic-bert) or a llama-family decoder.")));
	if (status && strcmp(status, LG_WIRE_ARG) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid embedding request"),
				 detail ? errdetail_internal("%s", detail) : 0));
	EngineReportError(frame);
}

/* The fields every EMBED request of this call carries. */
static void
embed_common_fields(LlamagpuModel *model, bool normalize, bool truncate, StringInfo buf)
{
	initStringInfo(buf);
	EngineField(buf, "model", model->name);
	EngineField(buf, "path", model->path);
	/* a remote model: the engine asks its provider's /embeddings (docs/models.md, "Remote providers") */
	if (model->provider)
		LlamagpuProviderFields(buf, model);
	EngineFieldInt(buf, "normalize", normalize ? 1 : 0);
	EngineFieldInt(buf, "truncate", truncate ? 1 : 0);
	if (model->context_size > 0)
		EngineFieldInt(buf, "n_ctx", model->context_size);
	EngineFieldInt(buf, "backend_pid", MyProcPid);
	EngineField(buf, "role", GetUserNameFromId(GetUserId(), false));
	if (llamagpu_request_timeout > 0)
		EngineFieldInt(buf, "timeout_ms", llamagpu_request_timeout);
	/* slow embedding requests are logged like slow generations (docs/observability.md) */
	if (llamagpu_log_min_duration >= 0)
		EngineFieldInt(buf, "log_min_duration_ms", llamagpu_log_min_duration);
}

/* Decode one base64 vector into out[n_embd]; errors if it is not n_embd floats. */
static void
decode_vector(const char *b64, int n_embd, float *out)
{
	int			len = strlen(b64);
	int			cap = pg_b64_dec_len(len);
	unsigned char *raw = palloc(cap + 4);
	int			got = pg_b64_decode(b64, len, (char *) raw, cap);

	if (got != n_embd * 4)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("malformed embedding from the llamagpu engine"),
				 errdetail("Expected %d bytes, got %d.", n_embd * 4, got)));
	for (int i = 0; i < n_embd; i++)
	{
		uint32		u = (uint32) raw[i * 4] | (uint32) raw[i * 4 + 1] << 8 |
			(uint32) raw[i * 4 + 2] << 16 | (uint32) raw[i * 4 + 3] << 24;

		memcpy(&out[i], &u, 4);
	}
	pfree(raw);
}

/* Context of the reply walk: where the vectors go. */
typedef struct ReplyWalk
{
	EmbedResult *res;
	int			next;			/* input index of the next embedding field */
	int			tok_next;
	int			first;			/* the chunk's first input */
	int			end;			/* one past its last */
} ReplyWalk;

/* Before a field of input index is stored: an engine that sends too many must not write past res. */
static void
check_room(const ReplyWalk *w, int index, const char *what)
{
	if (index >= w->end)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the llamagpu engine answered more %s fields than the request has inputs", what),
				 errdetail("The request had %d inputs.", w->end - w->first)));
}

/* One "embedding" field of a RESULT. */
static void
take_embedding(const char *value, void *arg)
{
	ReplyWalk  *w = arg;

	check_room(w, w->next, "embedding");
	decode_vector(value, w->res->n_embd, w->res->vectors + (size_t) w->next * w->res->n_embd);
	w->next++;
}

/* One "n_tokens" field of a RESULT. */
static void
take_n_tokens(const char *value, void *arg)
{
	ReplyWalk  *w = arg;

	check_room(w, w->tok_next, "n_tokens");
	w->res->n_tokens[w->tok_next++] = (int32) strtol(value, NULL, 10);
}

/* Store a chunk's RESULT in res. */
static void
take_result(EngineFrame *frame, EmbedChunk *c, EmbedResult *res)
{
	const char *v = EngineFrameGet(frame, "n_embd");
	int			n_embd = v ? atoi(v) : 0;
	ReplyWalk	w;

	if (n_embd <= 0 || n_embd > 1048576)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("malformed embedding reply from the llamagpu engine")));
	if (res->n_embd == 0)
	{
		res->n_embd = n_embd;
		res->vectors = MemoryContextAllocHuge(CurrentMemoryContext,
											  sizeof(float) * (Size) res->n * n_embd);
	}
	else if (res->n_embd != n_embd)
		elog(ERROR, "the engine's embeddings changed length from %d to %d", res->n_embd, n_embd);
	w.res = res;
	w.next = c->first;
	w.tok_next = c->first;
	w.first = c->first;
	w.end = c->first + c->n;
	EngineFrameForEach(frame, "embedding", take_embedding, &w);
	EngineFrameForEach(frame, "n_tokens", take_n_tokens, &w);
	if (w.next != c->first + c->n || w.tok_next != c->first + c->n)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the llamagpu engine answered %d embeddings for %d inputs", w.next - c->first, c->n)));
	v = EngineFrameGet(frame, "n_prompt");
	res->tokens += v ? strtoll(v, NULL, 10) : 0;
	v = EngineFrameGet(frame, "n_truncated");
	res->n_truncated += v ? atoi(v) : 0;
}

/* Send a chunk's EMBED request. */
static void
send_chunk(EngineConn *conn, EmbedChunk *c, const char *const *inputs, StringInfo common)
{
	StringInfoData payload;

	initStringInfo(&payload);
	appendBinaryStringInfo(&payload, common->data, common->len);
	EngineFieldInt(&payload, "input_base", c->first + 1);
	for (int i = 0; i < c->n; i++)
		EngineField(&payload, "input", inputs[c->first + i]);
	c->id = EngineSendRequest(conn, LG_FRAME_EMBED, &payload);
	c->state = CHUNK_SENT;
	pfree(payload.data);
}

/* The pipelined loop (see the file comment). */
static void
embed_loop(EngineConn *conn, EmbedChunk *chunks, int n_chunks, const char *const *inputs,
		   StringInfo common, EmbedResult *res)
{
	int			left = n_chunks;
	int			in_flight = 0;
	int			window = Min(EMBED_WINDOW, GenerateBatchWindow());
	int			busy_pause = 0;

	while (left > 0)
	{
		EngineFrame frame;
		EmbedChunk *c = NULL;

		if (busy_pause == 0 || in_flight == 0)
		{
			if (busy_pause > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 busy_pause, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
				busy_pause = Min(busy_pause * 2, BUSY_PAUSE_MAX_MS);
			}
			for (int i = 0; i < n_chunks && in_flight < window; i++)
				if (chunks[i].state == CHUNK_PENDING)
				{
					send_chunk(conn, &chunks[i], inputs, common);
					in_flight++;
				}
		}
		if (in_flight == 0)
			continue;
		EngineReadFrame(conn, &frame);
		for (int i = 0; i < n_chunks; i++)
			if (chunks[i].state == CHUNK_SENT && chunks[i].id == frame.id)
				c = &chunks[i];
		if (c == NULL)
			continue;			/* a late reply to something cancelled */
		in_flight--;
		if (frame.type == LG_FRAME_ERROR)
		{
			const char *status = EngineFrameGet(&frame, "status");

			if (status && strcmp(status, LG_WIRE_BUSY) == 0)
			{
				c->state = CHUNK_PENDING;
				window = Max(1, in_flight);
				busy_pause = busy_pause ? busy_pause : BUSY_PAUSE_MIN_MS;
				continue;
			}
			c->state = CHUNK_DONE;	/* over in the engine: no CANCEL for it */
			embed_report_error(&frame);
		}
		if (frame.type != LG_FRAME_RESULT)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("unexpected frame type %d from the llamagpu engine", frame.type)));
		take_result(&frame, c, res);
		c->state = CHUNK_DONE;
		left--;
		busy_pause = 0;
		window = Min(window + 1, Min(EMBED_WINDOW, GenerateBatchWindow()));
	}
}

/*
 * Embed inputs[0..n) with model (see llamagpu.h).  The call is one request
 * for the quota, however many inputs it has (as OpenAI's embeddings API
 * counts an array); its tokens are the inputs' tokens.  It is one usage
 * record, written however it ends.
 */
void
EmbedRun(LlamagpuModel *model, const char *const *inputs, int n, bool normalize, bool truncate,
		 const char *kind, EmbedResult *res)
{
	StringInfoData common;
	EngineConn *volatile conn = NULL;
	EmbedChunk *chunks;
	int			n_chunks = (n + EMBED_CHUNK - 1) / EMBED_CHUNK;
	LlamagpuUsageScope usage;

	memset(res, 0, sizeof(*res));
	res->n = n;
	res->n_tokens = palloc0(sizeof(int32) * Max(n, 1));
	if (n == 0)
		return;
	chunks = palloc0(sizeof(EmbedChunk) * n_chunks);
	for (int i = 0; i < n_chunks; i++)
	{
		chunks[i].first = i * EMBED_CHUNK;
		chunks[i].n = Min(EMBED_CHUNK, n - chunks[i].first);
	}
	embed_common_fields(model, normalize, truncate, &common);

	LlamagpuQuotaAdmit(&usage, model, kind, 1);
	PG_TRY();
	{
		conn = EngineConnect(llamagpu_connect_timeout, false);
		embed_loop(conn, chunks, n_chunks, inputs, &common, res);
	}
	PG_CATCH();
	{
		if (conn != NULL)
			for (int i = 0; i < n_chunks; i++)
				if (chunks[i].state == CHUNK_SENT)
					EngineCancelNoWait(conn, chunks[i].id);
		LlamagpuUsageFinishError(&usage, res->tokens, 0, 1);
		PG_RE_THROW();
	}
	PG_END_TRY();
	EngineClose(conn);
	LlamagpuUsageFinish(&usage, res->tokens, 0, 0, 0);
}

/* An input argument as UTF-8, checked: not empty (what names it in the message). */
char *
EmbedInputUtf8(text *input)
{
	char	   *s = LlamagpuUtf8FromText(input);

	if (s[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("input must not be empty"),
				 errhint("An embedding needs at least one character of text.")));
	return s;
}
