/*
 * lg_types.c — the table of tensor element types and the scalar conversions
 * between float and the 16-bit float formats.
 *
 * The half/bfloat16 conversions reproduce ggml's bit for bit (round to
 * nearest even; NaN handling as ggml's), because weights and activations
 * must round exactly as llama.cpp rounds them for our logits to match its.
 * They are written with integer arithmetic only so no compiler flag
 * (-ffast-math, x87 excess precision) can change a result.
 */
#include "lg_types.h"

#include <ctype.h>
#include <string.h>

#define T(id, nm, bs, ts, q, vd) \
	[id] = {nm, bs, ts, q, vd}

static const lg_type_info type_table[LG_TYPE_COUNT] = {
	T(LG_TYPE_F32, "f32", 1, sizeof(float), false, LG_TYPE_F32),
	T(LG_TYPE_F16, "f16", 1, sizeof(lg_f16), false, LG_TYPE_F16),
	T(LG_TYPE_Q4_0, "q4_0", LG_QK, sizeof(lg_block_q4_0), true, LG_TYPE_Q8_0),
	T(LG_TYPE_Q4_1, "q4_1", LG_QK, sizeof(lg_block_q4_1), true, LG_TYPE_Q8_1),
	T(LG_TYPE_Q5_0, "q5_0", LG_QK, sizeof(lg_block_q5_0), true, LG_TYPE_Q8_0),
	T(LG_TYPE_Q5_1, "q5_1", LG_QK, sizeof(lg_block_q5_1), true, LG_TYPE_Q8_1),
	T(LG_TYPE_Q8_0, "q8_0", LG_QK, sizeof(lg_block_q8_0), true, LG_TYPE_Q8_0),
	T(LG_TYPE_Q8_1, "q8_1", LG_QK, sizeof(lg_block_q8_1), true, LG_TYPE_Q8_1),
	T(LG_TYPE_Q2_K, "q2_K", LG_QK_K, sizeof(lg_block_q2_K), true, LG_TYPE_Q8_K),
	T(LG_TYPE_Q3_K, "q3_K", LG_QK_K, sizeof(lg_block_q3_K), true, LG_TYPE_Q8_K),
	T(LG_TYPE_Q4_K, "q4_K", LG_QK_K, sizeof(lg_block_q4_K), true, LG_TYPE_Q8_K),
	T(LG_TYPE_Q5_K, "q5_K", LG_QK_K, sizeof(lg_block_q5_K), true, LG_TYPE_Q8_K),
	T(LG_TYPE_Q6_K, "q6_K", LG_QK_K, sizeof(lg_block_q6_K), true, LG_TYPE_Q8_K),
	T(LG_TYPE_Q8_K, "q8_K", LG_QK_K, sizeof(lg_block_q8_K), true, LG_TYPE_Q8_K),
	T(LG_TYPE_I8, "i8", 1, sizeof(int8_t), false, LG_TYPE_I8),
	T(LG_TYPE_I16, "i16", 1, sizeof(int16_t), false, LG_TYPE_I16),
	T(LG_TYPE_I32, "i32", 1, sizeof(int32_t), false, LG_TYPE_I32),
	T(LG_TYPE_I64, "i64", 1, sizeof(int64_t), false, LG_TYPE_I64),
	T(LG_TYPE_F64, "f64", 1, sizeof(double), false, LG_TYPE_F64),
	T(LG_TYPE_BF16, "bf16", 1, sizeof(lg_bf16), false, LG_TYPE_BF16),
};

#undef T

/* Returned for numbers that are not a type, so callers need no NULL check. */
static const lg_type_info type_unknown = {"unknown", 0, 0, false, LG_TYPE_F32};

/* The block layouts must be GGUF's byte for byte; catch a padding surprise at compile time. */
_Static_assert(sizeof(lg_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(lg_block_q4_1) == 20, "q4_1 block size");
_Static_assert(sizeof(lg_block_q5_0) == 22, "q5_0 block size");
_Static_assert(sizeof(lg_block_q5_1) == 24, "q5_1 block size");
_Static_assert(sizeof(lg_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(lg_block_q8_1) == 36, "q8_1 block size");
_Static_assert(sizeof(lg_block_q2_K) == 84, "q2_K block size");
_Static_assert(sizeof(lg_block_q3_K) == 110, "q3_K block size");
_Static_assert(sizeof(lg_block_q4_K) == 144, "q4_K block size");
_Static_assert(sizeof(lg_block_q5_K) == 176, "q5_K block size");
_Static_assert(sizeof(lg_block_q6_K) == 210, "q6_K block size");
_Static_assert(sizeof(lg_block_q8_K) == 292, "q8_K block size");

/* Info for a type number; the "unknown" entry has block_size 0. */
const lg_type_info *
lg_type_get(uint32_t type)
{
	if (type >= LG_TYPE_COUNT || type_table[type].block_size == 0)
		return &type_unknown;
	return &type_table[type];
}

/* True for the type numbers in the table (gaps are removed ggml types). */
bool
lg_type_valid(uint32_t type)
{
	return type < LG_TYPE_COUNT && type_table[type].block_size != 0;
}

/*
 * Alignment a type's data needs in memory: that of its block struct (2 for
 * the f16 scales of most quantized blocks, 4 for f32 and q8_K, 8 for i64
 * and f64).  Kernels read blocks through typed pointers, so the GGUF reader
 * refuses tensor data that is not aligned this way.
 */
size_t
lg_type_alignment(lg_type type)
{
	switch (type)
	{
		case LG_TYPE_F32:
		case LG_TYPE_I32:
			return _Alignof(float);
		case LG_TYPE_I64:
			return _Alignof(int64_t);
		case LG_TYPE_F64:
			return _Alignof(double);
		case LG_TYPE_I8:
			return 1;
		case LG_TYPE_Q8_K:
			return _Alignof(lg_block_q8_K);
		default:
			return _Alignof(lg_f16);	/* f16, bf16, i16 and the other blocks */
	}
}

/* Case-insensitive equality of two C strings. */
static bool
name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
	{
		if (tolower((unsigned char) *a) != tolower((unsigned char) *b))
			return false;
	}
	return *a == *b;
}

/* Parse a type name; llama.cpp's file-type mixes (q4_k_m…) name their base type. */
bool
lg_type_from_name(const char *name, lg_type *out)
{
	static const struct
	{
		const char *name;
		lg_type		type;
	}			mixes[] = {
		{"q2_k_s", LG_TYPE_Q2_K},
		{"q3_k_s", LG_TYPE_Q3_K},
		{"q3_k_m", LG_TYPE_Q3_K},
		{"q3_k_l", LG_TYPE_Q3_K},
		{"q4_k_s", LG_TYPE_Q4_K},
		{"q4_k_m", LG_TYPE_Q4_K},
		{"q5_k_s", LG_TYPE_Q5_K},
		{"q5_k_m", LG_TYPE_Q5_K},
	};

	if (name == NULL)
		return false;
	for (uint32_t t = 0; t < LG_TYPE_COUNT; t++)
	{
		if (type_table[t].block_size != 0 && name_eq(name, type_table[t].name))
		{
			*out = (lg_type) t;
			return true;
		}
	}
	for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++)
	{
		if (name_eq(name, mixes[i].name))
		{
			*out = mixes[i].type;
			return true;
		}
	}
	return false;
}

/* Bytes of n values; 0 for a bad type, a partial block, or overflow. */
size_t
lg_row_size(lg_type type, int64_t n)
{
	const lg_type_info *ti = lg_type_get((uint32_t) type);
	uint64_t	blocks;

	if (ti->block_size == 0 || n < 0 || n % ti->block_size != 0)
		return 0;
	blocks = (uint64_t) n / (uint64_t) ti->block_size;
	if (blocks != 0 && ti->type_size > SIZE_MAX / blocks)
		return 0;
	return (size_t) (blocks * ti->type_size);
}

/* Reinterpret the bits of a float. */
static inline uint32_t
f32_bits(float f)
{
	uint32_t	u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* Float with the given bits. */
static inline float
f32_from_bits(uint32_t u)
{
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* Exact widening; signalling NaNs come back quiet, as ggml's float trick leaves them. */
float
lg_f16_to_f32(lg_f16 h)
{
	uint32_t	sign = (uint32_t) (h & 0x8000) << 16;
	uint32_t	exp = (h >> 10) & 0x1f;
	uint32_t	mant = h & 0x3ff;

	if (exp == 0x1f)
	{
		if (mant == 0)
			return f32_from_bits(sign | 0x7f800000u);
		return f32_from_bits(sign | 0x7fc00000u | (mant << 13));
	}
	if (exp == 0)
	{
		int			e = 113;	/* 127 - 15 + 1: exponent of a subnormal's leading bit */

		if (mant == 0)
			return f32_from_bits(sign);
		/* normalise the subnormal: shift until the implicit bit appears */
		while ((mant & 0x400) == 0)
		{
			mant <<= 1;
			e--;
		}
		mant &= 0x3ff;
		return f32_from_bits(sign | ((uint32_t) e << 23) | (mant << 13));
	}
	return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Round to nearest even; overflow to inf; every NaN becomes ggml's 0x7e00. */
lg_f16
lg_f32_to_f16(float f)
{
	uint32_t	u = f32_bits(f);
	uint32_t	sign = (u >> 16) & 0x8000;
	uint32_t	abs = u & 0x7fffffffu;
	int			exp;
	uint32_t	mant;
	uint32_t	shift;
	uint32_t	h;
	uint32_t	rem;
	uint32_t	half;

	if (abs > 0x7f800000u)
		return (lg_f16) (sign | 0x7e00);
	if (abs >= 0x47800000u)		/* >= 65536: inf (65520 and up round there too, below) */
		return (lg_f16) (sign | 0x7c00);
	exp = (int) (abs >> 23) - 127 + 15;
	mant = abs & 0x7fffff;
	if (exp >= 1)
	{
		/* normal half: drop 13 bits, round to nearest even; a carry may bump the exponent */
		h = ((uint32_t) exp << 10) | (mant >> 13);
		rem = mant & 0x1fff;
		if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
			h++;
		return (lg_f16) (sign | h);
	}
	/* subnormal half (or zero): value = m * 2^-24 */
	if (exp < -10)
		return (lg_f16) sign;	/* below half the smallest subnormal: rounds to zero */
	mant |= 0x800000;
	shift = (uint32_t) (14 - exp);	/* 13 + (1 - exp) */
	h = mant >> shift;
	rem = mant & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (h & 1)))
		h++;
	return (lg_f16) (sign | h);
}

/* bfloat16 is the top half of a float. */
float
lg_bf16_to_f32(lg_bf16 h)
{
	return f32_from_bits((uint32_t) h << 16);
}

/* Round to nearest even; a NaN stays a NaN (forced quiet), as in ggml. */
lg_bf16
lg_f32_to_bf16(float f)
{
	uint32_t	u = f32_bits(f);

	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (lg_bf16) ((u >> 16) | 64);
	return (lg_bf16) ((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}
