/*
 * quants.cuh — device dequantization of every weight type the CPU backend
 * multiplies (lg_mm_type_supported in ops_cpu_matmul.c): F32 F16 BF16 Q4_0
 * Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K.
 *
 * One trait struct per type, each with:
 *   QK, BYTES      values and bytes per block (GGUF's layout, lg_types.h);
 *   get(b, j)      value j of the block at b, bit for bit as the CPU's
 *                  lg_dequantize_row (same operations, same order, rounded
 *                  separately: __fmul_rn/__fadd_rn never fuse into an FMA);
 *   VPL            values one lane handles per block in the matrix-vector
 *                  kernel (mmv.cu), in VPL/4 groups of 4 contiguous values;
 *   pos(s, g)      where group g of lane-part s starts inside the block;
 *   vals(b, s, w)  the VPL values of part s into w, group after group,
 *                  returning the factors of the first and second half
 *                  (value = factor * w).  Factoring the common scale out
 *                  saves one multiply per value; these are fast, not
 *                  bit-exact (the CPU's own dot products are not either).
 *
 * Alignment: GGUF blocks are only 2-byte aligned (an 18-byte q4_0 block
 * follows another), so block fields are read with 16-bit or byte loads,
 * never wider.  Only the float types read wider (16 bytes), and only on a
 * path the launcher takes after checking alignment at run time.
 *
 * Small integers become floats without I2F (a quarter-rate instruction):
 * byte b placed in the mantissa of 2^23 (bits 0x4B000000 | b) is exactly
 * 2^23 + b, and one subtraction of (2^23 + bias) gives b - bias exactly.
 */
#ifndef LG_QUANTS_CUH
#define LG_QUANTS_CUH

#include "common.cuh"

/* Clang (HIP) may contract a*b+c across inlined calls: forbid it where exact. */
#ifdef LG_HIP
#define LG_EXACT _Pragma("clang fp contract(off)")
#else
#define LG_EXACT
#endif

#define LG_MAGIC 8388608.0f		/* 2^23 */

/* 16 bits at b (2-byte aligned). */
static __device__ __forceinline__ uint32_t
lg_ld16(const uint8_t *b)
{
	return *(const uint16_t *) b;
}

/* 32 bits at b, which is only 2-byte aligned: two 16-bit loads. */
static __device__ __forceinline__ uint32_t
lg_ld32(const uint8_t *b)
{
	const uint16_t *p = (const uint16_t *) b;

	return (uint32_t) p[0] | ((uint32_t) p[1] << 16);
}

/* IEEE half at b (2-byte aligned) as float. */
static __device__ __forceinline__ float
lg_ldh(const uint8_t *b)
{
	return lg_h2f(*(const uint16_t *) b);
}

/* Byte i (0..3) of v as float minus bias: exact for bias + byte < 2^23. */
static __device__ __forceinline__ float
lg_byte_f(uint32_t v, int i, float bias)
{
	/* result bytes: [v.byte i, 0, 0, 0x4B]: selector nibbles i, 4, 4, 7 */
	return __uint_as_float(__byte_perm(v, 0x4B000000u, 0x7440u + (uint32_t) i)) - (LG_MAGIC + bias);
}

/* The four bytes of v into w[0..3] as floats minus bias. */
static __device__ __forceinline__ void
lg_bytes4_f(uint32_t v, float bias, float *w)
{
	w[0] = lg_byte_f(v, 0, bias);
	w[1] = lg_byte_f(v, 1, bias);
	w[2] = lg_byte_f(v, 2, bias);
	w[3] = lg_byte_f(v, 3, bias);
}

/* Bits 0..3 of h moved to bit 4 of bytes 0..3 (q5 fifth bits): h*0x204081 puts bit i at 8i. */
static __device__ __forceinline__ uint32_t
lg_spread4(uint32_t h)
{
	return (((h & 0xfu) * 0x00204081u) & 0x01010101u) << 4;
}

/*
 * The 6-bit scale and min of sub-block j of a q4_K/q5_K block (12 bytes at
 * q), as get_scale_min_k4 in quants_k.c.
 */
static __device__ __forceinline__ void
lg_scale_min_k4(int j, const uint8_t *q, int *d, int *m)
{
	if (j < 4)
	{
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	}
	else
	{
		*d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/* Signed scale j (0..15) of a q3_K block (12 bytes at s), as q3_K_scales: biased by -32. */
static __device__ __forceinline__ int
lg_q3_K_scale(int j, const uint8_t *s)
{
	int			lo = j < 8 ? (s[j] & 0xf) : (s[j - 8] >> 4);
	int			hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;

	return (lo | hi << 4) - 32;
}

/* ---- float types: a "block" is one value; VPL contiguous values per lane ---- */

struct lg_t_f32
{
	static constexpr int QK = 1;
	static constexpr int BYTES = 4;
	static constexpr int VPL = 8;		/* 32 bytes: two 16-byte loads */
	static constexpr bool FLOAT = true;

	static __device__ __forceinline__ float get(const uint8_t *b, int j)
	{
		return ((const float *) b)[j];
	}
	/* part s = the 8 values at b (16-byte aligned, checked by the launcher) */
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		float4		a = __ldg((const float4 *) b);
		float4		c = __ldg((const float4 *) b + 1);

		(void) s;
		w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
		w[4] = c.x; w[5] = c.y; w[6] = c.z; w[7] = c.w;
		return make_float2(1.0f, 1.0f);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		(void) s;
		return 4 * g;
	}
};

/* Halves (F16 or BF16): 8 values, one 16-byte load. */
template <bool BF>
struct lg_t_half
{
	static constexpr int QK = 1;
	static constexpr int BYTES = 2;
	static constexpr int VPL = 8;
	static constexpr bool FLOAT = true;

	static __device__ __forceinline__ float cvt(uint32_t h)
	{
		return BF ? lg_bf2f((uint16_t) h) : lg_h2f((uint16_t) h);
	}
	static __device__ __forceinline__ float get(const uint8_t *b, int j)
	{
		return cvt(((const uint16_t *) b)[j]);
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		uint4		v = __ldg((const uint4 *) b);
		uint32_t	u[4] = {v.x, v.y, v.z, v.w};

		(void) s;
#pragma unroll
		for (int i = 0; i < 4; i++)
		{
			w[2 * i] = cvt(u[i] & 0xffffu);
			w[2 * i + 1] = cvt(u[i] >> 16);
		}
		return make_float2(1.0f, 1.0f);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		(void) s;
		return 4 * g;
	}
};
typedef lg_t_half<false> lg_t_f16;
typedef lg_t_half<true> lg_t_bf16;

/*
 * ---- blocks of 32 ----
 * q4_0/q4_1/q5_0/q5_1: byte i of qs holds value i (low nibble) and value
 * i+16 (high nibble).  Lane part s (0, 1) takes qs bytes 8s..8s+7: values
 * 8s..8s+7 then 16+8s..16+8s+7, so groups start at 8s, 8s+4, 16+8s, 20+8s.
 */
static __device__ __forceinline__ int
lg_pos_nib32(int s, int g)
{
	return 8 * s + 4 * (g & 1) + 16 * (g >> 1);
}

struct lg_t_q4_0
{
	static constexpr int QK = 32;
	static constexpr int BYTES = 18;	/* d, qs[16] */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	/* (q - 8) * d */
	static __device__ __forceinline__ float get(const uint8_t *b, int j)
	{
		LG_EXACT;
		int			q = b[2 + (j & 15)];

		q = j < 16 ? (q & 0xf) : (q >> 4);
		return __fmul_rn((float) (q - 8), lg_ldh(b));
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		uint32_t	v0 = lg_ld32(b + 2 + 8 * s);
		uint32_t	v1 = lg_ld32(b + 6 + 8 * s);
		float		d = lg_ldh(b);

		lg_bytes4_f(v0 & 0x0f0f0f0fu, 8.0f, w);
		lg_bytes4_f(v1 & 0x0f0f0f0fu, 8.0f, w + 4);
		lg_bytes4_f((v0 >> 4) & 0x0f0f0f0fu, 8.0f, w + 8);
		lg_bytes4_f((v1 >> 4) & 0x0f0f0f0fu, 8.0f, w + 12);
		return make_float2(d, d);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos_nib32(s, g);
	}
};

struct lg_t_q4_1
{
	static constexpr int QK = 32;
	static constexpr int BYTES = 20;	/* d, m, qs[16] */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	/* q * d + m */
	static __device__ __forceinline__ float get(const uint8_t *b, int j)
	{
		LG_EXACT;
		int			q = b[4 + (j & 15)];

		q = j < 16 ? (q & 0xf) : (q >> 4);
		return __fadd_rn(__fmul_rn((float) q, lg_ldh(b)), lg_ldh(b + 2));
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		uint32_t	v0 = lg_ld32(b + 4 + 8 * s);
		uint32_t	v1 = lg_ld32(b + 8 + 8 * s);
		float		d = lg_ldh(b);
		float		m = lg_ldh(b + 2);

		lg_bytes4_f(v0 & 0x0f0f0f0fu, 0.0f, w);
		lg_bytes4_f(v1 & 0x0f0f0f0fu, 0.0f, w + 4);
		lg_bytes4_f((v0 >> 4) & 0x0f0f0f0fu, 0.0f, w + 8);
		lg_bytes4_f((v1 >> 4) & 0x0f0f0f0fu, 0.0f, w + 12);
#pragma unroll
		for (int i = 0; i < 16; i++)
			w[i] = fmaf(w[i], d, m);
		return make_float2(1.0f, 1.0f);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos_nib32(s, g);
	}
};

/*
 * q5: bit j of the 32-bit qh is the fifth bit of value j.  Part s needs
 * bits 8s..8s+7 (low values) and 16+8s.. (high values): bytes s and 2+s.
 */
static __device__ __forceinline__ void
lg_q5_vals(uint32_t v0, uint32_t v1, uint32_t qh, int s, float bias, float *w)
{
	uint32_t	hl = qh >> (8 * s);
	uint32_t	hh = qh >> (16 + 8 * s);

	lg_bytes4_f((v0 & 0x0f0f0f0fu) | lg_spread4(hl), bias, w);
	lg_bytes4_f((v1 & 0x0f0f0f0fu) | lg_spread4(hl >> 4), bias, w + 4);
	lg_bytes4_f(((v0 >> 4) & 0x0f0f0f0fu) | lg_spread4(hh), bias, w + 8);
	lg_bytes4_f(((v1 >> 4) & 0x0f0f0f0fu) | lg_spread4(hh >> 4), bias, w + 12);
}

/* The 5-bit value j of a q5 block: nibble from qs, fifth bit j of qh. */
static __device__ __forceinline__ int
lg_q5_get(const uint8_t *qh, const uint8_t *qs, int j)
{
	int			q = qs[j & 15];

	q = j < 16 ? (q & 0xf) : (q >> 4);
	return q | (((qh[j >> 3] >> (j & 7)) & 1) << 4);
}

struct lg_t_q5_0
{
	static constexpr int QK = 32;
	static constexpr int BYTES = 22;	/* d, qh[4], qs[16] */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	/* (q - 16) * d */
	static __device__ __forceinline__ float get(const uint8_t *b, int j)
	{
		LG_EXACT;
		return __fmul_rn((float) (lg_q5_get(b + 2, b + 6, j) - 16), lg_ldh(b));
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		float		d = lg_ldh(b);

		lg_q5_vals(lg_ld32(b + 6 + 8 * s), lg_ld32(b + 10 + 8 * s), lg_ld32(b + 2), s, 16.0f, w);
		return make_float2(d, d);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos_nib32(s, g);
	}
};

struct lg_t_q5_1
{
	static constexpr int QK = 32;
	static constexpr int BYTES = 24;	/* d, m, qh[4], qs[16] */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	/* q * d + m */
	static __device__ __forceinline__ float get(const uint8_t *b, int j)
	{
		LG_EXACT;
		return __fadd_rn(__fmul_rn((float) lg_q5_get(b + 4, b + 8, j), lg_ldh(b)), lg_ldh(b + 2));
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		float		d = lg_ldh(b);
		float		m = lg_ldh(b + 2);

		lg_q5_vals(lg_ld32(b + 8 + 8 * s), lg_ld32(b + 12 + 8 * s), lg_ld32(b + 4), s, 0.0f, w);
#pragma unroll
		for (int i = 0; i < 16; i++)
			w[i] = fmaf(w[i], d, m);
		return make_float2(1.0f, 1.0f);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos_nib32(s, g);
	}
};

/* q8_0: value j is qs[j] * d; part s takes values 16s..16s+15. */
struct lg_t_q8_0
{
	static constexpr int QK = 32;
	static constexpr int BYTES = 34;	/* d, qs[32] */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	static __device__ __forceinline__ float get(const uint8_t *b, int j)
	{
		LG_EXACT;
		return __fmul_rn((float) (int8_t) b[2 + j], lg_ldh(b));
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		float		d = lg_ldh(b);

#pragma unroll
		for (int i = 0; i < 4; i++)
		{
			/* flipping the sign bit makes the byte q + 128, in 0..255 */
			lg_bytes4_f(lg_ld32(b + 2 + 16 * s + 4 * i) ^ 0x80808080u, 128.0f, w + 4 * i);
		}
		return make_float2(d, d);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return 16 * s + 4 * g;
	}
};

/*
 * ---- K-quants: super-blocks of 256 ----
 * q2_K and q3_K: sixteen groups of 16 values, group i (= scale index is)
 * being values 16i..16i+15: within the half n = i/8, pair j = (i%8)/2,
 * second = i%2, value 16i+l is bits 2j..2j+1 of qs[32n + 16*second + l].
 * Lane part s is group s: its four groups of 4 start at 16s + 4g.
 */
static __device__ __forceinline__ int
lg_pos16(int s, int g)
{
	return 16 * s + 4 * g;
}

/* Byte offset (in qs) and shift of value e of a q2_K/q3_K block. */
static __device__ __forceinline__ void
lg_k2_index(int e, int *byte, int *shift)
{
	int			n = e >> 7;			/* half of 128 */
	int			r = e & 127;

	*shift = 2 * (r >> 5);			/* j */
	*byte = 32 * n + 16 * ((r >> 4) & 1) + (r & 15);	/* second, l */
}

struct lg_t_q2_K
{
	static constexpr int QK = 256;
	static constexpr int BYTES = 84;	/* scales[16], qs[64], d, dmin */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	/* d*(sc&15) * q - dmin*(sc>>4) */
	static __device__ __forceinline__ float get(const uint8_t *b, int e)
	{
		LG_EXACT;
		int			byte,
					shift;
		int			sc = b[e >> 4];
		float		dl = __fmul_rn(lg_ldh(b + 80), (float) (sc & 0xf));
		float		ml = __fmul_rn(lg_ldh(b + 82), (float) (sc >> 4));

		lg_k2_index(e, &byte, &shift);
		return __fsub_rn(__fmul_rn(dl, (float) ((b[16 + byte] >> shift) & 3)), ml);
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		int			byte,
					shift;
		int			sc = b[s];
		float		dl = lg_ldh(b + 80) * (float) (sc & 0xf);
		float		ml = lg_ldh(b + 82) * (float) (sc >> 4);

		lg_k2_index(16 * s, &byte, &shift);
#pragma unroll
		for (int i = 0; i < 4; i++)
			lg_bytes4_f((lg_ld32(b + 16 + byte + 4 * i) >> shift) & 0x03030303u, 0.0f, w + 4 * i);
#pragma unroll
		for (int i = 0; i < 16; i++)
			w[i] = fmaf(dl, w[i], -ml);
		return make_float2(1.0f, 1.0f);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos16(s, g);
	}
};

/*
 * q3_K: as q2_K plus a third bit: bit (4n + j) of hmask[16*second + l]
 * (hmask is not advanced per half); value d*(scale-32)*(q2 - (bit ? 0 : 4)).
 */
struct lg_t_q3_K
{
	static constexpr int QK = 256;
	static constexpr int BYTES = 110;	/* hmask[32], qs[64], scales[12], d */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	static __device__ __forceinline__ float get(const uint8_t *b, int e)
	{
		LG_EXACT;
		int			byte,
					shift;
		float		dl = __fmul_rn(lg_ldh(b + 108), (float) lg_q3_K_scale(e >> 4, b + 96));
		int			hbit = 4 * (e >> 7) + ((e & 127) >> 5);
		int			q;

		lg_k2_index(e, &byte, &shift);
		q = ((b[32 + byte] >> shift) & 3) - ((b[byte & 31] >> hbit) & 1 ? 0 : 4);
		return __fmul_rn(dl, (float) q);
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		int			byte,
					shift;
		int			hbit = 4 * (s >> 3) + ((s & 7) >> 1);
		float		dl = lg_ldh(b + 108) * (float) lg_q3_K_scale(s, b + 96);

		lg_k2_index(16 * s, &byte, &shift);
#pragma unroll
		for (int i = 0; i < 4; i++)
		{
			uint32_t	q = (lg_ld32(b + 32 + byte + 4 * i) >> shift) & 0x03030303u;
			uint32_t	h = (lg_ld32(b + (byte & 31) + 4 * i) >> hbit) & 0x01010101u;

			/* q2 | bit << 2 is q3 + 4 with q3 = q2 - (bit ? 0 : 4) */
			lg_bytes4_f(q | (h << 2), 4.0f, w + 4 * i);
		}
		return make_float2(dl, dl);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos16(s, g);
	}
};

/*
 * q4_K and q5_K: four chunks c of 64 values; value c*64 + l (l < 32) is the
 * low nibble of qs[32c + l] with scale/min 2c, value c*64 + 32 + l the high
 * nibble with scale/min 2c+1.  Lane part s = 4c + t takes qs bytes
 * 32c + 8t .. +8: groups at 64c + 8t, +4, 64c + 32 + 8t, +4.
 */
static __device__ __forceinline__ int
lg_pos_k4(int s, int g)
{
	return 64 * (s >> 2) + 8 * (s & 3) + 4 * (g & 1) + 32 * (g >> 1);
}

struct lg_t_q4_K
{
	static constexpr int QK = 256;
	static constexpr int BYTES = 144;	/* d, dmin, scales[12], qs[128] */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	/* d*sc * q - dmin*m */
	static __device__ __forceinline__ float get(const uint8_t *b, int e)
	{
		LG_EXACT;
		int			c = e >> 6;
		int			hi = (e >> 5) & 1;
		int			sc,
					m;
		int			q = b[16 + 32 * c + (e & 31)];

		lg_scale_min_k4(2 * c + hi, b + 4, &sc, &m);
		q = hi ? q >> 4 : q & 0xf;
		return __fsub_rn(__fmul_rn(__fmul_rn(lg_ldh(b), (float) sc), (float) q),
						 __fmul_rn(lg_ldh(b + 2), (float) m));
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		int			c = s >> 2;
		int			sc,
					m;
		float		d = lg_ldh(b);
		float		dmin = lg_ldh(b + 2);
		uint32_t	v0 = lg_ld32(b + 16 + 32 * c + 8 * (s & 3));
		uint32_t	v1 = lg_ld32(b + 20 + 32 * c + 8 * (s & 3));
		float		d1,
					m1,
					d2,
					m2;

		lg_scale_min_k4(2 * c, b + 4, &sc, &m);
		d1 = d * (float) sc;
		m1 = dmin * (float) m;
		lg_scale_min_k4(2 * c + 1, b + 4, &sc, &m);
		d2 = d * (float) sc;
		m2 = dmin * (float) m;
		lg_bytes4_f(v0 & 0x0f0f0f0fu, 0.0f, w);
		lg_bytes4_f(v1 & 0x0f0f0f0fu, 0.0f, w + 4);
		lg_bytes4_f((v0 >> 4) & 0x0f0f0f0fu, 0.0f, w + 8);
		lg_bytes4_f((v1 >> 4) & 0x0f0f0f0fu, 0.0f, w + 12);
#pragma unroll
		for (int i = 0; i < 8; i++)
		{
			w[i] = fmaf(d1, w[i], -m1);
			w[i + 8] = fmaf(d2, w[i + 8], -m2);
		}
		return make_float2(1.0f, 1.0f);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos_k4(s, g);
	}
};

/* q5_K: q4_K plus fifth bits: bit 2c (low) / 2c+1 (high) of qh[l], l < 32. */
struct lg_t_q5_K
{
	static constexpr int QK = 256;
	static constexpr int BYTES = 176;	/* d, dmin, scales[12], qh[32], qs[128] */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	static __device__ __forceinline__ float get(const uint8_t *b, int e)
	{
		LG_EXACT;
		int			c = e >> 6;
		int			hi = (e >> 5) & 1;
		int			l = e & 31;
		int			sc,
					m;
		int			q = b[48 + 32 * c + l];

		lg_scale_min_k4(2 * c + hi, b + 4, &sc, &m);
		q = (hi ? q >> 4 : q & 0xf) + ((b[16 + l] >> (2 * c + hi)) & 1 ? 16 : 0);
		return __fsub_rn(__fmul_rn(__fmul_rn(lg_ldh(b), (float) sc), (float) q),
						 __fmul_rn(lg_ldh(b + 2), (float) m));
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		int			c = s >> 2;
		int			t = s & 3;
		int			sc,
					m;
		float		d = lg_ldh(b);
		float		dmin = lg_ldh(b + 2);
		uint32_t	v0 = lg_ld32(b + 48 + 32 * c + 8 * t);
		uint32_t	v1 = lg_ld32(b + 52 + 32 * c + 8 * t);
		uint32_t	h0 = lg_ld32(b + 16 + 8 * t) >> (2 * c);
		uint32_t	h1 = lg_ld32(b + 20 + 8 * t) >> (2 * c);
		float		d1,
					m1,
					d2,
					m2;

		lg_scale_min_k4(2 * c, b + 4, &sc, &m);
		d1 = d * (float) sc;
		m1 = dmin * (float) m;
		lg_scale_min_k4(2 * c + 1, b + 4, &sc, &m);
		d2 = d * (float) sc;
		m2 = dmin * (float) m;
		lg_bytes4_f((v0 & 0x0f0f0f0fu) | ((h0 & 0x01010101u) << 4), 0.0f, w);
		lg_bytes4_f((v1 & 0x0f0f0f0fu) | ((h1 & 0x01010101u) << 4), 0.0f, w + 4);
		lg_bytes4_f(((v0 >> 4) & 0x0f0f0f0fu) | ((h0 & 0x02020202u) << 3), 0.0f, w + 8);
		lg_bytes4_f(((v1 >> 4) & 0x0f0f0f0fu) | ((h1 & 0x02020202u) << 3), 0.0f, w + 12);
#pragma unroll
		for (int i = 0; i < 8; i++)
		{
			w[i] = fmaf(d1, w[i], -m1);
			w[i + 8] = fmaf(d2, w[i + 8], -m2);
		}
		return make_float2(1.0f, 1.0f);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		return lg_pos_k4(s, g);
	}
};

/*
 * q6_K: two halves n of 128 values, each from ql[64n..], qh[32n..],
 * scales[8n..].  For l < 32 and quarter qq (0..3), value 128n + 32qq + l is
 * (nibble | two high bits) - 32 with the nibble the low (qq even... see
 * below) of ql[64n + l + 32(qq&1)] — low nibble for qq < 2, high for
 * qq >= 2 — the high bits (qh[32n + l] >> 2qq) & 3, and the scale
 * scales[8n + l/16 + 2qq].  Lane part s = 8n + u reads ql bytes
 * 64n + 8u .. +8: with hq = u/4 and l0 = 8(u%4), its low nibbles are
 * quarter hq, its high nibbles quarter 2 + hq, both at l0 .. l0+7.
 */
struct lg_t_q6_K
{
	static constexpr int QK = 256;
	static constexpr int BYTES = 210;	/* ql[128], qh[64], scales[16], d */
	static constexpr int VPL = 16;
	static constexpr bool FLOAT = false;

	/* d * scale * (q - 32), multiplied left to right as the CPU does */
	static __device__ __forceinline__ float get(const uint8_t *b, int e)
	{
		LG_EXACT;
		int			n = e >> 7;
		int			qq = (e >> 5) & 3;
		int			l = e & 31;
		int			ql = b[64 * n + l + 32 * (qq & 1)];
		int			qh = b[128 + 32 * n + l];
		int			q = ((qq < 2 ? ql & 0xf : ql >> 4) | (((qh >> (2 * qq)) & 3) << 4)) - 32;
		int			sc = (int8_t) b[192 + 8 * n + l / 16 + 2 * qq];

		return __fmul_rn(__fmul_rn(lg_ldh(b + 208), (float) sc), (float) q);
	}
	static __device__ __forceinline__ float2 vals(const uint8_t *b, int s, float *w)
	{
		int			n = s >> 3;
		int			u = s & 7;
		int			hq = u >> 2;
		int			l0 = 8 * (u & 3);
		uint32_t	v0 = lg_ld32(b + 64 * n + 8 * u);
		uint32_t	v1 = lg_ld32(b + 64 * n + 8 * u + 4);
		uint32_t	h0 = lg_ld32(b + 128 + 32 * n + l0);
		uint32_t	h1 = lg_ld32(b + 128 + 32 * n + l0 + 4);
		float		d = lg_ldh(b + 208);
		const int8_t *sc = (const int8_t *) (b + 192 + 8 * n + l0 / 16);

		/* low nibbles: quarter hq, high bits at 2hq; high nibbles: quarter 2+hq, bits 4+2hq */
		lg_bytes4_f((v0 & 0x0f0f0f0fu) | (((h0 >> (2 * hq)) & 0x03030303u) << 4), 32.0f, w);
		lg_bytes4_f((v1 & 0x0f0f0f0fu) | (((h1 >> (2 * hq)) & 0x03030303u) << 4), 32.0f, w + 4);
		lg_bytes4_f(((v0 >> 4) & 0x0f0f0f0fu) | (((h0 >> (4 + 2 * hq)) & 0x03030303u) << 4), 32.0f, w + 8);
		lg_bytes4_f(((v1 >> 4) & 0x0f0f0f0fu) | (((h1 >> (4 + 2 * hq)) & 0x03030303u) << 4), 32.0f, w + 12);
		return make_float2(d * (float) sc[2 * hq], d * (float) sc[2 * (2 + hq)]);
	}
	static __device__ __forceinline__ int pos(int s, int g)
	{
		int			u = s & 7;
		int			qq = (u >> 2) + 2 * (g >> 1);

		return 128 * (s >> 3) + 32 * qq + 8 * (u & 3) + 4 * (g & 1);
	}
};

/*
 * Call F<trait>(args...) for a weight type; `fail` is evaluated for a type
 * with no trait.  Used by every entry that switches on lg_type.
 */
#define LG_DISPATCH_TYPE(type, F, fail, ...) \
	do { \
		switch (type) \
		{ \
			case LG_TYPE_F32: return F<lg_t_f32>(__VA_ARGS__); \
			case LG_TYPE_F16: return F<lg_t_f16>(__VA_ARGS__); \
			case LG_TYPE_BF16: return F<lg_t_bf16>(__VA_ARGS__); \
			case LG_TYPE_Q4_0: return F<lg_t_q4_0>(__VA_ARGS__); \
			case LG_TYPE_Q4_1: return F<lg_t_q4_1>(__VA_ARGS__); \
			case LG_TYPE_Q5_0: return F<lg_t_q5_0>(__VA_ARGS__); \
			case LG_TYPE_Q5_1: return F<lg_t_q5_1>(__VA_ARGS__); \
			case LG_TYPE_Q8_0: return F<lg_t_q8_0>(__VA_ARGS__); \
			case LG_TYPE_Q2_K: return F<lg_t_q2_K>(__VA_ARGS__); \
			case LG_TYPE_Q3_K: return F<lg_t_q3_K>(__VA_ARGS__); \
			case LG_TYPE_Q4_K: return F<lg_t_q4_K>(__VA_ARGS__); \
			case LG_TYPE_Q5_K: return F<lg_t_q5_K>(__VA_ARGS__); \
			case LG_TYPE_Q6_K: return F<lg_t_q6_K>(__VA_ARGS__); \
			default: return (fail); \
		} \
	} while (0)

#endif							/* LG_QUANTS_CUH */
