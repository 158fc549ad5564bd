# The extension's side of the structured-output protocol, against a fake
# engine that records every GENERATE's fields and answers in fixed ways
# (tests/tap/lib/fake_structured_engine.pl): the fields each function sends
# (json_schema, grammar, json_compact, json_strict, messages, tools with
# registered tools expanded, tool_choice, response_format, chat_template,
# no prompt for a chat), the error statuses grammar, template and
# unsupported with their detail and hint, the chat.completion object built
# from END's message, a truncated JSON value, llm_classify's prompt and
# grammar, the response cache keyed by the grammar, and a tool call the
# model made run by llm_run_tool_calls as the calling role.
use strict;
use warnings;
use FindBin;
use File::Basename qw(dirname);
use JSON::PP;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $fake = "$FindBin::RealBin/lib/fake_structured_engine.pl";
my $node = llamagpu_node('structured', "llamagpu.engine_path = '$fake'\n");
my $sockdir = dirname($node->safe_psql('postgres', 'SELECT socket FROM llm_engine_status()'));
my $log = "$sockdir/requests.jsonl";

# The fields of the last n GENERATE requests the engine saw.
sub requests
{
	my @lines = -e $log ? split /\n/, slurp_file($log) : ();
	return map { decode_json($_) } @lines;
}

sub last_request { my @r = requests(); return $r[-1]; }

# Run sql; the error as "SQLSTATE: message / detail / hint" ('' when it succeeds).
sub error_of
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return $err;
}

sub sql { return $node->safe_psql('postgres', $_[0]); }

# llm_generate_json: the schema as jsonb's text, the value parsed
is(sql(q{SELECT llm_generate_json('Hi', '{"type": "object", "properties": {"ok": {"type": "boolean"}}}', 'stories')}),
	'{"ok": true}', 'llm_generate_json returns the parsed value');
my $r = last_request();
is($r->{json_schema}, '{"type": "object", "properties": {"ok": {"type": "boolean"}}}', '... the schema is sent as json_schema');
is($r->{prompt}, 'Hi', '... with the prompt');
is($r->{max_tokens}, '1024', '... and max_tokens 1024 by default');
ok(!exists $r->{grammar} && !exists $r->{json_compact} && !exists $r->{messages}, '... and nothing else of structured output');

# a string schema is sent as written (its key order kept); compact and strict
sql(q{SELECT llm_generate_json('Hi', to_jsonb('{"zebra": 1, "type": "object"}'::text), 'stories',
							   options => '{"json_compact": true, "json_strict": false}')});
$r = last_request();
is($r->{json_schema}, '{"zebra": 1, "type": "object"}', 'a schema given as a string is sent verbatim');
is($r->{json_compact} . '/' . $r->{json_strict}, '1/0', '... json_compact and json_strict as 1 and 0');
sql(q{SELECT llm_generate_json('Hi', 'true', 'stories')});
is(last_request()->{json_schema}, 'true', 'a boolean schema');

# the options of every generation function
sql(q{SELECT llm_generate('Hi', 'stories', options => '{"grammar": "root ::= \"yes\""}')});
is(last_request()->{grammar}, 'root ::= "yes"', 'llm_generate sends the grammar option');
sql(q{SELECT * FROM llm_generate_batch(ARRAY['a', 'b'], 'stories', options => '{"json_schema": {"type": "integer"}}')});
my @all = requests();
is(join(',', map { $_->{prompt} . '=' . $_->{json_schema} } @all[-2, -1]), 'a={"type": "integer"},b={"type": "integer"}',
	'llm_generate_batch sends the schema with every prompt');
is(sql(q{SELECT string_agg(p, '') FROM llm_generate_stream('Hi', 'stories', options => '{"grammar": "root ::= \"yes\""}') p}),
	'yes', 'llm_generate_stream sends the grammar');

# a value cut short
like(error_of(q{SELECT llm_generate_json('Hi', '{"truncate": true}', 'stories', max_tokens => 3)}),
	qr/54000: generated JSON value is incomplete.*DETAIL:  Generation stopped at the token limit after 3 tokens.*HINT:  Raise max_tokens \(it was 3\)/s,
	'a JSON value cut short is 54000 with a hint');

# the engine's errors: grammar, unsupported (constrained or not), template
like(error_of(q{SELECT llm_generate_grammar('Hi', 'root ::= undefined', 'stories')}),
	qr/22023: invalid grammar or JSON schema\nDETAIL:  Invalid grammar: line 1, column 10: undefined rule "undefined".\nHINT:  Grammars use llama.cpp's GBNF syntax/,
	'status grammar: 22023, the message and location as detail, the engine\'s hint');
like(error_of(q{SELECT llm_generate_grammar('Hi', 'root ::= elsewhere', 'stories')}),
	qr/22023: invalid grammar or JSON schema\nDETAIL:  The grammar can never end. Line 2, column 3.\nHINT:  See docs\/structured-output.md/,
	'... a location not in the message is added to the detail; the table\'s hint when the engine sends none');
like(error_of(q{SELECT llm_generate_json('Hi', '{"properties": {"tags": {"uniqueItems": true}}}', 'stories')}),
	qr/0A000: JSON schema or grammar uses a feature llamagpu cannot enforce\nDETAIL:  Invalid json_schema: unsupported keyword "uniqueItems" at #\/properties\/tags.\nHINT:  The engine cannot enforce this keyword/,
	'status unsupported for a schema: 0A000 about the schema');
like(error_of(q{SELECT llm_generate('unsupported', 'stories')}),
	qr/0A000: model is not supported by llamagpu\nDETAIL:  Unsupported architecture "mamba".\nHINT:  llamagpu runs LLaMA-family models/,
	'status unsupported without a constraint: about the model');
like(error_of(q{SELECT llm_chat('[{"role": "user", "content": "hi"}]', 'stories', options => '{"chat_template": "raise"}')}),
	qr/22023: chat template failed\nDETAIL:  The template raised: no system messages.\nHINT:  Fix the messages./,
	'status template: 22023 with the engine\'s message and hint');

# llm_classify: the documented prompt and grammar; the label without the grammar's space
is(sql(q{SELECT llm_classify('Great food', ARRAY['good', 'say "bad"'], 'stories')}), 'say "bad"',
	'llm_classify returns the label');
$r = last_request();
is($r->{prompt}, "Classify the text into one of the labels.\nLabels: good, say \"bad\"\n\nText: Great food\nLabel:",
	'... from the documented prompt');
is($r->{grammar}, qq{root ::= " "? ( "good" | "say \\"bad\\"" )\n}, '... constrained by the documented grammar');
is($r->{max_tokens} . '/' . $r->{temperature}, '11/0', '... greedy, max_tokens from the longest label');

# llm_chat: no prompt; messages, tools (registered ones expanded), tool_choice, response_format, template
sql(q{CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b';
	  SELECT llm_register_tool('add(int, int)', 'Adds')});
my $resp = sql(q{SELECT llm_chat('[{"role": "user", "content": "2 + 3?"}]', 'stories',
	tools => '["add", {"type": "function", "function": {"name": "mul"}}]', tool_choice => 'required',
	options => '{"chat_template": "{{ messages }}", "max_tokens": 9, "temperature": 0}')});
$r = last_request();
ok(!exists $r->{prompt}, 'a chat request has no prompt');
is($r->{messages}, '[{"role": "user", "content": "2 + 3?"}]', '... the messages');
is_deeply(decode_json($r->{tools}), [
	{ type => 'function', function => { name => 'add', description => 'Adds', parameters => {
		type => 'object', required => ['a', 'b'], additionalProperties => JSON::PP::false, properties => {
			a => { type => 'integer', minimum => -2147483648, maximum => 2147483647 },
			b => { type => 'integer', minimum => -2147483648, maximum => 2147483647 } } } } },
	{ type => 'function', function => { name => 'mul' } } ], '... the tools, the registered one as its definition');
is($r->{tool_choice}, 'required', '... tool_choice');
is($r->{chat_template} . '/' . $r->{max_tokens}, '{{ messages }}/9', '... the template and the settings from options');
my $c = decode_json($resp);
like($c->{id}, qr/^chatcmpl-[0-9a-f]{24}$/, 'the answer has an id');
is($c->{object} . ' ' . $c->{model} . ' ' . scalar(@{ $c->{choices} }) . ' ' . $c->{choices}[0]{index},
	'chat.completion stories 1 0', '... object, model, one choice');
is($c->{choices}[0]{finish_reason}, 'tool_calls', '... finish_reason from END');
is_deeply($c->{choices}[0]{message}, { role => 'assistant', content => undef, tool_calls => [
	{ id => 'call_1', type => 'function', function => { name => 'add', arguments => '{"a": 2, "b": 3}' } } ] },
	'... the message from END');
is_deeply($c->{usage}, { prompt_tokens => 7, completion_tokens => 3, total_tokens => 10 }, '... usage');
cmp_ok(abs($c->{created} - time()), '<', 300, '... created is now');

# the model's call runs, as the calling role; a role without EXECUTE is refused
sql(q{CREATE ROLE alice IN ROLE llm_user; CREATE ROLE bob IN ROLE llm_user;
	  SELECT llm_grant_model('stories');
	  REVOKE EXECUTE ON FUNCTION add(int, int) FROM PUBLIC; GRANT EXECUTE ON FUNCTION add(int, int) TO alice});
my $loop = q{SET ROLE %s; SELECT llm_run_tool_calls(llm_chat('[{"role": "user", "content": "2 + 3?"}]', 'stories',
	tools => '["add"]', options => '{"chat_template": "x"}'))};
is(sql(sprintf($loop, 'alice')), '[{"name": "add", "role": "tool", "content": "5", "tool_call_id": "call_1"}]',
	'the tool call of the answer runs');
like(error_of(sprintf($loop, 'bob')), qr/42501: permission denied for tool "add"/, '... and needs EXECUTE');

# a conversation with a call and its result: the call's arguments reach the template as an object
sql(q{SELECT llm_chat('[{"role": "user", "content": "2 + 3?"},
	{"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
	 "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}},
	 {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": " "}}]},
	{"role": "tool", "tool_call_id": "call_1", "content": "5"}]', 'stories', options => '{"chat_template": "x"}')});
my $calls = decode_json(last_request()->{messages})->[1]{tool_calls};
is_deeply([ map { $_->{function}{arguments} } @$calls ], [ { a => 2, b => 3 }, {} ],
	'tool call arguments given as a JSON string are sent as an object (empty: {})');

# without tools: plain content; response_format is sent
$c = decode_json(sql(q{SELECT llm_chat('[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]', 'stories',
	response_format => '{"type": "json_object"}', options => '{"chat_template": "x"}')}));
is($c->{choices}[0]{message}{content} . '/' . $c->{choices}[0]{finish_reason}, 'hello from fake/stop', 'a plain answer');
$r = last_request();
is($r->{response_format}, '{"type": "json_object"}', '... response_format sent');
ok(!exists $r->{tools} && !exists $r->{tool_choice}, '... no tools, no tool_choice');

# the response cache: the grammar is part of the key
sql(q{SET llamagpu.response_cache = on});
my $n0 = scalar(requests());
my $cached = q{SET llamagpu.response_cache = on;
	SELECT llm_generate('cache me', 'stories', temperature => 0, options => '{"grammar": "root ::= \"%s\""}')};
sql(sprintf($cached, 'a'));
sql(sprintf($cached, 'b'));
sql(sprintf($cached, 'a'));
is(scalar(requests()) - $n0, 2, 'a second grammar is a second cache entry; the first is answered from the cache');
is(sql('SELECT count(*) FROM llamagpu.response_cache'), '2', '... two rows');

# a table job sends its json_schema with every row
sql(q{CREATE TABLE src (id int PRIMARY KEY, body text); INSERT INTO src VALUES (1, 'x'), (2, 'y');
	  CREATE TABLE dst (id int, answer jsonb);
	  SELECT llm_job_create('j', 'src', 'id', 'body', 'dst', 'answer', 'stories', '{"json_schema": {"type": "object"}}')});
ok(wait_for($node, "SELECT state FROM llm_stat_jobs WHERE name = 'j'", 'done', 30), 'the job is done');
is(sql(q{SELECT string_agg(id || '=' || answer::text, ',' ORDER BY id) FROM dst}), '1={"ok": true},2={"ok": true}',
	'... jsonb written for every row');

# a value cut short is a failed row, not half a value written (even to a text column)
sql(q{CREATE TABLE dst2 (id int, answer text);
	  SELECT llm_job_create('k', 'src', 'id', 'body', 'dst2', 'answer', 'stories', '{"json_schema": {"truncate": true}}')});
ok(wait_for($node, "SELECT state FROM llm_stat_jobs WHERE name = 'k'", 'done', 30), 'the job with cut values is done');
is(sql(q{SELECT count(*) FROM dst2}), '0', '... nothing written');
is(sql(q{SELECT string_agg(row_id || ' ' || sqlstate || ' ' || error, ',' ORDER BY row_id) FROM llm_job_failures WHERE job = 'k'}),
	'1 54000 generated JSON value is incomplete (raise max_tokens),2 54000 generated JSON value is incomplete (raise max_tokens)',
	'... every row failed with 54000');

$node->stop;
done_testing();
