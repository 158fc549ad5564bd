-- pgTAP: downloads — who may pull, cancel, clean, list and watch.
BEGIN;
SELECT plan(14);

SELECT has_function('llamagpu', 'llm_pull_model', ARRAY['text', 'text', 'jsonb']);
SELECT has_function('llamagpu', 'llm_list_remote_files', ARRAY['text', 'text', 'jsonb']);
SELECT has_view('llamagpu', 'llm_stat_downloads', 'llm_stat_downloads exists');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_pull_model(text, text, jsonb)', 'EXECUTE'), 'PUBLIC cannot pull');
SELECT ok(NOT has_function_privilege('llm_user', 'llamagpu.llm_pull_model(text, text, jsonb)', 'EXECUTE'), 'llm_user cannot pull');
SELECT ok(has_function_privilege('llm_admin', 'llamagpu.llm_pull_model(text, text, jsonb)', 'EXECUTE'), 'llm_admin pulls');
SELECT ok(NOT has_function_privilege('llm_user', 'llamagpu.llm_cancel_download(bigint)', 'EXECUTE'), 'llm_user cannot cancel downloads');
SELECT ok(has_function_privilege('llm_admin', 'llamagpu.llm_cancel_download(bigint)', 'EXECUTE'), 'llm_admin cancels downloads');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_clean_downloads()', 'EXECUTE'), 'PUBLIC cannot remove partial files');
SELECT ok(NOT has_function_privilege('llm_user', 'llamagpu.llm_list_remote_files(text, text, jsonb)', 'EXECUTE'),
		  'llm_user cannot make the server fetch listings');
SELECT ok(NOT has_function_privilege('public', 'llamagpu.llm_stat_downloads_internal()', 'EXECUTE'), 'PUBLIC cannot read download slots');
SELECT ok(NOT has_table_privilege('llm_user', 'llamagpu.llm_stat_downloads', 'SELECT'), 'llm_user cannot see downloads');
SELECT ok(has_table_privilege('llm_admin', 'llamagpu.llm_stat_downloads', 'SELECT'), 'llm_admin sees downloads');
SELECT throws_ok($$SELECT llamagpu.llm_cancel_download(-1)$$, '42704', 'download -1 does not exist',
				 'cancelling an unknown download is an error');

SELECT * FROM finish();
ROLLBACK;
