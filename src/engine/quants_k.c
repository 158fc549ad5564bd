/*
 * quants_k.c — scalar reference code for the K-quants (q2_K … q6_K) and
 * q8_K, the type activations are quantized to for K-quant dot products.
 *
 * A K-quant block holds 256 values in sub-blocks of 16 or 32 that share a
 * small integer scale (and for q2_K/q4_K/q5_K a min), which are in turn
 * scaled by one f16 d (and dmin) per block.  The quantizers search for good
 * sub-block scales as ggml's quantize_row_*_ref do (make_qx_quants,
 * make_q3_quants, make_qkx2_quants), written out in the same order of float
 * operations so files we write quantize the way llama.cpp's do; the dot
 * products mirror ggml's generic scalar vec_dot, including its per-lane
 * float accumulators, so their rounding matches too.
 */
#include "quants_k.h"

#include <math.h>
#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Sub-blocks whose largest value is below this are treated as all zero. */
#define GROUP_MAX_EPS 1e-15f

/*
 * Round to nearest, ties to even, by the float "magic number" trick ggml
 * uses; valid for |v| < 2^22, which every caller's argument is for finite
 * input.  Out of range it gives a wrong but defined value that callers
 * clamp.
 */
static inline int
nearest_int(float v)
{
	float		t = v + 12582912.f;
	int32_t		i;

	memcpy(&i, &t, sizeof(i));
	return (i & 0x007fffff) - 0x00400000;
}

/*
 * Symmetric quantization of n values to [-nmax, nmax-1] (stored +nmax),
 * returning the scale; rmse_type 1 refines the scale by weighted least
 * squares with weights x^2 (or qw when given) over 18 trial scales.
 * Only the rmse_type values q6_K uses are supported.
 */
static float
make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw)
{
	float		max = 0;
	float		amax = 0;
	float		iscale;
	float		sumlx = 0;
	float		suml2 = 0;
	float		scale;
	float		best;

	for (int i = 0; i < n; i++)
	{
		float		ax = fabsf(x[i]);

		if (ax > amax)
		{
			amax = ax;
			max = x[i];
		}
	}
	if (amax < GROUP_MAX_EPS)
	{
		for (int i = 0; i < n; i++)
			L[i] = 0;
		return 0.f;
	}
	iscale = -nmax / max;
	if (rmse_type == 0)
	{
		for (int i = 0; i < n; i++)
		{
			int			l = nearest_int(iscale * x[i]);

			L[i] = (int8_t) (nmax + MAX(-nmax, MIN(nmax - 1, l)));
		}
		return 1 / iscale;
	}
	for (int i = 0; i < n; i++)
	{
		int			l = nearest_int(iscale * x[i]);
		float		w;

		l = MAX(-nmax, MIN(nmax - 1, l));
		L[i] = (int8_t) (l + nmax);
		w = qw ? qw[i] : x[i] * x[i];
		sumlx += w * x[i] * l;
		suml2 += w * l * l;
	}
	scale = suml2 ? sumlx / suml2 : 0.0f;
	best = scale * sumlx;
	for (int is = -9; is <= 9; is++)
	{
		if (is == 0)
			continue;
		iscale = -(nmax + 0.1f * is) / max;
		sumlx = suml2 = 0;
		for (int i = 0; i < n; i++)
		{
			int			l = nearest_int(iscale * x[i]);
			float		w;

			l = MAX(-nmax, MIN(nmax - 1, l));
			w = qw ? qw[i] : x[i] * x[i];
			sumlx += w * x[i] * l;
			suml2 += w * l * l;
		}
		if (suml2 > 0 && sumlx * sumlx > best * suml2)
		{
			for (int i = 0; i < n; i++)
			{
				int			l = nearest_int(iscale * x[i]);

				L[i] = (int8_t) (nmax + MAX(-nmax, MIN(nmax - 1, l)));
			}
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

/*
 * q3_K's sub-block quantizer: symmetric to [-nmax, nmax-1], then (do_rmse)
 * up to 5 passes moving single values to the level that most improves the
 * x^2-weighted fit.  L comes back offset by +nmax.
 */
static float
make_q3_quants(int n, int nmax, const float *x, int8_t *L, bool do_rmse)
{
	float		max = 0;
	float		amax = 0;
	float		iscale;

	for (int i = 0; i < n; i++)
	{
		float		ax = fabsf(x[i]);

		if (ax > amax)
		{
			amax = ax;
			max = x[i];
		}
	}
	if (amax < GROUP_MAX_EPS)
	{
		for (int i = 0; i < n; i++)
			L[i] = 0;
		return 0.f;
	}
	iscale = -nmax / max;
	if (do_rmse)
	{
		float		sumlx = 0;
		float		suml2 = 0;

		for (int i = 0; i < n; i++)
		{
			int			l = nearest_int(iscale * x[i]);
			float		w;

			l = MAX(-nmax, MIN(nmax - 1, l));
			L[i] = (int8_t) l;
			w = x[i] * x[i];
			sumlx += w * x[i] * l;
			suml2 += w * l * l;
		}
		for (int itry = 0; itry < 5; itry++)
		{
			int			n_changed = 0;

			for (int i = 0; i < n; i++)
			{
				float		w = x[i] * x[i];
				float		slx = sumlx - w * x[i] * L[i];

				if (slx > 0)
				{
					float		sl2 = suml2 - w * L[i] * L[i];
					int			new_l = nearest_int(x[i] * sl2 / slx);

					new_l = MAX(-nmax, MIN(nmax - 1, new_l));
					if (new_l != L[i])
					{
						slx += w * x[i] * new_l;
						sl2 += w * new_l * new_l;
						if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
						{
							L[i] = (int8_t) new_l;
							sumlx = slx;
							suml2 = sl2;
							n_changed++;
						}
					}
				}
			}
			if (!n_changed)
				break;
		}
		for (int i = 0; i < n; i++)
			L[i] = (int8_t) (L[i] + nmax);
		return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
	}
	for (int i = 0; i < n; i++)
	{
		int			l = nearest_int(iscale * x[i]);

		l = MAX(-nmax, MIN(nmax - 1, l));
		L[i] = (int8_t) (l + nmax);
	}
	return 1 / iscale;
}

/*
 * Asymmetric quantization to [0, nmax] with a scale and a min (returned
 * negated in *the_min): start from the range, then try nstep+1 scales
 * around it, fitting scale and min by weighted least squares and keeping
 * the one with the smallest weighted error (absolute if use_mad).
 */
static float
make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
				 float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad)
{
	float		min = x[0];
	float		max = x[0];
	float		sum_w = weights[0];
	float		sum_x = sum_w * x[0];
	float		iscale;
	float		scale;
	float		best_error = 0;

	for (int i = 1; i < n; i++)
	{
		float		w;

		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		w = weights[i];
		sum_w += w;
		sum_x += w * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min)
	{
		for (int i = 0; i < n; i++)
			L[i] = 0;
		*the_min = -min;
		return 0.f;
	}
	iscale = nmax / (max - min);
	scale = 1 / iscale;
	for (int i = 0; i < n; i++)
	{
		int			l = nearest_int(iscale * (x[i] - min));
		float		diff;

		L[i] = (uint8_t) MAX(0, MIN(nmax, l));
		diff = scale * L[i] + min - x[i];
		diff = use_mad ? fabsf(diff) : diff * diff;
		best_error += weights[i] * diff;
	}
	if (nstep < 1)
	{
		*the_min = -min;
		return scale;
	}
	for (int is = 0; is <= nstep; is++)
	{
		float		sum_l = 0,
					sum_l2 = 0,
					sum_xl = 0;
		float		D;

		iscale = (rmin + rdelta * is + nmax) / (max - min);
		for (int i = 0; i < n; i++)
		{
			int			l = nearest_int(iscale * (x[i] - min));
			float		w = weights[i];

			l = MAX(0, MIN(nmax, l));
			Laux[i] = (uint8_t) l;
			sum_l += w * l;
			sum_l2 += w * l * l;
			sum_xl += w * l * x[i];
		}
		D = sum_w * sum_l2 - sum_l * sum_l;
		if (D > 0)
		{
			float		this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
			float		this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
			float		cur_error = 0;

			if (this_min > 0)
			{
				this_min = 0;
				this_scale = sum_xl / sum_l2;
			}
			for (int i = 0; i < n; i++)
			{
				float		diff = this_scale * Laux[i] + this_min - x[i];

				diff = use_mad ? fabsf(diff) : diff * diff;
				cur_error += weights[i] * diff;
			}
			if (cur_error < best_error)
			{
				for (int i = 0; i < n; i++)
					L[i] = Laux[i];
				best_error = cur_error;
				scale = this_scale;
				min = this_min;
			}
		}
	}
	*the_min = -min;
	return scale;
}

/*
 * The 6-bit scale and min of sub-block j of a q4_K/q5_K block: the first
 * four pairs are the low 6 bits of bytes 0-7; the last four take their low
 * nibbles from bytes 8-11 and their top 2 bits from the spare bits of
 * bytes 0-7.
 */
static inline void
get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
	if (j < 4)
	{
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	}
	else
	{
		*d = (uint8_t) ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t) ((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* Pack 6-bit scale ls and min lm of sub-block j, inverse of get_scale_min_k4. */
static inline void
set_scale_min_k4(int j, uint8_t *q, uint8_t ls, uint8_t lm)
{
	if (j < 4)
	{
		q[j] = ls;
		q[j + 4] = lm;
	}
	else
	{
		q[j + 4] = (uint8_t) ((ls & 0xf) | ((lm & 0xf) << 4));
		q[j - 4] |= (uint8_t) ((ls >> 4) << 6);
		q[j] |= (uint8_t) ((lm >> 4) << 6);
	}
}

/*
 * The sixteen signed 6-bit scales of a q3_K block, unpacked from 12 bytes:
 * low nibbles from bytes 0-7 (sub-blocks 0-7 low, 8-15 high), the top two
 * bits from bytes 8-11.  Returned biased by -32.
 */
static inline void
q3_K_scales(const uint8_t *s, int8_t out[16])
{
	for (int j = 0; j < 16; j++)
	{
		int			lo = j < 8 ? (s[j] & 0xf) : (s[j - 8] >> 4);
		int			hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;

		out[j] = (int8_t) ((lo | hi << 4) - 32);
	}
}

/* ---- dequantization ---- */

/* q2_K: value d*scale*q - dmin*min, scale and min 4 bits each per 16 values. */
void
lg_dequant_q2_K(const lg_block_q2_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);
		const float min = lg_f16_to_f32(x[i].dmin);
		const uint8_t *q = x[i].qs;
		int			is = 0;

		for (int n = 0; n < LG_QK_K; n += 128)
		{
			int			shift = 0;

			for (int j = 0; j < 4; j++)
			{
				uint8_t		sc = x[i].scales[is++];
				float		dl = d * (sc & 0xf);
				float		ml = min * (sc >> 4);

				for (int l = 0; l < 16; l++)
					*y++ = dl * ((int8_t) ((q[l] >> shift) & 3)) - ml;
				sc = x[i].scales[is++];
				dl = d * (sc & 0xf);
				ml = min * (sc >> 4);
				for (int l = 0; l < 16; l++)
					*y++ = dl * ((int8_t) ((q[l + 16] >> shift) & 3)) - ml;
				shift += 2;
			}
			q += 32;
		}
	}
}

/* q3_K: value d*(scale-32)*(q - (high bit clear ? 4 : 0)). */
void
lg_dequant_q3_K(const lg_block_q3_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d_all = lg_f16_to_f32(x[i].d);
		const uint8_t *q = x[i].qs;
		const uint8_t *hm = x[i].hmask;
		uint8_t		m = 1;
		int8_t		scales[16];
		int			is = 0;

		q3_K_scales(x[i].scales, scales);
		for (int n = 0; n < LG_QK_K; n += 128)
		{
			int			shift = 0;

			for (int j = 0; j < 4; j++)
			{
				float		dl = d_all * scales[is++];

				for (int l = 0; l < 16; l++)
					*y++ = dl * ((int8_t) ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
				dl = d_all * scales[is++];
				for (int l = 0; l < 16; l++)
					*y++ = dl * ((int8_t) ((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
				shift += 2;
				m <<= 1;
			}
			q += 32;
		}
	}
}

/* q4_K: value d*scale*q - dmin*min, 6-bit scale and min per 32 values. */
void
lg_dequant_q4_K(const lg_block_q4_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const uint8_t *q = x[i].qs;
		const float d = lg_f16_to_f32(x[i].d);
		const float min = lg_f16_to_f32(x[i].dmin);
		int			is = 0;
		uint8_t		sc,
					m;

		for (int j = 0; j < LG_QK_K; j += 64)
		{
			float		d1,
						m1,
						d2,
						m2;

			get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
			d1 = d * sc;
			m1 = min * m;
			get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
			d2 = d * sc;
			m2 = min * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (q[l] & 0xf) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (q[l] >> 4) - m2;
			q += 32;
			is += 2;
		}
	}
}

/* q5_K: as q4_K with a fifth bit per value from qh. */
void
lg_dequant_q5_K(const lg_block_q5_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const uint8_t *ql = x[i].qs;
		const uint8_t *qh = x[i].qh;
		const float d = lg_f16_to_f32(x[i].d);
		const float min = lg_f16_to_f32(x[i].dmin);
		int			is = 0;
		uint8_t		sc,
					m;
		uint8_t		u1 = 1,
					u2 = 2;

		for (int j = 0; j < LG_QK_K; j += 64)
		{
			float		d1,
						m1,
						d2,
						m2;

			get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
			d1 = d * sc;
			m1 = min * m;
			get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
			d2 = d * sc;
			m2 = min * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
			ql += 32;
			is += 2;
			u1 <<= 2;
			u2 <<= 2;
		}
	}
}

/* q6_K: value d*scale*(q - 32), 8-bit signed scale per 16 values. */
void
lg_dequant_q6_K(const lg_block_q6_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		const float d = lg_f16_to_f32(x[i].d);
		const uint8_t *ql = x[i].ql;
		const uint8_t *qh = x[i].qh;
		const int8_t *sc = x[i].scales;

		for (int n = 0; n < LG_QK_K; n += 128)
		{
			for (int l = 0; l < 32; l++)
			{
				int			is = l / 16;
				const int8_t q1 = (int8_t) (((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32);
				const int8_t q2 = (int8_t) (((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
				const int8_t q3 = (int8_t) (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
				const int8_t q4 = (int8_t) (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);

				y[l + 0] = d * sc[is + 0] * q1;
				y[l + 32] = d * sc[is + 2] * q2;
				y[l + 64] = d * sc[is + 4] * q3;
				y[l + 96] = d * sc[is + 6] * q4;
			}
			y += 128;
			ql += 64;
			qh += 32;
			sc += 8;
		}
	}
}

/* q8_K: value d*q (d is a plain float here). */
void
lg_dequant_q8_K(const lg_block_q8_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		for (int j = 0; j < LG_QK_K; j++)
			*y++ = x[i].d * x[i].qs[j];
	}
}

/* ---- quantization (ggml's quantize_row_*_ref) ---- */

/* Pack 256 2-bit values: byte l of each 32 holds values l, l+32, l+64, l+96. */
static void
pack_2bit(const uint8_t *L, uint8_t *qs)
{
	for (int j = 0; j < LG_QK_K; j += 128)
	{
		for (int l = 0; l < 32; l++)
			qs[j / 4 + l] = (uint8_t) (L[j + l] | (L[j + l + 32] << 2) |
									   (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
	}
}

/* q2_K: per 16 values a 4-bit scale and min (MAD fit), then requantize. */
void
lg_quant_q2_K(const float *x, lg_block_q2_K *y, int64_t nb)
{
	uint8_t		L[LG_QK_K];
	uint8_t		Laux[16];
	float		weights[16];
	float		mins[LG_QK_K / 16];
	float		scales[LG_QK_K / 16];
	const float q4scale = 15.f;

	for (int64_t i = 0; i < nb; i++)
	{
		float		max_scale = 0;
		float		max_min = 0;

		for (int j = 0; j < LG_QK_K / 16; j++)
		{
			for (int l = 0; l < 16; l++)
				weights[l] = fabsf(x[16 * j + l]);
			scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
										 -0.5f, 0.1f, 15, true);
			if (scales[j] > max_scale)
				max_scale = scales[j];
			if (mins[j] > max_min)
				max_min = mins[j];
		}
		if (max_scale > 0)
		{
			float		iscale = q4scale / max_scale;

			for (int j = 0; j < LG_QK_K / 16; j++)
				y[i].scales[j] = (uint8_t) nearest_int(iscale * scales[j]);
			y[i].d = lg_f32_to_f16(max_scale / q4scale);
		}
		else
		{
			for (int j = 0; j < LG_QK_K / 16; j++)
				y[i].scales[j] = 0;
			y[i].d = lg_f32_to_f16(0.f);
		}
		if (max_min > 0)
		{
			float		iscale = q4scale / max_min;

			for (int j = 0; j < LG_QK_K / 16; j++)
			{
				int			l = nearest_int(iscale * mins[j]);

				y[i].scales[j] |= (uint8_t) (l << 4);
			}
			y[i].dmin = lg_f32_to_f16(max_min / q4scale);
		}
		else
			y[i].dmin = lg_f32_to_f16(0.f);
		for (int j = 0; j < LG_QK_K / 16; j++)
		{
			const float d = lg_f16_to_f32(y[i].d) * (y[i].scales[j] & 0xf);
			float		dm;

			if (!d)
				continue;
			dm = lg_f16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
			for (int ii = 0; ii < 16; ii++)
			{
				int			l = nearest_int((x[16 * j + ii] + dm) / d);

				L[16 * j + ii] = (uint8_t) MAX(0, MIN(3, l));
			}
		}
		pack_2bit(L, y[i].qs);
		x += LG_QK_K;
	}
}

/* q3_K: per 16 values a signed 6-bit scale, values in [-4, 3]. */
void
lg_quant_q3_K(const float *x, lg_block_q3_K *y, int64_t nb)
{
	int8_t		L[LG_QK_K];
	float		scales[LG_QK_K / 16];

	for (int64_t i = 0; i < nb; i++)
	{
		float		max_scale = 0;
		float		amax = 0;
		int8_t		sc[16];
		int			m;
		uint8_t		hm;

		for (int j = 0; j < LG_QK_K / 16; j++)
		{
			float		scale;

			scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
			scale = fabsf(scales[j]);
			if (scale > amax)
			{
				amax = scale;
				max_scale = scales[j];
			}
		}
		memset(y[i].scales, 0, 12);
		if (max_scale)
		{
			float		iscale = -32.f / max_scale;

			for (int j = 0; j < LG_QK_K / 16; j++)
			{
				int8_t		l = (int8_t) nearest_int(iscale * scales[j]);

				l = (int8_t) (MAX(-32, MIN(31, l)) + 32);
				if (j < 8)
					y[i].scales[j] = l & 0xf;
				else
					y[i].scales[j - 8] |= (uint8_t) ((l & 0xf) << 4);
				l >>= 4;
				y[i].scales[j % 4 + 8] |= (uint8_t) (l << (2 * (j / 4)));
			}
			y[i].d = lg_f32_to_f16(1 / iscale);
		}
		else
			y[i].d = lg_f32_to_f16(0.f);

		q3_K_scales(y[i].scales, sc);
		for (int j = 0; j < LG_QK_K / 16; j++)
		{
			float		d = lg_f16_to_f32(y[i].d) * sc[j];

			if (!d)
				continue;
			for (int ii = 0; ii < 16; ii++)
			{
				int			l = nearest_int(x[16 * j + ii] / d);

				l = MAX(-4, MIN(3, l));
				L[16 * j + ii] = (int8_t) (l + 4);
			}
		}

		/* the high bit of value j goes to bit j/32 of hmask[j%32] */
		memset(y[i].hmask, 0, LG_QK_K / 8);
		m = 0;
		hm = 1;
		for (int j = 0; j < LG_QK_K; j++)
		{
			if (L[j] > 3)
			{
				y[i].hmask[m] |= hm;
				L[j] -= 4;
			}
			if (++m == LG_QK_K / 8)
			{
				m = 0;
				hm <<= 1;
			}
		}
		pack_2bit((const uint8_t *) L, y[i].qs);
		x += LG_QK_K;
	}
}

/*
 * Shared by q4_K and q5_K: per 32 values a scale and min from
 * make_qkx2_quants (weights av_x + |x|), both quantized to 6 bits against
 * the block's largest, then every value requantized with the stored
 * scales.  Fills scales, d, dmin and L (values 0..nmax).
 */
static void
quant_k_scale_min(const float *x, int nmax, float rmin, float rdelta, int nstep,
				  uint8_t *packed, lg_f16 *dd, lg_f16 *dmin, uint8_t L[LG_QK_K])
{
	uint8_t		Laux[32];
	float		weights[32];
	float		mins[LG_QK_K / 32];
	float		scales[LG_QK_K / 32];
	float		max_scale = 0;
	float		max_min = 0;
	float		inv_scale;
	float		inv_min;
	uint8_t		sc,
				m;

	for (int j = 0; j < LG_QK_K / 32; j++)
	{
		float		sum_x2 = 0;
		float		av_x;

		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			weights[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
									 rmin, rdelta, nstep, false);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	memset(packed, 0, LG_K_SCALE_SIZE);
	for (int j = 0; j < LG_QK_K / 32; j++)
	{
		uint8_t		ls = (uint8_t) nearest_int(inv_scale * scales[j]);
		uint8_t		lm = (uint8_t) nearest_int(inv_min * mins[j]);

		ls = MIN(63, ls);
		lm = MIN(63, lm);
		set_scale_min_k4(j, packed, ls, lm);
	}
	*dd = lg_f32_to_f16(max_scale / 63.f);
	*dmin = lg_f32_to_f16(max_min / 63.f);
	for (int j = 0; j < LG_QK_K / 32; j++)
	{
		float		d;
		float		dm;

		get_scale_min_k4(j, packed, &sc, &m);
		d = lg_f16_to_f32(*dd) * sc;
		if (!d)
			continue;
		dm = lg_f16_to_f32(*dmin) * m;
		for (int ii = 0; ii < 32; ii++)
		{
			int			l = nearest_int((x[32 * j + ii] + dm) / d);

			L[32 * j + ii] = (uint8_t) MAX(0, MIN(nmax, l));
		}
	}
}

/* q4_K: 4-bit values with 6-bit scales and mins per 32. */
void
lg_quant_q4_K(const float *x, lg_block_q4_K *y, int64_t nb)
{
	uint8_t		L[LG_QK_K];

	for (int64_t i = 0; i < nb; i++)
	{
		uint8_t    *q = y[i].qs;

		quant_k_scale_min(x, 15, -1.f, 0.1f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
		for (int j = 0; j < LG_QK_K; j += 64)
		{
			for (int l = 0; l < 32; l++)
				q[l] = (uint8_t) (L[j + l] | (L[j + l + 32] << 4));
			q += 32;
		}
		x += LG_QK_K;
	}
}

/* q5_K: 5-bit values (high bits in qh) with 6-bit scales and mins per 32. */
void
lg_quant_q5_K(const float *x, lg_block_q5_K *y, int64_t nb)
{
	uint8_t		L[LG_QK_K];

	for (int64_t i = 0; i < nb; i++)
	{
		uint8_t    *qh = y[i].qh;
		uint8_t    *ql = y[i].qs;
		uint8_t		m1 = 1,
					m2 = 2;

		quant_k_scale_min(x, 31, -0.5f, 0.1f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
		memset(qh, 0, LG_QK_K / 8);
		for (int n = 0; n < LG_QK_K; n += 64)
		{
			for (int j = 0; j < 32; j++)
			{
				int			l1 = L[n + j];
				int			l2 = L[n + j + 32];

				if (l1 > 15)
				{
					l1 -= 16;
					qh[j] |= m1;
				}
				if (l2 > 15)
				{
					l2 -= 16;
					qh[j] |= m2;
				}
				ql[j] = (uint8_t) (l1 | (l2 << 4));
			}
			m1 <<= 2;
			m2 <<= 2;
			ql += 32;
		}
		x += LG_QK_K;
	}
}

/* q6_K: 6-bit values in [-32, 31], signed 8-bit scale per 16. */
void
lg_quant_q6_K(const float *x, lg_block_q6_K *y, int64_t nb)
{
	int8_t		L[LG_QK_K];
	float		scales[LG_QK_K / 16];

	for (int64_t i = 0; i < nb; i++)
	{
		float		max_scale = 0;
		float		max_abs_scale = 0;
		float		iscale;
		uint8_t    *ql;
		uint8_t    *qh;

		for (int ib = 0; ib < LG_QK_K / 16; ib++)
		{
			const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, NULL);
			const float abs_scale = fabsf(scale);

			scales[ib] = scale;
			if (abs_scale > max_abs_scale)
			{
				max_abs_scale = abs_scale;
				max_scale = scale;
			}
		}
		if (max_abs_scale < GROUP_MAX_EPS)
		{
			memset(&y[i], 0, sizeof(lg_block_q6_K));
			y[i].d = lg_f32_to_f16(0.f);
			x += LG_QK_K;
			continue;
		}
		iscale = -128.f / max_scale;
		y[i].d = lg_f32_to_f16(1 / iscale);
		for (int ib = 0; ib < LG_QK_K / 16; ib++)
			y[i].scales[ib] = (int8_t) MIN(127, nearest_int(iscale * scales[ib]));
		for (int j = 0; j < LG_QK_K / 16; j++)
		{
			float		d = lg_f16_to_f32(y[i].d) * y[i].scales[j];

			if (!d)
				continue;
			for (int ii = 0; ii < 16; ii++)
			{
				int			l = nearest_int(x[16 * j + ii] / d);

				l = MAX(-32, MIN(31, l));
				L[16 * j + ii] = (int8_t) (l + 32);
			}
		}
		ql = y[i].ql;
		qh = y[i].qh;
		for (int j = 0; j < LG_QK_K; j += 128)
		{
			for (int l = 0; l < 32; l++)
			{
				const uint8_t q1 = L[j + l + 0] & 0xf;
				const uint8_t q2 = L[j + l + 32] & 0xf;
				const uint8_t q3 = L[j + l + 64] & 0xf;
				const uint8_t q4 = L[j + l + 96] & 0xf;

				ql[l + 0] = (uint8_t) (q1 | (q3 << 4));
				ql[l + 32] = (uint8_t) (q2 | (q4 << 4));
				qh[l] = (uint8_t) ((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
								   ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
			}
			ql += 64;
			qh += 32;
		}
		x += LG_QK_K;
	}
}

/*
 * q8_K: d = max/-127 with max the value of largest magnitude (so that
 * value maps to exactly -127), plus the sum of each 16 quants for the
 * min terms of the K-quant dot products.
 */
void
lg_quant_q8_K(const float *x, lg_block_q8_K *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++)
	{
		float		max = 0;
		float		amax = 0;
		float		iscale;

		for (int j = 0; j < LG_QK_K; j++)
		{
			float		ax = fabsf(x[j]);

			if (ax > amax)
			{
				amax = ax;
				max = x[j];
			}
		}
		if (!amax)
		{
			/* ggml leaves bsums untouched here; zero them so the block is defined */
			y[i].d = 0;
			memset(y[i].qs, 0, LG_QK_K);
			memset(y[i].bsums, 0, sizeof(y[i].bsums));
			x += LG_QK_K;
			continue;
		}
		iscale = -127.f / max;
		for (int j = 0; j < LG_QK_K; j++)
		{
			int			v = nearest_int(iscale * x[j]);

			y[i].qs[j] = (int8_t) MIN(127, v);
		}
		for (int j = 0; j < LG_QK_K / 16; j++)
		{
			int			sum = 0;

			for (int ii = 0; ii < 16; ii++)
				sum += y[i].qs[j * 16 + ii];
			y[i].bsums[j] = (int16_t) sum;
		}
		y[i].d = 1 / iscale;
		x += LG_QK_K;
	}
}

/* ---- dot products with q8_K (ggml's generic scalar vec_dot) ---- */

/* q2_K · q8_K: the min term comes from the activation bsums. */
float
lg_dot_q2_K_q8_K(const lg_block_q2_K *x, const lg_block_q8_K *y, int64_t nb)
{
	float		sumf = 0;

	for (int64_t i = 0; i < nb; i++)
	{
		const uint8_t *q2 = x[i].qs;
		const int8_t *q8 = y[i].qs;
		const uint8_t *sc = x[i].scales;
		int			summs = 0;
		int			isum = 0;
		int			is = 0;
		float		dall;
		float		dmin;

		for (int j = 0; j < 16; j++)
			summs += y[i].bsums[j] * (sc[j] >> 4);
		dall = y[i].d * lg_f16_to_f32(x[i].d);
		dmin = y[i].d * lg_f16_to_f32(x[i].dmin);
		for (int k = 0; k < LG_QK_K / 128; k++)
		{
			int			shift = 0;

			for (int j = 0; j < 4; j++)
			{
				int			d = sc[is++] & 0xf;
				int			isuml = 0;

				for (int l = 0; l < 16; l++)
					isuml += q8[l] * ((q2[l] >> shift) & 3);
				isum += d * isuml;
				d = sc[is++] & 0xf;
				isuml = 0;
				for (int l = 16; l < 32; l++)
					isuml += q8[l] * ((q2[l] >> shift) & 3);
				isum += d * isuml;
				shift += 2;
				q8 += 32;
			}
			q2 += 32;
		}
		sumf += dall * isum - dmin * summs;
	}
	return sumf;
}

/*
 * Expand a block's 256 quants to int8 in a[] (value order), for the dot
 * products below, which then all share one accumulation pattern.
 */
static void
q3_K_values(const lg_block_q3_K *x, int8_t a[LG_QK_K])
{
	const uint8_t *q3 = x->qs;
	const uint8_t *hm = x->hmask;
	uint8_t		m = 1;

	for (int j = 0; j < LG_QK_K; j += 128)
	{
		for (int shift = 0; shift < 8; shift += 2)
		{
			for (int l = 0; l < 32; l++)
				a[l] = (int8_t) (((q3[l] >> shift) & 3) - (hm[l] & m ? 0 : 4));
			a += 32;
			m <<= 1;
		}
		q3 += 32;
	}
}

/*
 * ggml's scalar K-quant dots accumulate in eight int32 lanes per block
 * (value l of every group of 8 goes to lane l), scale the lanes by d into
 * eight float sums across blocks, and add the eight at the very end; that
 * order is reproduced here.  group is 16 for per-16 scales, 32 for per-32.
 */
static void
accumulate_lanes(const int8_t *a, const int8_t *q8, const int *scale, int group, int32_t aux32[8])
{
	memset(aux32, 0, 8 * sizeof(int32_t));
	for (int j = 0; j < LG_QK_K / group; j++)
	{
		for (int k = 0; k < group / 8; k++)
		{
			for (int l = 0; l < 8; l++)
			{
				int16_t		p = (int16_t) (q8[l] * a[l]);

				aux32[l] += scale[j] * p;
			}
			q8 += 8;
			a += 8;
		}
	}
}

/* q3_K · q8_K. */
float
lg_dot_q3_K_q8_K(const lg_block_q3_K *x, const lg_block_q8_K *y, int64_t nb)
{
	int8_t		aux8[LG_QK_K];
	int32_t		aux32[8];
	float		sums[8] = {0};
	float		sumf = 0;

	for (int64_t i = 0; i < nb; i++)
	{
		int8_t		sc[16];
		int			scale[16];
		float		d;

		q3_K_values(&x[i], aux8);
		q3_K_scales(x[i].scales, sc);
		for (int j = 0; j < 16; j++)
			scale[j] = sc[j];
		accumulate_lanes(aux8, y[i].qs, scale, 16, aux32);
		d = lg_f16_to_f32(x[i].d) * y[i].d;
		for (int l = 0; l < 8; l++)
			sums[l] += d * aux32[l];
	}
	for (int l = 0; l < 8; l++)
		sumf += sums[l];
	return sumf;
}

/* q4_K · q8_K and q5_K · q8_K: the min term comes from the activation bsums. */
static float
dot_q45_K_q8_K(const int8_t *aux8_all, const uint8_t *packed, lg_f16 xd, lg_f16 xdmin,
			   const lg_block_q8_K *y, float sums[8])
{
	int			scale[8];
	uint8_t		mins[8];
	int32_t		aux32[8];
	int			sumi = 0;
	float		d;
	float		dmin;

	for (int j = 0; j < 8; j++)
	{
		uint8_t		sc;

		get_scale_min_k4(j, packed, &sc, &mins[j]);
		scale[j] = sc;
	}
	for (int j = 0; j < LG_QK_K / 16; j++)
		sumi += y->bsums[j] * mins[j / 2];
	accumulate_lanes(aux8_all, y->qs, scale, 32, aux32);
	d = lg_f16_to_f32(xd) * y->d;
	for (int l = 0; l < 8; l++)
		sums[l] += d * aux32[l];
	dmin = lg_f16_to_f32(xdmin) * y->d;
	return dmin * sumi;
}

/* q4_K · q8_K: nibbles expanded to int8, then dot_q45_K_q8_K. */
float
lg_dot_q4_K_q8_K(const lg_block_q4_K *x, const lg_block_q8_K *y, int64_t nb)
{
	int8_t		aux8[LG_QK_K];
	float		sums[8] = {0};
	float		sumf = 0;

	for (int64_t i = 0; i < nb; i++)
	{
		const uint8_t *q4 = x[i].qs;
		int8_t	   *a = aux8;

		for (int j = 0; j < LG_QK_K / 64; j++)
		{
			for (int l = 0; l < 32; l++)
				a[l] = (int8_t) (q4[l] & 0xf);
			a += 32;
			for (int l = 0; l < 32; l++)
				a[l] = (int8_t) (q4[l] >> 4);
			a += 32;
			q4 += 32;
		}
		sumf -= dot_q45_K_q8_K(aux8, x[i].scales, x[i].d, x[i].dmin, &y[i], sums);
	}
	for (int l = 0; l < 8; l++)
		sumf += sums[l];
	return sumf;
}

/* q5_K · q8_K: nibbles plus the fifth bit, then dot_q45_K_q8_K. */
float
lg_dot_q5_K_q8_K(const lg_block_q5_K *x, const lg_block_q8_K *y, int64_t nb)
{
	int8_t		aux8[LG_QK_K];
	float		sums[8] = {0};
	float		sumf = 0;

	for (int64_t i = 0; i < nb; i++)
	{
		const uint8_t *q4 = x[i].qs;
		const uint8_t *hm = x[i].qh;
		int8_t	   *a = aux8;
		uint8_t		m = 1;

		for (int j = 0; j < LG_QK_K / 64; j++)
		{
			for (int l = 0; l < 32; l++)
				a[l] = (int8_t) ((q4[l] & 0xf) + (hm[l] & m ? 16 : 0));
			a += 32;
			m <<= 1;
			for (int l = 0; l < 32; l++)
				a[l] = (int8_t) ((q4[l] >> 4) + (hm[l] & m ? 16 : 0));
			a += 32;
			m <<= 1;
			q4 += 32;
		}
		sumf -= dot_q45_K_q8_K(aux8, x[i].scales, x[i].d, x[i].dmin, &y[i], sums);
	}
	for (int l = 0; l < 8; l++)
		sumf += sums[l];
	return sumf;
}

/* q6_K · q8_K. */
float
lg_dot_q6_K_q8_K(const lg_block_q6_K *x, const lg_block_q8_K *y, int64_t nb)
{
	int8_t		aux8[LG_QK_K];
	int32_t		aux32[8];
	float		sums[8] = {0};
	float		sumf = 0;

	for (int64_t i = 0; i < nb; i++)
	{
		const uint8_t *q4 = x[i].ql;
		const uint8_t *qh = x[i].qh;
		int8_t	   *a = aux8;
		int			scale[16];
		float		d;

		for (int j = 0; j < LG_QK_K; j += 128)
		{
			for (int l = 0; l < 32; l++)
			{
				a[l + 0] = (int8_t) (((q4[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32);
				a[l + 32] = (int8_t) (((q4[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32);
				a[l + 64] = (int8_t) (((q4[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
				a[l + 96] = (int8_t) (((q4[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
			}
			a += 128;
			q4 += 64;
			qh += 32;
		}
		for (int j = 0; j < 16; j++)
			scale[j] = x[i].scales[j];
		accumulate_lanes(aux8, y[i].qs, scale, 16, aux32);
		d = lg_f16_to_f32(x[i].d) * y[i].d;
		for (int l = 0; l < 8; l++)
			sums[l] += d * aux32[l];
	}
	for (int l = 0; l < 8; l++)
		sumf += sums[l];
	return sumf;
}
