/*
 * cmd_plugin.c — `llamagpu plugin-check FILE [--sha256 HEX]`: open an engine
 * plugin as the engine would and report what it is.
 *
 * The extension runs this as a subprocess when an engine plugin is
 * installed or enabled: a Postgres backend never loads plugin code itself.
 * Output is one key=value per line: status (plugin.h's names: ok, open,
 * checksum, load, symbol, abi, invalid), sha256, abi_version, name, version,
 * description, error.  Exit status 0 when the plugin can be loaded, 1 when
 * not, 2 for bad arguments.
 */
#include "cli.h"
#include "plugin.h"

#include <stdio.h>
#include <string.h>

/* Print one key=value line, the value's newlines made spaces. */
static void
put(const char *key, const char *value)
{
	printf("%s=", key);
	for (const char *p = value ? value : ""; *p; p++)
		putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
	putchar('\n');
}

/* `llamagpu plugin-check`: key=value lines on stdout. */
int
cmd_plugin_check(int argc, char **argv)
{
	const char *path = NULL;
	const char *want = NULL;
	plugin_lib	lib;
	plugin_fail rc;
	char		err[512] = "";
	char		num[16];

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--sha256") == 0 && i + 1 < argc)
			want = argv[++i];
		else if (strcmp(argv[i], "--help") == 0)
		{
			printf("usage: llamagpu plugin-check FILE [--sha256 HEX]\n");
			return 0;
		}
		else if (argv[i][0] != '-' && path == NULL)
			path = argv[i];
		else
			return cli_fail("plugin-check", 2, "unexpected argument \"%s\"", argv[i]);
	}
	if (path == NULL)
		return cli_fail("plugin-check", 2, "a plugin file is required");

	rc = plugin_open(path, want, &lib, err, sizeof(err));
	put("status", plugin_fail_name(rc));
	if (lib.sha256[0])
		put("sha256", lib.sha256);
	if (rc == PLUGIN_OK || rc == PLUGIN_ERR_ABI || rc == PLUGIN_ERR_INVALID)
	{
		snprintf(num, sizeof(num), "%u", (unsigned) lib.abi_version);
		put("abi_version", num);
	}
	if (rc == PLUGIN_OK)
	{
		put("name", lib.name);
		put("version", lib.api.version);
		put("description", lib.api.description);
	}
	else
		put("error", err);
	fflush(stdout);
	return rc == PLUGIN_OK ? 0 : 1;
}
