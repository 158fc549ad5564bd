/*
 * fuzz_gguf.c — libFuzzer target for the GGUF reader.
 *
 * Opens the input as a GGUF buffer and, when it is accepted, uses it the
 * way the model loader does: reads every key, value, array element and
 * string, looks each key and tensor up by name, copies every pair into a
 * writer, dequantizes the first row of every tensor, and quantizes that row
 * back for a reference dot product (which also feeds the quantizers NaN,
 * inf and huge values).  Anything the validation missed shows up here as
 * an AddressSanitizer or UndefinedBehaviorSanitizer report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

/* Longest first row dequantized: keeps each input's work bounded. */
#define MAX_ROW 4096

/* Fold bytes into a sink so the reads cannot be optimized away. */
static volatile uint8_t sink;

/* Read n bytes (ASan checks every one). */
static void
touch(const void *p, uint64_t n)
{
	const uint8_t *c = p;
	uint8_t		acc = 0;

	for (uint64_t i = 0; i < n; i++)
		acc ^= c[i];
	sink ^= acc;
}

/* A pointer range must lie inside the buffer; abort (a finding) if not. */
static void
check_inside(const lg_gguf *g, const void *p, uint64_t n)
{
	const uint8_t *c = p;

	if (n == 0)
		return;
	if (c < g->base || c > g->base + g->size || n > (uint64_t) (g->base + g->size - c))
		abort();
}

/* Exercise the typed getters on one key given as a C string. */
static void
use_getters(const lg_gguf *g, const lg_gguf_str *key)
{
	char		name[256];
	char		cbuf[64];
	uint32_t	u32;
	int64_t		i64;
	float		f;
	bool		b;
	lg_gguf_str s;
	lg_gguf_vtype at;
	uint64_t	an;

	if (key->len >= sizeof(name) || memchr(key->s, '\0', (size_t) key->len) != NULL)
		return;
	memcpy(name, key->s, (size_t) key->len);
	name[key->len] = '\0';
	if (lg_gguf_get(g, name) == NULL)
		abort();				/* every key read must be found again */
	sink ^= (uint8_t) lg_gguf_get_u32(g, name, &u32);
	sink ^= (uint8_t) lg_gguf_get_i64(g, name, &i64);
	sink ^= (uint8_t) lg_gguf_get_f32(g, name, &f);
	sink ^= (uint8_t) lg_gguf_get_bool(g, name, &b);
	if (lg_gguf_get_str(g, name, &s))
		touch(s.s, s.len);
	sink ^= (uint8_t) lg_gguf_get_cstr(g, name, cbuf, sizeof(cbuf));
	sink ^= (uint8_t) lg_gguf_get_arr(g, name, &at, &an);
}

/* Dequantize the first row of t, requantize it, and dot it with itself. */
static void
use_first_row(const lg_gguf_tensor *t)
{
	static float row[MAX_ROW];
	static uint8_t q[MAX_ROW * 4];
	const lg_type_info *ti = lg_type_get(t->type);
	size_t		rs;
	float		dot;

	if (t->ne[0] <= 0 || t->ne[0] > MAX_ROW)
		return;
	rs = lg_row_size(t->type, t->ne[0]);
	if (rs == 0 || rs > t->nbytes)
		return;
	if (!lg_dequantize_row(t->type, t->data, row, t->ne[0]))
		return;					/* integer and f64 tensors have no float view */
	if (t->ne[0] % lg_type_get(ti->vec_dot_type)->block_size != 0)
		return;
	if (lg_quantize_row(ti->vec_dot_type, row, q, t->ne[0]))
		sink ^= (uint8_t) lg_vec_dot_ref(t->type, t->ne[0], t->data, q, &dot);
}

/* One input: open, walk, dequantize, close. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lg_error	err;
	lg_gguf    *g;
	lg_gguf_writer *w;

	lg_error_clear(&err);
	g = lg_gguf_open_buffer(data, size, &err);
	if (g == NULL)
	{
		/* a rejection must say why */
		if (err.status == LG_OK || err.msg[0] == '\0' || memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
			abort();
		return 0;
	}
	w = lg_gguf_writer_new();
	for (uint64_t i = 0; i < g->n_kv; i++)
	{
		const lg_gguf_kv *kv = &g->kv[i];

		check_inside(g, kv->key.s, kv->key.len);
		touch(kv->key.s, kv->key.len);
		if (kv->type == LG_GGUF_STRING)
		{
			check_inside(g, kv->val.str.s, kv->val.str.len);
			touch(kv->val.str.s, kv->val.str.len);
		}
		else if (kv->type == LG_GGUF_ARRAY && kv->arr_type == LG_GGUF_STRING)
		{
			for (uint64_t k = 0; k < kv->arr_n; k++)
			{
				check_inside(g, kv->arr_strs[k].s, kv->arr_strs[k].len);
				touch(kv->arr_strs[k].s, kv->arr_strs[k].len);
			}
		}
		else if (kv->type == LG_GGUF_ARRAY)
		{
			check_inside(g, kv->arr_data, kv->arr_n * lg_gguf_vtype_size(kv->arr_type));
			touch(kv->arr_data, kv->arr_n * lg_gguf_vtype_size(kv->arr_type));
		}
		use_getters(g, &kv->key);
		if (w != NULL)
			sink ^= (uint8_t) lg_gguf_writer_copy_kv(w, g, kv);
	}
	lg_gguf_writer_free(w);
	for (uint64_t i = 0; i < g->n_tensors; i++)
	{
		const lg_gguf_tensor *t = &g->tensors[i];
		char		name[64];

		check_inside(g, t->name.s, t->name.len);
		check_inside(g, t->data, t->nbytes);
		if (t->nbytes > 0 && lg_row_size(t->type, t->ne[0]) == 0)
			abort();			/* validation promised whole blocks */
		touch(t->data, t->nbytes < 4096 ? t->nbytes : 4096);
		if (t->name.len < sizeof(name) && memchr(t->name.s, '\0', (size_t) t->name.len) == NULL)
		{
			memcpy(name, t->name.s, (size_t) t->name.len);
			name[t->name.len] = '\0';
			if (lg_gguf_find_tensor(g, name) != t)
				abort();
		}
		use_first_row(t);
	}
	lg_gguf_close(g);
	return 0;
}
