-- pgTAP: inputs the SQL fuzzer (tests/fuzz/sql/fuzz_sql.py) found handled
-- wrongly, kept as regressions; each gets its own error before any network.
BEGIN;
SELECT plan(5);

SET LOCAL llamagpu.hub_endpoint = 'http://127.0.0.1:9';

-- more than 64 path segments were cut off silently: another file was fetched
SELECT throws_ok(
	format('SELECT llamagpu.llm_pull_model(%L)', 'hf://org/repo/' || repeat('d/', 70) || 'f.gguf'),
	'22023', NULL, 'an hf:// source with too many path segments is refused');
SELECT throws_like(
	format('SELECT llamagpu.llm_pull_model(%L)', 'hf://org/repo/' || repeat('d/', 70) || 'f.gguf'),
	'%invalid source%', 'the error names the source');

-- "." and ".." as a revision were resolved away by the URL parser
SELECT throws_ok($$SELECT llamagpu.llm_pull_model('hf://org/repo/f.gguf@..')$$, '22023',
				 'invalid revision ".." in source "hf://org/repo/f.gguf@.."',
				 'revision ".." is refused');

-- %00 in a URL's file name cut the name short: a.gguf%00.txt was saved as a.gguf
SELECT throws_ok($$SELECT llamagpu.llm_pull_model('http://127.0.0.1:9/a.gguf%00.txt')$$, '22023',
				 'invalid file name "a.gguf%00.txt"',
				 'a URL file name with %00 is not cut at the NUL');

-- an ordinary percent escape is still decoded
SELECT throws_ok($$SELECT llamagpu.llm_pull_model('http://127.0.0.1:9/a%2Bb.txt')$$, '22023',
				 'file name "a+b.txt" does not end in ".gguf"',
				 'percent escapes in a URL file name are decoded');

SELECT * FROM finish();
ROLLBACK;
