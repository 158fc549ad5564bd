/*
 * utf8.c — turning the engine's output into text.
 *
 * A model may produce bytes that are not valid UTF-8 (byte-fallback tokens
 * cut a character in two, or a random-weight model emits any byte); text
 * cannot hold them, and failing the whole statement for one bad byte would
 * be unkind.  Invalid sequences and NUL bytes become U+FFFD, then the text is
 * converted to the database encoding.
 */
#include "llamagpu.h"

#include "mb/pg_wchar.h"
#include "utils/builtins.h"

/* Valid UTF-8, from possibly invalid bytes. */
static char *
utf8_sanitize(const char *s, int len, int *outlen)
{
	StringInfoData buf;
	int			i = 0;

	initStringInfo(&buf);
	while (i < len)
	{
		unsigned char c = (unsigned char) s[i];
		int			n = pg_utf_mblen((const unsigned char *) s + i);

		if (c != 0 && n <= len - i && pg_utf8_islegal((const unsigned char *) s + i, n))
		{
			appendBinaryStringInfo(&buf, s + i, n);
			i += n;
		}
		else
		{
			appendStringInfoString(&buf, "\xEF\xBF\xBD");	/* U+FFFD */
			i++;
		}
	}
	*outlen = buf.len;
	return buf.data;
}

/* A text datum from the engine's UTF-8 output. */
text *
LlamagpuTextFromUtf8(const char *s, int len)
{
	int			n;
	char	   *clean = utf8_sanitize(s, len, &n);
	char	   *conv = pg_any_to_server(clean, n, PG_UTF8);

	if (conv != clean)
		n = strlen(conv);
	return cstring_to_text_with_len(conv, n);
}

/* A text argument as UTF-8 for the engine. */
char *
LlamagpuUtf8FromText(text *t)
{
	char	   *s = text_to_cstring(t);

	return pg_server_to_any(s, strlen(s), PG_UTF8);
}
