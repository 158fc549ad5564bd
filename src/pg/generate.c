/*
 * generate.c — llm_generate and llm_generate_stream: check the arguments,
 * send a GENERATE request, and collect (or return one by one) the pieces the
 * engine streams back.
 */
#include "llamagpu.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(llm_generate);
PG_FUNCTION_INFO_V1(llm_generate_stream);

#define MAX_TOKENS_LIMIT	1048576
#define MAX_STOPS			16

/* A sampler option carried in the options jsonb. */
typedef struct GenerateOption
{
	const char *name;
	bool		is_int;
	double		min;
	double		max;
} GenerateOption;

static const GenerateOption generate_options[] = {
	{"min_p", false, 0, 1},
	{"typical_p", false, 0, 1},
	{"repeat_penalty", false, 0, 100},
	{"presence_penalty", false, -100, 100},
	{"frequency_penalty", false, -100, 100},
	{"penalty_last_n", true, -1, 1048576},
};

#define OPTION_NAMES "min_p, typical_p, repeat_penalty, presence_penalty, frequency_penalty, penalty_last_n, logit_bias"

/* Error out unless x is a number in [min, max]. */
static void
check_float_arg(const char *name, double x, double min, double max)
{
	if (isnan(x))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be NaN", name)));
	if (x < min || x > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %g and %g", name, min, max),
				 errdetail("The value given was %g.", x)));
}

/* A jsonb number as a double. */
static double
jsonb_number(JsonbValue *v)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
											  NumericGetDatum(v->val.numeric)));
}

/* logit_bias: {"token id": bias, ...} */
static void
add_logit_bias(StringInfo req, JsonbValue *obj)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (obj->type != jbvBinary || !JsonContainerIsObject(obj->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("option \"logit_bias\" must be a JSON object"),
				 errhint("Map token ids to biases, e.g. {\"13\": -100}.")));
	it = JsonbIteratorInit(obj->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		char	   *end;
		long		id;
		double		bias;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		errno = 0;
		id = strtol(key, &end, 10);
		if (errno != 0 || end == key || *end != '\0' || id < 0 || id > PG_INT32_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid token id \"%s\" in option \"logit_bias\"", key)));
		JsonbIteratorNext(&it, &v, true);
		if (v.type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("bias for token %ld in option \"logit_bias\" must be a number", id)));
		bias = jsonb_number(&v);
		check_float_arg("logit_bias", bias, -1e9, 1e9);
		appendStringInfoString(req, "logit_bias");
		appendStringInfoChar(req, '\0');
		appendStringInfo(req, "%ld:%.9g", id, bias);
		appendStringInfoChar(req, '\0');
	}
}

/* Check the options jsonb and add its settings to the request. */
static void
add_options(StringInfo req, Jsonb *options)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object"),
				 errhint("Valid options are: " OPTION_NAMES ".")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		const GenerateOption *opt = NULL;
		double		x;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		/* skipNested: a nested container comes back whole, as jbvBinary */
		JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "logit_bias") == 0)
		{
			add_logit_bias(req, &v);
			continue;
		}
		for (int i = 0; i < lengthof(generate_options); i++)
			if (strcmp(key, generate_options[i].name) == 0)
				opt = &generate_options[i];
		if (opt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized option \"%s\"", key),
					 errhint("Valid options are: " OPTION_NAMES ".")));
		if (v.type != jbvNumeric)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("option \"%s\" must be a number", key)));
		x = jsonb_number(&v);
		check_float_arg(key, x, opt->min, opt->max);
		if (opt->is_int)
		{
			if (x != floor(x))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("option \"%s\" must be an integer", key)));
			EngineFieldInt(req, key, (int64) x);
		}
		else
			EngineFieldFloat(req, key, x);
	}
}

/*
 * Check the arguments shared by llm_generate and llm_generate_stream and
 * build the GENERATE request.
 */
static void
build_generate_request(FunctionCallInfo fcinfo, StringInfo req)
{
	char	   *prompt;
	LlamagpuModel *model;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("prompt must not be null")));
	prompt = LlamagpuUtf8FromText(PG_GETARG_TEXT_PP(0));
	if (prompt[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("prompt must not be empty")));

	initStringInfo(req);
	EngineField(req, "prompt", prompt);

	/* NULL for a setting means its default */
	if (!PG_ARGISNULL(2))
	{
		int32		max_tokens = PG_GETARG_INT32(2);

		if (max_tokens < 1 || max_tokens > MAX_TOKENS_LIMIT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_tokens must be between 1 and %d", MAX_TOKENS_LIMIT),
					 errdetail("The value given was %d.", max_tokens)));
		EngineFieldInt(req, "max_tokens", max_tokens);
	}
	if (!PG_ARGISNULL(3))
	{
		double		t = PG_GETARG_FLOAT8(3);

		check_float_arg("temperature", t, 0, 100);
		EngineFieldFloat(req, "temperature", t);
	}
	if (!PG_ARGISNULL(4))
	{
		double		p = PG_GETARG_FLOAT8(4);

		check_float_arg("top_p", p, 0, 1);
		EngineFieldFloat(req, "top_p", p);
	}
	if (!PG_ARGISNULL(5))
	{
		int32		k = PG_GETARG_INT32(5);

		if (k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("top_k must not be negative"),
					 errhint("0 disables top-k sampling.")));
		EngineFieldInt(req, "top_k", k);
	}
	if (!PG_ARGISNULL(6))
	{
		char		num[32];

		/* the engine's seed is 64 unsigned bits: a negative bigint wraps */
		snprintf(num, sizeof(num), UINT64_FORMAT, (uint64) PG_GETARG_INT64(6));
		EngineField(req, "seed", num);
	}
	if (!PG_ARGISNULL(7))
	{
		ArrayType  *stops = PG_GETARG_ARRAYTYPE_P(7);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(stops, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		if (n > MAX_STOPS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many stop strings"),
					 errdetail("%d stop strings were given, the limit is %d.", n, MAX_STOPS)));
		for (int i = 0; i < n; i++)
		{
			char	   *s;

			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("stop strings must not be null")));
			s = LlamagpuUtf8FromText(DatumGetTextPP(elems[i]));
			if (s[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
						 errmsg("stop strings must not be empty")));
			EngineField(req, "stop", s);
		}
	}
	if (!PG_ARGISNULL(8))
		add_options(req, PG_GETARG_JSONB_P(8));

	model = LlamagpuModelLookup(PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)), true);
	LlamagpuModelFields(req, model);
	EngineFieldInt(req, "backend_pid", MyProcPid);
	EngineField(req, "role", GetUserNameFromId(GetUserId(), false));
	if (llamagpu_request_timeout > 0)
		EngineFieldInt(req, "timeout_ms", llamagpu_request_timeout);
}

/*
 * Wait for the next piece of request id: true with the text appended to out,
 * false at the END.  ERROR frames raise.
 */
static bool
next_piece(EngineConn *conn, uint32 id, StringInfo out)
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
				return false;
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

/* llm_generate(prompt, model, max_tokens, ...) RETURNS text */
Datum
llm_generate(PG_FUNCTION_ARGS)
{
	StringInfoData req;
	StringInfoData out;
	EngineConn *conn;
	uint32		id;

	build_generate_request(fcinfo, &req);
	conn = EngineConnect(llamagpu_connect_timeout, false);
	id = EngineSendRequest(conn, LG_FRAME_GENERATE, &req);
	initStringInfo(&out);
	while (next_piece(conn, id, &out))
		;
	EngineClose(conn);
	PG_RETURN_TEXT_P(piece_text(&out));
}

typedef struct StreamState
{
	EngineConn *conn;
	uint32		id;
	StringInfoData pending;		/* the start of a UTF-8 character split across pieces */
	bool		done;
} StreamState;

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
		StringInfoData req;

		funcctx = SRF_FIRSTCALL_INIT();
		/* the connection lives (and is closed) with the SRF's memory */
		oldcxt = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		build_generate_request(fcinfo, &req);
		st = palloc0(sizeof(StreamState));
		initStringInfo(&st->pending);
		st->conn = EngineConnect(llamagpu_connect_timeout, false);
		EngineFieldInt(&req, "stream", 1);
		st->id = EngineSendRequest(st->conn, LG_FRAME_GENERATE, &req);
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(oldcxt);
	}
	funcctx = SRF_PERCALL_SETUP();
	st = funcctx->user_fctx;

	while (!st->done)
	{
		int			whole;

		if (!next_piece(st->conn, st->id, &st->pending))
		{
			st->done = true;
			break;
		}
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
