/*
 * chat.c — tool-call formats: detection, answer grammars, output parsing
 * (see chat.h).
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
#include <sys/random.h>
#include <time.h>

#include "json_value.h"

#define CHAT_MAX_TOOLS 128
#define CHAT_MAX_MARKER 32		/* code points */

/* What a format looks like on the wire. */
typedef struct chat_format_def
{
	const char *name;
	const char *marker;			/* the text every call starts with */
	bool		anywhere;		/* the marker may follow free text (else only at the start) */
} chat_format_def;

static const chat_format_def formats[LG_CHAT_N_FORMATS] = {
	[LG_CHAT_GENERIC] = {"generic", "{\"tool_call\"", false},
	[LG_CHAT_HERMES] = {"hermes", "<tool_call>", true},
	[LG_CHAT_LLAMA3] = {"llama3", "{", false},
	[LG_CHAT_MISTRAL] = {"mistral", "[TOOL_CALLS]", true},
	[LG_CHAT_FUNCTIONARY] = {"functionary", "<function=", true},
	[LG_CHAT_COMMAND_R] = {"command-r", "Action:", true},
	[LG_CHAT_DEEPSEEK_R1] = {"deepseek-r1", "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>", true},
};

#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

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

const char *
lg_chat_format_name(lg_chat_format f)
{
	if ((int) f < 0 || f >= LG_CHAT_N_FORMATS)
		return "unknown";
	return formats[f].name;
}

/* ---- GBNF text ---- */

/* Append s[0..n) as a GBNF string literal. */
static bool
gbnf_literal(lg_buf *b, const char *s, size_t n)
{
	bool		ok = lg_buf_append(b, "\"", 1);

	for (size_t i = 0; ok && i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
			ok = lg_buf_appendf(b, "\\%c", c);
		else if (c == '\n')
			ok = lg_buf_append(b, "\\n", 2);
		else if (c < 0x20 || c == 0x7f)
			ok = lg_buf_appendf(b, "\\x%02X", c);
		else
			ok = lg_buf_append(b, (const char *) &c, 1);	/* UTF-8 passes as is */
	}
	return ok && lg_buf_append(b, "\"", 1);
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
		ok = ok && lg_buf_append(b, "] text-0", 8);
		for (int s = 0; ok && s < n_set; s++)
		{
			int			j = state;

			while (j > 0 && m[j] != set[s])
				j = fail[j - 1];
			if (m[j] == set[s])
				j++;
			ok = lg_buf_append(b, " | ", 3) && cp_literal(b, set[s]);
			if (ok && j == k)
				ok = lg_buf_appendf(b, " %s", after);
			else if (ok)
				ok = lg_buf_appendf(b, " text-%d", j);
		}
		ok = ok && lg_buf_append(b, "\n", 1);
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
	bool		ok = lg_buf_append(b, "free-text ::= [^\\x00]*\n", 23);

	for (int j = 0; ok && j < k; j++)
	{
		ok = lg_buf_appendf(b, "start-%d ::= | [^", j) && class_char(b, m[j]) &&
			lg_buf_append(b, "] free-text | ", 13) && cp_literal(b, m[j]);
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
		ok = ok && (i == 0 || lg_buf_append(b, " | ", 3)) && gbnf_literal(b, pre.data, pre.len) &&
			lg_buf_appendf(b, " tool%d-root", i);
		lg_buf_free(&pre);
	}
	return ok && lg_buf_append(b, "\n", 1);
}

/* The rule "calls-body": what follows the marker, one or more calls of the format. */
static bool
rules_calls_body(lg_buf *b, lg_chat_format f, const chat_tool *tools, int n)
{
	bool		ok = rule_name_args(b, "name-args", f, tools, n);

	switch (f)
	{
		case LG_CHAT_HERMES:
			ok = ok && lg_buf_append(b, "call-rest ::= ", 14) && lit(b, "\n{\"name\": ") &&
				lg_buf_append(b, " name-args ", 11) && lit(b, "}\n</tool_call>") &&
				lg_buf_append(b, "\ncalls-body ::= call-rest (", 27) && lit(b, "\n<tool_call>") &&
				lg_buf_append(b, " call-rest)*\n", 13);
			break;
		case LG_CHAT_LLAMA3:
			ok = ok && lg_buf_append(b, "calls-body ::= ", 15) && lit(b, "\"name\": ") &&
				lg_buf_append(b, " name-args ", 11) && lit(b, "}") && lg_buf_append(b, "\n", 1);
			break;
		case LG_CHAT_MISTRAL:
			ok = ok && lg_buf_append(b, "id-char ::= [a-zA-Z0-9]\n", 24) &&
				lg_buf_append(b, "item ::= ", 9) && lit(b, "{\"name\": ") &&
				lg_buf_append(b, " name-args ", 11) && lit(b, ", \"id\": \"") &&
				lg_buf_append(b, " id-char id-char id-char id-char id-char id-char id-char id-char id-char ", 72) &&
				lit(b, "\"}") && lg_buf_append(b, "\ncalls-body ::= ", 16) && lit(b, "[") &&
				lg_buf_append(b, " item (", 7) && lit(b, ", ") && lg_buf_append(b, " item)* ", 8) &&
				lit(b, "]") && lg_buf_append(b, "\n", 1);
			break;
		case LG_CHAT_FUNCTIONARY:
			ok = ok && lg_buf_append(b, "call-rest ::= name-args ", 24) && lit(b, "</function>") &&
				lg_buf_append(b, "\ncalls-body ::= call-rest (", 27) && lit(b, "<function=") &&
				lg_buf_append(b, " call-rest)*\n", 13);
			break;
		case LG_CHAT_COMMAND_R:
			ok = ok && lg_buf_append(b, "item ::= ", 9) && lit(b, "{\"tool_name\": ") &&
				lg_buf_append(b, " name-args ", 11) && lit(b, "}") &&
				lg_buf_append(b, "\ncalls-body ::= ", 16) && lit(b, "\n```json\n[") &&
				lg_buf_append(b, " item (", 7) && lit(b, ", ") && lg_buf_append(b, " item)* ", 8) &&
				lit(b, "]\n```") && lg_buf_append(b, "\n", 1);
			break;
		case LG_CHAT_DEEPSEEK_R1:
			ok = ok && lg_buf_append(b, "call ::= ", 9) && lit(b, DS_CALL_BEGIN "function" DS_SEP) &&
				lg_buf_append(b, " name-args ", 11) && lit(b, "\n```" DS_CALL_END) &&
				lg_buf_append(b, "\ncalls-body ::= call (", 22) && lit(b, "\n") &&
				lg_buf_append(b, " call)* ", 8) && lit(b, DS_CALLS_END) && lg_buf_append(b, "\n", 1);
			break;
		case LG_CHAT_GENERIC:
		default:
			ok = ok && lg_buf_append(b, "calls-body ::= ", 15) && lit(b, ": {\"name\": ") &&
				lg_buf_append(b, " name-args ", 11) && lit(b, "}}") && lg_buf_append(b, "\n", 1);
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

/* response_format: NULL or {"type": "text"} → *schema NULL; json_object; json_schema. */
static lg_status
read_response_format(const lg_json_node *rf, const lg_json_node **schema, bool *json, lg_error *err)
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

		*schema = lg_json_get(js, "schema");
		if (*schema == NULL || (*schema)->kind != LG_JSON_OBJECT)
			return lg_error_set(err, LG_ERR_ARG,
								"response_format json_schema needs {\"json_schema\": {\"schema\": {...}}}");
		return LG_OK;
	}
	return lg_error_set(err, LG_ERR_ARG,
						"response_format type must be text, json_object or json_schema, got \"%s\"", type);
}

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
	uint32_t	marker[CHAT_MAX_MARKER];
	int			k;
	lg_buf		b;
	lg_status	st = LG_OK;
	bool		ok = true;

	*constrained = false;
	if ((int) p->format < 0 || p->format >= LG_CHAT_N_FORMATS)
		return lg_error_set(err, LG_ERR_ARG, "unknown chat format %d", (int) p->format);
	fd = &formats[p->format];
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
	if ((st = read_response_format(rf_doc, &resp_schema, &resp_json, err)) != LG_OK)
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
		st = schema_rules(&b, resp_schema, "{\"type\": \"object\"}", "resp-", p->compact, p->strict, err);
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
		ok = lg_buf_append(&b, "root ::= resp-root\n", 19);
	else
	{
		k = utf8_decode(fd->marker, marker, CHAT_MAX_MARKER);
		ok = k > 0 && rules_calls_body(&b, p->format, tools, n_tools) &&
			lg_buf_append(&b, "calls ::= ", 10) && lit(&b, fd->marker) && lg_buf_append(&b, " calls-body\n", 12);
		if (ok && mode != 0)
			ok = lg_buf_append(&b, "root ::= calls\n", 15);	/* required or a named function */
		else if (ok && resp_json)
			ok = lg_buf_append(&b, "root ::= calls | resp-root\n", 27);
		else if (ok && fd->anywhere)
			ok = rules_text_without(&b, marker, k, "calls-body") && lg_buf_append(&b, "root ::= text-0\n", 16);
		else if (ok)
			ok = rules_text_not_starting(&b, marker, k, "calls-body") &&
				lg_buf_append(&b, "root ::= start-0\n", 17);
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

/* ---- parsing the answer ---- */

/* One call found in the answer. */
typedef struct chat_call
{
	char	   *name;
	lg_json_node *args;
} chat_call;

/* A cursor over the answer. */
typedef struct chat_scan
{
	const char *s;
	size_t		len;
	size_t		pos;
} chat_scan;

/* Skip JSON whitespace. */
static void
scan_ws(chat_scan *c)
{
	while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\n' ||
							   c->s[c->pos] == '\t' || c->s[c->pos] == '\r'))
		c->pos++;
}

/* Consume lit (after whitespace when ws); false, cursor unchanged, if it is not next. */
static bool
scan_lit(chat_scan *c, const char *lit_s, bool ws)
{
	size_t		save = c->pos;
	size_t		n = strlen(lit_s);

	if (ws)
		scan_ws(c);
	if (c->len - c->pos >= n && memcmp(c->s + c->pos, lit_s, n) == 0)
	{
		c->pos += n;
		return true;
	}
	c->pos = save;
	return false;
}

/* Parse the JSON value at the cursor into a tree; NULL if there is none. */
static lg_json_node *
scan_json(chat_scan *c)
{
	lg_json_value v;
	lg_error	e;
	size_t		pos = c->pos;
	lg_json_node *n = NULL;

	lg_json_value_init(&v);
	if (lg_json_parse_value(c->s, c->len, &pos, &v, &e) == LG_OK)
	{
		n = lg_json_parse(c->s + v.start, v.end - v.start, &e);
		if (n != NULL)
			c->pos = pos;
	}
	lg_json_value_free(&v);
	return n;
}

/* Take a {"name": …, "<args_key>": {…}} object (name_key may be tool_name) as a call. */
static bool
call_from_object(const lg_json_node *o, const char *name_key, const char *args_key, chat_call *call)
{
	const char *name = lg_json_get_str(o, name_key);
	const lg_json_node *args = lg_json_get(o, args_key);

	/* Llama writes "parameters" where others write "arguments": accept either */
	if (args == NULL)
		args = lg_json_get(o, strcmp(args_key, "arguments") == 0 ? "parameters" : "arguments");
	if (name == NULL || args == NULL || args->kind != LG_JSON_OBJECT)
		return false;
	call->name = strdup(name);
	call->args = NULL;
	if (call->name == NULL)
		return false;
	/* detach a copy of the arguments by re-parsing their text */
	{
		lg_buf		t;
		lg_error	e;

		lg_buf_init(&t);
		if (lg_json_write(&t, args, 0))
			call->args = lg_json_parse(t.data, t.len, &e);
		lg_buf_free(&t);
	}
	if (call->args == NULL)
	{
		free(call->name);
		return false;
	}
	return true;
}

/* Calls after the marker (the cursor is just past it); the count, or -1 if they do not parse. */
static int
scan_calls(lg_chat_format f, chat_scan *c, chat_call *calls, int max)
{
	int			n = 0;

	for (;;)
	{
		lg_json_node *o = NULL;
		bool		ok = false;

		if (n == max)
			return -1;
		switch (f)
		{
			case LG_CHAT_HERMES:
				scan_ws(c);
				o = scan_json(c);
				ok = o && call_from_object(o, "name", "arguments", &calls[n]) && scan_lit(c, "</tool_call>", true);
				lg_json_node_free(o);
				if (!ok)
					return -1;
				n++;
				if (!scan_lit(c, "<tool_call>", true))
					return n;
				continue;
			case LG_CHAT_FUNCTIONARY:
				{
					size_t		start = c->pos;
					const char *gt = memchr(c->s + start, '>', c->len - start);

					if (gt == NULL || gt == c->s + start)
						return -1;
					c->pos = (size_t) (gt - c->s) + 1;
					scan_ws(c);
					o = scan_json(c);
					if (o == NULL || o->kind != LG_JSON_OBJECT || !scan_lit(c, "</function>", true))
					{
						lg_json_node_free(o);
						return -1;
					}
					calls[n].name = strndup(c->s + start, (size_t) (gt - (c->s + start)));
					calls[n].args = o;
					if (calls[n].name == NULL)
					{
						lg_json_node_free(o);
						return -1;
					}
					n++;
					if (!scan_lit(c, "<function=", true))
						return n;
					continue;
				}
			case LG_CHAT_DEEPSEEK_R1:
				{
					const char *nl;
					size_t		start;

					if (!scan_lit(c, DS_CALL_BEGIN, true) || !scan_lit(c, "function", false) ||
						!scan_lit(c, DS_SEP, false))
						return n > 0 && scan_lit(c, DS_CALLS_END, true) ? n : -1;
					start = c->pos;
					nl = memchr(c->s + start, '\n', c->len - start);
					if (nl == NULL || nl == c->s + start)
						return -1;
					c->pos = (size_t) (nl - c->s);
					if (!scan_lit(c, "```json", true))
						return -1;
					scan_ws(c);
					o = scan_json(c);
					if (o == NULL || o->kind != LG_JSON_OBJECT || !scan_lit(c, "```", true) ||
						!scan_lit(c, DS_CALL_END, true))
					{
						lg_json_node_free(o);
						return -1;
					}
					calls[n].name = strndup(c->s + start, (size_t) (nl - (c->s + start)));
					calls[n].args = o;
					if (calls[n].name == NULL)
					{
						lg_json_node_free(o);
						return -1;
					}
					n++;
					continue;
				}
			case LG_CHAT_MISTRAL:
			case LG_CHAT_COMMAND_R:
				{
					const char *name_key = f == LG_CHAT_MISTRAL ? "name" : "tool_name";
					const char *args_key = f == LG_CHAT_MISTRAL ? "arguments" : "parameters";

					if (f == LG_CHAT_COMMAND_R && !scan_lit(c, "```json", true))
						return -1;
					scan_ws(c);
					o = scan_json(c);
					if (o == NULL || o->kind != LG_JSON_ARRAY || o->n == 0 || o->n > (size_t) max)
					{
						lg_json_node_free(o);
						return -1;
					}
					for (size_t i = 0; i < o->n; i++)
					{
						if (!call_from_object(o->items[i], name_key, args_key, &calls[n]))
						{
							lg_json_node_free(o);
							return -1;
						}
						n++;
					}
					lg_json_node_free(o);
					if (f == LG_CHAT_COMMAND_R && !scan_lit(c, "```", true))
						return -1;
					return n;
				}
			case LG_CHAT_LLAMA3:
				/* the marker "{" was the object's own brace: read from it */
				c->pos--;
				o = scan_json(c);
				ok = o && call_from_object(o, "name", "parameters", &calls[n]);
				lg_json_node_free(o);
				return ok ? 1 : -1;
			case LG_CHAT_GENERIC:
			default:
				{
					size_t		m = strlen(formats[LG_CHAT_GENERIC].marker);
					const lg_json_node *tc;

					c->pos -= m;
					o = scan_json(c);
					tc = lg_json_get(o, "tool_call");
					ok = tc && call_from_object(tc, "name", "arguments", &calls[n]);
					lg_json_node_free(o);
					return ok ? 1 : -1;
				}
		}
	}
}

/* A fresh call id, "call_" and 24 letters and digits. */
static void
call_id(char *out)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[24];

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t) sizeof(r))
	{
		uint64_t	x = (uint64_t) time(NULL) ^ (uint64_t) (uintptr_t) out;

		for (size_t i = 0; i < sizeof(r); i++)
		{
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			r[i] = (unsigned char) (x >> 56);
		}
	}
	memcpy(out, "call_", 5);
	for (int i = 0; i < 24; i++)
		out[5 + i] = alnum[r[i] % 62];
	out[29] = '\0';
}

/* Trailing whitespace of s[0..n) removed: the new length. */
static size_t
rtrim(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	return n;
}

lg_status
lg_chat_parse_output(lg_chat_format f, const char *text, size_t len, lg_buf *out, int *n_calls,
					 lg_error *err)
{
	const chat_format_def *fd = &formats[(int) f >= 0 && f < LG_CHAT_N_FORMATS ? f : LG_CHAT_GENERIC];
	chat_call	calls[CHAT_MAX_TOOLS];
	chat_scan	c = {.s = text, .len = len, .pos = 0};
	size_t		mlen = strlen(fd->marker);
	size_t		content_len = len;
	int			n = -1;
	bool		ok;

	if (n_calls)
		*n_calls = 0;
	if (fd->anywhere)
	{
		const char *m = memmem(text, len, fd->marker, mlen);

		if (m != NULL)
		{
			content_len = rtrim(text, (size_t) (m - text));
			c.pos = (size_t) (m - text) + mlen;
			n = scan_calls(f, &c, calls, CHAT_MAX_TOOLS);
		}
	}
	else
	{
		scan_ws(&c);
		if (len - c.pos >= mlen && memcmp(text + c.pos, fd->marker, mlen) == 0)
		{
			c.pos += mlen;
			content_len = 0;
			n = scan_calls(f, &c, calls, CHAT_MAX_TOOLS);
		}
	}
	/* trailing text after the calls (other than whitespace) means they were not clean calls */
	if (n > 0)
	{
		scan_ws(&c);
		if (c.pos != len)
		{
			for (int i = 0; i < n; i++)
			{
				free(calls[i].name);
				lg_json_node_free(calls[i].args);
			}
			n = -1;
		}
	}
	if (n <= 0)
	{
		n = 0;
		content_len = len;
	}

	ok = lg_buf_append(out, "{\"role\":\"assistant\",\"content\":", 30);
	if (ok && content_len == 0 && n > 0)
		ok = lg_buf_append(out, "null", 4);
	else if (ok)
		ok = lg_buf_append_json_str(out, text, content_len);
	if (ok && n > 0)
	{
		ok = lg_buf_append(out, ",\"tool_calls\":[", 15);
		for (int i = 0; ok && i < n; i++)
		{
			char		id[32];
			lg_buf		args;

			call_id(id);
			lg_buf_init(&args);
			ok = lg_json_write(&args, calls[i].args, 0) &&
				lg_buf_appendf(out, "%s{\"id\":\"%s\",\"type\":\"function\",\"function\":{\"name\":", i ? "," : "", id) &&
				lg_buf_append_json_str(out, calls[i].name, strlen(calls[i].name)) &&
				lg_buf_append(out, ",\"arguments\":", 13) &&
				lg_buf_append_json_str(out, args.data, args.len) && lg_buf_append(out, "}}", 2);
			lg_buf_free(&args);
		}
		ok = ok && lg_buf_append(out, "]", 1);
	}
	ok = ok && lg_buf_append(out, "}", 1);
	for (int i = 0; i < n; i++)
	{
		free(calls[i].name);
		lg_json_node_free(calls[i].args);
	}
	if (n_calls)
		*n_calls = n;
	if (!ok)
		return lg_error_set(err, LG_ERR_NOMEM, "out of memory");
	return LG_OK;
}
