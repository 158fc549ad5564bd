/*
 * fuzz_vectors.c — libFuzzer target for embedding vectors on the wire
 * (src/cli/serve_vectors.c): a remote provider's /embeddings answer and
 * the EMBED reply's base64 of float32.
 *
 * fuzz-sources: src/cli/serve_vectors.c
 *
 * Input: one byte (inputs expected 1..8, normalize), then the answer body.
 * Properties checked with a trap:
 *   - an accepted answer has n_inputs finite vectors of one length, unit
 *     length when normalize asks (or all zero), and a count not negative;
 *   - a refused one has a wire status and a message;
 *   - base64 of any bytes read as floats decodes back to the same bytes
 *     and is 4 characters per 3 bytes, '=' only at the end.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve_vectors.h"

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* The value of one base64 character, or -1. */
static int
b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Encode the input's whole floats and decode them again: the same bytes. */
static void
check_b64(const uint8_t *data, size_t size)
{
	int32_t		n = (int32_t) (size / 4);
	float	   *v = malloc((size_t) n * 4 + 1);
	unsigned char *back = malloc((size_t) n * 4 + 3);
	lg_buf		b;
	size_t		o = 0;

	memcpy(v, data, (size_t) n * 4);
	lg_buf_init(&b);
	CHECK(serve_floats_b64(&b, v, n));
	CHECK(b.len == ((size_t) n * 4 + 2) / 3 * 4);
	for (size_t i = 0; i < b.len; i += 4)
	{
		int			q[4];
		uint32_t	w;

		for (int k = 0; k < 4; k++)
		{
			q[k] = b64_value(b.data[i + k]);
			/* padding only in the last group's last two places */
			CHECK(q[k] >= 0 || (b.data[i + k] == '=' && i + 4 == b.len && k >= 2));
		}
		w = (uint32_t) q[0] << 18 | (uint32_t) q[1] << 12 | (uint32_t) (q[2] < 0 ? 0 : q[2]) << 6 |
			(uint32_t) (q[3] < 0 ? 0 : q[3]);
		back[o++] = (unsigned char) (w >> 16);
		if (q[2] >= 0)
			back[o++] = (unsigned char) (w >> 8);
		if (q[3] >= 0)
			back[o++] = (unsigned char) w;
	}
	CHECK(o == (size_t) n * 4);
	/* little-endian bytes of each float: on x86 the memory bytes themselves */
	CHECK(n == 0 || memcmp(back, data, o) == 0);
	lg_buf_free(&b);
	free(back);
	free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int			n_inputs;
	bool		normalize;
	float	   *out = NULL;
	int			n_embd = -1;
	long		n_prompt = -1;
	char		msg[256];
	char		detail[256];
	const char *st;

	if (size < 1)
		return 0;
	n_inputs = data[0] % 8 + 1;
	normalize = (data[0] & 8) != 0;
	st = serve_parse_embeddings((const char *) data + 1, size - 1, n_inputs, normalize, &out, &n_embd,
								&n_prompt, msg, sizeof(msg), detail, sizeof(detail));
	if (st != NULL)
	{
		CHECK(out == NULL);
		CHECK(msg[0] != '\0');
		CHECK(strcmp(st, LG_WIRE_REMOTE_PROTOCOL) == 0 || strcmp(st, LG_WIRE_NOMEM) == 0);
	}
	else
	{
		CHECK(out != NULL && n_embd > 0 && n_prompt >= 0);
		for (int k = 0; k < n_inputs; k++)
		{
			double		ss = 0;

			for (int j = 0; j < n_embd; j++)
			{
				float		x = out[(size_t) k * n_embd + j];

				CHECK(isfinite(x));
				ss += (double) x * x;
			}
			if (normalize)
				CHECK(ss == 0 || fabs(ss - 1) < 1e-3);
		}
	}
	free(out);
	check_b64(data + 1, size - 1);
	return 0;
}
