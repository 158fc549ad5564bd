/*
 * quants.c — scalar reference conversions and dot products for the block
 * types of 32 values (q4_0, q4_1, q5_0, q5_1, q8_0, q8_1) and the float
 * types, plus the entry points that dispatch on lg_type.
 *
 * Each routine follows ggml's reference code operation for operation, in
 * the same order, so that with IEEE float arithmetic and no contraction
 * into fused multiply-adds (the default for -std=c11) the results are
 * bit-identical to ggml's quantize_row_*_ref and generic vec_dot.  The fast
 * kernels are tested against these.
 */
#include "lg_types.h"
#include "quants_k.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/*
 * (int) v for the values ggml converts, which are always in range for
 * finite input.  C leaves out-of-range and NaN conversion undefined; give 0
 * so a hostile or broken row cannot trip the sanitizers or the compiler.
 */
static inline int
to_int(float v)
{
	if (!(v > -2147483648.0f && v < 2147483648.0f))
		return 0;
	return (int) v;
}

/* (int8_t) of a value that fits int8 for finite input (see to_int). */
static inline int8_t
to_i8(float v)
{
	int			i = to_int(v);

	return (int8_t) (uint8_t) i;
}

/* roundf() narrowed to int8, as ggml stores q8 quants. */
static inline int8_t
round_i8(float v)
{
	return to_i8(roundf(v));
}

/* ---- dequantization ---- */

/* q4_0: 16 bytes of nibbles, low nibbles first half, value (q - 8) * d. */
static void
dequant_q4_0(const lg_block_q4_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const int	x0 = (x[i].qs[j] & 0x0f) - 8;
			const int	x1 = (x[i].qs[j] >> 4) - 8;

			y[i * LG_QK + j] = x0 * d;
			y[i * LG_QK + j + LG_QK / 2] = x1 * d;
		}
	}
}

/* q4_1: value q * d + m. */
static void
dequant_q4_1(const lg_block_q4_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);
		const float m = lg_f16_to_f32(x[i].m);

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const int	x0 = x[i].qs[j] & 0x0f;
			const int	x1 = x[i].qs[j] >> 4;

			y[i * LG_QK + j] = x0 * d + m;
			y[i * LG_QK + j + LG_QK / 2] = x1 * d + m;
		}
	}
}

/* The 32 fifth bits of a q5 block, little-endian as ggml memcpy()s them. */
static inline uint32_t
load_qh(const uint8_t qh[4])
{
	return (uint32_t) qh[0] | (uint32_t) qh[1] << 8 | (uint32_t) qh[2] << 16 | (uint32_t) qh[3] << 24;
}

/* q5_0: bit j of qh is the fifth bit of value j; value (q - 16) * d. */
static void
dequant_q5_0(const lg_block_q5_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);
		const uint32_t qh = load_qh(x[i].qh);

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const uint8_t xh0 = ((qh >> j) << 4) & 0x10;
			const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
			const int32_t x0 = ((x[i].qs[j] & 0x0f) | xh0) - 16;
			const int32_t x1 = ((x[i].qs[j] >> 4) | xh1) - 16;

			y[i * LG_QK + j] = x0 * d;
			y[i * LG_QK + j + LG_QK / 2] = x1 * d;
		}
	}
}

/* q5_1: value q * d + m. */
static void
dequant_q5_1(const lg_block_q5_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);
		const float m = lg_f16_to_f32(x[i].m);
		const uint32_t qh = load_qh(x[i].qh);

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const uint8_t xh0 = ((qh >> j) << 4) & 0x10;
			const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
			const int	x0 = (x[i].qs[j] & 0x0f) | xh0;
			const int	x1 = (x[i].qs[j] >> 4) | xh1;

			y[i * LG_QK + j] = x0 * d + m;
			y[i * LG_QK + j + LG_QK / 2] = x1 * d + m;
		}
	}
}

/* q8_0: value q * d. */
static void
dequant_q8_0(const lg_block_q8_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);

		for (int j = 0; j < LG_QK; j++)
			y[i * LG_QK + j] = x[i].qs[j] * d;
	}
}

/* q8_1: value q * d (s is only a cached sum for dot products). */
static void
dequant_q8_1(const lg_block_q8_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);

		for (int j = 0; j < LG_QK; j++)
			y[i * LG_QK + j] = x[i].qs[j] * d;
	}
}

/* Row of n values of type to floats. */
bool
lg_dequantize_row(lg_type type, const void *src, float *dst, int64_t n)
{
	const lg_type_info *ti = lg_type_get((uint32_t) type);
	int64_t		nb;

	if (ti->block_size == 0 || n < 0 || n % ti->block_size != 0)
		return false;
	nb = n / ti->block_size;
	switch (type)
	{
		case LG_TYPE_F32:
			if (n > 0)
				memcpy(dst, src, (size_t) n * sizeof(float));
			return true;
		case LG_TYPE_F16:
			for (int64_t i = 0; i < n; i++)
				dst[i] = lg_f16_to_f32(((const lg_f16 *) src)[i]);
			return true;
		case LG_TYPE_BF16:
			for (int64_t i = 0; i < n; i++)
				dst[i] = lg_bf16_to_f32(((const lg_bf16 *) src)[i]);
			return true;
		case LG_TYPE_Q4_0:
			dequant_q4_0(src, dst, nb);
			return true;
		case LG_TYPE_Q4_1:
			dequant_q4_1(src, dst, nb);
			return true;
		case LG_TYPE_Q5_0:
			dequant_q5_0(src, dst, nb);
			return true;
		case LG_TYPE_Q5_1:
			dequant_q5_1(src, dst, nb);
			return true;
		case LG_TYPE_Q8_0:
			dequant_q8_0(src, dst, nb);
			return true;
		case LG_TYPE_Q8_1:
			dequant_q8_1(src, dst, nb);
			return true;
		case LG_TYPE_Q2_K:
			lg_dequant_q2_K(src, dst, nb);
			return true;
		case LG_TYPE_Q3_K:
			lg_dequant_q3_K(src, dst, nb);
			return true;
		case LG_TYPE_Q4_K:
			lg_dequant_q4_K(src, dst, nb);
			return true;
		case LG_TYPE_Q5_K:
			lg_dequant_q5_K(src, dst, nb);
			return true;
		case LG_TYPE_Q6_K:
			lg_dequant_q6_K(src, dst, nb);
			return true;
		case LG_TYPE_Q8_K:
			lg_dequant_q8_K(src, dst, nb);
			return true;
		default:
			return false;
	}
}

/* ---- quantization (ggml's quantize_row_*_ref) ---- */

/* q4_0: d = -max/8 where max is the value of largest magnitude, sign kept. */
static void
quant_q4_0(const float *x, lg_block_q4_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		amax = 0.0f;
		float		max = 0.0f;
		float		d;
		float		id;

		for (int j = 0; j < LG_QK; j++)
		{
			const float v = x[i * LG_QK + j];

			if (amax < fabsf(v))
			{
				amax = fabsf(v);
				max = v;
			}
		}
		d = max / -8;
		id = d ? 1.0f / d : 0.0f;
		y[i].d = lg_f32_to_f16(d);
		for (int j = 0; j < LG_QK / 2; j++)
		{
			const float x0 = x[i * LG_QK + j] * id;
			const float x1 = x[i * LG_QK + LG_QK / 2 + j] * id;
			const uint8_t xi0 = (uint8_t) MIN(15, to_i8(x0 + 8.5f));
			const uint8_t xi1 = (uint8_t) MIN(15, to_i8(x1 + 8.5f));

			y[i].qs[j] = (uint8_t) (xi0 | xi1 << 4);
		}
	}
}

/* q4_1: d = (max - min) / 15, m = min. */
static void
quant_q4_1(const float *x, lg_block_q4_1 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		min = FLT_MAX;
		float		max = -FLT_MAX;
		float		d;
		float		id;

		for (int j = 0; j < LG_QK; j++)
		{
			const float v = x[i * LG_QK + j];

			if (v < min)
				min = v;
			if (v > max)
				max = v;
		}
		d = (max - min) / ((1 << 4) - 1);
		id = d ? 1.0f / d : 0.0f;
		y[i].d = lg_f32_to_f16(d);
		y[i].m = lg_f32_to_f16(min);
		for (int j = 0; j < LG_QK / 2; j++)
		{
			const float x0 = (x[i * LG_QK + j] - min) * id;
			const float x1 = (x[i * LG_QK + LG_QK / 2 + j] - min) * id;
			const uint8_t xi0 = (uint8_t) MIN(15, to_i8(x0 + 0.5f));
			const uint8_t xi1 = (uint8_t) MIN(15, to_i8(x1 + 0.5f));

			y[i].qs[j] = (uint8_t) (xi0 | xi1 << 4);
		}
	}
}

/* Store the 32 fifth bits little-endian. */
static inline void
store_qh(uint8_t qh[4], uint32_t v)
{
	qh[0] = (uint8_t) v;
	qh[1] = (uint8_t) (v >> 8);
	qh[2] = (uint8_t) (v >> 16);
	qh[3] = (uint8_t) (v >> 24);
}

/* q5_0: d = -max/16. */
static void
quant_q5_0(const float *x, lg_block_q5_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		amax = 0.0f;
		float		max = 0.0f;
		float		d;
		float		id;
		uint32_t	qh = 0;

		for (int j = 0; j < LG_QK; j++)
		{
			const float v = x[i * LG_QK + j];

			if (amax < fabsf(v))
			{
				amax = fabsf(v);
				max = v;
			}
		}
		d = max / -16;
		id = d ? 1.0f / d : 0.0f;
		y[i].d = lg_f32_to_f16(d);
		for (int j = 0; j < LG_QK / 2; j++)
		{
			const float x0 = x[i * LG_QK + j] * id;
			const float x1 = x[i * LG_QK + LG_QK / 2 + j] * id;
			const uint8_t xi0 = (uint8_t) MIN(31, to_i8(x0 + 16.5f));
			const uint8_t xi1 = (uint8_t) MIN(31, to_i8(x1 + 16.5f));

			y[i].qs[j] = (uint8_t) ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4));
			qh |= ((xi0 & 0x10u) >> 4) << j;
			qh |= ((xi1 & 0x10u) >> 4) << (j + LG_QK / 2);
		}
		store_qh(y[i].qh, qh);
	}
}

/* q5_1: d = (max - min) / 31, m = min. */
static void
quant_q5_1(const float *x, lg_block_q5_1 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		min = FLT_MAX;
		float		max = -FLT_MAX;
		float		d;
		float		id;
		uint32_t	qh = 0;

		for (int j = 0; j < LG_QK; j++)
		{
			const float v = x[i * LG_QK + j];

			if (v < min)
				min = v;
			if (v > max)
				max = v;
		}
		d = (max - min) / ((1 << 5) - 1);
		id = d ? 1.0f / d : 0.0f;
		y[i].d = lg_f32_to_f16(d);
		y[i].m = lg_f32_to_f16(min);
		for (int j = 0; j < LG_QK / 2; j++)
		{
			const float x0 = (x[i * LG_QK + j] - min) * id;
			const float x1 = (x[i * LG_QK + LG_QK / 2 + j] - min) * id;
			/* ggml narrows to uint8_t here, not int8_t as for q4_1 */
			const uint8_t xi0 = (uint8_t) to_int(x0 + 0.5f);
			const uint8_t xi1 = (uint8_t) to_int(x1 + 0.5f);

			y[i].qs[j] = (uint8_t) ((xi0 & 0x0f) | ((xi1 & 0x0f) << 4));
			qh |= ((xi0 & 0x10u) >> 4) << j;
			qh |= ((xi1 & 0x10u) >> 4) << (j + LG_QK / 2);
		}
		store_qh(y[i].qh, qh);
	}
}

/* q8_0: d = amax/127, q = roundf(x/d) (ties away from zero). */
static void
quant_q8_0(const float *x, lg_block_q8_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		amax = 0.0f;
		float		d;
		float		id;

		for (int j = 0; j < LG_QK; j++)
			amax = MAX(amax, fabsf(x[i * LG_QK + j]));
		d = amax / ((1 << 7) - 1);
		id = d ? 1.0f / d : 0.0f;
		y[i].d = lg_f32_to_f16(d);
		for (int j = 0; j < LG_QK; j++)
			y[i].qs[j] = round_i8(x[i * LG_QK + j] * id);
	}
}

/* q8_1: as q8_0, plus s = d * sum(q) for the q4_1/q5_1 dot products. */
static void
quant_q8_1(const float *x, lg_block_q8_1 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		amax = 0.0f;
		float		d;
		float		id;
		int			sum = 0;

		for (int j = 0; j < LG_QK; j++)
			amax = MAX(amax, fabsf(x[i * LG_QK + j]));
		d = amax / ((1 << 7) - 1);
		id = d ? 1.0f / d : 0.0f;
		y[i].d = lg_f32_to_f16(d);
		for (int j = 0; j < LG_QK / 2; j++)
		{
			const float v0 = x[i * LG_QK + j] * id;
			const float v1 = x[i * LG_QK + LG_QK / 2 + j] * id;

			y[i].qs[j] = round_i8(v0);
			y[i].qs[LG_QK / 2 + j] = round_i8(v1);
			sum += y[i].qs[j];
			sum += y[i].qs[LG_QK / 2 + j];
		}
		y[i].s = lg_f32_to_f16(sum * d);
	}
}

/* Row of n floats to type. */
bool
lg_quantize_row(lg_type type, const float *src, void *dst, int64_t n)
{
	const lg_type_info *ti = lg_type_get((uint32_t) type);
	int64_t		nb;

	if (ti->block_size == 0 || n < 0 || n % ti->block_size != 0)
		return false;
	nb = n / ti->block_size;
	switch (type)
	{
		case LG_TYPE_F32:
			if (n > 0)
				memmove(dst, src, (size_t) n * sizeof(float));
			return true;
		case LG_TYPE_F16:
			for (int64_t i = 0; i < n; i++)
				((lg_f16 *) dst)[i] = lg_f32_to_f16(src[i]);
			return true;
		case LG_TYPE_BF16:
			for (int64_t i = 0; i < n; i++)
				((lg_bf16 *) dst)[i] = lg_f32_to_bf16(src[i]);
			return true;
		case LG_TYPE_Q4_0:
			quant_q4_0(src, dst, nb);
			return true;
		case LG_TYPE_Q4_1:
			quant_q4_1(src, dst, nb);
			return true;
		case LG_TYPE_Q5_0:
			quant_q5_0(src, dst, nb);
			return true;
		case LG_TYPE_Q5_1:
			quant_q5_1(src, dst, nb);
			return true;
		case LG_TYPE_Q8_0:
			quant_q8_0(src, dst, nb);
			return true;
		case LG_TYPE_Q8_1:
			quant_q8_1(src, dst, nb);
			return true;
		case LG_TYPE_Q2_K:
			lg_quant_q2_K(src, dst, nb);
			return true;
		case LG_TYPE_Q3_K:
			lg_quant_q3_K(src, dst, nb);
			return true;
		case LG_TYPE_Q4_K:
			lg_quant_q4_K(src, dst, nb);
			return true;
		case LG_TYPE_Q5_K:
			lg_quant_q5_K(src, dst, nb);
			return true;
		case LG_TYPE_Q6_K:
			lg_quant_q6_K(src, dst, nb);
			return true;
		case LG_TYPE_Q8_K:
			lg_quant_q8_K(src, dst, nb);
			return true;
		default:
			return false;
	}
}

/* ---- dot products (ggml's generic scalar vec_dot) ---- */

/*
 * Float types: ggml's scalar path sums each float product in double
 * (ggml_float) and rounds once at the end.
 */
static float
dot_f32(const float *x, const float *y, int64_t n)
{
	double		sum = 0.0;

	for (int64_t i = 0; i < n; i++)
		sum += (double) (x[i] * y[i]);
	return (float) sum;
}

/* f16 · f16: products in float, summed in double (see dot_f32). */
static float
dot_f16(const lg_f16 *x, const lg_f16 *y, int64_t n)
{
	double		sum = 0.0;

	for (int64_t i = 0; i < n; i++)
		sum += (double) (lg_f16_to_f32(x[i]) * lg_f16_to_f32(y[i]));
	return (float) sum;
}

/* bf16 · bf16: as dot_f16. */
static float
dot_bf16(const lg_bf16 *x, const lg_bf16 *y, int64_t n)
{
	double		sum = 0.0;

	for (int64_t i = 0; i < n; i++)
		sum += (double) (lg_bf16_to_f32(x[i]) * lg_bf16_to_f32(y[i]));
	return (float) sum;
}

/* q4_0 · q8_0: integer sum per block, scaled by d_x then d_y. */
static float
dot_q4_0_q8_0(const lg_block_q4_0 *x, const lg_block_q8_0 *y, int64_t nb)
{
	float		sumf = 0;

	for (int64_t ib = 0; ib < nb; ib++)
	{
		int			sumi0 = 0;
		int			sumi1 = 0;

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const int	v0 = (x[ib].qs[j] & 0x0f) - 8;
			const int	v1 = (x[ib].qs[j] >> 4) - 8;

			sumi0 += v0 * y[ib].qs[j];
			sumi1 += v1 * y[ib].qs[j + LG_QK / 2];
		}
		sumf += (sumi0 + sumi1) * lg_f16_to_f32(x[ib].d) * lg_f16_to_f32(y[ib].d);
	}
	return sumf;
}

/* q4_1 · q8_1: the min term uses the activation block's cached d*sum. */
static float
dot_q4_1_q8_1(const lg_block_q4_1 *x, const lg_block_q8_1 *y, int64_t nb)
{
	float		sumf = 0;

	for (int64_t ib = 0; ib < nb; ib++)
	{
		int			sumi0 = 0;
		int			sumi1 = 0;

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const int	v0 = x[ib].qs[j] & 0x0f;
			const int	v1 = x[ib].qs[j] >> 4;

			sumi0 += v0 * y[ib].qs[j];
			sumi1 += v1 * y[ib].qs[j + LG_QK / 2];
		}
		sumf += (lg_f16_to_f32(x[ib].d) * lg_f16_to_f32(y[ib].d)) * (sumi0 + sumi1) +
			lg_f16_to_f32(x[ib].m) * lg_f16_to_f32(y[ib].s);
	}
	return sumf;
}

/* q5_0 · q8_0. */
static float
dot_q5_0_q8_0(const lg_block_q5_0 *x, const lg_block_q8_0 *y, int64_t nb)
{
	float		sumf = 0;

	for (int64_t ib = 0; ib < nb; ib++)
	{
		const uint32_t qh = load_qh(x[ib].qh);
		int			sumi0 = 0;
		int			sumi1 = 0;

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const uint8_t xh0 = ((qh >> j) << 4) & 0x10;
			const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
			const int32_t x0 = ((x[ib].qs[j] & 0x0f) | xh0) - 16;
			const int32_t x1 = ((x[ib].qs[j] >> 4) | xh1) - 16;

			sumi0 += x0 * y[ib].qs[j];
			sumi1 += x1 * y[ib].qs[j + LG_QK / 2];
		}
		sumf += (lg_f16_to_f32(x[ib].d) * lg_f16_to_f32(y[ib].d)) * (sumi0 + sumi1);
	}
	return sumf;
}

/* q5_1 · q8_1. */
static float
dot_q5_1_q8_1(const lg_block_q5_1 *x, const lg_block_q8_1 *y, int64_t nb)
{
	float		sumf = 0;

	for (int64_t ib = 0; ib < nb; ib++)
	{
		const uint32_t qh = load_qh(x[ib].qh);
		int			sumi0 = 0;
		int			sumi1 = 0;

		for (int j = 0; j < LG_QK / 2; j++)
		{
			const uint8_t xh0 = ((qh >> j) << 4) & 0x10;
			const uint8_t xh1 = (qh >> (j + 12)) & 0x10;
			const int32_t x0 = (x[ib].qs[j] & 0x0f) | xh0;
			const int32_t x1 = (x[ib].qs[j] >> 4) | xh1;

			sumi0 += x0 * y[ib].qs[j];
			sumi1 += x1 * y[ib].qs[j + LG_QK / 2];
		}
		sumf += (lg_f16_to_f32(x[ib].d) * lg_f16_to_f32(y[ib].d)) * (sumi0 + sumi1) +
			lg_f16_to_f32(x[ib].m) * lg_f16_to_f32(y[ib].s);
	}
	return sumf;
}

/* q8_0 · q8_0: the two scales are multiplied first, unlike q4_0's. */
static float
dot_q8_0_q8_0(const lg_block_q8_0 *x, const lg_block_q8_0 *y, int64_t nb)
{
	float		sumf = 0;

	for (int64_t ib = 0; ib < nb; ib++)
	{
		int			sumi = 0;

		for (int j = 0; j < LG_QK; j++)
			sumi += x[ib].qs[j] * y[ib].qs[j];
		sumf += sumi * (lg_f16_to_f32(x[ib].d) * lg_f16_to_f32(y[ib].d));
	}
	return sumf;
}

/* Dot product of a row of weights with a row of activations in vec_dot_type. */
bool
lg_vec_dot_ref(lg_type type, int64_t n, const void *x, const void *y, float *out)
{
	const lg_type_info *ti = lg_type_get((uint32_t) type);
	int64_t		nb;

	if (ti->block_size == 0 || n < 0 || n % ti->block_size != 0)
		return false;
	nb = n / ti->block_size;
	switch (type)
	{
		case LG_TYPE_F32:
			*out = dot_f32(x, y, n);
			return true;
		case LG_TYPE_F16:
			*out = dot_f16(x, y, n);
			return true;
		case LG_TYPE_BF16:
			*out = dot_bf16(x, y, n);
			return true;
		case LG_TYPE_Q4_0:
			*out = dot_q4_0_q8_0(x, y, nb);
			return true;
		case LG_TYPE_Q4_1:
			*out = dot_q4_1_q8_1(x, y, nb);
			return true;
		case LG_TYPE_Q5_0:
			*out = dot_q5_0_q8_0(x, y, nb);
			return true;
		case LG_TYPE_Q5_1:
			*out = dot_q5_1_q8_1(x, y, nb);
			return true;
		case LG_TYPE_Q8_0:
			*out = dot_q8_0_q8_0(x, y, nb);
			return true;
		case LG_TYPE_Q2_K:
			*out = lg_dot_q2_K_q8_K(x, y, nb);
			return true;
		case LG_TYPE_Q3_K:
			*out = lg_dot_q3_K_q8_K(x, y, nb);
			return true;
		case LG_TYPE_Q4_K:
			*out = lg_dot_q4_K_q8_K(x, y, nb);
			return true;
		case LG_TYPE_Q5_K:
			*out = lg_dot_q5_K_q8_K(x, y, nb);
			return true;
		case LG_TYPE_Q6_K:
			*out = lg_dot_q6_K_q8_K(x, y, nb);
			return true;
		default:
			return false;
	}
}
