/*
 * main.c — `llamagpu`: dispatch to the subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define LLAMAGPU_VERSION "0.1.0"

static const struct
{
	const char *name;
	int			(*fn) (int argc, char **argv);
	const char *usage;
}			commands[] = {
	{"info", cmd_info, "info -m FILE [--json]"},
	{"tokenize", cmd_tokenize, "tokenize -m FILE [--bos] [--special] --jsonl"},
	{"detokenize", cmd_detokenize, "detokenize -m FILE [--special] --jsonl"},
	{"generate", cmd_generate, "generate -m FILE -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--kv f16|f32] [--device cpu|auto|cuda:N] [--json] ..."},
	{"eval", cmd_eval, "eval -m FILE --ids 1,2,3 [--top K] [--kv f16|f32] [--device cpu|auto|cuda:N] --json"},
	{"embed", cmd_embed, "embed -m FILE [--pooling none|mean|cls|last] [--no-normalize] [--batch N] [--json] [TEXT ...]"},
	{"bench", cmd_bench, "bench -m FILE [-p 128] [-n 32] [-t THREADS] [-r REPS] [--json]"},
	{"synth", cmd_synth, "synth --arch llama|qwen2 --dim D --layers L --heads H --kv-heads K --ffn F (--vocab-from VOCAB.gguf | --vocab-bytes) --type T --seed S -o OUT.gguf"},
	{"grammar", cmd_grammar, "grammar check|bench --gbnf FILE [--text STRING | --file FILE] [-m MODEL.gguf]"},
	{"chat-template", cmd_chat_template, "chat-template render (--template FILE | -m FILE) --messages JSON|@FILE [--tools JSON] [--no-generation-prompt] [--bos S] [--eos S] [--now UNIX]"},
	{"plugin-check", cmd_plugin_check, "plugin-check FILE [--sha256 HEX]   (an engine plugin's ABI version and name)"},
	{"serve", cmd_serve, "serve --socket-dir DIR [options]   (started by the Postgres extension)"},
};

#define N_COMMANDS (int) (sizeof(commands) / sizeof(commands[0]))

/* Print the list of subcommands. */
static void
usage(FILE *f)
{
	fprintf(f, "llamagpu %s — run LLaMA-family GGUF models\n\nusage:\n", LLAMAGPU_VERSION);
	for (int i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  llamagpu %s\n", commands[i].usage);
	fprintf(f, "\n`llamagpu COMMAND --help` describes a command's options.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2)
	{
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
	{
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0)
	{
		printf("llamagpu %s\n", LLAMAGPU_VERSION);
		return 0;
	}
	for (int i = 0; i < N_COMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "llamagpu: unknown command \"%s\" (try llamagpu --help)\n", argv[1]);
	return 2;
}
