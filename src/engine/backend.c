/*
 * backend.c — what every backend shares: the host-memory fallbacks of the
 * version-3 memory entries, and choosing a backend by name
 * ("cpu", "cuda:0", "auto").
 */
#include "backend.h"

#include <ctype.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

/* Zeroed backend memory (host calloc when the backend has no allocator). */
void *
lg_backend_alloc(lg_backend *be, size_t bytes, lg_error *err)
{
	void	   *p;

	if (be->buf_alloc)
		return be->buf_alloc(be, bytes, err);
	p = calloc(bytes ? bytes : 1, 1);
	if (p == NULL)
		lg_error_set(err, LG_ERR_NOMEM, "out of memory: cannot allocate %zu bytes", bytes);
	return p;
}

/* Free what lg_backend_alloc returned (NULL is fine). */
void
lg_backend_buf_free(lg_backend *be, void *p)
{
	if (p == NULL)
		return;
	if (be->buf_free)
		be->buf_free(be, p);
	else
		free(p);
}

/* Copy backend memory to the host. */
lg_status
lg_backend_read(lg_backend *be, void *host_dst, const void *src, size_t bytes, lg_error *err)
{
	if (be->buf_read)
		return be->buf_read(be, host_dst, src, bytes, err);
	if (host_dst != src && bytes > 0)
		memcpy(host_dst, src, bytes);
	return LG_OK;
}

/* Copy host memory to backend memory. */
lg_status
lg_backend_write(lg_backend *be, void *dst, const void *host_src, size_t bytes, lg_error *err)
{
	if (be->buf_write)
		return be->buf_write(be, dst, host_src, bytes, err);
	if (dst != host_src && bytes > 0)
		memcpy(dst, host_src, bytes);
	return LG_OK;
}

bool
lg_backend_is_host(const lg_backend *be)
{
	return be->buf_alloc == NULL;
}

#ifdef LG_HAVE_GPU
/* kernels/lg_kernels.h: "cuda" or "hip", what the kernels were built for */
extern const char *lg_gpu_platform(void);
#endif

const char *
lg_backend_gpu_platform(void)
{
#ifdef LG_HAVE_GPU
	return lg_gpu_platform();
#else
	return NULL;
#endif
}

/*
 * Parse "cuda", "cuda:N", "hip:N", "gpu:N" (case-insensitive): *dev = N.
 * Returns false when the name is not a GPU name; *bad_number when it is but
 * N is not a number.
 */
static bool
parse_gpu_name(const char *name, int *dev, bool *bad_number)
{
	static const char *const prefixes[] = {"cuda", "hip", "gpu"};

	*bad_number = false;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
	{
		size_t		n = strlen(prefixes[i]);
		const char *p = name + n;
		long		v = 0;

		if (strncasecmp(name, prefixes[i], n) != 0)
			continue;
		if (*p == '\0')
		{
			*dev = 0;
			return true;
		}
		if (*p != ':')
			continue;
		p++;
		if (*p == '\0' || strlen(p) > 4)
		{
			*bad_number = true;
			return true;
		}
		for (; *p; p++)
		{
			if (!isdigit((unsigned char) *p))
			{
				*bad_number = true;
				return true;
			}
			v = v * 10 + (*p - '0');
		}
		*dev = (int) v;
		return true;
	}
	return false;
}

lg_backend *
lg_backend_open(const char *device, int n_threads, lg_error *err)
{
	int			dev = 0;
	bool		bad_number;

	if (device == NULL || device[0] == '\0' || strcasecmp(device, "auto") == 0)
	{
#ifdef LG_HAVE_GPU
		if (lg_backend_gpu_count() > 0)
			return lg_backend_gpu_new(0, err);
#endif
		return lg_backend_cpu_new(n_threads, 0, err);
	}
	if (strcasecmp(device, "cpu") == 0)
		return lg_backend_cpu_new(n_threads, 0, err);
	if (!parse_gpu_name(device, &dev, &bad_number))
	{
		lg_error_set(err, LG_ERR_ARG, "unknown device \"%s\": expected \"cpu\", \"auto\" or \"cuda:N\"",
					 device);
		return NULL;
	}
	if (bad_number)
	{
		lg_error_set(err, LG_ERR_ARG, "invalid device \"%s\": the device number must be a small non-negative integer",
					 device);
		return NULL;
	}
#ifdef LG_HAVE_GPU
	{
		int			n = lg_backend_gpu_count();
		const char *plat = lg_backend_gpu_platform();

		if ((strncasecmp(device, "cuda", 4) == 0 && strcmp(plat, "cuda") != 0) ||
			(strncasecmp(device, "hip", 3) == 0 && strcmp(plat, "hip") != 0))
		{
			lg_error_set(err, LG_ERR_UNSUPPORTED, "device \"%s\": this llamagpu was built for %s, not %.4s",
						 device, plat, device);
			return NULL;
		}
		if (dev >= n)
		{
			if (n == 0)
				lg_error_set(err, LG_ERR_UNSUPPORTED, "device \"%s\": no %s device is visible (driver missing, or CUDA_VISIBLE_DEVICES hides them)",
							 device, plat);
			else
				lg_error_set(err, LG_ERR_ARG, "device \"%s\" does not exist: this machine has %d %s device%s (0..%d)",
							 device, n, plat, n == 1 ? "" : "s", n - 1);
			return NULL;
		}
		return lg_backend_gpu_new(dev, err);
	}
#else
	lg_error_set(err, LG_ERR_UNSUPPORTED,
				 "device \"%s\": this llamagpu was built without GPU support (build it with make GPU=cuda or GPU=hip)",
				 device);
	return NULL;
#endif
}
