# Remote models (docs/models.md, "Remote providers"): a model registered with an
# OpenAI-compatible endpoint answers llm_generate, llm_generate_stream,
# llm_generate_batch, llm_chat (tools), llm_generate_json and table jobs with
# the same privileges as a local one.  The endpoint is a real HTTP server on
# loopback (lib/openai_adapter.py) that answers with llamagpu's own engine, so
# remote output is compared with the same model run locally; other remote
# model ids script the faults: 429 then success, 503 until the retries run
# out, a slow first byte, a stream cancelled midway, malformed events, an
# error mid-stream, a wrong API key.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use IPC::Run;
use JSON::PP;
use MIME::Base64;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = llamagpu_node('providers');
my $dir = PostgreSQL::Test::Utils::tempdir();
my $key = 'sk-test-4f9a2c77e1b3';
my $wrong = 'sk-wrong-0d1e2f3a4b5c';

# the endpoint, with its own engine
my $adapter = IPC::Run::start(
	[
		'/usr/bin/python3', "$FindBin::RealBin/lib/openai_adapter.py",
		'--model', $ENV{LLAMAGPU_TEST_MODEL}, '--port-file', "$dir/port",
		'--stats', "$dir/stats", '--key', $key
	],
	'>', "$dir/adapter.log", '2>&1');
my $deadline = time() + 30;
usleep(20_000) while !-e "$dir/port" && time() < $deadline;
ok(-e "$dir/port", 'adapter listening') or BAIL_OUT('the adapter did not start');
my $port = slurp_file("$dir/port");
my $base = "http://127.0.0.1:$port/v1";

# What the adapter recorded for a remote model id.
sub stats
{
	my ($model) = @_;
	my $all = decode_json(slurp_file("$dir/stats"));
	return $all->{$model} // { calls => 0, pieces => 0, aborted => 0 };
}

# Run SQL expecting an error; returns "SQLSTATE: message" and the whole stderr.
sub sql_error
{
	my ($sql, $db_user) = @_;
	my @extra = ('-v', 'VERBOSITY=verbose');
	push @extra, ('-U', $db_user) if $db_user;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => \@extra);
	return ('no error', $err) if $ret == 0;
	my ($line) = $err =~ /ERROR:\s+(\w{5}: [^\n]*)/;
	return ($line // $err, $err);
}

# the keys go in without appearing in any statement text (log_statement = all)
my $enc = encode_base64($key, '');
my $enc_wrong = encode_base64($wrong, '');
$node->safe_psql('postgres', qq{
	SELECT llm_set_secret('adapter_key', convert_from(decode('$enc', 'base64'), 'UTF8'));
	SELECT llm_set_secret('wrong_key', convert_from(decode('$enc_wrong', 'base64'), 'UTF8'));
});

# ---- registration ----
my $fast = '{"retry_base_ms": 20, "max_retries": 2}';
$node->safe_psql('postgres', qq{
	SELECT name FROM llm_register_remote_model('remote', '$base', 'stories', 'adapter_key', '$fast');
	SELECT name FROM llm_register_remote_model('remote-nostream', '$base/', 'stories', 'adapter_key', '{"stream": false}');
	SELECT name FROM llm_register_remote_model('remote-chatapi', '$base', 'stories', 'adapter_key', '{"prompt_api": "chat"}');
	SELECT name FROM llm_register_remote_model('remote-flaky', '$base', 'flaky', 'adapter_key', '{"retry_base_ms": 20}');
	SELECT name FROM llm_register_remote_model('remote-down', '$base', 'down', 'adapter_key', '$fast');
	SELECT name FROM llm_register_remote_model('remote-limited', '$base', 'ratelimited', 'adapter_key', '$fast');
	SELECT name FROM llm_register_remote_model('remote-ext', '$base', 'stories', 'adapter_key', '{"sampling_extensions": true}');
	SELECT name FROM llm_register_remote_model('remote-slow', '$base', 'slow', 'adapter_key', '$fast');
	SELECT name FROM llm_register_remote_model('remote-slow2', '$base', 'slow', 'adapter_key', '{"timeout_ms": 500}');
	SELECT name FROM llm_register_remote_model('remote-drip', '$base', 'drip', 'adapter_key', '$fast');
	SELECT name FROM llm_register_remote_model('remote-malformed', '$base', 'malformed', 'adapter_key', '$fast');
	SELECT name FROM llm_register_remote_model('remote-midfail', '$base', 'midfail', 'adapter_key', '$fast');
	SELECT name FROM llm_register_remote_model('remote-tools', '$base', 'tools', 'adapter_key');
	SELECT name FROM llm_register_remote_model('remote-bad', '$base', 'badstatus', 'adapter_key');
	SELECT name FROM llm_register_remote_model('remote-badkey', '$base', 'stories', 'wrong_key');
	SELECT name FROM llm_register_remote_model('remote-nokey', '$base', 'stories');
	SELECT name FROM llm_register_remote_model('remote-refused', 'http://127.0.0.1:1/v1', 'stories', NULL, '$fast');
});
is($node->safe_psql('postgres',
		"SELECT provider || ' ' || remote_model || ' ' || api_key_secret || ' ' || (base_url = path) FROM llm_models WHERE name = 'remote'"),
	'openai-compatible stories adapter_key true', 'registered row');
like((sql_error("SELECT llm_register_remote_model('r1', 'ftp://x/v1', 'm')"))[0],
	qr/^22023: invalid base_url/, 'base_url must be http(s)');
like((sql_error("SELECT llm_register_remote_model('r1', 'http://user:pw\@x/v1', 'm')"))[0],
	qr/^22023: invalid base_url/, 'no credentials in base_url');
like((sql_error("SELECT llm_register_remote_model('r1', '$base', 'm', 'nope')"))[0],
	qr/^42704: secret "nope" does not exist/, 'secret must exist');
like((sql_error("SELECT llm_register_remote_model('r1', '$base', 'm', NULL, '{\"max_retries\": 99}')"))[0],
	qr/^22023: option "max_retries"/, 'option range checked');
like((sql_error("SELECT llm_register_remote_model('r1', '$base', 'm', NULL, '{\"temperature\": 1}')"))[0],
	qr/^22023: unrecognized remote model option "temperature"/, 'unknown option');
like((sql_error("SELECT llm_register_remote_model('remote', '$base', 'm')"))[0],
	qr/^42710: model "remote" already exists/, 'duplicate name');

# ---- the same output as the local model ----
my $gen = "llm_generate('Once upon a time', %s, max_tokens => 24, temperature => 0)";
my $local = $node->safe_psql('postgres', sprintf("SELECT $gen", "'stories'"));
ok(length($local) > 10, 'local output');
is($node->safe_psql('postgres', sprintf("SELECT $gen", "'remote'")), $local, 'llm_generate: remote = local');
is($node->safe_psql('postgres', sprintf("SELECT $gen", "'remote-nostream'")), $local,
	'non-streaming answer = local');
is(stats('stories')->{last_body}{stream}, undef, 'stream: false sends no stream flag');
my $port1 = stats('stories')->{last_port};
$node->safe_psql('postgres', "SELECT llm_generate('The cat', 'remote-nostream', max_tokens => 4)");
is(stats('stories')->{last_port}, $port1, 'the next request reuses the connection');
is($node->safe_psql('postgres',
		"SELECT llm_generate('Once upon a time', 'remote', max_tokens => 40, temperature => 0, stop => ARRAY['Lily'])"),
	$node->safe_psql('postgres',
		"SELECT llm_generate('Once upon a time', 'stories', max_tokens => 40, temperature => 0, stop => ARRAY['Lily'])"),
	'stop strings: remote = local');
my $body = stats('stories')->{last_body};
is_deeply([ $body->{stop}, $body->{max_tokens}, $body->{temperature}, $body->{stream} ],
	[ ['Lily'], 40, 0, JSON::PP::true ], 'request body: stop, max_tokens, temperature, stream');
is(stats('stories')->{last_auth}, "Bearer $key", 'API key sent as a bearer token');
is(stats('stories')->{last_path}, '/v1/completions', 'prompts go to /v1/completions');

# the response cache holds greedy remote answers like local ones
my $cached = q{SELECT llm_generate('Once upon a time, a cat', 'remote', max_tokens => 8, temperature => 0, options => '{"cache": true}')};
my $first = $node->safe_psql('postgres', $cached);
my $calls = stats('stories')->{calls};
is($node->safe_psql('postgres', $cached), $first, 'cached answer');
is(stats('stories')->{calls}, $calls, 'the second answer came from the response cache');

my $stream = $node->safe_psql('postgres', sprintf(
		"SELECT count(*) > 1, string_agg(p, '') FROM llm_generate_stream('Once upon a time', %s, max_tokens => 24, temperature => 0) p",
		"'remote'"));
is($stream, "t|$local", 'llm_generate_stream: several pieces, remote = local');

my $batch = "SELECT string_agg(output, '|' ORDER BY ord) FROM llm_generate_batch(ARRAY['Once', 'The cat', NULL, 'A dog'], %s, max_tokens => 12, temperature => 0)";
is($node->safe_psql('postgres', sprintf($batch, "'remote'")),
	$node->safe_psql('postgres', sprintf($batch, "'stories'")), 'llm_generate_batch: remote = local');

# chat: the adapter renders with its template; locally the same template as an option
my $tmpl = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
my $msgs = q{'[{"role": "user", "content": "Tell me a story"}]'};
my $local_chat = $node->safe_psql('postgres', qq{
	SELECT r->'choices'->0->'message'->>'content' FROM llm_chat($msgs, 'stories',
		options => jsonb_build_object('chat_template', \$t\$$tmpl\$t\$, 'temperature', 0, 'max_tokens', 16)) r});
is($node->safe_psql('postgres', qq{
	SELECT r->'choices'->0->'message'->>'content' FROM llm_chat($msgs, 'remote',
		options => '{"temperature": 0, "max_tokens": 16}') r}), $local_chat, 'llm_chat: remote = local');
is(stats('stories')->{last_path}, '/v1/chat/completions', 'messages go to /v1/chat/completions');
is($node->safe_psql('postgres', "SELECT llm_generate('Hello', 'remote-chatapi', max_tokens => 4)") ne '', 1,
	'prompt_api chat answers');
is_deeply(stats('stories')->{last_body}{messages}, [ { role => 'user', content => 'Hello' } ],
	'prompt_api chat: the prompt is one user message');

# tools: a tool call streamed in pieces comes back whole
my $tools = q{'[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]'};
is($node->safe_psql('postgres', qq{
	SELECT r->'choices'->0->>'finish_reason' || ' ' || (r->'choices'->0->'message'->'tool_calls'->0->'function'->>'name')
		|| ' ' || ((r->'choices'->0->'message'->'tool_calls'->0->'function'->>'arguments')::jsonb->>'city')
		|| ' ' || (r->'usage'->>'prompt_tokens')
	FROM llm_chat($msgs, 'remote-tools', tools => $tools, tool_choice => 'get_weather') r}),
	'tool_calls get_weather Paris 7', 'llm_chat: a streamed tool call');
is_deeply(stats('tools')->{last_body}{tool_choice}, { type => 'function', function => { name => 'get_weather' } },
	'tool_choice naming a function is sent in OpenAI form');

# JSON: the schema goes as response_format json_schema
my $schema = q{'{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"], "additionalProperties": false}'};
my $json = "SELECT llm_generate_json('Once upon a time', $schema, %s, max_tokens => 40, temperature => 0)";
is($node->safe_psql('postgres', sprintf($json, "'remote'")),
	$node->safe_psql('postgres', sprintf($json, "'stories'")), 'llm_generate_json: remote = local');
is(stats('stories')->{last_body}{response_format}{type}, 'json_schema', 'response_format json_schema sent');

# ---- privileges: a granted llm_user uses the model without seeing the key ----
$node->safe_psql('postgres', 'CREATE ROLE alice LOGIN IN ROLE llm_user');
like((sql_error(sprintf("SELECT $gen", "'remote'"), 'alice'))[0],
	qr/^42501: permission denied for model "remote"/, 'not granted: denied');
$node->safe_psql('postgres', "SELECT llm_grant_model('remote', 'alice')");
is($node->psql('postgres', sprintf("SELECT $gen", "'remote'"), extra_params => [ '-U', 'alice' ]), 0,
	'granted: allowed');
like((sql_error('SELECT value FROM llamagpu.llm_secrets', 'alice'))[0], qr/^42501: permission denied/,
	'llm_user cannot read the secrets');
like((sql_error(
			"SELECT llm_register_remote_model('r2', '$base', 'stories')", 'alice'))[0],
	qr/^42501: permission denied for function llm_register_remote_model/, 'only llm_admin registers');

# ---- retries, timeouts, errors ----
my $t0 = time();
is($node->safe_psql('postgres', "SELECT llm_generate('Once upon a time', 'remote-flaky', max_tokens => 24, temperature => 0)"),
	$local, '429 twice, then the answer');
cmp_ok(time() - $t0, '>=', 1, 'Retry-After: 1 was honoured');
is(stats('flaky')->{calls}, 3, 'three attempts');

my ($e, $err) = sql_error("SELECT llm_generate('x', 'remote-down')");
like($e, qr/^08006: remote model provider is unavailable/, '503 until retries run out: 08006');
like($err, qr/DETAIL:\s+The provider failed with HTTP 503 \(3 attempts\)\. The provider said: upstream overloaded\./, 'detail: status, attempts, the provider\'s message');
is(stats('down')->{calls}, 3, 'max_retries 2: three attempts');

$t0 = time();
($e, $err) = sql_error("SELECT llm_generate('x', 'remote-limited')");
like($e, qr/^53400: remote model provider rate limit exceeded/, 'Retry-After beyond retry_max_ms: 53400 at once');
like($err, qr/HINT:\s+The provider asks to retry after 120 seconds\./, 'hint: the provider\'s Retry-After');
cmp_ok(time() - $t0, '<', 5, 'no waiting for the 120 s');
is(stats('ratelimited')->{calls}, 1, 'one attempt');

$t0 = time();
($e) = sql_error("SET llamagpu.request_timeout = 700; SELECT llm_generate('x', 'remote-slow')");
like($e, qr/^57014: llamagpu request timed out/, 'slow first byte: timeout');
cmp_ok(time() - $t0, '<', 2.5, 'the timeout cut the wait short');
$t0 = time();
($e) = sql_error("SELECT llm_generate('x', 'remote-slow2')");
like($e, qr/^57014: llamagpu request timed out/, "the model's own timeout_ms");
cmp_ok(time() - $t0, '<', 2.5, 'it cut the wait short too');

($e, $err) = sql_error("SELECT llm_generate('x', 'remote-malformed')");
like($e, qr/^08P01: invalid answer from the remote model provider/, 'malformed SSE: 08P01');
like($err, qr/DETAIL:.*broken/, 'detail quotes the bad data');

($e, $err) = sql_error("SELECT llm_generate('x', 'remote-midfail')");
like($e, qr/^08006:/, 'error event mid-stream: 08006');
like($err, qr/The provider said: the model crashed\./, "the provider's message in the detail");
is(stats('midfail')->{calls}, 1, 'no retry once output was streamed');

($e, $err) = sql_error("SELECT llm_generate('x', 'remote-badkey')");
like($e, qr/^28000: remote model provider refused the API key/, 'wrong key: 28000');
like($err, qr/Incorrect API key provided: \*\*\*/, 'the key the provider echoed is hidden');
unlike($err, qr/\Q$wrong\E/, 'the key is not in the error');
($e) = sql_error("SELECT llm_generate('x', 'remote-nokey')");
like($e, qr/^28000:/, 'no key: 28000');
# over HTTP (the api schema): 502, not the 401 of a client's bad key
($e, $err) = sql_error("SELECT api.generate('x', 'remote-badkey')");
like($e, qr/^PGRST: \{"code" : "28000", "message" : "remote model provider refused the API key"/,
	'api.generate: the provider\'s refusal keeps its code');
like($err, qr/DETAIL:\s+\{"status" : 502, "headers" : \{\}\}/, '... as HTTP 502 without WWW-Authenticate');

($e, $err) = sql_error("SELECT llm_generate('x', 'remote-bad')");
like($e, qr/^22023: remote model provider rejected the request/, 'HTTP 400: 22023');
like($err, qr/The provider said: max_tokens is too large for this model\./, "400: the provider's message");

($e) = sql_error("SELECT llm_generate('x', 'remote-refused')");
like($e, qr/^08006:/, 'connection refused: 08006');

($e) = sql_error("SELECT llm_generate_grammar('x', 'root ::= \"a\"', 'remote')");
like($e, qr/^0A000: feature not available for a remote model/, 'grammar: 0A000');
($e) = sql_error(q{SELECT llm_generate('x', 'remote', options => '{"logit_bias": {"13": -100}}')});
like($e, qr/^0A000:/, 'logit_bias: 0A000');
($e) = sql_error("SELECT llm_tokenize('x', 'remote')");
like($e, qr/^0A000:/, 'tokenize a remote model: 0A000');
($e) = sql_error("SELECT llm_load_model('remote')");
like($e, qr/^0A000:/, 'load a remote model: 0A000');
($e, $err) = sql_error(q{SELECT llm_generate('x', 'remote', options => '{"min_p": 0.1}')});
like($err, qr/DETAIL:\s+The option min_p is not part of the OpenAI API\.\nHINT:.*sampling_extensions/, 'min_p: 0A000, hint sampling_extensions');
$node->safe_psql('postgres', q{SELECT llm_generate('x', 'remote-ext', top_k => 7, max_tokens => 2, options => '{"min_p": 0.1, "repeat_penalty": 1.1}')});
is_deeply([ @{ stats('stories')->{last_body} }{qw(top_k min_p repeat_penalty)} ], [ 7, 0.1, 1.1 ],
	'sampling_extensions: top_k, min_p, repeat_penalty sent');
is(stats('stories')->{last_body}{min_p} // 'none', 0.1, 'min_p value');
ok(!exists $body->{top_k}, 'without sampling_extensions top_k is not sent');

# ---- cancellation mid-stream ----
my ($h, $out, $herr) = start_psql($node, "SELECT llm_generate('x', 'remote-drip', max_tokens => 1000)");
$deadline = time() + 10;
usleep(20_000) while stats('drip')->{pieces} < 3 && time() < $deadline;
ok(stats('drip')->{pieces} >= 3, 'drip is streaming');
ok(wait_for($node, "SELECT count(*) FROM llm_stat_activity WHERE model = 'remote-drip' AND state = 'generating'", '1'),
	'llm_stat_activity shows the remote request');
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%remote-drip%' AND pid <> pg_backend_pid()");
$t0 = time();
$h->finish;
like($$herr, qr/canceling statement due to user request/, 'cancelled');
$deadline = time() + 5;
usleep(20_000) while stats('drip')->{aborted} < 1 && time() < $deadline;
is(stats('drip')->{aborted}, 1, 'the HTTP stream was closed');
cmp_ok(time() - $t0, '<', 3, 'promptly');
ok(stats('drip')->{pieces} < 100, 'long before the stream ended');

# ---- table jobs ----
$node->safe_psql('postgres', q{
	CREATE TABLE src (id int PRIMARY KEY, body text);
	INSERT INTO src VALUES (1, 'Once upon a time'), (2, 'The dog'), (3, 'A girl');
	CREATE TABLE dst (id int, out text);
	SELECT llm_job_create('rj', 'src', 'id', 'body', 'dst', 'out', 'remote',
						  '{"max_tokens": 10, "temperature": 0, "batch_size": 2}');
});
ok(wait_for($node, "SELECT state FROM llm_stat_jobs WHERE name = 'rj'", 'done', 60), 'remote job done');
is($node->safe_psql('postgres',
		"SELECT count(*) FILTER (WHERE d.out = llm_generate(s.body, 'stories', max_tokens => 10, temperature => 0)) FROM src s JOIN dst d USING (id)"),
	'3', 'job outputs = local');

# ---- embeddings: /v1/embeddings ----
is($node->safe_psql('postgres', q{
	SELECT array_length(l, 1) = array_length(r, 1) AND array_length(l, 1) > 0
		   AND (SELECT max(abs(a - b)) < 1e-5 FROM unnest(l, r) AS t(a, b))
	FROM (SELECT llm_embed('Once upon a time', 'stories') l, llm_embed('Once upon a time', 'remote') r) x}),
	't', 'llm_embed: remote = local');
is(stats('stories')->{last_path}, '/v1/embeddings', 'embeddings go to /v1/embeddings');
is($node->safe_psql('postgres', q{
	SELECT bool_and((SELECT max(abs(a - b)) < 1e-5 FROM unnest(l.embedding, r.embedding) AS t(a, b)))
		   AND count(*) = 3
	FROM llm_embed_batch(ARRAY['Once', 'The cat sat', 'A dog'], 'stories') l
	JOIN llm_embed_batch(ARRAY['Once', 'The cat sat', 'A dog'], 'remote') r USING (ord)}),
	't', 'llm_embed_batch: remote = local, in order (the provider answered out of order)');
is_deeply(stats('stories')->{last_body}{input}, [ 'Once', 'The cat sat', 'A dog' ], 'inputs sent in one request');
($e, $err) = sql_error("SELECT llm_embed('x', 'remote-down')");
like($e, qr/^08006:/, 'embeddings: 503 until retries run out');
($e) = sql_error("SELECT llm_embed('x', 'remote-malformed')");
like($e, qr/^08P01:/, 'embeddings: malformed answer');
($e) = sql_error("SELECT llm_embed('x', 'remote', truncate => true)");
like($e, qr/^0A000:/, 'embeddings: truncate is not for remote models');

# an embedding job on a remote model fills the column like a local one
$node->safe_psql('postgres', q{
	CREATE TABLE docs (id int PRIMARY KEY, body text, emb real[]);
	INSERT INTO docs SELECT i, 'Once upon a time there was a dog number ' || i FROM generate_series(1, 5) i;
	SELECT llm_embedding_job_create('docs', 'id', 'body', 'emb', 'remote');
});
ok(wait_for($node, "SELECT count(*) FROM docs WHERE emb IS NOT NULL", '5', 60), 'remote embedding job done');
is($node->safe_psql('postgres', q{
	SELECT bool_and((SELECT max(abs(a - b)) < 1e-5 FROM unnest(emb, llm_embed(body, 'stories')) AS t(a, b))) FROM docs}),
	't', 'embedding job vectors = local');

# a secret that is gone: a specific error when the model is used
$node->safe_psql('postgres', "SELECT llm_drop_secret('wrong_key')");
like((sql_error("SELECT llm_generate('x', 'remote-badkey')"))[0],
	qr/^42704: secret "wrong_key" of model "remote-badkey" does not exist/, 'dropped secret');

is($node->safe_psql('postgres', "SELECT llm_drop_model('remote-refused'); SELECT count(*) FROM llm_models WHERE name = 'remote-refused'"),
	"t\n0", 'llm_drop_model drops a remote model');

# ---- the same usage rows, quotas and metrics as a local model ----
ok($node->safe_psql('postgres', 'SELECT llm_usage_flush(30000)') eq 't', 'usage flushed');
my $first_row = q{SELECT prompt_tokens || '/' || completion_tokens || '/' || requests FROM llm_usage
	WHERE model = '%s' AND status = 'ok' AND kind = 'generate' ORDER BY id LIMIT 1};
is($node->safe_psql('postgres', sprintf($first_row, 'remote')), $node->safe_psql('postgres', sprintf($first_row, 'stories')),
	'usage row of the first remote generation = the local one (the provider\'s token counts)');
like($node->safe_psql('postgres', sprintf($first_row, 'remote')), qr{^[1-9]\d*/24/1$}, 'prompt tokens, 24 generated, one request');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT sqlstate, ',') FROM llm_usage WHERE model = 'remote-down' AND status = 'error'}),
	'08006', 'a failed remote call is an error row with its SQLSTATE');
$node->safe_psql('postgres', "SELECT llm_set_quota('alice', 2, NULL)");
my $alice_calls = stats('stories')->{calls};
$node->psql('postgres', "SELECT llm_generate('a', 'remote', max_tokens => 2)", extra_params => [ '-U', 'alice' ])
	for 1 .. 2;
like((sql_error("SELECT llm_generate('a', 'remote', max_tokens => 2)", 'alice'))[0],
	qr/^53400:/, 'the role\'s requests_per_minute quota applies to a remote model');
is(stats('stories')->{calls}, $alice_calls + 2, 'the refused request never reached the provider');
is($node->safe_psql('postgres', q{
	SELECT requests > 0 AND generated_tokens > 0 AND prompt_tokens > 0 AND ttft_p50_ms IS NOT NULL
	FROM llm_stat_models WHERE model = 'remote'}), 't', 'llm_stat_models measures the remote model');
is($node->safe_psql('postgres', q{
	SELECT outcomes->>'remote_unavailable' FROM llm_stat_models WHERE model = 'remote-down'}),
	'2', 'its failures by status (a generation and an embedding)');
# remote embeddings: the provider's token counts, in usage rows and metrics alike
my $first_embed = q{SELECT prompt_tokens || '/' || requests FROM llm_usage
	WHERE model = '%s' AND status = 'ok' AND kind = 'embed' ORDER BY id LIMIT 1};
like($node->safe_psql('postgres', sprintf($first_embed, 'remote')), qr{^[1-9]\d*/1$},
	'usage row of a remote embedding: the provider\'s prompt tokens, one request');
is($node->safe_psql('postgres', sprintf($first_embed, 'remote')), $node->safe_psql('postgres', sprintf($first_embed, 'stories')),
	'... the same as the local one');
is($node->safe_psql('postgres', q{
	SELECT s.embedding_requests >= 3 AND s.embedding_inputs >= 4 + 5 AND s.embedding_prompt_tokens > 0
		   AND s.embedding_prompt_tokens = (SELECT sum(prompt_tokens) FROM llm_usage
											WHERE model = 'remote' AND kind LIKE 'embed%' AND status = 'ok')
		   AND s.prompt_tokens >= s.embedding_prompt_tokens
	FROM llm_stat_models s WHERE model = 'remote'}),
	't', 'llm_stat_models counts remote embeddings: requests, inputs, and the tokens the usage rows have');

# ---- the key never reaches a log ----
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$key\E/, 'the API key is not in the server log');
unlike($log, qr/\Q$wrong\E/, 'nor the wrong one');

$adapter->signal('TERM');
$adapter->finish;
$node->stop;
done_testing();
