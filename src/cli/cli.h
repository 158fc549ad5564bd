/*
 * cli.h — the `llamagpu` command-line tool: one cmd_<name>.c per subcommand.
 *
 * Every subcommand takes argc/argv after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit status: 0 on success, 1 on a
 * runtime failure, 2 on bad arguments.  Errors are one line on stderr,
 * "llamagpu <cmd>: <message>".
 */
#ifndef LG_CLI_H
#define LG_CLI_H

#include <stdbool.h>
#include <stdint.h>

int			cmd_info(int argc, char **argv);
int			cmd_tokenize(int argc, char **argv);
int			cmd_detokenize(int argc, char **argv);
int			cmd_generate(int argc, char **argv);
int			cmd_eval(int argc, char **argv);
int			cmd_bench(int argc, char **argv);
int			cmd_synth(int argc, char **argv);
int			cmd_embed(int argc, char **argv);
int			cmd_serve(int argc, char **argv);
int			cmd_grammar(int argc, char **argv);
int			grammar_gbnf(int argc, char **argv);	/* cmd_grammar_schema.c */
int			grammar_schema_batch(int argc, char **argv);
int			cmd_chat_template(int argc, char **argv);
int			cmd_plugin_check(int argc, char **argv);

/* Print "llamagpu <cmd>: <msg>\n" to stderr; returns status for `return cli_fail(...)`. */
int			cli_fail(const char *cmd, int status, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));

#endif							/* LG_CLI_H */
