-- Table jobs: what llm_job_create checks (as the caller), the state
-- changes and who may make them, and a small job run to the end.
\pset format unaligned
CREATE TABLE job_docs (id int PRIMARY KEY, body text, summary text, n int NOT NULL DEFAULT 0);
INSERT INTO job_docs (id, body) SELECT i, 'Story number ' || i FROM generate_series(1, 12) i;
UPDATE job_docs SET body = NULL WHERE id = 5;
UPDATE job_docs SET body = repeat('Once upon a time ', 10) WHERE id = 8;
CREATE TABLE job_out (id int, summary varchar(40));

-- wait for a job to leave the state 'running'
CREATE FUNCTION job_wait(job text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	s text;
BEGIN
	FOR i IN 1 .. 600 LOOP
		SELECT state INTO s FROM llamagpu.llm_stat_jobs WHERE name = job;
		IF s <> 'running' THEN
			RETURN s;
		END IF;
		PERFORM pg_sleep(0.05);
		PERFORM pg_stat_clear_snapshot();
	END LOOP;
	RETURN 'timed out: ' || s;
END
$$;

-- argument errors
SELECT regress_error($$SELECT llm_job_create(NULL, 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('bad name', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', '', 'id', 'body', 'job_docs', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'no_such_table', 'id', 'body', 'job_docs', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'nope', 'body', 'job_docs', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'no_column || 1', 'job_docs', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'SELECT id, body FROM job_docs WHERE', 'id', 'body', 'job_docs', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'no_such_target', 'summary', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'nope', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'id', 'stories')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'nope')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories', '{"batch_size": 0}')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories', '{"max_tokens": 0}')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories', '{"temperature": "hot"}')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories', '{"stop": "x"}')$$);
SELECT regress_error($$SELECT llm_job_create('j', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories', '{"colour": 1}')$$);
SELECT count(*) AS jobs FROM llm_jobs;

-- a job over a table, writing back into it; row 5's prompt is NULL, row 8's too long
SELECT llm_job_create('docs', 'job_docs', 'id', $$body || '.'$$, 'job_docs', 'summary', 'stories_ctx16',
					  '{"max_tokens": 4, "temperature": 0, "batch_size": 5}') > 0 AS created;
SELECT regress_error($$SELECT llm_job_create('docs', 'job_docs', 'id', 'body', 'job_docs', 'summary', 'stories')$$);
SELECT job_wait('docs');
SELECT name, state, owner, rows_total, rows_done, rows_failed, rows_pending, tokens > 0 AS has_tokens,
	   rate > 0 AS has_rate, eta, started <= updated AS times_ok, last_error
FROM llm_stat_jobs WHERE name = 'docs';
SELECT job, row_id, sqlstate, error FROM llm_job_failures ORDER BY row_id::int;
-- every output is what llm_generate gives for the row's prompt
SELECT count(*) FILTER (WHERE summary IS NOT NULL) AS written,
	   bool_and(summary = llm_generate(body || '.', 'stories_ctx16', max_tokens => 4, temperature => 0))
		   FILTER (WHERE summary IS NOT NULL) AS same_as_llm_generate
FROM job_docs;

-- a query as the source, a separate target: rows are inserted, the target type cast to
SELECT llm_job_create('query', $$SELECT id, upper(body) AS b FROM job_docs WHERE id % 2 = 0$$, 'id',
					  $$'Once ' || b$$, 'job_out', 'summary', 'stories',
					  '{"max_tokens": 4, "temperature": 0}') > 0 AS created;
SELECT job_wait('query');
SELECT rows_total, rows_done, rows_failed FROM llm_stat_jobs WHERE name = 'query';
SELECT id, job_out.summary = llm_generate('Once ' || upper(body), 'stories', max_tokens => 4, temperature => 0) AS right_output
FROM job_out JOIN job_docs USING (id) ORDER BY id;

-- a value the target refuses fails that row only (each row is written in a
-- subtransaction); the value is assigned, not cast: too long for varchar(n) is an error
CREATE TABLE job_short (id int PRIMARY KEY, out varchar(9));
SELECT llm_job_create('short', $$VALUES (1, 'Once upon a time'), (2, 'x'), (3, 'Lily')$$, 'column1',
					  $$column2$$, 'job_short', 'out', 'stories', '{"max_tokens": 3, "temperature": 0}');
ALTER TABLE job_short RENAME COLUMN id TO column1;
SELECT llm_job_create('short', $$VALUES (1, 'Once upon a time'), (2, 'x'), (3, 'Lily')$$, 'column1',
					  $$column2$$, 'job_short', 'out', 'stories', '{"max_tokens": 3, "temperature": 0}') > 0 AS created;
SELECT job_wait('short');
SELECT rows_done, rows_failed FROM llm_stat_jobs WHERE name = 'short';
SELECT row_id, sqlstate, error FROM llm_job_failures WHERE job = 'short' ORDER BY row_id;
SELECT column1, out, out = llm_generate(p, 'stories', max_tokens => 3, temperature => 0) AS right_output
FROM job_short JOIN (VALUES (1, 'Once upon a time'), (2, 'x'), (3, 'Lily')) v(column1, p) USING (column1)
ORDER BY column1;
-- a jsonb target takes only JSON
CREATE TABLE job_json (column1 int, out jsonb);
SELECT llm_job_create('json', $$VALUES (1, 'Once upon a time')$$, 'column1', 'column2', 'job_json', 'out', 'stories',
					  '{"max_tokens": 6, "temperature": 0}') > 0 AS created;
SELECT job_wait('json');
SELECT row_id, sqlstate, error FROM llm_job_failures WHERE job = 'json';
SELECT llm_job_drop('short'), llm_job_drop('json');
DROP TABLE job_short, job_json;

-- state changes
SELECT regress_error($$SELECT llm_job_pause('docs')$$);
SELECT regress_error($$SELECT llm_job_resume('docs')$$);
SELECT regress_error($$SELECT llm_job_cancel('docs')$$);
SELECT regress_error($$SELECT llm_job_pause('nope')$$);
SELECT regress_error($$SELECT llm_job_pause(NULL)$$);

-- privileges: the creator needs to read the source and write the target;
-- only the owner and llm_admin may manage a job
CREATE ROLE regress_job_alice IN ROLE llm_user;
CREATE ROLE regress_job_bob IN ROLE llm_user;
CREATE ROLE regress_job_admin IN ROLE llm_admin;
SELECT llm_grant_model('stories');
CREATE TABLE job_alice (id int PRIMARY KEY, p text, out text);
INSERT INTO job_alice SELECT i, 'Tom ' || i FROM generate_series(1, 3) i;
ALTER TABLE job_alice OWNER TO regress_job_alice;
SET ROLE regress_job_bob;
SELECT regress_error($$SELECT llamagpu.llm_job_create('bob', 'job_alice', 'id', 'p', 'job_alice', 'out', 'stories')$$);
RESET ROLE;
GRANT SELECT ON job_alice TO regress_job_bob;
SET ROLE regress_job_bob;
SELECT regress_error($$SELECT llamagpu.llm_job_create('bob', 'job_alice', 'id', 'p', 'job_alice', 'out', 'stories')$$);
SET ROLE regress_job_alice;
-- created paused: the worker never sees it running
BEGIN;
SELECT llamagpu.llm_job_create('alice', 'job_alice', 'id', 'p', 'job_alice', 'out', 'stories',
							   '{"max_tokens": 2, "temperature": 0}') > 0 AS created;
SELECT llamagpu.llm_job_pause('alice');
COMMIT;
SELECT name, state FROM llamagpu.llm_stat_jobs;
SET ROLE regress_job_bob;
SELECT count(*) AS bob_sees FROM llamagpu.llm_stat_jobs;
SELECT count(*) AS bob_sees_rows FROM llamagpu.llm_jobs;
SELECT regress_error($$SELECT llamagpu.llm_job_resume('alice')$$);
SELECT regress_error($$SELECT llamagpu.llm_job_cancel('alice')$$);
SELECT regress_error($$UPDATE llamagpu.llm_jobs SET state = 'cancelled'$$);
SET ROLE regress_job_admin;
SELECT name, state FROM llamagpu.llm_stat_jobs WHERE name = 'alice';
SELECT llamagpu.llm_job_resume('alice');
SELECT job_wait('alice');
SET ROLE regress_job_alice;
SELECT count(out) AS written FROM job_alice;
SELECT llamagpu.llm_job_drop('alice');
RESET ROLE;
DROP TABLE job_alice;
SELECT llm_revoke_model('stories');
DROP ROLE regress_job_alice, regress_job_bob, regress_job_admin;

SELECT llm_job_drop('docs'), llm_job_drop('query');
SELECT count(*) AS jobs, (SELECT count(*) FROM llm_job_failures) AS failures FROM llm_jobs;
