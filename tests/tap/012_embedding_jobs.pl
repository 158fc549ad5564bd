# Embedding jobs: a job fills a column with the embedding of an expression
# for every row and keeps it current through inserts, updates and deletes;
# it survives the engine being killed (kill -9) and Postgres being stopped
# with -m immediate mid-batch: every row ends with the embedding of its
# current text, and the queue's records show no text embedded twice.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

# a slow engine (one input of ~10 tokens per 30 ms step) so that batches
# are surely in flight when the engine or Postgres goes down
my $node = llamagpu_node('embedding_jobs',
	"llamagpu.engine_options = '--debug-token-delay-ms 30 --max-batch-tokens 8'\n");
my $n_rows = 60;
my $src = q{title || ': ' || body};

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub job { return sql("SELECT $_[0] FROM llm_stat_embedding_jobs WHERE \"table\" = 'public.docs'"); }

sql(qq{
	CREATE TABLE docs (id int PRIMARY KEY, title text, body text, other int, emb real[]);
	INSERT INTO docs SELECT i, 'Story ' || i, 'Once upon a time there was a dog number ' || i, 0
	FROM generate_series(1, $n_rows) i;
	UPDATE docs SET body = NULL WHERE id = 60;
	UPDATE docs SET body = repeat('Once upon a time ', 600) WHERE id = 13;
});

# bad arguments are refused before anything is created
my ($rc, $out, $err) = $node->psql('postgres',
	qq{SELECT llm_embedding_job_create('docs', 'id', 'emb[1]::text', 'emb', 'stories')});
like($err, qr/source must not read the target column "emb"/, 'a source reading the target is refused');
($rc, $out, $err) = $node->psql('postgres',
	qq{SELECT llm_embedding_job_create('docs', 'id', 'nosuch', 'emb', 'stories')});
like($err, qr/invalid source expression: column "nosuch" does not exist/, 'a bad source is refused');
($rc, $out, $err) = $node->psql('postgres',
	qq{SELECT llm_embedding_job_create('docs', 'id', 'body', 'title', 'stories')});
like($err, qr/target column "title" must be of type real\[\] or vector/, 'a text target is refused');
($rc, $out, $err) = $node->psql('postgres',
	qq{SELECT llm_embedding_job_create('docs', 'id', 'body', 'emb', 'stories', '{"batch": 3}')});
like($err, qr/unknown option "batch"/, 'an unknown option is refused');
is(sql('SELECT count(*) FROM llm_embedding_jobs'), '0', 'nothing was created');

my $job = sql(qq{SELECT llm_embedding_job_create('docs', 'id', \$\$$src\$\$, 'emb', 'stories',
											  '{"batch_size": 4, "keep_done": true}')});
is(sql("SELECT source_columns FROM llm_embedding_jobs WHERE id = $job"), '{body,title}', 'the source columns');
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'docs'::regclass AND tgname LIKE 'llm_embedding_%'"),
	'2', 'two triggers');
($rc, $out, $err) = $node->psql('postgres',
	qq{SELECT llm_embedding_job_create('docs', 'id', 'body', 'emb', 'stories')});
like($err, qr/already has an embedding job/, 'one job per column');

# 1. the engine killed mid-batch, while rows change
ok(wait_for($node, "SELECT rows_done >= 8 FROM llm_stat_embedding_jobs WHERE id = $job", 't', 60),
	'job under way');
sql(qq{
	UPDATE docs SET body = body || ' who ran' WHERE id IN (1, 2, 3, 40, 41);
	INSERT INTO docs SELECT i, 'Story ' || i, 'A new story ' || i, 0 FROM generate_series(61, 65) i;
	DELETE FROM docs WHERE id IN (20, 21, 22);
	UPDATE docs SET other = 1 WHERE id = 7;
});
ok(wait_for($node, "SELECT count(*) > 0 FROM llm_stat_activity a JOIN pg_stat_activity p ON p.pid = a.backend_pid"
		  . " WHERE p.backend_type = 'llamagpu job worker'", 't'), '... with an EMBED request in the engine');
my $engine = engine_pid($node);
kill 'KILL', $engine;
ok(wait_engine_restart($node, $engine, 30) > 0, 'engine restarted');
sql(qq{UPDATE docs SET title = 'Tale 5' WHERE id = 5;});

# 2. Postgres stopped with -m immediate mid-batch
ok(wait_for($node, "SELECT rows_done >= 30 FROM llm_stat_embedding_jobs WHERE id = $job", 't', 120),
	'job under way again');
ok(wait_for($node, "SELECT count(*) > 0 FROM llm_stat_activity a JOIN pg_stat_activity p ON p.pid = a.backend_pid"
		  . " WHERE p.backend_type = 'llamagpu job worker'", 't'), '... with an EMBED request in the engine');
my $before = job('rows_pending');
$node->stop('immediate');
$node->start;
cmp_ok($before, '>', 0, "the restart came mid-job ($before rows pending)");
sql(qq{UPDATE docs SET body = 'The end of story 50' WHERE id = 50;});

ok(wait_for($node, "SELECT rows_pending = 0 FROM llm_stat_embedding_jobs WHERE id = $job", 't', 180),
	'the job caught up');
is(job('state'), 'running', 'the job keeps running');
is(job('rows_failed'), '1', 'one row failed');
like(job('last_error'), qr/^row 13: input is too long for the model's context/, 'last_error names the row');
like(sql("SELECT error FROM llm_embedding_queue WHERE job_id = $job AND row_id = '13'"),
	qr/input is too long/, 'the failure is kept in the queue entry');
ok($node->log_contains('llamagpu job "\\(embedding\\)": llamagpu engine terminated while processing the request'),
	'a batch was cut by the engine kill and done again');

# every row has the embedding of its current text (NULL text: NULL)
is(sql(qq{SELECT count(*) FROM docs WHERE id <> 13 AND (emb IS NULL) <> (body IS NULL)}), '0',
	'every row with text has an embedding, none without');
is(sql(qq{SELECT count(*) FROM docs WHERE id <> 13 AND body IS NOT NULL
		AND emb IS DISTINCT FROM llm_embed($src, 'stories')}), '0',
	'every embedding is llm_embed of the current text');
is(sql("SELECT count(*) FROM docs"), $n_rows + 2, 'rows');
# exactly once: no (row, text) embedded twice in the queue's records
is(sql(qq{SELECT count(*) FROM (SELECT row_id, source_md5 FROM llm_embedding_queue
		WHERE job_id = $job AND done_at IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d}), '0',
	'no text embedded twice');
# the last record of every row is its current text
is(sql(qq{SELECT count(*) FROM docs d WHERE d.id <> 13 AND md5($src) IS DISTINCT FROM
		(SELECT q.source_md5 FROM llm_embedding_queue q WHERE q.job_id = $job AND q.row_id = d.id::text
		 AND q.done_at IS NOT NULL ORDER BY q.done_at DESC LIMIT 1)}), '0',
	'the last record of every row is its current text');
is(sql("SELECT count(*) FROM llm_embedding_queue WHERE job_id = $job AND row_id = '7'"), '1',
	'a change of another column does not re-embed');
is(sql("SELECT count(*) FROM llm_embedding_queue WHERE job_id = $job AND row_id = '1'"), '2',
	'an update of the source re-embeds');
is(sql("SELECT count(*) FROM llm_embedding_queue WHERE job_id = $job AND row_id IN ('20', '21', '22')
		AND done_at IS NULL"), '0', 'deleted rows leave no pending entry');

# a failed row is tried again when its text changes
sql("UPDATE docs SET body = 'A short story' WHERE id = 13");
ok(wait_for($node, "SELECT emb IS NOT DISTINCT FROM llm_embed($src, 'stories') FROM docs WHERE id = 13", 't', 60),
	'the failed row is embedded once its text fits');

# drop: triggers and queue go, the embeddings stay
sql("SELECT llm_embedding_job_drop('docs')");
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'docs'::regclass AND tgname LIKE 'llm_embedding_%'"),
	'0', 'dropping the job drops its triggers');
is(sql("SELECT count(*) FROM llm_embedding_queue"), '0', '... and its queue');
is(sql("SELECT count(*) FROM docs WHERE emb IS NOT NULL"), $n_rows + 1, '... and keeps the embeddings');
sql("INSERT INTO docs VALUES (100, 'x', 'y', 0)");
is(sql("SELECT count(*) FROM llm_embedding_queue"), '0', 'no queueing after the drop');
($rc, $out, $err) = $node->psql('postgres', "SELECT llm_embedding_job_drop('docs')");
like($err, qr/no embedding job on public.docs/, 'dropping it again is an error');

# privileges: a job runs as its creator, who sees and drops only its own
sql(qq{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	GRANT llm_user TO alice, bob;
	SELECT llm_grant_model('stories', 'alice');
	CREATE TABLE alice_docs (id int PRIMARY KEY, body text, emb real[]);
	ALTER TABLE alice_docs OWNER TO alice;
	INSERT INTO alice_docs VALUES (1, 'Once upon a time'), (2, 'The little dog');
	GRANT SELECT ON alice_docs TO bob;
});
sub as_role
{
	my ($role, $q) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "SET ROLE $role; $q");
	return $rc == 0 ? $out : $err;
}
like(as_role('bob', qq{SELECT llm_embedding_job_create('alice_docs', 'id', 'body', 'emb', 'stories')}),
	qr/permission denied for model "stories"/, 'no job without a grant on the model');
sql("SELECT llm_grant_model('stories', 'bob')");
like(as_role('bob', qq{SELECT llm_embedding_job_create('alice_docs', 'id', 'body', 'emb', 'stories')}),
	qr/permission denied for table alice_docs/, 'no job on a table without the TRIGGER privilege');
my $ajob = as_role('alice', qq{SELECT llm_embedding_job_create('alice_docs', 'id', 'body', 'emb', 'stories')});
like($ajob, qr/^\d+$/, 'the owner creates a job');
ok(wait_for($node, "SELECT count(*) FROM alice_docs WHERE emb IS NOT NULL", '2', 60), "alice's rows embedded");
is(sql("SELECT count(*) FROM alice_docs WHERE emb IS DISTINCT FROM llm_embed(body, 'stories')"), '0',
	"alice's embeddings are llm_embed's");
is(as_role('bob', 'SELECT count(*) FROM llm_stat_embedding_jobs'), '0', "bob does not see alice's job");
is(as_role('alice', 'SELECT count(*) FROM llm_stat_embedding_jobs'), '1', 'alice sees her job');
like(as_role('bob', qq{SELECT llm_embedding_job_drop('alice_docs')}), qr/no embedding job on public.alice_docs/,
	"bob cannot drop alice's job");
like(as_role('bob', qq{INSERT INTO llm_embedding_jobs (owner, table_oid, table_name, id_column, id_type, source,
		target_column, target_type, model, search_path)
		VALUES ((SELECT oid FROM pg_roles WHERE rolname = 'alice'), 'alice_docs'::regclass, 'x', 'id', 'int',
		'body', 'emb', 'real[]', 'stories', 'public')}),
	qr/new row violates row-level security policy/, 'bob cannot make a job that runs as alice');
like(as_role('bob', 'UPDATE llm_embedding_jobs SET model = 1'), qr/permission denied/, 'only the worker updates jobs');
# a job whose owner lost the model fails; given it back, it resumes
sql("SELECT llm_revoke_model('stories', 'alice')");
sql("UPDATE alice_docs SET body = 'Lily and Ben' WHERE id = 1");
ok(wait_for($node, "SELECT state FROM llm_stat_embedding_jobs WHERE id = $ajob", 'failed', 60), 'the job fails');
like(as_role('alice', "SELECT last_error FROM llm_stat_embedding_jobs"), qr/permission denied for model "stories"/,
	'last_error says why');
is(as_role('bob', "SELECT llm_embedding_job_resume('alice_docs')"), '0', "bob cannot resume alice's job");
sql("SELECT llm_grant_model('stories', 'alice')");
is(as_role('alice', "SELECT llm_embedding_job_resume('alice_docs')"), '1', 'alice resumes it');
ok(wait_for($node, "SELECT emb IS NOT DISTINCT FROM llm_embed(body, 'stories') FROM alice_docs WHERE id = 1", 't', 60),
	'the resumed job catches up');
is(as_role('alice', "SELECT state FROM llm_stat_embedding_jobs"), 'running', 'running again');
like(as_role('alice', "UPDATE llm_embedding_jobs SET rows_done = 0"), qr/permission denied/,
	'the owner cannot touch the counters');

# the trigger function attached to another table queues nothing for the job
sql("GRANT CREATE ON SCHEMA public TO bob");
as_role('bob', qq{CREATE TABLE bob_t (id int); CREATE TRIGGER t AFTER INSERT ON bob_t FOR EACH ROW
		EXECUTE FUNCTION llamagpu.llm_embedding_enqueue('$ajob', 'id'); INSERT INTO bob_t VALUES (77)});
is(sql("SELECT count(*) FROM bob_t"), '1', "bob's trigger ran");
is(sql("SELECT count(*) FROM llm_embedding_queue WHERE row_id = '77'"), '0',
	"a trigger on another table does not feed alice's job");
is(as_role('alice', qq{SELECT llm_embedding_job_drop('alice_docs', 'emb')}), 't', 'alice drops her job');

# a vector target (a STAND-IN type made here, text in and out: pgvector is not installed)
sql(qq{
	CREATE TYPE vector;
	CREATE FUNCTION vector_in(cstring) RETURNS vector AS 'textin' LANGUAGE internal IMMUTABLE STRICT;
	CREATE FUNCTION vector_out(vector) RETURNS cstring AS 'textout' LANGUAGE internal IMMUTABLE STRICT;
	CREATE TYPE vector (INPUT = vector_in, OUTPUT = vector_out, LIKE = text);
	SELECT llm_enable_vector();
	CREATE TABLE vdocs (id bigint PRIMARY KEY, body text, emb vector);
	INSERT INTO vdocs VALUES (1, 'Once upon a time'), (2, 'The little dog');
	SELECT llm_embedding_job_create('vdocs', 'id', 'body', 'emb', 'stories');
});
ok(wait_for($node, "SELECT count(*) FROM vdocs WHERE emb IS NOT NULL", '2', 60), 'vector targets filled');
is(sql("SELECT count(*) FROM vdocs WHERE emb::text IS DISTINCT FROM llm_embed_vector(body, 'stories')::text"), '0',
	'vector targets are llm_embed_vector');

# a pending row locked by another transaction: the worker waits (does not spin), then does it
my $vjob = sql("SELECT id FROM llm_embedding_jobs WHERE table_name = 'public.vdocs'");
my ($h) = start_psql($node, "BEGIN; SELECT 1 FROM vdocs WHERE id = 2 FOR SHARE; SELECT pg_sleep(3); COMMIT;");
sleep(1);
my $batches = sql("SELECT batches FROM llm_embedding_jobs WHERE id = $vjob");
sql("INSERT INTO llm_embedding_queue (job_id, row_id) VALUES ($vjob, '2'); SELECT llm_embedding_wake();");
sleep(1);
cmp_ok(sql("SELECT batches FROM llm_embedding_jobs WHERE id = $vjob") - $batches, '<=', 4,
	'a locked row makes the worker wait, not spin');
is(sql("SELECT count(*) FROM llm_embedding_queue WHERE job_id = $vjob AND done_at IS NULL"), '1',
	'the locked row is still pending');
$h->finish;
ok(wait_for($node, "SELECT count(*) FROM llm_embedding_queue WHERE job_id = $vjob AND done_at IS NULL", '0', 60),
	'done once the lock is gone');

$node->stop;
done_testing();
