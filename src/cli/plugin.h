/*
 * plugin.h — opening engine plugins (lg_plugin.h) in the `llamagpu` tool:
 * `llamagpu plugin-check` and `llamagpu serve` both go through
 * plugin_open, so what the extension checks at install is what the engine
 * checks at load.
 */
#ifndef LG_CLI_PLUGIN_H
#define LG_CLI_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lg_plugin.h"

/* Why a plugin could not be opened; the names are plugin-check's status= values. */
typedef enum plugin_fail
{
	PLUGIN_OK = 0,
	PLUGIN_ERR_OPEN,			/* the file cannot be opened or read */
	PLUGIN_ERR_CHECKSUM,		/* its SHA-256 is not the one expected */
	PLUGIN_ERR_LOAD,			/* dlopen failed (not a shared library, missing symbols) */
	PLUGIN_ERR_SYMBOL,			/* no lg_plugin_init, or it returned NULL */
	PLUGIN_ERR_ABI,				/* abi_version is not LG_PLUGIN_ABI_VERSION */
	PLUGIN_ERR_INVALID			/* the table is malformed (size, name, no logits hook) */
} plugin_fail;

typedef struct plugin_lib
{
	void	   *handle;			/* dlopen's */
	int			fd;				/* the file, open while loaded: dlopen knows it by /proc/self/fd/N */
	lg_plugin_v1 api;			/* the plugin's table; members past its size are NULL */
	uint32_t	abi_version;	/* what the plugin reported (also on PLUGIN_ERR_ABI) */
	char		name[LG_PLUGIN_NAME_MAX + 1];
	char		sha256[65];		/* of the file that was loaded */
} plugin_lib;

/*
 * Hash path, compare with want_sha256 (NULL: any), load it, call
 * lg_plugin_init and check its table.  The library is loaded from the
 * descriptor that was hashed, so the code that runs is the code that was
 * checked even if the file is replaced meanwhile.  On failure err says why
 * (and out holds what was learnt: sha256, abi_version).
 */
plugin_fail plugin_open(const char *path, const char *want_sha256, plugin_lib *out,
						char *err, size_t err_size);
const char *plugin_fail_name(plugin_fail f);
/* 1 to LG_PLUGIN_NAME_MAX letters, digits, '_' and '-'. */
bool		plugin_name_valid(const char *s);

/* A --plugin NAME:SHA256:PATH spec, split (path points into the spec). */
typedef struct plugin_spec
{
	char		name[LG_PLUGIN_NAME_MAX + 1];
	char		sha256[65];
	const char *path;
} plugin_spec;

/* Split and check a --plugin spec; false with err set. */
bool		plugin_spec_parse(const char *spec, plugin_spec *out, char *err, size_t err_size);

/* SHA-256 of an open file as 64 hex digits (sha256.c); false with err set. */
bool		plugin_sha256_fd(int fd, char hex[65], char *err, size_t err_size);

#endif							/* LG_CLI_PLUGIN_H */
