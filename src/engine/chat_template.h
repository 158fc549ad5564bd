/*
 * chat_template.h — a model's chat template (tokenizer.chat_template, a
 * Jinja2 program) turned into prompt text, as Hugging Face's
 * apply_chat_template renders it.
 *
 * The interpreter behind it (jinja_*.c) covers the Jinja2 subset that the
 * chat templates models ship use, with the environment transformers sets up:
 * an immutable sandbox, trim_blocks and lstrip_blocks, the loopcontrols
 * extension, and the globals raise_exception and strftime_now and the filter
 * tojson (json.dumps with ensure_ascii=False).  Values behave as in Python:
 * an undefined name prints as nothing, `+` of a string and a number is an
 * error, map/select/items give one-shot iterators.
 *
 * A template is parsed once and may be rendered by several threads at once;
 * every render works in its own memory, bounded by the limits below, so a
 * hostile template ends with an error rather than a hang or an exhausted
 * machine.
 */
#ifndef LG_CHAT_TEMPLATE_H
#define LG_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "lg_error.h"

/* Limits of one render (errors, never truncation). */
#define LG_CHAT_MAX_OUTPUT		(8u << 20)	/* bytes of rendered text */
#define LG_CHAT_MAX_MEMORY		(64u << 20)	/* bytes of values a render may create */
#define LG_CHAT_MAX_STEPS		2000000u	/* loop iterations and calls, all together */
#define LG_CHAT_MAX_DEPTH		500		/* nested evaluation: macro calls, expressions, statements */

typedef struct lg_chat_template lg_chat_template;

/*
 * Parse a template.  Syntax errors: LG_ERR_FORMAT with a message
 * "line L, column C: ...".  An unknown filter or test is a syntax error too
 * (Jinja2 rejects it when compiling); a tag we do not implement
 * (include, import, extends) is LG_ERR_UNSUPPORTED.
 */
lg_chat_template *lg_chat_template_parse(const char *src, size_t len, lg_error *err);
void		lg_chat_template_free(lg_chat_template *t);

typedef struct lg_chat_render_params
{
	const char *messages_json;
	size_t		messages_len;	/* JSON array of OpenAI messages */
	const char *tools_json;
	size_t		tools_len;		/* JSON array, or NULL: `tools` is none (defined), as
								 * transformers passes tools=None; `documents` is none too */
	const char *extra_json;
	size_t		extra_len;		/* JSON object of further variables (they override the
								 * others), or NULL */
	bool		add_generation_prompt;
	const char *bos_token;
	const char *eos_token;		/* token texts ("" when none) */
	int64_t		now_unix;		/* strftime_now's clock; 0 = time(NULL) */
} lg_chat_render_params;

/*
 * Render as Hugging Face's apply_chat_template does (jinja2, trim_blocks,
 * lstrip_blocks, raise_exception, strftime_now, tojson); the text is
 * appended to out.  raise_exception → LG_ERR_ARG whose message is the
 * template's text; bad messages/tools/extra JSON → LG_ERR_ARG; any other
 * runtime error (an undefined value used, a type error) → LG_ERR_FORMAT
 * "line L: ..."; a limit → LG_ERR_RANGE.
 */
lg_status	lg_chat_template_render(const lg_chat_template *t, const lg_chat_render_params *p,
									lg_buf *out, lg_error *err);

#endif							/* LG_CHAT_TEMPLATE_H */
