/*
 * test_quant_emu.cc — kernels/ run on the host through the emulator
 * (tests/gpu_emu: a block's threads as fibers), against the CPU reference: lg_gpu_matmul (matrix-vector
 * kernels for n <= 8, aligned and not, k split or not; the tiled GEMM
 * above), lg_gpu_matmul_half (the GEMM on F16/BF16 activations), get_rows and
 * dequantize_f16, for every supported type, with shapes that leave tails
 * everywhere (m = 19 rows: odd, not a multiple of 8 or 64; k past one warp
 * step; n not a multiple of 64), and the entries' argument checks.
 *
 * This checks the index math and the control flow of the real kernel
 * sources, not the GPU's behaviour (memory model, timing, the real
 * intrinsics): the device check still runs them on a GPU.
 */
extern "C"
{
#include "lg_types.h"
}
#include "lg_kernels.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

/* the message runtime.cu recorded for the last failure */
#define last_error lg_gpu_last_error()

static int	failures;

#define CHECK(cond, ...) \
	do { if (!(cond)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); failures++; } } while (0)

static uint32_t rng = 88172645u;
static uint32_t next_u32(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }
static float next_f(void) { return (float) (next_u32() >> 8) / 16777216.0f * 2.0f - 1.0f; }

/* 64-byte aligned buffer of n bytes (+64 so an offset view stays inside). */
/* Device memory (the emulated cudaMalloc: host memory cuBLAS's checks accept), cleared. */
static uint8_t *
alloc_bytes(size_t n)
{
	void	   *p = NULL;

	if (lg_gpu_malloc(&p, (n + 64 + 63) / 64 * 64) != LG_GPU_OK)
	{
		printf("lg_gpu_malloc: %s\n", lg_gpu_last_error());
		exit(1);
	}
	memset(p, 0, (n + 64 + 63) / 64 * 64);
	return (uint8_t *) p;
}

#define free(p) lg_gpu_free(p)

/* The cuBLAS handle of the blas cases (tests/gpu_emu/emu_blas.cc's GemmEx). */
static lg_gpu_blas blas_handle;

/* What the cuBLAS path multiplies: x in the weights' half type, quantized weights as F16. */
static float
blas_round(float v, lg_type t)
{
	return t == LG_TYPE_BF16 ? lg_bf16_to_f32(lg_f32_to_bf16(v)) : lg_f16_to_f32(lg_f32_to_f16(v));
}

struct type_case
{
	lg_type		t;
	const char *name;
	int			qk,
				bytes;
	std::vector<int> halves;	/* offsets of f16 scale fields in a block */
};

/* Random rows: random bytes, valid small half scales, or random floats. */
static void
fill_rows(const type_case &tc, uint8_t *w, int64_t n_rows, int64_t k)
{
	size_t		row = (size_t) (k / tc.qk) * tc.bytes;

	for (size_t i = 0; i < row * n_rows; i++)
		w[i] = (uint8_t) next_u32();
	if (tc.t == LG_TYPE_F32)
		for (size_t i = 0; i < row * n_rows; i += 4)
		{
			float		f = next_f();

			memcpy(w + i, &f, 4);
		}
	else if (tc.t == LG_TYPE_F16 || tc.t == LG_TYPE_BF16)
		for (size_t i = 0; i < row * n_rows; i += 2)
		{
			uint16_t	h = tc.t == LG_TYPE_F16 ? lg_f32_to_f16(next_f()) : lg_f32_to_bf16(next_f());

			memcpy(w + i, &h, 2);
		}
	else
		for (size_t b = 0; b < row * n_rows / tc.bytes; b++)
			for (int off : tc.halves)
			{
				uint16_t	h = lg_f32_to_f16(next_f() * 0.05f);

				memcpy(w + b * tc.bytes + off, &h, 2);
			}
}

/* y = x·wᵀ on the device path for n rows (x_off floats into an aligned buffer) vs a double reference. */
static void
check_matmul(const type_case &tc, int64_t k, int64_t m, int64_t n, int x_off, bool blas = false)
{
	size_t		row = (size_t) (k / tc.qk) * tc.bytes;
	uint8_t    *w = alloc_bytes(row * m);
	float	   *xb = (float *) alloc_bytes(sizeof(float) * (n * k + 4));
	float	   *x = xb + x_off;
	float	   *y = (float *) alloc_bytes(sizeof(float) * n * m);
	std::vector<float> deq(k);
	std::vector<double> ref(n * m, 0.0);
	double		amax = 0.0,
				emax = 0.0;
	lg_gpu_status st;

	fill_rows(tc, w, m, k);
	for (int64_t i = 0; i < n * k; i++)
		x[i] = next_f();
	for (int64_t r = 0; r < m; r++)
	{
		lg_dequantize_row(tc.t, w + r * row, deq.data(), k);
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < k; i++)
				ref[j * m + r] += blas && tc.t != LG_TYPE_F32 ?
					(double) blas_round(deq[i], tc.t) * blas_round(x[j * k + i], tc.t) :
					(double) deq[i] * x[j * k + i];
	}
	for (int64_t i = 0; i < n * m; i++)
		y[i] = NAN;
	if (blas)
	{
		size_t		sb = lg_gpu_matmul_scratch_bytes(tc.t, k, m, n);
		uint8_t    *scratch = sb ? alloc_bytes(sb) : NULL;

		CHECK(tc.t == LG_TYPE_F32 ? sb == 0 : sb >= (size_t) n * k * 2, "%s scratch %zu bytes", tc.name, sb);
		st = lg_gpu_matmul(NULL, blas_handle, y, w, tc.t, k, m, x, n, scratch, sb);
		free(scratch);
	}
	else
		st = lg_gpu_matmul(NULL, NULL, y, w, tc.t, k, m, x, n, NULL, 0);
	CHECK(st == LG_GPU_OK, "%s matmul k %lld m %lld n %lld: status %d (%s)", tc.name, (long long) k,
		  (long long) m, (long long) n, (int) st, last_error);
	for (int64_t i = 0; i < n * m; i++)
	{
		amax = fmax(amax, fabs(ref[i]));
		emax = fmax(emax, std::isnan(y[i]) ? INFINITY : fabs(y[i] - ref[i]));
	}
	CHECK(emax <= 1e-5 * amax, "%s matmul%s k %lld m %lld n %lld x+%d: error %.3g of max %.3g", tc.name,
		  blas ? " (cuBLAS)" : "", (long long) k, (long long) m, (long long) n, x_off, emax, amax);
	free(w);
	free(xb);
	free(y);
}

/* lg_gpu_matmul_half: x given in the half type the weights want, vs a reference on those halves. */
static void
check_matmul_half(const type_case &tc, int64_t k, int64_t m, int64_t n, bool blas = false)
{
	size_t		row = (size_t) (k / tc.qk) * tc.bytes;
	lg_type		xt = lg_gpu_matmul_half_type(tc.t);
	uint8_t    *w = alloc_bytes(row * m);
	uint16_t   *xh = (uint16_t *) alloc_bytes(2 * n * k);
	float	   *y = (float *) alloc_bytes(sizeof(float) * n * m);
	std::vector<float> deq(k);
	std::vector<double> ref(n * m, 0.0);
	double		amax = 0.0,
				emax = 0.0;
	lg_gpu_status st;

	CHECK(xt == (tc.t == LG_TYPE_BF16 ? LG_TYPE_BF16 : LG_TYPE_F16), "%s half type", tc.name);
	fill_rows(tc, w, m, k);
	for (int64_t i = 0; i < n * k; i++)
		xh[i] = xt == LG_TYPE_BF16 ? lg_f32_to_bf16(next_f()) : lg_f32_to_f16(next_f());
	for (int64_t r = 0; r < m; r++)
	{
		lg_dequantize_row(tc.t, w + r * row, deq.data(), k);
		for (int64_t j = 0; j < n; j++)
			for (int64_t i = 0; i < k; i++)
				ref[j * m + r] += (double) (blas && tc.t != LG_TYPE_BF16 && tc.t != LG_TYPE_F32 ? blas_round(deq[i], LG_TYPE_F16) : deq[i]) *
					(xt == LG_TYPE_BF16 ? lg_bf16_to_f32(xh[j * k + i]) : lg_f16_to_f32(xh[j * k + i]));
	}
	if (blas)
	{
		size_t		sb = lg_gpu_matmul_scratch_bytes(tc.t, k, m, n);
		uint8_t    *scratch = sb ? alloc_bytes(sb) : NULL;

		st = lg_gpu_matmul_half(NULL, blas_handle, y, w, tc.t, k, m, xh, xt, n, scratch, sb);
		free(scratch);
	}
	else
		st = lg_gpu_matmul_half(NULL, NULL, y, w, tc.t, k, m, xh, xt, n, NULL, 0);
	CHECK(st == LG_GPU_OK, "%s matmul_half n %lld: status %d (%s)", tc.name, (long long) n, (int) st, last_error);
	for (int64_t i = 0; i < n * m; i++)
	{
		amax = fmax(amax, fabs(ref[i]));
		emax = fmax(emax, std::isnan(y[i]) ? INFINITY : fabs(y[i] - ref[i]));
	}
	CHECK(emax <= 1e-5 * amax, "%s matmul_half%s k %lld m %lld n %lld: error %.3g of max %.3g", tc.name,
		  blas ? " (cuBLAS)" : "", (long long) k, (long long) m, (long long) n, emax, amax);
	st = lg_gpu_matmul_half(NULL, NULL, y, w, tc.t, k, m, xh, xt == LG_TYPE_F16 ? LG_TYPE_BF16 : LG_TYPE_F16, n, NULL, 0);
	CHECK(st == LG_GPU_ERR_ARG, "%s matmul_half with the other half type: %d", tc.name, (int) st);
	free(w);
	free(xh);
	free(y);
}

/* get_rows bit for bit, an out-of-range id giving zeros; dequantize_f16 bit for bit. */
static void
check_rows(const type_case &tc, int64_t k)
{
	const int64_t n_rows = 5;
	size_t		row = (size_t) (k / tc.qk) * tc.bytes;
	uint8_t    *w = alloc_bytes(row * n_rows);
	int32_t		ids[6] = {3, 0, 4, -1, 5, 3};
	float	   *y = (float *) alloc_bytes(sizeof(float) * 6 * k);
	uint16_t   *h = (uint16_t *) alloc_bytes(2 * n_rows * k);
	std::vector<float> deq(n_rows * k);
	int			bad = 0;

	fill_rows(tc, w, n_rows, k);
	lg_dequantize_row(tc.t, w, deq.data(), n_rows * k);
	CHECK(lg_gpu_get_rows(NULL, y, w, tc.t, k, n_rows, ids, 6) == LG_GPU_OK, "%s get_rows: %s", tc.name, last_error);
	for (int i = 0; i < 6; i++)
		for (int64_t c = 0; c < k; c++)
		{
			float		want = ids[i] >= 0 && ids[i] < n_rows ? deq[ids[i] * k + c] : 0.0f;

			bad += memcmp(&y[i * k + c], &want, 4) != 0;
		}
	CHECK(bad == 0, "%s get_rows: %d values differ from the CPU's", tc.name, bad);
	bad = 0;
	CHECK(lg_gpu_dequantize_f16(NULL, h, w, tc.t, k, n_rows) == LG_GPU_OK, "%s dequantize_f16: %s", tc.name, last_error);
	for (int64_t i = 0; i < n_rows * k; i++)
		bad += h[i] != lg_f32_to_f16(deq[i]);
	CHECK(bad == 0, "%s dequantize_f16: %d values differ", tc.name, bad);
	free(w);
	free(y);
	free(h);
}

/* Bad arguments get ERR_ARG with a message, before any launch. */
static void
check_args(void)
{
	float		f[64];
	uint8_t		w[256];
	int32_t		id = 0;
	lg_gpu_blas b = (lg_gpu_blas) 1;

	CHECK(lg_gpu_type_supported(LG_TYPE_Q4_K) && lg_gpu_type_supported(LG_TYPE_BF16), "types supported");
	CHECK(!lg_gpu_type_supported(LG_TYPE_Q8_K) && !lg_gpu_type_supported(LG_TYPE_I32) &&
		  !lg_gpu_type_supported((lg_type) 99), "types not supported");
	CHECK(lg_gpu_matmul(NULL, NULL, f, w, LG_TYPE_Q8_K, 256, 1, f, 1, NULL, 0) == LG_GPU_ERR_ARG, "q8_K weights");
	CHECK(lg_gpu_matmul(NULL, NULL, f, w, LG_TYPE_Q4_0, 48, 1, f, 1, NULL, 0) == LG_GPU_ERR_ARG &&
		  strstr(last_error, "multiple of q4_0's block size 32"), "k not a multiple: %s", last_error);
	CHECK(lg_gpu_matmul(NULL, NULL, f, w, LG_TYPE_F16, 8, 0, f, 1, NULL, 0) == LG_GPU_ERR_ARG, "m 0");
	CHECK(lg_gpu_matmul(NULL, NULL, f, w, LG_TYPE_F16, 8, 1, f, -1, NULL, 0) == LG_GPU_ERR_ARG, "n < 0");
	CHECK(lg_gpu_matmul(NULL, NULL, f, w, LG_TYPE_F16, 8, 1, NULL, 1, NULL, 0) == LG_GPU_ERR_ARG &&
		  strstr(last_error, "activations"), "NULL x: %s", last_error);
	CHECK(lg_gpu_matmul(NULL, NULL, f, w + 1, LG_TYPE_Q8_0, 32, 1, f, 1, NULL, 0) == LG_GPU_ERR_ARG &&
		  strstr(last_error, "misaligned weights"), "odd weights: %s", last_error);
	CHECK(lg_gpu_matmul(NULL, NULL, NULL, NULL, LG_TYPE_F16, 8, 1, NULL, 0, NULL, 0) == LG_GPU_OK, "n 0 is a no-op");
	/* with cuBLAS: the activations as F16, then one chunk of F16 weights (16 MiB: 2048 rows of 4096) */
	CHECK(lg_gpu_matmul_scratch_bytes(LG_TYPE_Q4_0, 4096, 4096, 512) == (size_t) 512 * 4096 * 2 + (size_t) 2048 * 4096 * 2,
		  "q4_0 scratch with BLAS: %zu", lg_gpu_matmul_scratch_bytes(LG_TYPE_Q4_0, 4096, 4096, 512));
	CHECK(lg_gpu_matmul_scratch_bytes(LG_TYPE_Q4_0, 4096, 4096, 8) == 0, "no scratch below cuBLAS's n");
	CHECK(lg_gpu_get_rows(NULL, f, w, LG_TYPE_Q4_K, 128, 1, &id, 1) == LG_GPU_ERR_ARG, "get_rows d 128 of q4_K");
	CHECK(lg_gpu_get_rows(NULL, f, w, LG_TYPE_Q8_K, 256, 1, &id, 1) == LG_GPU_ERR_ARG, "get_rows q8_K");
	CHECK(lg_gpu_get_rows(NULL, f, w, LG_TYPE_F32, 4, 1, NULL, 1) == LG_GPU_ERR_ARG, "get_rows NULL ids");
	CHECK(lg_gpu_dequantize_f16(NULL, f, w, LG_TYPE_Q4_0, 32, -1) == LG_GPU_ERR_ARG, "dequantize negative rows");
	CHECK(lg_gpu_dequantize_f16(NULL, f, w, LG_TYPE_Q6_K, 32, 1) == LG_GPU_ERR_ARG, "dequantize k 32 of q6_K");
	CHECK(lg_gpu_blas_create(&b, NULL) == LG_GPU_OK && b != NULL, "BLAS: a handle");
	lg_gpu_blas_destroy(b);
}

int
main(void)
{
	std::vector<type_case> cases = {
		{LG_TYPE_F32, "f32", 1, 4, {}},
		{LG_TYPE_F16, "f16", 1, 2, {}},
		{LG_TYPE_BF16, "bf16", 1, 2, {}},
		{LG_TYPE_Q4_0, "q4_0", 32, 18, {0}},
		{LG_TYPE_Q4_1, "q4_1", 32, 20, {0, 2}},
		{LG_TYPE_Q5_0, "q5_0", 32, 22, {0}},
		{LG_TYPE_Q5_1, "q5_1", 32, 24, {0, 2}},
		{LG_TYPE_Q8_0, "q8_0", 32, 34, {0}},
		{LG_TYPE_Q2_K, "q2_K", 256, 84, {80, 82}},
		{LG_TYPE_Q3_K, "q3_K", 256, 110, {108}},
		{LG_TYPE_Q4_K, "q4_K", 256, 144, {0, 2}},
		{LG_TYPE_Q5_K, "q5_K", 256, 176, {0, 2}},
		{LG_TYPE_Q6_K, "q6_K", 256, 210, {208}},
	};

	if (lg_gpu_blas_create(&blas_handle, NULL) != LG_GPU_OK || blas_handle == NULL)
	{
		printf("FAIL lg_gpu_blas_create: %s\n", lg_gpu_last_error());
		return 1;
	}
	check_args();
	for (const type_case &tc : cases)
	{
		int			before = failures;

		/* more than one warp step: 17 blocks of 32 (16 a step), 3 super-blocks (2 a step), 33 chunks of 8 */
		int64_t		k = tc.qk == 32 ? 32 * 17 : tc.qk == 256 ? 256 * 3 : 264;

		/* 9 and 20: groups of 8 rows through the matrix-vector kernels; 40: the GEMM */
		for (int64_t n : {1, 2, 3, 8, 9, 20, 40})
			check_matmul(tc, k, 19, n, 0);
		check_matmul(tc, k, 19, 3, 1);	/* x not 16-byte aligned: the scalar kernel */
		/* k long enough that the 4 warps of a block split it (and one step more: tails) */
		k = tc.qk == 32 ? 32 * 65 : tc.qk == 256 ? 256 * 9 : 8 * 129;
		check_matmul(tc, k, 19, 1, 0);
		check_matmul(tc, k, 19, 5, 0);
		if (tc.qk == 1)
		{
			check_matmul(tc, 37, 19, 2, 0);	/* k % 8 != 0: scalar kernel, GEMM k tail */
			check_matmul(tc, 37, 19, 11, 0);
		}
		check_matmul_half(tc, k, 19, 3);
		check_matmul_half(tc, k, 19, 40);
		/* cuBLAS (n >= 32): the row-major -> column-major mapping of blas.cu, m odd */
		check_matmul(tc, k, 19, 40, 0, true);
		check_matmul(tc, k, 67, 33, 0, true);
		check_matmul_half(tc, k, 19, 40, true);
		check_rows(tc, k);
		printf("%s %s\n", failures == before ? "ok  " : "FAIL", tc.name);
	}
	lg_gpu_blas_destroy(blas_handle);
	if (failures)
		printf("%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
