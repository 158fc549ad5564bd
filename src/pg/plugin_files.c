/*
 * plugin_files.c — the files through which backends tell the supervisor
 * which engine plugins to load, and the supervisor tells backends which it
 * disabled after crashes.  The supervisor has no database connection, so
 * it cannot read llm_plugin_registry; files in the data directory are what
 * both sides can reach (docs/plugins.md):
 *
 *   DataDir/llamagpu_plugins/<database oid>.list
 *       one line per enabled engine plugin of that database:
 *       name TAB sha256 TAB path; written at commit by the backend that
 *       changed the registry (plugins.c)
 *   DataDir/llamagpu_plugins/crashed
 *       one line per plugin the supervisor disabled: name TAB unix time TAB
 *       reason; cleared for a plugin when it is enabled, disabled or dropped
 *
 * Every file is replaced by a rename, so a reader sees the old or the new
 * content; read-modify-write of the crash marks holds an flock.
 */
#include "llamagpu.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#define PLUGIN_DIR_NAME "llamagpu_plugins"

/* DataDir/llamagpu_plugins (llamagpu.h). */
const char *
PluginDir(void)
{
	static char dir[MAXPGPATH];

	if (dir[0] == '\0')
		snprintf(dir, sizeof(dir), "%s/%s", DataDir, PLUGIN_DIR_NAME);
	return dir;
}

/* Make the directory (mode 0700) if it is not there. */
static void
ensure_dir(void)
{
	if (mkdir(PluginDir(), S_IRWXU) != 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", PluginDir())));
}

/* Replace path by data, through a temporary file and a rename. */
void
PluginWriteFile(const char *path, const char *data, size_t len)
{
	char		tmp[MAXPGPATH];
	int			fd;

	ensure_dir();
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, MyProcPid);
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	if (write(fd, data, len) != (ssize_t) len)
	{
		int			save = errno ? errno : ENOSPC;

		CloseTransientFile(fd);
		unlink(tmp);
		errno = save;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	}
	CloseTransientFile(fd);
	if (rename(tmp, path) != 0)
	{
		int			save = errno;

		unlink(tmp);
		errno = save;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename \"%s\" to \"%s\": %m", tmp, path)));
	}
}

/* A whole file as a palloc'd NUL-terminated string; NULL if it does not exist. */
static char *
read_file(const char *path)
{
	StringInfoData buf;
	char		chunk[4096];
	int			fd;
	ssize_t		n;

	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
	{
		if (errno == ENOENT)
			return NULL;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	}
	initStringInfo(&buf);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		appendBinaryStringInfo(&buf, chunk, (int) n);
	CloseTransientFile(fd);
	return buf.data;
}

/* Split a line into tab-separated fields (in place); the number found. */
static int
split_tabs(char *line, char **fields, int max)
{
	int			n = 0;

	fields[n++] = line;
	for (char *p = line; *p && n < max; p++)
		if (*p == '\t')
		{
			*p = '\0';
			fields[n++] = p + 1;
		}
	return n;
}

/* Take the crash marks' lock (released by closing the returned descriptor). */
static int
lock_crashed(void)
{
	char		path[MAXPGPATH];
	int			fd;

	ensure_dir();
	snprintf(path, sizeof(path), "%s/crashed.lock", PluginDir());
	fd = OpenTransientFile(path, O_RDWR | O_CREAT | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", path)));
	(void) flock(fd, LOCK_EX);
	return fd;
}

/* The crash marks (llamagpu.h). */
void
PluginReadCrashed(List **names, List **reasons)
{
	char		path[MAXPGPATH];
	char	   *data;
	char	   *save;

	*names = NIL;
	*reasons = NIL;
	snprintf(path, sizeof(path), "%s/crashed", PluginDir());
	data = read_file(path);
	if (data == NULL)
		return;
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *f[3];

		if (split_tabs(line, f, 3) != 3)
			continue;
		*names = lappend(*names, pstrdup(f[0]));
		*reasons = lappend(*reasons, pstrdup(f[2]));
	}
}

/* Rewrite the crash marks: the old ones less those of drop, plus add (with reason). */
static void
rewrite_crashed(List *drop, List *add, const char *reason)
{
	char		path[MAXPGPATH];
	StringInfoData out;
	char	   *data;
	char	   *save;
	ListCell   *lc;
	int			lock;

	lock = lock_crashed();
	snprintf(path, sizeof(path), "%s/crashed", PluginDir());
	data = read_file(path);
	initStringInfo(&out);
	if (data)
		for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		{
			char	   *copy = pstrdup(line);
			char	   *f[3];
			bool		keep = split_tabs(copy, f, 3) == 3;

			foreach(lc, drop)
				if (keep && strcmp(f[0], lfirst(lc)) == 0)
					keep = false;
			foreach(lc, add)
				if (keep && strcmp(f[0], lfirst(lc)) == 0)
					keep = false;	/* replaced by the new mark */
			if (keep)
				appendStringInfo(&out, "%s\n", line);
		}
	foreach(lc, add)
	{
		appendStringInfo(&out, "%s\t%ld\t", (char *) lfirst(lc), (long) time(NULL));
		/* the reason is one line with no tabs */
		for (const char *p = reason; p && *p; p++)
			appendStringInfoChar(&out, *p == '\t' || *p == '\n' ? ' ' : *p);
		appendStringInfoChar(&out, '\n');
	}
	PG_TRY();
	{
		PluginWriteFile(path, out.data, out.len);
	}
	PG_FINALLY();
	{
		CloseTransientFile(lock);
	}
	PG_END_TRY();
}

/* Mark names crashed, for reason (llamagpu.h). */
void
PluginMarkCrashed(List *names, const char *reason)
{
	rewrite_crashed(NIL, names, reason);
}

/* Forget the crash marks of names (llamagpu.h). */
void
PluginClearCrashed(List *names)
{
	if (names != NIL)
		rewrite_crashed(names, NIL, NULL);
}

/* Whether the list of C strings l holds s. */
static bool
str_member(List *l, const char *s)
{
	ListCell   *lc;

	foreach(lc, l)
		if (strcmp(lfirst(lc), s) == 0)
			return true;
	return false;
}

/* list_sort's comparator for lists of C strings. */
static int
cmp_strings(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/*
 * Whether the database of list file name ("<oid>.list") still exists, by
 * its directory DataDir/base/<oid> (the supervisor has no connection to
 * look in pg_database).  The list of one that does not is left over from
 * a DROP DATABASE that did not remove it (llamagpu not loaded in the
 * backend that ran it, or a version before it did): it is removed, so a
 * database created later with the same OID does not inherit its plugins.
 */
static bool
database_exists(const char *name)
{
	char		path[MAXPGPATH];
	char	   *end;
	unsigned long oid;
	struct stat st;

	errno = 0;
	oid = strtoul(name, &end, 10);
	if (errno != 0 || end == name || strcmp(end, ".list") != 0 || oid == 0 || oid > PG_UINT32_MAX)
		return false;			/* not a list this code writes */
	snprintf(path, sizeof(path), "%s/base/%lu", DataDir, oid);
	if (stat(path, &st) == 0 || errno != ENOENT)
		return true;			/* a failed stat for another reason: keep its plugins */
	snprintf(path, sizeof(path), "%s/%s", PluginDir(), name);
	if (unlink(path) == 0)
		ereport(LOG,
				(errmsg("llamagpu: removed the engine plugin list of database %lu, which no longer exists", oid)));
	return false;
}

/* The engine's --plugin values from every database's list (llamagpu.h). */
List *
PluginEngineArgs(List **names)
{
	List	   *args = NIL;
	List	   *crashed;
	List	   *reasons;
	DIR		   *dir;
	struct dirent *de;
	List	   *files = NIL;
	ListCell   *lc;

	*names = NIL;
	PluginReadCrashed(&crashed, &reasons);
	dir = AllocateDir(PluginDir());
	if (dir == NULL)
		return NIL;				/* no plugin was ever enabled */
	while ((de = ReadDirExtended(dir, PluginDir(), LOG)) != NULL)
	{
		size_t		len = strlen(de->d_name);

		if (len > 5 && strcmp(de->d_name + len - 5, ".list") == 0 && database_exists(de->d_name))
			files = lappend(files, psprintf("%s/%s", PluginDir(), de->d_name));
	}
	FreeDir(dir);
	/* the same order every time, so a reload sees the same arguments */
	list_sort(files, cmp_strings);
	foreach(lc, files)
	{
		char	   *data = read_file(lfirst(lc));
		char	   *save;

		if (data == NULL)
			continue;
		for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		{
			char	   *f[3];

			if (split_tabs(line, f, 3) != 3 || str_member(crashed, f[0]) || str_member(*names, f[0]))
				continue;		/* crashed, or a name another database uses too */
			*names = lappend(*names, pstrdup(f[0]));
			args = lappend(args, psprintf("%s:%s:%s", f[0], f[1], f[2]));
		}
	}
	return args;
}
