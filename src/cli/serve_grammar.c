/*
 * serve_grammar.c — the engine server's cache of compiled grammars.
 *
 * Compiling a JSON Schema or a tool list into a grammar costs far more than
 * a token, and SQL callers send the same schema again and again (every row
 * of an llm_generate_json over a table).  So compiled grammars are kept in
 * one LRU list shared by every model (a grammar does not depend on the
 * vocabulary), keyed by what was compiled: the kind, the options and the
 * text.  Entries are reference-counted: a request holds its grammar until
 * its on_done, so eviction never frees a grammar a running sequence's
 * matcher still reads.
 */
#include "serve.h"

#include <stdlib.h>
#include <string.h>

#include "grammar.h"

struct serve_grammar
{
	char	   *key;			/* kind, options, text: what was compiled */
	size_t		key_len;
	uint64_t	hash;			/* FNV-1a of key, to skip most comparisons */
	lg_grammar *grammar;
	int			refs;			/* one per request using it, one while cached */
	bool		cached;
	struct serve_grammar *prev;	/* towards the most recently used */
	struct serve_grammar *next;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static serve_grammar *lru_head;	/* most recently used */
static serve_grammar *lru_tail;
static int	n_cached;
static int64_t n_hits;
static int64_t n_misses;

/* FNV-1a, 64 bits. */
static uint64_t
key_hash(const char *s, size_t n)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
	{
		h ^= (unsigned char) s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Unlink e from the LRU list (cache_lock held). */
static void
lru_unlink(serve_grammar *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		lru_tail = e->prev;
	e->prev = e->next = NULL;
}

/* Put e first in the LRU list (cache_lock held). */
static void
lru_push_front(serve_grammar *e)
{
	e->prev = NULL;
	e->next = lru_head;
	if (lru_head)
		lru_head->prev = e;
	lru_head = e;
	if (lru_tail == NULL)
		lru_tail = e;
}

/* Free an entry nobody holds. */
static void
entry_free(serve_grammar *e)
{
	lg_grammar_free(e->grammar);
	free(e->key);
	free(e);
}

/* The cached grammar for key, with a reference for the caller; NULL if not cached. */
serve_grammar *
serve_grammar_lookup(const char *key, size_t key_len)
{
	uint64_t	h = key_hash(key, key_len);
	serve_grammar *e;

	pthread_mutex_lock(&cache_lock);
	for (e = lru_head; e != NULL; e = e->next)
	{
		if (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
		{
			e->refs++;
			lru_unlink(e);
			lru_push_front(e);
			n_hits++;
			break;
		}
	}
	if (e == NULL)
		n_misses++;
	pthread_mutex_unlock(&cache_lock);
	return e;
}

/*
 * Cache a grammar just compiled for key (taking it over) and return its
 * entry with a reference for the caller.  When another request compiled the
 * same key meanwhile, that one is returned and g freed.  The least recently
 * used entries beyond the cache size leave the cache (and are freed when
 * their last request ends).  NULL only when out of memory (g freed).
 */
serve_grammar *
serve_grammar_insert(const char *key, size_t key_len, lg_grammar *g)
{
	uint64_t	h = key_hash(key, key_len);
	serve_grammar *e;
	serve_grammar *evicted = NULL;
	int			cap = serve_opts.grammar_cache > 0 ? serve_opts.grammar_cache : 0;

	pthread_mutex_lock(&cache_lock);
	for (e = lru_head; e != NULL; e = e->next)
	{
		if (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
		{
			e->refs++;
			pthread_mutex_unlock(&cache_lock);
			lg_grammar_free(g);
			return e;
		}
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL || (e->key = malloc(key_len + 1)) == NULL)
	{
		pthread_mutex_unlock(&cache_lock);
		free(e);
		lg_grammar_free(g);
		return NULL;
	}
	memcpy(e->key, key, key_len);
	e->key[key_len] = '\0';
	e->key_len = key_len;
	e->hash = h;
	e->grammar = g;
	e->refs = 1;
	if (cap > 0)
	{
		e->refs++;
		e->cached = true;
		lru_push_front(e);
		n_cached++;
		/* the evicted are chained through next once out of the list */
		while (n_cached > cap)
		{
			serve_grammar *old = lru_tail;

			lru_unlink(old);
			old->cached = false;
			n_cached--;
			if (--old->refs == 0)
			{
				old->next = evicted;
				evicted = old;
			}
		}
	}
	pthread_mutex_unlock(&cache_lock);
	while (evicted)
	{
		serve_grammar *next = evicted->next;

		entry_free(evicted);
		evicted = next;
	}
	return e;
}

/* The compiled grammar of an entry. */
const lg_grammar *
serve_grammar_get(const serve_grammar *e)
{
	return e->grammar;
}

/* A request is done with e; the last reference of an evicted entry frees it. */
void
serve_grammar_release(serve_grammar *e)
{
	bool		free_it;

	if (e == NULL)
		return;
	pthread_mutex_lock(&cache_lock);
	free_it = --e->refs == 0;
	pthread_mutex_unlock(&cache_lock);
	if (free_it)
		entry_free(e);
}

/* Entries, hits and misses, for STATUS. */
void
serve_grammar_stats(int *entries, int64_t *hits, int64_t *misses)
{
	pthread_mutex_lock(&cache_lock);
	*entries = n_cached;
	*hits = n_hits;
	*misses = n_misses;
	pthread_mutex_unlock(&cache_lock);
}

/* Drop every cached grammar (shutdown); ones still in use go with their requests. */
void
serve_grammar_cache_clear(void)
{
	serve_grammar *dead = NULL;

	pthread_mutex_lock(&cache_lock);
	while (lru_head)
	{
		serve_grammar *e = lru_head;

		lru_unlink(e);
		e->cached = false;
		n_cached--;
		if (--e->refs == 0)
		{
			e->next = dead;
			dead = e;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	while (dead)
	{
		serve_grammar *next = dead->next;

		entry_free(dead);
		dead = next;
	}
}
