/*
 * test_quants.c — the type table, f16/bf16 conversions, and the scalar
 * reference (de)quantizers and dot products of lg_types.h.
 *
 * Dequantization is checked on blocks built byte by byte, with the expected
 * floats worked out from the block layout (written out as a small formula
 * per value position, independent of the code under test, plus literal spot
 * values).  Quantizers are checked bit for bit on inputs whose ggml result
 * is known by hand (q8_0, q8_1, q8_K, q4_0), and on random data by the
 * round-trip error bounds stated in roundtrip_bounds[].  Dot products are
 * checked against a double-precision dot of the dequantized rows.
 */
#include "test_util.h"

#include <float.h>
#include <math.h>

#include "lg_types.h"

/* Bits of a float. */
static uint32_t
fbits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, 4);
	return u;
}

/* Float from bits. */
static float
bitsf(uint32_t u)
{
	float		f;

	memcpy(&f, &u, 4);
	return f;
}

/* Assert two floats are the same bits, naming the position on failure. */
static void
expect_same(const float *got, const float *want, int n, const char *what)
{
	for (int i = 0; i < n; i++)
	{
		if (fbits(got[i]) != fbits(want[i]))
			fail_msg("%s: value %d is %.9g, expected %.9g", what, i, got[i], want[i]);
	}
}

/* ---- type table ---- */

/* Sizes and names are GGUF's; vec_dot types as the engine expects. */
static void
test_type_table(void **state)
{
	static const struct
	{
		lg_type		t;
		const char *name;
		int			bs;
		size_t		ts;
		lg_type		vd;
	}			want[] = {
		{LG_TYPE_F32, "f32", 1, 4, LG_TYPE_F32},
		{LG_TYPE_F16, "f16", 1, 2, LG_TYPE_F16},
		{LG_TYPE_Q4_0, "q4_0", 32, 18, LG_TYPE_Q8_0},
		{LG_TYPE_Q4_1, "q4_1", 32, 20, LG_TYPE_Q8_1},
		{LG_TYPE_Q5_0, "q5_0", 32, 22, LG_TYPE_Q8_0},
		{LG_TYPE_Q5_1, "q5_1", 32, 24, LG_TYPE_Q8_1},
		{LG_TYPE_Q8_0, "q8_0", 32, 34, LG_TYPE_Q8_0},
		{LG_TYPE_Q8_1, "q8_1", 32, 36, LG_TYPE_Q8_1},
		{LG_TYPE_Q2_K, "q2_K", 256, 84, LG_TYPE_Q8_K},
		{LG_TYPE_Q3_K, "q3_K", 256, 110, LG_TYPE_Q8_K},
		{LG_TYPE_Q4_K, "q4_K", 256, 144, LG_TYPE_Q8_K},
		{LG_TYPE_Q5_K, "q5_K", 256, 176, LG_TYPE_Q8_K},
		{LG_TYPE_Q6_K, "q6_K", 256, 210, LG_TYPE_Q8_K},
		{LG_TYPE_Q8_K, "q8_K", 256, 292, LG_TYPE_Q8_K},
		{LG_TYPE_I8, "i8", 1, 1, LG_TYPE_I8},
		{LG_TYPE_I16, "i16", 1, 2, LG_TYPE_I16},
		{LG_TYPE_I32, "i32", 1, 4, LG_TYPE_I32},
		{LG_TYPE_I64, "i64", 1, 8, LG_TYPE_I64},
		{LG_TYPE_F64, "f64", 1, 8, LG_TYPE_F64},
		{LG_TYPE_BF16, "bf16", 1, 2, LG_TYPE_BF16},
	};
	int			n_valid = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
	{
		const lg_type_info *ti = lg_type_get(want[i].t);

		assert_true(lg_type_valid(want[i].t));
		assert_string_equal(ti->name, want[i].name);
		assert_int_equal(ti->block_size, want[i].bs);
		assert_int_equal(ti->type_size, want[i].ts);
		assert_int_equal(ti->vec_dot_type, want[i].vd);
		assert_int_equal(ti->quantized, want[i].bs > 1);
	}
	for (uint32_t t = 0; t < 100; t++)
		n_valid += lg_type_valid(t);
	assert_int_equal(n_valid, 20);
	/* removed ggml types (q4_2 = 4, q4_3 = 5) and out-of-range numbers */
	assert_false(lg_type_valid(4));
	assert_false(lg_type_valid(5));
	assert_false(lg_type_valid(LG_TYPE_COUNT));
	assert_false(lg_type_valid(UINT32_MAX));
	assert_int_equal(lg_type_get(4)->block_size, 0);
	assert_int_equal(lg_type_get(UINT32_MAX)->block_size, 0);
}

/* Names parse case-insensitively; llama.cpp's mixes name their base type. */
static void
test_type_from_name(void **state)
{
	lg_type		t = LG_TYPE_F32;

	assert_true(lg_type_from_name("q4_0", &t));
	assert_int_equal(t, LG_TYPE_Q4_0);
	assert_true(lg_type_from_name("Q4_K", &t));
	assert_int_equal(t, LG_TYPE_Q4_K);
	assert_true(lg_type_from_name("q6_k", &t));
	assert_int_equal(t, LG_TYPE_Q6_K);
	assert_true(lg_type_from_name("BF16", &t));
	assert_int_equal(t, LG_TYPE_BF16);
	assert_true(lg_type_from_name("q4_k_m", &t));
	assert_int_equal(t, LG_TYPE_Q4_K);
	assert_true(lg_type_from_name("Q4_K_S", &t));
	assert_int_equal(t, LG_TYPE_Q4_K);
	assert_true(lg_type_from_name("q5_k_m", &t));
	assert_int_equal(t, LG_TYPE_Q5_K);
	assert_true(lg_type_from_name("q5_K_s", &t));
	assert_int_equal(t, LG_TYPE_Q5_K);
	assert_true(lg_type_from_name("q3_k_m", &t));
	assert_int_equal(t, LG_TYPE_Q3_K);
	t = LG_TYPE_F16;
	assert_false(lg_type_from_name("q4", &t));
	assert_false(lg_type_from_name("q4_0x", &t));
	assert_false(lg_type_from_name("", &t));
	assert_false(lg_type_from_name("unknown", &t));
	assert_false(lg_type_from_name(NULL, &t));
	assert_int_equal(t, LG_TYPE_F16);
}

/* Row sizes: whole blocks only, 0 on overflow. */
static void
test_row_size(void **state)
{
	assert_int_equal(lg_row_size(LG_TYPE_F32, 10), 40);
	assert_int_equal(lg_row_size(LG_TYPE_Q4_0, 64), 36);
	assert_int_equal(lg_row_size(LG_TYPE_Q4_K, 4096), 16 * 144);
	assert_int_equal(lg_row_size(LG_TYPE_Q6_K, 256), 210);
	assert_int_equal(lg_row_size(LG_TYPE_Q4_0, 0), 0);
	assert_int_equal(lg_row_size(LG_TYPE_Q4_0, 33), 0);
	assert_int_equal(lg_row_size(LG_TYPE_Q4_0, -32), 0);
	assert_int_equal(lg_row_size((lg_type) 4, 32), 0);
	assert_int_equal(lg_row_size(LG_TYPE_F64, INT64_MAX / 2), 0);	/* 8 * n overflows */
	assert_int_equal(lg_row_size(LG_TYPE_F64, INT64_MAX / 8), (size_t) (INT64_MAX / 8) * 8);
	assert_int_equal(lg_row_size(LG_TYPE_I8, INT64_MAX), (size_t) INT64_MAX);
}

/* ---- f16 / bf16 ---- */

/* f32 -> f16 at the edges: rounding ties, subnormals, overflow, inf, NaN. */
static void
test_f16_from_f32(void **state)
{
	assert_int_equal(lg_f32_to_f16(0.0f), 0x0000);
	assert_int_equal(lg_f32_to_f16(-0.0f), 0x8000);
	assert_int_equal(lg_f32_to_f16(1.0f), 0x3c00);
	assert_int_equal(lg_f32_to_f16(-2.0f), 0xc000);
	assert_int_equal(lg_f32_to_f16(0.5f), 0x3800);
	assert_int_equal(lg_f32_to_f16(65504.0f), 0x7bff);	/* largest finite */
	assert_int_equal(lg_f32_to_f16(65519.99f), 0x7bff);	/* just below the halfway to 65536 */
	assert_int_equal(lg_f32_to_f16(65520.0f), 0x7c00);	/* halfway: ties to even = inf */
	assert_int_equal(lg_f32_to_f16(1e10f), 0x7c00);
	assert_int_equal(lg_f32_to_f16(-1e10f), 0xfc00);
	assert_int_equal(lg_f32_to_f16(INFINITY), 0x7c00);
	assert_int_equal(lg_f32_to_f16(-INFINITY), 0xfc00);
	assert_int_equal(lg_f32_to_f16(NAN), 0x7e00);
	assert_int_equal(lg_f32_to_f16(bitsf(0xffc00001)), 0xfe00);	/* -NaN keeps its sign */
	assert_int_equal(lg_f32_to_f16(bitsf(0x7f800001)), 0x7e00);	/* signalling NaN */
	/* ties: 1 + 2^-11 is halfway between 0x3c00 and 0x3c01 -> even 0x3c00 */
	assert_int_equal(lg_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
	assert_int_equal(lg_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
	assert_int_equal(lg_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	/* subnormals: 2^-24 is the smallest */
	assert_int_equal(lg_f32_to_f16(0x1p-24f), 0x0001);
	assert_int_equal(lg_f32_to_f16(0x1p-25f), 0x0000);	/* tie -> even (0) */
	assert_int_equal(lg_f32_to_f16(0x1p-25f * 1.0001f), 0x0001);
	assert_int_equal(lg_f32_to_f16(3 * 0x1p-25f), 0x0002);	/* 1.5 ulp: tie -> 2 */
	assert_int_equal(lg_f32_to_f16(5 * 0x1p-25f), 0x0002);	/* 2.5 ulp: tie -> 2 */
	assert_int_equal(lg_f32_to_f16(0x1p-26f), 0x0000);
	assert_int_equal(lg_f32_to_f16(-0x1p-24f), 0x8001);
	assert_int_equal(lg_f32_to_f16(1023 * 0x1p-24f), 0x03ff);	/* largest subnormal */
	assert_int_equal(lg_f32_to_f16(1023.5f * 0x1p-24f), 0x0400);	/* rounds up to the smallest normal */
	assert_int_equal(lg_f32_to_f16(0x1p-14f), 0x0400);
	assert_int_equal(lg_f32_to_f16(FLT_MIN), 0x0000);
	assert_int_equal(lg_f32_to_f16(bitsf(1)), 0x0000);	/* float subnormal */
}

/* f16 -> f32 is exact; every non-NaN half round-trips. */
static void
test_f16_to_f32(void **state)
{
	assert_true(lg_f16_to_f32(0x3c00) == 1.0f);
	assert_true(lg_f16_to_f32(0x0001) == 0x1p-24f);
	assert_true(lg_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
	assert_true(lg_f16_to_f32(0x7bff) == 65504.0f);
	assert_int_equal(fbits(lg_f16_to_f32(0x8000)), 0x80000000u);
	assert_true(isinf(lg_f16_to_f32(0x7c00)) && lg_f16_to_f32(0x7c00) > 0);
	assert_true(isinf(lg_f16_to_f32(0xfc00)) && lg_f16_to_f32(0xfc00) < 0);
	assert_true(isnan(lg_f16_to_f32(0x7c01)));
	assert_true(isnan(lg_f16_to_f32(0x7e00)));
	for (uint32_t h = 0; h < 65536; h++)
	{
		float		f = lg_f16_to_f32((lg_f16) h);

		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0)
		{
			if (!isnan(f))
				fail_msg("half 0x%04x should be NaN", h);
			continue;
		}
		if (lg_f32_to_f16(f) != h)
			fail_msg("half 0x%04x -> %g -> 0x%04x", h, f, lg_f32_to_f16(f));
	}
}

/* bf16: round to nearest even on the top 16 bits; NaN stays NaN. */
static void
test_bf16(void **state)
{
	assert_int_equal(lg_f32_to_bf16(1.0f), 0x3f80);
	assert_int_equal(lg_f32_to_bf16(-0.0f), 0x8000);
	assert_int_equal(lg_f32_to_bf16(bitsf(0x3f808000)), 0x3f80);	/* tie -> even */
	assert_int_equal(lg_f32_to_bf16(bitsf(0x3f818000)), 0x3f82);	/* tie -> even */
	assert_int_equal(lg_f32_to_bf16(bitsf(0x3f808001)), 0x3f81);
	assert_int_equal(lg_f32_to_bf16(bitsf(0x3f807fff)), 0x3f80);
	assert_int_equal(lg_f32_to_bf16(INFINITY), 0x7f80);
	assert_int_equal(lg_f32_to_bf16(-INFINITY), 0xff80);
	assert_int_equal(lg_f32_to_bf16(FLT_MAX), 0x7f80);	/* rounds to inf */
	assert_int_equal(lg_f32_to_bf16(bitsf(0x00000001)), 0x0000);	/* float subnormals round too */
	assert_int_equal(lg_f32_to_bf16(bitsf(0x00018000)), 0x0002);
	/* NaN: a payload only in the low bits must not round to inf */
	assert_int_equal(lg_f32_to_bf16(bitsf(0x7f800001)), 0x7fc0);
	assert_int_equal(lg_f32_to_bf16(bitsf(0xff800001)), 0xffc0);
	assert_int_equal(lg_f32_to_bf16(bitsf(0x7fffffff)), 0x7fff);
	assert_true(isnan(lg_bf16_to_f32(lg_f32_to_bf16(NAN))));
	assert_true(lg_bf16_to_f32(0x3f80) == 1.0f);
	assert_true(lg_bf16_to_f32(0x4049) == bitsf(0x40490000));
	for (uint32_t h = 0; h < 65536; h++)
	{
		float		f = lg_bf16_to_f32((lg_bf16) h);

		if (!isnan(f) && lg_f32_to_bf16(f) != h)
			fail_msg("bf16 0x%04x does not round-trip", h);
	}
}

/* ---- dequantization of hand-built blocks ---- */

/* f32, f16 and bf16 rows. */
static void
test_dequant_float_types(void **state)
{
	const lg_f16 h[4] = {0x3c00, 0xc000, 0x3800, 0x0001};
	const lg_bf16 b[4] = {0x3f80, 0xc000, 0x3f00, 0x4049};
	const float f[4] = {1.5f, -2.0f, 0.0f, 1e-3f};
	float		out[4];
	const float want_h[4] = {1.0f, -2.0f, 0.5f, 0x1p-24f};
	const float want_b[4] = {1.0f, -2.0f, 0.5f, bitsf(0x40490000)};

	assert_true(lg_dequantize_row(LG_TYPE_F16, h, out, 4));
	expect_same(out, want_h, 4, "f16");
	assert_true(lg_dequantize_row(LG_TYPE_BF16, b, out, 4));
	expect_same(out, want_b, 4, "bf16");
	assert_true(lg_dequantize_row(LG_TYPE_F32, f, out, 4));
	expect_same(out, f, 4, "f32");
	assert_false(lg_dequantize_row(LG_TYPE_I32, f, out, 4));
	assert_false(lg_dequantize_row((lg_type) 4, f, out, 4));
	assert_false(lg_dequantize_row(LG_TYPE_Q4_0, f, out, 16));
}

/* q4_0: d = 0.5; byte j = j | (15 - j) << 4: value j is (j-8)/2, value 16+j is (7-j)/2. */
static void
test_dequant_q4_0(void **state)
{
	lg_block_q4_0 b[2];
	float		out[64];
	float		want[64];

	memset(b, 0, sizeof(b));
	b[0].d = 0x3800;			/* 0.5 */
	b[1].d = 0xbc00;			/* -1.0 */
	for (int j = 0; j < 16; j++)
	{
		b[0].qs[j] = (uint8_t) (j | (15 - j) << 4);
		b[1].qs[j] = 0xf0;		/* low nibble 0 -> -8, high 15 -> 7 */
		want[j] = (j - 8) * 0.5f;
		want[16 + j] = (7 - j) * 0.5f;
		want[32 + j] = 8.0f;	/* -8 * -1 */
		want[48 + j] = -7.0f;
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q4_0, b, out, 64));
	expect_same(out, want, 64, "q4_0");
	assert_true(out[0] == -4.0f && out[15] == 3.5f && out[16] == 3.5f && out[31] == -4.0f);
}

/* q4_1: d = 0.25, m = -1: value = q/4 - 1. */
static void
test_dequant_q4_1(void **state)
{
	lg_block_q4_1 b;
	float		out[32];
	float		want[32];

	b.d = 0x3400;				/* 0.25 */
	b.m = 0xbc00;				/* -1.0 */
	for (int j = 0; j < 16; j++)
	{
		b.qs[j] = (uint8_t) (j | (15 - j) << 4);
		want[j] = j * 0.25f - 1.0f;
		want[16 + j] = (15 - j) * 0.25f - 1.0f;
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q4_1, &b, out, 32));
	expect_same(out, want, 32, "q4_1");
	assert_true(out[0] == -1.0f && out[15] == 2.75f && out[16] == 2.75f);
}

/*
 * q5_0 and q5_1: qh = 0xA5A5F00F (little-endian bytes 0F F0 A5 A5) gives
 * the fifth bit of value i as bit i; low nibbles as in q4_0's test.
 */
static void
test_dequant_q5(void **state)
{
	const uint32_t qh = 0xA5A5F00Fu;
	lg_block_q5_0 b0;
	lg_block_q5_1 b1;
	float		out[32];
	float		want0[32];
	float		want1[32];

	b0.d = 0x3c00;				/* 1.0 */
	b1.d = 0x3800;				/* 0.5 */
	b1.m = 0x4000;				/* 2.0 */
	b0.qh[0] = b1.qh[0] = 0x0f;
	b0.qh[1] = b1.qh[1] = 0xf0;
	b0.qh[2] = b1.qh[2] = 0xa5;
	b0.qh[3] = b1.qh[3] = 0xa5;
	for (int j = 0; j < 16; j++)
	{
		b0.qs[j] = b1.qs[j] = (uint8_t) (j | (15 - j) << 4);
	}
	for (int i = 0; i < 32; i++)
	{
		int			lo = i < 16 ? i : 15 - (i - 16);
		int			q = lo | (int) ((qh >> i) & 1) << 4;

		want0[i] = (float) (q - 16);
		want1[i] = q * 0.5f + 2.0f;
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q5_0, &b0, out, 32));
	expect_same(out, want0, 32, "q5_0");
	/* value 0: nibble 0, bit 0 set -> 16 - 16 = 0; value 4: nibble 4, bit 4 clear -> -12 */
	/* value 31: nibble 15 - 15 = 0, bit 31 set -> 16 - 16 = 0 */
	assert_true(out[0] == 0.0f && out[4] == -12.0f && out[31] == 0.0f);
	assert_true(lg_dequantize_row(LG_TYPE_Q5_1, &b1, out, 32));
	expect_same(out, want1, 32, "q5_1");
	assert_true(out[0] == 10.0f && out[4] == 4.0f);
}

/* q8_0 and q8_1: value = q * d. */
static void
test_dequant_q8(void **state)
{
	lg_block_q8_0 b0;
	lg_block_q8_1 b1;
	float		out[32];
	float		want[32];

	b0.d = b1.d = 0x3000;		/* 0.125 */
	b1.s = 0x7c00;				/* ignored by dequantization */
	for (int j = 0; j < 32; j++)
	{
		b0.qs[j] = b1.qs[j] = (int8_t) (j * 8 - 128);
		want[j] = (j * 8 - 128) * 0.125f;
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q8_0, &b0, out, 32));
	expect_same(out, want, 32, "q8_0");
	assert_true(out[0] == -16.0f && out[31] == 15.0f);
	assert_true(lg_dequantize_row(LG_TYPE_Q8_1, &b1, out, 32));
	expect_same(out, want, 32, "q8_1");
}

/*
 * q2_K: d = 1, dmin = 0.5; scale byte is = (is % 15 + 1) | (is % 4) << 4;
 * every qs byte 0xE4 holds 0,1,2,3 at shifts 0,2,4,6.  Value i lies in
 * 128-half n = i/128, shift j = (i%128)/32, half h = (i%32)/16, so its
 * quant is j and its scale index is 8n + 2j + h.
 */
static void
test_dequant_q2_K(void **state)
{
	lg_block_q2_K b;
	float		out[256];
	float		want[256];

	b.d = 0x3c00;
	b.dmin = 0x3800;
	for (int is = 0; is < 16; is++)
		b.scales[is] = (uint8_t) ((is % 15 + 1) | (is % 4) << 4);
	memset(b.qs, 0xe4, sizeof(b.qs));
	for (int i = 0; i < 256; i++)
	{
		int			n = i / 128,
					j = (i % 128) / 32,
					h = (i % 32) / 16;
		int			is = 8 * n + 2 * j + h;

		want[i] = 1.0f * (is % 15 + 1) * j - 0.5f * (is % 4);
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q2_K, &b, out, 256));
	expect_same(out, want, 256, "q2_K");
	/* spot: value 0 (is 0: scale 1, min 0, q 0) = 0; value 255 (is 15: scale 1, min 3, q 3) = 3 - 1.5 */
	assert_true(out[0] == 0.0f && out[255] == 1.5f);
	/* value 100: n 0, j 3, h 0 -> is 6: scale 7, min 2 -> 7*3 - 1 = 20 */
	assert_true(out[100] == 20.0f);
}

/*
 * q3_K: d = 0.5; the sixteen 6-bit scales are 32 + (j - 8) - 5*(j == 15)
 * (so effective j - 8, and 2 for j = 15), packed low nibbles in bytes 0-7
 * (j < 8 low, j >= 8 high) and top bits in bytes 8-11.  qs bytes 0x1B hold
 * 3,2,1,0 at shifts 0,2,4,6; hmask bytes 0x55 set the high bit for even
 * shift groups.  Value i: half n = i/128, shift group g = (i%128)/32, sub
 * h = (i%32)/16; quant = 3 - g, high bit = bit (4n + g) of 0x55, scale
 * index 8n + 2g + h; value = d * scale * (q - (high ? 0 : 4)).
 */
static void
test_dequant_q3_K(void **state)
{
	lg_block_q3_K b;
	int			sc[16];
	float		out[256];
	float		want[256];

	memset(&b, 0, sizeof(b));
	b.d = 0x3800;
	for (int j = 0; j < 16; j++)
	{
		int			s = 32 + (j - 8) - (j == 15 ? 5 : 0);

		sc[j] = s - 32;
		if (j < 8)
			b.scales[j] |= (uint8_t) (s & 0xf);
		else
			b.scales[j - 8] |= (uint8_t) ((s & 0xf) << 4);
		b.scales[8 + j % 4] |= (uint8_t) ((s >> 4) << (2 * (j / 4)));
	}
	memset(b.qs, 0x1b, sizeof(b.qs));
	memset(b.hmask, 0x55, sizeof(b.hmask));
	for (int i = 0; i < 256; i++)
	{
		int			n = i / 128,
					g = (i % 128) / 32,
					h = (i % 32) / 16;
		int			q = 3 - g;
		int			high = (0x55 >> (4 * n + g)) & 1;

		want[i] = 0.5f * sc[8 * n + 2 * g + h] * (q - (high ? 0 : 4));
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q3_K, &b, out, 256));
	expect_same(out, want, 256, "q3_K");
	/* value 0: scale -8, q 3, high set -> 0.5 * -8 * 3 = -12 */
	assert_true(out[0] == -12.0f);
	/* value 32: scale index 2 (-6), q 2, high clear -> 0.5 * -6 * (2 - 4) = 6 */
	assert_true(out[32] == 6.0f);
	/* value 255: scale index 15 (2), q 0, high clear -> 0.5 * 2 * -4 = -4 */
	assert_true(out[255] == -4.0f);
}

/*
 * Pack eight 6-bit (scale, min) pairs the q4_K/q5_K way: pairs 0-3 in the
 * low 6 bits of bytes 0-3 / 4-7, pairs 4-7 low nibbles in bytes 8-11 and
 * top 2 bits in the spare bits of bytes 0-3 (scale) / 4-7 (min).
 */
static void
pack_k4_scales(uint8_t out[12], const int sc[8], const int mn[8])
{
	memset(out, 0, 12);
	for (int j = 0; j < 4; j++)
	{
		out[j] = (uint8_t) sc[j];
		out[j + 4] = (uint8_t) mn[j];
	}
	for (int j = 4; j < 8; j++)
	{
		out[j + 4] = (uint8_t) ((sc[j] & 0xf) | (mn[j] & 0xf) << 4);
		out[j - 4] |= (uint8_t) ((sc[j] >> 4) << 6);
		out[j] |= (uint8_t) ((mn[j] >> 4) << 6);
	}
}

/*
 * q4_K: d = 1, dmin = 0.25; sub-block s (32 values) has scale 7s + 5 and
 * min 63 - 8s (both above 15 for s >= 4, so the high bits matter); byte k
 * of qs is k*37 mod 256.  Value i: chunk c = i/64, low nibble of qs[32c +
 * i%32] for i%64 < 32 else high nibble.
 */
static void
test_dequant_q4_K(void **state)
{
	lg_block_q4_K b;
	int			sc[8],
				mn[8];
	float		out[256];
	float		want[256];

	b.d = 0x3c00;
	b.dmin = 0x3400;
	for (int s = 0; s < 8; s++)
	{
		sc[s] = 7 * s + 5;
		mn[s] = 63 - 8 * s;
	}
	pack_k4_scales(b.scales, sc, mn);
	for (int k = 0; k < 128; k++)
		b.qs[k] = (uint8_t) (k * 37);
	for (int i = 0; i < 256; i++)
	{
		int			c = i / 64;
		uint8_t		byte = (uint8_t) ((32 * c + i % 32) * 37);
		int			q = (i % 64) < 32 ? (byte & 0xf) : (byte >> 4);
		int			s = i / 32;

		want[i] = 1.0f * sc[s] * q - 0.25f * mn[s];
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q4_K, &b, out, 256));
	expect_same(out, want, 256, "q4_K");
	/* value 0: byte 0 -> q 0; scale 5, min 63 -> -15.75 */
	assert_true(out[0] == -15.75f);
	/* value 255: s 7 (scale 54, min 7); byte 127*37 = 4699 % 256 = 91 = 0x5b, high nibble 5 -> 270 - 1.75 */
	assert_true(out[255] == 268.25f);
}

/*
 * q5_K: q4_K's layout plus a fifth bit: for chunk c the low-nibble values
 * take bit 2c of qh[i%32], the high-nibble ones bit 2c+1; qh[l] = l * 29.
 */
static void
test_dequant_q5_K(void **state)
{
	lg_block_q5_K b;
	int			sc[8],
				mn[8];
	float		out[256];
	float		want[256];

	b.d = 0x3800;				/* 0.5 */
	b.dmin = 0x3c00;			/* 1.0 */
	for (int s = 0; s < 8; s++)
	{
		sc[s] = 63 - 5 * s;
		mn[s] = 9 * s;
	}
	pack_k4_scales(b.scales, sc, mn);
	for (int k = 0; k < 128; k++)
		b.qs[k] = (uint8_t) (k * 37 + 11);
	for (int l = 0; l < 32; l++)
		b.qh[l] = (uint8_t) (l * 29);
	for (int i = 0; i < 256; i++)
	{
		int			c = i / 64;
		int			hi = (i % 64) >= 32;
		int			l = i % 32;
		uint8_t		byte = (uint8_t) ((32 * c + l) * 37 + 11);
		int			q = hi ? (byte >> 4) : (byte & 0xf);
		int			bit = (((uint8_t) (l * 29)) >> (2 * c + hi)) & 1;
		int			s = i / 32;

		want[i] = 0.5f * sc[s] * (q + 16 * bit) - 1.0f * mn[s];
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q5_K, &b, out, 256));
	expect_same(out, want, 256, "q5_K");
	/* value 0: byte 11 -> q 11, qh[0] = 0 -> 0.5 * 63 * 11 - 0 = 346.5 */
	assert_true(out[0] == 346.5f);
	/* value 33: byte 1*37+11 = 48 = 0x30 high nibble 3; qh[1] = 29 = 0b11101, bit 1 = 0 -> 0.5*58*3 - 9 */
	assert_true(out[33] == 78.0f);
	/* value 66: c 1, low nibble of byte 34*37+11 = 1269 % 256 = 245 = 0xf5 -> 5; qh[2] = 58 = 0b111010, bit 2 = 0; s 2 (53, 18) -> 132.5 - 18 */
	assert_true(out[66] == 114.5f);
}

/*
 * q6_K: d = 0.25; scales[k] = 20 - 3k (negative from k = 7); ql[k] = k*53,
 * qh[k] = k*71.  Value i: half n = i/128, r = i%128, l = r%32, quarter
 * g = r/32; low 4 bits: g 0 -> ql[64n+l] low, g 1 -> ql[64n+32+l] low,
 * g 2 -> ql[64n+l] high, g 3 -> ql[64n+32+l] high; top 2 bits: qh[32n+l]
 * >> 2g; scale index 8n + 2g + l/16; value = d * scale * (q - 32).
 */
static void
test_dequant_q6_K(void **state)
{
	lg_block_q6_K b;
	float		out[256];
	float		want[256];

	b.d = 0x3400;
	for (int k = 0; k < 16; k++)
		b.scales[k] = (int8_t) (20 - 3 * k);
	for (int k = 0; k < 128; k++)
		b.ql[k] = (uint8_t) (k * 53);
	for (int k = 0; k < 64; k++)
		b.qh[k] = (uint8_t) (k * 71);
	for (int i = 0; i < 256; i++)
	{
		int			n = i / 128,
					r = i % 128,
					l = r % 32,
					g = r / 32;
		uint8_t		lbyte = (uint8_t) ((64 * n + (g & 1) * 32 + l) * 53);
		int			low = g < 2 ? (lbyte & 0xf) : (lbyte >> 4);
		int			top = ((uint8_t) ((32 * n + l) * 71) >> (2 * g)) & 3;
		int			q = low | top << 4;
		int			scale = 20 - 3 * (8 * n + 2 * g + l / 16);

		want[i] = 0.25f * scale * (q - 32);
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q6_K, &b, out, 256));
	expect_same(out, want, 256, "q6_K");
	/* value 0: ql[0] = 0, qh[0] = 0 -> q 0; scale 20 -> 0.25 * 20 * -32 = -160 */
	assert_true(out[0] == -160.0f);
	/* value 255: n 1, g 3, l 31: ql[127] = 6731 % 256 = 75 = 0x4b -> high 4; qh[63] = 4473 % 256 = 121 = 0b01111001 >> 6 = 1 -> q 20; scale 20 - 45 = -25 -> 0.25 * -25 * -12 = 75 */
	assert_true(out[255] == 75.0f);
}

/* q8_K: plain float d. */
static void
test_dequant_q8_K(void **state)
{
	lg_block_q8_K b;
	float		out[256];
	float		want[256];

	memset(&b, 0, sizeof(b));
	b.d = -0.375f;
	for (int j = 0; j < 256; j++)
	{
		b.qs[j] = (int8_t) (j - 128);
		want[j] = -0.375f * (j - 128);
	}
	assert_true(lg_dequantize_row(LG_TYPE_Q8_K, &b, out, 256));
	expect_same(out, want, 256, "q8_K");
}

/* ---- quantization, exact cases ---- */

/*
 * q8_0 with amax 127: d = 1 exactly, so q = roundf(x), which rounds ties
 * away from zero (llama.cpp's reference); rint would give 2, -2, 0, 0.
 */
static void
test_quant_q8_0_exact(void **state)
{
	float		x[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f, -126.6f, 0.0f};
	lg_block_q8_0 b;
	lg_block_q8_1 b1;
	const int8_t want[8] = {127, 3, -3, 1, -1, 1, -127, 0};
	int			sum = 0;

	assert_true(lg_quantize_row(LG_TYPE_Q8_0, x, &b, 32));
	assert_int_equal(b.d, 0x3c00);
	for (int j = 0; j < 8; j++)
		assert_int_equal(b.qs[j], want[j]);
	for (int j = 8; j < 32; j++)
		assert_int_equal(b.qs[j], 0);

	/* q8_1 quantizes the same way and stores s = d * sum(q) */
	assert_true(lg_quantize_row(LG_TYPE_Q8_1, x, &b1, 32));
	assert_int_equal(b1.d, 0x3c00);
	for (int j = 0; j < 32; j++)
	{
		assert_int_equal(b1.qs[j], b.qs[j]);
		sum += b1.qs[j];
	}
	assert_int_equal(sum, 1);
	assert_int_equal(b1.s, 0x3c00);

	/* an all-zero block: d 0, all quants 0, no NaN */
	memset(x, 0, sizeof(x));
	assert_true(lg_quantize_row(LG_TYPE_Q8_0, x, &b, 32));
	assert_int_equal(b.d, 0);
	for (int j = 0; j < 32; j++)
		assert_int_equal(b.qs[j], 0);
}

/*
 * q8_K: iscale = -127/max where max is the value of largest magnitude, so
 * a positive max gives a negative d; nearest_int rounds ties to even.
 */
static void
test_quant_q8_K_exact(void **state)
{
	float		x[256] = {0};
	lg_block_q8_K b;

	x[0] = -127.0f;				/* max = -127: iscale = 1, d = 1 */
	x[1] = 2.5f;
	x[2] = 3.5f;
	x[3] = -2.5f;
	x[16] = 100.25f;
	assert_true(lg_quantize_row(LG_TYPE_Q8_K, x, &b, 256));
	assert_true(b.d == 1.0f);
	assert_int_equal(b.qs[0], -127);
	assert_int_equal(b.qs[1], 2);
	assert_int_equal(b.qs[2], 4);
	assert_int_equal(b.qs[3], -2);
	assert_int_equal(b.qs[16], 100);
	assert_int_equal(b.bsums[0], -127 + 2 + 4 - 2);
	assert_int_equal(b.bsums[1], 100);
	assert_int_equal(b.bsums[2], 0);

	x[0] = 127.0f;				/* max = 127: iscale = -1, d = -1, quants negated */
	assert_true(lg_quantize_row(LG_TYPE_Q8_K, x, &b, 256));
	assert_true(b.d == -1.0f);
	assert_int_equal(b.qs[0], -127);
	assert_int_equal(b.qs[1], -2);
	assert_int_equal(b.qs[2], -4);
	assert_int_equal(b.qs[16], -100);

	memset(x, 0, sizeof(x));
	assert_true(lg_quantize_row(LG_TYPE_Q8_K, x, &b, 256));
	assert_true(b.d == 0.0f);
	for (int j = 0; j < 16; j++)
		assert_int_equal(b.bsums[j], 0);
}

/* q4_0: the largest-magnitude value -8 gives d = 1; q = min(15, trunc(x + 8.5)). */
static void
test_quant_q4_0_exact(void **state)
{
	float		x[32] = {-8.0f, 7.0f, 7.6f, 0.4f, 0.5f, -0.5f, -7.6f, 3.2f};
	lg_block_q4_0 b;
	const int	want[8] = {0, 15, 15, 8, 9, 8, 0, 11};

	assert_true(lg_quantize_row(LG_TYPE_Q4_0, x, &b, 32));
	assert_int_equal(b.d, 0x3c00);
	for (int j = 0; j < 8; j++)
		assert_int_equal(b.qs[j] & 0xf, want[j]);
	for (int j = 0; j < 16; j++)
		assert_int_equal(b.qs[j] >> 4, 8);	/* values 16..31 are 0 */
}

/* ---- quantization round trips on random data ---- */

/*
 * RMS error of dequantize(quantize(x)) relative to the RMS of x, for
 * uniform x in [-1, 1).  Bounds are about 1.3x what ggml's reference
 * quantizers achieve on such data.
 */
static const struct
{
	lg_type		type;
	double		bound;
}			roundtrip_bounds[] = {
	{LG_TYPE_F16, 0.0005},
	{LG_TYPE_BF16, 0.004},
	{LG_TYPE_Q8_0, 0.01},
	{LG_TYPE_Q8_1, 0.01},
	{LG_TYPE_Q8_K, 0.01},
	{LG_TYPE_Q6_K, 0.025},
	{LG_TYPE_Q5_0, 0.045},
	{LG_TYPE_Q5_1, 0.04},
	{LG_TYPE_Q5_K, 0.04},
	{LG_TYPE_Q4_0, 0.085},
	{LG_TYPE_Q4_1, 0.08},
	{LG_TYPE_Q4_K, 0.08},
	{LG_TYPE_Q3_K, 0.17},
	{LG_TYPE_Q2_K, 0.33},
};

#define RT_N 4096

static void
test_quant_roundtrip(void **state)
{
	static float x[RT_N];
	static float y[RT_N];
	static uint8_t q[RT_N * 4];
	uint64_t	seed = 42;

	for (int i = 0; i < RT_N; i++)
		x[i] = lg_test_randf(&seed);
	for (size_t t = 0; t < sizeof(roundtrip_bounds) / sizeof(roundtrip_bounds[0]); t++)
	{
		lg_type		type = roundtrip_bounds[t].type;
		double		err2 = 0,
					ref2 = 0,
					rel;

		memset(q, 0xcc, sizeof(q));
		assert_true(lg_quantize_row(type, x, q, RT_N));
		assert_true(lg_dequantize_row(type, q, y, RT_N));
		for (int i = 0; i < RT_N; i++)
		{
			err2 += (double) (y[i] - x[i]) * (y[i] - x[i]);
			ref2 += (double) x[i] * x[i];
		}
		rel = sqrt(err2 / ref2);
		print_message("  %-5s relative RMS error %.5f (bound %.3f)\n",
					  lg_type_get(type)->name, rel, roundtrip_bounds[t].bound);
		if (!(rel < roundtrip_bounds[t].bound))
			fail_msg("%s: relative RMS error %g exceeds %g", lg_type_get(type)->name,
					 rel, roundtrip_bounds[t].bound);
	}
}

/* Quantizing NaN, inf, huge and all-equal rows must not crash (UBSan/ASan checked in fuzzing). */
static void
test_quant_hostile_input(void **state)
{
	static const lg_type types[] = {
		LG_TYPE_Q4_0, LG_TYPE_Q4_1, LG_TYPE_Q5_0, LG_TYPE_Q5_1, LG_TYPE_Q8_0, LG_TYPE_Q8_1,
		LG_TYPE_Q2_K, LG_TYPE_Q3_K, LG_TYPE_Q4_K, LG_TYPE_Q5_K, LG_TYPE_Q6_K, LG_TYPE_Q8_K,
	};
	static float x[256];
	static float y[256];
	static uint8_t q[1024];

	for (int pattern = 0; pattern < 4; pattern++)
	{
		for (int i = 0; i < 256; i++)
		{
			switch (pattern)
			{
				case 0:
					x[i] = i % 7 == 0 ? NAN : (float) i;
					break;
				case 1:
					x[i] = i % 5 == 0 ? INFINITY : -1.0f;
					break;
				case 2:
					x[i] = i % 2 ? 3e38f : -3e38f;
					break;
				default:
					x[i] = 0.75f;
					break;
			}
		}
		for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
		{
			assert_true(lg_quantize_row(types[t], x, q, 256));
			assert_true(lg_dequantize_row(types[t], q, y, 256));
		}
	}
	/* an all-equal positive row: q4_1/q5_1 store it through the min exactly */
	assert_true(lg_quantize_row(LG_TYPE_Q4_1, x, q, 256));
	assert_true(lg_dequantize_row(LG_TYPE_Q4_1, q, y, 256));
	assert_true(y[0] == 0.75f && y[255] == 0.75f);
	assert_false(lg_quantize_row(LG_TYPE_Q4_K, x, q, 128));
	assert_false(lg_quantize_row(LG_TYPE_I8, x, q, 128));
}

/* ---- dot products ---- */

/*
 * For q4_1/q5_1 weights the min term uses the activation block's stored s
 * (d * sum(q), rounded to f16) rather than the exact sum, by design: the
 * expected dot is sum((x - m) * y) + sum over blocks of m * s.
 */
static double
q8_1_dot_want(lg_type type, const void *qx, const void *qy, const float *dx, const float *dy,
			  int64_t n)
{
	double		want = 0;

	for (int64_t b = 0; b < n / 32; b++)
	{
		float		m = type == LG_TYPE_Q4_1 ? lg_f16_to_f32(((const lg_block_q4_1 *) qx)[b].m)
			: lg_f16_to_f32(((const lg_block_q5_1 *) qx)[b].m);
		float		s = lg_f16_to_f32(((const lg_block_q8_1 *) qy)[b].s);

		for (int i = 0; i < 32; i++)
			want += ((double) dx[b * 32 + i] - m) * dy[b * 32 + i];
		want += (double) m * s;
	}
	return want;
}

/*
 * lg_vec_dot_ref against a double-precision dot of the dequantized rows,
 * relative to sum |x_i y_i| (so cancellation cannot make the bound
 * meaningless): the reference accumulates in float, giving errors of a few
 * float ulps per block; 1e-5 allows that at 4096 values.
 */
static void
test_vec_dot_ref(void **state)
{
	static const lg_type types[] = {
		LG_TYPE_F32, LG_TYPE_F16, LG_TYPE_BF16, LG_TYPE_Q4_0, LG_TYPE_Q4_1, LG_TYPE_Q5_0,
		LG_TYPE_Q5_1, LG_TYPE_Q8_0, LG_TYPE_Q2_K, LG_TYPE_Q3_K, LG_TYPE_Q4_K, LG_TYPE_Q5_K,
		LG_TYPE_Q6_K,
	};
	static const int64_t lengths[] = {32, 96, 256, 768, 4096};
	static float x[4096],
				y[4096],
				dx[4096],
				dy[4096];
	static uint8_t qx[4096 * 4],
				qy[4096 * 4];
	uint64_t	seed = 7;

	for (int i = 0; i < 4096; i++)
	{
		x[i] = lg_test_randf(&seed);
		y[i] = lg_test_randf(&seed) * 3.0f;
	}
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
	{
		const lg_type_info *ti = lg_type_get(types[t]);

		for (size_t k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++)
		{
			int64_t		n = lengths[k];
			double		want = 0,
						mag = 0;
			float		got = NAN;

			if (n % ti->block_size != 0)
				continue;
			assert_true(lg_quantize_row(types[t], x, qx, n));
			assert_true(lg_quantize_row(ti->vec_dot_type, y, qy, n));
			assert_true(lg_dequantize_row(types[t], qx, dx, n));
			assert_true(lg_dequantize_row(ti->vec_dot_type, qy, dy, n));
			for (int64_t i = 0; i < n; i++)
			{
				want += (double) dx[i] * dy[i];
				mag += fabs((double) dx[i] * dy[i]);
			}
			if (ti->vec_dot_type == LG_TYPE_Q8_1)
				want = q8_1_dot_want(types[t], qx, qy, dx, dy, n);
			assert_true(lg_vec_dot_ref(types[t], n, qx, qy, &got));
			if (!(fabs(got - want) <= 1e-5 * mag))
				fail_msg("%s n=%lld: dot %.9g, dequantized dot %.9g (sum |xy| %g)",
						 ti->name, (long long) n, got, want, mag);
		}
	}
	/* unsupported combinations are refused */
	{
		float		out;

		assert_false(lg_vec_dot_ref(LG_TYPE_Q4_0, 33, qx, qy, &out));
		assert_false(lg_vec_dot_ref(LG_TYPE_I32, 32, qx, qy, &out));
		assert_false(lg_vec_dot_ref(LG_TYPE_Q8_K, 256, qx, qy, &out));
	}
}

/*
 * Hand-computed dots: q4_0 · q8_0 sums integers per block then scales by
 * d_x then d_y; q4_K · q8_K subtracts dmin * sum(bsums * min).
 */
static void
test_vec_dot_hand(void **state)
{
	lg_block_q4_0 x;
	lg_block_q8_0 y;
	lg_block_q4_K xk;
	lg_block_q8_K yk;
	float		out = 0;
	int			sc[8],
				mn[8];

	x.d = 0x3800;				/* 0.5 */
	y.d = 0x4000;				/* 2.0 */
	memset(x.qs, 0x9a, 16);		/* low 10 -> 2, high 9 -> 1 */
	for (int j = 0; j < 32; j++)
		y.qs[j] = (int8_t) (j < 16 ? 3 : -1);
	/* sum = 16 * (2 * 3) + 16 * (1 * -1) = 80; 80 * 0.5 * 2 = 80 */
	assert_true(lg_vec_dot_ref(LG_TYPE_Q4_0, 32, &x, &y, &out));
	assert_true(out == 80.0f);

	memset(&xk, 0, sizeof(xk));
	memset(&yk, 0, sizeof(yk));
	xk.d = 0x3c00;				/* 1 */
	xk.dmin = 0x3800;			/* 0.5 */
	for (int s = 0; s < 8; s++)
	{
		sc[s] = s + 1;
		mn[s] = 2;
	}
	pack_k4_scales(xk.scales, sc, mn);
	memset(xk.qs, 0x11, sizeof(xk.qs));	/* every quant 1 */
	yk.d = 0.25f;
	for (int j = 0; j < 256; j++)
		yk.qs[j] = 4;
	for (int j = 0; j < 16; j++)
		yk.bsums[j] = 64;
	/* sum_s (s+1) * 32 * 4 * 1 = 36 * 128 = 4608; mins: 16 * 64 * 2 = 2048 */
	/* 0.25 * 4608 - 0.5 * 0.25 * 2048 = 1152 - 256 = 896 */
	assert_true(lg_vec_dot_ref(LG_TYPE_Q4_K, 256, &xk, &yk, &out));
	assert_true(out == 896.0f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_table),
		cmocka_unit_test(test_type_from_name),
		cmocka_unit_test(test_row_size),
		cmocka_unit_test(test_f16_from_f32),
		cmocka_unit_test(test_f16_to_f32),
		cmocka_unit_test(test_bf16),
		cmocka_unit_test(test_dequant_float_types),
		cmocka_unit_test(test_dequant_q4_0),
		cmocka_unit_test(test_dequant_q4_1),
		cmocka_unit_test(test_dequant_q5),
		cmocka_unit_test(test_dequant_q8),
		cmocka_unit_test(test_dequant_q2_K),
		cmocka_unit_test(test_dequant_q3_K),
		cmocka_unit_test(test_dequant_q4_K),
		cmocka_unit_test(test_dequant_q5_K),
		cmocka_unit_test(test_dequant_q6_K),
		cmocka_unit_test(test_dequant_q8_K),
		cmocka_unit_test(test_quant_q8_0_exact),
		cmocka_unit_test(test_quant_q8_K_exact),
		cmocka_unit_test(test_quant_q4_0_exact),
		cmocka_unit_test(test_quant_roundtrip),
		cmocka_unit_test(test_quant_hostile_input),
		cmocka_unit_test(test_vec_dot_ref),
		cmocka_unit_test(test_vec_dot_hand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
