/*
 * chat.h — tool calls in the formats models are trained on: which format a
 * model uses (read off its chat template), the grammar that makes its answer
 * a valid call (or valid JSON for response_format), and the parse of the
 * finished answer into an OpenAI assistant message.
 *
 * Formats (what the model writes to call get_weather({"city": "Paris"})):
 *
 *   hermes       Hermes 2 Pro / 3, Qwen 2.5:
 *                <tool_call>\n{"name": "get_weather", "arguments": {...}}\n</tool_call>
 *                (repeated, one per line, for parallel calls)
 *   llama3       Llama 3.1 / 3.2 / 3.3 (JSON tool calling):
 *                {"name": "get_weather", "parameters": {...}}
 *   mistral      Mistral Nemo:
 *                [TOOL_CALLS][{"name": "get_weather", "arguments": {...}, "id": "a1b2c3d4e"}]
 *   functionary  Functionary v3.1:
 *                <function=get_weather>{...}</function>   (repeated)
 *   command-r    Command R+:
 *                Action: ```json\n[{"tool_name": "get_weather", "parameters": {...}}]\n```
 *   deepseek-r1  DeepSeek R1 distills:
 *                <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
 *                ```json\n{...}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>
 *   generic      any other template: {"tool_call": {"name": "get_weather", "arguments": {...}}}
 *
 * Every call starts with the format's marker (`<tool_call>`, `{`, `[TOOL_CALLS]`,
 * `<function=`, `Action:`, `<｜tool▁calls▁begin｜>`, `{"tool_call"`).  For
 * formats whose marker is a tag, tool_choice "auto" lets the model write any
 * text that does not contain the marker, and once it writes the marker the
 * rest is constrained to be valid calls: text first, then calls, is allowed
 * (Hermes models often say what they are about to do).  For the JSON formats
 * (llama3, generic) the marker `{` is only a call at the very start.
 */
#ifndef LG_CHAT_H
#define LG_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"
#include "json_schema.h"

typedef enum lg_chat_format
{
	LG_CHAT_GENERIC = 0,
	LG_CHAT_HERMES,
	LG_CHAT_LLAMA3,
	LG_CHAT_MISTRAL,
	LG_CHAT_FUNCTIONARY,
	LG_CHAT_COMMAND_R,
	LG_CHAT_DEEPSEEK_R1,
} lg_chat_format;

#define LG_CHAT_N_FORMATS 7

/* The tool-call format a chat template teaches its model (GENERIC when none is recognised). */
lg_chat_format lg_chat_detect_format(const char *tmpl, size_t len);
/* "hermes", "llama3", … (as in the table above). */
const char *lg_chat_format_name(lg_chat_format f);

typedef struct lg_chat_grammar_params
{
	lg_chat_format format;
	const char *tools_json;		/* JSON array of OpenAI tools, or NULL */
	size_t		tools_len;
	/*
	 * "auto" (NULL too), "none", "required", a function name, or OpenAI's
	 * {"type": "function", "function": {"name": …}}.
	 */
	const char *tool_choice;
	const char *response_format_json;	/* JSON object, or NULL ({"type": "text"}) */
	size_t		response_format_len;
	bool		compact;		/* no optional whitespace in arguments and responses */
	bool		strict;			/* absent additionalProperties means false */
} lg_chat_grammar_params;

/*
 * The GBNF the answer must follow, appended to out (start rule "root");
 * *constrained is false, and nothing appended, when the answer is free
 * (no tools or tool_choice "none", and a text response format).
 * Errors: LG_ERR_ARG for malformed tools, tool_choice or response_format
 * (an unknown function, tool_choice "required" without tools); a tool's
 * parameters or the response schema that cannot be compiled gives the
 * schema compiler's LG_ERR_FORMAT / LG_ERR_UNSUPPORTED, its message
 * prefixed with the tool's name.
 */
lg_status	lg_chat_build_grammar(const lg_chat_grammar_params *p, lg_buf *out, bool *constrained,
								  lg_error *err);

/*
 * For a template that does not show the tools to the model (the generic
 * format's templates: Gemma, Phi, plain ChatML), the messages with the tools
 * and the way to call them described in the first message: appended to the
 * system message when the conversation starts with one, else before the
 * first message's text (some templates refuse a system role).  Appended to
 * out as a JSON array.  LG_ERR_ARG for messages or tools that are not what
 * OpenAI sends.
 */
/* Whether a rendered prompt names every tool (the template showed them to the model). */
bool		lg_chat_prompt_shows_tools(const char *prompt, size_t len, const char *tools, size_t tools_len);
lg_status	lg_chat_messages_with_tools(const char *messages, size_t len, const char *tools,
										size_t tools_len, lg_buf *out, lg_error *err);

/*
 * The OpenAI assistant message for an answer the model generated, appended
 * to out as JSON: {"role": "assistant", "content": …, "tool_calls": [{"id":
 * "call_…", "type": "function", "function": {"name": …, "arguments": "<JSON
 * text>"}}]}.  Text before the first call is the content (null when there
 * is none and there are calls); an answer whose calls do not parse is
 * returned whole as content, with no tool_calls.  *n_calls (may be NULL)
 * is the number of calls found.
 */
lg_status	lg_chat_parse_output(lg_chat_format f, const char *text, size_t len, lg_buf *out,
								 int *n_calls, lg_error *err);

/*
 * For an answer cut short by max_tokens: the length of its longest prefix
 * that ends just after a complete call, for the formats that close every
 * call with a tag (hermes: </tool_call>, functionary: </function>); 0 when
 * there is none or the format has no closing tag.  A weak model may keep
 * writing calls until max_tokens; the calls it finished are still calls.
 */
size_t		lg_chat_complete_prefix(lg_chat_format f, const char *text, size_t len);

/*
 * The message for an answer that was not allowed to call tools (no tools,
 * or tool_choice "none": the grammar did not check calls, so none are
 * read): the whole text as content.
 */
lg_status	lg_chat_content_message(const char *text, size_t len, lg_buf *out, lg_error *err);

#endif							/* LG_CHAT_H */
