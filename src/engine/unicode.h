/*
 * unicode.h — the code point helpers the tokenizers share.
 *
 * UTF-8 decoding here follows llama.cpp's unicode_cpts_from_utf8: a byte
 * that does not start a well-formed sequence becomes U+FFFD and decoding
 * resumes at the next byte, so any byte string decodes without error.
 * Code point classes are the coarse ones llama.cpp uses (one general
 * category letter per code point plus a whitespace bit), generated from
 * Python's unicodedata by scripts/gen-unicode-data.py.
 */
#ifndef LG_UNICODE_H
#define LG_UNICODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define LG_UNICODE_MAX_CPT		0x110000u
#define LG_UNICODE_REPLACEMENT	0xFFFDu

/* Code point flags; the values match llama.cpp's unicode_cpt_flags. */
#define LG_UFLAG_UNDEFINED		0x0001	/* Cn */
#define LG_UFLAG_NUMBER			0x0002	/* \p{N} */
#define LG_UFLAG_LETTER			0x0004	/* \p{L} */
#define LG_UFLAG_SEPARATOR		0x0008	/* \p{Z} */
#define LG_UFLAG_MARK			0x0010	/* \p{M} */
#define LG_UFLAG_PUNCTUATION	0x0020	/* \p{P} */
#define LG_UFLAG_SYMBOL			0x0040	/* \p{S} */
#define LG_UFLAG_CONTROL		0x0080	/* \p{C} but Cn */
#define LG_UFLAG_CATEGORIES		0x00FF
#define LG_UFLAG_WHITESPACE		0x0100	/* White_Space */

typedef struct lg_unicode_range_flags
{
	uint32_t	start;
	uint16_t	flags;
} lg_unicode_range_flags;

typedef struct lg_unicode_pair
{
	uint32_t	from;
	uint32_t	to;
} lg_unicode_pair;

typedef struct lg_unicode_range_nfd
{
	uint32_t	first;
	uint32_t	last;
	uint32_t	nfd;
} lg_unicode_range_nfd;

/* Generated tables (unicode_data.c). */
extern const char *const lg_unicode_data_version;
extern const lg_unicode_range_flags lg_unicode_flag_ranges[];
extern const size_t lg_unicode_flag_ranges_len;
extern const lg_unicode_pair lg_unicode_lowercase[];
extern const size_t lg_unicode_lowercase_len;
extern const lg_unicode_range_nfd lg_unicode_nfd_ranges[];
extern const size_t lg_unicode_nfd_ranges_len;

/* Length of the sequence a lead byte announces (1 for stray bytes). */
size_t		lg_utf8_len(uint8_t lead);

/*
 * Decode one code point at s[*off] (len bytes in all), advancing *off.
 * Ill-formed input gives U+FFFD and advances one byte.
 */
uint32_t	lg_utf8_decode(const char *s, size_t len, size_t *off);

/* Encode cpt (<= 0x10FFFF) into out (4 bytes); returns the length. */
size_t		lg_utf8_encode(uint32_t cpt, char *out);

/*
 * Decode len bytes into a new array of code points (*n set); NULL when out
 * of memory.  The array has room for one more element.
 */
uint32_t   *lg_utf8_to_cpts(const char *s, size_t len, size_t *n);

/* Flags of a code point; 0 beyond U+10FFFF. */
uint16_t	lg_unicode_flags(uint32_t cpt);
uint32_t	lg_unicode_tolower(uint32_t cpt);
/* First code point of the canonical decomposition (cpt if none). */
uint32_t	lg_unicode_nfd_first(uint32_t cpt);
bool		lg_unicode_is_han(uint32_t cpt);

/* GPT-2 byte-level encoding: byte -> code point, and back (-1 if none). */
uint32_t	lg_unicode_byte_to_cpt(uint8_t byte);
int			lg_unicode_cpt_to_byte(uint32_t cpt);

#endif							/* LG_UNICODE_H */
