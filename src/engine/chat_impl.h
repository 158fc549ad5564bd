/*
 * chat_impl.h — what the tool-call files share (chat.c: detection and
 * grammars; chat_parse.c: answers; chat_tools.c: tools in the prompt).
 */
#ifndef LG_CHAT_IMPL_H
#define LG_CHAT_IMPL_H

#include <stdbool.h>

#include "chat.h"

#define CHAT_MAX_TOOLS 128
#define CHAT_MAX_MARKER 32		/* code points */

/* What a format looks like on the wire. */
typedef struct chat_format_def
{
	const char *name;
	const char *marker;			/* the text every call starts with */
	bool		anywhere;		/* the marker may follow free text (else only at the start) */
} chat_format_def;

extern const chat_format_def lg_chat_formats[LG_CHAT_N_FORMATS];

/* DeepSeek R1's tool tokens (full-width bars and U+2581 lower blocks) */
#define DS_CALLS_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_BEGIN "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "begin\xef\xbd\x9c>"
#define DS_CALL_END "<\xef\xbd\x9ctool\xe2\x96\x81" "call\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_CALLS_END "<\xef\xbd\x9ctool\xe2\x96\x81" "calls\xe2\x96\x81" "end\xef\xbd\x9c>"
#define DS_SEP "<\xef\xbd\x9ctool\xe2\x96\x81" "sep\xef\xbd\x9c>"

/* Append a string literal (its length counted by the compiler, not by hand). */
#define append_lit(b, s) lg_buf_append((b), (s), sizeof(s) - 1)

#endif							/* LG_CHAT_IMPL_H */
