/*
 * supervisor.c — the background worker that runs the engine.
 *
 * The worker forks and execs `llamagpu serve ...`, so the engine is its
 * child (not the postmaster's): a crash of the engine is an ordinary child
 * exit here, and Postgres never sees it.  The engine gets
 * PR_SET_PDEATHSIG so that it dies with the worker.  When the engine exits
 * the worker starts it again after an exponential back-off; on SIGHUP it
 * restarts the engine if a setting the engine was started with changed; at
 * shutdown it stops the engine.
 *
 * Enabled engine plugins (docs/plugins.md) are part of the engine's
 * arguments: a backend that changes them signals SIGHUP, and the engine is
 * restarted with the new list.  When the engine dies abnormally
 * PLUGIN_CRASH_LIMIT times within PLUGIN_CRASH_WINDOW_MS while plugins are
 * loaded, the plugins are marked crashed (plugin_files.c) and the engine
 * starts again without them.
 */
#include "llamagpu.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define RESTART_DELAY_MIN_MS	100
#define RESTART_DELAY_MAX_MS	30000
#define STABLE_RUN_MS			10000	/* a run this long resets the back-off */
#define STOP_GRACE_MS			5000
#define JOB_CHECK_MS			5000	/* how often job workers are checked */
#define PLUGIN_CRASH_LIMIT		3		/* abnormal exits with plugins loaded ... */
#define PLUGIN_CRASH_WINDOW_MS	300000	/* ... within this long disable them */

static volatile sig_atomic_t got_sigterm = false;
static volatile sig_atomic_t got_sigchld = false;

static pid_t engine_pid = 0;
static char *engine_cmdline = NULL;	/* the settings the running engine got */
static int	engine_exit_status = 0; /* waitpid's status of the last exit */
static List *argv_plugins = NIL;	/* the plugins of the last build_argv (its context) */
static List *engine_plugins = NIL;	/* the running engine's plugins (TopMemoryContext) */
static TimestampTz plugin_crashes[PLUGIN_CRASH_LIMIT];	/* recent abnormal exits with plugins */
static int	n_plugin_crashes = 0;

/* Register the supervisor with the postmaster (from _PG_init). */
void
LlamagpuSupervisorRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_PostmasterStart;
	worker.bgw_restart_time = 1;
	strcpy(worker.bgw_library_name, "llamagpu");
	strcpy(worker.bgw_function_name, "llamagpu_supervisor_main");
	strcpy(worker.bgw_name, "llamagpu supervisor");
	strcpy(worker.bgw_type, "llamagpu supervisor");
	RegisterBackgroundWorker(&worker);
}

/* SIGTERM: stop the engine and exit. */
static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* SIGCHLD: the engine may have exited; the main loop reaps it. */
static void
handle_sigchld(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigchld = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Publish the engine's state in shared memory. */
static void
set_state(LlamagpuEngineState state, pid_t pid, bool started)
{
	SpinLockAcquire(&llamagpu_shared->mutex);
	llamagpu_shared->state = state;
	llamagpu_shared->engine_pid = pid;
	if (started)
	{
		if (llamagpu_shared->started_at != 0)
			llamagpu_shared->restarts++;
		llamagpu_shared->started_at = GetCurrentTimestamp();
	}
	SpinLockRelease(&llamagpu_shared->mutex);
}

/*
 * --plugin arguments for the enabled engine plugins (argv_plugins gets
 * their names).  A file that cannot be read is reported and the engine
 * runs without plugins: the supervisor itself must not fail.
 */
static List *
plugin_args(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *values = NIL;
	List	   *args = NIL;
	ListCell   *lc;

	argv_plugins = NIL;
	PG_TRY();
	{
		values = PluginEngineArgs(&argv_plugins);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		values = NIL;
		argv_plugins = NIL;
	}
	PG_END_TRY();
	foreach(lc, values)
	{
		args = lappend(args, pstrdup("--plugin"));
		args = lappend(args, lfirst(lc));
	}
	return args;
}

/* The engine's argument vector from the current settings (palloc'd, NULL-terminated). */
static char **
build_argv(void)
{
	List	   *args = NIL;
	char	  **argv;
	char	   *extra;
	char	   *tok;
	char	   *save;
	ListCell   *lc;
	int			i = 0;

	args = lappend(args, pstrdup(llamagpu_engine_path));
	args = lappend(args, pstrdup("serve"));
	args = lappend(args, pstrdup("--socket-dir"));
	args = lappend(args, pstrdup(LlamagpuSocketDir()));
	args = lappend(args, pstrdup("--threads"));
	args = lappend(args, psprintf("%d", llamagpu_threads));
	args = lappend(args, pstrdup("--device"));
	args = lappend(args, pstrdup(llamagpu_device && llamagpu_device[0] ? llamagpu_device : "auto"));
	args = lappend(args, pstrdup("--kv-cache-size"));
	args = lappend(args, psprintf("%d", llamagpu_kv_cache_size));
	args = lappend(args, pstrdup("--ctx-size"));
	args = lappend(args, psprintf("%d", llamagpu_context_size));
	args = lappend(args, pstrdup("--max-batch-tokens"));
	args = lappend(args, psprintf("%d", llamagpu_max_batch_tokens));
	args = lappend(args, pstrdup("--max-queued"));
	args = lappend(args, psprintf("%d", llamagpu_max_queued_requests));
	args = lappend(args, pstrdup("--log-level"));
	args = lappend(args, pstrdup(LlamagpuLogLevelName(llamagpu_log_level)));
	if (llamagpu_model_dir && llamagpu_model_dir[0])
	{
		args = lappend(args, pstrdup("--model-dir"));
		args = lappend(args, pstrdup(llamagpu_model_dir));
	}
	extra = pstrdup(llamagpu_engine_options ? llamagpu_engine_options : "");
	for (tok = strtok_r(extra, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
		args = lappend(args, pstrdup(tok));
	args = list_concat(args, plugin_args());

	argv = palloc0(sizeof(char *) * (list_length(args) + 1));
	foreach(lc, args)
		argv[i++] = lfirst(lc);
	return argv;
}

/* The arguments as one string, to tell whether a reload changed them. */
static char *
argv_string(char **argv)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; argv[i]; i++)
		appendStringInfo(&buf, "%s%s", i ? " " : "", argv[i]);
	return buf.data;
}

/* Close every descriptor above stderr (the postmaster's sockets among them). */
static void
close_inherited_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3, ~0U, 0) == 0)
		return;
#endif
	for (int fd = 3; fd < 65536; fd++)
		close(fd);
}

/* Whether two lists of C strings are equal. */
static bool
same_names(List *a, List *b)
{
	if (list_length(a) != list_length(b))
		return false;
	for (int i = 0; i < list_length(a); i++)
		if (strcmp(list_nth(a, i), list_nth(b, i)) != 0)
			return false;
	return true;
}

/* Fork and exec the engine. */
static void
start_engine(void)
{
	char	  **argv = build_argv();
	pid_t		parent = getpid();
	pid_t		pid;

	if (engine_cmdline)
		pfree(engine_cmdline);
	engine_cmdline = MemoryContextStrdup(TopMemoryContext, argv_string(argv));

	fflush(NULL);
	pid = fork();
	if (pid < 0)
	{
		ereport(WARNING,
				(errmsg("llamagpu: could not fork the engine: %m")));
		set_state(LLAMAGPU_ENGINE_BACKOFF, 0, false);
		return;
	}
	if (pid == 0)
	{
		sigset_t	none;
		int			devnull;

		/* die with the supervisor, even if it dies between fork and prctl */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);

		/* a clean slate: default signals, no inherited descriptors */
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				signal(sig, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		close_inherited_fds();
		devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0 && devnull != 0)
		{
			dup2(devnull, 0);
			close(devnull);
		}
		setsid();
		execv(argv[0], argv);
		fprintf(stderr, "llamagpu: supervisor: could not execute \"%s\": %s\n",
				argv[0], strerror(errno));
		_exit(127);
	}

	engine_pid = pid;
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		/* crashes count against one set of plugins: another set starts afresh */
		if (!same_names(engine_plugins, argv_plugins))
			n_plugin_crashes = 0;
		list_free_deep(engine_plugins);
		engine_plugins = NIL;
		for (int i = 0; i < list_length(argv_plugins); i++)
			engine_plugins = lappend(engine_plugins, pstrdup(list_nth(argv_plugins, i)));
		MemoryContextSwitchTo(old);
	}
	set_state(LLAMAGPU_ENGINE_RUNNING, pid, true);
	ereport(LOG,
			(errmsg("llamagpu: engine started (PID %d)", (int) pid),
			 errdetail("Command: %s", engine_cmdline)));
}

/* Reap the engine if it exited; true if it did. */
static bool
reap_engine(bool log_exit)
{
	int			status;
	pid_t		pid;

	got_sigchld = false;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
	{
		if (pid != engine_pid)
			continue;
		engine_pid = 0;
		engine_exit_status = status;
		if (!log_exit)
			return true;
		if (WIFSIGNALED(status))
			ereport(LOG,
					(errmsg("llamagpu: engine (PID %d) was terminated by signal %d: %s",
							(int) pid, WTERMSIG(status), pg_strsignal(WTERMSIG(status)))));
		else
			ereport(LOG,
					(errmsg("llamagpu: engine (PID %d) exited with exit code %d",
							(int) pid, WEXITSTATUS(status))));
		return true;
	}
	return false;
}

/* Ask the engine to stop; kill it if it does not within the grace period. */
static void
stop_engine(void)
{
	if (engine_pid <= 0)
		return;
	ereport(LOG,
			(errmsg("llamagpu: stopping the engine (PID %d)", (int) engine_pid)));
	set_state(LLAMAGPU_ENGINE_STOPPING, engine_pid, false);
	kill(engine_pid, SIGTERM);
	for (int waited = 0; waited < STOP_GRACE_MS && engine_pid > 0; waited += 10)
	{
		if (reap_engine(false))
			break;
		pg_usleep(10 * 1000L);
	}
	if (engine_pid > 0)
	{
		ereport(LOG,
				(errmsg("llamagpu: engine (PID %d) did not stop within %d ms; killing it",
						(int) engine_pid, STOP_GRACE_MS)));
		kill(engine_pid, SIGKILL);
		waitpid(engine_pid, NULL, 0);
		engine_pid = 0;
	}
	set_state(LLAMAGPU_ENGINE_STOPPED, 0, false);
}

/*
 * The engine died abnormally: if it had plugins, count the crash, and after
 * PLUGIN_CRASH_LIMIT within the window mark its plugins crashed, so the
 * next start is without them.  True if plugins were disabled.
 */
static bool
count_plugin_crash(void)
{
	TimestampTz now = GetCurrentTimestamp();
	char	   *how;
	char	   *reason;
	StringInfoData names;
	ListCell   *lc;
	int			n = 0;

	if (engine_plugins == NIL ||
		(WIFEXITED(engine_exit_status) && WEXITSTATUS(engine_exit_status) == 0))
		return false;
	plugin_crashes[n_plugin_crashes++ % PLUGIN_CRASH_LIMIT] = now;
	for (int i = 0; i < Min(n_plugin_crashes, PLUGIN_CRASH_LIMIT); i++)
		if (TimestampDifferenceMilliseconds(plugin_crashes[i], now) <= PLUGIN_CRASH_WINDOW_MS)
			n++;
	if (n < PLUGIN_CRASH_LIMIT)
		return false;
	n_plugin_crashes = 0;

	how = WIFSIGNALED(engine_exit_status) ?
		psprintf("signal %d: %s", WTERMSIG(engine_exit_status), pg_strsignal(WTERMSIG(engine_exit_status))) :
		psprintf("exit code %d", WEXITSTATUS(engine_exit_status));
	reason = psprintf("disabled: the engine crashed %d times within %d s with this plugin loaded (last: %s)",
					  PLUGIN_CRASH_LIMIT, PLUGIN_CRASH_WINDOW_MS / 1000, how);
	initStringInfo(&names);
	foreach(lc, engine_plugins)
		appendStringInfo(&names, "%s%s", names.len ? ", " : "", (char *) lfirst(lc));
	PG_TRY();
	{
		PluginMarkCrashed(engine_plugins, reason);
	}
	PG_CATCH();
	{
		EmitErrorReport();
		FlushErrorState();
	}
	PG_END_TRY();
	ereport(WARNING,
			(errmsg("llamagpu engine crashed %d times within %d s with engine plugins loaded; restarting it without them",
					PLUGIN_CRASH_LIMIT, PLUGIN_CRASH_WINDOW_MS / 1000),
			 errdetail("Engine plugins disabled: %s.  Last exit: %s.", names.data, how),
			 errhint("Fix or drop the plugins; llm_enable_plugin() enables one again.")));
	return true;
}

/* On any exit of the supervisor, the engine goes too. */
static void
supervisor_exit(int code, Datum arg)
{
	stop_engine();
}

/* The supervisor's main loop. */
void
llamagpu_supervisor_main(Datum main_arg)
{
	TimestampTz next_start = 0;
	TimestampTz last_start = 0;
	TimestampTz jobs_checked = 0;
	int			delay_ms = 0;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);
	pqsignal(SIGCHLD, handle_sigchld);
	BackgroundWorkerUnblockSignals();

	if (llamagpu_shared == NULL)
		LlamagpuShmemInit();
	SpinLockAcquire(&llamagpu_shared->mutex);
	llamagpu_shared->supervisor_pid = MyProcPid;
	SpinLockRelease(&llamagpu_shared->mutex);
	before_shmem_exit(supervisor_exit, (Datum) 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "llamagpu supervisor loop",
									 ALLOCSET_DEFAULT_SIZES);
	while (!got_sigterm)
	{
		long		timeout = 1000;

		/* what one iteration allocates (argument vectors) goes with it */
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		if (got_sigchld && reap_engine(true))
		{
			long		ran_ms = TimestampDifferenceMilliseconds(last_start, GetCurrentTimestamp());

			/* exponential back-off, reset after a stable run or without the plugins that crashed it */
			if (count_plugin_crash() || ran_ms >= STABLE_RUN_MS || delay_ms == 0)
				delay_ms = RESTART_DELAY_MIN_MS;
			else
				delay_ms = Min(delay_ms * 2, RESTART_DELAY_MAX_MS);
			next_start = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay_ms);
			set_state(LLAMAGPU_ENGINE_BACKOFF, 0, false);
			ereport(LOG,
					(errmsg("llamagpu: restarting the engine in %d ms (restart %d)", delay_ms,
							llamagpu_shared->restarts + 1)));
		}

		if (ConfigReloadPending)
		{
			char	   *cmdline;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			cmdline = argv_string(build_argv());
			if (engine_cmdline && strcmp(cmdline, engine_cmdline) != 0)
			{
				/* running, or waiting out a back-off: start afresh now */
				ereport(LOG,
						(errmsg("llamagpu: engine settings changed; restarting the engine")));
				stop_engine();
				delay_ms = 0;
				next_start = 0;
			}
		}

		/* databases with active jobs get their worker (after a restart too) */
		if (TimestampDifferenceExceeds(jobs_checked, GetCurrentTimestamp(), JOB_CHECK_MS))
		{
			jobs_checked = GetCurrentTimestamp();
			LlamagpuJobWorkersRelaunch();
		}

		if (engine_pid <= 0)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= next_start)
			{
				last_start = now;
				start_engine();
				if (engine_pid <= 0)
				{
					delay_ms = delay_ms ? Min(delay_ms * 2, RESTART_DELAY_MAX_MS) : RESTART_DELAY_MIN_MS;
					next_start = TimestampTzPlusMilliseconds(now, delay_ms);
				}
			}
			else
				timeout = Max(1, TimestampDifferenceMilliseconds(now, next_start));
		}

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	MemoryContextSwitchTo(TopMemoryContext);
	stop_engine();
	proc_exit(0);
}
