# PostgREST requests replayed: for each HTTP request, the statements
# PostgREST v12 sends (src/PostgREST/Query.hs, QueryBuilder.hs,
# Statements.hs), connected as its authenticator role (NOINHERIT, granted
# the API roles): the transaction (READ ONLY for GET), the set_config of
# search_path, role, request.jwt.claims, request.method, request.path,
# request.headers and request.cookies, the pre-request, the RPC call with
# named arguments from json_to_record, and response.headers /
# response.status read in the same statement.  The HTTP status comes from
# PostgREST's SQLSTATE table, encoded once below (pgrst_response).  Only
# difference: PostgREST binds $1 parameters, this inlines them as literals.
# There is no PostgREST binary here (not in Debian 12), hence the replay.
use strict;
use warnings;
use FindBin;
use JSON::PP;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = llamagpu_node('http_replay');
my $json = JSON::PP->new->canonical;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE ROLE authenticator LOGIN NOINHERIT;
CREATE ROLE web_anon NOLOGIN;
CREATE ROLE app NOLOGIN IN ROLE llm_user;
CREATE ROLE app_nomodel NOLOGIN IN ROLE llm_user;
CREATE ROLE jwt_user NOLOGIN IN ROLE llm_user;
CREATE ROLE lonely NOLOGIN IN ROLE llm_user;
GRANT web_anon, app, app_nomodel, jwt_user TO authenticator;
GRANT USAGE ON SCHEMA llamagpu, api TO web_anon;
SELECT llamagpu.llm_grant_model('stories', 'app');
SELECT llamagpu.llm_grant_model('stories', 'jwt_user');
});

my %key;
$key{$_->[0]} = sql("SELECT llamagpu.llm_create_api_key('$_->[0]', '$_->[1]')")
  for (['app-key', 'app'], ['nomodel-key', 'app_nomodel'], ['expired-key', 'app'],
	['revoked-key', 'app'], ['lonely-key', 'lonely'], ['rotated-key', 'app']);
sql(q{UPDATE llamagpu.llm_api_keys SET expires_at = now() - interval '1 minute' WHERE name = 'expired-key'});
sql(q{SELECT llamagpu.llm_revoke_api_key('revoked-key')});
my $old_rotated = $key{'rotated-key'};
$key{'rotated-key'} = sql(q{SELECT llamagpu.llm_rotate_api_key('rotated-key')});

# ---- PostgREST's side, encoded once ----

# PostgREST v12's SQLSTATE -> HTTP status table (docs/references/errors.rst,
# Error.hs mapSQLtoHTTP); authed: the request had a JWT.  A PGRST error
# carries its body in the message and status and headers in the detail.
# Returns (status, headers hashref, body code).
sub pgrst_response
{
	my ($code, $message, $detail, $authed) = @_;
	if ($code eq 'PGRST')
	{
		my $body = decode_json($message);
		my $d = decode_json($detail);
		return ($d->{status}, $d->{headers}, $body->{code});
	}
	my $s =
	    $code =~ /^08/ ? 503
	  : $code =~ /^09/ ? 500
	  : $code =~ /^0[LP]/ ? 403
	  : $code =~ /^2350[35]$/ ? 409
	  : $code eq '25006' ? 405
	  : $code =~ /^(25|2D|38|39|3B|40)/ ? 500
	  : $code eq '53400' ? 500			# 503 before PostgREST issue #3257's fix
	  : $code =~ /^53/ ? 503
	  : $code =~ /^(54|55|57|58|F0|HV)/ ? 500
	  : $code eq 'P0001' ? 400
	  : $code =~ /^(P0|XX)/ ? 500
	  : $code =~ /^(42883|42P01)$/ ? 404
	  : $code eq '42P17' ? 500
	  : $code eq '42501' ? ($authed ? 403 : 401)
	  : $code =~ /^PT(\d\d\d)$/ ? $1
	  : 400;
	return ($s, $s == 401 ? { 'WWW-Authenticate' => 'Bearer' } : {}, $code);
}

# An SQL string literal.
sub lit { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }

# PostgREST's schema cache: the argument types of api.<fn>.
my %argtypes;
for my $line (split /\n/, sql(q{
	SELECT p.proname || ' ' || a.name || ' ' || format_type(a.type, NULL)
	FROM pg_proc p, unnest(p.proargnames, p.proargtypes::oid[]) AS a(name, type)
	WHERE p.pronamespace = 'api'::regnamespace}))
{
	next if $line eq '';			# a RETURNS TABLE column: a name without an input type
	my ($fn, $name, $type) = split / /, $line, 3;
	$argtypes{$fn}{$name} = $type;
}

# The statements of one request to /rpc/<fn> (v12, PostgreSQL >= 14):
# method GET (READ ONLY) or POST (READ WRITE: the functions are VOLATILE),
# args as the JSON body or query string gives them, headers lower-cased;
# set: the function returns rows (RETURNS TABLE), which PostgREST calls in
# FROM and answers with a JSON array of row objects.
sub request_sql
{
	my (%r) = @_;
	my $fn = $r{fn};
	my $role = $r{jwt_role} // 'web_anon';
	my $claims = $r{jwt_role} ? $json->encode({ role => $r{jwt_role} }) : '{}';
	my %headers = (
		host => 'localhost:3000',
		'user-agent' => 'curl/7.88.1',
		accept => '*/*',
		%{ $r{headers} // {} });
	my @names = sort keys %{ $r{args} };
	my $typed = join ', ', map { qq{"$_" $argtypes{$fn}{$_}} } @names;
	my $cols = join ', ', map { qq{"$_"} } @names;
	my $call = join ', ', map { qq{"$_" := pgrst_body."$_"} } @names;
	my $callee = $r{set} ? "\"api\".\"$fn\"($call) pgrst_call"
	  : "(SELECT \"api\".\"$fn\"($call) pgrst_scalar) pgrst_call";
	my $from = @names
	  ? "FROM (SELECT " . lit($json->encode($r{args})) . "::json AS json_data) pgrst_payload, "
	  . "LATERAL (SELECT $cols FROM json_to_record(pgrst_payload.json_data) AS _($typed) LIMIT 1) pgrst_body , "
	  . "LATERAL $callee"
	  : "FROM $callee";
	my $mode = $r{method} eq 'GET' ? 'READ ONLY' : 'READ WRITE';
	my $body = $r{set} ? "coalesce(json_agg(_postgrest_t), '[]')::text"
	  : "coalesce((json_agg(_postgrest_t.pgrst_scalar)->0)::text, 'null')";
	my $main = $r{main} // "WITH pgrst_source AS (SELECT " . ($r{set} ? 'pgrst_call.*' : 'pgrst_call.pgrst_scalar')
	  . " $from) "
	  . "SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, "
	  . "$body AS body, "
	  . "nullif(current_setting('response.headers', true), '') AS response_headers, "
	  . "nullif(current_setting('response.status', true), '') AS response_status, "
	  . "'' AS response_inserted "
	  . "FROM (SELECT \"pgrst_source\".* FROM \"pgrst_source\") _postgrest_t";
	my $headers = $r{raw_headers} // $json->encode(\%headers);
	return join "\n",
	  "BEGIN ISOLATION LEVEL READ COMMITTED $mode;",
	  "select set_config('search_path', '\"api\"', true), set_config('role', " . lit($role) . ", true), "
	  . "set_config('request.jwt.claims', " . lit($claims) . ", true), "
	  . "set_config('request.method', " . lit($r{method}) . ", true), "
	  . "set_config('request.path', " . lit("/rpc/$fn") . ", true), "
	  . "set_config('request.headers', " . lit($headers) . ", true), "
	  . "set_config('request.cookies', '{}', true);",
	  'select "llamagpu"."llm_pre_request"();',
	  "$main;",
	  "COMMIT;", '';
}

# Run request statements as the authenticator; the response PostgREST
# would send: { status, headers, body, code, message, hint, detail }.
sub run_request
{
	my ($script, $authed) = @_;
	utf8::encode($script);
	my ($ret, $out, $err) = $node->psql('postgres', $script,
		extra_params => [ '-U', 'authenticator', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
			'-F', "\x1f" ]);
	if ($ret != 0)
	{
		my ($code, $msg) = $err =~ /ERROR:  (\S{5}): (.*)$/m;
		my ($detail) = $err =~ /^DETAIL:  (.*)$/m;
		my ($hint) = $err =~ /^HINT:  (.*)$/m;
		die "no error in psql's output: $err" unless defined $code;
		my ($status, $headers, $bcode) = pgrst_response($code, $msg, $detail, $authed);
		my ($bmsg, $bhint) = ($msg, $hint);
		if ($code eq 'PGRST')
		{
			my $b = decode_json($msg);
			($bmsg, $bhint) = ($b->{message}, $b->{hint});
		}
		return { status => $status, headers => $headers, code => $bcode, message => $bmsg,
			hint => $bhint // '', stderr => $err };
	}
	# the last row: six fields, of which the body may span lines (json_agg
	# puts a newline between rows)
	my @f = $out =~ /(?:^|\n)([^\x1f\n]*)\x1f([^\x1f\n]*)\x1f([^\x1f]*)\x1f([^\x1f\n]*)\x1f([^\x1f\n]*)\x1f([^\x1f\n]*)\z/s
	  or die "no response row in psql's output: $out";
	my $headers = {};
	$headers = { map { %$_ } @{ decode_json($f[3]) } } if $f[3] ne '';
	return { status => ($f[4] ne '' ? $f[4] : 200), headers => $headers, body => $f[2], code => '' };
}

sub request { my %r = @_; return run_request(request_sql(%r), defined $r{jwt_role}); }

# ---- the requests ----

my $direct_tokens = sql(q{SELECT to_json(llamagpu.llm_tokenize('Hello world', 'stories'))});
my %tok = (fn => 'tokenize', method => 'GET', args => { input => 'Hello world', model => 'stories' });

my $r = request(%tok);
is($r->{status}, 401, 'no key, no JWT: 401 (the anonymous role may not tokenize)');
is($r->{code}, '42501', '... from permission denied, as PostgREST maps it for an anonymous request');

$r = request(%tok, headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 200, 'X-Api-Key: 200 in a READ ONLY transaction');
is($r->{body}, $direct_tokens, '... the tokens llm_tokenize gives');

$r = request(%tok, headers => { authorization => "Bearer $key{'app-key'}" });
is($r->{status}, 200, 'Authorization: Bearer lgk_...: 200');
is($r->{body}, $direct_tokens, '... the same tokens');

$r = request(%tok, headers => { 'x-api-key' => "  $key{'app-key'} " });
is($r->{status}, 200, 'a key with surrounding blanks is accepted');

my %gen = (fn => 'generate', method => 'POST',
	args => { prompt => 'Once upon a time', model => 'stories', max_tokens => 8, temperature => 0, seed => 1 });
my $direct_text = sql(q{SELECT to_json(llamagpu.llm_generate('Once upon a time', 'stories', max_tokens => 8, temperature => 0, seed => 1))});
$r = request(%gen, headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 200, 'POST /rpc/generate with a key: 200');
is($r->{body}, $direct_text, '... the text llm_generate gives');
$r = request(%gen, method => 'GET', headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 200, 'GET /rpc/generate (READ ONLY transaction): 200');
is($r->{body}, $direct_text, '... the same text');

# chat and JSON output: the same answers as the SQL functions
my $messages = [ { role => 'user', content => 'Tell me a story.' } ];
$r = request(fn => 'chat', method => 'POST', args => { messages => $messages, model => 'stories' },
	headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 400, 'POST /rpc/chat with a model without a chat template: 400');
is($r->{code}, '22023', '... code 22023');
like($r->{message}, qr/chat template failed/, '... chat template failed');
my $chat_opts = { max_tokens => 6, temperature => 0, seed => 1,
	chat_template => "{% for m in messages %}{{ m['content'] }}{% endfor %}" };
my $cdirect = sql("SELECT llamagpu.llm_chat(" . lit($json->encode($messages)) . ", 'stories', options => "
	  . lit($json->encode($chat_opts)) . ")->'choices'->0->'message'->>'content'");
$r = request(fn => 'chat', method => 'POST', args => { messages => $messages, model => 'stories', options => $chat_opts },
	headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 200, 'POST /rpc/chat with a chat template: 200');
is(decode_json($r->{body})->{choices}[0]{message}{content}, $cdirect, '... the answer llm_chat gives');
ok(length($cdirect) > 0, '... which is not empty');
my $bool_direct = sql(q{SELECT llamagpu.llm_generate_json('Is the sky blue?', '{"type": "boolean"}', 'stories', temperature => 0)});
$r = request(fn => 'generate_json', method => 'POST',
	args => { prompt => 'Is the sky blue?', schema => { type => 'boolean' }, model => 'stories', temperature => 0 },
	headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 200, 'POST /rpc/generate_json: 200');
is($r->{body}, $bool_direct, '... the value llm_generate_json gives');
$r = request(fn => 'generate_json', method => 'POST',
	args => { prompt => 'x', schema => { type => 'string', pattern => '(?<=a)b' }, model => 'stories' },
	headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 400, 'a schema llamagpu cannot enforce: 400');

# embeddings: the vectors llm_embed and llm_embed_batch give, as JSON arrays
my $ekey = { 'x-api-key' => $key{'app-key'} };
my %emb = (fn => 'embed', method => 'POST', args => { input => 'Once upon a time', model => 'stories' },
	headers => $ekey);
my $edirect = sql(q{SELECT to_json(llamagpu.llm_embed('Once upon a time', 'stories'))});
$r = request(%emb);
is($r->{status}, 200, 'POST /rpc/embed: 200');
is($r->{body}, $edirect, '... the vector llm_embed gives');
my $ev = decode_json($r->{body});
my $norm2 = 0;
$norm2 += $_ * $_ for @$ev;
ok(@$ev > 1 && abs($norm2 - 1) < 1e-4, '... of unit length (' . scalar(@$ev) . ' numbers)');
$r = request(%emb, method => 'GET');
is($r->{status}, 200, 'GET /rpc/embed (READ ONLY transaction): 200');
$r = request(%emb, args => { %{ $emb{args} }, normalize => JSON::PP::false });
is($r->{body}, sql(q{SELECT to_json(llamagpu.llm_embed('Once upon a time', 'stories', "normalize" => false))}),
	'... normalize false: the raw vector');
$r = request(%emb, args => { input => '', model => 'stories' });
is($r->{status}, 400, 'an empty input: 400');
is($r->{code}, '2200F', '... code 2200F');
$r = request(%emb, args => { input => 'Once upon a time ' x 3000, model => 'stories' });
is($r->{status}, 413, 'an input longer than the context: 413');
is($r->{code}, '54000', '... code 54000');
$r = request(%emb, args => { input => 'Once upon a time ' x 3000, model => 'stories', truncate => JSON::PP::true });
is($r->{status}, 200, '... 200 with truncate');
$r = request(%emb, headers => { 'x-api-key' => $key{'nomodel-key'} });
is($r->{status}, 403, 'embed with a key whose role has no grant on the model: 403');
is($r->{code}, '42501', '... code 42501');
$r = request(%emb, args => { input => 'x', model => 'nope' });
is($r->{status}, 404, 'embed with an unknown model: 404');
$r = request(%emb, headers => {});
is($r->{status}, 401, 'embed without a key: 401');

my %batch = (fn => 'embed_batch', method => 'POST', set => 1, headers => $ekey,
	args => { inputs => [ 'Once upon a time', 'Lily and Ben' ], model => 'stories' });
$r = request(%batch);
is($r->{status}, 200, 'POST /rpc/embed_batch: 200');
my $rows = decode_json($r->{body});
is(join(',', map { $_->{ord} } @$rows), '1,2', '... one row per input, in order');
is($json->encode($rows->[0]{embedding}), $json->encode(decode_json($edirect)), '... the first is llm_embed\'s vector');
is($json->encode($rows->[1]{embedding}),
	$json->encode(decode_json(sql(q{SELECT to_json(llamagpu.llm_embed('Lily and Ben', 'stories'))}))),
	'... the second too');
$r = request(%batch, args => { inputs => [ 'a', undef ], model => 'stories' });
is($r->{status}, 200, 'embed_batch with a null element: 200');
is($json->encode([ map { defined $_->{embedding} ? 'vector' : 'null' } @{ decode_json($r->{body}) } ]),
	'["vector","null"]', '... its row has a null embedding (as llm_embed_batch gives)');
$r = request(%batch, args => { inputs => [ 'a', '' ], model => 'stories' });
is($r->{status}, 400, 'embed_batch with an empty element: 400');
is($r->{code}, '2200F', '... code 2200F');
like($r->{message}, qr/empty/, '... saying it is empty');
$r = request(%batch, headers => { 'x-api-key' => $key{'nomodel-key'} });
is($r->{status}, 403, 'embed_batch without a grant on the model: 403');

# models and metrics
$r = request(fn => 'models', method => 'GET', args => {}, headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 200, 'GET /rpc/models: 200');
$r = request(fn => 'models', method => 'GET', args => {}, headers => { 'x-api-key' => $key{'app-key'} },
	main => probe(q{(SELECT string_agg(name, ',') FROM api.models())}));
is($r->{body}, 'stories', '... the model the key\'s role was granted');
$r = request(fn => 'models', method => 'GET', args => {}, headers => { 'x-api-key' => $key{'nomodel-key'} },
	main => probe(q{(SELECT coalesce(string_agg(name, ','), '-') FROM api.models())}));
is($r->{body}, '-', '... none for a role without grants');
$r = request(fn => 'metrics', method => 'GET', args => {}, headers => { 'x-api-key' => $key{'app-key'} });
if (sql(q{SELECT to_regproc('llamagpu.llm_metrics') IS NOT NULL}) eq 't')
{
	is($r->{status}, 200, 'GET /rpc/metrics: 200');
	like(decode_json($r->{body}), qr/^# (HELP|TYPE) /m, '... the Prometheus exposition');
}
else
{
	is($r->{status}, 404, 'GET /rpc/metrics without llm_metrics in this build: 404');
	is($r->{code}, '42883', '... code 42883');
}

# the role and the key inside the request, and after it on the same
# connection: instead of the RPC, a probe whose result stands for the body
sub probe { return "SELECT null, 1, $_[0], null, null, ''"; }
$r = request(%tok, headers => { 'x-api-key' => $key{'app-key'} },
	main => probe(q{current_user || '/' || session_user || '/' || coalesce(llamagpu.llm_current_api_key(), '-')}));
is($r->{body}, 'app/authenticator/app-key', 'after the pre-request: the key\'s role, the key recorded');
sql(q{ALTER ROLE app SET statement_timeout = '1234s'; ALTER ROLE app SET work_mem = '5MB';
	ALTER ROLE app IN DATABASE postgres SET work_mem = '7MB'; ALTER ROLE app SET log_min_duration_statement = 0});
$r = request(%tok, headers => { 'x-api-key' => $key{'app-key'} },
	main => probe(q{current_setting('statement_timeout') || '/' || current_setting('work_mem') || '/' || current_setting('log_min_duration_statement')}));
is($r->{body}, '1234s/7MB/-1', 'the key role\'s settings apply, this database\'s winning, superuser-only ones left out');
sql(q{ALTER ROLE app RESET ALL; ALTER ROLE app IN DATABASE postgres RESET ALL});
my $two = request_sql(%tok, headers => { 'x-api-key' => $key{'app-key'} })
  . request_sql(%tok, main => probe(q{current_user || '/' || coalesce(llamagpu.llm_current_api_key(), '-')}));
$r = run_request($two);
is($r->{body}, 'web_anon/-', 'the next request on the connection has neither the role nor the key');

ok(sql(q{SELECT last_used_at > now() - interval '1 minute' FROM llamagpu.llm_stat_api_keys WHERE name = 'app-key'}) eq 't',
	'last use of the key shows (recorded in a READ ONLY transaction)');
is(sql(q{SELECT last_used_at IS NULL FROM llamagpu.llm_api_keys WHERE name = 'app-key'}), 't',
	'... held in shared memory until a flush');
sql(q{BEGIN; SELECT llamagpu.llm_api_keys_flush(); ROLLBACK});
is(sql(q{SELECT (k.last_used_at IS NULL) || '/' || (llamagpu.llm_api_key_last_used(k.id) IS NOT NULL)
		 FROM llamagpu.llm_api_keys k WHERE name = 'app-key'}), 'true/true',
	'a flush that rolls back leaves the time held');
sql(q{SELECT llamagpu.llm_api_keys_flush()});
is(sql(q{SELECT (k.last_used_at IS NOT NULL) || '/' || (llamagpu.llm_api_key_last_used(k.id) IS NULL)
		 FROM llamagpu.llm_api_keys k WHERE name = 'app-key'}), 'true/true',
	'... a committed llm_api_keys_flush() moves it into the table');

# keys that do not authenticate: 401 with WWW-Authenticate
my $wrong = $key{'app-key'};
substr($wrong, 30, 1) = substr($wrong, 30, 1) eq 'A' ? 'B' : 'A';
my @bad = (
	[ 'a wrong secret', $wrong, '28P01', qr/API key is not valid/ ],
	[ 'a short key', 'lgk_abc', '28000', qr/malformed API key/ ],
	[ 'an expired key', $key{'expired-key'}, '28000', qr/API key "expired-key" has expired/ ],
	[ 'a revoked key', $key{'revoked-key'}, '28000', qr/API key "revoked-key" has been revoked/ ],
	[ 'a rotated key\'s old secret', $old_rotated, '28P01', qr/API key is not valid/ ],
	[ 'a 1 MB key', 'lgk_' . ('x' x 1_000_000), '28000', qr/malformed API key/ ],
	[ 'a non-ASCII key', 'lgk_' . ("\x{e9}" x 56), '28000', qr/malformed API key/ ],
	[ 'a key that is not lgk_', 'sk-1234', '28000', qr/malformed API key/ ]);
for my $b (@bad)
{
	my ($what, $k, $code, $re) = @$b;
	$r = request(%tok, headers => { 'x-api-key' => $k });
	is($r->{status}, 401, "$what: 401");
	is($r->{code}, $code, "... code $code");
	like($r->{message}, $re, '... with its message');
	like($r->{headers}{'WWW-Authenticate'} // '', qr/^Bearer/, '... and WWW-Authenticate');
}
$r = request(%tok, headers => { 'x-api-key' => 'lgk_' . ("\x{e9}" x 56) });
like($r->{stderr}, qr/non-ASCII character at position 5/, 'the non-ASCII key\'s error names the position');
$r = request(%tok, headers => { 'x-api-key' => 'lgk_' . ('x' x 1_000_000) });
like($r->{stderr}, qr/this one has 1000004 bytes/, 'the 1 MB key\'s error gives its size');

$r = request(%tok, headers => { 'x-api-key' => $key{'rotated-key'} });
is($r->{status}, 200, 'the rotated key\'s new secret works');

# privileges and other errors through the api wrappers
$r = request(%gen, headers => { 'x-api-key' => $key{'nomodel-key'} });
is($r->{status}, 403, 'a key whose role has no grant on the model: 403');
is($r->{code}, '42501', '... code 42501');
like($r->{message}, qr/permission denied for model "stories"/, '... permission denied for the model');
is((pgrst_response('42501', '', '', 0))[0], 401,
	'(PostgREST alone would answer 401 to it: a key\'s request has no JWT)');

$r = request(%gen, args => { %{ $gen{args} }, model => 'nope' }, headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 404, 'an unknown model: 404');
is($r->{code}, '42704', '... code 42704');

$r = request(%tok, headers => { 'x-api-key' => $key{'lonely-key'} });
is($r->{status}, 500, 'a key whose role the authenticator is not granted: 500');
like($r->{hint}, qr/GRANT lonely TO authenticator/, '... with the GRANT to run');

# JWT roles work as PostgREST normally does
$r = request(%tok, jwt_role => 'jwt_user', headers => { authorization => 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x' });
is($r->{status}, 200, 'a JWT role without a key: 200, the pre-request leaves it');
$r = request(%tok, jwt_role => 'jwt_user',
	headers => { authorization => 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x', 'x-api-key' => $key{'app-key'} });
is($r->{status}, 400, 'a JWT and a key: 400');
$r = request(%tok, headers => { authorization => "Bearer $key{'app-key'}", 'x-api-key' => $key{'app-key'} });
is($r->{status}, 400, 'a Bearer key and an X-Api-Key: 400');

# request.headers that PostgREST would never send
$r = request(%tok, raw_headers => '{"x-api-key": ');
is($r->{status}, 500, 'request.headers not JSON: 500');
is($r->{code}, '22P02', '... code 22P02');
$r = request(%tok, raw_headers => '["x-api-key"]');
is($r->{status}, 500, 'request.headers a JSON array: 500');
$r = request(%tok, raw_headers => '{"x-api-key": "lgk_\u0000"}');
is($r->{status}, 500, 'request.headers with \u0000: 500, not a crash');
$r = request(%tok, raw_headers => '{"x-api-key": 42}');
is($r->{status}, 401, 'a number as the key: 401');

# quota errors: 429 with Retry-After (the wrappers' mapping of 53400)
sql(q{CREATE FUNCTION api.quota_probe() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM llamagpu.llm_raise_http('53400', 'requests per minute limit of API key "app-key" exceeded',
		'2 requests were made in the last minute; the limit is 2.', 'Retry in 17 seconds.');
	RETURN NULL;
END $$});
sql(q{GRANT EXECUTE ON FUNCTION api.quota_probe() TO llm_user});
$r = request(fn => 'quota_probe', method => 'POST', args => {}, headers => { 'x-api-key' => $key{'app-key'} });
is($r->{status}, 429, 'SQLSTATE 53400 through llm_raise_http: 429');
is($r->{headers}{'Retry-After'}, '17', '... with Retry-After from the hint');
is($r->{code}, '53400', '... code 53400');

SKIP:
{
	my $quota = sql(q{SELECT count(*) FROM pg_proc WHERE proname ~ 'quota' AND pronamespace = 'llamagpu'::regnamespace});
	skip 'the quota functions are not in this build', 9 if $quota == 0;
	my $k = sql(q{SELECT llamagpu.llm_create_api_key('limited-key', 'app', requests_per_minute => 2)});
	my @st = map { request(%gen, headers => { 'x-api-key' => $k })->{status} } 1 .. 2;
	is("@st", '200 200', 'a key limited to 2 generations a minute: two succeed');
	$r = request(%gen, headers => { 'x-api-key' => $k });
	is($r->{status}, 429, '... the third is 429');
	like($r->{headers}{'Retry-After'} // '', qr/^\d+$/, '... with Retry-After');
	is($r->{code}, '53400', '... code 53400');
	like($r->{message}, qr/rate limit of 2 requests per minute exceeded for API key "limited-key"/, '... naming the key\'s limit');
	$r = request(%emb, headers => { 'x-api-key' => $k });
	is($r->{status}, 429, 'an embedding counts against the same limit: 429');
	is($r->{code}, '53400', '... code 53400');
	like($r->{headers}{'Retry-After'} // '', qr/^\d+$/, '... with Retry-After');
	$r = request(%batch, headers => { 'x-api-key' => $k });
	is($r->{status}, 429, '... and so does a batch: 429');
}

# a key's generation run by a parallel worker (llm_generate is PARALLEL
# SAFE): the worker sees its leader's key, so the key's limits apply and
# the usage row names it
SKIP:
{
	my $quota = sql(q{SELECT count(*) FROM pg_proc WHERE proname = 'llm_usage_flush'});
	skip 'the usage functions are not in this build', 9 if $quota == 0;
	my $k = sql(q{SELECT llamagpu.llm_create_api_key('parallel-key', 'app', requests_per_minute => 2)});
	# force_parallel_mode puts the whole (parallel safe) query under a
	# single-copy Gather, which a worker runs; the leader's PID is handed
	# to the worker in a setting, which workers get from their leader
	my $par = "SELECT set_config('force_parallel_mode', 'on', true), set_config('parallel_setup_cost', '0', true), "
	  . "set_config('parallel_tuple_cost', '0', true), set_config('max_parallel_workers_per_gather', '2', true), "
	  . "set_config('llamagpu_test.leader', pg_backend_pid()::text, true); ";
	my $q = q{llamagpu.llm_generate('Once upon a time', 'stories', max_tokens => 4, temperature => 0) IS NOT NULL
		|| '/' || coalesce(llamagpu.llm_current_api_key(), '-') || '/' || current_setting('llamagpu_test.leader')};
	my @leaders;
	for my $i (1 .. 2)
	{
		$r = request(%tok, headers => { 'x-api-key' => $k }, main => $par . probe($q));
		like($r->{body} // '', qr{^true/parallel-key/\d+$}, "parallel request $i: generated, the worker sees the key");
		push @leaders, ($r->{body} // '') =~ m{/(\d+)$};
	}
	$r = request(%tok, headers => { 'x-api-key' => $k }, main => $par . probe($q));
	is($r->{code}, '53400', 'the third in a minute is refused by the key\'s limit of 2, in the worker too');
	like($r->{message} // '', qr/API key "parallel-key"/, '... naming the key');
	sql(q{SELECT llamagpu.llm_usage_flush(30000)});
	my $rows = sql(q{SELECT string_agg(status || ':' || backend_pid, ',' ORDER BY id) FROM llamagpu.llm_usage
		WHERE api_key = 'parallel-key'});
	my @rows = split /,/, $rows;
	is(scalar(@rows), 3, 'three usage rows name the key');
	is(join(',', map { (split /:/)[0] } @rows), 'ok,ok,rejected', '... two generations and the refusal');
	my @pids = map { (split /:/)[1] } @rows;
	ok($pids[0] != $leaders[0] && $pids[1] != $leaders[1],
		"... written by parallel workers, not by their leaders (@pids[0,1] vs @leaders)");
	is(sql(q{SELECT count(*) FROM llamagpu.llm_usage WHERE api_key IS NULL AND role = 'app'}), '0',
		'no usage row of the key\'s role lacks the key');
	is(sql(q{SELECT provolatile::text || proparallel::text FROM pg_proc WHERE oid = 'llamagpu.llm_current_api_key'::regproc}), 'vs',
		'llm_current_api_key is PARALLEL SAFE');
}

done_testing();
