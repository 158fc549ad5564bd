# Table jobs: a job writes exactly one output per row, records per-row
# failures, survives the engine being killed (kill -9) and Postgres being
# stopped with -m immediate in the middle of a batch, and obeys pause,
# resume and cancel between batches.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# a slow engine (20 ms per token) so that the jobs are surely mid-batch
my $node = llamagpu_node('jobs', "llamagpu.engine_options = '--debug-token-delay-ms 20'\n");
my $n_rows = 40;

# A source table, a target table and a log of every committed write to the
# target (a trigger, so a write rolled back leaves no trace).
sub make_tables
{
	my ($t) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE ${t}_src (id int PRIMARY KEY, body text);
		INSERT INTO ${t}_src SELECT i, 'Story ' || i FROM generate_series(1, $n_rows) i;
		UPDATE ${t}_src SET body = repeat('Once upon a time ', 1000) WHERE id = 13;
		CREATE TABLE ${t}_out (id int, summary text);
		CREATE TABLE ${t}_writes (id int);
		CREATE FUNCTION ${t}_log() RETURNS trigger LANGUAGE plpgsql AS
			\$\$BEGIN INSERT INTO ${t}_writes VALUES (NEW.id); RETURN NEW; END\$\$;
		CREATE TRIGGER ${t}_log AFTER INSERT OR UPDATE ON ${t}_out FOR EACH ROW EXECUTE FUNCTION ${t}_log();
	});
}

sub create_job
{
	my ($t) = @_;
	$node->safe_psql('postgres', qq{
		SELECT llm_job_create('$t', '${t}_src', 'id', \$\$body || ', and'\$\$, '${t}_out', 'summary', 'stories',
							  '{"max_tokens": 8, "temperature": 0, "batch_size": 4}')});
}

sub job
{
	my ($t, $col) = @_;
	return $node->safe_psql('postgres', "SELECT $col FROM llm_stat_jobs WHERE name = '$t'");
}

# Poll until the job's column satisfies the SQL condition.
sub wait_job
{
	my ($t, $cond, $timeout) = @_;
	return wait_for($node, "SELECT ($cond) FROM llm_stat_jobs WHERE name = '$t'", 't', $timeout // 60);
}

# Every row but the failing one written exactly once, with llm_generate's output.
sub check_exactly_once
{
	my ($t, $what) = @_;
	is(job($t, 'state'), 'done', "$what: job done");
	is(job($t, 'rows_done || \'/\' || rows_failed || \'/\' || rows_total'), ($n_rows - 1) . "/1/$n_rows",
		"$what: counters");
	is($node->safe_psql('postgres', "SELECT count(*) FROM ${t}_out"), $n_rows - 1, "$what: one target row per row");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM (SELECT id FROM ${t}_writes GROUP BY id HAVING count(*) <> 1) d"),
		'0', "$what: every row written exactly once");
	is($node->safe_psql('postgres', "SELECT count(DISTINCT id) FROM ${t}_writes"), $n_rows - 1,
		"$what: no row lost");
	is($node->safe_psql('postgres', qq{
			SELECT count(*) FROM ${t}_out o JOIN ${t}_src s USING (id)
			WHERE o.summary IS DISTINCT FROM llm_generate(s.body || ', and', 'stories', max_tokens => 8, temperature => 0)
			  AND o.id IN (1, 2, 17, 29, 40)}),
		'0', "$what: outputs are llm_generate's");
	is($node->safe_psql('postgres', "SELECT row_id || ' ' || sqlstate FROM llm_job_failures WHERE job = '$t'"),
		'13 54000', "$what: the too-long prompt is recorded as failed");
}

# 1. a plain run
make_tables('plain');
create_job('plain');
ok(wait_job('plain', "state <> 'running'"), 'plain job ends');
check_exactly_once('plain', 'plain');
like(job('plain', 'last_error'), qr/^row 13: prompt is too long/, 'last_error names the row');
ok(wait_for($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'llamagpu job worker'", '0'),
	'the worker exits when no job is left');

# 2. the engine killed mid-batch
make_tables('kill');
create_job('kill');
ok(wait_job('kill', 'rows_done >= 8'), 'kill job under way');
ok(wait_for($node, "SELECT count(*) > 0 FROM llm_stat_activity a JOIN pg_stat_activity p ON p.pid = a.backend_pid"
		  . " WHERE p.backend_type = 'llamagpu job worker'", 't'), '... with requests in the engine');
my $engine = engine_pid($node);
kill 'KILL', $engine;
ok(wait_engine_restart($node, $engine) > 0, 'engine restarted');
ok(wait_job('kill', "state <> 'running'"), 'kill job ends');
ok($node->log_contains('llamagpu job "kill": llamagpu engine terminated while processing the request'),
	'the batch in flight failed and was done again');
check_exactly_once('kill', 'engine killed');

# 3. Postgres stopped with -m immediate mid-batch, then started
make_tables('crash');
create_job('crash');
ok(wait_job('crash', 'rows_done >= 8'), 'crash job under way');
ok(wait_for($node, "SELECT count(*) > 0 FROM llm_stat_activity a JOIN pg_stat_activity p ON p.pid = a.backend_pid"
		  . " WHERE p.backend_type = 'llamagpu job worker'", 't'), '... with requests in the engine');
my $before = job('crash', 'rows_done');
$node->stop('immediate');
$node->start;
# nobody calls a function: the supervisor starts the worker from the marker file
ok(wait_job('crash', "state <> 'running'", 120), 'crash job resumed after the restart and ended');
cmp_ok($before, '<', $n_rows - 1, "the restart came mid-job ($before rows done)");
check_exactly_once('crash', 'immediate restart');

# 4. pause, resume, cancel
make_tables('pause');
create_job('pause');
ok(wait_job('pause', 'rows_done >= 4'), 'pause job under way');
$node->safe_psql('postgres', "SELECT llm_job_pause('pause')");
is(job('pause', 'state'), 'paused', 'paused');
# the batch in flight may still commit; then nothing moves
usleep(1_500_000);
my $paused_at = job('pause', 'rows_done + rows_failed');
usleep(1_500_000);
is(job('pause', 'rows_done + rows_failed'), $paused_at, "no progress while paused ($paused_at rows)");
cmp_ok($paused_at, '<', $n_rows, '... before the end');
$node->safe_psql('postgres', "SELECT llm_job_resume('pause')");
ok(wait_job('pause', "state <> 'running'"), 'resumed job ends');
check_exactly_once('pause', 'paused and resumed');

make_tables('cancel');
create_job('cancel');
ok(wait_job('cancel', 'rows_done >= 4'), 'cancel job under way');
$node->safe_psql('postgres', "SELECT llm_job_cancel('cancel')");
usleep(1_500_000);
my $cancelled_at = job('cancel', 'rows_done');
usleep(1_000_000);
is(job('cancel', 'state'), 'cancelled', 'cancelled');
is(job('cancel', 'rows_done'), $cancelled_at, "no progress after cancel ($cancelled_at rows)");
cmp_ok($cancelled_at, '<', $n_rows - 1, '... before the end');
is(job('cancel', 'rows_pending'), '0', 'a cancelled job has nothing pending');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT id FROM cancel_writes GROUP BY id HAVING count(*) <> 1) d"),
	'0', 'what the cancelled job wrote, it wrote once');
my ($ret, $stdout, $stderr) = $node->psql('postgres', "SELECT llm_job_resume('cancel')");
like($stderr, qr/cannot resume job "cancel" because it is cancelled/, 'a cancelled job cannot resume');

$node->stop;
done_testing();
