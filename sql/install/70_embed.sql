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

REVOKE ALL ON FUNCTION
	llm_embed(text, text, boolean, boolean), llm_embed_batch(text[], text, boolean, boolean),
	llm_enable_vector(), llm_vector_event()
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	llm_embed(text, text, boolean, boolean), llm_embed_batch(text[], text, boolean, boolean)
	TO llm_user;
GRANT EXECUTE ON FUNCTION llm_enable_vector() TO llm_admin;
