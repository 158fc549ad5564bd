/*
 * grammar_registry.c — grammars shared by their text, so that the token-mask
 * caches one request built serve the next request with the same grammar
 * (SELECT llm_generate_json(prompt, schema) FROM t runs one schema per row).
 *
 * Every grammar lg_grammar_parse returns is on one list, most recently used
 * first, with a reference count.  Parsing a text already on the list takes
 * another reference; lg_grammar_free drops one and, when unreferenced
 * grammars exceed LG_GRAMMAR_KEEP_IDLE or their caches LG_GRAMMAR_KEEP_BYTES,
 * destroys the least recently used of them.  A grammar is immutable and its
 * caches are behind their own lock, so sharing one between threads is safe.
 */
#include "grammar_impl.h"

#include <stdlib.h>
#include <string.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static lg_grammar *registry_head;

/* FNV-1a hash of the grammar text. */
static uint64_t
text_hash(const char *s, size_t n)
{
	uint64_t	h = 0xCBF29CE484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t) s[i]) * 0x100000001B3ULL;
	return h;
}

/* Unlink g from the list (lock held). */
static void
unlink_grammar(lg_grammar *g)
{
	if (g->reg_prev)
		g->reg_prev->reg_next = g->reg_next;
	else if (registry_head == g)
		registry_head = g->reg_next;
	if (g->reg_next)
		g->reg_next->reg_prev = g->reg_prev;
	g->reg_prev = g->reg_next = NULL;
}

/* Put g first (lock held). */
static void
push_front(lg_grammar *g)
{
	g->reg_prev = NULL;
	g->reg_next = registry_head;
	if (registry_head)
		registry_head->reg_prev = g;
	registry_head = g;
}

/*
 * Unlink the idle grammars beyond the limits (lock held); they are returned
 * as a chain through reg_next, to be destroyed after the lock is released.
 */
static lg_grammar *
evict(size_t keep_idle, size_t keep_bytes)
{
	lg_grammar *g,
			   *prev,
			   *doomed = NULL;
	size_t		n_idle = 0,
				bytes = 0;

	for (g = registry_head; g != NULL; g = prev)
	{
		prev = g->reg_next;
		if (g->refs > 0)
			continue;
		n_idle++;
		bytes += lg_gcache_bytes(g);
		if (n_idle > keep_idle || bytes > keep_bytes)
		{
			unlink_grammar(g);
			g->reg_next = doomed;
			doomed = g;
		}
	}
	return doomed;
}

/* Destroy a chain of evicted grammars. */
static void
destroy_chain(lg_grammar *g)
{
	while (g != NULL)
	{
		lg_grammar *next = g->reg_next;

		lg_grammar_destroy(g);
		g = next;
	}
}

lg_grammar *
lg_grammar_parse(const char *gbnf, size_t len, lg_error *err)
{
	uint64_t	h;
	lg_grammar *g,
			   *fresh;
	char	   *copy;

	if (gbnf == NULL && len > 0)
	{
		lg_error_set(err, LG_ERR_ARG, "grammar text is NULL");
		return NULL;
	}
	h = text_hash(gbnf, len);
	pthread_mutex_lock(&registry_lock);
	for (g = registry_head; g != NULL; g = g->reg_next)
		if (g->src_hash == h && g->src_len == len && (len == 0 || memcmp(g->src, gbnf, len) == 0))
		{
			g->refs++;
			unlink_grammar(g);
			push_front(g);
			pthread_mutex_unlock(&registry_lock);
			return g;
		}
	pthread_mutex_unlock(&registry_lock);

	fresh = lg_grammar_compile(gbnf, len, err);
	if (fresh == NULL)
		return NULL;
	copy = malloc(len + 1);
	if (copy == NULL)
		return fresh;			/* works, just not shared (refs 0, not listed: freed at once) */
	if (len > 0)
		memcpy(copy, gbnf, len);
	copy[len] = '\0';
	fresh->src = copy;
	fresh->src_len = len;
	fresh->src_hash = h;
	fresh->refs = 1;
	pthread_mutex_lock(&registry_lock);
	/* another thread may have parsed the same text meanwhile: use one of the two */
	for (g = registry_head; g != NULL; g = g->reg_next)
		if (g->src_hash == h && g->src_len == len && (len == 0 || memcmp(g->src, gbnf, len) == 0))
			break;
	if (g != NULL)
	{
		g->refs++;
		pthread_mutex_unlock(&registry_lock);
		lg_grammar_destroy(fresh);
		return g;
	}
	push_front(fresh);
	pthread_mutex_unlock(&registry_lock);
	return fresh;
}

void
lg_grammar_free(lg_grammar *g)
{
	lg_grammar *doomed;

	if (g == NULL)
		return;
	if (g->src == NULL)
	{
		lg_grammar_destroy(g);	/* never listed */
		return;
	}
	pthread_mutex_lock(&registry_lock);
	if (g->refs > 0)
		g->refs--;
	doomed = evict(LG_GRAMMAR_KEEP_IDLE, LG_GRAMMAR_KEEP_BYTES);
	pthread_mutex_unlock(&registry_lock);
	destroy_chain(doomed);
}

void
lg_grammar_drop_idle(void)
{
	lg_grammar *doomed;

	pthread_mutex_lock(&registry_lock);
	doomed = evict(0, 0);
	pthread_mutex_unlock(&registry_lock);
	destroy_chain(doomed);
}
