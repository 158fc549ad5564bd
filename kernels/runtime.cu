/*
 * runtime.cu — the device runtime behind lg_kernels.h: errors, devices,
 * streams, memory, copies, events and the copy-bandwidth probe.
 *
 * Nothing here launches a kernel.  Every CUDA/HIP call's result becomes an
 * lg_gpu_status with its text kept per host thread, so the engine can put it
 * in an lg_error without knowing the toolkit.
 */
#include "common.cuh"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LG_GPU_ERR_LEN 512
#define LG_MIB (1024.0 * 1024.0)

/* One message per host thread: each engine worker reports its own failure. */
static __thread char lg_gpu_err_buf[LG_GPU_ERR_LEN];

/* Record the message of a failure (or of a "no device" answer); returns st. */
lg_gpu_status
lg_gpu_set_error(lg_gpu_status st, const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(lg_gpu_err_buf, sizeof(lg_gpu_err_buf), fmt, ap);
	va_end(ap);
	return st;
}

/* Text of the last error recorded on this thread ("" if none yet). */
extern "C" const char *
lg_gpu_last_error(void)
{
	return lg_gpu_err_buf;
}

/* Which toolkit these kernels were built with. */
extern "C" const char *
lg_gpu_platform(void)
{
	return LG_GPU_PLATFORM;
}

/*
 * Devices visible.  A machine without a driver or without a device answers
 * with an error from the first runtime call; that is "no GPU here", so it is
 * n = 0 with LG_GPU_OK (the reason kept in lg_gpu_last_error()), and the
 * error the runtime keeps as its last error is cleared so that the next
 * launch check does not report it.
 */
extern "C" lg_gpu_status
lg_gpu_device_count(int *n)
{
	cudaError_t e;
	int			count = 0;

	if (n == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "device_count: n is NULL");
	*n = 0;
	e = cudaGetDeviceCount(&count);
	(void) cudaGetLastError();
	if (e != cudaSuccess)
	{
		lg_gpu_set_error(LG_GPU_OK, "%s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
		return LG_GPU_OK;
	}
	if (count == 0)
		lg_gpu_set_error(LG_GPU_OK, "the driver reports no device");
	*n = count;
	return LG_GPU_OK;
}

/* Check a device number against what the driver reports. */
static lg_gpu_status
lg_gpu_check_device(int device, const char *what)
{
	int			n;
	lg_gpu_status st = lg_gpu_device_count(&n);

	if (st != LG_GPU_OK)
		return st;
	if (n == 0)
	{
		char		why[LG_GPU_ERR_LEN];

		/* the reason is in the buffer the new message goes to: copy it first */
		snprintf(why, sizeof(why), "%s", lg_gpu_err_buf);
		return lg_gpu_set_error(LG_GPU_ERR_NODEVICE, "%s: no GPU: %s", what, why);
	}
	if (device < 0 || device >= n)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: device %d does not exist (%d visible)",
								what, device, n);
	return LG_GPU_OK;
}

/* The architecture name the compiler would target: "sm_90", "gfx90a". */
static void
lg_gpu_arch_name(const cudaDeviceProp *p, char *out, size_t len)
{
#ifdef LG_HIP
	/* gcnArchName carries feature flags after a colon: "gfx90a:sramecc+:xnack-" */
	size_t		n = strcspn(p->gcnArchName, ":");

	if (n >= len)
		n = len - 1;
	memcpy(out, p->gcnArchName, n);
	out[n] = '\0';
#else
	snprintf(out, len, "sm_%d%d", p->major, p->minor);
#endif
}

/* Name, capability, memory and versions of one device. */
extern "C" lg_gpu_status
lg_gpu_device_info_get(int device, lg_gpu_device_info *out)
{
	cudaDeviceProp prop;
	lg_gpu_status st;
	int			cur = 0;

	if (out == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "device_info: out is NULL");
	memset(out, 0, sizeof(*out));
	if ((st = lg_gpu_check_device(device, "device_info")) != LG_GPU_OK)
		return st;
	if ((st = lg_gpu_check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties")) != LG_GPU_OK)
		return st;
	snprintf(out->name, sizeof(out->name), "%.*s", (int) sizeof(out->name) - 1, prop.name);
	out->major = prop.major;
	out->minor = prop.minor;
	lg_gpu_arch_name(&prop, out->arch, sizeof(out->arch));
	out->total_mem = prop.totalGlobalMem;
	out->n_sm = prop.multiProcessorCount;

	/* free memory is per device: ask with it current, then restore */
	if ((st = lg_gpu_check(cudaGetDevice(&cur), "cudaGetDevice")) != LG_GPU_OK ||
		(st = lg_gpu_check(cudaSetDevice(device), "cudaSetDevice")) != LG_GPU_OK)
		return st;
	st = lg_gpu_check(cudaMemGetInfo(&out->free_mem, &out->total_mem), "cudaMemGetInfo");
	(void) cudaSetDevice(cur);
	if (st != LG_GPU_OK)
		return st;
	if ((st = lg_gpu_check(cudaDriverGetVersion(&out->driver_version), "cudaDriverGetVersion")) != LG_GPU_OK)
		return st;
	return lg_gpu_check(cudaRuntimeGetVersion(&out->runtime_version), "cudaRuntimeGetVersion");
}

/* Make the device current for this host thread. */
extern "C" lg_gpu_status
lg_gpu_set_device(int device)
{
	lg_gpu_status st = lg_gpu_check_device(device, "set_device");

	if (st != LG_GPU_OK)
		return st;
	return lg_gpu_check(cudaSetDevice(device), "cudaSetDevice");
}

/*
 * A stream that does not synchronise with the legacy default stream (work
 * on it can be captured into a graph).
 */
extern "C" lg_gpu_status
lg_gpu_stream_create(lg_gpu_stream *s)
{
	cudaStream_t st = NULL;
	lg_gpu_status r;

	if (s == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "stream_create: s is NULL");
	r = lg_gpu_check(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
	*s = (lg_gpu_stream) st;
	return r;
}

/* NULL (never created) is fine, as everywhere below. */
extern "C" void
lg_gpu_stream_destroy(lg_gpu_stream s)
{
	if (s != NULL)
		(void) cudaStreamDestroy((cudaStream_t) s);
}

/* Wait for everything queued on s; an asynchronous kernel fault surfaces here. */
extern "C" lg_gpu_status
lg_gpu_stream_sync(lg_gpu_stream s)
{
	return lg_gpu_check(cudaStreamSynchronize((cudaStream_t) s), "cudaStreamSynchronize");
}

/* The "out of device memory" message: asked, free and total, on which card. */
static lg_gpu_status
lg_gpu_nomem(const char *what, size_t bytes)
{
	size_t		free_b = 0,
				total_b = 0;
	int			dev = 0;
	cudaDeviceProp prop;
	const char *name = "the current device";

	/* the allocation's error is not sticky; drop it so it is not reported twice */
	(void) cudaGetLastError();
	if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
		name = prop.name;
	if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
		free_b = total_b = 0;
	(void) cudaGetLastError();
	return lg_gpu_set_error(LG_GPU_ERR_NOMEM,
							"%s: out of device memory: asked for %.1f MiB, %.1f MiB free of %.1f MiB on %s",
							what, bytes / LG_MIB, free_b / LG_MIB, total_b / LG_MIB, name);
}

/* Device memory; bytes == 0 gives NULL and LG_GPU_OK. */
extern "C" lg_gpu_status
lg_gpu_malloc(void **p, size_t bytes)
{
	cudaError_t e;

	if (p == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "malloc: p is NULL");
	*p = NULL;
	if (bytes == 0)
		return LG_GPU_OK;
	e = cudaMalloc(p, bytes);
	if (e == cudaErrorMemoryAllocation)
	{
		*p = NULL;
		return lg_gpu_nomem("cudaMalloc", bytes);
	}
	if (e != cudaSuccess)
		*p = NULL;
	return lg_gpu_check(e, "cudaMalloc");
}

/* Device memory from lg_gpu_malloc. */
extern "C" void
lg_gpu_free(void *p)
{
	if (p != NULL)
		(void) cudaFree(p);
}

/* Page-locked host memory (its own message: host, not device, ran out). */
extern "C" lg_gpu_status
lg_gpu_host_alloc(void **p, size_t bytes)
{
	cudaError_t e;

	if (p == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "host_alloc: p is NULL");
	*p = NULL;
	if (bytes == 0)
		return LG_GPU_OK;
	e = cudaMallocHost(p, bytes);
	if (e != cudaSuccess)
	{
		*p = NULL;
		(void) cudaGetLastError();
		if (e == cudaErrorMemoryAllocation)
			return lg_gpu_set_error(LG_GPU_ERR_NOMEM,
									"cudaMallocHost: out of page-locked host memory: asked for %.1f MiB",
									bytes / LG_MIB);
	}
	return lg_gpu_check(e, "cudaMallocHost");
}

/* Host memory from lg_gpu_host_alloc. */
extern "C" void
lg_gpu_host_free(void *p)
{
	if (p != NULL)
		(void) cudaFreeHost(p);
}

/* bytes of dst set to value, queued on s. */
extern "C" lg_gpu_status
lg_gpu_memset_async(void *dst, int value, size_t bytes, lg_gpu_stream s)
{
	if (bytes == 0)
		return LG_GPU_OK;
	if (dst == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "memset: dst is NULL");
	return lg_gpu_check(cudaMemsetAsync(dst, value, bytes, (cudaStream_t) s), "cudaMemsetAsync");
}

/* One asynchronous copy of `bytes` in the given direction. */
static lg_gpu_status
lg_gpu_copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, lg_gpu_stream s,
			const char *what)
{
	if (bytes == 0)
		return LG_GPU_OK;
	if (dst == NULL || src == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "%s: NULL pointer", what);
	return lg_gpu_check(cudaMemcpyAsync(dst, src, bytes, kind, (cudaStream_t) s), what);
}

/* The three directions: queued on s; a pageable host buffer makes the copy wait for it. */
extern "C" lg_gpu_status
lg_gpu_copy_h2d(void *dst, const void *host_src, size_t bytes, lg_gpu_stream s)
{
	return lg_gpu_copy(dst, host_src, bytes, cudaMemcpyHostToDevice, s, "copy_h2d");
}

extern "C" lg_gpu_status
lg_gpu_copy_d2h(void *host_dst, const void *src, size_t bytes, lg_gpu_stream s)
{
	return lg_gpu_copy(host_dst, src, bytes, cudaMemcpyDeviceToHost, s, "copy_d2h");
}

extern "C" lg_gpu_status
lg_gpu_copy_d2d(void *dst, const void *src, size_t bytes, lg_gpu_stream s)
{
	return lg_gpu_copy(dst, src, bytes, cudaMemcpyDeviceToDevice, s, "copy_d2d");
}

/* An event that records time (the default flags). */
extern "C" lg_gpu_status
lg_gpu_event_create(lg_gpu_event *e)
{
	cudaEvent_t ev = NULL;
	lg_gpu_status st;

	if (e == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "event_create: e is NULL");
	st = lg_gpu_check(cudaEventCreate(&ev), "cudaEventCreate");
	*e = (lg_gpu_event) ev;
	return st;
}

/* An event from lg_gpu_event_create. */
extern "C" void
lg_gpu_event_destroy(lg_gpu_event e)
{
	if (e != NULL)
		(void) cudaEventDestroy((cudaEvent_t) e);
}

/* Mark the point in s the elapsed time counts from or to. */
extern "C" lg_gpu_status
lg_gpu_event_record(lg_gpu_event e, lg_gpu_stream s)
{
	if (e == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "event_record: e is NULL");
	return lg_gpu_check(cudaEventRecord((cudaEvent_t) e, (cudaStream_t) s), "cudaEventRecord");
}

/* Waits for stop, then the milliseconds between the two events. */
extern "C" lg_gpu_status
lg_gpu_event_elapsed_ms(lg_gpu_event start, lg_gpu_event stop, float *ms)
{
	lg_gpu_status st;

	if (start == NULL || stop == NULL || ms == NULL)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "event_elapsed_ms: NULL argument");
	*ms = 0.0f;
	if ((st = lg_gpu_check(cudaEventSynchronize((cudaEvent_t) stop), "cudaEventSynchronize")) != LG_GPU_OK)
		return st;
	return lg_gpu_check(cudaEventElapsedTime(ms, (cudaEvent_t) start, (cudaEvent_t) stop),
						"cudaEventElapsedTime");
}

/*
 * Device-to-device bandwidth, counted as bandwidthTest does: each copy
 * reads and writes `bytes`, so 2 * bytes * iters / time.  One copy before the
 * timed ones so the first touch of the pages is not timed.
 */
extern "C" lg_gpu_status
lg_gpu_measure_d2d_bandwidth(size_t bytes, int iters, double *bytes_per_s)
{
	void	   *a = NULL,
			   *b = NULL;
	lg_gpu_stream s = NULL;
	lg_gpu_event e0 = NULL,
				e1 = NULL;
	float		ms = 0.0f;
	lg_gpu_status st;

	if (bytes_per_s == NULL || bytes == 0 || iters <= 0)
		return lg_gpu_set_error(LG_GPU_ERR_ARG, "measure_d2d_bandwidth: bytes and iters must be positive");
	*bytes_per_s = 0.0;
	if ((st = lg_gpu_malloc(&a, bytes)) != LG_GPU_OK ||
		(st = lg_gpu_malloc(&b, bytes)) != LG_GPU_OK ||
		(st = lg_gpu_stream_create(&s)) != LG_GPU_OK ||
		(st = lg_gpu_event_create(&e0)) != LG_GPU_OK ||
		(st = lg_gpu_event_create(&e1)) != LG_GPU_OK ||
		(st = lg_gpu_memset_async(a, 1, bytes, s)) != LG_GPU_OK ||
		(st = lg_gpu_copy_d2d(b, a, bytes, s)) != LG_GPU_OK ||
		(st = lg_gpu_event_record(e0, s)) != LG_GPU_OK)
		goto done;
	for (int i = 0; i < iters; i++)
	{
		/* alternate the direction so neither buffer stays in L2 as a source */
		if ((st = (i & 1) ? lg_gpu_copy_d2d(a, b, bytes, s) : lg_gpu_copy_d2d(b, a, bytes, s)) != LG_GPU_OK)
			goto done;
	}
	if ((st = lg_gpu_event_record(e1, s)) != LG_GPU_OK ||
		(st = lg_gpu_event_elapsed_ms(e0, e1, &ms)) != LG_GPU_OK)
		goto done;
	if (ms <= 0.0f)
		st = lg_gpu_set_error(LG_GPU_ERR_DEVICE, "measure_d2d_bandwidth: the events measured no time");
	else
		*bytes_per_s = 2.0 * (double) bytes * iters / (ms / 1000.0);
done:
	if (s != NULL)
		(void) cudaStreamSynchronize((cudaStream_t) s);
	lg_gpu_event_destroy(e0);
	lg_gpu_event_destroy(e1);
	lg_gpu_stream_destroy(s);
	lg_gpu_free(a);
	lg_gpu_free(b);
	return st;
}
