/*
 * gguf.h — reading (over mmap) and writing GGUF files, versions 2 and 3.
 *
 * lg_gguf_open validates the whole header up front: every count, string
 * length, array extent, tensor dimension and tensor extent is checked against
 * the file size before it is used, so the accessors below never read outside
 * the mapping.  Strings point into the mapping and are NOT NUL-terminated:
 * always use the length.
 */
#ifndef LG_GGUF_H
#define LG_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "lg_error.h"
#include "lg_types.h"

#define LG_GGUF_MAGIC 0x46554747u	/* "GGUF" little-endian */
#define LG_GGUF_DEFAULT_ALIGNMENT 32
#define LG_GGUF_MAX_DIMS 4

typedef enum lg_gguf_vtype
{
	LG_GGUF_UINT8 = 0,
	LG_GGUF_INT8 = 1,
	LG_GGUF_UINT16 = 2,
	LG_GGUF_INT16 = 3,
	LG_GGUF_UINT32 = 4,
	LG_GGUF_INT32 = 5,
	LG_GGUF_FLOAT32 = 6,
	LG_GGUF_BOOL = 7,
	LG_GGUF_STRING = 8,
	LG_GGUF_ARRAY = 9,
	LG_GGUF_UINT64 = 10,
	LG_GGUF_INT64 = 11,
	LG_GGUF_FLOAT64 = 12,
	LG_GGUF_VTYPE_COUNT
} lg_gguf_vtype;

typedef struct lg_gguf_str
{
	const char *s;				/* into the mapping; not NUL-terminated */
	uint64_t	len;
} lg_gguf_str;

typedef struct lg_gguf_kv
{
	lg_gguf_str key;
	lg_gguf_vtype type;
	/* scalars: */
	union
	{
		uint64_t	u64;		/* every unsigned integer and bool */
		int64_t		i64;		/* every signed integer */
		double		f64;		/* float32 and float64 */
		lg_gguf_str str;
	}			val;
	/* arrays (type == LG_GGUF_ARRAY): */
	lg_gguf_vtype arr_type;
	uint64_t	arr_n;
	const uint8_t *arr_data;	/* first element, in the mapping */
	lg_gguf_str *arr_strs;		/* arr_type == STRING: the n strings (owned) */
} lg_gguf_kv;

typedef struct lg_gguf_tensor
{
	lg_gguf_str name;
	uint32_t	n_dims;
	int64_t		ne[LG_GGUF_MAX_DIMS];	/* ne[0] is the row length; unused dims are 1 */
	lg_type		type;
	uint64_t	offset;			/* relative to the data section */
	size_t		nbytes;
	const void *data;			/* into the mapping */
} lg_gguf_tensor;

typedef struct lg_gguf
{
	uint32_t	version;
	uint64_t	n_kv;
	lg_gguf_kv *kv;
	uint64_t	n_tensors;
	lg_gguf_tensor *tensors;
	uint32_t	alignment;
	uint64_t	data_offset;	/* of the tensor data section, in the file */
	const uint8_t *base;		/* the mapping (or caller's buffer) */
	size_t		size;
	bool		mapped;			/* base is ours to munmap */
} lg_gguf;

/* Open and validate a file (mmap, read-only).  NULL with err set on failure. */
lg_gguf    *lg_gguf_open(const char *path, lg_error *err);
/* Validate a buffer the caller keeps alive (tests, fuzzing). */
lg_gguf    *lg_gguf_open_buffer(const void *buf, size_t len, lg_error *err);
void		lg_gguf_close(lg_gguf *g);

/* Index of key, or -1. */
int64_t		lg_gguf_find_key(const lg_gguf *g, const char *key);
const lg_gguf_kv *lg_gguf_get(const lg_gguf *g, const char *key);

/*
 * Typed getters.  Return true and set *out when the key exists and its value
 * converts without loss (any integer type to u32/i64 when in range; float32,
 * float64 to float).  Return false otherwise, leaving *out untouched, so a
 * default can be preset by the caller.
 */
bool		lg_gguf_get_u32(const lg_gguf *g, const char *key, uint32_t *out);
bool		lg_gguf_get_i64(const lg_gguf *g, const char *key, int64_t *out);
bool		lg_gguf_get_f32(const lg_gguf *g, const char *key, float *out);
bool		lg_gguf_get_bool(const lg_gguf *g, const char *key, bool *out);
bool		lg_gguf_get_str(const lg_gguf *g, const char *key, lg_gguf_str *out);
/* Copy a string value into buf as a C string (truncating); false if absent. */
bool		lg_gguf_get_cstr(const lg_gguf *g, const char *key, char *buf, size_t bufsize);
/* An array's element type and length; false if key is missing or not an array. */
bool		lg_gguf_get_arr(const lg_gguf *g, const char *key, lg_gguf_vtype *type, uint64_t *n);

/* Bytes one scalar of value type t occupies; 0 for strings, arrays and unknown types. */
size_t		lg_gguf_vtype_size(uint32_t t);

/* Compare an lg_gguf_str with a C string. */
bool		lg_gguf_str_eq(lg_gguf_str a, const char *b);

const lg_gguf_tensor *lg_gguf_find_tensor(const lg_gguf *g, const char *name);

/* ---- writing (used by `llamagpu synth` and tests) ---- */

typedef struct lg_gguf_writer lg_gguf_writer;

lg_gguf_writer *lg_gguf_writer_new(void);
void		lg_gguf_writer_free(lg_gguf_writer *w);
void		lg_gguf_writer_set_alignment(lg_gguf_writer *w, uint32_t alignment);
lg_status	lg_gguf_writer_add_u32(lg_gguf_writer *w, const char *key, uint32_t v);
lg_status	lg_gguf_writer_add_i32(lg_gguf_writer *w, const char *key, int32_t v);
lg_status	lg_gguf_writer_add_f32(lg_gguf_writer *w, const char *key, float v);
lg_status	lg_gguf_writer_add_bool(lg_gguf_writer *w, const char *key, bool v);
lg_status	lg_gguf_writer_add_str(lg_gguf_writer *w, const char *key, const char *v);
/* Any scalar type (u8…f64, bool): val points to a host value of that type. */
lg_status	lg_gguf_writer_add_val(lg_gguf_writer *w, const char *key, lg_gguf_vtype type,
								   const void *val);
/* Arrays of scalars: elem_type is the GGUF value type of each of the n elements. */
lg_status	lg_gguf_writer_add_arr(lg_gguf_writer *w, const char *key, lg_gguf_vtype elem_type,
								   const void *data, uint64_t n);
/* Arrays of strings (each given with its length). */
lg_status	lg_gguf_writer_add_arr_str(lg_gguf_writer *w, const char *key,
									   const char *const *strs, const uint64_t *lens, uint64_t n);
/* Copy a key/value (any type) from an open file, e.g. a vocabulary. */
lg_status	lg_gguf_writer_copy_kv(lg_gguf_writer *w, const lg_gguf *src, const lg_gguf_kv *kv);
/* Add a tensor; data (nbytes = lg_row_size(type, ne[0]) * rows) is copied. */
lg_status	lg_gguf_writer_add_tensor(lg_gguf_writer *w, const char *name, lg_type type,
									  uint32_t n_dims, const int64_t *ne, const void *data);
/* Write the file (version 3). */
lg_status	lg_gguf_writer_write(lg_gguf_writer *w, const char *path, lg_error *err);

#endif							/* LG_GGUF_H */
