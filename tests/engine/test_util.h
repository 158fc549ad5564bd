/*
 * test_util.h — helpers shared by the engine's cmocka tests.
 */
#ifndef LG_TEST_UTIL_H
#define LG_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/*
 * Path of a shared fixture ($LLAMAGPU_SHARED, default ../shared, relative to
 * the repository root where the tests run), or NULL when it is absent, after
 * printing a visible SKIP line.  buf must hold 4096 bytes.
 */
static inline const char *
lg_test_fixture(char *buf, const char *rel)
{
	const char *root = getenv("LLAMAGPU_SHARED");
	FILE	   *f;

	snprintf(buf, 4096, "%s/%s", root && *root ? root : "../shared", rel);
	f = fopen(buf, "rb");
	if (f == NULL)
	{
		printf("SKIP: fixture %s not found (set LLAMAGPU_SHARED)\n", buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

/* A whole file, NUL-terminated (malloc'd; *len is set to its size); NULL if it cannot be opened. */
static inline char *
lg_test_read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	*len = 0;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t) n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return buf;
}

/* Deterministic pseudo-random floats in [-1, 1) for kernel tests. */
static inline float
lg_test_randf(uint64_t *state)
{
	*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float) ((*state >> 40) & 0xFFFFFF) / (float) 0x800000 - 1.0f;
}

#endif							/* LG_TEST_UTIL_H */
