/*
 * emu_runtime.cc — the CUDA runtime API subset kernels/runtime.cu, graph.cu
 * and blas.cu call, on the host, for the emulated build (tests/gpu_emu).
 *
 * One device, "emulated sm_90".  Device memory is host memory, tracked so
 * that copies, memsets and GEMMs must name live device allocations (and
 * filled with 0xff bytes, NaN as floats, so reading what nobody wrote shows).
 * A stream runs its work at once, in order (so synchronising is a no-op and
 * events read host time).  While a stream is captured, its launches, copies
 * and memsets are recorded as closures instead of run: a graph launch
 * replays them.  This checks that nothing the backend does while capturing
 * depends on the captured work having run, and that a graph holds kernel
 * arguments by value and host buffers by address, as CUDA's does.  What a
 * capture forbids (synchronising the stream, a synchronous copy, a copy
 * from pageable host memory) fails and invalidates it, as CUDA does.
 */
#include "gpu_compat.cuh"

#include <map>
#include <mutex>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vector>

bool		lg_emu_exec(const void *func, dim3 grid, dim3 block, size_t smem, const std::function<void()> &run);

#define EMU_TOTAL_MEM ((size_t) 16 << 30)	/* what the fake card reports */
#define EMU_FILL_MAX ((size_t) 64 << 20)	/* larger allocations are filled at their ends */

/* One recorded operation of a capture; func tells nodes apart for an update. */
struct emu_op
{
	const void *func;			/* the kernel, or a tag for copies and memsets */
	std::function<void()> run;
};

struct lg_emu_stream
{
	bool		capturing;
	bool		invalid;		/* a capture that something broke */
	std::vector<emu_op> ops;
};

struct lg_emu_event
{
	double		t;				/* host seconds at the record */
	bool		recorded;
};

struct lg_emu_graph
{
	std::vector<emu_op> ops;
};

struct lg_emu_graph_exec
{
	std::vector<emu_op> ops;
};

static std::recursive_mutex mu;
static std::map<uintptr_t, size_t> dev_allocs;	/* base -> bytes */
static std::map<uintptr_t, size_t> host_allocs; /* page-locked (cudaMallocHost) */
static size_t dev_used;
static int	last_error;		/* cudaError_t of the last failed call, until read */
static int	current_device;
static char tag_copy, tag_memset, tag_event, tag_gemm;

/* Remember e for cudaGetLastError and return it. */
static cudaError_t
fail(cudaError_t e)
{
	if (e != cudaSuccess)
		last_error = e;
	return e;
}

/* Host seconds (events). */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Is [p, p + n) inside one allocation of the map? */
static bool
in_map(const std::map<uintptr_t, size_t> &m, const void *p, size_t n)
{
	uintptr_t	a = (uintptr_t) p;
	std::map<uintptr_t, size_t>::const_iterator it = m.upper_bound(a);

	if (it == m.begin())
		return false;
	--it;
	return a >= it->first && a + n <= it->first + it->second;
}

/* Device memory check for the cuBLAS emulation and copies. */
bool
lg_emu_is_device(const void *p, size_t n)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	return in_map(dev_allocs, p, n);
}

/* Run op now, or record it when s is being captured. */
static void
submit(cudaStream_t s, const void *func, std::function<void()> run)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	if (s != NULL && s->capturing)
	{
		s->ops.push_back(emu_op{func, std::move(run)});
	}
	else
		run();
}

/* Is s being captured?  (the legacy stream never is) */
bool
lg_emu_capturing(cudaStream_t s)
{
	return s != NULL && s->capturing;
}

/* A failure that breaks s's capture, as CUDA invalidates one. */
static cudaError_t
break_capture(cudaStream_t s, const char *what)
{
	fprintf(stderr, "emu: %s while the stream is being captured\n", what);
	if (s != NULL)
		s->invalid = true;
	return fail(cudaErrorStreamCaptureUnsupported);
}

/* Kernels: checked now, run now or at the graph's launch. */
void
lg_emu_launch_fn(const void *func, dim3 grid, dim3 block, size_t smem, cudaStream_t st, std::function<void()> run)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0)
	{
		fprintf(stderr, "emu: bad launch grid (%u, %u, %u) block %u\n", grid.x, grid.y, grid.z, block.x);
		if (st != NULL && st->capturing)
			st->invalid = true;
		fail(cudaErrorInvalidConfiguration);
		return;
	}
	if (st != NULL && st->capturing)
	{
		st->ops.push_back(emu_op{func, [=]() {
			if (!lg_emu_exec(func, grid, block, smem, run))
				fail(cudaErrorInvalidConfiguration);
		}});
		return;
	}
	if (!lg_emu_exec(func, grid, block, smem, run))
		fail(cudaErrorInvalidConfiguration);
}

/* Called by emu_blas.cc: a GEMM as a node of s. */
void
lg_emu_submit(cudaStream_t s, std::function<void()> run)
{
	submit(s, &tag_gemm, std::move(run));
}

cudaError_t
cudaGetLastError(void)
{
	cudaError_t e = (cudaError_t) last_error;

	last_error = cudaSuccess;
	return e;
}

cudaError_t
cudaPeekAtLastError(void)
{
	return (cudaError_t) last_error;
}

const char *
cudaGetErrorString(cudaError_t e)
{
	switch (e)
	{
		case cudaSuccess: return "no error";
		case cudaErrorInvalidValue: return "invalid argument";
		case cudaErrorMemoryAllocation: return "out of memory";
		case cudaErrorInvalidConfiguration: return "invalid configuration argument";
		case cudaErrorInvalidDevice: return "invalid device ordinal";
		case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
		case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
		case cudaErrorGraphExecUpdateFailure: return "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update";
		case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
		default: return "unknown error";
	}
}

const char *
cudaGetErrorName(cudaError_t e)
{
	switch (e)
	{
		case cudaSuccess: return "cudaSuccess";
		case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
		case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
		case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
		case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
		case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
		case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
		case cudaErrorGraphExecUpdateFailure: return "cudaErrorGraphExecUpdateFailure";
		case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
		default: return "cudaErrorUnknown";
	}
}

cudaError_t
cudaGetDeviceCount(int *n)
{
	*n = 1;
	return cudaSuccess;
}

cudaError_t
cudaGetDeviceProperties(cudaDeviceProp *p, int device)
{
	if (device != 0)
		return fail(cudaErrorInvalidDevice);
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "emulated sm_90");
	p->totalGlobalMem = EMU_TOTAL_MEM;
	p->major = 9;
	p->minor = 0;
	p->multiProcessorCount = 4;
	p->sharedMemPerBlockOptin = 227 * 1024;
	return cudaSuccess;
}

cudaError_t
cudaSetDevice(int device)
{
	if (device != 0)
		return fail(cudaErrorInvalidDevice);
	current_device = device;
	return cudaSuccess;
}

cudaError_t
cudaGetDevice(int *device)
{
	*device = current_device;
	return cudaSuccess;
}

cudaError_t
cudaDeviceSynchronize(void)
{
	return cudaSuccess;
}

cudaError_t
cudaDriverGetVersion(int *v)
{
	*v = 13000;
	return cudaSuccess;
}

cudaError_t
cudaRuntimeGetVersion(int *v)
{
	*v = 13000;
	return cudaSuccess;
}

cudaError_t
cudaMemGetInfo(size_t *free_b, size_t *total_b)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	*total_b = EMU_TOTAL_MEM;
	*free_b = EMU_TOTAL_MEM - dev_used;
	return cudaSuccess;
}

cudaError_t
cudaMalloc(void **p, size_t bytes)
{
	std::lock_guard<std::recursive_mutex> lock(mu);
	void	   *m;

	*p = NULL;
	if (bytes > EMU_TOTAL_MEM - dev_used)
		return fail(cudaErrorMemoryAllocation);
	m = aligned_alloc(256, (bytes + 255) / 256 * 256);
	if (m == NULL)
		return fail(cudaErrorMemoryAllocation);
	/* cudaMalloc does not clear: NaN bytes show reads of what nobody wrote */
	if (bytes <= EMU_FILL_MAX)
		memset(m, 0xff, bytes);
	else
	{
		memset(m, 0xff, EMU_FILL_MAX / 2);
		memset((char *) m + bytes - EMU_FILL_MAX / 2, 0xff, EMU_FILL_MAX / 2);
	}
	dev_allocs[(uintptr_t) m] = bytes;
	dev_used += bytes;
	*p = m;
	return cudaSuccess;
}

cudaError_t
cudaFree(void *p)
{
	std::lock_guard<std::recursive_mutex> lock(mu);
	std::map<uintptr_t, size_t>::iterator it;

	if (p == NULL)
		return cudaSuccess;
	it = dev_allocs.find((uintptr_t) p);
	if (it == dev_allocs.end())
	{
		fprintf(stderr, "emu: cudaFree(%p): not a device allocation\n", p);
		return fail(cudaErrorInvalidValue);
	}
	dev_used -= it->second;
	dev_allocs.erase(it);
	free(p);
	return cudaSuccess;
}

cudaError_t
cudaMallocHost(void **p, size_t bytes)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	*p = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
	if (*p == NULL)
		return fail(cudaErrorMemoryAllocation);
	host_allocs[(uintptr_t) *p] = bytes;
	return cudaSuccess;
}

cudaError_t
cudaFreeHost(void *p)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	if (p == NULL)
		return cudaSuccess;
	if (host_allocs.erase((uintptr_t) p) != 1)
	{
		fprintf(stderr, "emu: cudaFreeHost(%p): not from cudaMallocHost\n", p);
		return fail(cudaErrorInvalidValue);
	}
	free(p);
	return cudaSuccess;
}

/* A copy's pointers must match its direction: device ones inside live allocations. */
static bool
copy_ok(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
	bool		dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
	bool		sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;

	if ((dd && !in_map(dev_allocs, dst, bytes)) || (!dd && in_map(dev_allocs, dst, 1)) ||
		(sd && !in_map(dev_allocs, src, bytes)) || (!sd && in_map(dev_allocs, src, 1)))
	{
		fprintf(stderr, "emu: cudaMemcpy kind %d of %zu bytes %p -> %p: a pointer is not where the kind says\n",
				(int) kind, bytes, src, dst);
		return false;
	}
	return true;
}

cudaError_t
cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	if (!copy_ok(dst, src, bytes, kind))
		return fail(cudaErrorInvalidValue);
	memmove(dst, src, bytes);
	return cudaSuccess;
}

cudaError_t
cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	if (!copy_ok(dst, src, bytes, kind))
	{
		if (s != NULL && s->capturing)
			s->invalid = true;
		return fail(cudaErrorInvalidValue);
	}
	if (s != NULL && s->capturing &&
		((kind == cudaMemcpyHostToDevice && !in_map(host_allocs, src, bytes)) ||
		 (kind == cudaMemcpyDeviceToHost && !in_map(host_allocs, dst, bytes))))
		return break_capture(s, "cudaMemcpyAsync with pageable host memory");
	submit(s, &tag_copy, [=]() { memmove(dst, src, bytes); });
	return cudaSuccess;
}

cudaError_t
cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	if (!in_map(dev_allocs, dst, bytes))
	{
		fprintf(stderr, "emu: cudaMemsetAsync of %zu bytes at %p: not device memory\n", bytes, dst);
		return fail(cudaErrorInvalidValue);
	}
	submit(s, &tag_memset, [=]() { memset(dst, value, bytes); });
	return cudaSuccess;
}

cudaError_t
cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
	(void) flags;
	*s = new lg_emu_stream();
	return cudaSuccess;
}

cudaError_t
cudaStreamDestroy(cudaStream_t s)
{
	delete s;
	return cudaSuccess;
}

cudaError_t
cudaStreamSynchronize(cudaStream_t s)
{
	if (s != NULL && s->capturing)
		return break_capture(s, "cudaStreamSynchronize");
	return cudaSuccess;
}

cudaError_t
cudaEventCreate(cudaEvent_t *e)
{
	*e = new lg_emu_event();
	return cudaSuccess;
}

cudaError_t
cudaEventDestroy(cudaEvent_t e)
{
	delete e;
	return cudaSuccess;
}

cudaError_t
cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
	submit(s, &tag_event, [=]() { e->t = now(); e->recorded = true; });
	return cudaSuccess;
}

cudaError_t
cudaEventSynchronize(cudaEvent_t e)
{
	(void) e;
	return cudaSuccess;
}

cudaError_t
cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t stop)
{
	if (!start->recorded || !stop->recorded)
		return fail(cudaErrorInvalidValue);
	*ms = (float) ((stop->t - start->t) * 1e3);
	return cudaSuccess;
}

cudaError_t
cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	(void) mode;
	if (s == NULL || s->capturing)
		return fail(s == NULL ? cudaErrorStreamCaptureUnsupported : cudaErrorInvalidValue);
	s->capturing = true;
	s->invalid = false;
	s->ops.clear();
	return cudaSuccess;
}

cudaError_t
cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	*g = NULL;
	if (s == NULL || !s->capturing)
		return fail(cudaErrorInvalidValue);
	s->capturing = false;
	if (s->invalid)
	{
		s->ops.clear();
		return fail(cudaErrorStreamCaptureInvalidated);
	}
	*g = new lg_emu_graph();
	(*g)->ops.swap(s->ops);
	return cudaSuccess;
}

cudaError_t
cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long flags)
{
	(void) flags;
	if (g == NULL)
		return fail(cudaErrorInvalidValue);
	*e = new lg_emu_graph_exec();
	(*e)->ops = g->ops;
	return cudaSuccess;
}

/* Same topology (node count and kinds, same kernels): take the new parameters. */
cudaError_t
cudaGraphExecUpdate(cudaGraphExec_t e, cudaGraph_t g, cudaGraphExecUpdateResultInfo *info)
{
	memset(info, 0, sizeof(*info));
	if (e == NULL || g == NULL)
		return fail(cudaErrorInvalidValue);
	if (e->ops.size() != g->ops.size())
		return fail(cudaErrorGraphExecUpdateFailure);
	for (size_t i = 0; i < g->ops.size(); i++)
		if (e->ops[i].func != g->ops[i].func)
			return fail(cudaErrorGraphExecUpdateFailure);
	e->ops = g->ops;
	return cudaSuccess;
}

cudaError_t
cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s)
{
	std::lock_guard<std::recursive_mutex> lock(mu);

	if (e == NULL)
		return fail(cudaErrorInvalidValue);
	if (s != NULL && s->capturing)
		return break_capture(s, "cudaGraphLaunch (child graphs are not emulated)");
	for (size_t i = 0; i < e->ops.size(); i++)
		e->ops[i].run();
	return cudaSuccess;
}

cudaError_t
cudaGraphDestroy(cudaGraph_t g)
{
	delete g;
	return cudaSuccess;
}

cudaError_t
cudaGraphExecDestroy(cudaGraphExec_t e)
{
	delete e;
	return cudaSuccess;
}
