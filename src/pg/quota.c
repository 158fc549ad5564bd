/*
 * quota.c — requests per minute and tokens per day, per role and per API
 * key, counted in shared memory and enforced before a request is sent to
 * the engine.
 *
 * A counter is kept per (database, role) and per (database, API key) in a
 * shared hash of llamagpu.quota_entries entries under one LWLock.  Counters
 * outlive sessions but not a server restart: a restart starts every bucket
 * full and every day's count at zero.
 *
 * Requests per minute is a token bucket of N requests that refills at N per
 * minute (kept as one "theoretical arrival time", GCRA): a burst of N is
 * admitted, then one request every 60/N seconds.  A call of k requests (a
 * batch of k prompts) takes k at once or nothing.  Tokens per day are
 * charged when a call finishes, with the prompt and completion tokens it
 * really used; a call is admitted while the day's tokens are below the
 * limit, so the calls in flight when the limit is reached may overshoot it
 * by what they use.  Days are UTC days.
 *
 * The role's limits are its own row of llm_quotas if it has one, otherwise
 * the smallest limit of the roles whose privileges it has (see
 * llm_effective_quota); a key's limits come with the key
 * (LlamagpuCurrentApiKey).  Both apply: a call must fit both.
 */
#include "llamagpu.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(llm_quota_counters);
PG_FUNCTION_INFO_V1(llm_quota_reset);

#define QUOTA_ROLE	'r'
#define QUOTA_KEY	'k'
#define MINUTE_US	((int64) 60 * USECS_PER_SEC)

/* Whose counter: a role or an API key, in a database. */
typedef struct QuotaKey
{
	Oid			dboid;
	int32		kind;			/* QUOTA_ROLE or QUOTA_KEY */
	int64		id;				/* role oid or llm_api_keys.id */
} QuotaKey;

/* The counters of one role or key. */
typedef struct QuotaCounter
{
	QuotaKey	key;
	NameData	name;			/* the role's or key's name when first counted */
	Oid			role;			/* the role, or the role the key acts as */
	int32		rpm_limit;		/* the limits last applied; 0: none */
	int64		tpd_limit;
	TimestampTz tat;			/* when the bucket will be full again (GCRA) */
	int32		day;			/* the UTC day tokens_today counts */
	int64		tokens_today;
	int64		requests;		/* admitted since the server started */
	int64		rejected;		/* refused since the server started */
	int64		tokens;			/* charged since the server started */
	TimestampTz last_request;
} QuotaCounter;

/* Limits that apply to one subject; 0: none. */
typedef struct QuotaLimits
{
	int32		rpm;
	int64		tpd;
} QuotaLimits;

/* Why a call was refused. */
typedef struct QuotaRefusal
{
	bool		refused;
	bool		per_minute;		/* the rate limit, else the day's tokens */
	bool		never;			/* the call alone is more than the limit */
	const char *subject;		/* "role" or "API key" */
	char		name[NAMEDATALEN];
	int64		limit;
	int64		used;			/* tokens used today; requests available now */
	int64		retry_us;
} QuotaRefusal;

static HTAB *quota_hash = NULL;
static LWLock *quota_lock = NULL;

/* Space for the counters. */
Size
LlamagpuQuotaShmemSize(void)
{
	return hash_estimate_size(llamagpu_quota_entries, sizeof(QuotaCounter));
}

/* Ask for the counters' space and lock (shmem request hook). */
void
LlamagpuQuotaShmemRequest(void)
{
	RequestAddinShmemSpace(LlamagpuQuotaShmemSize());
	RequestNamedLWLockTranche("llamagpu_quota", 1);
}

/* Create or attach to the counters (with AddinShmemInitLock held). */
void
LlamagpuQuotaShmemInit(void)
{
	HASHCTL		info;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(QuotaKey);
	info.entrysize = sizeof(QuotaCounter);
	quota_hash = ShmemInitHash("llamagpu quota counters",
							   llamagpu_quota_entries, llamagpu_quota_entries,
							   &info, HASH_ELEM | HASH_BLOBS);
	quota_lock = &(GetNamedLWLockTranche("llamagpu_quota"))->lock;
}

/* The UTC day of a timestamp (timestamps count from midnight UTC, 2000-01-01). */
static int32
utc_day(TimestampTz t)
{
	return (int32) (t / USECS_PER_DAY);
}

/*
 * The counter of a subject, created when missing (with the lock held
 * exclusively).  NULL when the hash is full.
 */
static QuotaCounter *
counter_get(int kind, int64 id, const char *name, Oid role, bool create)
{
	QuotaKey	key;
	QuotaCounter *c;
	bool		found;

	memset(&key, 0, sizeof(key));
	key.dboid = MyDatabaseId;
	key.kind = kind;
	key.id = id;
	c = hash_search(quota_hash, &key, create ? HASH_ENTER_NULL : HASH_FIND, &found);
	if (c != NULL && !found)
	{
		memset(((char *) c) + sizeof(QuotaKey), 0, sizeof(QuotaCounter) - sizeof(QuotaKey));
		namestrcpy(&c->name, name);
		c->role = role;
	}
	return c;
}

/* Start a new day's count when the day changed. */
static void
counter_roll_day(QuotaCounter *c, int32 today)
{
	if (c->day != today)
	{
		c->day = today;
		c->tokens_today = 0;
	}
}

/* Whether n requests fit c's limits now; fills *why when not. */
static bool
counter_check(QuotaCounter *c, QuotaLimits *lim, int n, TimestampTz now,
			  const char *subject, QuotaRefusal *why)
{
	c->rpm_limit = lim->rpm;
	c->tpd_limit = lim->tpd;
	counter_roll_day(c, utc_day(now));
	if (lim->rpm > 0)
	{
		int64		interval = MINUTE_US / lim->rpm;
		TimestampTz tat = Max(c->tat, now) + interval * n;

		if (n > lim->rpm || tat - now > MINUTE_US)
		{
			why->refused = true;
			why->per_minute = true;
			why->never = n > lim->rpm;
			why->subject = subject;
			strlcpy(why->name, NameStr(c->name), NAMEDATALEN);
			why->limit = lim->rpm;
			why->used = Max(0, (MINUTE_US - (Max(c->tat, now) - now)) / interval);
			why->retry_us = tat - now - MINUTE_US;
			return false;
		}
	}
	if (lim->tpd > 0 && c->tokens_today >= lim->tpd)
	{
		why->refused = true;
		why->per_minute = false;
		why->subject = subject;
		strlcpy(why->name, NameStr(c->name), NAMEDATALEN);
		why->limit = lim->tpd;
		why->used = c->tokens_today;
		why->retry_us = (int64) (utc_day(now) + 1) * USECS_PER_DAY - now;
		return false;
	}
	return true;
}

/* Take n requests from c's bucket. */
static void
counter_admit(QuotaCounter *c, int n, TimestampTz now)
{
	if (c->rpm_limit > 0)
		c->tat = Max(c->tat, now) + (MINUTE_US / c->rpm_limit) * n;
	c->requests += n;
	c->last_request = now;
}

/*
 * The role's limits from llm_quotas (llm_effective_quota), read as the
 * table's owner: the user may not see the rows of groups it inherits from.
 * The query is planned once per backend (the plan cache replans it after
 * DDL, such as the extension being dropped and created again).
 */
static void
role_limits(Oid role, QuotaLimits *lim)
{
	static SPIPlanPtr plan = NULL;
	LlamagpuActAs save;
	Datum		values[1];
	int			ret;

	lim->rpm = 0;
	lim->tpd = 0;
	/* an installation without the table (an older version) has no role limits */
	if (!OidIsValid(LlamagpuRelationOwner("llm_quotas")))
		return;
	LlamagpuActAsOwner("llm_quotas", &save);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
	{
		Oid			types[1] = {REGROLEOID};
		SPIPlanPtr	p = SPI_prepare("SELECT requests_per_minute, tokens_per_day "
									"FROM llamagpu.llm_effective_quota($1)", 1, types);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		plan = p;
	}
	values[0] = ObjectIdGetDatum(role);
	ret = SPI_execute_plan(plan, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		lim->rpm = isnull ? 0 : DatumGetInt32(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		lim->tpd = isnull ? 0 : DatumGetInt64(d);
	}
	SPI_finish();
	LlamagpuActAsUser(&save);
}

/* Who and what a call is, for its counters and its usage record. */
static void
scope_fill(LlamagpuUsageScope *scope, LlamagpuModel *model, const char *kind, int n)
{
	const LlamagpuApiKey *key = LlamagpuCurrentApiKey();
	char	   *outer;

	memset(scope, 0, sizeof(*scope));
	scope->role = GetUserId();
	namestrcpy(&scope->role_name, GetUserNameFromId(scope->role, false));
	scope->outer_role = GetOuterUserId();
	outer = GetUserNameFromId(scope->outer_role, true);
	namestrcpy(&scope->outer_role_name, outer ? outer : "");
	if (key)
	{
		scope->key_id = key->id;
		namestrcpy(&scope->key_name, key->name);
	}
	strlcpy(scope->model, model ? model->name : "", sizeof(scope->model));
	strlcpy(scope->kind, kind, sizeof(scope->kind));
	scope->n_requests = n;
	scope->started = GetCurrentTimestamp();
}

/* Raise the error for a refusal (the record of it was written). */
static void
report_refusal(QuotaRefusal *why, int n)
{
	int64		secs = Max(1, (why->retry_us + USECS_PER_SEC - 1) / USECS_PER_SEC);

	if (why->per_minute && why->never)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg_plural("rate limit of %d request per minute exceeded for %s \"%s\"",
							   "rate limit of %d requests per minute exceeded for %s \"%s\"",
							   why->limit, (int) why->limit, why->subject, why->name),
				 errdetail("The call makes %d requests, more than the %s may make in a minute.",
						   n, why->subject),
				 errhint("Split the call into calls of at most %d prompts.", (int) why->limit)));
	if (why->per_minute)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg_plural("rate limit of %d request per minute exceeded for %s \"%s\"",
							   "rate limit of %d requests per minute exceeded for %s \"%s\"",
							   why->limit, (int) why->limit, why->subject, why->name),
				 errdetail_plural("The call makes %d request; %lld of %d are available now.",
								  "The call makes %d requests; %lld of %d are available now.",
								  n, n, (long long) why->used, (int) why->limit),
				 errhint("Retry in %lld seconds.", (long long) secs)));
	/* the hint's form "Retry in N seconds" is what the api schema reads for Retry-After */
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("token quota of %lld tokens per day exceeded for %s \"%s\"",
					(long long) why->limit, why->subject, why->name),
			 errdetail("%lld tokens were used today (UTC); the limit is %lld.",
					   (long long) why->used, (long long) why->limit),
			 errhint("Retry in %lld seconds, when the day's count starts again at midnight UTC.",
					 (long long) secs)));
}

/* Admit a call (see llamagpu.h). */
void
LlamagpuQuotaAdmit(LlamagpuUsageScope *scope, LlamagpuModel *model, const char *kind, int n_requests)
{
	const LlamagpuApiKey *key = LlamagpuCurrentApiKey();
	QuotaLimits role_lim;
	QuotaLimits key_lim = {0, 0};
	QuotaCounter *rc;
	QuotaCounter *kc = NULL;
	QuotaRefusal why;
	TimestampTz now;
	bool		ok = true;
	bool		full = false;

	Assert(n_requests > 0);
	scope_fill(scope, model, kind, n_requests);
	if (quota_hash == NULL)
	{
		/* not preloaded: no shared memory, so nothing is counted */
		scope->open = true;
		return;
	}
	role_limits(scope->role, &role_lim);
	if (key)
	{
		key_lim.rpm = key->requests_per_minute;
		key_lim.tpd = key->tokens_per_day;
	}
	memset(&why, 0, sizeof(why));

	LWLockAcquire(quota_lock, LW_EXCLUSIVE);
	now = GetCurrentTimestamp();
	rc = counter_get(QUOTA_ROLE, scope->role, NameStr(scope->role_name), scope->role, true);
	if (key)
		kc = counter_get(QUOTA_KEY, key->id, key->name, key->role, true);
	if ((rc == NULL && (role_lim.rpm || role_lim.tpd)) ||
		(key && kc == NULL && (key_lim.rpm || key_lim.tpd)))
		full = true;
	else
	{
		if (rc)
			ok = counter_check(rc, &role_lim, n_requests, now, "role", &why);
		if (ok && kc)
			ok = counter_check(kc, &key_lim, n_requests, now, "API key", &why);
		if (ok)
		{
			if (rc)
				counter_admit(rc, n_requests, now);
			if (kc)
				counter_admit(kc, n_requests, now);
		}
		else
		{
			if (rc)
				rc->rejected += n_requests;
			if (kc)
				kc->rejected += n_requests;
		}
	}
	LWLockRelease(quota_lock);

	if (full)
	{
		LlamagpuUsageAppend(scope, 0, 0, n_requests, ERRCODE_CONFIGURATION_LIMIT_EXCEEDED, "rejected");
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many roles and API keys to count quotas for"),
				 errdetail("All %d quota counters of llamagpu.quota_entries are in use.",
						   llamagpu_quota_entries),
				 errhint("Raise llamagpu.quota_entries (it takes effect at a server restart).")));
	}
	if (!ok)
	{
		LlamagpuUsageAppend(scope, 0, 0, n_requests, ERRCODE_CONFIGURATION_LIMIT_EXCEEDED, "rejected");
		report_refusal(&why, n_requests);
	}
	scope->open = true;
}

/*
 * The most requests one call of the current user can ever be admitted with:
 * the smallest requests-per-minute limit of its role and key (INT_MAX: no
 * limit).  A table job takes no more rows per step, so its steps fit.
 */
int
LlamagpuQuotaMaxRequests(void)
{
	const LlamagpuApiKey *key = LlamagpuCurrentApiKey();
	QuotaLimits lim;
	int			max = INT_MAX;

	if (quota_hash == NULL)
		return max;
	role_limits(GetUserId(), &lim);
	if (lim.rpm > 0)
		max = Min(max, lim.rpm);
	if (key && key->requests_per_minute > 0)
		max = Min(max, key->requests_per_minute);
	return max;
}

/* Charge tokens to the counters of a scope's role and key (never raises). */
void
LlamagpuQuotaChargeTokens(LlamagpuUsageScope *scope, int64 tokens)
{
	int32		today;

	if (quota_hash == NULL || tokens <= 0)
		return;
	today = utc_day(GetCurrentTimestamp());
	LWLockAcquire(quota_lock, LW_EXCLUSIVE);
	for (int i = 0; i < 2; i++)
	{
		QuotaCounter *c;

		if (i == 1 && scope->key_id == 0)
			break;
		/* find only: a counter is created at admission (or the hash was full) */
		c = counter_get(i == 0 ? QUOTA_ROLE : QUOTA_KEY, i == 0 ? scope->role : scope->key_id,
						"", InvalidOid, false);
		if (c == NULL)
			continue;
		counter_roll_day(c, today);
		c->tokens_today += tokens;
		c->tokens += tokens;
	}
	LWLockRelease(quota_lock);
}

/*
 * llm_quota_counters() RETURNS SETOF record: this database's counters that
 * the current user may see: all for llm_admin, else those of the roles whose
 * privileges it has and of their API keys.
 */
Datum
llm_quota_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	HASH_SEQ_STATUS seq;
	QuotaCounter *c;
	TimestampTz now = GetCurrentTimestamp();
	Oid			admin = get_role_oid("llm_admin", true);
	bool		all = OidIsValid(admin) && has_privs_of_role(GetUserId(), admin);
	int			n = 0;
	QuotaCounter *copy;

	InitMaterializedSRF(fcinfo, 0);
	if (quota_hash == NULL)
		return (Datum) 0;
	/* copy under the lock; the role checks read catalogs, which may raise */
	LWLockAcquire(quota_lock, LW_SHARED);
	copy = palloc(sizeof(QuotaCounter) * Max(1, hash_get_num_entries(quota_hash)));
	hash_seq_init(&seq, quota_hash);
	while ((c = hash_seq_search(&seq)) != NULL)
		if (c->key.dboid == MyDatabaseId)
			copy[n++] = *c;
	LWLockRelease(quota_lock);
	for (int i = 0; i < n; i++)
	{
		Datum		values[11];
		bool		nulls[11];

		c = &copy[i];
		if (!all && !(OidIsValid(c->role) && has_privs_of_role(GetUserId(), c->role)))
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(c->key.kind == QUOTA_ROLE ? "role" : "api_key");
		values[1] = ObjectIdGetDatum(c->key.kind == QUOTA_ROLE ? (Oid) c->key.id : InvalidOid);
		nulls[1] = c->key.kind != QUOTA_ROLE;
		values[2] = Int64GetDatum(c->key.kind == QUOTA_KEY ? c->key.id : 0);
		nulls[2] = c->key.kind != QUOTA_KEY;
		values[3] = CStringGetTextDatum(NameStr(c->name));
		values[4] = Int32GetDatum(c->rpm_limit);
		nulls[4] = c->rpm_limit == 0;
		values[5] = Int64GetDatum(c->tpd_limit);
		nulls[5] = c->tpd_limit == 0;
		values[6] = Int64GetDatum(c->requests);
		values[7] = Int64GetDatum(c->rejected);
		values[8] = Int64GetDatum(c->tokens);
		values[9] = Int64GetDatum(c->day == utc_day(now) ? c->tokens_today : 0);
		/* requests the bucket would take now */
		if (c->rpm_limit > 0)
			values[10] = Int32GetDatum((int32) Max(0, (MINUTE_US - (Max(c->tat, now) - now)) /
												(MINUTE_US / c->rpm_limit)));
		else
			nulls[10] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * llm_quota_reset(role regrole) RETURNS bigint: forget a role's counters in
 * this database (a full bucket, no tokens used today); how many were removed.
 */
Datum
llm_quota_reset(PG_FUNCTION_ARGS)
{
	Oid			role = PG_GETARG_OID(0);
	int64		removed = 0;

	if (quota_hash == NULL)
		PG_RETURN_INT64(0);
	LWLockAcquire(quota_lock, LW_EXCLUSIVE);
	if (counter_get(QUOTA_ROLE, role, "", InvalidOid, false) != NULL)
	{
		QuotaKey	key;

		memset(&key, 0, sizeof(key));
		key.dboid = MyDatabaseId;
		key.kind = QUOTA_ROLE;
		key.id = role;
		(void) hash_search(quota_hash, &key, HASH_REMOVE, NULL);
		removed = 1;
	}
	LWLockRelease(quota_lock);
	PG_RETURN_INT64(removed);
}
