/*
 * test_gguf.c — GGUF reading and writing.
 *
 * Valid files are written with the writer into a temporary directory and
 * read back (every value type, string arrays, tensors of several types,
 * several alignments); a version 2 file and all malformed files are built
 * byte by byte, so each test states exactly what is wrong with its file.
 * Buffers handed to lg_gguf_open_buffer are allocated at their exact size,
 * so a read past the end shows up under AddressSanitizer (fuzz.sh replays
 * the same kinds of input with it).
 */
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"

/* ---- helpers ---- */

static char tmpdir[256];

/* Make the per-run temporary directory. */
static int
setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/lg_test_gguf_XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

/* Remove the temporary directory and the files the tests left in it. */
static int
teardown_tmpdir(void **state)
{
	DIR		   *d = opendir(tmpdir);
	struct dirent *e;
	char		path[512];

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
	{
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
	return 0;
}

/* path of a file in the temporary directory */
static const char *
tmp_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", tmpdir, name);
	return buf;
}

/* Whole file into a malloc'd buffer. */
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *p;
	long		n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc(n > 0 ? (size_t) n : 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t) n, f), (size_t) n);
	fclose(f);
	*len = (size_t) n;
	return p;
}

/* A growable byte buffer for hand-built files. */
typedef struct bb
{
	uint8_t    *p;
	size_t		len;
	size_t		cap;
} bb;

static void
bb_put(bb *b, const void *src, size_t n)
{
	if (b->len + n > b->cap)
	{
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void
bb_u32(bb *b, uint32_t v)
{
	uint8_t		le[4] = {(uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24)};

	bb_put(b, le, 4);
}

static void
bb_u64(bb *b, uint64_t v)
{
	bb_u32(b, (uint32_t) v);
	bb_u32(b, (uint32_t) (v >> 32));
}

static void
bb_str(bb *b, const char *s)
{
	bb_u64(b, strlen(s));
	bb_put(b, s, strlen(s));
}

static void
bb_zeros(bb *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bb_put(b, "", 1);
}

/* Zero padding up to a multiple of align. */
static void
bb_align(bb *b, size_t align)
{
	bb_zeros(b, (align - b->len % align) % align);
}

static void
bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
	bb_put(b, "GGUF", 4);
	bb_u32(b, version);
	bb_u64(b, n_tensors);
	bb_u64(b, n_kv);
}

static void
bb_kv_u32(bb *b, const char *key, uint32_t v)
{
	bb_str(b, key);
	bb_u32(b, LG_GGUF_UINT32);
	bb_u32(b, v);
}

static void
bb_kv_str(bb *b, const char *key, const char *v)
{
	bb_str(b, key);
	bb_u32(b, LG_GGUF_STRING);
	bb_str(b, v);
}

/* A tensor info with up to four dimensions. */
static void
bb_tensor(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t offset)
{
	bb_str(b, name);
	bb_u32(b, n_dims);
	for (uint32_t d = 0; d < n_dims; d++)
		bb_u64(b, (uint64_t) ne[d]);
	bb_u32(b, type);
	bb_u64(b, offset);
}

/* Open a copy of exactly len bytes (so ASan sees over-reads). */
static lg_gguf *
open_exact(const uint8_t *p, size_t len, lg_error *err)
{
	uint8_t    *copy = malloc(len ? len : 1);
	lg_gguf    *g;

	assert_non_null(copy);
	if (len)
		memcpy(copy, p, len);
	g = lg_gguf_open_buffer(len ? copy : NULL, len, err);
	if (g != NULL)
	{
		/* keep the copy alive as long as g: stash it behind the handle's base */
		return g;
	}
	free(copy);
	return NULL;
}

/* Close a handle from open_exact, freeing its buffer too. */
static void
close_exact(lg_gguf *g)
{
	const void *base;

	if (g == NULL)
		return;
	base = g->base;
	lg_gguf_close(g);
	free((void *) base);
}

/* The buffer must be rejected with a message containing want. */
static void
expect_reject(const bb *b, lg_status status, const char *want)
{
	lg_error	err;
	lg_gguf    *g;

	lg_error_clear(&err);
	g = open_exact(b->p, b->len, &err);
	if (g != NULL)
	{
		close_exact(g);
		fail_msg("accepted a file that should fail with '%s'", want);
	}
	if (err.status != status)
		fail_msg("status %s, expected %s (message: %s)", lg_status_name(err.status),
				 lg_status_name(status), err.msg);
	if (strstr(err.msg, want) == NULL)
		fail_msg("message '%s' does not mention '%s'", err.msg, want);
}

/* A small valid file: one key, one f32 tensor [8] at offset 0, no trailing padding. */
static void
small_valid(bb *b, uint32_t version)
{
	const int64_t ne[1] = {8};

	bb_header(b, version, 1, 1);
	bb_kv_str(b, "general.architecture", "llama");
	bb_tensor(b, "t", 1, ne, LG_TYPE_F32, 0);
	bb_align(b, 32);
	for (int i = 0; i < 8; i++)
	{
		float		f = (float) i;

		bb_put(b, &f, 4);
	}
}

/* ---- writing and reading back ---- */

/* Every scalar type, arrays of several types, string arrays, tensors. */
static void
test_roundtrip_all_types(void **state)
{
	lg_gguf_writer *w = lg_gguf_writer_new();
	lg_error	err;
	lg_gguf    *g;
	char		path[512];
	uint8_t		u8 = 200;
	int8_t		i8 = -100;
	uint16_t	u16 = 60000;
	int16_t		i16 = -30000;
	uint64_t	u64 = 0x123456789abcdef0ULL;
	int64_t		i64 = -0x123456789abcdefLL;
	double		f64 = 3.141592653589793;
	const int32_t ai32[5] = {1, -2, 3, -4, 2147483647};
	const float af32[3] = {0.5f, -1.25f, 1e30f};
	const bool abool[4] = {true, false, true, true};
	const double af64[2] = {1e300, -2.5};
	const char *strs[4] = {"hello", "", "w\0rld", "\xe2\x96\x81tok"};
	const uint64_t lens[4] = {5, 0, 5, 6};
	float		t_f32[12];
	lg_f16		t_f16[8];
	float		src[512];
	uint8_t		t_q4_0[2 * 2 * 18];
	uint8_t		t_q8_0[34];
	uint8_t		t_q4_K[2 * 144];
	uint8_t		t_q6_K[210 * 2];
	const int64_t ne_f32[2] = {4, 3};
	const int64_t ne_f16[1] = {8};
	const int64_t ne_q4_0[3] = {64, 1, 2};
	const int64_t ne_q8_0[4] = {32, 1, 1, 1};
	const int64_t ne_q4_K[2] = {256, 2};
	const int64_t ne_q6_K[2] = {512, 1};
	const int64_t ne_empty[2] = {0, 5};
	uint64_t	seed = 3;
	const lg_gguf_kv *kv;
	const lg_gguf_tensor *t;
	lg_gguf_vtype at;
	uint64_t	an;
	uint32_t	vu32 = 0;
	int64_t		vi64 = 0;
	float		vf = 0;
	bool		vb = false;
	char		cbuf[16];

	for (int i = 0; i < 512; i++)
		src[i] = lg_test_randf(&seed);
	for (int i = 0; i < 12; i++)
		t_f32[i] = (float) i - 5.5f;
	for (int i = 0; i < 8; i++)
		t_f16[i] = lg_f32_to_f16((float) i / 4);
	assert_true(lg_quantize_row(LG_TYPE_Q4_0, src, t_q4_0, 128));
	assert_true(lg_quantize_row(LG_TYPE_Q8_0, src, t_q8_0, 32));
	assert_true(lg_quantize_row(LG_TYPE_Q4_K, src, t_q4_K, 512));
	assert_true(lg_quantize_row(LG_TYPE_Q6_K, src, t_q6_K, 512));

	assert_non_null(w);
	assert_int_equal(lg_gguf_writer_add_str(w, "general.architecture", "llama"), LG_OK);
	assert_int_equal(lg_gguf_writer_add_val(w, "v.u8", LG_GGUF_UINT8, &u8), LG_OK);
	assert_int_equal(lg_gguf_writer_add_val(w, "v.i8", LG_GGUF_INT8, &i8), LG_OK);
	assert_int_equal(lg_gguf_writer_add_val(w, "v.u16", LG_GGUF_UINT16, &u16), LG_OK);
	assert_int_equal(lg_gguf_writer_add_val(w, "v.i16", LG_GGUF_INT16, &i16), LG_OK);
	assert_int_equal(lg_gguf_writer_add_u32(w, "v.u32", 4000000000u), LG_OK);
	assert_int_equal(lg_gguf_writer_add_i32(w, "v.i32", -123456), LG_OK);
	assert_int_equal(lg_gguf_writer_add_f32(w, "v.f32", 1e-5f), LG_OK);
	assert_int_equal(lg_gguf_writer_add_bool(w, "v.bool", true), LG_OK);
	assert_int_equal(lg_gguf_writer_add_val(w, "v.u64", LG_GGUF_UINT64, &u64), LG_OK);
	assert_int_equal(lg_gguf_writer_add_val(w, "v.i64", LG_GGUF_INT64, &i64), LG_OK);
	assert_int_equal(lg_gguf_writer_add_val(w, "v.f64", LG_GGUF_FLOAT64, &f64), LG_OK);
	assert_int_equal(lg_gguf_writer_add_arr(w, "a.i32", LG_GGUF_INT32, ai32, 5), LG_OK);
	assert_int_equal(lg_gguf_writer_add_arr(w, "a.f32", LG_GGUF_FLOAT32, af32, 3), LG_OK);
	assert_int_equal(lg_gguf_writer_add_arr(w, "a.bool", LG_GGUF_BOOL, abool, 4), LG_OK);
	assert_int_equal(lg_gguf_writer_add_arr(w, "a.f64", LG_GGUF_FLOAT64, af64, 2), LG_OK);
	assert_int_equal(lg_gguf_writer_add_arr(w, "a.empty", LG_GGUF_UINT8, NULL, 0), LG_OK);
	assert_int_equal(lg_gguf_writer_add_arr_str(w, "a.str", strs, lens, 4), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t.f32", LG_TYPE_F32, 2, ne_f32, t_f32), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t.f16", LG_TYPE_F16, 1, ne_f16, t_f16), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t.q4_0", LG_TYPE_Q4_0, 3, ne_q4_0, t_q4_0), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t.q8_0", LG_TYPE_Q8_0, 4, ne_q8_0, t_q8_0), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t.empty", LG_TYPE_F32, 2, ne_empty, NULL), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t.q4_K", LG_TYPE_Q4_K, 2, ne_q4_K, t_q4_K), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t.q6_K", LG_TYPE_Q6_K, 2, ne_q6_K, t_q6_K), LG_OK);
	lg_error_clear(&err);
	assert_int_equal(lg_gguf_writer_write(w, tmp_path(path, sizeof(path), "all.gguf"), &err), LG_OK);
	lg_gguf_writer_free(w);

	g = lg_gguf_open(path, &err);
	if (g == NULL)
		fail_msg("open: %s", err.msg);
	assert_int_equal(g->version, 3);
	assert_int_equal(g->n_kv, 18);
	assert_int_equal(g->n_tensors, 7);
	assert_int_equal(g->alignment, 32);
	assert_int_equal(g->data_offset % 32, 0);
	assert_true(g->mapped);

	/* scalars, raw */
	assert_int_equal(lg_gguf_get(g, "v.u8")->type, LG_GGUF_UINT8);
	assert_int_equal(lg_gguf_get(g, "v.u8")->val.u64, 200);
	assert_int_equal(lg_gguf_get(g, "v.i8")->val.i64, -100);
	assert_int_equal(lg_gguf_get(g, "v.u16")->val.u64, 60000);
	assert_int_equal(lg_gguf_get(g, "v.i16")->val.i64, -30000);
	assert_int_equal(lg_gguf_get(g, "v.u32")->val.u64, 4000000000u);
	assert_int_equal(lg_gguf_get(g, "v.i32")->val.i64, -123456);
	assert_true(lg_gguf_get(g, "v.f32")->val.f64 == (double) 1e-5f);
	assert_int_equal(lg_gguf_get(g, "v.bool")->val.u64, 1);
	assert_true(lg_gguf_get(g, "v.u64")->val.u64 == u64);
	assert_true(lg_gguf_get(g, "v.i64")->val.i64 == i64);
	assert_true(lg_gguf_get(g, "v.f64")->val.f64 == f64);
	assert_int_equal(lg_gguf_find_key(g, "general.architecture"), 0);
	assert_int_equal(lg_gguf_find_key(g, "nope"), -1);
	assert_null(lg_gguf_get(g, "v.u8x"));

	/* typed getters */
	assert_true(lg_gguf_get_u32(g, "v.u8", &vu32) && vu32 == 200);
	assert_true(lg_gguf_get_u32(g, "v.u32", &vu32) && vu32 == 4000000000u);
	vu32 = 7;
	assert_false(lg_gguf_get_u32(g, "v.i8", &vu32));	/* negative */
	assert_false(lg_gguf_get_u32(g, "v.u64", &vu32));	/* too large */
	assert_false(lg_gguf_get_u32(g, "v.f32", &vu32));	/* not an integer */
	assert_false(lg_gguf_get_u32(g, "missing", &vu32));
	assert_int_equal(vu32, 7);
	assert_true(lg_gguf_get_i64(g, "v.i16", &vi64) && vi64 == -30000);
	assert_true(lg_gguf_get_i64(g, "v.u64", &vi64) && vi64 == (int64_t) u64);
	assert_true(lg_gguf_get_i64(g, "v.i64", &vi64) && vi64 == i64);
	assert_false(lg_gguf_get_i64(g, "v.bool", &vi64));
	assert_true(lg_gguf_get_f32(g, "v.f32", &vf) && vf == 1e-5f);
	assert_true(lg_gguf_get_f32(g, "v.f64", &vf) && vf == (float) f64);
	assert_true(lg_gguf_get_f32(g, "v.u16", &vf) && vf == 60000.0f);	/* exact in float */
	assert_false(lg_gguf_get_f32(g, "v.u64", &vf));	/* not exact in float */
	assert_false(lg_gguf_get_f32(g, "general.architecture", &vf));
	assert_true(lg_gguf_get_bool(g, "v.bool", &vb) && vb);
	assert_false(lg_gguf_get_bool(g, "v.u8", &vb));
	assert_true(lg_gguf_get_cstr(g, "general.architecture", cbuf, sizeof(cbuf)));
	assert_string_equal(cbuf, "llama");
	assert_true(lg_gguf_get_cstr(g, "general.architecture", cbuf, 3));
	assert_string_equal(cbuf, "ll");	/* truncated */
	assert_false(lg_gguf_get_cstr(g, "v.u8", cbuf, sizeof(cbuf)));

	/* arrays */
	assert_true(lg_gguf_get_arr(g, "a.i32", &at, &an));
	assert_int_equal(at, LG_GGUF_INT32);
	assert_int_equal(an, 5);
	assert_memory_equal(lg_gguf_get(g, "a.i32")->arr_data, ai32, sizeof(ai32));
	assert_memory_equal(lg_gguf_get(g, "a.f32")->arr_data, af32, sizeof(af32));
	assert_memory_equal(lg_gguf_get(g, "a.f64")->arr_data, af64, sizeof(af64));
	{
		const uint8_t *bools = lg_gguf_get(g, "a.bool")->arr_data;

		assert_true(bools[0] == 1 && bools[1] == 0 && bools[2] == 1 && bools[3] == 1);
	}
	assert_true(lg_gguf_get_arr(g, "a.empty", &at, &an) && an == 0 && at == LG_GGUF_UINT8);
	assert_false(lg_gguf_get_arr(g, "v.u8", &at, &an));
	kv = lg_gguf_get(g, "a.str");
	assert_int_equal(kv->arr_type, LG_GGUF_STRING);
	assert_int_equal(kv->arr_n, 4);
	for (int i = 0; i < 4; i++)
	{
		assert_int_equal(kv->arr_strs[i].len, lens[i]);
		if (lens[i])
			assert_memory_equal(kv->arr_strs[i].s, strs[i], lens[i]);
	}
	assert_true(lg_gguf_str_eq(kv->arr_strs[0], "hello"));
	assert_false(lg_gguf_str_eq(kv->arr_strs[0], "hell"));
	assert_true(lg_gguf_str_eq(kv->arr_strs[1], ""));

	/* tensors */
	t = lg_gguf_find_tensor(g, "t.f32");
	assert_non_null(t);
	assert_int_equal(t->type, LG_TYPE_F32);
	assert_int_equal(t->n_dims, 2);
	assert_true(t->ne[0] == 4 && t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1);
	assert_int_equal(t->nbytes, sizeof(t_f32));
	assert_memory_equal(t->data, t_f32, sizeof(t_f32));
	t = lg_gguf_find_tensor(g, "t.f16");
	assert_int_equal(t->nbytes, sizeof(t_f16));
	assert_memory_equal(t->data, t_f16, sizeof(t_f16));
	t = lg_gguf_find_tensor(g, "t.q4_0");
	assert_true(t->n_dims == 3 && t->ne[0] == 64 && t->ne[1] == 1 && t->ne[2] == 2);
	assert_int_equal(t->nbytes, sizeof(t_q4_0));
	assert_memory_equal(t->data, t_q4_0, sizeof(t_q4_0));
	t = lg_gguf_find_tensor(g, "t.q8_0");
	assert_int_equal(t->n_dims, 4);
	assert_memory_equal(t->data, t_q8_0, sizeof(t_q8_0));
	t = lg_gguf_find_tensor(g, "t.empty");
	assert_int_equal(t->nbytes, 0);
	t = lg_gguf_find_tensor(g, "t.q4_K");
	assert_int_equal(t->type, LG_TYPE_Q4_K);
	assert_int_equal(t->nbytes, sizeof(t_q4_K));
	assert_memory_equal(t->data, t_q4_K, sizeof(t_q4_K));
	t = lg_gguf_find_tensor(g, "t.q6_K");
	assert_memory_equal(t->data, t_q6_K, sizeof(t_q6_K));
	for (uint64_t i = 0; i < g->n_tensors; i++)
	{
		assert_int_equal(g->tensors[i].offset % 32, 0);
		assert_int_equal(((const uint8_t *) g->tensors[i].data - g->base) % 32, 0);
	}
	assert_null(lg_gguf_find_tensor(g, "t.f3"));
	assert_null(lg_gguf_find_tensor(g, "t.f32x"));
	lg_gguf_close(g);
}

/* Alignments other than 32 are written as general.alignment and honoured. */
static void
test_alignment_variants(void **state)
{
	static const uint32_t aligns[] = {1, 8, 32, 64, 4096};

	for (size_t k = 0; k < sizeof(aligns) / sizeof(aligns[0]); k++)
	{
		lg_gguf_writer *w = lg_gguf_writer_new();
		lg_error	err;
		lg_gguf    *g;
		char		path[512];
		char		name[32];
		uint8_t		data[3 * 34];
		const int64_t ne1[1] = {32};
		uint32_t	a = 0;

		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = (uint8_t) (i * 7 + k);
		/* q8_0 blocks need 2-byte alignment: alignment 1 gets i8 tensors only */
		lg_type		tq = aligns[k] >= 2 ? LG_TYPE_Q8_0 : LG_TYPE_I8;
		const int64_t ne1b[1] = {tq == LG_TYPE_I8 ? 34 : 32};
		const int64_t ne3b[1] = {tq == LG_TYPE_I8 ? 102 : 96};

		lg_gguf_writer_set_alignment(w, aligns[k]);
		assert_int_equal(lg_gguf_writer_add_tensor(w, "a", tq, 1, ne1b, data), LG_OK);
		assert_int_equal(lg_gguf_writer_add_tensor(w, "b", tq, 1, ne3b, data), LG_OK);
		assert_int_equal(lg_gguf_writer_add_tensor(w, "c", LG_TYPE_I8, 1, ne1, data), LG_OK);
		snprintf(name, sizeof(name), "align%u.gguf", aligns[k]);
		assert_int_equal(lg_gguf_writer_write(w, tmp_path(path, sizeof(path), name), &err), LG_OK);
		lg_gguf_writer_free(w);
		g = lg_gguf_open(path, &err);
		if (g == NULL)
			fail_msg("alignment %u: %s", aligns[k], err.msg);
		assert_int_equal(g->alignment, aligns[k]);
		assert_int_equal(lg_gguf_get_u32(g, "general.alignment", &a), aligns[k] != 32);
		if (aligns[k] != 32)
			assert_int_equal(a, aligns[k]);
		assert_int_equal(g->data_offset % aligns[k], 0);
		for (uint64_t i = 0; i < g->n_tensors; i++)
			assert_int_equal(g->tensors[i].offset % aligns[k], 0);
		assert_memory_equal(lg_gguf_find_tensor(g, "a")->data, data, 34);
		assert_memory_equal(lg_gguf_find_tensor(g, "b")->data, data, 102);
		assert_memory_equal(lg_gguf_find_tensor(g, "c")->data, data, 32);
		lg_gguf_close(g);
	}
}

/* copy_kv reproduces every pair of a file, string arrays included. */
static void
test_copy_kv(void **state)
{
	lg_gguf_writer *w = lg_gguf_writer_new();
	lg_gguf_writer *w2 = lg_gguf_writer_new();
	lg_error	err;
	lg_gguf    *a,
			   *b;
	char		pa[512],
				pb[512];
	const char *toks[3] = {"<s>", "</s>", "\xe2\x96\x81hi"};
	const float scores[3] = {0.0f, -1.5f, 2.25f};
	double		f64 = -0.125;

	lg_gguf_writer_add_str(w, "tokenizer.ggml.model", "llama");
	lg_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 3);
	lg_gguf_writer_add_arr(w, "tokenizer.ggml.scores", LG_GGUF_FLOAT32, scores, 3);
	lg_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
	lg_gguf_writer_add_i32(w, "x.i32", -9);
	lg_gguf_writer_add_f32(w, "x.f32", 0.1f);
	lg_gguf_writer_add_bool(w, "x.bool", false);
	lg_gguf_writer_add_val(w, "x.f64", LG_GGUF_FLOAT64, &f64);
	lg_gguf_writer_set_alignment(w, 16);
	assert_int_equal(lg_gguf_writer_write(w, tmp_path(pa, sizeof(pa), "src.gguf"), &err), LG_OK);
	a = lg_gguf_open(pa, &err);
	assert_non_null(a);
	for (uint64_t i = 0; i < a->n_kv; i++)
		assert_int_equal(lg_gguf_writer_copy_kv(w2, a, &a->kv[i]), LG_OK);
	/* copying a pair twice is a duplicate key */
	assert_int_equal(lg_gguf_writer_copy_kv(w2, a, &a->kv[0]), LG_ERR_ARG);
	lg_gguf_writer_free(w2);
	w2 = lg_gguf_writer_new();
	for (uint64_t i = 0; i < a->n_kv; i++)
		assert_int_equal(lg_gguf_writer_copy_kv(w2, a, &a->kv[i]), LG_OK);
	assert_int_equal(lg_gguf_writer_write(w2, tmp_path(pb, sizeof(pb), "dst.gguf"), &err), LG_OK);
	b = lg_gguf_open(pb, &err);
	assert_non_null(b);
	assert_int_equal(b->n_kv, a->n_kv);
	assert_int_equal(b->alignment, 16);	/* general.alignment copied too */
	for (uint64_t i = 0; i < a->n_kv; i++)
	{
		const lg_gguf_kv *x = &a->kv[i];
		const lg_gguf_kv *y = &b->kv[i];

		assert_true(x->key.len == y->key.len && memcmp(x->key.s, y->key.s, x->key.len) == 0);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->arr_type, y->arr_type);
		assert_int_equal(x->arr_n, y->arr_n);
		if (x->type == LG_GGUF_STRING)
			assert_true(x->val.str.len == y->val.str.len &&
						memcmp(x->val.str.s, y->val.str.s, x->val.str.len) == 0);
		else if (x->type != LG_GGUF_ARRAY)
			assert_true(x->val.u64 == y->val.u64);
		else if (x->arr_type == LG_GGUF_STRING)
		{
			for (uint64_t k = 0; k < x->arr_n; k++)
				assert_true(x->arr_strs[k].len == y->arr_strs[k].len &&
							memcmp(x->arr_strs[k].s, y->arr_strs[k].s, x->arr_strs[k].len) == 0);
		}
		else
			assert_memory_equal(x->arr_data, y->arr_data, x->arr_n * 4);
	}
	lg_gguf_close(a);
	lg_gguf_close(b);
	lg_gguf_writer_free(w);
	lg_gguf_writer_free(w2);
}

/* Bad calls fail, are remembered, and make write fail without leaving files. */
static void
test_writer_errors(void **state)
{
	lg_gguf_writer *w = lg_gguf_writer_new();
	lg_error	err;
	char		path[512];
	const int64_t ne_bad[2] = {33, 1};
	const int64_t ne_neg[2] = {32, -1};
	const int64_t ne_ok[1] = {32};
	float		data[32] = {0};
	char		longname[80];

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(lg_gguf_writer_add_u32(w, "k", 1), LG_OK);
	assert_int_equal(lg_gguf_writer_add_u32(w, "k", 2), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t", LG_TYPE_Q4_0, 2, ne_bad, data), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t", LG_TYPE_F32, 2, ne_neg, data), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t", LG_TYPE_F32, 0, ne_ok, data), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t", LG_TYPE_F32, 5, ne_ok, data), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t", (lg_type) 4, 1, ne_ok, data), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_tensor(w, longname, LG_TYPE_F32, 1, ne_ok, data), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t", LG_TYPE_F32, 1, ne_ok, data), LG_OK);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "t", LG_TYPE_F32, 1, ne_ok, data), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_arr(w, "nested", LG_GGUF_ARRAY, data, 1), LG_ERR_ARG);
	assert_int_equal(lg_gguf_writer_add_u32(w, "general.alignment", 3), LG_ERR_ARG);
	lg_error_clear(&err);
	assert_int_equal(lg_gguf_writer_write(w, tmp_path(path, sizeof(path), "never.gguf"), &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "duplicate key 'k'"));
	assert_int_equal(access(path, F_OK), -1);
	lg_gguf_writer_free(w);

	w = lg_gguf_writer_new();
	lg_gguf_writer_set_alignment(w, 24);
	assert_int_equal(lg_gguf_writer_write(w, path, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "power of two"));
	lg_gguf_writer_free(w);

	/* an alignment too small for a tensor's type would make an unreadable file */
	w = lg_gguf_writer_new();
	lg_gguf_writer_set_alignment(w, 2);
	assert_int_equal(lg_gguf_writer_add_tensor(w, "f", LG_TYPE_F32, 1, ne_ok, data), LG_OK);
	assert_int_equal(lg_gguf_writer_write(w, path, &err), LG_ERR_ARG);
	assert_non_null(strstr(err.msg, "too small for tensor 'f' of type f32"));
	lg_gguf_writer_free(w);

	/* a directory that does not exist: i/o error, no .tmp left behind */
	w = lg_gguf_writer_new();
	lg_gguf_writer_add_u32(w, "k", 1);
	snprintf(path, sizeof(path), "%s/no/such/dir/x.gguf", tmpdir);
	assert_int_equal(lg_gguf_writer_write(w, path, &err), LG_ERR_IO);
	lg_gguf_writer_free(w);
}

/* Writing over an existing file replaces it whole. */
static void
test_writer_replaces(void **state)
{
	lg_gguf_writer *w;
	lg_error	err;
	lg_gguf    *g;
	char		path[512];
	char		tmp[520];

	tmp_path(path, sizeof(path), "replace.gguf");
	for (uint32_t v = 1; v <= 2; v++)
	{
		w = lg_gguf_writer_new();
		lg_gguf_writer_add_u32(w, "v", v);
		assert_int_equal(lg_gguf_writer_write(w, path, &err), LG_OK);
		lg_gguf_writer_free(w);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
	g = lg_gguf_open(path, &err);
	assert_non_null(g);
	assert_int_equal(lg_gguf_get(g, "v")->val.u64, 2);
	lg_gguf_close(g);
}

/* ---- reading hand-built files ---- */

/* A version 2 file (same layout as 3 for our purposes) opens. */
static void
test_v2_file(void **state)
{
	bb			b = {0};
	lg_error	err;
	lg_gguf    *g;
	const lg_gguf_tensor *t;

	small_valid(&b, 2);
	g = open_exact(b.p, b.len, &err);
	if (g == NULL)
		fail_msg("v2: %s", err.msg);
	assert_int_equal(g->version, 2);
	assert_false(g->mapped);
	t = lg_gguf_find_tensor(g, "t");
	assert_non_null(t);
	assert_true(((const float *) t->data)[7] == 7.0f);
	assert_int_equal(g->data_offset, b.len - 32);
	close_exact(g);
	free(b.p);
}

/* A file with no tensors needs no data section or padding. */
static void
test_no_tensors(void **state)
{
	bb			b = {0};
	lg_error	err;
	lg_gguf    *g;

	bb_header(&b, 3, 0, 1);
	bb_kv_u32(&b, "a", 5);
	g = open_exact(b.p, b.len, &err);
	assert_non_null(g);
	assert_int_equal(g->n_tensors, 0);
	close_exact(g);

	b.len = 0;
	bb_header(&b, 3, 0, 0);
	g = open_exact(b.p, b.len, &err);
	assert_non_null(g);
	assert_int_equal(g->n_kv, 0);
	assert_int_equal(lg_gguf_find_key(g, "a"), -1);
	assert_null(lg_gguf_find_tensor(g, "a"));
	close_exact(g);
	free(b.p);
}

/* Every truncation of a valid file is an error, never a crash. */
static void
test_truncation_every_offset(void **state)
{
	bb			b = {0};
	lg_error	err;
	lg_gguf    *g;
	char		path[512];
	uint8_t    *file;
	size_t		len;
	lg_gguf_writer *w = lg_gguf_writer_new();
	const char *toks[2] = {"a", "bc"};
	const int64_t ne[1] = {32};
	float		data[32] = {1};

	/* the hand-built file, whose last tensor ends exactly at EOF */
	small_valid(&b, 3);
	g = open_exact(b.p, b.len, &err);
	assert_non_null(g);
	close_exact(g);
	for (size_t len2 = 0; len2 < b.len; len2++)
	{
		g = open_exact(b.p, len2, &err);
		if (g != NULL)
			fail_msg("truncated at %zu of %zu bytes: accepted", len2, b.len);
		assert_true(err.status == LG_ERR_FORMAT || err.status == LG_ERR_ARG);
	}
	free(b.p);

	/* a written one with every kind of value; 32 f32 = 128 bytes end at EOF */
	lg_gguf_writer_add_str(w, "s", "text");
	lg_gguf_writer_add_arr_str(w, "as", toks, NULL, 2);
	lg_gguf_writer_add_arr(w, "af", LG_GGUF_FLOAT32, data, 4);
	lg_gguf_writer_add_f32(w, "f", 2.0f);
	lg_gguf_writer_add_tensor(w, "w", LG_TYPE_F32, 1, ne, data);
	assert_int_equal(lg_gguf_writer_write(w, tmp_path(path, sizeof(path), "trunc.gguf"), &err), LG_OK);
	lg_gguf_writer_free(w);
	file = read_file(path, &len);
	g = open_exact(file, len, &err);
	assert_non_null(g);
	close_exact(g);
	for (size_t len2 = 0; len2 < len; len2++)
	{
		g = open_exact(file, len2, &err);
		if (g != NULL)
			fail_msg("written file truncated at %zu of %zu bytes: accepted", len2, len);
	}
	free(file);
}

/* Magic, version and byte order. */
static void
test_bad_magic_and_version(void **state)
{
	bb			b = {0};

	small_valid(&b, 3);
	b.p[0] = 'X';
	expect_reject(&b, LG_ERR_FORMAT, "magic");
	b.p[0] = 'G';
	b.p[4] = 1;
	expect_reject(&b, LG_ERR_UNSUPPORTED, "version 1");
	b.p[4] = 4;
	expect_reject(&b, LG_ERR_UNSUPPORTED, "version 4");
	b.p[4] = 0;
	expect_reject(&b, LG_ERR_FORMAT, "version 0");
	/* version 3 written big-endian */
	b.p[4] = 0;
	b.p[7] = 3;
	expect_reject(&b, LG_ERR_UNSUPPORTED, "big-endian");

	b.len = 0;
	bb_put(&b, "GGU", 3);
	expect_reject(&b, LG_ERR_FORMAT, "too short");
	b.len = 0;
	bb_put(&b, "GGUF\3\0\0", 7);
	expect_reject(&b, LG_ERR_FORMAT, "truncated");
	free(b.p);
}

/* Counts that the file cannot possibly hold are refused before allocating. */
static void
test_huge_counts(void **state)
{
	bb			b = {0};

	bb_header(&b, 3, 0, UINT64_MAX);
	bb_kv_u32(&b, "a", 1);
	expect_reject(&b, LG_ERR_FORMAT, "key/value count");
	b.len = 0;
	bb_header(&b, 3, (uint64_t) 1 << 60, 1);
	bb_kv_u32(&b, "a", 1);
	expect_reject(&b, LG_ERR_FORMAT, "tensor count");
	/* 2 pairs claimed, bytes for 2 minimal ones but only 1 real one */
	b.len = 0;
	bb_header(&b, 3, 0, 2);
	bb_kv_u32(&b, "abcdefghijklmnop", 1);
	expect_reject(&b, LG_ERR_FORMAT, "truncated");
	free(b.p);
}

/* String lengths and array counts beyond the file, and overflowing ones. */
static void
test_huge_lengths(void **state)
{
	bb			b = {0};

	/* key length 2^63 */
	bb_header(&b, 3, 0, 1);
	bb_u64(&b, (uint64_t) 1 << 63);
	bb_put(&b, "abcdefghijklmnop", 16);
	expect_reject(&b, LG_ERR_FORMAT, "string length");

	/* string value longer than the file by one byte */
	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, LG_GGUF_STRING);
	bb_u64(&b, 6);
	bb_put(&b, "hello", 5);
	expect_reject(&b, LG_ERR_FORMAT, "string length 6");

	/* u32 array of 2^62 elements: 4 * n overflows 64 bits */
	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, LG_GGUF_ARRAY);
	bb_u32(&b, LG_GGUF_UINT32);
	bb_u64(&b, (uint64_t) 1 << 62);
	bb_zeros(&b, 64);
	expect_reject(&b, LG_ERR_FORMAT, "cannot fit");

	/* u64 array one element longer than the file */
	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, LG_GGUF_ARRAY);
	bb_u32(&b, LG_GGUF_UINT64);
	bb_u64(&b, 3);
	bb_zeros(&b, 16);
	expect_reject(&b, LG_ERR_FORMAT, "cannot fit");

	/* string array of 2^61 strings */
	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, LG_GGUF_ARRAY);
	bb_u32(&b, LG_GGUF_STRING);
	bb_u64(&b, (uint64_t) 1 << 61);
	bb_zeros(&b, 64);
	expect_reject(&b, LG_ERR_FORMAT, "strings cannot fit");

	/* string array whose second string runs past the end */
	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, LG_GGUF_ARRAY);
	bb_u32(&b, LG_GGUF_STRING);
	bb_u64(&b, 2);
	bb_str(&b, "ok");
	bb_u64(&b, 1000);
	bb_zeros(&b, 10);
	expect_reject(&b, LG_ERR_FORMAT, "string 1 of key 'k'");
	free(b.p);
}

/* Value types: invalid numbers, nested arrays, empty keys, duplicates. */
static void
test_bad_values(void **state)
{
	bb			b = {0};

	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, 13);
	bb_u32(&b, 0);
	expect_reject(&b, LG_ERR_FORMAT, "invalid value type 13");

	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, LG_GGUF_ARRAY);
	bb_u32(&b, LG_GGUF_ARRAY);
	bb_u64(&b, 1);
	bb_u32(&b, LG_GGUF_UINT8);
	bb_u64(&b, 1);
	bb_zeros(&b, 1);
	expect_reject(&b, LG_ERR_FORMAT, "array of arrays");

	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, LG_GGUF_ARRAY);
	bb_u32(&b, 99);
	bb_u64(&b, 0);
	expect_reject(&b, LG_ERR_FORMAT, "array of invalid value type 99");

	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_kv_u32(&b, "", 1);
	expect_reject(&b, LG_ERR_FORMAT, "empty");

	b.len = 0;
	bb_header(&b, 3, 0, 3);
	bb_kv_u32(&b, "a", 1);
	bb_kv_u32(&b, "b", 1);
	bb_kv_str(&b, "a", "again");
	expect_reject(&b, LG_ERR_FORMAT, "duplicate key 'a'");
	free(b.p);
}

/* general.alignment must be a uint32 power of two. */
static void
test_bad_alignment(void **state)
{
	static const uint32_t bad[] = {0, 3, 24, 0x80000001u};
	bb			b = {0};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		b.len = 0;
		bb_header(&b, 3, 0, 1);
		bb_kv_u32(&b, "general.alignment", bad[i]);
		expect_reject(&b, LG_ERR_FORMAT, "not a power of two");
	}
	b.len = 0;
	bb_header(&b, 3, 0, 1);
	bb_str(&b, "general.alignment");
	bb_u32(&b, LG_GGUF_UINT64);
	bb_u64(&b, 32);
	expect_reject(&b, LG_ERR_FORMAT, "must be a uint32");
	free(b.p);
}

/* One tensor info with the given fields, then padding and nbytes of data. */
static void
one_tensor_file(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
				uint64_t offset, size_t data_bytes)
{
	b->len = 0;
	bb_header(b, 3, 1, 0);
	bb_tensor(b, name, n_dims, ne, type, offset);
	bb_align(b, 32);
	bb_zeros(b, data_bytes);
}

/* Tensor infos: dimensions, types, shapes, offsets and extents. */
static void
test_bad_tensors(void **state)
{
	bb			b = {0};
	const int64_t ne8[4] = {8, 1, 1, 1};
	const int64_t ne33[2] = {33, 2};
	const int64_t neneg[2] = {32, -1};
	const int64_t nebig[4] = {(int64_t) 1 << 30, (int64_t) 1 << 30, 1, 1};
	const int64_t ne5[5] = {8, 1, 1, 1, 1};
	char		longname[70];
	lg_error	err;
	lg_gguf    *g;

	/* control: the shape used below is fine */
	one_tensor_file(&b, "w", 1, ne8, LG_TYPE_F32, 0, 32);
	g = open_exact(b.p, b.len, &err);
	assert_non_null(g);
	close_exact(g);

	one_tensor_file(&b, "w", 0, ne8, LG_TYPE_F32, 0, 32);
	expect_reject(&b, LG_ERR_FORMAT, "has 0 dimensions");
	one_tensor_file(&b, "w", 5, ne5, LG_TYPE_F32, 0, 32);
	expect_reject(&b, LG_ERR_FORMAT, "has 5 dimensions");
	one_tensor_file(&b, "w", 1, ne8, 4, 0, 32);
	expect_reject(&b, LG_ERR_FORMAT, "unknown type 4");
	one_tensor_file(&b, "w", 1, ne8, 40, 0, 32);
	expect_reject(&b, LG_ERR_FORMAT, "unknown type 40");
	one_tensor_file(&b, "w", 1, ne8, 0xffffffffu, 0, 32);
	expect_reject(&b, LG_ERR_FORMAT, "unknown type");
	one_tensor_file(&b, "w", 2, ne33, LG_TYPE_Q4_0, 0, 64);
	expect_reject(&b, LG_ERR_FORMAT, "not a multiple of the block size 32");
	one_tensor_file(&b, "w", 2, neneg, LG_TYPE_F32, 0, 128);
	expect_reject(&b, LG_ERR_FORMAT, "negative");
	one_tensor_file(&b, "w", 2, nebig, LG_TYPE_F32, 0, 32);
	expect_reject(&b, LG_ERR_FORMAT, "past end of file");
	{
		const int64_t neovf[4] = {(int64_t) 1 << 32, (int64_t) 1 << 32, 1 << 20, 1};

		one_tensor_file(&b, "w", 3, neovf, LG_TYPE_F32, 0, 32);
		expect_reject(&b, LG_ERR_FORMAT, "too many elements");
	}
	one_tensor_file(&b, "w", 1, ne8, LG_TYPE_F32, 16, 64);
	expect_reject(&b, LG_ERR_FORMAT, "not a multiple of the alignment 32");
	one_tensor_file(&b, "w", 1, ne8, LG_TYPE_F32, 32, 63);
	expect_reject(&b, LG_ERR_FORMAT, "extends past end of file (needs 32 bytes at offset");
	one_tensor_file(&b, "w", 1, ne8, LG_TYPE_F32, (uint64_t) 1 << 63, 32);
	expect_reject(&b, LG_ERR_FORMAT, "past end of file");
	one_tensor_file(&b, "w", 1, ne8, LG_TYPE_F32, UINT64_MAX - 31, 32);
	expect_reject(&b, LG_ERR_FORMAT, "past end of file");
	/* data section itself missing */
	one_tensor_file(&b, "w", 1, ne8, LG_TYPE_F32, 0, 0);
	expect_reject(&b, LG_ERR_FORMAT, "tensor 'w' extends past end of file");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	one_tensor_file(&b, longname, 1, ne8, LG_TYPE_F32, 0, 32);
	expect_reject(&b, LG_ERR_FORMAT, "at most 63");

	/* duplicate tensor names */
	b.len = 0;
	bb_header(&b, 3, 2, 0);
	bb_tensor(&b, "w", 1, ne8, LG_TYPE_F32, 0);
	bb_tensor(&b, "w", 1, ne8, LG_TYPE_F32, 32);
	bb_align(&b, 32);
	bb_zeros(&b, 64);
	expect_reject(&b, LG_ERR_FORMAT, "duplicate tensor name 'w'");

	/* the exact message for a tensor past the end */
	b.len = 0;
	bb_header(&b, 3, 1, 0);
	bb_tensor(&b, "blk.0.attn_q.weight", 1, ne8, LG_TYPE_F32, 0);
	bb_align(&b, 32);
	bb_zeros(&b, 20);
	lg_error_clear(&err);
	assert_null(open_exact(b.p, b.len, &err));
	{
		char		want[200];

		snprintf(want, sizeof(want),
				 "tensor 'blk.0.attn_q.weight' extends past end of file (needs 32 bytes at offset %zu, file has %zu)",
				 b.len - 20, b.len);
		assert_string_equal(err.msg, want);
	}
	/* alignment 1 puts an f32 tensor at an odd address: refused, not read misaligned */
	b.len = 0;
	bb_header(&b, 3, 1, 1);
	bb_kv_u32(&b, "general.alignment", 1);
	bb_tensor(&b, "ww", 1, ne8, LG_TYPE_F32, 0);
	if (b.len % 2 == 0)
		fail_msg("test file layout changed: header should end at an odd offset");
	bb_zeros(&b, 32);
	expect_reject(&b, LG_ERR_FORMAT, "tensor 'ww' data at file offset 91 is not aligned to the 4 bytes type f32 needs");
	/* ... while an i8 tensor there is fine */
	b.len = 0;
	bb_header(&b, 3, 1, 1);
	bb_kv_u32(&b, "general.alignment", 1);
	bb_tensor(&b, "w", 1, ne8, LG_TYPE_I8, 0);
	bb_zeros(&b, 8);
	g = open_exact(b.p, b.len, &err);
	assert_non_null(g);
	close_exact(g);

	/* non-printable bytes in a name are not copied into messages */
	b.len = 0;
	bb_header(&b, 3, 1, 0);
	bb_tensor(&b, "a\nb\x01", 1, ne8, LG_TYPE_F32, 0);
	bb_align(&b, 32);
	expect_reject(&b, LG_ERR_FORMAT, "tensor 'a?b?' extends past end of file");
	free(b.p);
}

/* lg_gguf_open on paths that are not GGUF files. */
static void
test_open_errors(void **state)
{
	lg_error	err;
	char		path[512];
	FILE	   *f;

	assert_null(lg_gguf_open("/nonexistent/dir/model.gguf", &err));
	assert_int_equal(err.status, LG_ERR_IO);
	assert_non_null(strstr(err.msg, "/nonexistent/dir/model.gguf"));
	assert_null(lg_gguf_open(tmpdir, &err));
	assert_int_equal(err.status, LG_ERR_IO);
	f = fopen(tmp_path(path, sizeof(path), "empty.gguf"), "wb");
	fclose(f);
	assert_null(lg_gguf_open(path, &err));
	assert_int_equal(err.status, LG_ERR_FORMAT);
	f = fopen(tmp_path(path, sizeof(path), "text.gguf"), "wb");
	fputs("this is not a model file at all, just text\n", f);
	fclose(f);
	assert_null(lg_gguf_open(path, &err));
	assert_int_equal(err.status, LG_ERR_FORMAT);
	assert_non_null(strstr(err.msg, "text.gguf: not a GGUF file"));
	assert_null(lg_gguf_open_buffer(NULL, 10, &err));
	assert_int_equal(err.status, LG_ERR_ARG);
	lg_gguf_close(NULL);
}

/* ---- real files ---- */

/* stories260K: a real llama converted by llama.cpp. */
static void
test_fixture_stories(void **state)
{
	char		buf[4096];
	const char *path = lg_test_fixture(buf, "fixtures/models/stories260K.gguf");
	lg_error	err;
	lg_gguf    *g;
	const lg_gguf_tensor *t;
	char		arch[32];
	uint32_t	v = 0;
	lg_gguf_vtype at;
	uint64_t	an = 0;

	if (path == NULL)
		skip();
	g = lg_gguf_open(path, &err);
	if (g == NULL)
		fail_msg("%s", err.msg);
	assert_true(lg_gguf_get_cstr(g, "general.architecture", arch, sizeof(arch)));
	assert_string_equal(arch, "llama");
	assert_true(lg_gguf_get_u32(g, "llama.embedding_length", &v));
	assert_int_equal(v, 64);
	assert_true(lg_gguf_get_u32(g, "llama.block_count", &v));
	assert_int_equal(v, 5);
	assert_true(lg_gguf_get_arr(g, "tokenizer.ggml.tokens", &at, &an));
	assert_int_equal(at, LG_GGUF_STRING);
	assert_int_equal(an, 512);
	t = lg_gguf_find_tensor(g, "token_embd.weight");
	assert_non_null(t);
	assert_int_equal(t->type, LG_TYPE_F32);
	assert_true(t->ne[0] == 64 && t->ne[1] == 512);
	assert_int_equal(t->nbytes, 64 * 512 * 4);
	assert_non_null(lg_gguf_find_tensor(g, "blk.4.ffn_down.weight"));
	lg_gguf_close(g);
}

/* Every vocabulary-only file of the tokenizer fixtures opens. */
static void
test_fixture_tokenizers(void **state)
{
	static const char *names[] = {
		"ggml-vocab-bert-bge.gguf", "ggml-vocab-deepseek-llm.gguf", "ggml-vocab-gpt-2.gguf",
		"ggml-vocab-llama-spm.gguf", "ggml-vocab-mpt.gguf", "ggml-vocab-phi-3.gguf",
	};
	char		buf[4096];
	char		rel[256];
	int			found = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
	{
		const char *path;
		lg_error	err;
		lg_gguf    *g;
		lg_gguf_vtype at;
		uint64_t	an = 0;

		snprintf(rel, sizeof(rel), "fixtures/tokenizer/%s", names[i]);
		path = lg_test_fixture(buf, rel);
		if (path == NULL)
			continue;
		found++;
		g = lg_gguf_open(path, &err);
		if (g == NULL)
			fail_msg("%s: %s", names[i], err.msg);
		assert_true(lg_gguf_get_arr(g, "tokenizer.ggml.tokens", &at, &an));
		assert_int_equal(at, LG_GGUF_STRING);
		assert_true(an > 1000);
		lg_gguf_close(g);
	}
	if (found == 0)
		skip();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all_types),
		cmocka_unit_test(test_alignment_variants),
		cmocka_unit_test(test_copy_kv),
		cmocka_unit_test(test_writer_errors),
		cmocka_unit_test(test_writer_replaces),
		cmocka_unit_test(test_v2_file),
		cmocka_unit_test(test_no_tensors),
		cmocka_unit_test(test_truncation_every_offset),
		cmocka_unit_test(test_bad_magic_and_version),
		cmocka_unit_test(test_huge_counts),
		cmocka_unit_test(test_huge_lengths),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_alignment),
		cmocka_unit_test(test_bad_tensors),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_fixture_stories),
		cmocka_unit_test(test_fixture_tokenizers),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
