/*
 * tool_calls.c — llm_run_tool_calls: run the tool calls of an llm_chat
 * answer, each a registered function, as the calling role.
 *
 * A tool runs through SPI, in a statement of its own: EXECUTE on the
 * function, USAGE on its schema and everything the function does are checked
 * as for any query.  Arguments are passed by name, each from its JSON value
 * converted with the parameter type's input function (so a date must look
 * like a date).
 */
#include "llamagpu.h"
#include "jsonb_get.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(llm_run_tool_calls);

/* Append a JSON string. */
static void
json_str(StringInfo out, const char *s)
{
	escape_json(out, s);
}

/* A jsonb string value as a C string. */
static char *
jstr(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A JsonbValue (scalar or container) as a Jsonb datum. */
static Jsonb *
value_jsonb(JsonbValue *v)
{
	return JsonbValueToJsonb(v);
}

/*
 * The tool calls of a response: an llm_chat answer (choices[0].message), an
 * assistant message, or the array of calls itself.  NULL: there are none.
 */
static JsonbContainer *
find_tool_calls(Jsonb *response)
{
	JsonbContainer *c = &response->root;
	JsonbValue *v;

	if (JB_ROOT_IS_SCALAR(response))
		goto bad;
	if (JsonContainerIsArray(c))
		return c;
	if ((v = jsonb_member(c, "choices")) != NULL)
	{
		JsonbValue *first;

		if (!jsonb_is_array(v) || (first = getIthJsonbValueFromContainer(v->val.binary.data, 0)) == NULL ||
			!jsonb_is_object(first) || !jsonb_is_object(v = jsonb_member(first->val.binary.data, "message")))
			goto bad;
		c = v->val.binary.data;
	}
	v = jsonb_member(c, "tool_calls");
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (!jsonb_is_array(v))
		goto bad;
	return v->val.binary.data;

bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("response must be an llm_chat answer, an assistant message or an array of tool calls"),
			 errhint("Pass what llm_chat returned.")));
	return NULL;
}

/* Error context of one tool call. */
typedef struct ToolCallContext
{
	int			index;
	const char *name;
} ToolCallContext;

/* Error context callback: which tool call failed. */
static void
tool_call_context(void *arg)
{
	ToolCallContext *ctx = arg;

	if (ctx->name)
		errcontext("tool call %d (\"%s\")", ctx->index + 1, ctx->name);
	else
		errcontext("tool call %d", ctx->index + 1);
}

/* Whether a numeric has no fractional part (5.0 counts, as in JSON Schema). */
static bool
numeric_integral(Numeric num)
{
	Datum		t;

	if (numeric_is_nan(num) || numeric_is_inf(num))
		return false;
	t = DirectFunctionCall2(numeric_trunc, NumericGetDatum(num), Int32GetDatum(0));
	return DatumGetBool(DirectFunctionCall2(numeric_eq, t, NumericGetDatum(num)));
}

/* Error out unless the JSON value fits the parameter's kind. */
static void
check_argument(JsonbValue *v, Oid type, const char *tool, const char *arg)
{
	Oid			elem;
	const char *want = NULL;

	if (v->type == jbvNull)
		return;
	switch (ToolTypeKind(type, &elem))
	{
		case TOOL_INTEGER:
			if (v->type != jbvNumeric || !numeric_integral(v->val.numeric))
				want = "an integer";
			break;
		case TOOL_NUMBER:
			if (v->type != jbvNumeric)
				want = "a number";
			break;
		case TOOL_BOOLEAN:
			if (v->type != jbvBool)
				want = "a boolean";
			break;
		case TOOL_STRING:
		case TOOL_ENUM:
			if (v->type != jbvString)
				want = "a string";
			break;
		case TOOL_ARRAY:
			if (!jsonb_is_array(v))
				want = "an array";
			break;
		case TOOL_COMPOSITE:
			if (!jsonb_is_object(v))
				want = "an object";
			break;
		case TOOL_JSON:
		case TOOL_UNSUPPORTED:
			break;
	}
	if (want)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("argument \"%s\" of tool \"%s\" must be %s", arg, tool, want)));
}

/*
 * The SQL expression turning jsonb parameter $n into a value of type
 * (operators qualified: the statement runs with the caller's search_path).
 */
static char *
argument_expr(int n, Oid type)
{
	Oid			elem;
	char	   *tname = format_type_be_qualified(type);

	switch (ToolTypeKind(type, &elem))
	{
		case TOOL_JSON:
			return psprintf("$%d::%s", n, tname);
		case TOOL_ARRAY:
			return psprintf("CASE WHEN $%d OPERATOR(pg_catalog.=) 'null' THEN NULL ELSE "
							"ARRAY(SELECT pg_catalog.jsonb_array_elements_text($%d))::%s END",
							n, n, tname);
		case TOOL_COMPOSITE:
			return psprintf("CASE WHEN $%d OPERATOR(pg_catalog.=) 'null' THEN NULL ELSE "
							"pg_catalog.jsonb_populate_record(NULL::%s, $%d) END", n, tname, n);
		default:
			/* a scalar's text: a string without its quotes */
			return psprintf("($%d OPERATOR(pg_catalog.#>>) '{}')::%s", n, tname);
	}
}

/*
 * Run one tool call as the current user; the result as the content of a
 * tool message: a text result as is, anything else as JSON text.
 */
static char *
run_tool_call(JsonbValue *call, const char **name_out, char **id_out)
{
	JsonbValue *fn;
	JsonbValue *v;
	JsonbValue *args;
	char	   *name;
	char	   *def;
	Jsonb	   *argsj = NULL;
	Oid			fnoid;
	ToolSignature sig;
	StringInfoData sql;
	Oid		   *types;
	Datum	   *values;
	char	   *nulls;
	int			nparams = 0;
	int			ret;
	char	   *result = NULL;
	MemoryContext outer = CurrentMemoryContext;
	Oid			qtypes[1] = {TEXTOID};
	Datum		qvalues[1];

	if (!jsonb_is_object(call))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tool call must be a JSON object")));
	v = jsonb_member(call->val.binary.data, "id");
	if (v == NULL || v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tool call has no \"id\" string")));
	*id_out = jstr(v);
	v = jsonb_member(call->val.binary.data, "type");
	if (v && !(v->type == jbvString && v->val.string.len == 8 && memcmp(v->val.string.val, "function", 8) == 0))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("only tool calls of type \"function\" can be run")));
	fn = jsonb_member(call->val.binary.data, "function");
	if (!jsonb_is_object(fn) || (v = jsonb_member(fn->val.binary.data, "name")) == NULL || v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tool call has no \"function\" object with a \"name\" string")));
	name = jstr(v);
	*name_out = name;

	/* the registered function (the registry is read as the current user) */
	def = NULL;
	qvalues[0] = CStringGetTextDatum(name);
	SPI_connect();
	ret = SPI_execute_with_args("SELECT t.fn::oid::text FROM llamagpu.llm_tools t WHERE t.name = $1",
								1, qtypes, qvalues, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		def = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	if (def == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("tool \"%s\" is not registered", name),
				 errhint("Only tools registered with llm_register_tool can be run; answer other tool calls yourself.")));
	fnoid = (Oid) strtoul(def, NULL, 10);
	if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(fnoid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("the function of tool \"%s\" no longer exists", name),
				 errhint("Unregister the tool with llm_unregister_tool.")));
	if (pg_proc_aclcheck(fnoid, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for tool \"%s\"", name),
				 errdetail("The current role may not execute function %s.", format_procedure_qualified(fnoid))));
	ToolSignatureRead(fnoid, &sig);

	/* the arguments: a JSON string as OpenAI sends them, or an object */
	args = jsonb_member(fn->val.binary.data, "arguments");
	if (args && args->type == jbvString)
	{
		char	   *text = jstr(args);

		argsj = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text[0] ? text : "{}")));
		if (!(JB_ROOT_IS_OBJECT(argsj) && !JB_ROOT_IS_SCALAR(argsj)))
			argsj = NULL;
	}
	else if (args == NULL || args->type == jbvNull)
		argsj = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	else if (jsonb_is_object(args))
		argsj = value_jsonb(args);
	if (argsj == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("arguments of tool \"%s\" must be a JSON object", name)));

	/* every member names a parameter; every parameter without a default is there */
	{
		JsonbIterator *it = JsonbIteratorInit(&argsj->root);
		JsonbValue	k;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			bool		found = false;

			if (tok != WJB_KEY)
				continue;
			for (int i = 0; i < sig.nargs; i++)
				if (strlen(sig.names[i]) == (size_t) k.val.string.len &&
					memcmp(sig.names[i], k.val.string.val, k.val.string.len) == 0)
					found = true;
			if (!found)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("tool \"%s\" has no parameter \"%s\"", name, jstr(&k))));
		}
	}

	initStringInfo(&sql);
	types = palloc(sizeof(Oid) * Max(sig.nargs, 1));
	values = palloc(sizeof(Datum) * Max(sig.nargs, 1));
	nulls = palloc(sizeof(char) * Max(sig.nargs, 1));
	appendStringInfo(&sql, "SELECT %s FROM %s.%s(",
					 sig.retset ? "pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r))" : "pg_catalog.to_jsonb(r)",
					 sig.schema, sig.name);
	for (int i = 0; i < sig.nargs; i++)
	{
		JsonbValue *a = jsonb_member(&argsj->root, sig.names[i]);

		if (a == NULL)
		{
			if (i < sig.nargs - sig.ndefaults)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("tool \"%s\" needs the argument \"%s\"", name, sig.names[i])));
			continue;			/* the function's default */
		}
		check_argument(a, sig.types[i], name, sig.names[i]);
		types[nparams] = JSONBOID;
		values[nparams] = JsonbPGetDatum(value_jsonb(a));
		nulls[nparams] = ' ';
		nparams++;
		appendStringInfo(&sql, "%s%s => %s", nparams > 1 ? ", " : "",
						 quote_identifier(sig.names[i]), argument_expr(nparams, sig.types[i]));
	}
	appendStringInfoString(&sql, ") AS r");

	SPI_connect();
	ret = SPI_execute_with_args(sql.data, nparams, types, values, nulls, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			Jsonb	   *j = DatumGetJsonbP(d);
			JsonbValue	sv;

			/* a text result is the content itself, not a JSON string */
			if (JB_ROOT_IS_SCALAR(j) && JsonbExtractScalar(&j->root, &sv) && sv.type == jbvString)
				result = MemoryContextStrdup(outer, jstr(&sv));
			else
				result = MemoryContextStrdup(outer, JsonbToCString(NULL, &j->root, VARSIZE(j)));
		}
	}
	SPI_finish();
	return result ? result : pstrdup(sig.retset ? "[]" : "null");
}

/*
 * llm_run_tool_calls(response jsonb) RETURNS jsonb: run every tool call of
 * an llm_chat answer, in order, as the current role; the tool messages
 * [{"role": "tool", "tool_call_id", "name", "content"}] to append to the
 * conversation.  No tool calls: [].
 */
Datum
llm_run_tool_calls(PG_FUNCTION_ARGS)
{
	JsonbContainer *calls;
	StringInfoData out;
	int			n;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	calls = find_tool_calls(PG_GETARG_JSONB_P(0));
	initStringInfo(&out);
	appendStringInfoChar(&out, '[');
	n = calls ? JsonContainerSize(calls) : 0;
	for (int i = 0; i < n; i++)
	{
		JsonbValue *call = getIthJsonbValueFromContainer(calls, i);
		ToolCallContext ctx = {i, NULL};
		ErrorContextCallback errcb;
		char	   *id;
		char	   *content;

		errcb.callback = tool_call_context;
		errcb.arg = &ctx;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		content = run_tool_call(call, &ctx.name, &id);
		error_context_stack = errcb.previous;

		if (i > 0)
			appendStringInfoString(&out, ", ");
		appendStringInfoString(&out, "{\"role\": \"tool\", \"tool_call_id\": ");
		json_str(&out, id);
		appendStringInfoString(&out, ", \"name\": ");
		json_str(&out, ctx.name);
		appendStringInfoString(&out, ", \"content\": ");
		json_str(&out, content);
		appendStringInfoChar(&out, '}');
	}
	appendStringInfoChar(&out, ']');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
