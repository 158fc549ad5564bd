/*
 * cmd_info.c — `llamagpu info -m FILE [--json]`: what a GGUF model is.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "embed.h"
#include "cli_args.h"
#include "json.h"

/* Count tensors per type, in GGUF order of first appearance. */
static void
append_type_counts(lg_buf *b, const lg_gguf *g, bool json)
{
	int64_t		count[LG_TYPE_COUNT] = {0};
	bool		first = true;

	for (uint64_t i = 0; i < g->n_tensors; i++)
		count[g->tensors[i].type]++;
	for (int t = 0; t < LG_TYPE_COUNT; t++)
	{
		if (count[t] == 0)
			continue;
		if (json)
			lg_buf_appendf(b, "%s\"%s\":%lld", first ? "" : ",", lg_type_get(t)->name, (long long) count[t]);
		else
			lg_buf_appendf(b, "%s%s×%lld", first ? "" : ", ", lg_type_get(t)->name, (long long) count[t]);
		first = false;
	}
}

int
cmd_info(int argc, char **argv)
{
	cli_model_opts o;
	bool		json = false;
	lg_model   *m;
	const lg_hparams *hp;
	lg_buf		b;
	char		types[1024];

	cli_model_opts_init(&o);
	for (int i = 1; i < argc; i++)
	{
		int			r = cli_model_opt("info", &o, argc, argv, &i);

		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--help") == 0)
		{
			printf("usage: llamagpu info -m FILE [--json]\n");
			return 0;
		}
		else
			return cli_fail("info", 2, "unknown option \"%s\"", argv[i]);
	}
	if (!cli_open_model("info", &o, &m, NULL))
		return o.model ? 1 : 2;
	hp = &m->hp;

	lg_buf_init(&b);
	append_type_counts(&b, m->gguf, json);
	snprintf(types, sizeof(types), "%s", b.data ? b.data : "");
	lg_buf_free(&b);
	lg_buf_init(&b);
	if (json)
	{
		lg_buf_appendf(&b, "{\"architecture\":\"%s\",\"name\":", lg_arch_name(hp->arch));
		lg_buf_append_json_str(&b, hp->name, strlen(hp->name));
		lg_buf_appendf(&b, ",\"gguf_version\":%u,\"file_size\":%llu,\"n_params\":%lld,"
					   "\"file_type\":\"%s\",\"tensor_types\":{%s},"
					   "\"context_length\":%d,\"n_embd\":%d,\"n_layer\":%d,\"n_head\":%d,"
					   "\"n_head_kv\":%d,\"head_dim\":%d,\"n_ff\":%d,\"n_vocab\":%d,"
					   "\"rms_eps\":%g,\"rope_freq_base\":%g,\"rope_freq_scale\":%g,\"rope_style\":\"%s\","
					   "\"tied_output\":%s,\"tokenizer\":\"%s\",\"bos\":%d,\"eos\":%d,\"add_bos\":%s,"
					   "\"chat_template\":%s,\"encoder\":%s,\"pooling\":\"%s\"}\n",
					   m->gguf->version, (unsigned long long) m->file_size, (long long) hp->n_params,
					   hp->ftype_name, types, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_head,
					   hp->n_head_kv, hp->head_dim, hp->n_ff, hp->n_vocab, hp->rms_eps,
					   hp->rope.freq_base, hp->rope.freq_scale,
					   hp->rope.style == LG_ROPE_NEOX ? "neox" : "norm",
					   hp->tied_output ? "true" : "false", lg_vocab_type_name(m->vocab),
					   lg_vocab_bos(m->vocab), lg_vocab_eos(m->vocab),
					   lg_vocab_add_bos(m->vocab) ? "true" : "false",
					   m->chat_template ? "true" : "false", hp->encoder ? "true" : "false",
					   lg_pooling_name(lg_model_pooling(m)));
	}
	else
		lg_buf_appendf(&b,
					   "file:           %s (GGUF v%u, %.2f MiB)\n"
					   "architecture:   %s%s%s%s\n"
					   "parameters:     %lld (%.2f M)\n"
					   "file type:      %s\n"
					   "tensor types:   %s\n"
					   "context length: %d\n"
					   "dimensions:     n_embd %d, n_layer %d, n_head %d, n_head_kv %d, head_dim %d, n_ff %d\n"
					   "norm:           %s, eps %g\n"
					   "rope:           %s, freq_base %g, freq_scale %g, n_rot %d%s\n"
					   "output:         %s%s\n"
					   "tokenizer:      %s, %d tokens, bos %d, eos %d, add_bos %s\n"
					   "chat template:  %s\n",
					   o.model, m->gguf->version, m->file_size / (1024.0 * 1024.0),
					   lg_arch_name(hp->arch), hp->name[0] ? " (" : "", hp->name, hp->name[0] ? ")" : "",
					   (long long) hp->n_params, hp->n_params / 1e6, hp->ftype_name, types,
					   hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv,
					   hp->head_dim, hp->n_ff, hp->encoder ? "layer" : "rms",
					   hp->encoder ? hp->norm_eps : hp->rms_eps,
					   hp->rope.style == LG_ROPE_NEOX ? "neox" : "norm", hp->rope.freq_base,
					   hp->rope.freq_scale, hp->rope.n_rot, hp->rope.freq_factors ? ", freq factors" : "",
					   hp->encoder ? "none (an encoder: embeddings only), pooling " :
					   hp->tied_output ? "tied to token embeddings" : "separate matrix",
					   hp->encoder ? lg_pooling_name(lg_model_pooling(m)) : "",
					   lg_vocab_type_name(m->vocab), hp->n_vocab, lg_vocab_bos(m->vocab),
					   lg_vocab_eos(m->vocab), lg_vocab_add_bos(m->vocab) ? "yes" : "no",
					   m->chat_template ? "present" : "none");
	fwrite(b.data, 1, b.len, stdout);
	lg_buf_free(&b);
	lg_model_free(m);
	return 0;
}
