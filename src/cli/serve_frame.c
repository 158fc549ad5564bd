/*
 * serve_frame.c — building frames and splitting request payloads into
 * fields for the engine server (see serve_protocol.h).
 */
#include "serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Make room for n more bytes. */
static bool
frame_reserve(serve_frame *f, size_t n)
{
	size_t		cap;
	char	   *p;

	if (f->oom)
		return false;
	if (f->len + n <= f->cap)
		return true;
	cap = f->cap ? f->cap : 256;
	while (cap < f->len + n)
		cap *= 2;
	p = realloc(f->data, cap);
	if (p == NULL)
	{
		f->oom = true;
		return false;
	}
	f->data = p;
	f->cap = cap;
	return true;
}

/* Start a frame: header with the length left to serve_frame_finish. */
void
serve_frame_begin(serve_frame *f, char type, uint32_t id)
{
	f->len = 0;
	f->oom = false;
	if (!frame_reserve(f, LG_PROTO_HEADER_SIZE))
		return;
	memset(f->data, 0, 4);
	f->data[4] = type;
	f->data[5] = (char) (id >> 24);
	f->data[6] = (char) (id >> 16);
	f->data[7] = (char) (id >> 8);
	f->data[8] = (char) id;
	f->len = LG_PROTO_HEADER_SIZE;
}

/* Append raw payload bytes. */
void
serve_frame_append(serve_frame *f, const char *data, size_t len)
{
	if (!frame_reserve(f, len))
		return;
	memcpy(f->data + f->len, data, len);
	f->len += len;
}

/* Append one "key\0value\0" field. */
void
serve_frame_field(serve_frame *f, const char *key, const char *value)
{
	serve_frame_append(f, key, strlen(key) + 1);
	serve_frame_append(f, value, strlen(value) + 1);
}

/* Append a field whose value is formatted. */
void
serve_frame_fieldf(serve_frame *f, const char *key, const char *fmt, ...)
{
	va_list		ap;
	char		small[256];
	char	   *buf = small;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n >= sizeof(small))
	{
		buf = malloc((size_t) n + 1);
		if (buf == NULL)
		{
			f->oom = true;
			return;
		}
		va_start(ap, fmt);
		vsnprintf(buf, (size_t) n + 1, fmt, ap);
		va_end(ap);
	}
	serve_frame_field(f, key, buf);
	if (buf != small)
		free(buf);
}

/* Write the payload length into the header. */
bool
serve_frame_finish(serve_frame *f)
{
	size_t		n;

	if (f->oom || f->len < LG_PROTO_HEADER_SIZE)
		return false;
	n = f->len - LG_PROTO_HEADER_SIZE;
	if (n > LG_PROTO_MAX_PAYLOAD)
		return false;
	f->data[0] = (char) (n >> 24);
	f->data[1] = (char) (n >> 16);
	f->data[2] = (char) (n >> 8);
	f->data[3] = (char) n;
	return true;
}

/* Free a frame's buffer. */
void
serve_frame_free(serve_frame *f)
{
	free(f->data);
	memset(f, 0, sizeof(*f));
}

/* Split "key\0value\0..." into fields pointing into payload. */
bool
serve_fields_parse(const char *payload, size_t len, serve_fields *out)
{
	size_t		pos = 0;
	int			n = 0;
	int			cap = 0;

	memset(out, 0, sizeof(*out));
	if (len > 0 && payload[len - 1] != '\0')
		return false;
	while (pos < len)
	{
		const char *key = payload + pos;
		const char *value;

		pos += strlen(key) + 1;
		if (pos >= len)
			goto bad;			/* a key without a value */
		value = payload + pos;
		pos += strlen(value) + 1;
		if (n == cap)
		{
			int			ncap = cap ? cap * 2 : 16;
			const char **k = realloc(out->keys, sizeof(char *) * ncap);
			const char **v;

			if (k == NULL)
				goto bad;
			out->keys = k;
			v = realloc(out->values, sizeof(char *) * ncap);
			if (v == NULL)
				goto bad;
			out->values = v;
			cap = ncap;
		}
		out->keys[n] = key;
		out->values[n] = value;
		n++;
		out->n = n;
	}
	return true;

bad:
	serve_fields_free(out);
	return false;
}

/* Free the field index (not the payload). */
void
serve_fields_free(serve_fields *f)
{
	free(f->keys);
	free(f->values);
	memset(f, 0, sizeof(*f));
}

/* The first value of key, or NULL. */
const char *
serve_fields_get(const serve_fields *f, const char *key)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->keys[i], key) == 0)
			return f->values[i];
	return NULL;
}
