/*
 * json_schema_string.c — strings (length, pattern, format) and literal
 * values (const, enum).
 *
 * A string's grammar is over its JSON text: characters that JSON must
 * escape appear in the forms Python's json.dumps writes (\" \\ \n ... and
 * \u00XX), and lengths count code points of the decoded value.  Formats
 * are regular expressions compiled like patterns, so length bounds combine
 * with them the same way.
 */
#include "json_schema_impl.h"
#include "regex_gbnf.h"

#include <stdio.h>
#include <math.h>
#include <string.h>

/* Known formats and the ECMA regular expression each one is compiled from. */
typedef struct js_format
{
	const char *name;
	const char *regex;			/* NULL: a format of the spec we cannot enforce */
} js_format;

#define JS_DATE "\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))"
#define JS_TIME "(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,9})?(?:[Zz]|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)"
#define JS_H16 "[0-9a-fA-F]{1,4}"
#define JS_LABEL "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#define JS_URICH "(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9\\-._~:/?#\\[\\]@!$&'()*+,;=])"
#define JS_DURT "T(?:\\d+H(?:\\d+M)?(?:\\d+(?:\\.\\d+)?S)?|\\d+M(?:\\d+(?:\\.\\d+)?S)?|\\d+(?:\\.\\d+)?S)"

static const js_format js_formats[] = {
	{"date", "^" JS_DATE "$"},
	{"time", "^" JS_TIME "$"},
	{"date-time", "^" JS_DATE "[Tt]" JS_TIME "$"},
	{"duration", "^P(?:\\d+W|\\d+Y(?:\\d+M)?(?:\\d+D)?(?:" JS_DURT ")?|\\d+M(?:\\d+D)?(?:" JS_DURT ")?|\\d+D(?:" JS_DURT ")?|" JS_DURT ")$"},
	{"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
	{"email", "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" JS_LABEL "(?:\\." JS_LABEL ")+$"},
	{"hostname", "^" JS_LABEL "(?:\\." JS_LABEL ")*$"},
	{"ipv4", "^(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)$"},
	{"ipv6", "^(?:(?:" JS_H16 ":){7}" JS_H16 "|(?:" JS_H16 ":){1,7}:|(?:" JS_H16 ":){1,6}:" JS_H16
		"|(?:" JS_H16 ":){1,5}(?::" JS_H16 "){1,2}|(?:" JS_H16 ":){1,4}(?::" JS_H16 "){1,3}"
		"|(?:" JS_H16 ":){1,3}(?::" JS_H16 "){1,4}|(?:" JS_H16 ":){1,2}(?::" JS_H16 "){1,5}"
		"|" JS_H16 ":(?::" JS_H16 "){1,6}|:(?:(?::" JS_H16 "){1,7}|:))$"},
	{"uri", "^[A-Za-z][A-Za-z0-9+.-]*:" JS_URICH "*$"},
	{"uri-reference", "^(?:[A-Za-z][A-Za-z0-9+.-]*:)?" JS_URICH "*$"},
	{"json-pointer", "^(?:/(?:[^~/]|~[01])*)*$"},
	{"relative-json-pointer", "^(?:0|[1-9]\\d*)(?:#|(?:/(?:[^~/]|~[01])*)*)$"},
	/* in the spec, but not compiled: refused rather than ignored */
	{"iri", NULL},
	{"iri-reference", NULL},
	{"idn-email", NULL},
	{"idn-hostname", NULL},
	{"uri-template", NULL},
	{"regex", NULL},
	{NULL, NULL}
};

/* The regex of a format: *known false for formats outside the spec (ignored). */
static const char *
js_format_regex(const char *name, bool *known)
{
	for (int i = 0; js_formats[i].name; i++)
		if (strcmp(js_formats[i].name, name) == 0)
		{
			*known = true;
			return js_formats[i].regex;
		}
	*known = false;
	return NULL;
}

/* Append s as JSON string content the way Python's json.dumps(ensure_ascii=False) writes it. */
bool
js_json_encode(lg_buf *out, const char *s, size_t n)
{
	bool		ok = true;

	for (size_t i = 0; i < n; i++)
	{
		unsigned char ch = (unsigned char) s[i];

		switch (ch)
		{
			case '"':
				ok &= lg_buf_append(out, "\\\"", 2);
				break;
			case '\\':
				ok &= lg_buf_append(out, "\\\\", 2);
				break;
			case '\n':
				ok &= lg_buf_append(out, "\\n", 2);
				break;
			case '\r':
				ok &= lg_buf_append(out, "\\r", 2);
				break;
			case '\t':
				ok &= lg_buf_append(out, "\\t", 2);
				break;
			case '\b':
				ok &= lg_buf_append(out, "\\b", 2);
				break;
			case '\f':
				ok &= lg_buf_append(out, "\\f", 2);
				break;
			default:
				if (ch < 0x20)
					ok &= lg_buf_appendf(out, "\\u%04x", ch);
				else
					ok &= lg_buf_append(out, s + i, 1);
		}
	}
	return ok;
}

/* Append bytes s as a GBNF string literal "...". */
bool
js_gbnf_lit(lg_buf *out, const char *s, size_t n)
{
	bool		ok = lg_buf_append(out, "\"", 1);

	for (size_t i = 0; i < n; i++)
	{
		unsigned char ch = (unsigned char) s[i];

		if (ch == '"' || ch == '\\')
		{
			ok &= lg_buf_append(out, "\\", 1);
			ok &= lg_buf_append(out, s + i, 1);
		}
		else if (ch == '\n')
			ok &= lg_buf_append(out, "\\n", 2);
		else if (ch == '\r')
			ok &= lg_buf_append(out, "\\r", 2);
		else if (ch == '\t')
			ok &= lg_buf_append(out, "\\t", 2);
		else if (ch < 0x20 || ch == 0x7F)
			ok &= lg_buf_appendf(out, "\\x%02X", ch);
		else
			ok &= lg_buf_append(out, s + i, 1);
	}
	return ok && lg_buf_append(out, "\"", 1);
}

/* A JSON value as a grammar: its text, with optional whitespace inside objects and arrays. */
bool
js_literal_expr(js_ctx *c, const lg_json_node *v, lg_buf *out)
{
	lg_buf		t;
	bool		ok = true;

	switch (v->kind)
	{
		case LG_JSON_NULL:
			return lg_buf_append(out, "\"null\"", 6) || js_oom(c);
		case LG_JSON_BOOL:
			return lg_buf_append(out, v->boolean ? "\"true\"" : "\"false\"", v->boolean ? 6 : 7) || js_oom(c);
		case LG_JSON_NUMBER:
			lg_buf_init(&t);
			/* integers as Python writes them; other numbers as the schema wrote them */
			if (v->is_int)
				lg_buf_appendf(&t, "%lld", (long long) v->integer);
			else
				lg_buf_append(&t, v->str, strlen(v->str));
			ok = t.data != NULL;
			/* an integral value written 2.0 also matches the integer 2 */
			if (ok && !v->is_int && v->number == (double) (int64_t) v->number && v->number > -1e15 && v->number < 1e15)
			{
				char		ib[32];

				snprintf(ib, sizeof(ib), "%lld", (long long) v->number);
				lg_buf_append(out, "( ", 2);
				ok = js_gbnf_lit(out, ib, strlen(ib)) && lg_buf_append(out, " | ", 3) &&
					js_gbnf_lit(out, t.data, t.len) && lg_buf_append(out, " )", 2);
			}
			else if (ok)
				ok = js_gbnf_lit(out, t.data, t.len);
			lg_buf_free(&t);
			return ok || js_oom(c);
		case LG_JSON_STRING:
			lg_buf_init(&t);
			lg_buf_append(&t, "\"", 1);
			js_json_encode(&t, v->str, v->str_len);
			lg_buf_append(&t, "\"", 1);
			ok = t.data && js_gbnf_lit(out, t.data, t.len);
			lg_buf_free(&t);
			return ok || js_oom(c);
		case LG_JSON_ARRAY:
			ok &= lg_buf_appendf(out, "( \"[\" %s", js_ws(c));
			for (size_t i = 0; i < v->n && ok; i++)
			{
				if (i > 0)
					ok &= lg_buf_appendf(out, "\",\" %s", js_ws(c));
				ok = ok && js_literal_expr(c, v->items[i], out);
				ok &= lg_buf_appendf(out, " %s", js_ws(c));
			}
			ok &= lg_buf_append(out, "\"]\" )", 5);
			return ok || js_oom(c);
		default:
			ok &= lg_buf_appendf(out, "( \"{\" %s", js_ws(c));
			for (size_t i = 0; i < v->n && ok; i++)
			{
				if (i > 0)
					ok &= lg_buf_appendf(out, "\",\" %s", js_ws(c));
				lg_buf_init(&t);
				lg_buf_append(&t, "\"", 1);
				js_json_encode(&t, v->keys[i], v->key_lens[i]);
				lg_buf_append(&t, "\"", 1);
				ok = t.data && js_gbnf_lit(out, t.data, t.len);
				lg_buf_free(&t);
				ok &= lg_buf_appendf(out, " %s\":\" %s", js_ws(c), js_ws(c));
				ok = ok && js_literal_expr(c, v->items[i], out);
				ok &= lg_buf_appendf(out, " %s", js_ws(c));
			}
			ok &= lg_buf_append(out, "\"}\" )", 5);
			return ok || js_oom(c);
	}
}

bool
js_string_expr(js_ctx *c, const lg_json_node *s, const char *path, lg_buf *out)
{
	long		lo = js_bound_kw(c, s, "minLength", -1, path);
	long		hi = js_bound_kw(c, s, "maxLength", -1, path);
	const lg_json_node *pat = lg_json_get(s, "pattern");
	const lg_json_node *fmt = lg_json_get(s, "format");
	const char *regex = NULL;
	const char *kw = "pattern";
	lg_status	st;
	lg_error	rerr;
	lg_buf		r;

	if (c->st != LG_OK)
		return false;
	if (lo < 0)
		lo = 0;
	if (hi >= 0 && lo > hi)
		return js_fail(c, LG_ERR_UNSUPPORTED, "schema at %s accepts no string: minLength above maxLength", path);
	if (pat && pat->kind != LG_JSON_STRING)
		return js_fail(c, LG_ERR_FORMAT, "\"pattern\" at %s is not a string", path);
	if (pat)
		regex = pat->str;
	if (fmt && fmt->kind == LG_JSON_STRING)
	{
		bool		known;
		const char *fr = js_format_regex(fmt->str, &known);

		if (known && fr == NULL)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported format \"%s\" at %s", fmt->str, path);
		if (known && regex)
			return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"pattern\" at %s: pattern and format \"%s\" together", path, fmt->str);
		if (known)
		{
			regex = fr;
			kw = "format";
		}
	}
	if (regex == NULL)
	{
		if (lo == 0 && hi < 0)
			return lg_buf_append(out, js_prim(c, JS_P_STRING), strlen(js_prim(c, JS_P_STRING))) || js_oom(c);
		if (hi < 0)
			return lg_buf_appendf(out, "\"\\\"\" %s{%ld,} \"\\\"\"", js_prim(c, JS_P_CHARL), lo) || js_oom(c);
		return lg_buf_appendf(out, "\"\\\"\" %s{%ld,%ld} \"\\\"\"", js_prim(c, JS_P_CHARL), lo, hi) || js_oom(c);
	}
	lg_buf_init(&r);
	st = lg_regex_to_gbnf(regex, strlen(regex), lo, hi, js_prim(c, JS_P_CHARL), &r, &rerr);
	if (st != LG_OK)
	{
		lg_buf_free(&r);
		if (st == LG_ERR_NOMEM)
			return js_oom(c);
		return js_fail(c, LG_ERR_UNSUPPORTED, "unsupported keyword \"%s\" at %s: %s", kw, path, rerr.msg);
	}
	lg_buf_appendf(out, "\"\\\"\" %s \"\\\"\"", r.data ? r.data : "");
	lg_buf_free(&r);
	return true;
}
