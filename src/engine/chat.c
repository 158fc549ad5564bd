/*
 * chat.c — tool-call formats: detection and answer grammars (see chat.h;
 * chat_parse.c reads the answers, chat_tools.c shows tools to templates that
 * do not).
 *
 * Every format is a marker followed by a body of one or more calls.  The
 * grammar for tool_choice "required" is the marker then the body; for
 * "auto" it is free text that, the moment it completes the marker, goes on
 * as the body — for a tag marker the free text is an automaton over the
 * marker's characters (Knuth–Morris–Pratt), so text that never contains the
 * marker is free and the marker is always followed by valid calls; for a
 * JSON marker ({) only an answer starting with it is a call.  Each tool's
 * arguments are its parameters schema compiled with the rule prefix
 * "tool<i>-", so all tools live in one grammar.
 */
#include "chat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_impl.h"
#include "json_value.h"

const chat_format_def lg_chat_formats[LG_CHAT_N_FORMATS] = {
	[LG_CHAT_GENERIC] = {"generic", "{\"tool_call\"", false},
	[LG_CHAT_HERMES] = {"hermes", "<tool_call>", true},
	[LG_CHAT_LLAMA3] = {"llama3", "{", false},
	[LG_CHAT_MISTRAL] = {"mistral", "[TOOL_CALLS]", true},
	[LG_CHAT_FUNCTIONARY] = {"functionary", "<function=", true},
	[LG_CHAT_COMMAND_R] = {"command-r", "Action:", true},
	[LG_CHAT_DEEPSEEK_R1] = {"deepseek-r1", DS_CALLS_BEGIN, true},
};

/* True when the template text contains s. */
static bool
has(const char *t, size_t len, const char *s)
{
	return memmem(t, len, s, strlen(s)) != NULL;
}

/*
 * The most specific format first: Functionary's template also mentions
 * <|python_tag|> like Llama's, and Hermes-style tags appear in templates
 * built on Llama 3.
 */
lg_chat_format
lg_chat_detect_format(const char *t, size_t len)
{
	if (t == NULL)
		return LG_CHAT_GENERIC;
	if (has(t, len, "<function="))
		return LG_CHAT_FUNCTIONARY;
	if (has(t, len, "<tool_call>"))
		return LG_CHAT_HERMES;
	if (has(t, len, "[TOOL_CALLS]"))
		return LG_CHAT_MISTRAL;
	if (has(t, len, DS_CALL_BEGIN))
		return LG_CHAT_DEEPSEEK_R1;
	if (has(t, len, "<|START_OF_TURN_TOKEN|>") && has(t, len, "Action:"))
		return LG_CHAT_COMMAND_R;
	if (has(t, len, "<|start_header_id|>") && has(t, len, "\"parameters\""))
		return LG_CHAT_LLAMA3;
	return LG_CHAT_GENERIC;
}

/* The format's name, as chat.h lists them. */
const char *
lg_chat_format_name(lg_chat_format f)
{
	if ((int) f < 0 || f >= LG_CHAT_N_FORMATS)
		return "unknown";
	return lg_chat_formats[f].name;
}

/* ---- GBNF text ---- */

/* Append s[0..n) as a GBNF string literal. */
static bool
gbnf_literal(lg_buf *b, const char *s, size_t n)
{
	bool		ok = append_lit(b, "\"");

	for (size_t i = 0; ok && i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
			ok = lg_buf_appendf(b, "\\%c", c);
		else if (c == '\n')
			ok = append_lit(b, "\\n");
		else if (c < 0x20 || c == 0x7f)
			ok = lg_buf_appendf(b, "\\x%02X", c);
		else
			ok = lg_buf_append(b, (const char *) &c, 1);	/* UTF-8 passes as is */
	}
	return ok && append_lit(b, "\"");
}

/* Append a literal given as a C string. */
static bool
lit(lg_buf *b, const char *s)
{
	return gbnf_literal(b, s, strlen(s));
}

/* Append one code point inside a character class, escaped where the class syntax needs it. */
static bool
class_char(lg_buf *b, uint32_t cp)
{
	if (cp < 0x80)
	{
		if (cp < 0x20 || cp == 0x7f || cp == ']' || cp == '[' || cp == '\\' || cp == '^' || cp == '-')
			return lg_buf_appendf(b, "\\x%02X", (unsigned) cp);
		return lg_buf_appendf(b, "%c", (char) cp);
	}
	if (cp < 0x10000)
		return lg_buf_appendf(b, "\\u%04X", (unsigned) cp);
	return lg_buf_appendf(b, "\\U%08X", (unsigned) cp);
}

/* Decode UTF-8 s into code points; the count, or -1 when too long or malformed. */
static int
utf8_decode(const char *s, uint32_t *cps, int max)
{
	const unsigned char *p = (const unsigned char *) s;
	int			n = 0;

	while (*p)
	{
		uint32_t	cp;
		int			extra;

		if (n == max)
			return -1;
		if (*p < 0x80)
			cp = *p, extra = 0;
		else if ((*p & 0xE0) == 0xC0)
			cp = *p & 0x1F, extra = 1;
		else if ((*p & 0xF0) == 0xE0)
			cp = *p & 0x0F, extra = 2;
		else if ((*p & 0xF8) == 0xF0)
			cp = *p & 0x07, extra = 3;
		else
			return -1;
		p++;
		for (int i = 0; i < extra; i++, p++)
		{
			if ((*p & 0xC0) != 0x80)
				return -1;
			cp = (cp << 6) | (*p & 0x3F);
		}
		cps[n++] = cp;
	}
	return n;
}

/* Append the UTF-8 of one code point as a GBNF literal. */
static bool
cp_literal(lg_buf *b, uint32_t cp)
{
	char		u[4];
	size_t		n;

	if (cp < 0x80)
		u[0] = (char) cp, n = 1;
	else if (cp < 0x800)
		u[0] = (char) (0xC0 | (cp >> 6)), u[1] = (char) (0x80 | (cp & 0x3F)), n = 2;
	else if (cp < 0x10000)
		u[0] = (char) (0xE0 | (cp >> 12)), u[1] = (char) (0x80 | ((cp >> 6) & 0x3F)),
			u[2] = (char) (0x80 | (cp & 0x3F)), n = 3;
	else
		u[0] = (char) (0xF0 | (cp >> 18)), u[1] = (char) (0x80 | ((cp >> 12) & 0x3F)),
			u[2] = (char) (0x80 | ((cp >> 6) & 0x3F)), u[3] = (char) (0x80 | (cp & 0x3F)), n = 4;
	return gbnf_literal(b, u, n);
}

/*
 * Free text that never contains the marker, going on as rule `after` the
 * moment it does: one rule per state of the KMP automaton of the marker
 * ("text-<j>": the text ends with the marker's first j code points).  A
 * character not in the marker goes back to state 0, so the rules stay small.
 */
static bool
rules_text_without(lg_buf *b, const uint32_t *m, int k, const char *after)
{
	int			fail[CHAT_MAX_MARKER];
	uint32_t	set[CHAT_MAX_MARKER];
	int			n_set = 0;
	bool		ok = true;

	/* fail[i]: longest proper border of m[0..i] */
	fail[0] = 0;
	for (int i = 1, j = 0; i < k; i++)
	{
		while (j > 0 && m[i] != m[j])
			j = fail[j - 1];
		if (m[i] == m[j])
			j++;
		fail[i] = j;
	}
	for (int i = 0; i < k; i++)
	{
		bool		seen = false;

		for (int s = 0; s < n_set; s++)
			seen |= set[s] == m[i];
		if (!seen)
			set[n_set++] = m[i];
	}
	for (int state = 0; ok && state < k; state++)
	{
		ok = lg_buf_appendf(b, "text-%d ::= | [^", state);
		for (int s = 0; ok && s < n_set; s++)
			ok = class_char(b, set[s]);
		ok = ok && append_lit(b, "] text-0");
		for (int s = 0; ok && s < n_set; s++)
		{
			int			j = state;

			while (j > 0 && m[j] != set[s])
				j = fail[j - 1];
			if (m[j] == set[s])
				j++;
			ok = append_lit(b, " | ") && cp_literal(b, set[s]);
			if (ok && j == k)
				ok = lg_buf_appendf(b, " %s", after);
			else if (ok)
				ok = lg_buf_appendf(b, " text-%d", j);
		}
		ok = ok && append_lit(b, "\n");
	}
	return ok;
}

/*
 * Free text that does not start with the marker, going on as rule `after`
 * when it does ("start-<j>": the first j code points match the marker).
 */
static bool
rules_text_not_starting(lg_buf *b, const uint32_t *m, int k, const char *after)
{
	bool		ok = append_lit(b, "free-text ::= [^\\x00]*\n");

	for (int j = 0; ok && j < k; j++)
	{
		ok = lg_buf_appendf(b, "start-%d ::= | [^", j) && class_char(b, m[j]) &&
			append_lit(b, "] free-text | ") && cp_literal(b, m[j]);
		if (ok && j + 1 == k)
			ok = lg_buf_appendf(b, " %s\n", after);
		else if (ok)
			ok = lg_buf_appendf(b, " start-%d\n", j + 1);
	}
	return ok;
}

/* ---- tools ---- */

/* One tool of the request. */
typedef struct chat_tool
{
	const char *name;
	const lg_json_node *params;	/* the parameters schema, or NULL */
} chat_tool;

/* True for names OpenAI accepts: [a-zA-Z0-9_-], at most 64 (dots too, as some clients send them). */
static bool
valid_name(const char *s)
{
	size_t		n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* Read the tools array: {"type": "function", "function": {"name", "parameters"}} each. */
static lg_status
read_tools(const lg_json_node *arr, chat_tool *tools, int *n, lg_error *err)
{
	*n = 0;
	if (arr->kind != LG_JSON_ARRAY)
		return lg_error_set(err, LG_ERR_ARG, "tools must be a JSON array");
	if (arr->n > CHAT_MAX_TOOLS)
		return lg_error_set(err, LG_ERR_ARG, "at most %d tools, got %zu", CHAT_MAX_TOOLS, arr->n);
	for (size_t i = 0; i < arr->n; i++)
	{
		const lg_json_node *t = arr->items[i];
		const lg_json_node *fn = lg_json_get(t, "function");
		const char *type = lg_json_get_str(t, "type");
		const char *name;

		if (t->kind != LG_JSON_OBJECT || fn == NULL || fn->kind != LG_JSON_OBJECT ||
			(type != NULL && strcmp(type, "function") != 0))
			return lg_error_set(err, LG_ERR_ARG,
								"tools[%zu] must be {\"type\": \"function\", \"function\": {...}}", i);
		name = lg_json_get_str(fn, "name");
		if (name == NULL || !valid_name(name))
			return lg_error_set(err, LG_ERR_ARG,
								"tools[%zu].function.name must be 1 to 64 letters, digits, _, - or .", i);
		for (int j = 0; j < *n; j++)
			if (strcmp(tools[j].name, name) == 0)
				return lg_error_set(err, LG_ERR_ARG, "tool \"%s\" is defined twice", name);
		tools[*n].name = name;
		tools[*n].params = lg_json_get(fn, "parameters");
		if (tools[*n].params != NULL && tools[*n].params->kind != LG_JSON_OBJECT)
			return lg_error_set(err, LG_ERR_ARG, "tools[%zu].function.parameters must be a JSON object", i);
		(*n)++;
	}
	return LG_OK;
}

/*
 * Compile one schema node with a rule prefix into b (start rule
 * <prefix>root); when schema is NULL, the schema text absent instead.
 */
static lg_status
schema_rules(lg_buf *b, const lg_json_node *schema, const char *absent, const char *prefix,
			 bool compact, bool strict, lg_error *err)
{
	lg_json_schema_opts o = {.compact = compact, .strict_additional = strict, .rule_prefix = prefix};
	lg_buf		text;
	lg_status	st;

	lg_buf_init(&text);
	if (schema == NULL)
		st = lg_buf_append(&text, absent, strlen(absent)) ? LG_OK :
			lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	else
		st = lg_json_write(&text, schema, 0) ? LG_OK : lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	if (st == LG_OK)
		st = lg_json_schema_to_gbnf(text.data, text.len, &o, b, err);
	lg_buf_free(&text);
	return st;
}

/*
 * One call's name and arguments in the format's JSON (or tag) layout, as
 * alternatives over the tools: "\"get_weather\", \"arguments\": " tool0-root | …
 */
static bool
rule_name_args(lg_buf *b, const char *rule, lg_chat_format f, const chat_tool *tools, int n)
{
	bool		ok = lg_buf_appendf(b, "%s ::= ", rule);

	for (int i = 0; ok && i < n; i++)
	{
		lg_buf		pre;

		lg_buf_init(&pre);
		switch (f)
		{
			case LG_CHAT_LLAMA3:
				ok = lg_buf_appendf(&pre, "\"%s\", \"parameters\": ", tools[i].name);
				break;
			case LG_CHAT_COMMAND_R:
				ok = lg_buf_appendf(&pre, "\"%s\", \"parameters\": ", tools[i].name);
				break;
			case LG_CHAT_FUNCTIONARY:
				ok = lg_buf_appendf(&pre, "%s>", tools[i].name);
				break;
			case LG_CHAT_DEEPSEEK_R1:
				ok = lg_buf_appendf(&pre, "%s\n```json\n", tools[i].name);
				break;
			default:
				ok = lg_buf_appendf(&pre, "\"%s\", \"arguments\": ", tools[i].name);
				break;
		}
		ok = ok && (i == 0 || append_lit(b, " | ")) && gbnf_literal(b, pre.data, pre.len) &&
			lg_buf_appendf(b, " tool%d-root", i);
		lg_buf_free(&pre);
	}
	return ok && append_lit(b, "\n");
}

/* The rule "calls-body": what follows the marker, one or more calls of the format. */
static bool
rules_calls_body(lg_buf *b, lg_chat_format f, const chat_tool *tools, int n)
{
	bool		ok = rule_name_args(b, "name-args", f, tools, n);

	switch (f)
	{
		case LG_CHAT_HERMES:
			ok = ok && append_lit(b, "call-rest ::= ") && lit(b, "\n{\"name\": ") &&
				append_lit(b, " name-args ") && lit(b, "}\n</tool_call>") &&
				append_lit(b, "\ncalls-body ::= call-rest (") && lit(b, "\n<tool_call>") &&
				append_lit(b, " call-rest)*\n");
			break;
		case LG_CHAT_LLAMA3:
			ok = ok && append_lit(b, "calls-body ::= ") && lit(b, "\"name\": ") &&
				append_lit(b, " name-args ") && lit(b, "}") && append_lit(b, "\n");
			break;
		case LG_CHAT_MISTRAL:
			ok = ok && append_lit(b, "id-char ::= [a-zA-Z0-9]\n") &&
				append_lit(b, "item ::= ") && lit(b, "{\"name\": ") &&
				append_lit(b, " name-args ") && lit(b, ", \"id\": \"") &&
				append_lit(b, " id-char id-char id-char id-char id-char id-char id-char id-char id-char ") &&
				lit(b, "\"}") && append_lit(b, "\ncalls-body ::= ") && lit(b, "[") &&
				append_lit(b, " item (") && lit(b, ", ") && append_lit(b, " item)* ") &&
				lit(b, "]") && append_lit(b, "\n");
			break;
		case LG_CHAT_FUNCTIONARY:
			ok = ok && append_lit(b, "call-rest ::= name-args ") && lit(b, "</function>") &&
				append_lit(b, "\ncalls-body ::= call-rest (") && lit(b, "<function=") &&
				append_lit(b, " call-rest)*\n");
			break;
		case LG_CHAT_COMMAND_R:
			ok = ok && append_lit(b, "item ::= ") && lit(b, "{\"tool_name\": ") &&
				append_lit(b, " name-args ") && lit(b, "}") &&
				append_lit(b, "\ncalls-body ::= ") && lit(b, "\n```json\n[") &&
				append_lit(b, " item (") && lit(b, ", ") && append_lit(b, " item)* ") &&
				lit(b, "]\n```") && append_lit(b, "\n");
			break;
		case LG_CHAT_DEEPSEEK_R1:
			ok = ok && append_lit(b, "call ::= ") && lit(b, DS_CALL_BEGIN "function" DS_SEP) &&
				append_lit(b, " name-args ") && lit(b, "\n```" DS_CALL_END) &&
				append_lit(b, "\ncalls-body ::= call (") && lit(b, "\n") &&
				append_lit(b, " call)* ") && lit(b, DS_CALLS_END) && append_lit(b, "\n");
			break;
		case LG_CHAT_GENERIC:
		default:
			ok = ok && append_lit(b, "calls-body ::= ") && lit(b, ": {\"name\": ") &&
				append_lit(b, " name-args ") && lit(b, "}}") && append_lit(b, "\n");
			break;
	}
	return ok;
}

/* tool_choice: "auto"/NULL, "none", "required", a name, or {"type":"function","function":{"name":…}}. */
static lg_status
read_tool_choice(const char *choice, int *mode, const char **name, lg_json_node **owned, lg_error *err)
{
	*owned = NULL;
	*name = NULL;
	*mode = 0;					/* auto */
	if (choice == NULL || strcmp(choice, "auto") == 0 || choice[0] == '\0')
		return LG_OK;
	if (strcmp(choice, "none") == 0)
		*mode = 1;
	else if (strcmp(choice, "required") == 0)
		*mode = 2;
	else if (choice[0] == '{')
	{
		const lg_json_node *fn;

		*owned = lg_json_parse(choice, strlen(choice), err);
		if (*owned == NULL)
			return lg_error_set(err, LG_ERR_ARG, "tool_choice is not valid JSON: %s", err->msg);
		fn = lg_json_get(*owned, "function");
		*name = lg_json_get_str(fn, "name");
		if (*name == NULL)
			return lg_error_set(err, LG_ERR_ARG,
								"tool_choice must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
		*mode = 3;
	}
	else
	{
		*name = choice;
		*mode = 3;
	}
	return LG_OK;
}

/*
 * response_format: NULL or {"type": "text"} → *json false; json_object;
 * json_schema (whose "strict": true sets *strict, as OpenAI's does).
 */
static lg_status
read_response_format(const lg_json_node *rf, const lg_json_node **schema, bool *json, bool *strict,
					 lg_error *err)
{
	const char *type;

	*schema = NULL;
	*json = false;
	if (rf == NULL)
		return LG_OK;
	type = lg_json_get_str(rf, "type");
	if (rf->kind != LG_JSON_OBJECT || type == NULL)
		return lg_error_set(err, LG_ERR_ARG, "response_format must be an object with a \"type\"");
	if (strcmp(type, "text") == 0)
		return LG_OK;
	*json = true;
	if (strcmp(type, "json_object") == 0)
		return LG_OK;
	if (strcmp(type, "json_schema") == 0)
	{
		const lg_json_node *js = lg_json_get(rf, "json_schema");

		const lg_json_node *st = lg_json_get(js, "strict");

		*schema = lg_json_get(js, "schema");
		if (st != NULL && st->kind == LG_JSON_BOOL && st->boolean)
			*strict = true;
		if (*schema == NULL || (*schema)->kind != LG_JSON_OBJECT)
			return lg_error_set(err, LG_ERR_ARG,
								"response_format json_schema needs {\"json_schema\": {\"schema\": {...}}}");
		return LG_OK;
	}
	return lg_error_set(err, LG_ERR_ARG,
						"response_format type must be text, json_object or json_schema, got \"%s\"", type);
}

/* Tools, choice and response format to one grammar (see the comment at the top). */
lg_status
lg_chat_build_grammar(const lg_chat_grammar_params *p, lg_buf *out, bool *constrained, lg_error *err)
{
	const chat_format_def *fd;
	lg_json_node *tools_doc = NULL;
	lg_json_node *rf_doc = NULL;
	lg_json_node *choice_doc = NULL;
	chat_tool	tools[CHAT_MAX_TOOLS];
	int			n_tools = 0;
	int			mode;
	const char *only = NULL;
	const lg_json_node *resp_schema = NULL;
	bool		resp_json = false;
	bool		resp_strict;
	uint32_t	marker[CHAT_MAX_MARKER];
	int			k;
	lg_buf		b;
	lg_status	st = LG_OK;
	bool		ok = true;

	*constrained = false;
	if ((int) p->format < 0 || p->format >= LG_CHAT_N_FORMATS)
		return lg_error_set(err, LG_ERR_ARG, "unknown chat format %d", (int) p->format);
	fd = &lg_chat_formats[p->format];
	lg_buf_init(&b);
	if ((st = read_tool_choice(p->tool_choice, &mode, &only, &choice_doc, err)) != LG_OK)
		goto done;
	if (p->tools_json != NULL)
	{
		tools_doc = lg_json_parse(p->tools_json, p->tools_len, err);
		if (tools_doc == NULL)
		{
			st = lg_error_set(err, LG_ERR_ARG, "tools is not valid JSON: %s", err->msg);
			goto done;
		}
		if ((st = read_tools(tools_doc, tools, &n_tools, err)) != LG_OK)
			goto done;
	}
	if (p->response_format_json != NULL)
	{
		rf_doc = lg_json_parse(p->response_format_json, p->response_format_len, err);
		if (rf_doc == NULL)
		{
			st = lg_error_set(err, LG_ERR_ARG, "response_format is not valid JSON: %s", err->msg);
			goto done;
		}
	}
	resp_strict = p->strict;
	if ((st = read_response_format(rf_doc, &resp_schema, &resp_json, &resp_strict, err)) != LG_OK)
		goto done;
	if ((mode == 2 || mode == 3) && n_tools == 0)
	{
		st = lg_error_set(err, LG_ERR_ARG, "tool_choice \"%s\" needs tools", mode == 2 ? "required" : only);
		goto done;
	}
	if (mode == 3)
	{
		int			keep = -1;

		for (int i = 0; i < n_tools; i++)
			if (strcmp(tools[i].name, only) == 0)
				keep = i;
		if (keep < 0)
		{
			st = lg_error_set(err, LG_ERR_ARG, "tool_choice names \"%s\", which is not among the tools", only);
			goto done;
		}
		tools[0] = tools[keep];
		n_tools = 1;
	}
	if (mode == 1)
		n_tools = 0;			/* "none": the tools are only shown to the model */

	if (n_tools == 0 && !resp_json)
		goto done;				/* free text */

	/* the response format's grammar, start rule resp-root */
	if (resp_json)
	{
		st = schema_rules(&b, resp_schema, "{\"type\": \"object\"}", "resp-", p->compact, resp_strict, err);
		if (st != LG_OK)
		{
			char		msg[LG_ERROR_MSG_LEN];

			snprintf(msg, sizeof(msg), "%s", err->msg);
			lg_error_set(err, st, "response_format schema: %s", msg);
			goto done;
		}
	}
	for (int i = 0; i < n_tools; i++)
	{
		char		prefix[32];

		snprintf(prefix, sizeof(prefix), "tool%d-", i);
		/* a tool without parameters takes an object with none */
		st = schema_rules(&b, tools[i].params, "{\"type\": \"object\", \"properties\": {}}", prefix,
						  p->compact, p->strict, err);
		if (st != LG_OK)
		{
			char		msg[LG_ERROR_MSG_LEN];

			snprintf(msg, sizeof(msg), "%s", err->msg);
			lg_error_set(err, st, "parameters of tool \"%s\": %s", tools[i].name, msg);
			goto done;
		}
	}
	if (n_tools == 0)
		ok = append_lit(&b, "root ::= resp-root\n");
	else
	{
		k = utf8_decode(fd->marker, marker, CHAT_MAX_MARKER);
		ok = k > 0 && rules_calls_body(&b, p->format, tools, n_tools) &&
			append_lit(&b, "calls ::= ") && lit(&b, fd->marker) && append_lit(&b, " calls-body\n");
		if (ok && mode != 0)
			ok = append_lit(&b, "root ::= calls\n");	/* required or a named function */
		else if (ok && resp_json)
			ok = append_lit(&b, "root ::= calls | resp-root\n");
		else if (ok && fd->anywhere)
			ok = rules_text_without(&b, marker, k, "calls-body") && append_lit(&b, "root ::= text-0\n");
		else if (ok)
			ok = rules_text_not_starting(&b, marker, k, "calls-body") &&
				append_lit(&b, "root ::= start-0\n");
	}
	if (!ok)
	{
		st = lg_error_set(err, LG_ERR_NOMEM, "out of memory building the tool grammar");
		goto done;
	}
	if (!lg_buf_append(out, b.data, b.len))
	{
		st = lg_error_set(err, LG_ERR_NOMEM, "out of memory");
		goto done;
	}
	*constrained = true;

done:
	lg_buf_free(&b);
	lg_json_node_free(tools_doc);
	lg_json_node_free(rf_doc);
	lg_json_node_free(choice_doc);
	return st;
}
