/*
 * remote_files.c — llm_list_remote_files(repo, revision, options): the GGUF
 * files of a hub repository with their sizes, SHA-256 and quantization,
 * from the hub's tree API (<endpoint>/api/models/<repo>/tree/<revision>?
 * recursive=true, following its Link: rel="next" pages).  A small request
 * made by the calling backend itself; interruptible.
 */
#include "llamagpu.h"

#include <curl/curl.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(llm_list_remote_files);

#define LIST_MAX_BYTES	(64 * 1024 * 1024)	/* a tree listing larger than this is refused */
#define LIST_MAX_PAGES	100

/* What one page request collects. */
typedef struct ListPage
{
	StringInfoData body;
	char		next[2048];		/* the Link header's rel="next" URL, or "" */
	bool		too_big;
} ListPage;

/* Body bytes, up to LIST_MAX_BYTES. */
static size_t
on_body(char *buf, size_t size, size_t nitems, void *arg)
{
	ListPage   *page = arg;
	size_t		n = size * nitems;

	if (page->body.len + n > LIST_MAX_BYTES)
	{
		page->too_big = true;
		return 0;
	}
	appendBinaryStringInfo(&page->body, buf, n);
	return n;
}

/* Headers: Link: <URL>; rel="next" gives the next page. */
static size_t
on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	ListPage   *page = arg;
	size_t		n = size * nitems;

	if (n > 5 && pg_strncasecmp(buf, "link:", 5) == 0)
	{
		char	   *line = pnstrdup(buf, n);
		char	   *lt = strchr(line, '<');
		char	   *gt = lt ? strchr(lt, '>') : NULL;

		if (gt && strstr(gt, "rel=\"next\"") && gt - lt - 1 < (int) sizeof(page->next))
			strlcpy(page->next, lt + 1, gt - lt);
		pfree(line);
	}
	return n;
}

/* Stop the transfer when the query is cancelled. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	return InterruptPending ? 1 : 0;
}

/* GET url into page; errors name the repository. */
static void
fetch_page(const char *url, const char *token, const char *repo, ListPage *page)
{
	struct curl_slist *headers;
	CURL	   *curl = HubCurlNew(url, token, pg_strncasecmp(url, "https://", 8) == 0, &headers);
	char		errbuf[CURL_ERROR_SIZE] = "";
	CURLcode	res;
	long		status = 0;

	if (curl == NULL)
		elog(ERROR, "could not initialize libcurl");
	resetStringInfo(&page->body);
	page->next[0] = '\0';
	page->too_big = false;
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, page);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, page);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
	res = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	CHECK_FOR_INTERRUPTS();

	if (res == CURLE_HTTP_RETURNED_ERROR)
		ereport(ERROR,
				(errcode(status == 404 ? ERRCODE_UNDEFINED_OBJECT :
						 status == 401 || status == 403 ? ERRCODE_INSUFFICIENT_PRIVILEGE :
						 ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not list repository \"%s\": the hub answered HTTP %ld", repo, status),
				 errdetail("The request was GET %s.", url),
				 status == 401 || status == 403 || status == 404 ?
				 errhint("Check the repository and revision names; a private or gated repository needs a token (option \"token_secret\").") : 0));
	if (page->too_big)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("could not list repository \"%s\": the listing exceeds %d MB", repo,
						LIST_MAX_BYTES / (1024 * 1024))));
	if (res != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not list repository \"%s\": %s", repo,
						errbuf[0] ? errbuf : curl_easy_strerror(res)),
				 errdetail("The request was GET %s.", url)));
}

/* A member of a JSON object, or NULL. */
static JsonbValue *
member(JsonbContainer *obj, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
}

/* One row per GGUF file of a page (a JSON array of tree entries). */
static void
add_rows(ReturnSetInfo *rsinfo, ListPage *page, const char *repo, const char *revision)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(page->body.data)));
	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("could not list repository \"%s\": the hub did not answer a JSON array", repo)));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbValue *type,
				   *path,
				   *size,
				   *lfs,
				   *sha = NULL;
		char	   *p;
		size_t		n;
		Datum		values[5];
		bool		nulls[5] = {0};
		char	   *quant;

		if (tok != WJB_ELEM || v.type != jbvBinary || !JsonContainerIsObject(v.val.binary.data))
			continue;
		type = member(v.val.binary.data, "type");
		path = member(v.val.binary.data, "path");
		size = member(v.val.binary.data, "size");
		lfs = member(v.val.binary.data, "lfs");
		if (type == NULL || type->type != jbvString || type->val.string.len != 4 ||
			strncmp(type->val.string.val, "file", 4) != 0 || path == NULL || path->type != jbvString)
			continue;
		p = pnstrdup(path->val.string.val, path->val.string.len);
		n = strlen(p);
		if (n < 5 || pg_strcasecmp(p + n - 5, ".gguf") != 0)
			continue;
		if (lfs && lfs->type == jbvBinary && JsonContainerIsObject(lfs->val.binary.data))
		{
			JsonbValue *lsize = member(lfs->val.binary.data, "size");

			sha = member(lfs->val.binary.data, "oid");
			if (lsize && lsize->type == jbvNumeric)
				size = lsize;
		}
		values[0] = CStringGetTextDatum(p);
		nulls[1] = size == NULL || size->type != jbvNumeric;
		if (!nulls[1])
			values[1] = DirectFunctionCall1(numeric_int8, NumericGetDatum(size->val.numeric));
		quant = HubQuantizationFromName(strrchr(p, '/') ? strrchr(p, '/') + 1 : p);
		nulls[2] = quant == NULL;
		if (quant)
			values[2] = CStringGetTextDatum(quant);
		nulls[3] = sha == NULL || sha->type != jbvString;
		if (!nulls[3])
			values[3] = PointerGetDatum(cstring_to_text_with_len(sha->val.string.val, sha->val.string.len));
		values[4] = CStringGetTextDatum(psprintf("hf://%s/%s@%s", repo, p, revision));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* Check "org/repo". */
static void
check_repo(const char *repo)
{
	const char *slash = strchr(repo, '/');
	const char *ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/";

	if (slash == NULL || slash == repo || slash[1] == '\0' || strchr(slash + 1, '/') != NULL ||
		strspn(repo, ok) != strlen(repo) || strstr(repo, "..") != NULL || strlen(repo) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid repository \"%s\"", repo),
				 errdetail("A repository is written organization/name, with letters, digits, \".\", \"_\" and \"-\"."),
				 errhint("For example: ggml-org/models.")));
}

/* llm_list_remote_files(repo, revision, options): see the file comment. */
Datum
llm_list_remote_files(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *repo;
	char	   *revision = PG_ARGISNULL(1) ? "main" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *options = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	char	   *secret = NULL;
	char	   *token = NULL;
	char	   *endpoint;
	char	   *url;
	ListPage	page;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("repository must not be null")));
	repo = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_repo(repo);
	if (revision[0] == '\0' || strlen(revision) > 255 ||
		strspn(revision, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/") != strlen(revision))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid revision \"%s\"", revision),
				 errdetail("A revision is a branch, a tag or a commit hash.")));
	if (options)
	{
		JsonbValue *v;

		if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options must be a JSON object")));
		v = member(&options->root, "token_secret");
		if (v && v->type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("option \"token_secret\" must be a string")));
		if (v)
			secret = pnstrdup(v->val.string.val, v->val.string.len);
		if (JsonContainerSize(&options->root) != (v ? 1 : 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized option for llm_list_remote_files"),
					 errhint("The only option is token_secret.")));
	}
	endpoint = HubEndpoint();
	if (secret)
		token = HubSecretValue(secret, false);
	else if (HubSecretExists("hf_token"))
		token = HubSecretValue("hf_token", false);
	if (token && pg_strncasecmp(endpoint, "https://", 8) != 0 && !HubUrlIsLoopback(endpoint))
		token = NULL;			/* never over plain http to another host */

	InitMaterializedSRF(fcinfo, 0);
	{
		char	   *rev = pstrdup(revision);
		StringInfoData u;

		/* a revision like refs/pr/1 is one path segment */
		initStringInfo(&u);
		for (char *p = rev; *p; p++)
			if (*p == '/')
				appendStringInfoString(&u, "%2F");
			else
				appendStringInfoChar(&u, *p);
		url = psprintf("%s/api/models/%s/tree/%s?recursive=true", endpoint, repo, u.data);
	}
	initStringInfo(&page.body);
	for (int i = 0; url != NULL && i < LIST_MAX_PAGES; i++)
	{
		fetch_page(url, token, repo, &page);
		add_rows(rsinfo, &page, repo, revision);
		/* the token only goes to the endpoint: a next page elsewhere is not followed */
		url = page.next[0] && strncmp(page.next, endpoint, strlen(endpoint)) == 0 &&
			page.next[strlen(endpoint)] == '/' ? pstrdup(page.next) : NULL;
	}
	if (token)
		explicit_bzero(token, strlen(token));
	PG_RETURN_VOID();
}
