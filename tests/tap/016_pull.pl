# Model downloads against a hub on loopback (lib/hub_server.py): a pull from
# hf:// with a token that stays on the first host, 404, 401, checksum
# mismatches, a dropped connection resumed within a call and across calls,
# redirects, a file that cannot be registered, a slow server cancelled by
# llm_cancel_download and by cancelling the waiting query, disk full (a
# small tmpfs), the remote file listing, and bad inputs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use File::Copy qw(copy);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Digest::SHA qw(sha256_hex);

my $model = $ENV{LLAMAGPU_TEST_MODEL} // '';
plan skip_all => "SKIP: no test model (LLAMAGPU_TEST_MODEL is not set or absent)"
  unless $model ne '' && -r $model;

# the hub's files
my $root = PostgreSQL::Test::Utils::tempdir('hub');
for my $n (qw(stories260K stories-a stories-b stories-c stories-d tiny-Q4_K_M))
{
	copy($model, "$root/$n.gguf") or die "copy: $!";
}
open(my $fh, '>', "$root/big.gguf") or die;
print $fh 'GGUF' . ("\x01" x (1024 * 1024));    # 1 MiB: 26 s from /slow/
close $fh;
open($fh, '>', "$root/junk.gguf") or die;
print $fh 'GGUF' . ("\xff" x 65536);             # a GGUF magic, then nonsense
close $fh;
my $sha = sha256_hex(slurp_file($model));

my $hublog = "$root/../hub.log";
my $portfile = "$root/../hub.port";
my $hub = IPC::Run::start(['/usr/bin/python3', "$FindBin::RealBin/lib/hub_server.py",
	'--root', $root, '--port-file', $portfile, '--log', $hublog, '--token', 'sekret']);
# stopped however the test ends (a bail-out included)
END { $hub->kill_kill if $hub && $hub->pumpable; }
for (1 .. 100) { last if -e $portfile; usleep(50_000); }
my $port = slurp_file($portfile);
my $base = "http://127.0.0.1:$port";

my $dir = PostgreSQL::Test::Utils::tempdir('models');
my $node = llamagpu_node('pull',
	"llamagpu.model_dir = '$dir'\nllamagpu.hub_endpoint = '$base/'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE hubadmin LOGIN IN ROLE llm_admin;
	CREATE ROLE hubuser LOGIN IN ROLE llm_user;
	GRANT USAGE ON SCHEMA public TO hubadmin});

# Run SQL as hubadmin; returns (stdout, stderr) with SQLSTATEs in errors.
sub as_admin
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSET ROLE hubadmin;\n$sql");
	return ($out, $err);
}

sub sql1 { return $node->safe_psql('postgres', $_[0]); }

# Requests the hub has logged so far.
sub hub_count { my @l = split /\n/, slurp_file($hublog); return scalar @l; }

# The files under model_dir (the partial directory's files as .llamagpu-downloads/NAME).
sub files
{
	my @f;
	opendir(my $d, $dir) or die;
	for my $e (sort readdir $d)
	{
		next if $e eq '.' || $e eq '..';
		if ($e eq '.llamagpu-downloads')
		{
			opendir(my $p, "$dir/$e") or die;
			push @f, map { "$e/$_" } grep { !/^\.\.?$/ } sort readdir $p;
			closedir $p;
		}
		else { push @f, $e; }
	}
	closedir $d;
	return join(' ', @f);
}

sub hub_requests
{
	my ($re) = @_;
	return grep { $_->{path} =~ $re } map { eval { JSON::PP::decode_json($_) } // () }
	  split /\n/, slurp_file($hublog);
}
require JSON::PP;

# 1. hf:// with the default token (hf_token): registered, verified; the token
# went to the hub, not to the CDN host the hub redirected to
# (COPY data, unlike a statement, is not logged)
$node->safe_psql('postgres', "COPY llamagpu.llm_secrets (name, value) FROM STDIN;\nhf_token\tsekret\n\\.\n");
my ($out, $err) = as_admin(
	"SELECT model, state, size, sha256, verified FROM llm_pull_model('hf://private/models/stories260K.gguf\@main')");
is($out, "stories260K|done|" . (-s $model) . "|$sha|t", 'hf:// pull: registered and verified') or diag $err;
is(sql1("SELECT path, sha256 FROM llm_models WHERE name = 'stories260K'"), "$dir/stories260K.gguf|$sha",
	'the model row names the file in model_dir');
is(files(), 'stories260K.gguf', 'only the final file is left');
my @resolve = hub_requests(qr{^/private/models/resolve/main/stories260K.gguf$});
my @cdn = hub_requests(qr{^/cdn/stories260K.gguf$});
is(scalar(@resolve) . ' ' . ($resolve[0]{authorization} // 'none'), '1 Bearer sekret', 'the hub got the token');
is(scalar(@cdn) . ' ' . $cdn[0]{host} . ' ' . ($cdn[0]{authorization} // 'none'), "1 localhost:$port none",
	'the redirect target (another host) did not');
like(sql1("SELECT llm_generate('Once upon a time', 'stories260K', max_tokens => 4, temperature => 0)"), qr/\S/,
	'the downloaded model generates');

# 2. 404, 401 without the token: no model, no file
($out, $err) = as_admin("SELECT llm_pull_model('hf://test/models/missing.gguf')");
like($err, qr/ERROR:  58P01: could not download "hf:\/\/test\/models\/missing.gguf": the server answered HTTP 404/,
	'404 is an error');
sql1("DELETE FROM llamagpu.llm_secrets");
($out, $err) = as_admin("SELECT llm_pull_model('hf://private/models/stories-a.gguf')");
like($err, qr/ERROR:  42501: .*HTTP 401.*\n.*\nHINT:  Store a token/, '401 without a token, with a hint');
($out, $err) = as_admin("SELECT llm_pull_model('hf://private/models/stories-a.gguf', options => '{\"token_secret\": \"nope\"}')");
like($err, qr/ERROR:  42704: secret "nope" does not exist/, 'a missing secret is refused before any transfer');
is(files(), 'stories260K.gguf', 'failures leave no file');

# 3. checksum mismatches: the hub's, and one given
($out, $err) = as_admin("SELECT llm_pull_model('hf://test/badsha/stories-a.gguf')");
like($err, qr/ERROR:  XX001: .*checksum mismatch: SHA-256 $sha, published by the server/, 'a wrong published sha256');
($out, $err) = as_admin("SELECT llm_pull_model('$base/cdn/stories-a.gguf', options => '{\"sha256\": \"" . ('ab' x 32) . "\"}')");
like($err, qr/ERROR:  XX001: .*expected \(option sha256\)/, 'a wrong given sha256');
is(sql1("SELECT count(*) FROM llm_models WHERE name = 'stories-a'") . ' ' . files(), '0 stories260K.gguf',
	'a corrupt download leaves no model and no file');

# 4. the connection drops mid-file: the worker resumes with a range request
($out, $err) = as_admin("SELECT model, verified FROM llm_pull_model('$base/drop/stories-a.gguf', options => '{\"sha256\": \"$sha\"}')");
is($out, 'stories-a|t', 'a dropped download completes') or diag $err;
my @drop = hub_requests(qr{^/drop/stories-a.gguf$});
is(scalar(@drop), 2, 'in two requests');
like($drop[1]{range} // '', qr/^bytes=\d+-$/, 'the second one a range request');
is($drop[1]{if_range}, "\"$sha\"", 'guarded by If-Range');
is(sql1("SELECT attempts, resumed_from, bytes_done, verified FROM llm_stat_downloads WHERE model = 'stories-a' AND state = 'done'"),
	'2|0|' . (-s $model) . '|t', 'llm_stat_downloads shows the attempts');

# 5. ... and with no retries, a later call resumes the kept partial file
($out, $err) = as_admin("SELECT llm_pull_model('$base/drop/stories-b.gguf', options => '{\"retries\": 0}')");
like($err, qr/ERROR:  08006: .*\nDETAIL:  \d+ of \d+ bytes are kept in .*\nHINT:  Call llm_pull_model again to resume/,
	'a dropped download without retries fails, keeping the partial file');
is(files(), '.llamagpu-downloads/stories-b.gguf.part .llamagpu-downloads/stories-b.gguf.part.source stories-a.gguf stories260K.gguf',
	'the partial file is in .llamagpu-downloads');
($out, $err) = as_admin("SELECT model, sha256 FROM llm_pull_model('$base/drop/stories-b.gguf', options => '{\"retries\": 0}')");
is($out, "stories-b|$sha", 'calling again resumes and completes') or diag $err;
ok(sql1("SELECT resumed_from > 0 AND attempts = 1 FROM llm_stat_downloads WHERE model = 'stories-b' AND state = 'done'") eq 't',
	'from the kept bytes');

# 6. redirects, name and file_name options, registration options
($out, $err) = as_admin("SELECT model, path FROM llm_pull_model('$base/redirect/3/stories-c.gguf', 'tiny:c', "
	  . "'{\"file_name\": \"renamed.gguf\", \"context_size\": 128, \"description\": \"via redirects\"}')");
is($out, "tiny:c|$dir/renamed.gguf", 'three redirects, a model name and a file name') or diag $err;
is(sql1("SELECT options->>'context_size', options->>'description' FROM llm_models WHERE name = 'tiny:c'"),
	'128|via redirects', 'registration options are passed on');

# 7. a file that is not a model: not registered, removed
($out, $err) = as_admin("SELECT llm_pull_model('$base/cdn/junk.gguf')");
like($err, qr/ERROR:  .*could not download .*: the downloaded file could not be registered/, 'a bad GGUF is not registered');
unlike(files(), qr/junk/, 'and its file is removed');

# 8. a slow server: cancelled with llm_cancel_download ...
($out, $err) = as_admin("SELECT download_id, state FROM llm_pull_model('$base/slow/big.gguf', options => '{\"wait\": false}')");
my ($id) = $out =~ /^(\d+)\|starting$/;
ok($id, 'wait => false returns at once') or diag "$out $err";
ok(wait_for($node, "SELECT state = 'running' AND bytes_done > 8192 FROM llm_stat_downloads WHERE download_id = $id", 't', 20),
	'the slow download runs');
like(sql1("SELECT bytes_total || ' ' || (bytes_per_second > 0) FROM llm_stat_downloads WHERE download_id = $id"),
	qr/^1048580 true$/, 'with its total and rate');
($out, $err) = as_admin("SELECT llm_cancel_download($id)");
is($out, 't', 'llm_cancel_download stops it');
is(sql1("SELECT state FROM llm_stat_downloads WHERE download_id = $id"), 'cancelled', 'the view says cancelled');
unlike(files(), qr/big/, 'and the partial file is gone');
($out, $err) = as_admin("SELECT llm_cancel_download($id)");
is($out, 'f', 'cancelling it again does nothing');

# ... and by cancelling the waiting query
my ($h, $hout, $herr) = start_psql($node,
	"SET ROLE hubadmin; SELECT llm_pull_model('$base/slow/big.gguf', 'big2')");
ok(wait_for($node, "SELECT count(*) FROM llm_stat_downloads WHERE model = 'big2' AND state = 'running' AND bytes_done > 0", '1', 20),
	'a waiting pull runs');
sql1("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%big2%' AND pid <> pg_backend_pid()");
$h->finish;
like($$herr, qr/canceling statement due to user request/, 'the waiting query is cancelled');
ok(wait_for($node, "SELECT state FROM llm_stat_downloads WHERE model = 'big2'", 'cancelled', 10),
	'and so is its download');
unlike(files(), qr/big/, 'without a trace');
is(sql1("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%' || 'sek' || 'ret%' AND pid <> pg_backend_pid()"), '0',
	'no token in pg_stat_activity');

# 9. disk full: model_dir on a 512 KiB tmpfs (prepared by scripts/test.sh when
# it runs as root, or mounted here when this test runs as root)
SKIP:
{
	my $small = $ENV{LLAMAGPU_TEST_SMALLFS} // '';
	my $mounted = 0;
	if ($small eq '' && $> == 0)
	{
		$small = PostgreSQL::Test::Utils::tempdir('smallfs');
		$mounted = system('mount', '-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', $small) == 0;
		$small = '' unless $mounted;
	}
	skip 'SKIP disk full: no small file system (not root, LLAMAGPU_TEST_SMALLFS unset)', 3
	  if $small eq '' || !-w $small;
	sql1("ALTER SYSTEM SET llamagpu.model_dir = '$small'");
	sql1("SELECT pg_reload_conf()");
	ok(wait_for($node, "SHOW llamagpu.model_dir", $small, 10), 'model_dir moved to the small file system');
	($out, $err) = as_admin("SELECT llm_pull_model('$base/cdn/stories-d.gguf')");
	like($err, qr/ERROR:  53100: could not download .*No space left on device/, 'disk full is an error');
	opendir(my $d, "$small/.llamagpu-downloads");
	is(join(' ', grep { !/^\.\.?$/ } readdir $d), '', 'and the partial file is removed');
	closedir $d;
	sql1("ALTER SYSTEM RESET llamagpu.model_dir");
	sql1("SELECT pg_reload_conf()");
	system('umount', $small) if $mounted;
}

# 10. the remote listing: GGUF files only, across pages, with quantization
($out, $err) = as_admin("SELECT path, size, quantization, sha256 = '$sha', source FROM llm_list_remote_files('test/models') ORDER BY path");
my @rows = split /\n/, $out;
is(scalar(@rows), 8, 'every GGUF file of every page') or diag $err;
is($rows[7], 'gguf/tiny-Q4_K_M.gguf|' . (-s $model) . "|Q4_K_M|t|hf://test/models/gguf/tiny-Q4_K_M.gguf\@main",
	'with size, quantization, sha256 and a source for llm_pull_model');
($out, $err) = as_admin("SELECT * FROM llm_list_remote_files('nope/nothing/x')");
like($err, qr/ERROR:  22023: invalid repository "nope\/nothing\/x"/, 'a bad repository name');

# 11. bad inputs, each with its own error, before any request
my $before = hub_count();
for my $case (
	[ "'ftp://x/y.gguf'", qr/22023: unsupported source "ftp:\/\/x\/y.gguf"/ ],
	[ "'hf://only/two'", qr/22023: invalid source "hf:\/\/only\/two"/ ],
	[ "'hf://a/../x.gguf'", qr/22023: invalid repository "\.\."/ ],
	[ "'hf://a/b/c.gguf\@bad rev'", qr/22023: invalid revision "bad rev"/ ],
	[ "'$base/cdn/readme.txt'", qr/22023: file name "readme.txt" does not end in ".gguf"/ ],
	[ "'$base/cdn/x.gguf', 'bad name!'", qr/42602: invalid model name "bad name!"/ ],
	[ "'$base/cdn/x.gguf', 'stories'", qr/42710: model "stories" already exists/ ],
	[ "'$base/cdn/stories260K.gguf', 'other'", qr/58P02: file ".*stories260K.gguf" already exists/ ],
	[ "'$base/cdn/x.gguf', NULL, '{\"speed\": 1}'", qr/22023: unrecognized download option "speed"/ ],
	[ "'$base/cdn/x.gguf', NULL, '{\"sha256\": \"abc\"}'", qr/22023: option "sha256" must be 64 hexadecimal digits/ ],
	[ "'$base/cdn/x.gguf', NULL, '{\"wait\": 1}'", qr/42804: option "wait" must be a boolean/ ],
	[ "'$base/cdn/x.gguf', NULL, '{\"file_name\": \"../x.gguf\"}'", qr/22023: invalid file name "\.\.\/x.gguf"/ ],
	[ "'http://example.com/x.gguf', NULL, '{\"token_secret\": \"t\"}'", qr/22023: refusing to send token "t" over plain http/ ],
	[ "'$base/cdn/x.gguf', NULL, '{\"description\": \"" . ('x' x 600) . "\"}'", qr/54000: option "description" is too long/ ])
{
	sql1("INSERT INTO llamagpu.llm_secrets VALUES ('t', 'v') ON CONFLICT DO NOTHING");
	($out, $err) = as_admin("SELECT llm_pull_model($case->[0])");
	like($err, qr/ERROR:  $case->[1]/, "llm_pull_model($case->[0]) is refused");
}
is(hub_count(), $before, 'no bad input reached the hub');

# 12. only llm_admin downloads
my ($ret, $o, $e) = $node->psql('postgres', "SET ROLE hubuser; SELECT llm_pull_model('$base/cdn/x.gguf')");
like($e, qr/permission denied for function llm_pull_model/, 'llm_user may not pull');
($ret, $o, $e) = $node->psql('postgres', "SET ROLE hubuser; SELECT * FROM llm_stat_downloads");
like($e, qr/permission denied for view llm_stat_downloads/, 'nor see downloads');

unlike(slurp_file($node->logfile), qr/sekret/, 'the token is nowhere in the server log');

$hub->kill_kill;
$node->stop;
done_testing();
