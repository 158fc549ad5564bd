/* 70_embed.sql: embeddings (docs/embeddings.md) */

-- An embedding is a real[]; pgvector takes it by the cast llm_embed(..)::vector,
-- or through llm_embed_vector, which exists where the vector type does.
CREATE FUNCTION llm_embed(input text, model text DEFAULT NULL, "normalize" boolean DEFAULT true,
						  truncate boolean DEFAULT false)
	RETURNS real[]
	AS 'MODULE_PATHNAME', 'llm_embed'
	LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION llm_embed IS 'the embedding of a text (NULL for NULL), unit length unless normalize is false';

CREATE FUNCTION llm_embed_batch(inputs text[], model text DEFAULT NULL, "normalize" boolean DEFAULT true,
								truncate boolean DEFAULT false)
	RETURNS TABLE (ord int, embedding real[])
	AS 'MODULE_PATHNAME', 'llm_embed_batch'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED ROWS 100;
COMMENT ON FUNCTION llm_embed_batch IS 'the embeddings of every element of an array at once; one row per element, in order';

CREATE FUNCTION llm_similarity(a real[], b real[]) RETURNS float8
	AS 'MODULE_PATHNAME', 'llm_similarity'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION llm_similarity IS 'cosine similarity of two vectors of the same length (pgvector: 1 - (a <=> b))';

-- The vector type llm_embed_vector returns: pgvector's, else (a database
-- without pgvector, or a stand-in for tests) the one base type named vector.
CREATE FUNCTION llm_vector_type() RETURNS regtype
	LANGUAGE sql STABLE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT t.oid::regtype
	FROM pg_type t
	LEFT JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
	LEFT JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
	WHERE t.typname = 'vector' AND t.typtype = 'b'
	ORDER BY e.extname = 'vector' DESC NULLS LAST, t.oid
	LIMIT 1
$$;

-- Create (or re-create) llm_embed_vector for the vector type, as a member
-- of this extension.  Called at CREATE EXTENSION llamagpu and, by the event
-- trigger below, at CREATE EXTENSION vector; call it by hand after making
-- a vector type some other way.  Returns false when there is no vector type.
CREATE FUNCTION llm_enable_vector() RETURNS boolean
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	vtype regtype := @extschema@.llm_vector_type();
	fn text := '@extschema@.llm_embed_vector(text, text, boolean, boolean)';
BEGIN
	IF vtype IS NULL THEN
		RETURN false;
	END IF;
	IF pg_catalog.to_regprocedure(fn) IS NOT NULL AND
	   (SELECT p.prorettype FROM pg_proc p WHERE p.oid = pg_catalog.to_regprocedure(fn)) <> vtype THEN
		EXECUTE 'DROP FUNCTION ' || fn;
	END IF;
	-- pgvector reads its text form '[x,y,...]'; real's output is the shortest exact form
	EXECUTE pg_catalog.format($f$
		CREATE OR REPLACE FUNCTION @extschema@.llm_embed_vector(input text, model text DEFAULT NULL,
				"normalize" boolean DEFAULT true, truncate boolean DEFAULT false)
			RETURNS %s
			LANGUAGE sql VOLATILE PARALLEL SAFE
			SET search_path = pg_catalog, pg_temp
			AS 'SELECT (''['' || pg_catalog.array_to_string(e, '','') || '']'')::%s
				FROM @extschema@.llm_embed($1, $2, $3, $4) AS e'
		$f$, vtype, vtype);
	EXECUTE 'COMMENT ON FUNCTION ' || fn || ' IS ''llm_embed as a pgvector vector''';
	EXECUTE 'REVOKE ALL ON FUNCTION ' || fn || ' FROM PUBLIC';
	EXECUTE 'GRANT EXECUTE ON FUNCTION ' || fn || ' TO llm_user';
	-- Not a member of the extension, which DROP TYPE vector CASCADE (or DROP
	-- EXTENSION vector CASCADE) would then drop whole; an automatic
	-- dependency instead: it goes with llamagpu, or alone with the type.
	DELETE FROM pg_depend d
	WHERE d.classid = 'pg_proc'::regclass AND d.objid = pg_catalog.to_regprocedure(fn)
	  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e';
	INSERT INTO pg_depend (classid, objid, objsubid, refclassid, refobjid, refobjsubid, deptype)
	SELECT 'pg_proc'::regclass, pg_catalog.to_regprocedure(fn), 0, 'pg_extension'::regclass, e.oid, 0, 'a'
	FROM pg_extension e
	WHERE e.extname = 'llamagpu'
	  AND NOT EXISTS (SELECT FROM pg_depend d
					  WHERE d.classid = 'pg_proc'::regclass AND d.objid = pg_catalog.to_regprocedure(fn)
						AND d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid);
	RETURN true;
END
$fn$;
COMMENT ON FUNCTION llm_enable_vector IS 'create llm_embed_vector for the vector type (pgvector); false when there is none';

-- CREATE EXTENSION vector after llamagpu: make llm_embed_vector then.  A
-- failure only warns: it must never stop pgvector from being installed.
CREATE FUNCTION llm_vector_event() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
BEGIN
	IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() c
			   WHERE c.object_type = 'extension' AND c.object_identity = 'vector') THEN
		BEGIN
			PERFORM @extschema@.llm_enable_vector();
		EXCEPTION WHEN OTHERS THEN
			RAISE WARNING 'llamagpu could not create llm_embed_vector: %', SQLERRM
				USING HINT = 'A superuser can run SELECT llamagpu.llm_enable_vector();';
		END;
	END IF;
END
$fn$;
CREATE EVENT TRIGGER llamagpu_vector ON ddl_command_end
	WHEN TAG IN ('CREATE EXTENSION')
	EXECUTE FUNCTION llm_vector_event();

SELECT @extschema@.llm_enable_vector();

-- as every C function of llamagpu: llm_user's (llm_similarity runs no model, but the rule is simple)
REVOKE ALL ON FUNCTION
	llm_embed(text, text, boolean, boolean), llm_embed_batch(text[], text, boolean, boolean),
	llm_similarity(real[], real[]), llm_enable_vector(), llm_vector_event()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	llm_embed(text, text, boolean, boolean), llm_embed_batch(text[], text, boolean, boolean),
	llm_similarity(real[], real[])
	TO llm_user;
GRANT EXECUTE ON FUNCTION llm_enable_vector() TO llm_admin;

-- Embedding jobs: keep a column holding the embedding of an expression
-- over its row.  Triggers queue the rows whose source changes; the job
-- worker of the database (job_worker.c, embedding_jobs.c) embeds queued
-- rows in batches, and writes each target together with the queue entry
-- in one transaction.
CREATE TABLE llm_embedding_jobs (
	id				bigserial PRIMARY KEY,
	owner			oid NOT NULL,			-- the role the job runs as
	table_oid		oid NOT NULL,
	table_name		text NOT NULL,			-- schema-qualified, quoted (at creation)
	id_column		text NOT NULL,
	id_type			text NOT NULL,
	source			text NOT NULL,			-- SQL expression over the table's columns
	source_columns	text[],					-- the columns it reads; NULL: every column
	target_column	text NOT NULL,
	target_type		text NOT NULL,			-- real[] or a vector type
	model			text NOT NULL,
	"normalize"		boolean NOT NULL DEFAULT true,
	truncate		boolean NOT NULL DEFAULT false,
	batch_size		int NOT NULL DEFAULT 32 CHECK (batch_size BETWEEN 1 AND 1024),
	keep_done		boolean NOT NULL DEFAULT false,	-- keep processed queue entries (an audit trail)
	search_path		text NOT NULL,			-- the creator's, for the source expression
	state			text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'failed')),
	rows_done		bigint NOT NULL DEFAULT 0,
	rows_failed		bigint NOT NULL DEFAULT 0,
	tokens			bigint NOT NULL DEFAULT 0,
	batches			bigint NOT NULL DEFAULT 0,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz,
	last_error		text,
	UNIQUE (table_oid, target_column)
);
COMMENT ON TABLE llm_embedding_jobs IS 'embedding jobs; see llm_embedding_job_create()';

CREATE TABLE llm_embedding_queue (
	seq				bigserial PRIMARY KEY,
	job_id			bigint NOT NULL REFERENCES llm_embedding_jobs (id) ON DELETE CASCADE,
	row_id			text NOT NULL,			-- the row's id, as text
	enqueued_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	done_at			timestamptz,			-- embedded and written (kept with keep_done)
	source_md5		text,					-- md5 of the text embedded (NULL: no text, no row)
	n_tokens		int,
	error			text,					-- why the row failed; retried when its source changes
	failed_at		timestamptz
);
COMMENT ON TABLE llm_embedding_queue IS 'rows of embedding jobs to (re-)embed, and with keep_done those done';
-- one pending entry per row: a change while it waits adds nothing
CREATE UNIQUE INDEX llm_embedding_queue_pending ON llm_embedding_queue (job_id, row_id) WHERE done_at IS NULL;

ALTER TABLE llm_embedding_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_embedding_queue ENABLE ROW LEVEL SECURITY;
CREATE POLICY llm_embedding_jobs_owner ON llm_embedding_jobs
	USING (@extschema@.llm_job_visible(owner))
	WITH CHECK (owner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user));
CREATE POLICY llm_embedding_queue_owner ON llm_embedding_queue
	USING (EXISTS (SELECT FROM @extschema@.llm_embedding_jobs j WHERE j.id = job_id))
	WITH CHECK (EXISTS (SELECT FROM @extschema@.llm_embedding_jobs j WHERE j.id = job_id
						AND j.owner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)));
-- users create and drop their jobs; only the worker updates them
GRANT SELECT, INSERT, DELETE ON llm_embedding_jobs TO llm_user;
GRANT SELECT, INSERT ON llm_embedding_queue TO llm_user;
GRANT USAGE ON SEQUENCE llm_embedding_jobs_id_seq, llm_embedding_queue_seq_seq TO llm_user;

CREATE VIEW llm_stat_embedding_jobs AS
	SELECT j.id, j.table_name AS "table", j.target_column, j.source, j.model, j.state,
		   j.owner::regrole AS owner,
		   (SELECT count(*) FROM @extschema@.llm_embedding_queue q
			WHERE q.job_id = j.id AND q.done_at IS NULL AND q.error IS NULL) AS rows_pending,
		   j.rows_done, j.rows_failed, j.tokens, j.batches,
		   j.created_at AS created, j.updated_at AS updated, j.last_error
	FROM @extschema@.llm_embedding_jobs j
	WHERE @extschema@.llm_job_visible(j.owner);
COMMENT ON VIEW llm_stat_embedding_jobs IS 'progress of the embedding jobs the current user may see';
GRANT SELECT ON llm_stat_embedding_jobs TO llm_user;

-- The model a job uses: checked for the caller, the default resolved.
CREATE FUNCTION llm_embedding_model_check(model text) RETURNS text
	AS 'MODULE_PATHNAME', 'llm_embedding_model_check'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
-- Have the job worker start (or wake) when this transaction commits.
CREATE FUNCTION llm_embedding_wake() RETURNS void
	AS 'MODULE_PATHNAME', 'llm_embedding_wake'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The triggers: queue the row (again) when its source changes; forget it
-- when it is deleted.  TG_ARGV: the job id, the id column.
CREATE FUNCTION llm_embedding_enqueue() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	rid text;
BEGIN
	-- only on the job's own table (anyone may attach this trigger function anywhere)
	IF NOT EXISTS (SELECT FROM @extschema@.llm_embedding_jobs j
				   WHERE j.id = TG_ARGV[0]::bigint AND j.table_oid = TG_RELID) THEN
		RETURN NULL;
	END IF;
	EXECUTE pg_catalog.format('SELECT ($1).%I::text', TG_ARGV[1]) INTO rid USING NEW;
	IF rid IS NULL THEN
		RETURN NULL;
	END IF;
	IF TG_OP = 'UPDATE' THEN
		-- the id changed: the old one is gone
		DECLARE
			old_rid text;
		BEGIN
			EXECUTE pg_catalog.format('SELECT ($1).%I::text', TG_ARGV[1]) INTO old_rid USING OLD;
			IF old_rid IS DISTINCT FROM rid THEN
				DELETE FROM @extschema@.llm_embedding_queue q
				WHERE q.job_id = TG_ARGV[0]::bigint AND q.row_id = old_rid AND q.done_at IS NULL;
			END IF;
		END;
	END IF;
	-- a failed entry is tried again: the text it failed on changed
	INSERT INTO @extschema@.llm_embedding_queue AS q (job_id, row_id) VALUES (TG_ARGV[0]::bigint, rid)
	ON CONFLICT (job_id, row_id) WHERE done_at IS NULL
	DO UPDATE SET error = NULL, failed_at = NULL WHERE q.error IS NOT NULL;
	PERFORM @extschema@.llm_embedding_wake();
	RETURN NULL;
END
$fn$;

CREATE FUNCTION llm_embedding_dequeue() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	rid text;
BEGIN
	IF NOT EXISTS (SELECT FROM @extschema@.llm_embedding_jobs j
				   WHERE j.id = TG_ARGV[0]::bigint AND j.table_oid = TG_RELID) THEN
		RETURN NULL;
	END IF;
	EXECUTE pg_catalog.format('SELECT ($1).%I::text', TG_ARGV[1]) INTO rid USING OLD;
	DELETE FROM @extschema@.llm_embedding_queue q
	WHERE q.job_id = TG_ARGV[0]::bigint AND q.row_id = rid AND q.done_at IS NULL;
	RETURN NULL;
END
$fn$;

-- Create a job (see docs/embeddings.md); returns its id.  Runs as the
-- caller: the triggers need the TRIGGER privilege on the table, the first
-- fill SELECT on it; the worker later writes target_column as the caller.
CREATE FUNCTION llm_embedding_job_create("table" regclass, id_column text, source text, target_column text,
										 model text DEFAULT NULL, options jsonb DEFAULT NULL)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	tbl regclass := $1;
	tname text;
	id_att record;
	target_att record;
	cols text[];
	whole_row boolean;
	job bigint;
	opt text;
	o_batch int := 32;
	o_truncate boolean := false;
	o_normalize boolean := true;
	o_keep boolean := false;
	resolved text;
	trig text;
	caller_path text := pg_catalog.current_setting('search_path');
BEGIN
	IF tbl IS NULL OR id_column IS NULL OR source IS NULL OR target_column IS NULL THEN
		RAISE EXCEPTION 'table, id_column, source and target_column must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF pg_catalog.btrim(source) = '' THEN
		RAISE EXCEPTION 'source must not be empty' USING ERRCODE = 'zero_length_character_string',
			HINT = 'Give an SQL expression over the table''s columns, e.g. title || '' '' || body.';
	END IF;
	SELECT c.relkind, pg_catalog.format('%I.%I', n.nspname, c.relname) AS name INTO STRICT id_att
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
	IF id_att.relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = 'wrong_object_type';
	END IF;
	tname := id_att.name;
	SELECT a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type INTO id_att
	FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = id_column AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation % does not exist', id_column, tbl USING ERRCODE = 'undefined_column';
	END IF;
	SELECT a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, t.typname, a.attndims INTO target_att
	FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
	WHERE a.attrelid = tbl AND a.attname = target_column AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'column "%" of relation % does not exist', target_column, tbl USING ERRCODE = 'undefined_column';
	END IF;
	IF target_att.typname NOT IN ('_float4', 'vector') THEN
		RAISE EXCEPTION 'target column "%" must be of type real[] or vector', target_column
			USING ERRCODE = 'datatype_mismatch', DETAIL = pg_catalog.format('Its type is %s.', target_att.type);
	END IF;
	IF target_column = id_column THEN
		RAISE EXCEPTION 'the target column must not be the id column' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM @extschema@.llm_embedding_jobs j WHERE j.table_oid = tbl AND j.target_column = $4) THEN
		RAISE EXCEPTION 'column "%" of % already has an embedding job', target_column, tbl
			USING ERRCODE = 'duplicate_object', HINT = 'Drop it first with llm_embedding_job_drop().';
	END IF;

	-- options
	IF options IS NOT NULL THEN
		IF pg_catalog.jsonb_typeof(options) <> 'object' THEN
			RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		FOR opt IN SELECT pg_catalog.jsonb_object_keys(options) LOOP
			IF opt NOT IN ('batch_size', 'truncate', 'normalize', 'keep_done') THEN
				RAISE EXCEPTION 'unknown option "%"', opt USING ERRCODE = 'invalid_parameter_value',
					HINT = 'The options are batch_size, truncate, normalize and keep_done.';
			END IF;
			IF opt = 'batch_size' AND (pg_catalog.jsonb_typeof(options -> opt) <> 'number'
					OR (options ->> opt)::numeric NOT BETWEEN 1 AND 1024
					OR (options ->> opt)::numeric <> pg_catalog.trunc((options ->> opt)::numeric)) THEN
				RAISE EXCEPTION 'option "batch_size" must be an integer between 1 and 1024'
					USING ERRCODE = 'invalid_parameter_value';
			ELSIF opt <> 'batch_size' AND pg_catalog.jsonb_typeof(options -> opt) <> 'boolean' THEN
				RAISE EXCEPTION 'option "%" must be true or false', opt USING ERRCODE = 'invalid_parameter_value';
			END IF;
		END LOOP;
		o_batch := coalesce((options ->> 'batch_size')::int, o_batch);
		o_truncate := coalesce((options ->> 'truncate')::boolean, o_truncate);
		o_normalize := coalesce((options ->> 'normalize')::boolean, o_normalize);
		o_keep := coalesce((options ->> 'keep_done')::boolean, o_keep);
	END IF;
	resolved := @extschema@.llm_embedding_model_check(model);

	-- the source's columns: the ones a view over it depends on (with the caller's search_path)
	PERFORM pg_catalog.set_config('search_path', caller_path, true);
	BEGIN
		EXECUTE pg_catalog.format('CREATE TEMP VIEW llm_embedding_source_probe AS SELECT (%s)::text AS source FROM %s',
								  source, tname);
	EXCEPTION WHEN syntax_error OR undefined_column OR undefined_function OR datatype_mismatch
			  OR cannot_coerce OR undefined_table OR wrong_object_type OR ambiguous_column THEN
		RAISE EXCEPTION 'invalid source expression: %', SQLERRM USING ERRCODE = SQLSTATE,
			HINT = 'The source is an SQL expression over the table''s columns whose value is text.';
	END;
	PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
	SELECT pg_catalog.array_agg(DISTINCT a.attname::text ORDER BY a.attname::text),
		   pg_catalog.bool_or(d.refobjsubid = 0)
	INTO cols, whole_row
	FROM pg_depend d
	LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
	WHERE d.classid = 'pg_rewrite'::regclass
	  AND d.objid IN (SELECT r.oid FROM pg_rewrite r WHERE r.ev_class = 'pg_temp.llm_embedding_source_probe'::regclass)
	  AND d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl;
	DROP VIEW pg_temp.llm_embedding_source_probe;
	IF whole_row THEN
		cols := NULL;
	END IF;
	IF target_column = ANY (cols) OR whole_row THEN
		IF whole_row THEN
			RAISE EXCEPTION 'source must name the columns it reads' USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'A whole-row reference would make every write of the embedding a change of its source.';
		END IF;
		RAISE EXCEPTION 'source must not read the target column "%"', target_column
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	INSERT INTO @extschema@.llm_embedding_jobs (owner, table_oid, table_name, id_column, id_type, source,
			source_columns, target_column, target_type, model, "normalize", truncate, batch_size, keep_done,
			search_path)
	VALUES ((SELECT r.oid FROM pg_roles r WHERE r.rolname = current_user), tbl, tname, id_column, id_att.type,
			source, cols, target_column, target_att.type, resolved, o_normalize, o_truncate, o_batch, o_keep,
			caller_path)
	RETURNING id INTO job;

	-- every row now; then the triggers keep it current
	EXECUTE pg_catalog.format('INSERT INTO @extschema@.llm_embedding_queue (job_id, row_id)
							   SELECT $1, t.%I::text FROM %s t WHERE t.%I IS NOT NULL ORDER BY t.%I',
							  id_column, tname, id_column, id_column) USING job;
	trig := 'llm_embedding_' || job;
	EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OF %s ON %s FOR EACH ROW
							   EXECUTE FUNCTION @extschema@.llm_embedding_enqueue(%L, %L)',
							  trig || '_upsert',
							  (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ')
							   FROM pg_catalog.unnest(cols || id_column) c),
							  tname, job, id_column);
	EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER DELETE ON %s FOR EACH ROW
							   EXECUTE FUNCTION @extschema@.llm_embedding_dequeue(%L, %L)',
							  trig || '_delete', tname, job, id_column);
	PERFORM @extschema@.llm_embedding_wake();
	RETURN job;
END
$fn$;
COMMENT ON FUNCTION llm_embedding_job_create IS 'keep target_column the embedding of source for every row, now and after every change';

-- Drop a job: its triggers and its queue (the embeddings written stay).
CREATE FUNCTION llm_embedding_job_drop("table" regclass, target_column text DEFAULT NULL)
	RETURNS boolean
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	j record;
	n int := 0;
BEGIN
	FOR j IN SELECT e.id, e.table_name FROM @extschema@.llm_embedding_jobs e
			 WHERE e.table_oid = $1 AND (e.target_column = $2 OR $2 IS NULL) LOOP
		EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s', 'llm_embedding_' || j.id || '_upsert', $1);
		EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %s', 'llm_embedding_' || j.id || '_delete', $1);
		DELETE FROM @extschema@.llm_embedding_jobs e WHERE e.id = j.id;
		n := n + 1;
	END LOOP;
	IF n = 0 THEN
		RAISE EXCEPTION '%', pg_catalog.format('no embedding job on %s%s', $1,
											  coalesce(' column ' || pg_catalog.quote_ident($2), ''))
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN true;
END
$fn$;
COMMENT ON FUNCTION llm_embedding_job_drop IS 'drop the embedding job(s) of a table (one column, or all): triggers and queue';

-- Run a failed job again (after the cause was fixed: a grant given back, a
-- column restored); returns how many jobs were resumed.
CREATE FUNCTION llm_embedding_job_resume("table" regclass, target_column text DEFAULT NULL)
	RETURNS int
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
	AS $fn$
DECLARE
	n int;
BEGIN
	UPDATE @extschema@.llm_embedding_jobs e SET state = 'running'
	WHERE e.table_oid = $1 AND (e.target_column = $2 OR $2 IS NULL) AND e.state = 'failed';
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM @extschema@.llm_embedding_wake();
	END IF;
	RETURN n;
END
$fn$;
COMMENT ON FUNCTION llm_embedding_job_resume IS 'run the failed embedding job(s) of a table again';
-- the owner may set the state (the policy keeps it to its own jobs); the counters are the worker's
GRANT UPDATE (state) ON llm_embedding_jobs TO llm_user;

SELECT pg_catalog.pg_extension_config_dump('llm_embedding_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('llm_embedding_queue', '');
SELECT pg_catalog.pg_extension_config_dump('llm_embedding_jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_embedding_queue_seq_seq', '');

REVOKE ALL ON FUNCTION
	llm_embedding_model_check(text), llm_embedding_wake(), llm_embedding_enqueue(), llm_embedding_dequeue(),
	llm_embedding_job_create(regclass, text, text, text, text, jsonb), llm_embedding_job_drop(regclass, text),
	llm_embedding_job_resume(regclass, text)
	FROM PUBLIC;
-- CREATE TRIGGER needs EXECUTE on the trigger function (which checks its table)
GRANT EXECUTE ON FUNCTION
	llm_embedding_model_check(text), llm_embedding_wake(), llm_embedding_enqueue(), llm_embedding_dequeue(),
	llm_embedding_job_create(regclass, text, text, text, text, jsonb), llm_embedding_job_drop(regclass, text),
	llm_embedding_job_resume(regclass, text)
	TO llm_user;
