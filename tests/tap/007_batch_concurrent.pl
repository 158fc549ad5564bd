# llm_generate_batch from several sessions at once: every session gets every
# output, in order, equal to llm_generate's; a cancelled batch (statement
# timeout, pg_cancel_backend) stops all its requests in the engine at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = llamagpu_node('batch',
	"llamagpu.engine_options = '--debug-token-delay-ms 5'\nllamagpu.max_queued_requests = 100\n");

# the supervisor passes the batching settings to the engine
like(slurp_file('/proc/' . engine_pid($node) . '/cmdline'),
	qr/--max-batch-tokens\x00512\x00--max-queued\x00100\x00/, 'engine got --max-batch-tokens and --max-queued');

# prompts with different continuations, so that order matters
my @starts = ('Once upon a time', 'Lily and Tom', 'The sun', 'A little bird', 'Mom said', 'The dog',
	'One day', 'Sue', 'The big tree', 'Tim had a', 'The car', 'Ben');
my @prompts = map { "'$starts[$_ % 12]" . ($_ >= 12 ? ' was' : '') . "'" } 0 .. 23;
$prompts[6] = 'NULL';
my $array = 'ARRAY[' . join(', ', @prompts) . ']::text[]';

# the reference: one llm_generate per prompt
my $expected = $node->safe_psql('postgres', qq{
	SELECT string_agg(CASE WHEN p IS NULL THEN '<null>' ELSE llm_generate(p, 'stories', max_tokens => 10, temperature => 0) END, '|' ORDER BY i)
	FROM unnest($array) WITH ORDINALITY AS u(p, i)});
cmp_ok($node->safe_psql('postgres', "SELECT count(DISTINCT x) FROM unnest(string_to_array(\$e\$$expected\$e\$, '|')) x"),
	'>=', 12, 'the prompts have different outputs');

my $query = qq{SELECT string_agg(coalesce(output, '<null>'), '|' ORDER BY ord), count(*),
	bool_and(ord = expected_ord)
	FROM (SELECT b.*, row_number() OVER () AS expected_ord
		  FROM llm_generate_batch($array, 'stories', max_tokens => 10, temperature => 0) b) s};
my @runs = map { [ start_psql($node, $query) ] } 1 .. 4;
ok(wait_for($node, "SELECT count(DISTINCT backend_pid) >= 2 FROM llm_stat_activity", 't'),
	'several sessions have requests in the engine at once');
for my $i (0 .. $#runs)
{
	my ($h, $out, $err) = @{ $runs[$i] };
	$h->finish;
	is($$err, '', "session $i: no error");
	chomp $$out;
	is($$out, "$expected|24|t", "session $i: every output, in order, as llm_generate gives it");
}

# one session has many requests in flight at once, on one connection
my ($h, $out, $err) = start_psql($node,
	"SELECT count(*) FROM llm_generate_batch(array_fill('Once upon a time'::text, ARRAY[100]), 'stories', max_tokens => 200)");
ok(wait_for($node, "SELECT count(*) >= 20 FROM llm_stat_activity", 't'), 'one batch: many requests in flight');
my $bpid = $node->safe_psql('postgres', "SELECT backend_pid FROM llm_stat_activity LIMIT 1");
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM llm_stat_activity"), '<=', 64,
	'... at most the window of 64');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($bpid)");
my $t0 = time();
$h->finish;
like($$err, qr/canceling statement due to user request/, 'pg_cancel_backend stops the batch');
ok(wait_for($node, "SELECT count(*) FROM llm_stat_activity", '0', 2), '... and every request in the engine');
cmp_ok(time() - $t0, '<', 2, '... at once');

# statement_timeout the same way
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET statement_timeout = '300ms'; SELECT count(*) FROM llm_generate_batch(array_fill('Once upon a time'::text, ARRAY[30]), 'stories', max_tokens => 500)");
like($stderr, qr/canceling statement due to statement timeout/, 'statement_timeout stops the batch');
ok(wait_for($node, "SELECT count(*) FROM llm_stat_activity", '0', 2), '... and every request in the engine');

# the engine dies under a batch: a clear error, and the next batch works
($h, $out, $err) = start_psql($node,
	"SELECT count(*) FROM llm_generate_batch(array_fill('Once upon a time'::text, ARRAY[10]), 'stories', max_tokens => 500)");
ok(wait_for($node, "SELECT count(*) >= 5 FROM llm_stat_activity", 't'), 'batch in flight');
my $engine = engine_pid($node);
kill 'KILL', $engine;
$h->finish;
like($$err, qr/58000: llamagpu engine terminated while processing the request/, 'engine killed: the batch fails clearly');
ok(wait_engine_restart($node, $engine) > 0, 'engine restarted');
is($node->safe_psql('postgres',
		"SELECT count(output) FROM llm_generate_batch(ARRAY['a', 'b'], 'stories', max_tokens => 2)"),
	'2', 'the next batch works');

$node->stop;
done_testing();
