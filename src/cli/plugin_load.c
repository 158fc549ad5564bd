/*
 * plugin_load.c — open an engine plugin and check its table (plugin.h).
 */
#include "plugin.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The status= name of a failure (plugin.h). */
const char *
plugin_fail_name(plugin_fail f)
{
	static const char *const names[] = {"ok", "open", "checksum", "load", "symbol", "abi", "invalid"};

	return (unsigned) f < sizeof(names) / sizeof(names[0]) ? names[f] : "invalid";
}

/* Whether s is a valid plugin name (plugin.h). */
bool
plugin_name_valid(const char *s)
{
	size_t		n = 0;

	if (s == NULL)
		return false;
	for (; s[n]; n++)
		if (!isalnum((unsigned char) s[n]) && s[n] != '_' && s[n] != '-')
			return false;
	return n >= 1 && n <= LG_PLUGIN_NAME_MAX;
}

/*
 * Split a --plugin NAME:SHA256:PATH spec (plugin.h).  The name is checked
 * as a plugin name, the checksum as 64 hex digits; the path is the rest
 * (it may hold ':').
 */
bool
plugin_spec_parse(const char *spec, plugin_spec *out, char *err, size_t err_size)
{
	const char *c1 = strchr(spec, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	memset(out, 0, sizeof(*out));
	if (c1 == NULL || c2 == NULL || c2[1] == '\0')
	{
		snprintf(err, err_size, "--plugin \"%s\": expected NAME:SHA256:PATH", spec);
		return false;
	}
	if (c1 == spec || c1 - spec > LG_PLUGIN_NAME_MAX)
	{
		snprintf(err, err_size, "--plugin \"%s\": the name must be 1 to %d characters", spec,
				 LG_PLUGIN_NAME_MAX);
		return false;
	}
	memcpy(out->name, spec, (size_t) (c1 - spec));
	if (!plugin_name_valid(out->name))
	{
		snprintf(err, err_size, "--plugin \"%s\": invalid plugin name", spec);
		return false;
	}
	for (const char *h = c1 + 1; h < c2; h++)
		if (!isxdigit((unsigned char) *h))
		{
			c2 = NULL;
			break;
		}
	if (c2 == NULL || c2 - c1 - 1 != 64)
	{
		snprintf(err, err_size, "--plugin \"%s\": the SHA-256 must be 64 hex digits", spec);
		return false;
	}
	memcpy(out->sha256, c1 + 1, 64);
	out->path = c2 + 1;
	return true;
}

/* Check the table a plugin's init returned and copy it into out. */
static plugin_fail
check_table(const lg_plugin_v1 *t, plugin_lib *out, char *err, size_t err_size)
{
	size_t		need = offsetof(lg_plugin_v1, logits) + sizeof(t->logits);

	out->abi_version = t->abi_version;
	if (t->abi_version != LG_PLUGIN_ABI_VERSION)
	{
		snprintf(err, err_size, "the plugin implements ABI version %u; this engine implements version %d",
				 (unsigned) t->abi_version, LG_PLUGIN_ABI_VERSION);
		return PLUGIN_ERR_ABI;
	}
	if (t->size < need)
	{
		snprintf(err, err_size, "the plugin's table is %u bytes, at least %zu are needed",
				 (unsigned) t->size, need);
		return PLUGIN_ERR_INVALID;
	}
	/* members appended after the plugin was built are absent */
	memset(&out->api, 0, sizeof(out->api));
	memcpy(&out->api, t, t->size < sizeof(out->api) ? t->size : sizeof(out->api));
	if (!plugin_name_valid(out->api.name))
	{
		snprintf(err, err_size, "the plugin's name is not 1 to %d letters, digits, '_' and '-'",
				 LG_PLUGIN_NAME_MAX);
		return PLUGIN_ERR_INVALID;
	}
	strcpy(out->name, out->api.name);
	if (out->api.logits == NULL)
	{
		snprintf(err, err_size, "the plugin has no logits hook");
		return PLUGIN_ERR_INVALID;
	}
	if (out->api.version == NULL)
		out->api.version = "";
	return PLUGIN_OK;
}

/* Hash, load and check a plugin (plugin.h). */
plugin_fail
plugin_open(const char *path, const char *want_sha256, plugin_lib *out, char *err, size_t err_size)
{
	char		fdpath[64];
	lg_plugin_init_fn init;
	const lg_plugin_v1 *t;
	plugin_fail rc;
	int			fd;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		snprintf(err, err_size, "cannot open \"%s\": %s", path, strerror(errno));
		return PLUGIN_ERR_OPEN;
	}
	if (!plugin_sha256_fd(fd, out->sha256, err, err_size))
	{
		close(fd);
		return PLUGIN_ERR_OPEN;
	}
	if (want_sha256 && strcasecmp(want_sha256, out->sha256) != 0)
	{
		snprintf(err, err_size, "checksum mismatch: \"%s\" has SHA-256 %s, expected %s",
				 path, out->sha256, want_sha256);
		close(fd);
		return PLUGIN_ERR_CHECKSUM;
	}
	/*
	 * Load what was hashed, not whatever the path names by now.  The
	 * descriptor stays open while the library is loaded: dlopen knows a
	 * library by its path, and a reused descriptor number would name
	 * another plugin by the same path.
	 */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	out->handle = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);
	if (out->handle == NULL)
	{
		snprintf(err, err_size, "cannot load \"%s\": %s", path, dlerror());
		close(fd);
		return PLUGIN_ERR_LOAD;
	}
	out->fd = fd;
	*(void **) &init = dlsym(out->handle, LG_PLUGIN_INIT_SYMBOL);
	if (init == NULL)
	{
		snprintf(err, err_size, "\"%s\" does not export %s", path, LG_PLUGIN_INIT_SYMBOL);
		rc = PLUGIN_ERR_SYMBOL;
	}
	else if ((t = init()) == NULL)
	{
		snprintf(err, err_size, "%s of \"%s\" returned NULL", LG_PLUGIN_INIT_SYMBOL, path);
		rc = PLUGIN_ERR_SYMBOL;
	}
	else
		rc = check_table(t, out, err, err_size);
	if (rc != PLUGIN_OK)
	{
		dlclose(out->handle);
		close(out->fd);
		out->handle = NULL;
	}
	return rc;
}
