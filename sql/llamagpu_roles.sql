-- Roles and per-model privileges.
\getenv model_path LLAMAGPU_TEST_MODEL
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('llm_user', 'llm_admin') ORDER BY 1;

CREATE ROLE regress_llm_nobody;
CREATE ROLE regress_llm_alice IN ROLE llm_user;
CREATE ROLE regress_llm_bob IN ROLE llm_user;
CREATE ROLE regress_llm_admin IN ROLE llm_admin;

-- not an llm_user: cannot run anything
SET ROLE regress_llm_nobody;
SELECT llamagpu.llm_tokenize('Hi', 'stories');
SELECT llamagpu.llm_generate('Hi', 'stories', max_tokens => 1);
RESET ROLE;

-- an llm_user without a grant on the model
SET ROLE regress_llm_alice;
SELECT llamagpu.llm_tokenize('Hi', 'stories');
SELECT llamagpu.llm_register_model('mine', :'model_path');
SELECT llamagpu.llm_grant_model('stories', 'regress_llm_alice');
RESET ROLE;

-- an admin grants the model to alice
SET ROLE regress_llm_admin;
SELECT llamagpu.llm_grant_model('stories', 'regress_llm_alice');
RESET ROLE;
SET ROLE regress_llm_alice;
SELECT llamagpu.llm_tokenize('Hi', 'stories');
SELECT model, grantee::regrole FROM llamagpu.llm_model_grants ORDER BY 1, 2;
RESET ROLE;
SET ROLE regress_llm_bob;
SELECT llamagpu.llm_tokenize('Hi', 'stories');
-- bob sees no grants that are not his
SELECT count(*) FROM llamagpu.llm_model_grants;
RESET ROLE;

-- a grant to PUBLIC covers every llm_user; revoking takes it back
SET ROLE regress_llm_admin;
SELECT llamagpu.llm_grant_model('stories');
SET ROLE regress_llm_bob;
SELECT llamagpu.llm_count_tokens('Hi', 'stories');
SET ROLE regress_llm_admin;
SELECT llamagpu.llm_revoke_model('stories');
SELECT llamagpu.llm_revoke_model('stories', 'regress_llm_alice');
SET ROLE regress_llm_alice;
SELECT llamagpu.llm_tokenize('Hi', 'stories');
RESET ROLE;

-- admins register models under llamagpu.model_dir only
SET ROLE regress_llm_admin;
SELECT name FROM llamagpu.llm_register_model('admin_model', 'stories260K.gguf');
SELECT regress_error($$SELECT llamagpu.llm_register_model('outside', '/tmp/llamagpu_regress_text.gguf')$$);
SELECT llamagpu.llm_drop_model('admin_model');
RESET ROLE;

DROP ROLE regress_llm_nobody, regress_llm_alice, regress_llm_bob, regress_llm_admin;

-- dropping and re-creating the extension keeps the (cluster-wide) roles
DROP EXTENSION llamagpu;
SELECT count(*) AS roles_kept FROM pg_roles WHERE rolname IN ('llm_user', 'llm_admin');
CREATE EXTENSION llamagpu;
SELECT pg_has_role('llm_admin', 'llm_user', 'MEMBER') AS admin_is_user;
SELECT count(*) AS models FROM llamagpu.llm_models;
