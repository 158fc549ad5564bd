/*
 * plugins.c — the SQL side of engine plugins (docs/plugins.md):
 * llm_plugin_inspect runs `llamagpu plugin-check` on a file (a backend never
 * loads plugin code), llm_plugin_engine_sync writes the database's list of
 * enabled engine plugins at commit and asks the supervisor to restart the
 * engine with it, llm_plugin_engine_state says what the engine loaded and
 * what the supervisor disabled, and the GENERATE options that select a
 * plugin are checked here.  The registry itself is SQL (90_plugins.sql).
 */
#include "llamagpu.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../engine/lg_plugin.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#define PLUGIN_CHECK_TIMEOUT_MS 30000
#define PLUGIN_CHECK_OUTPUT_MAX 65536

PG_FUNCTION_INFO_V1(llm_plugin_inspect);
PG_FUNCTION_INFO_V1(llm_plugin_engine_state);
PG_FUNCTION_INFO_V1(llm_plugin_engine_sync);
PG_FUNCTION_INFO_V1(llm_plugin_abi_version);

/* What this transaction changed, for the commit callback (TopMemoryContext). */
static bool sync_pending = false;	/* this database's list is rewritten at commit */
static bool sync_dropped = false;	/* ... or removed, if the extension is gone by then */
static List *sync_clear = NIL;	/* plugins whose crash marks go at commit */
static char *sync_tmp = NULL;	/* the list written at pre-commit, renamed at commit */
static List *dropped_dbs = NIL; /* OIDs of databases dropped: their lists go at commit */
static bool callback_registered = false;

static void plugins_xact_callback(XactEvent event, void *arg);

/* Have plugins_xact_callback called at the transaction's end. */
static void
register_callback(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(plugins_xact_callback, NULL);
		callback_registered = true;
	}
}

/* The child side of plugin-check: stdout to the pipe, then exec. */
static void
exec_plugin_check(int out_fd, char **argv)
{
	sigset_t	none;

	dup2(out_fd, 1);
#ifdef SYS_close_range
	syscall(SYS_close_range, 3, ~0U, 0);
#endif
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(argv[0], argv);
	_exit(127);
}

/* Run `llamagpu plugin-check path [--sha256 want]`; its stdout (palloc'd). */
static char *
run_plugin_check(const char *path, const char *want)
{
	char	   *argv[6];
	int			fds[2];
	pid_t		pid;
	int			status = 0;
	StringInfoData out;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PLUGIN_CHECK_TIMEOUT_MS);

	argv[0] = llamagpu_engine_path;
	argv[1] = "plugin-check";
	argv[2] = (char *) path;
	argv[3] = want ? "--sha256" : NULL;
	argv[4] = (char *) want;
	argv[5] = NULL;
	if (pipe(fds) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not create a pipe: %m")));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
	{
		close(fds[0]);
		close(fds[1]);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not fork: %m")));
	}
	if (pid == 0)
		exec_plugin_check(fds[1], argv);
	close(fds[1]);

	initStringInfo(&out);
	PG_TRY();
	{
		for (;;)
		{
			struct pollfd pfd = {fds[0], POLLIN, 0};
			char		buf[4096];
			ssize_t		n;
			int			rc;

			CHECK_FOR_INTERRUPTS();
			if (GetCurrentTimestamp() >= deadline)
				ereport(ERROR,
						(errcode(ERRCODE_QUERY_CANCELED),
						 errmsg("llamagpu plugin-check did not finish within %d seconds",
								PLUGIN_CHECK_TIMEOUT_MS / 1000),
						 errdetail("The plugin's lg_plugin_init may hang.")));
			rc = poll(&pfd, 1, 100);
			if (rc < 0 && errno != EINTR)
				ereport(ERROR,
						(errcode(ERRCODE_SYSTEM_ERROR),
						 errmsg("could not poll: %m")));
			if (rc <= 0)
				continue;
			n = read(fds[0], buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (out.len + n > PLUGIN_CHECK_OUTPUT_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("llamagpu plugin-check wrote more than %d bytes", PLUGIN_CHECK_OUTPUT_MAX)));
			appendBinaryStringInfo(&out, buf, (int) n);
		}
	}
	PG_CATCH();
	{
		close(fds[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		PG_RE_THROW();
	}
	PG_END_TRY();
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* 0 loadable, 1 not (the output says why); anything else is a failure to run it */
	if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 1) ||
		strstr(out.data, "status=") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("could not check engine plugin \"%s\"", path),
				 errdetail(WIFSIGNALED(status) ? "llamagpu plugin-check was terminated by signal %d." :
						   "llamagpu plugin-check exited with status %d.",
						   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)),
				 errhint("Check llamagpu.engine_path (\"%s\"); a plugin whose lg_plugin_init crashes cannot be installed.",
						 llamagpu_engine_path)));
	return out.data;
}

/* The value of key= in plugin-check's output (palloc'd), or NULL. */
static char *
check_field(const char *out, const char *key)
{
	size_t		klen = strlen(key);
	const char *line = out;

	while (*line)
	{
		const char *end = strchr(line, '\n');

		if (end == NULL)
			end = line + strlen(line);
		if (strncmp(line, key, klen) == 0 && line[klen] == '=')
			return pnstrdup(line + klen + 1, end - (line + klen + 1));
		line = *end ? end + 1 : end;
	}
	return NULL;
}

/*
 * A value of plugin-check's output as text: the plugin's own strings
 * (version, description) are whatever bytes it holds, so text that is not
 * valid in the database encoding has its non-ASCII bytes made '?' rather
 * than stored as invalid text.
 */
static Datum
check_text(char *v)
{
	if (!pg_verifymbstr(v, strlen(v), true))
		for (char *p = v; *p; p++)
			if ((unsigned char) *p >= 0x80)
				*p = '?';
	return CStringGetTextDatum(v);
}

/* llm_plugin_inspect(path, expected_sha256): what plugin-check says (superuser only). */
Datum
llm_plugin_inspect(PG_FUNCTION_ARGS)
{
	char	   *path;
	char	   *want = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *out;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7];
	const char *const keys[7] = {"status", "sha256", "abi_version", "name", "version", "description", "error"};

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to inspect engine plugin files"),
				 errdetail("Only a superuser may examine files of the database server as engine plugins.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("path must not be null")));
	path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("engine plugin path \"%s\" is not absolute", path)));
	if (want && (strlen(want) != 64 || strspn(want, "0123456789abcdefABCDEF") != 64))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid checksum \"%s\"", want),
				 errdetail("A checksum is the SHA-256 of the file, 64 hexadecimal digits.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	out = run_plugin_check(path, want);
	for (int i = 0; i < 7; i++)
	{
		char	   *v = check_field(out, keys[i]);

		nulls[i] = v == NULL;
		if (v == NULL)
			values[i] = (Datum) 0;
		else if (i == 2)
		{
			/* an ABI version is 32 bits unsigned: one past int's range is no version we know (NULL) */
			char	   *end;
			long long	abi;

			errno = 0;
			abi = strtoll(v, &end, 10);
			nulls[i] = end == v || *end != '\0' || errno != 0 || abi < 0 || abi > PG_INT32_MAX;
			values[i] = nulls[i] ? (Datum) 0 : Int32GetDatum((int32) abi);
		}
		else
			values[i] = check_text(v);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* llm_plugin_abi_version(): LG_PLUGIN_ABI_VERSION. */
Datum
llm_plugin_abi_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(LG_PLUGIN_ABI_VERSION);
}

/* llm_plugin_engine_state's result, and the plugins already reported crashed. */
typedef struct StateScan
{
	ReturnSetInfo *rsinfo;
	List	   *crashed;
} StateScan;

/* Add a row to llm_plugin_engine_state's result. */
static void
put_state(ReturnSetInfo *rsinfo, const char *name, const char *state, const char *error)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, error == NULL || error[0] == '\0'};

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(state);
	values[2] = nulls[2] ? (Datum) 0 : CStringGetTextDatum(error);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* EngineFrameForEach callback: one STATUS `plugin` field (name TAB version TAB loaded|failed TAB error). */
static void
add_engine_plugin(const char *value, void *arg)
{
	StateScan  *scan = arg;
	char	   *copy = pstrdup(value);
	char	   *f[4] = {copy, NULL, NULL, NULL};
	int			n = 1;
	ListCell   *lc;

	for (char *p = copy; *p && n < 4; p++)
		if (*p == '\t')
		{
			*p = '\0';
			f[n++] = p + 1;
		}
	if (n < 3)
		return;
	foreach(lc, scan->crashed)
		if (strcmp(lfirst(lc), f[0]) == 0)
			return;
	put_state(scan->rsinfo, f[0], f[2], n == 4 ? f[3] : NULL);
}

/* llm_plugin_engine_state(): crashed plugins, then what the running engine reports. */
Datum
llm_plugin_engine_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StateScan	scan;
	List	   *reasons;
	ListCell   *n,
			   *r;
	EngineConn *conn;

	InitMaterializedSRF(fcinfo, 0);
	scan.rsinfo = rsinfo;
	PluginReadCrashed(&scan.crashed, &reasons);
	forboth(n, scan.crashed, r, reasons)
		put_state(rsinfo, lfirst(n), "crashed", lfirst(r));
	conn = EngineConnect(0, true);
	if (conn != NULL)
	{
		EngineFrame res;

		EngineCall(conn, LG_FRAME_STATUS, NULL, &res);
		EngineClose(conn);
		EngineFrameForEach(&res, "plugin", add_engine_plugin, &scan);
	}
	return (Datum) 0;
}

/* Pre-commit: write this database's list of enabled engine plugins to a temporary file. */
static void
write_pending_list(void)
{
	StringInfoData buf;
	char		path[MAXPGPATH];
	char	   *query;
	int			rc;

	initStringInfo(&buf);
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* the registry is in the extension's schema */
	rc = SPI_execute("SELECT n.nspname FROM pg_catalog.pg_extension e "
					 "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
					 "WHERE e.extname = 'llamagpu'", true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %d", rc);
	if (SPI_processed != 1)
	{
		/* dropped in this transaction: no registry, so no list (removed at commit) */
		SPI_finish();
		PopActiveSnapshot();
		return;
	}
	query = psprintf("SELECT name, checksum, source FROM %s.llm_plugin_registry "
					 "WHERE kind = 'engine' AND enabled ORDER BY name",
					 quote_identifier(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)));
	rc = SPI_execute(query, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %d", rc);
	for (uint64 i = 0; i < SPI_processed; i++)
		appendStringInfo(&buf, "%s\t%s\t%s\n",
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
						 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3));
	SPI_finish();
	PopActiveSnapshot();
	snprintf(path, sizeof(path), "%s/%u.list.pending.%d", PluginDir(), MyDatabaseId, MyProcPid);
	PluginWriteFile(path, buf.data, buf.len);
	sync_tmp = MemoryContextStrdup(TopMemoryContext, path);
}

/* Forget what this transaction had pending. */
static void
reset_pending(void)
{
	if (sync_tmp)
	{
		unlink(sync_tmp);
		pfree(sync_tmp);
	}
	sync_tmp = NULL;
	list_free_deep(sync_clear);
	sync_clear = NIL;
	list_free(dropped_dbs);
	dropped_dbs = NIL;
	sync_pending = false;
	sync_dropped = false;
}

/*
 * Remove the list of database db; true if there was one.  After commit:
 * an error can only be reported.
 */
static bool
remove_list(Oid db)
{
	char		path[MAXPGPATH];

	snprintf(path, sizeof(path), "%s/%u.list", PluginDir(), db);
	if (unlink(path) == 0)
		return true;
	if (errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", path),
				 errdetail("The engine keeps loading the engine plugins it lists."),
				 errhint("Remove the file by hand.")));
	return false;
}

/*
 * The transaction's end: at pre-commit the list is written (errors still
 * abort the transaction), at commit it replaces the old one, crash marks
 * of re-enabled plugins go, and the supervisor is told to look; an abort
 * throws it all away.
 */
static void
plugins_xact_callback(XactEvent event, void *arg)
{
	if (!sync_pending && dropped_dbs == NIL)
		return;
	if (event == XACT_EVENT_PRE_COMMIT)
	{
		/* writes nothing if the extension was dropped (and not created again) */
		if (sync_pending)
			write_pending_list();
		return;
	}
	if (event == XACT_EVENT_PRE_PREPARE && sync_pending)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot prepare a transaction that changed llamagpu plugins"),
				 errdetail("The engine's list of plugins is written when the transaction commits.")));
	if (event == XACT_EVENT_COMMIT)
	{
		char		path[MAXPGPATH];
		pid_t		supervisor = 0;
		ListCell   *lc;

		snprintf(path, sizeof(path), "%s/%u.list", PluginDir(), MyDatabaseId);
		if (sync_tmp == NULL)
		{
			/* the extension was dropped: its plugins go with it */
			if (sync_dropped && remove_list(MyDatabaseId))
				ereport(LOG,
						(errmsg("llamagpu: removed the engine plugin list of database %u (extension dropped)",
								MyDatabaseId)));
		}
		else if (rename(sync_tmp, path) != 0)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not rename \"%s\" to \"%s\": %m", sync_tmp, path),
					 errdetail("The engine keeps its previous list of plugins.")));
		else
		{
			pfree(sync_tmp);
			sync_tmp = NULL;
		}
		foreach(lc, dropped_dbs)
			if (remove_list(lfirst_oid(lc)))
				ereport(LOG,
						(errmsg("llamagpu: removed the engine plugin list of database %u (database dropped)",
								lfirst_oid(lc))));
		PG_TRY();
		{
			PluginClearCrashed(sync_clear);
		}
		PG_CATCH();
		{
			/* committed already: an error here can only be reported */
			EmitErrorReport();
			FlushErrorState();
		}
		PG_END_TRY();
		if (llamagpu_shared)
		{
			SpinLockAcquire(&llamagpu_shared->mutex);
			supervisor = llamagpu_shared->supervisor_pid;
			SpinLockRelease(&llamagpu_shared->mutex);
		}
		/* the supervisor rebuilds the engine's arguments and restarts it if they changed */
		if (supervisor > 0)
			kill(supervisor, SIGHUP);
		reset_pending();
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		reset_pending();
}

/* llm_plugin_engine_sync(clear_crashed): rewrite the plugin list at commit. */
Datum
llm_plugin_engine_sync(PG_FUNCTION_ARGS)
{
	MemoryContext old;

	register_callback();
	sync_pending = true;
	if (!PG_ARGISNULL(0))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
		Datum	   *elems;
		bool	   *enulls;
		int			n;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
		old = MemoryContextSwitchTo(TopMemoryContext);
		for (int i = 0; i < n; i++)
			if (!enulls[i])
				sync_clear = lappend(sync_clear, TextDatumGetCString(elems[i]));
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_VOID();
}

/*
 * DROP EXTENSION llamagpu (llamagpu.h): at pre-commit the list is written
 * again from the registry if the extension is there after all (a savepoint
 * rolled back, or it was created again), else removed at commit.
 */
void
PluginExtensionDropped(void)
{
	register_callback();
	sync_pending = true;
	sync_dropped = true;
}

/* DROP DATABASE db (llamagpu.h): its list is removed at commit. */
void
PluginDatabaseDropped(Oid db)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	register_callback();
	dropped_dbs = lappend_oid(dropped_dbs, db);
	MemoryContextSwitchTo(old);
}

/* Check option logits_processor or plugin_options and add its GENERATE field (llamagpu.h). */
void
PluginGenerateOption(StringInfo fields, const char *key, JsonbValue *v)
{
	if (strcmp(key, "logits_processor") == 0)
	{
		char	   *name;

		if (v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("option \"logits_processor\" must be a string")));
		name = pnstrdup(v->val.string.val, v->val.string.len);
		if (strlen(name) < 1 || strlen(name) > LG_PLUGIN_NAME_MAX ||
			strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(name))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid engine plugin name \"%s\" in option \"logits_processor\"", name),
					 errhint("See the engine plugins in llamagpu.llm_plugins.")));
		EngineField(fields, key, name);
		return;
	}
	/* plugin_options: a JSON object, given to the plugin as text */
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("option \"plugin_options\" must be a JSON object")));
	EngineField(fields, key, JsonbToCString(NULL, v->val.binary.data, v->val.binary.len));
}
