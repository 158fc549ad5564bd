/*
 * lg_plugin.h — the C ABI of llamagpu engine plugins (public header).
 *
 * An engine plugin is a shared library that `llamagpu serve` (the engine
 * process, never a Postgres backend) loads at start.  It exports one
 * function,
 *
 *     const lg_plugin_v1 *lg_plugin_init(void);
 *
 * returning a table that lives as long as the process (a static struct):
 * the plugin's name and version and its hooks.  A request selects a plugin
 * by name (GENERATE field `logits_processor`, SQL option
 * "logits_processor") and passes it options (`plugin_options`, a JSON
 * object given to the plugin as text).  See docs/plugins.md.
 *
 * Versioning: abi_version is the first member and never moves.  The host
 * refuses a plugin whose abi_version is not the LG_PLUGIN_ABI_VERSION it was
 * built with.  Within one ABI version members are only ever appended; the
 * plugin sets size to sizeof(lg_plugin_v1) as it was compiled, and the host
 * treats members past size as absent (NULL).  Any other change (a member
 * removed, reordered or retyped, a hook's meaning changed) is a new ABI
 * version with a new struct (lg_plugin_v2) and init symbol.
 *
 * Threads: lg_plugin_init is called once, before any request.  request_begin
 * runs on the request's worker thread; logits and request_end run on the
 * thread of the model's scheduler.  Different requests run concurrently on
 * different threads, so hooks must be reentrant: keep per-request data in
 * the state request_begin makes, and guard anything shared.  The calls for
 * one request never overlap.
 *
 * This header needs only the C standard library; it includes no Postgres
 * header and no other llamagpu header, so a plugin builds against it alone.
 */
#ifndef LG_PLUGIN_H
#define LG_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LG_PLUGIN_ABI_VERSION	1
#define LG_PLUGIN_INIT_SYMBOL	"lg_plugin_init"
#define LG_PLUGIN_NAME_MAX		63	/* bytes of a name: [A-Za-z0-9_-] */

/* The model's vocabulary, as the plugin may read it (valid during request_begin only). */
typedef struct lg_plugin_vocab
{
	int32_t		n_vocab;		/* token ids are 0 .. n_vocab - 1 */
	int32_t		eos;			/* the end-of-sequence token, or -1 */
	/*
	 * The text of token id as it appears in output (a SentencePiece "▁"
	 * already a space, a byte token its byte): writes at most bufsize bytes
	 * (no NUL) and returns the length the text needs; -1 for an id outside
	 * the vocabulary, 0 for control tokens (which have no text).
	 */
	int32_t		(*token_piece) (const struct lg_plugin_vocab *v, int32_t id, char *buf, int32_t bufsize);
	const void *host;			/* the host's; do not touch */
} lg_plugin_vocab;

/* What request_begin is told about a request. */
typedef struct lg_plugin_request
{
	const char *model;			/* the model's registered name */
	const lg_plugin_vocab *vocab;
	const char *options;		/* plugin_options: JSON object text; "{}" when none given */
	size_t		options_len;
} lg_plugin_request;

/*
 * The plugin's table.  Hooks return 0 on success; non-zero fails the request
 * (never the engine) with the message the hook wrote into err (at most
 * err_size bytes with the NUL; the host gives 256), sent to the client as
 * ERROR status=plugin.
 */
typedef struct lg_plugin_v1
{
	uint32_t	abi_version;	/* LG_PLUGIN_ABI_VERSION; always first */
	uint32_t	size;			/* sizeof(lg_plugin_v1) as compiled */
	const char *name;			/* must equal the name the plugin is installed as */
	const char *version;		/* free-form, shown in llm_plugins */
	const char *description;	/* one line; may be NULL */

	/*
	 * A request selected the plugin: check req->options and make the
	 * request's state (*state, NULL allowed).  An options error is reported
	 * here, before any token is computed.  May be NULL (no state).
	 */
	int			(*request_begin) (const lg_plugin_request *req, void **state,
								  char *err, size_t err_size);

	/*
	 * Before each token is sampled: change logits (n_vocab floats, the
	 * model's output for the next position) in place.  Set a logit to
	 * -INFINITY to ban a token, add to it to favour one.  The sampler's own
	 * settings (logit_bias, penalties, temperature, top-k/p) apply after
	 * this.  tokens[0 .. n_tokens) are the request's ids so far: the
	 * n_prompt prompt tokens, then those generated.  Required.
	 */
	int			(*logits) (void *state, float *logits, int32_t n_vocab,
						   const int32_t *tokens, int32_t n_tokens, int32_t n_prompt,
						   char *err, size_t err_size);

	/* The request ended (any way): free state.  May be NULL. */
	void		(*request_end) (void *state);
} lg_plugin_v1;

/* The one symbol a plugin exports. */
typedef const lg_plugin_v1 *(*lg_plugin_init_fn) (void);

#ifdef __cplusplus
}
#endif

#endif							/* LG_PLUGIN_H */
