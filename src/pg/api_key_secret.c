/*
 * api_key_secret.c — the text of an API key: making one, reading one, and
 * the salted hash that is all the database keeps of it.
 *
 * A key is lgk_<prefix>_<secret> (see llamagpu.h).  The tag lets a reader
 * (and a secret scanner) tell a key from a JWT or a password at a glance;
 * the prefix is public and indexed, so a check costs one index lookup and
 * one hash, never a scan over every key's hash; the secret has 256 bits
 * from pg_strong_random, so the hash needs no stretching (there is nothing
 * to guess), and the salt only keeps equal secrets from having equal
 * hashes.  Errors never quote the key: they are written to the server log.
 */
#include "llamagpu.h"

#include "common/cryptohash.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"

StaticAssertDecl(API_KEY_HASH_LEN == PG_SHA256_DIGEST_LENGTH, "API key hash is sha256");

static const char base64url[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Random bytes from the operating system's generator, or an error. */
static void
strong_random(void *buf, size_t len)
{
	if (!pg_strong_random(buf, len))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for an API key"),
				 errdetail("The operating system's random number generator failed.")));
}

/*
 * Base64url without padding of len bytes into out (4 characters per 3
 * bytes, fewer for a last partial group); out gets a terminating NUL.
 */
static void
base64url_encode(const uint8 *in, size_t len, char *out)
{
	size_t		o = 0;

	for (size_t i = 0; i < len; i += 3)
	{
		uint32		v = (uint32) in[i] << 16;
		size_t		n = Min(len - i, 3);

		if (n > 1)
			v |= (uint32) in[i + 1] << 8;
		if (n > 2)
			v |= in[i + 2];
		out[o++] = base64url[(v >> 18) & 63];
		out[o++] = base64url[(v >> 12) & 63];
		if (n > 1)
			out[o++] = base64url[(v >> 6) & 63];
		if (n > 2)
			out[o++] = base64url[v & 63];
	}
	out[o] = '\0';
}

/* Whether c is one of the 64 characters of base64url. */
static bool
is_base64url(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* A new key from fresh random bytes, with its salt and hash. */
void
ApiKeyGenerate(char *key, ApiKeyParts *parts, uint8 *salt, uint8 *hash)
{
	uint8		prefix_bytes[API_KEY_PREFIX_LEN * 3 / 4];	/* 9: 72 bits */
	uint8		secret_bytes[32];	/* 256 bits, 43 characters */

	StaticAssertStmt(API_KEY_PREFIX_LEN == 12 && API_KEY_SECRET_LEN == 43,
					 "key parts are whole base64url encodings");
	strong_random(prefix_bytes, sizeof(prefix_bytes));
	strong_random(secret_bytes, sizeof(secret_bytes));
	strong_random(salt, API_KEY_SALT_LEN);
	base64url_encode(prefix_bytes, sizeof(prefix_bytes), parts->prefix);
	base64url_encode(secret_bytes, sizeof(secret_bytes), parts->secret);
	snprintf(key, API_KEY_LEN + 1, "%s%s_%s", API_KEY_TAG, parts->prefix, parts->secret);
	ApiKeyHash(salt, parts->secret, hash);
	explicit_bzero(secret_bytes, sizeof(secret_bytes));
}

static void malformed(const char *detail) pg_attribute_noreturn();

/* An error about a key that is not of the form lgk_<prefix>_<secret>. */
static void
malformed(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("malformed API key"),
			 errdetail_internal("%s", detail),
			 errhint("An API key is the %d-character text \"lgk_...\" that llamagpu.llm_create_api_key() returned.",
					 API_KEY_LEN)));
}

/* Check a key's form (cheap checks first: a header may be huge) and split it. */
void
ApiKeyParse(const char *key, size_t len, ApiKeyParts *parts)
{
	const size_t sep = API_KEY_TAG_LEN + API_KEY_PREFIX_LEN;

	if (len < API_KEY_TAG_LEN || memcmp(key, API_KEY_TAG, API_KEY_TAG_LEN) != 0)
		malformed("An API key starts with \"" API_KEY_TAG "\"; this one does not.");
	/* a huge header is not worth looking at */
	if (len > 65536)
		malformed(psprintf("An API key is %d characters long; this one has %zu bytes.",
						   API_KEY_LEN, len));
	for (size_t i = 0; i < len; i++)
		if ((unsigned char) key[i] >= 0x80)
			malformed(psprintf("An API key is ASCII; this one has a non-ASCII character at position %d.",
							   pg_mbstrlen_with_len(key, (int) i) + 1));
	if (len != API_KEY_LEN)
		malformed(psprintf("An API key is %d characters long; this one has %zu.", API_KEY_LEN, len));
	for (size_t i = API_KEY_TAG_LEN; i < len; i++)
	{
		unsigned char c = (unsigned char) key[i];

		if (i == sep)
		{
			if (c != '_')
				malformed(psprintf("An API key has \"_\" after its %d-character prefix; this one has another character at position %zu.",
								   API_KEY_PREFIX_LEN, i + 1));
		}
		else if (!is_base64url(c))
			malformed(psprintf("An API key has only the characters A-Z, a-z, 0-9, \"-\" and \"_\"; this one has another at position %zu.",
							   i + 1));
	}
	memcpy(parts->prefix, key + API_KEY_TAG_LEN, API_KEY_PREFIX_LEN);
	parts->prefix[API_KEY_PREFIX_LEN] = '\0';
	memcpy(parts->secret, key + sep + 1, API_KEY_SECRET_LEN);
	parts->secret[API_KEY_SECRET_LEN] = '\0';
}

/* sha256(salt || secret) with PostgreSQL's cryptohash (OpenSSL when built with it). */
void
ApiKeyHash(const uint8 *salt, const char *secret, uint8 *hash)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, salt, API_KEY_SALT_LEN) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) secret, API_KEY_SECRET_LEN) < 0 ||
		pg_cryptohash_final(ctx, hash, API_KEY_HASH_LEN) < 0)
	{
		const char *why = ctx ? pg_cryptohash_error(ctx) : "out of memory";

		if (ctx)
			pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the hash of an API key: %s", why)));
	}
	pg_cryptohash_free(ctx);
}

/* OR of the bytes' differences: no early exit that timing could reveal. */
bool
ApiKeyHashEqual(const uint8 *a, const uint8 *b)
{
	volatile uint8 diff = 0;

	for (int i = 0; i < API_KEY_HASH_LEN; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}
