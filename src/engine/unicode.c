/*
 * unicode.c — UTF-8 coding and code point properties for the tokenizers.
 */
#include "unicode.h"

#include <stdlib.h>

/* Sequence length from the lead byte's high nibble, as llama.cpp reads it. */
size_t
lg_utf8_len(uint8_t lead)
{
	static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};

	return lookup[lead >> 4];
}

/* Decode one code point; llama.cpp's checks (no overlong or surrogate test). */
uint32_t
lg_utf8_decode(const char *str, size_t len, size_t *off)
{
	const uint8_t *s = (const uint8_t *) str + *off;
	size_t		avail = len - *off;
	uint32_t	cpt;

	if (!(s[0] & 0x80))
	{
		*off += 1;
		return s[0];
	}
	if (!(s[0] & 0x40))
		goto invalid;
	if (!(s[0] & 0x20))
	{
		if (avail < 2 || (s[1] & 0xC0) != 0x80)
			goto invalid;
		*off += 2;
		return ((uint32_t) (s[0] & 0x1F) << 6) | (s[1] & 0x3F);
	}
	if (!(s[0] & 0x10))
	{
		if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			goto invalid;
		*off += 3;
		return ((uint32_t) (s[0] & 0x0F) << 12) | ((uint32_t) (s[1] & 0x3F) << 6) |
			(s[2] & 0x3F);
	}
	if (!(s[0] & 0x08))
	{
		if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
			(s[3] & 0xC0) != 0x80)
			goto invalid;
		cpt = ((uint32_t) (s[0] & 0x07) << 18) | ((uint32_t) (s[1] & 0x3F) << 12) |
			((uint32_t) (s[2] & 0x3F) << 6) | (s[3] & 0x3F);

		/*
		 * llama.cpp accepts values up to 0x1FFFFF here and then fails to
		 * re-encode them; treat them as ill-formed instead.
		 */
		if (cpt >= LG_UNICODE_MAX_CPT)
			goto invalid;
		*off += 4;
		return cpt;
	}
invalid:
	*off += 1;
	return LG_UNICODE_REPLACEMENT;
}

/* Encode without validation beyond the range (surrogates pass, as in llama.cpp). */
size_t
lg_utf8_encode(uint32_t cpt, char *out)
{
	uint8_t    *o = (uint8_t *) out;

	if (cpt <= 0x7F)
	{
		o[0] = (uint8_t) cpt;
		return 1;
	}
	if (cpt <= 0x7FF)
	{
		o[0] = (uint8_t) (0xC0 | (cpt >> 6));
		o[1] = (uint8_t) (0x80 | (cpt & 0x3F));
		return 2;
	}
	if (cpt <= 0xFFFF)
	{
		o[0] = (uint8_t) (0xE0 | (cpt >> 12));
		o[1] = (uint8_t) (0x80 | ((cpt >> 6) & 0x3F));
		o[2] = (uint8_t) (0x80 | (cpt & 0x3F));
		return 3;
	}
	if (cpt >= LG_UNICODE_MAX_CPT)
		cpt = LG_UNICODE_REPLACEMENT;
	if (cpt <= 0xFFFF)
		return lg_utf8_encode(cpt, out);
	o[0] = (uint8_t) (0xF0 | (cpt >> 18));
	o[1] = (uint8_t) (0x80 | ((cpt >> 12) & 0x3F));
	o[2] = (uint8_t) (0x80 | ((cpt >> 6) & 0x3F));
	o[3] = (uint8_t) (0x80 | (cpt & 0x3F));
	return 4;
}

/* Decode a whole buffer; one code point per well-formed sequence or bad byte. */
uint32_t *
lg_utf8_to_cpts(const char *s, size_t len, size_t *n)
{
	uint32_t   *cpts = malloc((len + 1) * sizeof(uint32_t));
	size_t		off = 0;
	size_t		k = 0;

	if (cpts == NULL)
		return NULL;
	while (off < len)
		cpts[k++] = lg_utf8_decode(s, len, &off);
	*n = k;
	return cpts;
}

/* Binary search in the generated flag ranges. */
uint16_t
lg_unicode_flags(uint32_t cpt)
{
	size_t		lo = 0;
	size_t		hi = lg_unicode_flag_ranges_len;

	if (cpt >= LG_UNICODE_MAX_CPT)
		return 0;
	/* invariant: ranges[lo].start <= cpt < ranges[hi].start (hi may be len) */
	while (hi - lo > 1)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (lg_unicode_flag_ranges[mid].start <= cpt)
			lo = mid;
		else
			hi = mid;
	}
	return lg_unicode_flag_ranges[lo].flags;
}

/* Simple lowercase mapping. */
uint32_t
lg_unicode_tolower(uint32_t cpt)
{
	size_t		lo = 0;
	size_t		hi = lg_unicode_lowercase_len;

	if (cpt < 0x80)
		return (cpt >= 'A' && cpt <= 'Z') ? cpt + 32 : cpt;
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (lg_unicode_lowercase[mid].from < cpt)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < lg_unicode_lowercase_len && lg_unicode_lowercase[lo].from == cpt)
		return lg_unicode_lowercase[lo].to;
	return cpt;
}

/* llama.cpp's NFD keeps the first code point of the decomposition only. */
uint32_t
lg_unicode_nfd_first(uint32_t cpt)
{
	size_t		lo = 0;
	size_t		hi = lg_unicode_nfd_ranges_len;

	if (cpt < 0xC0)
		return cpt;
	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (lg_unicode_nfd_ranges[mid].last < cpt)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < lg_unicode_nfd_ranges_len && lg_unicode_nfd_ranges[lo].first <= cpt)
		return lg_unicode_nfd_ranges[lo].nfd;
	return cpt;
}

/* The Han ranges llama.cpp's unicode_cpt_is_han lists. */
bool
lg_unicode_is_han(uint32_t cpt)
{
	return (cpt >= 0x4E00 && cpt <= 0x9FFF) ||
		(cpt >= 0x3400 && cpt <= 0x4DBF) ||
		(cpt >= 0x20000 && cpt <= 0x2A6DF) ||
		(cpt >= 0x2A700 && cpt <= 0x2B73F) ||
		(cpt >= 0x2B740 && cpt <= 0x2B81F) ||
		(cpt >= 0x2B820 && cpt <= 0x2CEAF) ||
		(cpt >= 0x2CEB0 && cpt <= 0x2EBEF) ||
		(cpt >= 0xF900 && cpt <= 0xFAFF) ||
		(cpt >= 0x2F800 && cpt <= 0x2FA1F);
}

/* Printable Latin-1 bytes stand for themselves in GPT-2's byte encoding. */
static bool
byte_is_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/*
 * GPT-2 bytes_to_unicode: printable bytes stand for themselves, the other 68
 * (0x00-0x20, 0x7F-0xA0, 0xAD) are numbered from U+0100 in byte order.
 */
uint32_t
lg_unicode_byte_to_cpt(uint8_t byte)
{
	if (byte <= 0x20)
		return 256 + byte;
	if (byte >= 0x7F && byte <= 0xA0)
		return 256 + 33 + (byte - 0x7F);
	if (byte == 0xAD)
		return 256 + 67;
	return byte;
}

/* Inverse of lg_unicode_byte_to_cpt. */
int
lg_unicode_cpt_to_byte(uint32_t cpt)
{
	if (cpt < 256)
		return byte_is_printable(cpt) ? (int) cpt : -1;
	if (cpt < 256 + 33)
		return (int) (cpt - 256);
	if (cpt < 256 + 67)
		return (int) (cpt - 256 - 33 + 0x7F);
	if (cpt == 256 + 67)
		return 0xAD;
	return -1;
}
