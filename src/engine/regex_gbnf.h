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

/*
 * The GBNF for JSON string content the pattern does NOT match, for the
 * forms ^C*$, ^C+$ (one class repeated) and ^literal (a prefix); other
 * patterns: LG_ERR_UNSUPPORTED.  Used for additional property names next
 * to patternProperties.
 */
lg_status	lg_regex_complement_gbnf(const char *pat, size_t len, const char *any_char,
									 lg_buf *out, lg_error *err);

/*
 * The GBNF for JSON string content the pattern matches, except the given
 * names (UTF-8), for patterns of the form ^C{m,n}$ (one class repeated);
 * others: LG_ERR_UNSUPPORTED.  Pattern-named members next to declared
 * names that the pattern also matches.
 */
lg_status	lg_regex_minus_names(const char *pat, size_t len, const char *const *names, size_t n_names,
								 const char *any_char, lg_buf *out, lg_error *err);

/* For ^literal patterns (a trailing x+ read as x): the literal, UTF-8, appended to out. */
bool		lg_regex_literal_prefix(const char *pat, size_t len, lg_buf *out);

/* True when the pattern matches every string (unanchored, can match empty: ".*", ""). */
bool		lg_regex_matches_all(const char *pat, size_t len);

/* The lengths (code points) of the strings a pattern matches: max -1 = unbounded. */
lg_status	lg_regex_lengths(const char *pat, size_t len, long *min_len, long *max_len, lg_error *err);

/*
 * Whether pattern matches somewhere in s (PCRE2, close to ECMA-262 for the
 * patterns schemas use); *unknown is set when the pattern does not compile.
 */
bool		lg_regex_search(const char *pat, const char *s, bool *unknown);

#endif							/* LG_REGEX_GBNF_H */
