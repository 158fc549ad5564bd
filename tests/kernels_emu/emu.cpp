/*
 * emu.cpp — the runtime of cuda_emu.h: a block's threads as ucontext
 * fibers on one OS thread.  A round runs every fiber until it reaches a
 * barrier or returns; when a round ends every live fiber waits at the same
 * barrier, so the next round is the code after it: __syncthreads exactly.
 * A fiber starts through makecontext/setcontext once; switches after that
 * are _setjmp/_longjmp, which (unlike swapcontext) make no system call.
 */
#include "cuda_emu.h"

#include "common.cuh"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <setjmp.h>
#include <ucontext.h>

/* What runtime.cu provides on a real build (C++ linkage, as common.cuh declares it). */
static char last_error[512];

lg_gpu_status
lg_gpu_set_error(lg_gpu_status st, const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return st;
}

extern "C" const char *
lg_gpu_last_error(void)
{
	return last_error;
}

lg_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
char		lg_emu_dyn_shmem[64 * 1024] __attribute__((aligned(16)));
uint64_t	lg_emu_xbuf[1024];

#define LG_EMU_STACK (256 * 1024)

typedef struct lg_fiber
{
	ucontext_t	ctx;			/* for the start */
	jmp_buf		jb;				/* where it waits at a barrier */
	char	   *stack;
	int			started;
	int			done;
} lg_fiber;

static jmp_buf sched_jb;
static lg_fiber *fibers;
static unsigned int cur;
static void (*cur_fn) (void *);
static void *cur_arg;
static unsigned int n_alive_at_barrier;

/* A fiber's body: the kernel for its thread index, then back to the scheduler. */
static void
fiber_main(void)
{
	cur_fn(cur_arg);
	fibers[cur].done = 1;
	_longjmp(sched_jb, 1);
}

void
__syncthreads(void)
{
	n_alive_at_barrier++;
	if (!_setjmp(fibers[cur].jb))
		_longjmp(sched_jb, 1);
}

void
lg_emu_run(unsigned int grid, unsigned int block, void (*fn) (void *), void *arg)
{
	if (block == 0 || block > 1024 || grid == 0)
	{
		fprintf(stderr, "emu: bad launch grid %u block %u\n", grid, block);
		abort();
	}
	fibers = (lg_fiber *) calloc(block, sizeof(lg_fiber));
	for (unsigned int t = 0; t < block; t++)
		fibers[t].stack = (char *) malloc(LG_EMU_STACK);
	cur_fn = fn;
	cur_arg = arg;
	gridDim.x = grid;
	blockDim.x = block;
	gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;
	for (unsigned int b = 0; b < grid; b++)
	{
		unsigned int n_done = 0;

		blockIdx.x = b;
		for (unsigned int t = 0; t < block; t++)
		{
			fibers[t].done = 0;
			fibers[t].started = 0;
			getcontext(&fibers[t].ctx);
			fibers[t].ctx.uc_stack.ss_sp = fibers[t].stack;
			fibers[t].ctx.uc_stack.ss_size = LG_EMU_STACK;
			fibers[t].ctx.uc_link = NULL;
			makecontext(&fibers[t].ctx, fiber_main, 0);
		}
		while (n_done < block)
		{
			n_alive_at_barrier = 0;
			n_done = 0;
			for (unsigned int t = 0; t < block; t++)
			{
				if (fibers[t].done)
				{
					n_done++;
					continue;
				}
				cur = t;
				threadIdx.x = t;
				threadIdx.y = threadIdx.z = 0;
				if (!_setjmp(sched_jb))
				{
					if (!fibers[t].started)
					{
						fibers[t].started = 1;
						setcontext(&fibers[t].ctx);
					}
					_longjmp(fibers[t].jb, 1);
				}
				if (fibers[t].done)
					n_done++;
			}
			/* a barrier some threads skipped (they returned) is a kernel bug on a GPU */
			if (n_done > 0 && n_alive_at_barrier > 0)
			{
				fprintf(stderr, "emu: %u threads returned while %u wait at a barrier\n",
						n_done, n_alive_at_barrier);
				abort();
			}
		}
	}
	for (unsigned int t = 0; t < block; t++)
		free(fibers[t].stack);
	free(fibers);
}
