/*
 * regex_gbnf.h — an ECMA-262 regular expression (JSON Schema "pattern")
 * as a GBNF expression over the *content* of a JSON string: the text
 * between the quotes, with characters escaped as JSON (and Python's
 * json.dumps) writes them.  The pattern is matched against the decoded
 * value, with search semantics: unless anchored with ^ and $, anything may
 * come before and after a match.
 *
 * Supported: literals and escapes (\t \n \xHH \uHHHH \u{H..} \cX \0,
 * identity escapes), classes ([...], [^...], ranges, \d \w \s \D \W \S,
 * "."), groups (capturing, (?:...), (?<name>...)), alternation, the
 * quantifiers * + ? {n} {n,} {n,m} and their lazy forms (same language), ^
 * at the start and $ at the end.  Lookaround, backreferences, \b \B, \p{..}
 * and anchors elsewhere are LG_ERR_UNSUPPORTED.
 */
#ifndef LG_REGEX_GBNF_H
#define LG_REGEX_GBNF_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"
#include "lg_error.h"

/*
 * Append the GBNF expression for pattern pat to out.  min_len/max_len (-1:
 * none) bound the decoded length in code points too: applied when the
 * pattern's own lengths already satisfy them, or when it is one anchored
 * repeated atom between fixed-length parts (^[a-z][a-z0-9_]*$ and the like);
 * otherwise LG_ERR_UNSUPPORTED.  any_char names a GBNF rule for one JSON
 * string character (used for the unanchored ends).
 */
lg_status	lg_regex_to_gbnf(const char *pat, size_t len, long min_len, long max_len,
							 const char *any_char, lg_buf *out, lg_error *err);

/* The lengths (code points) of the strings a pattern matches: max -1 = unbounded. */
lg_status	lg_regex_lengths(const char *pat, size_t len, long *min_len, long *max_len, lg_error *err);

/*
 * Whether pattern matches somewhere in s (PCRE2, close to ECMA-262 for the
 * patterns schemas use); *unknown is set when the pattern does not compile.
 */
bool		lg_regex_search(const char *pat, const char *s, bool *unknown);

#endif							/* LG_REGEX_GBNF_H */
