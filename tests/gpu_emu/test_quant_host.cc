/*
 * quants_host.cpp — the index math of kernels/quants.cuh checked on the
 * host, where no GPU is needed: the device functions are compiled as plain
 * C++ through the small shims below (the CUDA intrinsics they use, done
 * byte by byte), and compared with the CPU reference lg_dequantize_row.
 *
 *   get(b, j)       must equal the reference bit for bit (the GPU's
 *                   get_rows, dequantize_f16 and GEMM tiles use it);
 *   vals/pos        the parts of the matrix-vector kernel must cover every
 *                   value of a block exactly once, each within rounding of
 *                   the reference;
 *   the mmv loop    an emulation of mmv_kernel's lane/chunk walk must give
 *                   the reference dot product.
 *
 * Build and run: tests/kernels/run_quants_host.sh (exit status 0 = pass).
 * Compiled with -ffp-contract=off, so __fmul_rn and friends below round
 * each operation as the device's do.
 */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C"
{
#include "lg_types.h"
}

/* ---- shims: what quants.cuh takes from common.cuh and the CUDA headers ---- */
#define LG_COMMON_CUH 1
#define __device__
#define __forceinline__ inline

struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct uint4 { uint32_t x, y, z, w; };
static inline float2 make_float2(float a, float b) { float2 r = {a, b}; return r; }
template <class P> static inline P __ldg(const P *p) { return *p; }
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
/* PRMT: result byte n is byte (selector nibble n & 7) of the 8 bytes y:x */
static inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s)
{
	uint64_t	v = ((uint64_t) y << 32) | x;
	uint32_t	r = 0;

	for (int n = 0; n < 4; n++)
		r |= (uint32_t) ((v >> (8 * ((s >> (4 * n)) & 7))) & 0xff) << (8 * n);
	return r;
}
static inline float lg_h2f(uint16_t h) { return lg_f16_to_f32(h); }
static inline float lg_bf2f(uint16_t h) { return lg_bf16_to_f32(h); }

#include "quants.cuh"

static int failures;

/* Deterministic bytes (xorshift). */
static uint32_t rng = 2463534242u;
static uint32_t next_u32(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }
static float next_f(void) { return (float) (next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

/* Random blocks of a type: random bytes, its half fields set to sane scales. */
static std::vector<uint8_t>
make_blocks(lg_type t, int nb, int bytes, std::initializer_list<int> half_offsets)
{
	std::vector<uint8_t> buf((size_t) nb * bytes + 16);

	for (auto &b : buf)
		b = (uint8_t) next_u32();
	for (int i = 0; i < nb; i++)
		for (int off : half_offsets)
		{
			uint16_t	h = lg_f32_to_f16(next_f() * 0.05f);

			memcpy(&buf[(size_t) i * bytes + off], &h, 2);
		}
	if (t == LG_TYPE_F16)
		for (size_t i = 0; i + 1 < buf.size(); i += 2)
		{
			uint16_t	h = lg_f32_to_f16(next_f());

			memcpy(&buf[i], &h, 2);
		}
	if (t == LG_TYPE_BF16)
		for (size_t i = 0; i + 1 < buf.size(); i += 2)
		{
			uint16_t	h = lg_f32_to_bf16(next_f());

			memcpy(&buf[i], &h, 2);
		}
	if (t == LG_TYPE_F32)
		for (size_t i = 0; i + 3 < buf.size(); i += 4)
		{
			float		f = next_f();

			memcpy(&buf[i], &f, 4);
		}
	return buf;
}

template <class T>
static void
check_type(lg_type t, const char *name, std::initializer_list<int> half_offsets)
{
	constexpr int CHUNK = T::QK > T::VPL ? T::QK : T::VPL;
	constexpr int CBYTES = CHUNK / T::QK * T::BYTES;
	constexpr int NSUB = CHUNK / T::VPL;
	constexpr int CPI = 32 / NSUB;
	const int	n_chunks = 24;
	const int	k = n_chunks * CHUNK;
	const int	nb = k / T::QK;
	std::vector<uint8_t> buf = make_blocks(t, nb, T::BYTES, half_offsets);
	std::vector<float> ref(k), x(k);
	int			bad_get = 0,
				bad_vals = 0;
	double		dot_ref = 0.0,
				dot_abs = 0.0;
	float		dot_emul = 0.0f;

	if (!lg_dequantize_row(t, buf.data(), ref.data(), k))
	{
		printf("FAIL %s: no CPU reference\n", name);
		failures++;
		return;
	}
	/* get: bit for bit */
	for (int i = 0; i < k; i++)
	{
		float		v = T::get(buf.data() + (size_t) (i / T::QK) * T::BYTES, i % T::QK);

		if (memcmp(&v, &ref[i], 4) != 0 && bad_get++ < 3)
			printf("  %s get(%d) = %.9g, reference %.9g\n", name, i, v, ref[i]);
	}
	/* vals/pos: every value once, each within rounding */
	for (int c = 0; c < n_chunks; c++)
	{
		std::vector<int> seen(CHUNK, 0);
		float		amax = 0.0f;

		for (int i = 0; i < CHUNK; i++)
			amax = fmaxf(amax, fabsf(ref[c * CHUNK + i]));
		for (int s = 0; s < NSUB; s++)
		{
			float		w[T::VPL];
			float2		f = T::vals(buf.data() + (size_t) c * CBYTES, s, w);

			for (int g = 0; g < T::VPL / 4; g++)
				for (int i = 0; i < 4; i++)
				{
					int			p = T::pos(s, g) + i;
					float		v = (g < T::VPL / 8 ? f.x : f.y) * w[4 * g + i];
					float		r;

					if (p < 0 || p >= CHUNK)
					{
						if (bad_vals++ < 3)
							printf("  %s part %d group %d: position %d outside the chunk\n", name, s, g, p);
						continue;
					}
					seen[p]++;
					r = ref[c * CHUNK + p];
					if (fabsf(v - r) > 1e-6f * amax + 1e-30f && bad_vals++ < 3)
						printf("  %s chunk %d part %d pos %d: %.9g, reference %.9g\n", name, c, s, p, v, r);
				}
		}
		for (int i = 0; i < CHUNK; i++)
			if (seen[i] != 1 && bad_vals++ < 3)
				printf("  %s chunk %d: value %d covered %d times\n", name, c, i, seen[i]);
	}
	/* the mmv kernel's walk: lane l takes chunks l/NSUB, +CPI, ... part l%NSUB */
	for (int i = 0; i < k; i++)
	{
		x[i] = next_f();
		dot_ref += (double) ref[i] * x[i];
		dot_abs += fabs((double) ref[i] * x[i]);
	}
	for (int lane = 0; lane < 32; lane++)
	{
		int			s = lane % NSUB;
		float		acc = 0.0f;

		for (int c = lane / NSUB; c < n_chunks; c += CPI)
		{
			float		w[T::VPL];
			float2		f = T::vals(buf.data() + (size_t) c * CBYTES, s, w);
			const float *xc = x.data() + (size_t) c * CHUNK;
			float		lo = 0.0f,
						hi = 0.0f;
			float		xs[T::VPL];

			for (int g = 0; g < T::VPL / 4; g++)
				for (int i = 0; i < 4; i++)
					xs[4 * g + i] = xc[T::pos(s, g) + i];
			for (int i = 0; i < T::VPL / 2; i++)
			{
				lo = fmaf(w[i], xs[i], lo);
				hi = fmaf(w[i + T::VPL / 2], xs[i + T::VPL / 2], hi);
			}
			acc = fmaf(f.x, lo, fmaf(f.y, hi, acc));
		}
		dot_emul += acc;
	}
	if (fabs(dot_emul - dot_ref) > 1e-5 * dot_abs + 1e-30)
	{
		printf("  %s mmv walk: %.9g, reference %.9g\n", name, dot_emul, dot_ref);
		bad_vals++;
	}
	printf("%s %s: get %d mismatches of %d, matrix-vector parts %d problems\n",
		   bad_get || bad_vals ? "FAIL" : "ok  ", name, bad_get, k, bad_vals);
	if (bad_get || bad_vals)
		failures++;
}

int
main(void)
{
	check_type<lg_t_f32>(LG_TYPE_F32, "f32", {});
	check_type<lg_t_f16>(LG_TYPE_F16, "f16", {});
	check_type<lg_t_bf16>(LG_TYPE_BF16, "bf16", {});
	check_type<lg_t_q4_0>(LG_TYPE_Q4_0, "q4_0", {0});
	check_type<lg_t_q4_1>(LG_TYPE_Q4_1, "q4_1", {0, 2});
	check_type<lg_t_q5_0>(LG_TYPE_Q5_0, "q5_0", {0});
	check_type<lg_t_q5_1>(LG_TYPE_Q5_1, "q5_1", {0, 2});
	check_type<lg_t_q8_0>(LG_TYPE_Q8_0, "q8_0", {0});
	check_type<lg_t_q2_K>(LG_TYPE_Q2_K, "q2_K", {80, 82});
	check_type<lg_t_q3_K>(LG_TYPE_Q3_K, "q3_K", {108});
	check_type<lg_t_q4_K>(LG_TYPE_Q4_K, "q4_K", {0, 2});
	check_type<lg_t_q5_K>(LG_TYPE_Q5_K, "q5_K", {0, 2});
	check_type<lg_t_q6_K>(LG_TYPE_Q6_K, "q6_K", {208});
	if (failures)
		printf("%d type(s) failed\n", failures);
	return failures ? 1 : 0;
}
