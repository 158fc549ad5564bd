/*
 * chat.c — llm_chat: a conversation (OpenAI chat messages), optional tools
 * and response format, answered with the model's chat template; the answer
 * is an OpenAI chat.completion object.
 *
 * Everything is checked here before the engine sees it, so a malformed
 * message is an error that names it (messages[2].content) rather than a
 * template failing somewhere inside the engine.  Tools are OpenAI function
 * definitions or names of tools registered with llm_register_tool.
 */
#include "llamagpu.h"
#include "jsonb_get.h"

#include <time.h>

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(llm_chat);

#define MAX_TOOLS	128

/* Raise the error for a malformed argument; detail says where and what. */
static void
invalid(const char *what, const char *fmt,...) pg_attribute_printf(2, 3) pg_attribute_noreturn();

static void
invalid(const char *what, const char *fmt,...)
{
	va_list		ap;
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&buf, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s", what),
			 errdetail("%s", buf.data)));
	pg_unreachable();
}

/* Whether v is the string s. */
static bool
is_string(JsonbValue *v, const char *s)
{
	return v && v->type == jbvString && v->val.string.len == (int) strlen(s) &&
		memcmp(v->val.string.val, s, v->val.string.len) == 0;
}

/* A string value as a C string. */
static char *
jstr(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A container as JSON text in UTF-8 (what the engine reads). */
static char *
container_json(JsonbContainer *c, int len)
{
	return LlamagpuUtf8FromText(cstring_to_text(JsonbToCString(NULL, c, len)));
}

/* Whether name is a valid function name (OpenAI: ^[A-Za-z0-9_-]{1,64}$). */
static bool
valid_function_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > 64)
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* Whether a string value is the text of a JSON object (or empty, for none). */
static bool
string_holds_object(JsonbValue *v)
{
	char	   *s = jstr(v);
	JsonLexContext *lex;
	int			i = 0;

	while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
		i++;
	if (s[i] == '\0')
		return true;			/* no arguments: {} */
	lex = makeJsonLexContextCstringLen(s, strlen(s), GetDatabaseEncoding(), false);
	return s[i] == '{' && pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/*
 * The messages as the engine gets them (UTF-8 JSON text): tool calls'
 * arguments given as JSON strings, as OpenAI sends them, become objects, as
 * chat templates expect (Hugging Face's convention: `arguments | tojson`
 * would otherwise write a string holding JSON).
 */
static char *
messages_for_engine(Jsonb *messages)
{
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(messages)};
	MemoryContext outer = CurrentMemoryContext;
	char	   *result;
	int			ret;

	SPI_connect();
	ret = SPI_execute_with_args(
		"SELECT pg_catalog.jsonb_agg(CASE WHEN pg_catalog.jsonb_typeof(m -> 'tool_calls') = 'array' "
		"  THEN pg_catalog.jsonb_set(m, '{tool_calls}', "
		"    (SELECT pg_catalog.jsonb_agg(CASE WHEN pg_catalog.jsonb_typeof(c #> '{function,arguments}') = 'string' "
		"       THEN pg_catalog.jsonb_set(c, '{function,arguments}', "
		"         COALESCE(NULLIF(pg_catalog.btrim(c #>> '{function,arguments}', E' \\t\\n\\r'), ''), '{}')::pg_catalog.jsonb) "
		"       ELSE c END ORDER BY k) "
		"     FROM pg_catalog.jsonb_array_elements(m -> 'tool_calls') WITH ORDINALITY t(c, k))) "
		"  ELSE m END ORDER BY n)::pg_catalog.text "
		"FROM pg_catalog.jsonb_array_elements($1) WITH ORDINALITY s(m, n)",
		1, types, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
	result = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	return LlamagpuUtf8FromText(cstring_to_text(result));
}

/* Check message content: a string, null (when allowed), or an array of text parts. */
static void
check_content(JsonbValue *c, int i, bool null_ok)
{
	int			n;

	if (c && c->type == jbvString)
		return;
	if ((c == NULL || c->type == jbvNull) && null_ok)
		return;
	if (c == NULL || c->type == jbvNull)
		invalid("chat messages", "messages[%d] has no \"content\".", i);
	if (!jsonb_is_array(c))
		invalid("chat messages", "messages[%d].content must be a string or an array of content parts.", i);
	n = JsonContainerSize(c->val.binary.data);
	for (int j = 0; j < n; j++)
	{
		JsonbValue *part = getIthJsonbValueFromContainer(c->val.binary.data, j);
		JsonbValue *t;

		if (!jsonb_is_object(part))
			invalid("chat messages", "messages[%d].content[%d] must be an object.", i, j);
		t = jsonb_member(part->val.binary.data, "type");
		if (!is_string(t, "text"))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("only text content parts are supported"),
					 errdetail("messages[%d].content[%d].type is not \"text\".", i, j)));
		t = jsonb_member(part->val.binary.data, "text");
		if (t == NULL || t->type != jbvString)
			invalid("chat messages", "messages[%d].content[%d].text must be a string.", i, j);
	}
}

/* Check the tool_calls of assistant message i. */
static void
check_tool_calls(JsonbValue *calls, int i)
{
	int			n;

	if (!jsonb_is_array(calls))
		invalid("chat messages", "messages[%d].tool_calls must be an array.", i);
	n = JsonContainerSize(calls->val.binary.data);
	for (int j = 0; j < n; j++)
	{
		JsonbValue *call = getIthJsonbValueFromContainer(calls->val.binary.data, j);
		JsonbValue *f;
		JsonbValue *v;

		if (!jsonb_is_object(call))
			invalid("chat messages", "messages[%d].tool_calls[%d] must be an object.", i, j);
		v = jsonb_member(call->val.binary.data, "id");
		if (v && v->type != jbvString)
			invalid("chat messages", "messages[%d].tool_calls[%d].id must be a string.", i, j);
		v = jsonb_member(call->val.binary.data, "type");
		if (v && !is_string(v, "function"))
			invalid("chat messages", "messages[%d].tool_calls[%d].type must be \"function\".", i, j);
		f = jsonb_member(call->val.binary.data, "function");
		if (!jsonb_is_object(f))
			invalid("chat messages", "messages[%d].tool_calls[%d].function must be an object.", i, j);
		v = jsonb_member(f->val.binary.data, "name");
		if (v == NULL || v->type != jbvString)
			invalid("chat messages", "messages[%d].tool_calls[%d].function.name must be a string.", i, j);
		v = jsonb_member(f->val.binary.data, "arguments");
		if (v && v->type != jbvString && !jsonb_is_object(v))
			invalid("chat messages", "messages[%d].tool_calls[%d].function.arguments must be a JSON string or an object.", i, j);
		if (v && v->type == jbvString && !string_holds_object(v))
			invalid("chat messages", "messages[%d].tool_calls[%d].function.arguments must hold a JSON object.", i, j);
	}
}

/* Check the messages argument: a non-empty array of OpenAI chat messages. */
static void
check_messages(Jsonb *messages)
{
	int			n;

	if (JB_ROOT_IS_SCALAR(messages) || !JB_ROOT_IS_ARRAY(messages))
		invalid("chat messages", "messages must be a JSON array of message objects.");
	n = JsonContainerSize(&messages->root);
	if (n == 0)
		invalid("chat messages", "messages must not be empty.");
	for (int i = 0; i < n; i++)
	{
		JsonbValue *m = getIthJsonbValueFromContainer(&messages->root, i);
		JsonbValue *role;
		JsonbValue *v;
		JsonbValue *calls;

		if (!jsonb_is_object(m))
			invalid("chat messages", "messages[%d] must be an object.", i);
		role = jsonb_member(m->val.binary.data, "role");
		if (role == NULL || role->type != jbvString)
			invalid("chat messages", "messages[%d] has no \"role\" string.", i);
		v = jsonb_member(m->val.binary.data, "name");
		if (v && v->type != jbvString)
			invalid("chat messages", "messages[%d].name must be a string.", i);
		if (is_string(role, "system") || is_string(role, "user") || is_string(role, "developer"))
			check_content(jsonb_member(m->val.binary.data, "content"), i, false);
		else if (is_string(role, "assistant"))
		{
			calls = jsonb_member(m->val.binary.data, "tool_calls");
			if (calls && calls->type == jbvNull)
				calls = NULL;
			if (calls)
				check_tool_calls(calls, i);
			check_content(jsonb_member(m->val.binary.data, "content"), i, calls != NULL);
		}
		else if (is_string(role, "tool"))
		{
			v = jsonb_member(m->val.binary.data, "tool_call_id");
			if (v == NULL || v->type != jbvString)
				invalid("chat messages", "messages[%d] (role \"tool\") has no \"tool_call_id\" string.", i);
			check_content(jsonb_member(m->val.binary.data, "content"), i, false);
		}
		else
			invalid("chat messages", "messages[%d].role must be \"system\", \"developer\", \"user\", \"assistant\" or \"tool\", not \"%s\".",
					i, jstr(role));
	}
}

/*
 * Check the tools argument and write the array the engine gets (UTF-8):
 * OpenAI function definitions as given, names of registered tools replaced
 * by their definitions.  Fills names[] (at most MAX_TOOLS); returns the count.
 */
static int
build_tools(Jsonb *tools, StringInfo out, char **names)
{
	int			n;

	if (JB_ROOT_IS_SCALAR(tools) || !JB_ROOT_IS_ARRAY(tools))
		invalid("tools", "tools must be a JSON array of function definitions or registered tool names.");
	n = JsonContainerSize(&tools->root);
	if (n > MAX_TOOLS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many tools"),
				 errdetail("%d tools were given, the limit is %d.", n, MAX_TOOLS)));
	appendStringInfoChar(out, '[');
	for (int i = 0; i < n; i++)
	{
		JsonbValue *t = getIthJsonbValueFromContainer(&tools->root, i);

		if (i > 0)
			appendStringInfoChar(out, ',');
		if (t->type == jbvString)
		{
			char	   *def;

			names[i] = jstr(t);
			def = ToolDefinitionJson(names[i]);
			if (def == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("tool \"%s\" is not registered", names[i]),
						 errdetail("tools[%d] is a string, which names a registered tool.", i),
						 errhint("Register a function with llm_register_tool, or give an OpenAI function definition {\"type\": \"function\", \"function\": {...}}.")));
			appendStringInfoString(out, LlamagpuUtf8FromText(cstring_to_text(def)));
		}
		else if (jsonb_is_object(t))
		{
			JsonbValue *f;
			JsonbValue *v;

			if (!is_string(jsonb_member(t->val.binary.data, "type"), "function"))
				invalid("tools", "tools[%d].type must be \"function\".", i);
			f = jsonb_member(t->val.binary.data, "function");
			if (!jsonb_is_object(f))
				invalid("tools", "tools[%d].function must be an object.", i);
			v = jsonb_member(f->val.binary.data, "name");
			if (v == NULL || v->type != jbvString)
				invalid("tools", "tools[%d].function.name must be a string.", i);
			names[i] = jstr(v);
			if (!valid_function_name(names[i]))
				invalid("tools", "tools[%d].function.name \"%s\" is not 1 to 64 letters, digits, underscores and hyphens.",
						i, names[i]);
			v = jsonb_member(f->val.binary.data, "description");
			if (v && v->type != jbvString)
				invalid("tools", "tools[%d].function.description must be a string.", i);
			v = jsonb_member(f->val.binary.data, "parameters");
			if (v && !jsonb_is_object(v) && v->type != jbvBool)
				invalid("tools", "tools[%d].function.parameters must be a JSON Schema object.", i);
			appendStringInfoString(out, container_json(t->val.binary.data, 0));
		}
		else
			invalid("tools", "tools[%d] must be a function definition object or a registered tool name.", i);
		for (int j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				invalid("tools", "The tool name \"%s\" is given more than once.", names[i]);
	}
	appendStringInfoChar(out, ']');
	return n;
}

/* Check response_format; whether it asks for JSON (constrains the output). */
static bool
check_response_format(Jsonb *rf)
{
	JsonbValue *type;
	JsonbValue *js;
	JsonbValue *v;

	if (JB_ROOT_IS_SCALAR(rf) || !JB_ROOT_IS_OBJECT(rf))
		invalid("response_format", "response_format must be an object such as {\"type\": \"json_object\"}.");
	type = jsonb_member(&rf->root, "type");
	if (is_string(type, "text"))
		return false;
	if (is_string(type, "json_object"))
		return true;
	if (!is_string(type, "json_schema"))
		invalid("response_format", "response_format.type must be \"text\", \"json_object\" or \"json_schema\".");
	js = jsonb_member(&rf->root, "json_schema");
	if (!jsonb_is_object(js))
		invalid("response_format", "response_format.json_schema must be an object with a \"schema\" member.");
	v = jsonb_member(js->val.binary.data, "schema");
	if (v == NULL || !(jsonb_is_object(v) || v->type == jbvBool))
		invalid("response_format", "response_format.json_schema.schema must be a JSON Schema (an object or a boolean).");
	v = jsonb_member(js->val.binary.data, "name");
	if (v && v->type != jbvString)
		invalid("response_format", "response_format.json_schema.name must be a string.");
	return true;
}

/* A random completion id: "chatcmpl-" and 24 hex digits. */
static char *
completion_id(void)
{
	uint8		bytes[12];
	StringInfoData s;

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random completion id")));
	initStringInfo(&s);
	appendStringInfoString(&s, "chatcmpl-");
	for (int i = 0; i < (int) sizeof(bytes); i++)
		appendStringInfo(&s, "%02x", bytes[i]);
	return s.data;
}

/*
 * llm_chat(messages, model, tools, tool_choice, response_format, options)
 * RETURNS jsonb: {id, object: "chat.completion", created, model,
 * choices: [{index: 0, message, finish_reason}], usage}.
 */
Datum
llm_chat(PG_FUNCTION_ARGS)
{
	Jsonb	   *messages;
	GenerateArgs args;
	GenerateRequest req;
	StringInfoData tools;
	char	   *names[MAX_TOOLS];
	int			n_tools = 0;
	const char *tool_choice = "auto";
	bool		json_format = false;
	BatchItem	item = {0};
	StringInfoData out;
	char	   *message;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("messages must not be null")));
	messages = PG_GETARG_JSONB_P(0);
	check_messages(messages);

	initStringInfo(&tools);
	if (!PG_ARGISNULL(2))
		n_tools = build_tools(PG_GETARG_JSONB_P(2), &tools, names);
	if (!PG_ARGISNULL(3))
		tool_choice = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (strcmp(tool_choice, "auto") != 0 && strcmp(tool_choice, "none") != 0)
	{
		bool		known = false;

		if (n_tools == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tool_choice \"%s\" needs tools", tool_choice),
					 errhint("Without tools, tool_choice may only be \"auto\" or \"none\".")));
		for (int i = 0; i < n_tools; i++)
			if (strcmp(tool_choice, names[i]) == 0)
				known = true;
		if (!known && strcmp(tool_choice, "required") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid tool_choice \"%s\"", tool_choice),
					 errhint("tool_choice is \"auto\", \"none\", \"required\" or the name of one of the tools.")));
	}
	if (!PG_ARGISNULL(4))
		json_format = check_response_format(PG_GETARG_JSONB_P(4));

	/* options: llm_generate's arguments by name and its options, as table jobs take them */
	JobOptionsToArgs(PG_ARGISNULL(5) ? NULL : PG_GETARG_JSONB_P(5),
					 PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
					 &args, NULL);
	args.chat = true;
	GenerateRequestBuild(&args, &req);
	/* the options' grammar or schema shape the whole answer: no room for tools */
	if (req.constrained && (n_tools > 0 || !PG_ARGISNULL(4)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options \"grammar\" and \"json_schema\" cannot be combined with tools or response_format"),
				 errhint("For a JSON answer with tools, use response_format => '{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"answer\", \"schema\": {...}}}'.")));

	EngineField(&req.key_fields, "messages", messages_for_engine(messages));
	if (n_tools > 0)
	{
		EngineField(&req.key_fields, "tools", tools.data);
		EngineField(&req.key_fields, "tool_choice", tool_choice);
	}
	if (!PG_ARGISNULL(4))
	{
		Jsonb	   *rf = PG_GETARG_JSONB_P(4);

		EngineField(&req.key_fields, "response_format", container_json(&rf->root, VARSIZE(rf)));
	}
	req.constrained = req.constrained || json_format || (n_tools > 0 && strcmp(tool_choice, "none") != 0);

	item.prompt = "";
	GenerateBatchRun(&req, &item, 1, 1, true, NULL);

	/* the engine's assistant message; an engine without one sent only text */
	if (item.message)
		message = text_to_cstring(LlamagpuTextFromUtf8(item.message, strlen(item.message)));
	else
	{
		StringInfoData m;

		initStringInfo(&m);
		appendStringInfoString(&m, "{\"role\": \"assistant\", \"content\": ");
		escape_json(&m, text_to_cstring(LlamagpuTextFromUtf8(item.output.data, item.output.len)));
		appendStringInfoChar(&m, '}');
		message = m.data;
	}

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"id\": ");
	escape_json(&out, completion_id());
	appendStringInfo(&out, ", \"object\": \"chat.completion\", \"created\": %lld, \"model\": ",
					 (long long) time(NULL));
	escape_json(&out, req.model->name);
	appendStringInfo(&out, ", \"choices\": [{\"index\": 0, \"message\": %s, \"finish_reason\": ", message);
	escape_json(&out, item.finish[0] ? item.finish : "stop");
	appendStringInfo(&out, "}], \"usage\": {\"prompt_tokens\": " INT64_FORMAT
					 ", \"completion_tokens\": " INT64_FORMAT ", \"total_tokens\": " INT64_FORMAT "}}",
					 item.n_prompt, item.n_gen, item.n_prompt + item.n_gen);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
