/*
 * backend_cpu.c — the CPU backend: its function table, and the choice of
 * kernels, made once from what the processor supports.
 *
 * Like pgvector's bitutils.c, the SIMD level is detected at start-up and
 * the kernels are reached through function pointers, so one binary runs on
 * any x86-64 and uses AVX-512 or AVX2 where present.  LLAMAGPU_CPU_SIMD
 * (avx512, avx2, scalar) caps the level, for benchmarks and to test the
 * lower levels on a bigger machine.
 *
 * A backend owns its thread pool and scratch buffers, so its operations
 * must not be called from two threads at once; use one backend per
 * concurrent user.
 */
#include "backend_cpu_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static pthread_once_t lg_f16_table_once = PTHREAD_ONCE_INIT;

typedef enum lg_simd_level
{
	LG_SIMD_SCALAR = 0,
	LG_SIMD_AVX2 = 1,
	LG_SIMD_AVX512 = 2,
} lg_simd_level;

/* Best level this CPU (and OS) supports, ignoring the environment. */
static lg_simd_level
lg_cpu_detect(bool *has_bf16)
{
	*has_bf16 = false;
#ifndef LG_NO_X86_SIMD
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
		__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("fma") &&
		__builtin_cpu_supports("f16c"))
	{
		*has_bf16 = __builtin_cpu_supports("avx512bf16");
		return LG_SIMD_AVX512;
	}
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		__builtin_cpu_supports("f16c"))
		return LG_SIMD_AVX2;
#endif
	return LG_SIMD_SCALAR;
}

/* Parse a level name; -1 if it is none. */
static int
lg_simd_parse(const char *s)
{
	if (s == NULL || *s == '\0')
		return -1;
	if (strcasecmp(s, "avx512") == 0)
		return LG_SIMD_AVX512;
	if (strcasecmp(s, "avx2") == 0)
		return LG_SIMD_AVX2;
	if (strcasecmp(s, "scalar") == 0)
		return LG_SIMD_SCALAR;
	return -1;
}

/* The level the backend uses: detected, capped by LLAMAGPU_CPU_SIMD. */
static lg_simd_level
lg_cpu_level(bool *has_bf16)
{
	lg_simd_level best = lg_cpu_detect(has_bf16);
	int			cap = lg_simd_parse(getenv("LLAMAGPU_CPU_SIMD"));

	if (cap >= 0 && cap < (int) best)
		best = (lg_simd_level) cap;
	return best;
}

static const char *const lg_simd_names[] = {"scalar", "avx2", "avx512"};

/* Name of the SIMD level the CPU backend picks. */
const char *
lg_cpu_simd_level(void)
{
	bool		bf16;

	return lg_simd_names[lg_cpu_level(&bf16)];
}

/* Fill the kernel table for a level. */
static void
lg_cpu_kernels_for(lg_cpu_kernels *k, lg_simd_level level, bool has_bf16)
{
	memset(k, 0, sizeof(*k));
	lg_cpu_kernels_scalar(k);
#ifndef LG_NO_X86_SIMD
	if (level >= LG_SIMD_AVX2)
	{
		lg_cpu_kernels_avx2(k);
		lg_cpu_kernels_attn_avx2(k);
	}
	if (level >= LG_SIMD_AVX512)
	{
		lg_cpu_kernels_avx512(k, has_bf16);
		lg_cpu_kernels_mv_avx512(k);
		lg_cpu_kernels_gemm_avx512(k);
		lg_cpu_kernels_attn_avx512(k);
		lg_cpu_kernels_mvk_avx512(k);
	}
#endif
}

/* lg_backend.free */
static void
lg_cpu_free(lg_backend *be)
{
	lg_cpu_ctx *ctx;

	if (be == NULL)
		return;
	ctx = lg_cpu_ctx_of(be);
	if (ctx != NULL)
	{
		lg_threadpool_free(ctx->tp);
		free(ctx->wbuf);
		free(ctx->ubuf);
		free(ctx->gbuf);
		free(ctx->attn_ws);
		free(ctx->attn_part);
		free(ctx->attn_seqs);
		free(ctx);
	}
	free(be);
}

/*
 * Build a CPU backend with the kernels of `level` ("avx512", "avx2",
 * "scalar", "reference"; NULL picks the best).  A level the CPU lacks is an
 * error.  Tests use this to check every level the machine has.
 */
lg_backend *
lg_backend_cpu_new_level(int n_threads, const char *level, lg_error *err)
{
	lg_backend *be;
	lg_cpu_ctx *ctx;
	bool		has_bf16;
	lg_simd_level best = lg_cpu_level(&has_bf16);
	lg_simd_level want = best;
	bool		reference = false;

	if (level != NULL && strcasecmp(level, "reference") == 0)
		reference = true;
	else if (level != NULL)
	{
		int			l = lg_simd_parse(level);

		if (l < 0)
		{
			lg_error_set(err, LG_ERR_ARG, "unknown SIMD level \"%s\"", level);
			return NULL;
		}
		if (l > (int) best)
		{
			lg_error_set(err, LG_ERR_UNSUPPORTED,
						 "this CPU does not support SIMD level \"%s\" (best is \"%s\")",
						 level, lg_simd_names[best]);
			return NULL;
		}
		want = (lg_simd_level) l;
	}

	pthread_once(&lg_f16_table_once, lg_f16_table_init);

	be = (lg_backend *) calloc(1, sizeof(lg_backend));
	ctx = (lg_cpu_ctx *) calloc(1, sizeof(lg_cpu_ctx));
	if (be == NULL || ctx == NULL)
	{
		free(be);
		free(ctx);
		lg_error_set(err, LG_ERR_NOMEM, "out of memory creating the CPU backend");
		return NULL;
	}
	be->ctx = ctx;
	be->version = LG_BACKEND_VERSION;
	be->name = "cpu";
	be->free = lg_cpu_free;
	be->matmul = lg_cpu_matmul;
	be->get_rows = lg_cpu_get_rows;
	be->rmsnorm = lg_cpu_rmsnorm;
	be->rope = lg_cpu_rope;
	be->kv_store = lg_cpu_kv_store;
	be->kv_store_slots = lg_cpu_kv_store_slots;
	be->attention = lg_cpu_attention;
	be->attn_scratch_floats = lg_cpu_attn_scratch_floats;
	be->swiglu = lg_cpu_swiglu;
	be->add = lg_cpu_add;
	be->add_bias = lg_cpu_add_bias;
	be->layernorm = lg_cpu_layernorm;
	be->gelu = lg_cpu_gelu;
	be->gather_rows = lg_cpu_gather_rows;

	if (reference)
		lg_cpu_kernels_reference(&ctx->k);
	else
		lg_cpu_kernels_for(&ctx->k, want, has_bf16);

	ctx->tp = lg_threadpool_new(n_threads, err);
	if (ctx->tp == NULL)
	{
		lg_cpu_free(be);
		return NULL;
	}
	ctx->n_threads = lg_threadpool_size(ctx->tp);
	ctx->attn_ws = (float *) aligned_alloc(64, (size_t) ctx->n_threads * LG_ATTN_WS_BYTES);
	if (ctx->attn_ws == NULL)
	{
		lg_cpu_free(be);
		lg_error_set(err, LG_ERR_NOMEM, "out of memory creating the CPU backend");
		return NULL;
	}
	return be;
}

/* The CPU backend: the best kernels, or the scalar reference ones. */
lg_backend *
lg_backend_cpu_new(int n_threads, int reference, lg_error *err)
{
	return lg_backend_cpu_new_level(n_threads, reference ? "reference" : NULL, err);
}

/* Name of the kernels a CPU backend uses. */
const char *
lg_backend_cpu_kernels(lg_backend *be)
{
	return lg_cpu_ctx_of(be)->k.name;
}
