/*
 * emu.cc — runs kernels built by tests/gpu_emu on the host: blocks one
 * after another, a block's threads as fibers on this thread (started with
 * makecontext, switched with _setjmp/_longjmp: no system call per switch),
 * switched at barriers.  __syncthreads waits for every live thread of the
 * block, a shuffle for every live lane of its 32-lane logical warp; a
 * round in which no fiber arrives anywhere is a deadlock (a barrier or a
 * shuffle some threads skip) and aborts the test.  The scheduler runs one
 * warp as far as it goes (to a __syncthreads) before the next, forward in
 * even blocks and backward in odd ones, so a missing __syncthreads lets a
 * warp overrun its neighbours' data and shows as a wrong result.  Launch shapes and
 * dynamic shared memory are checked as CUDA does (48 KB unless
 * cudaFuncSetAttribute raised it), and dynamic shared memory starts as NaN
 * so reading what no thread wrote shows.
 */
#include "gpu_compat.cuh"

#include <map>
#include <setjmp.h>
#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <vector>

dim3		threadIdx, blockIdx, blockDim, gridDim;
void	   *lg_emu_dyn_smem;

/*
 * Nonzero: launch at most lg_emu_grid_cap blocks along x (gridDim.x says
 * so).  For grid-stride kernels only: fewer blocks
 * still cover everything and exercise the stride (test_elem_emu sets 3).
 */
unsigned	lg_emu_grid_cap;
static void *dyn_alloc;

#define EMU_MAX_THREADS 1024
#define EMU_STACK (128 * 1024)

typedef struct emu_bar
{
	int			expected;
	int			count;
	long		gen;
} emu_bar;

typedef struct emu_fiber
{
	ucontext_t	ctx;			/* for the start */
	jmp_buf		jb;				/* where it waits */
	bool		started;
	bool		done;
	bool		at_block;		/* waiting at __syncthreads for generation block_gen */
	long		block_gen;
	char	   *stack;
} emu_fiber;

static emu_fiber fibers[EMU_MAX_THREADS];
static jmp_buf sched_jb;
static int	cur;
static unsigned n_threads;
static emu_bar block_bar;
static emu_bar warp_bar[EMU_MAX_THREADS / 32];
static float xch[EMU_MAX_THREADS];
static int	xchi[EMU_MAX_THREADS];
static long progress;
static const std::function<void()> *emu_run;
static std::map<const void *, int> smem_limit;

/* Back to the scheduler; it resumes us in a later round. */
static void
emu_yield(void)
{
	if (!_setjmp(fibers[cur].jb))
		_longjmp(sched_jb, 1);
}

/* Arrive at b and wait until all its live threads have. */
static void
emu_wait(emu_bar *b)
{
	long		g = b->gen;

	progress++;
	if (++b->count >= b->expected)
	{
		b->count = 0;
		b->gen++;
		return;
	}
	if (b == &block_bar)
	{
		fibers[cur].at_block = true;
		fibers[cur].block_gen = g;
	}
	while (b->gen == g)
		emu_yield();
	fibers[cur].at_block = false;
}

/* A thread that returned no longer counts at b. */
static void
emu_drop(emu_bar *b)
{
	b->expected--;
	if (b->count > 0 && b->count >= b->expected)
	{
		b->count = 0;
		b->gen++;
	}
}

static void
emu_fiber_main(void)
{
	(*emu_run) ();
	fibers[cur].done = true;
	progress++;
	emu_drop(&block_bar);
	emu_drop(&warp_bar[threadIdx.x / 32]);
	_longjmp(sched_jb, 1);
}

void
__syncthreads(void)
{
	emu_wait(&block_bar);
}

float
lg_shfl_xor(float v, int lane_mask)
{
	const unsigned t = threadIdx.x;
	const unsigned o = t ^ (unsigned) lane_mask;
	float		r;

	if (lane_mask < 0 || lane_mask >= 32 || o >= n_threads)
	{
		fprintf(stderr, "emu: shuffle xor %d from thread %u leaves the block\n", lane_mask, t);
		abort();
	}
	xch[t] = v;
	emu_wait(&warp_bar[t / 32]);
	r = xch[o];
	emu_wait(&warp_bar[t / 32]);
	return r;
}

int
lg_shfl_xor_int(int v, int lane_mask)
{
	const unsigned t = threadIdx.x;
	int			r;

	xchi[t] = v;
	emu_wait(&warp_bar[t / 32]);
	r = xchi[t ^ (unsigned) lane_mask];
	emu_wait(&warp_bar[t / 32]);
	return r;
}

float
lg_shfl(float v, int src_lane)
{
	const unsigned t = threadIdx.x;
	float		r;

	xch[t] = v;
	emu_wait(&warp_bar[t / 32]);
	r = xch[t / 32 * 32 + (unsigned) src_lane];
	emu_wait(&warp_bar[t / 32]);
	return r;
}

void
__syncwarp(void)
{
	emu_wait(&warp_bar[threadIdx.x / 32]);
}

void
lg_emu_wmma_check(const void *p, unsigned ldm, size_t esz)
{
	if ((uintptr_t) p % 32 != 0 || (ldm * esz) % 16 != 0)
	{
		fprintf(stderr, "emu: wmma pointer %p (must be 32-byte aligned) or stride %u x %zu bytes (a multiple of 16)\n",
				p, ldm, esz);
		abort();
	}
}

cudaError_t
cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value)
{
	if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > 227 * 1024)
		return cudaErrorInvalidValue;
	smem_limit[func] = value;
	return cudaSuccess;
}

/* Run one block to the end (all its fibers done). */
static void
emu_block(void)
{
	for (unsigned i = 0; i < n_threads; i++)
	{
		emu_fiber  *f = &fibers[i];

		if (f->stack == NULL)
			f->stack = (char *) malloc(EMU_STACK);
		getcontext(&f->ctx);
		f->ctx.uc_stack.ss_sp = f->stack;
		f->ctx.uc_stack.ss_size = EMU_STACK;
		f->ctx.uc_link = NULL;
		makecontext(&f->ctx, emu_fiber_main, 0);
		f->started = false;
		f->done = false;
		f->at_block = false;
	}
	block_bar = emu_bar{(int) n_threads, 0, 0};
	for (unsigned w = 0; w * 32 < n_threads; w++)
		warp_bar[w] = emu_bar{(int) (n_threads - w * 32 < 32 ? n_threads - w * 32 : 32), 0, 0};
	const unsigned n_warps = (n_threads + 31) / 32;
	const bool	backward = (blockIdx.x + blockIdx.y + blockIdx.z) % 2 == 1;

	for (;;)
	{
		long		before = progress;
		bool		live = false;

		for (unsigned wi = 0; wi < n_warps; wi++)
		{
			const unsigned w = backward ? n_warps - 1 - wi : wi;
			const unsigned end = (w + 1) * 32 < n_threads ? (w + 1) * 32 : n_threads;

			/* this warp until each lane is done or held at __syncthreads */
			for (;;)
			{
				long		wbefore = progress;
				bool		ran = false;

				for (unsigned i = w * 32; i < end; i++)
				{
					emu_fiber  *f = &fibers[i];

					if (f->done || (f->at_block && f->block_gen == block_bar.gen))
						continue;
					ran = true;
					cur = (int) i;
					threadIdx = dim3(i, 0, 0);
					if (!_setjmp(sched_jb))
					{
						if (!f->started)
						{
							f->started = true;
							setcontext(&f->ctx);
						}
						_longjmp(f->jb, 1);
					}
				}
				if (!ran || progress == wbefore)
					break;
			}
		}
		for (unsigned i = 0; i < n_threads; i++)
			live = live || !fibers[i].done;
		if (!live)
			return;
		if (progress == before)
		{
			fprintf(stderr, "emu: deadlock in block (%u, %u, %u): threads wait at barriers others skip\n",
					blockIdx.x, blockIdx.y, blockIdx.z);
			abort();
		}
	}
}

/*
 * Run one launch now (emu_runtime.cc decides when): false for a shape CUDA
 * refuses.  One launch at a time: the engine's threads share the fibers.
 */
bool
lg_emu_exec(const void *func, dim3 grid, dim3 block, size_t smem, const std::function<void()> &run)
{
	static std::recursive_mutex mu;
	std::lock_guard<std::recursive_mutex> lock(mu);
	std::map<const void *, int>::iterator it = smem_limit.find(func);
	const size_t limit = it == smem_limit.end() ? 48 * 1024 : (size_t) it->second;

	if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
		block.y != 1 || block.z != 1 || block.x == 0 || block.x > EMU_MAX_THREADS || smem > limit)
	{
		fprintf(stderr, "emu: bad launch grid (%u, %u, %u) block %u smem %zu (limit %zu)\n",
				grid.x, grid.y, grid.z, block.x, smem, limit);
		return false;
	}
	/* only 16-byte alignment is promised: start at 16 mod 32 to catch code relying on more */
	free(dyn_alloc);
	dyn_alloc = aligned_alloc(64, (smem + 16 + 63) / 64 * 64);
	lg_emu_dyn_smem = (char *) dyn_alloc + 16;
	gridDim = grid;
	if (lg_emu_grid_cap > 0 && grid.x > lg_emu_grid_cap)
		gridDim.x = lg_emu_grid_cap;
	blockDim = block;
	n_threads = block.x;
	emu_run = &run;
	for (unsigned z = 0; z < grid.z; z++)
		for (unsigned y = 0; y < grid.y; y++)
			for (unsigned x = 0; x < gridDim.x; x++)
			{
				blockIdx = dim3(x, y, z);
				for (size_t i = 0; i < smem / sizeof(float); i++)
					((float *) lg_emu_dyn_smem)[i] = NAN;
				emu_block();
			}
	return true;
}
