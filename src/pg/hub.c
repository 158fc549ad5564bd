/*
 * hub.c — what downloads and file listings share: parsing a source
 * (hf://org/repo/file.gguf[@revision] or an http(s) URL) into a URL under
 * llamagpu.hub_endpoint, reading a token from llm_secrets, and the libcurl
 * options every request to a hub uses.
 *
 * A token is only ever sent as an Authorization header: over https, or over
 * plain http to a loopback host (a local mirror, the tests).  libcurl does
 * not send a custom Authorization header to another host or port after a
 * redirect (since 7.58/7.83), which is what a hub's redirect to its CDN
 * needs: the CDN URL is signed and must not see the token.
 */
#include "llamagpu.h"

#include <curl/curl.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#define HUB_USER_AGENT "llamagpu/" LLAMAGPU_VERSION

/* The endpoint setting without a trailing slash, checked. */
char *
HubEndpoint(void)
{
	char	   *e = pstrdup(llamagpu_hub_endpoint ? llamagpu_hub_endpoint : "");
	size_t		n = strlen(e);

	while (n > 0 && e[n - 1] == '/')
		e[--n] = '\0';
	if (pg_strncasecmp(e, "https://", 8) != 0 && pg_strncasecmp(e, "http://", 7) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("llamagpu.hub_endpoint must be an http:// or https:// URL"),
				 errdetail("It is \"%s\".", e),
				 errhint("Set it to https://huggingface.co or to the URL of a mirror.")));
	return e;
}

/* Whether url's host is 127.0.0.1, [::1] or localhost. */
bool
HubUrlIsLoopback(const char *url)
{
	const char *h = strstr(url, "://");
	static const char *const hosts[] = {"127.0.0.1", "[::1]", "localhost"};

	if (h == NULL)
		return false;
	h += 3;
	for (int i = 0; i < lengthof(hosts); i++)
	{
		size_t		n = strlen(hosts[i]);

		if (pg_strncasecmp(h, hosts[i], n) == 0 &&
			(h[n] == '\0' || h[n] == ':' || h[n] == '/'))
			return true;
	}
	return false;
}

/* Reject a path segment that could escape its place ("", ".", ".." or odd bytes). */
static void
check_segment(const char *seg, const char *what, const char *source)
{
	if (seg[0] == '\0' || strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0 ||
		strspn(seg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+") != strlen(seg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s \"%s\" in source \"%s\"", what, seg, source),
				 errdetail("Names in an hf:// source are made of letters, digits, \".\", \"_\", \"-\" and \"+\".")));
}

/* Append s to buf, percent-encoded (all but unreserved characters). */
static void
append_escaped(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			appendStringInfoChar(buf, c);
		else
			appendStringInfo(buf, "%%%02X", c);
	}
}

/* hf://org/repo/dir/file.gguf[@revision] as <endpoint>/org/repo/resolve/<revision>/dir/file.gguf. */
static void
parse_hf_source(const char *source, HubSource *src)
{
	char	   *spec = pstrdup(source + 5);
	char	   *at = strrchr(spec, '@');
	const char *revision = "main";
	char	   *segs[64];
	int			nseg = 0;
	StringInfoData url;

	if (at)
	{
		*at = '\0';
		revision = at + 1;
		/* "." and ".." would be resolved away by the URL parser, landing elsewhere in the repository */
		if (revision[0] == '\0' || strlen(revision) > 255 ||
			strcmp(revision, ".") == 0 || strcmp(revision, "..") == 0 ||
			strspn(revision, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/") != strlen(revision))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid revision \"%s\" in source \"%s\"", revision, source),
					 errdetail("A revision is a branch, a tag or a commit hash.")));
	}
	for (char *p = spec, *slash; p != NULL; p = slash)
	{
		slash = strchr(p, '/');
		if (slash)
			*slash++ = '\0';
		/* more would be dropped from the URL without a word: the file would not be the one named */
		if (nseg == lengthof(segs))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid source \"%s\"", source),
					 errdetail("An hf:// source has at most %d path segments.", (int) lengthof(segs))));
		segs[nseg++] = p;
	}
	if (nseg < 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid source \"%s\"", source),
				 errdetail("An hf:// source names an organization, a repository and a file."),
				 errhint("For example: hf://ggml-org/models/tinyllamas/stories260K.gguf@main.")));
	for (int i = 0; i < nseg; i++)
		check_segment(segs[i], i == 0 ? "organization" : i == 1 ? "repository" : "file name", source);

	initStringInfo(&url);
	appendStringInfo(&url, "%s/", HubEndpoint());
	append_escaped(&url, segs[0]);
	appendStringInfoChar(&url, '/');
	append_escaped(&url, segs[1]);
	appendStringInfoString(&url, "/resolve/");
	append_escaped(&url, revision);
	for (int i = 2; i < nseg; i++)
	{
		appendStringInfoChar(&url, '/');
		append_escaped(&url, segs[i]);
	}
	src->url = url.data;
	src->file_name = pstrdup(segs[nseg - 1]);
	src->is_hub = true;
}

/* The last path segment of a URL, percent-decoded, or "" when it has none. */
static char *
url_file_name(const char *url)
{
	const char *path = strchr(strstr(url, "://") + 3, '/');
	const char *end;
	const char *start;
	StringInfoData out;

	if (path == NULL)
		return pstrdup("");
	end = path + strcspn(path, "?#");
	start = end;
	while (start > path && start[-1] != '/')
		start--;
	initStringInfo(&out);
	for (const char *p = start; p < end; p++)
	{
		/* %00 stays as written: a NUL would cut the name short ("a.gguf%00.txt" is not "a.gguf") */
		if (*p == '%' && p + 2 < end && isxdigit((unsigned char) p[1]) &&
			isxdigit((unsigned char) p[2]) && !(p[1] == '0' && p[2] == '0'))
		{
			char		hex[3] = {p[1], p[2], '\0'};

			appendStringInfoChar(&out, (char) strtol(hex, NULL, 16));
			p += 2;
		}
		else
			appendStringInfoChar(&out, *p);
	}
	return out.data;
}

/* hf://org/repo/file.gguf[@rev] or an http(s) URL, checked. */
void
HubParseSource(const char *source, HubSource *src)
{
	memset(src, 0, sizeof(*src));
	if (source[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_ZERO_LENGTH_CHARACTER_STRING),
				 errmsg("source must not be empty")));
	if (strlen(source) >= 1000)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("source is too long"),
				 errdetail("A source has at most 999 bytes.")));
	if (pg_strncasecmp(source, "hf://", 5) == 0)
		parse_hf_source(source, src);
	else if (pg_strncasecmp(source, "https://", 8) == 0 || pg_strncasecmp(source, "http://", 7) == 0)
	{
		if (strpbrk(source, " \t\r\n\"<>\\^`{|}") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid URL \"%s\"", source),
					 errdetail("A URL must not contain spaces, quotes or control characters."),
					 errhint("Percent-encode them.")));
		src->url = pstrdup(source);
		src->file_name = url_file_name(source);
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported source \"%s\"", source),
				 errdetail("A source is hf://organization/repository/file.gguf[@revision] or an https:// URL.")));
	src->https = pg_strncasecmp(src->url, "https://", 8) == 0;
	src->loopback = HubUrlIsLoopback(src->url);
}

/*
 * The quantization a GGUF file name says, as llama.cpp's quantize names it
 * (Q4_K_M, IQ2_XS, Q8_0, F16, BF16, ...), upper-cased; NULL if none.
 */
char *
HubQuantizationFromName(const char *file_name)
{
	static const char *const types[] = {
		"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S",
		"IQ3_M", "IQ4_NL", "IQ4_XS", "Q2_K_S", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q3_K",
		"Q4_K_S", "Q4_K_M", "Q4_K", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "Q4_0", "Q4_1",
		"Q5_K_S", "Q5_K_M", "Q5_K", "Q5_0", "Q5_1", "Q6_K", "Q8_0", "Q8_K", "TQ1_0", "TQ2_0",
		"MXFP4", "BF16", "F16", "F32",
	};
	char	   *up = pstrdup(file_name);
	char	   *best = NULL;
	size_t		best_len = 0;

	for (char *p = up; *p; p++)
		*p = pg_toupper((unsigned char) *p);
	/* the longest type name that stands as a word ("-", ".", "_" around it) */
	for (int i = 0; i < lengthof(types); i++)
	{
		size_t		n = strlen(types[i]);

		for (char *p = strstr(up, types[i]); p; p = strstr(p + 1, types[i]))
		{
			bool		before = p == up || strchr("-._ ", p[-1]) != NULL;
			bool		after = p[n] == '\0' || strchr("-._ ", p[n]) != NULL;

			if (before && after && n > best_len)
			{
				best = (char *) types[i];
				best_len = n;
			}
		}
	}
	return best ? pstrdup(best) : NULL;
}

/* Whether the current user may read llm_secrets and a secret of that name exists. */
bool
HubSecretExists(const char *secret)
{
	Oid			rel = get_relname_relid("llm_secrets", get_namespace_oid("llamagpu", false));

	if (!OidIsValid(rel) || pg_class_aclcheck(rel, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return false;
	return HubSecretValue(secret, true) != NULL;
}

/* A secret's value, read with the current user's privileges. */
char *
HubSecretValue(const char *secret, bool missing_ok)
{
	MemoryContext outer = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(secret)};
	char	   *value = NULL;
	int			ret;

	SPI_connect();
	ret = SPI_execute_with_args("SELECT value FROM llamagpu.llm_secrets WHERE name = $1",
								1, argtypes, args, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
		value = MemoryContextStrdup(outer, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	SPI_finish();
	if (value == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("secret \"%s\" does not exist", secret),
				 errhint("Store the token with: \\copy llamagpu.llm_secrets (name, value) FROM 'token.txt'")));
	if (value && strpbrk(value, "\r\n") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("secret \"%s\" holds a line break", secret),
				 errdetail("A token is sent in an HTTP header, which cannot hold one."),
				 errhint("Store the token without its trailing newline.")));
	return value;
}

/*
 * A libcurl easy handle for url: http(s) only (https only when https_only,
 * also after redirects), redirects followed (at most 10), our User-Agent,
 * the token as "Authorization: Bearer" (kept to the first host by libcurl),
 * HTTP errors as failures.  *headers is the list to free after the transfer.
 * Returns NULL when libcurl cannot make a handle.
 */
void *
HubCurlNew(const char *url, const char *token, bool https_only, struct curl_slist **headers)
{
	CURL	   *curl = curl_easy_init();
	const char *protocols = https_only ? "https" : "http,https";

	*headers = NULL;
	if (curl == NULL)
		return NULL;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, HUB_USER_AGENT);
	curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
	/* HF's API and resolve URLs answer gzip when asked; the file itself is sent as is */
	curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "identity");
	if (token && token[0])
	{
		char	   *h = psprintf("Authorization: Bearer %s", token);

		*headers = curl_slist_append(*headers, h);
		/* the token is now in libcurl's copy; do not leave it in palloc'd memory */
		explicit_bzero(h, strlen(h));
		pfree(h);
	}
	if (*headers)
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, *headers);
	return curl;
}
