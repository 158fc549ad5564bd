/*
 * banwords.c — an example engine plugin (docs/plugins.md): a logits
 * processor that bans words and tokens and biases tokens.
 *
 * Request options (plugin_options), every key optional:
 *
 *   "words":  ["Tim", "dog"]   ban every token whose text, without its
 *                              leading spaces, is exactly one of the words
 *                              (case-sensitive).  A word the tokenizer only
 *                              spells with several tokens is not banned by
 *                              this: ban its tokens with "tokens".
 *   "tokens": [5, 17]          ban these token ids
 *   "bias":   {"42": 2.5}      add to these tokens' logits (after bans, a
 *                              banned token stays banned)
 *
 * With greedy sampling a ban changes the output exactly where the banned
 * token would have been chosen: the next-best token is taken instead.
 *
 * Build: cc -shared -fPIC -I<llamagpu>/src/engine -o banwords.so banwords.c
 * (or `make plugins` in the llamagpu tree: build/plugins/banwords.so).
 */
#include "lg_plugin.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One logit change: ban (-INFINITY) or bias. */
typedef struct rule
{
	int32_t		token;
	float		add;
} rule;

typedef struct state
{
	rule	   *rules;
	int			n;
	int			cap;
} state;

/* A cursor over the options' JSON text. */
typedef struct cursor
{
	const char *start;
	const char *p;
	const char *end;
	char	   *err;
	size_t		err_size;
} cursor;

/* Skip JSON whitespace. */
static void
skip_ws(cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Expect character ch (after whitespace); 0 if found. */
static int
expect(cursor *c, char ch)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == ch)
	{
		c->p++;
		return 0;
	}
	snprintf(c->err, c->err_size, "invalid options: expected '%c' at offset %d", ch, (int) (c->p - c->start));
	return -1;
}

/* A JSON string into buf (escapes \" \\ \/ \n \t \r only); 0 if well-formed. */
static int
parse_string(cursor *c, char *buf, size_t size)
{
	size_t		n = 0;

	if (expect(c, '"') != 0)
		return -1;
	while (c->p < c->end && *c->p != '"')
	{
		char		ch = *c->p++;

		if (ch == '\\')
		{
			if (c->p >= c->end)
				break;
			ch = *c->p++;
			if (ch == 'n')
				ch = '\n';
			else if (ch == 't')
				ch = '\t';
			else if (ch == 'r')
				ch = '\r';
			else if (ch != '"' && ch != '\\' && ch != '/')
			{
				snprintf(c->err, c->err_size, "invalid options: the escape \\%c is not supported", ch);
				return -1;
			}
		}
		if (n + 1 >= size)
		{
			snprintf(c->err, c->err_size, "invalid options: a string is longer than %zu bytes", size - 1);
			return -1;
		}
		buf[n++] = ch;
	}
	if (c->p >= c->end)
	{
		snprintf(c->err, c->err_size, "invalid options: unterminated string");
		return -1;
	}
	c->p++;
	buf[n] = '\0';
	return 0;
}

/* A JSON number; 0 if one is there. */
static int
parse_number(cursor *c, double *out)
{
	char		tmp[64];
	size_t		n = 0;
	char	   *end;

	skip_ws(c);
	while (c->p + n < c->end && n < sizeof(tmp) - 1 && strchr("+-0123456789.eE", c->p[n]))
	{
		tmp[n] = c->p[n];
		n++;
	}
	tmp[n] = '\0';
	*out = strtod(tmp, &end);
	if (n == 0 || *end != '\0')
	{
		snprintf(c->err, c->err_size, "invalid options: expected a number");
		return -1;
	}
	c->p += n;
	return 0;
}

/* Add a rule; 0 unless out of memory. */
static int
add_rule(state *s, int32_t token, float add, cursor *c)
{
	if (s->n == s->cap)
	{
		int			cap = s->cap ? s->cap * 2 : 16;
		rule	   *r = realloc(s->rules, sizeof(rule) * (size_t) cap);

		if (r == NULL)
		{
			snprintf(c->err, c->err_size, "out of memory");
			return -1;
		}
		s->rules = r;
		s->cap = cap;
	}
	s->rules[s->n].token = token;
	s->rules[s->n].add = add;
	s->n++;
	return 0;
}

/* Ban every token whose text without leading spaces is word. */
static int
ban_word(state *s, const lg_plugin_vocab *v, const char *word, cursor *c)
{
	char		piece[256];
	size_t		wlen = strlen(word);

	for (int32_t id = 0; id < v->n_vocab; id++)
	{
		int32_t		len = v->token_piece(v, id, piece, (int32_t) sizeof(piece));
		const char *p = piece;

		if (len <= 0 || len > (int32_t) sizeof(piece))
			continue;
		while (len > 0 && *p == ' ')
			p++, len--;
		if ((size_t) len == wlen && memcmp(p, word, wlen) == 0)
		{
			if (add_rule(s, id, -INFINITY, c) != 0)
				return -1;
		}
	}
	return 0;
}

/* Parse the options and build the rules; 0 if valid. */
static int
parse_options(state *s, const lg_plugin_request *req, cursor *c)
{
	char		key[64];
	char		word[256];
	double		x;

	if (expect(c, '{') != 0)
		return -1;
	skip_ws(c);
	if (c->p < c->end && *c->p == '}')
		return 0;
	for (;;)
	{
		if (parse_string(c, key, sizeof(key)) != 0 || expect(c, ':') != 0)
			return -1;
		if (strcmp(key, "words") == 0 || strcmp(key, "tokens") == 0)
		{
			if (expect(c, '[') != 0)
				return -1;
			skip_ws(c);
			while (c->p < c->end && *c->p != ']')
			{
				if (key[0] == 'w')
				{
					if (parse_string(c, word, sizeof(word)) != 0 ||
						ban_word(s, req->vocab, word, c) != 0)
						return -1;
				}
				else
				{
					if (parse_number(c, &x) != 0)
						return -1;
					if (x != floor(x) || x < 0 || x >= req->vocab->n_vocab)
					{
						snprintf(c->err, c->err_size, "token %g is not in the vocabulary (%d tokens)",
								 x, (int) req->vocab->n_vocab);
						return -1;
					}
					if (add_rule(s, (int32_t) x, -INFINITY, c) != 0)
						return -1;
				}
				skip_ws(c);
				if (c->p < c->end && *c->p == ',')
					c->p++;
				skip_ws(c);
			}
			if (expect(c, ']') != 0)
				return -1;
		}
		else if (strcmp(key, "bias") == 0)
		{
			if (expect(c, '{') != 0)
				return -1;
			skip_ws(c);
			while (c->p < c->end && *c->p != '}')
			{
				char	   *end;
				long		id;

				if (parse_string(c, word, sizeof(word)) != 0 || expect(c, ':') != 0 ||
					parse_number(c, &x) != 0)
					return -1;
				id = strtol(word, &end, 10);
				if (*end != '\0' || end == word || id < 0 || id >= req->vocab->n_vocab)
				{
					snprintf(c->err, c->err_size, "bias: \"%s\" is not a token id of the vocabulary (%d tokens)",
							 word, (int) req->vocab->n_vocab);
					return -1;
				}
				if (!isfinite(x))
				{
					snprintf(c->err, c->err_size, "bias: the bias of token %ld is not finite", id);
					return -1;
				}
				if (add_rule(s, (int32_t) id, (float) x, c) != 0)
					return -1;
				skip_ws(c);
				if (c->p < c->end && *c->p == ',')
					c->p++;
				skip_ws(c);
			}
			if (expect(c, '}') != 0)
				return -1;
		}
		else
		{
			snprintf(c->err, c->err_size, "unknown option \"%s\" (banwords takes words, tokens and bias)", key);
			return -1;
		}
		skip_ws(c);
		if (c->p < c->end && *c->p == ',')
		{
			c->p++;
			continue;
		}
		return expect(c, '}');
	}
}

/* request_begin: the options become a list of logit changes. */
static int
banwords_begin(const lg_plugin_request *req, void **out, char *err, size_t err_size)
{
	state	   *s = calloc(1, sizeof(*s));
	cursor		c = {req->options, req->options, req->options + req->options_len, err, err_size};

	if (s == NULL)
	{
		snprintf(err, err_size, "out of memory");
		return -1;
	}
	if (parse_options(s, req, &c) != 0)
	{
		free(s->rules);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* logits: apply the rules. */
static int
banwords_logits(void *st, float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n_tokens,
				int32_t n_prompt, char *err, size_t err_size)
{
	const state *s = st;

	for (int i = 0; i < s->n; i++)
		logits[s->rules[i].token] += s->rules[i].add;
	return 0;
}

/* request_end: free the rules. */
static void
banwords_end(void *st)
{
	state	   *s = st;

	free(s->rules);
	free(s);
}

static const lg_plugin_v1 banwords = {
	.abi_version = LG_PLUGIN_ABI_VERSION,
	.size = sizeof(lg_plugin_v1),
	.name = "banwords",
	.version = "1.0",
	.description = "bans words and tokens, biases tokens",
	.request_begin = banwords_begin,
	.logits = banwords_logits,
	.request_end = banwords_end,
};

/* The plugin's one export. */
const lg_plugin_v1 *
lg_plugin_init(void)
{
	return &banwords;
}
