/*
 * generate.c — llm_generate and llm_generate_stream: check the arguments,
 * send a GENERATE request, and collect (or return one by one) the pieces the
 * engine streams back.  llm_generate answers from the response cache when
 * the request asks for it (see response_cache.c).
 */
#include "llamagpu.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(llm_generate);
PG_FUNCTION_INFO_V1(llm_generate_stream);

/*
 * Wait for the next piece of request id: true with the text appended to out,
 * false at the END (its token counts in *n_prompt and *n_gen).  ERROR
 * frames raise.
 */
static bool
next_piece(EngineConn *conn, uint32 id, StringInfo out, int64 *n_prompt, int64 *n_gen)
{
	EngineFrame frame;

	for (;;)
	{
		EngineReadFrame(conn, &frame);
		if (frame.id != id)
			continue;
		switch (frame.type)
		{
			case LG_FRAME_PIECE:
				appendBinaryStringInfo(out, frame.payload.data, frame.payload.len);
				return true;
			case LG_FRAME_END:
				{
					const char *v = EngineFrameGet(&frame, "n_prompt");

					*n_prompt = v ? strtoll(v, NULL, 10) : 0;
					v = EngineFrameGet(&frame, "n_gen");
					*n_gen = v ? strtoll(v, NULL, 10) : 0;
					return false;
				}
			case LG_FRAME_ERROR:
				EngineReportError(&frame);
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("unexpected frame type %d from the llamagpu engine", frame.type)));
		}
	}
}

/* The generated text in the database encoding. */
static text *
piece_text(StringInfo s)
{
	return LlamagpuTextFromUtf8(s->data, s->len);
}

/* Check llm_generate's arguments and build the request for its prompt. */
static char *
build_generate_request(FunctionCallInfo fcinfo, GenerateRequest *req)
{
	GenerateArgs args;
	char	   *prompt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("prompt must not be null")));
	prompt = GeneratePromptUtf8(PG_GETARG_TEXT_PP(0));
	GenerateArgsFromCall(fcinfo, 1, &args);
	GenerateRequestBuild(&args, req);
	return prompt;
}

/*
 * llm_generate(prompt, model, max_tokens, ...) RETURNS text: a batch of one,
 * so that it shares the response cache, the resubmission when the engine is
 * busy, and the cancellation with llm_generate_batch.
 */
Datum
llm_generate(PG_FUNCTION_ARGS)
{
	GenerateRequest req;
	BatchItem	item = {0};

	item.prompt = build_generate_request(fcinfo, &req);
	GenerateBatchRun(&req, &item, 1, 1, true, NULL);
	PG_RETURN_TEXT_P(LlamagpuTextFromUtf8(item.output.data, item.output.len));
}

typedef struct StreamState
{
	EngineConn *conn;
	uint32		id;
	StringInfoData pending;		/* the start of a UTF-8 character split across pieces */
	bool		done;
	LlamagpuUsageScope usage;	/* open until the END, an error, or the SRF's end */
	MemoryContextCallback usage_cb;
} StreamState;

/*
 * The stream was closed before its END (LIMIT, a cursor closed, an error
 * outside the function): record it as cancelled by the caller, with the
 * pieces returned as its tokens.  Runs in a memory context reset, so it
 * must not raise; the functions it calls do not.
 */
static void
stream_usage_cb(void *arg)
{
	StreamState *st = arg;

	if (!st->usage.open)
		return;
	st->usage.open = false;
	LlamagpuQuotaChargeTokens(&st->usage, st->usage.pieces);
	LlamagpuUsageAppend(&st->usage, 0, st->usage.pieces, 0, 0, "cancelled");
}

/* Length of the prefix of s that ends on a whole UTF-8 character. */
static int
utf8_whole_prefix(const char *s, int len)
{
	int			i = len;
	int			back = 0;

	/* find the start of the last character (at most 4 bytes back) */
	while (i > 0 && back < 4 && (((unsigned char) s[i - 1]) & 0xC0) == 0x80)
	{
		i--;
		back++;
	}
	if (i == 0)
		return len;
	{
		unsigned char c = (unsigned char) s[i - 1];
		int			need = (c & 0x80) == 0 ? 1 : (c & 0xE0) == 0xC0 ? 2 :
			(c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;

		return (back + 1 >= need) ? len : i - 1;
	}
}

/* llm_generate_stream(...) RETURNS SETOF text: a row per piece, as produced. */
Datum
llm_generate_stream(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	StreamState *st;
	StringInfoData piece;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcxt;
		GenerateRequest req;
		StringInfoData payload;
		char	   *prompt;

		funcctx = SRF_FIRSTCALL_INIT();
		/* the connection lives (and is closed) with the SRF's memory */
		oldcxt = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		prompt = build_generate_request(fcinfo, &req);
		GenerateRequestPayload(&req, prompt, &payload);
		st = palloc0(sizeof(StreamState));
		initStringInfo(&st->pending);
		LlamagpuQuotaAdmit(&st->usage, req.model, "stream", 1);
		st->usage_cb.func = stream_usage_cb;
		st->usage_cb.arg = st;
		MemoryContextRegisterResetCallback(funcctx->multi_call_memory_ctx, &st->usage_cb);
		PG_TRY();
		{
			st->conn = EngineConnect(llamagpu_connect_timeout, false);
			EngineFieldInt(&payload, "stream", 1);
			st->id = EngineSendRequest(st->conn, LG_FRAME_GENERATE, &payload);
		}
		PG_CATCH();
		{
			LlamagpuUsageFinishError(&st->usage, 0, 0, 1);
			PG_RE_THROW();
		}
		PG_END_TRY();
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(oldcxt);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = funcctx->user_fctx;

	while (!st->done)
	{
		int			whole;
		int64		n_prompt = 0;
		int64		n_gen = 0;
		bool		more;

		PG_TRY();
		{
			more = next_piece(st->conn, st->id, &st->pending, &n_prompt, &n_gen);
		}
		PG_CATCH();
		{
			LlamagpuUsageFinishError(&st->usage, 0, st->usage.pieces, 1);
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (!more)
		{
			st->done = true;
			LlamagpuUsageFinish(&st->usage, n_prompt, n_gen, 0, 0);
			break;
		}
		st->usage.pieces++;
		whole = utf8_whole_prefix(st->pending.data, st->pending.len);
		if (whole == 0)
			continue;
		initStringInfo(&piece);
		appendBinaryStringInfo(&piece, st->pending.data, whole);
		memmove(st->pending.data, st->pending.data + whole, st->pending.len - whole);
		st->pending.len -= whole;
		st->pending.data[st->pending.len] = '\0';
		SRF_RETURN_NEXT(funcctx, PointerGetDatum(piece_text(&piece)));
	}
	if (st->pending.len > 0)
	{
		initStringInfo(&piece);
		appendBinaryStringInfo(&piece, st->pending.data, st->pending.len);
		resetStringInfo(&st->pending);
		SRF_RETURN_NEXT(funcctx, PointerGetDatum(piece_text(&piece)));
	}
	EngineClose(st->conn);
	SRF_RETURN_DONE(funcctx);
}
