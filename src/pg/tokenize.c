/*
 * tokenize.c — llm_tokenize, llm_detokenize and llm_count_tokens: the
 * model's tokenizer, run in the engine.
 */
#include "llamagpu.h"

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(llm_tokenize);
PG_FUNCTION_INFO_V1(llm_detokenize);
PG_FUNCTION_INFO_V1(llm_count_tokens);

/* Send TOKENIZE for text with the model named by argument 1. */
static void
tokenize_call(FunctionCallInfo fcinfo, EngineFrame *res)
{
	LlamagpuModel *model;
	EngineConn *conn;
	StringInfoData req;

	model = LlamagpuModelLookup(PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)), true);
	initStringInfo(&req);
	LlamagpuModelFields(&req, model);
	EngineField(&req, "text", LlamagpuUtf8FromText(PG_GETARG_TEXT_PP(0)));
	conn = EngineConnect(llamagpu_connect_timeout, false);
	EngineCall(conn, LG_FRAME_TOKENIZE, &req, res);
	EngineClose(conn);
}

/* llm_tokenize(text, model) RETURNS int[]: the ids, BOS included as the model asks. */
Datum
llm_tokenize(PG_FUNCTION_ARGS)
{
	EngineFrame res;
	const char *list;
	const char *n_str;
	int			n;
	Datum	   *elems;
	const char *p;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	tokenize_call(fcinfo, &res);
	list = EngineFrameGet(&res, "tokens");
	n_str = EngineFrameGet(&res, "n");
	if (list == NULL || n_str == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("llamagpu engine sent an incomplete tokenize result")));
	n = atoi(n_str);
	elems = palloc(sizeof(Datum) * Max(n, 1));
	p = list;
	for (int i = 0; i < n; i++)
	{
		char	   *end;

		elems[i] = Int32GetDatum((int32) strtol(p, &end, 10));
		p = (*end == ',') ? end + 1 : end;
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, INT4OID, sizeof(int32), true, TYPALIGN_INT));
}

/* llm_count_tokens(text, model) RETURNS int */
Datum
llm_count_tokens(PG_FUNCTION_ARGS)
{
	EngineFrame res;
	const char *n_str;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	tokenize_call(fcinfo, &res);
	n_str = EngineFrameGet(&res, "n");
	PG_RETURN_INT32(n_str ? atoi(n_str) : 0);
}

/* llm_detokenize(int[], model) RETURNS text */
Datum
llm_detokenize(PG_FUNCTION_ARGS)
{
	ArrayType  *ids;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	LlamagpuModel *model;
	EngineConn *conn;
	StringInfoData req;
	StringInfoData list;
	EngineFrame res;
	const char *str;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ids = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("token ids must be a one-dimensional array")));
	deconstruct_array(ids, INT4OID, sizeof(int32), true, TYPALIGN_INT, &elems, &nulls, &n);
	initStringInfo(&list);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("token ids must not be null")));
		appendStringInfo(&list, "%s%d", i ? "," : "", DatumGetInt32(elems[i]));
	}

	model = LlamagpuModelLookup(PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)), true);
	initStringInfo(&req);
	LlamagpuModelFields(&req, model);
	EngineField(&req, "tokens", list.data);
	conn = EngineConnect(llamagpu_connect_timeout, false);
	EngineCall(conn, LG_FRAME_DETOKENIZE, &req, &res);
	EngineClose(conn);
	str = EngineFrameGet(&res, "text");
	if (str == NULL)
		str = "";
	PG_RETURN_TEXT_P(LlamagpuTextFromUtf8(str, strlen(str)));
}
