# Engine plugins (docs/plugins.md) in a real cluster: install checks (ABI
# version, checksum, superuser), enabling restarts the engine with the
# plugin, the example changes greedy sampling exactly as logit_bias does,
# and a plugin that crashes the engine is disabled after three crashes
# while Postgres itself never restarts.
use strict;
use warnings;
use FindBin;
use File::Basename qw(dirname);
use Digest::SHA;
use lib "$FindBin::RealBin/lib";
use LlamagpuTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $plugins = dirname(dirname($ENV{LLAMAGPU_TEST_MODEL} // '/nonexistent/x')) . '/plugins';
plan skip_all => "SKIP: no engine plugins in $plugins (make plugins)"
  unless -r "$plugins/banwords.so" && -r "$plugins/test_crash.so";

my $node = llamagpu_node('plugins');
my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $sha = Digest::SHA->new(256)->addfile("$plugins/banwords.so")->hexdigest;

# psql's stderr for a statement that must fail
sub fails
{
	my ($sql, $user) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql,
		extra_params => ['-v', 'VERBOSITY=verbose', $user ? ('-U', $user) : ()]);
	return $rc == 0 ? "no error" : $err;
}

# --- installing: what is checked ------------------------------------------
like(fails("SELECT llm_install_plugin('banwords', 'engine', '$plugins/banwords.so', repeat('0', 64))"),
	qr/ERROR:  XX001: checksum mismatch for engine plugin "banwords".*DETAIL:  The file \S+ has SHA-256 $sha, not 0{64}/s,
	'a wrong checksum is refused');
like(fails("SELECT llm_install_plugin('wrong_abi', 'engine', '$plugins/test_wrong_abi.so')"),
	qr/ERROR:  0A000: engine plugin "wrong_abi" implements ABI version 99, this engine implements version 1/,
	'a plugin of another ABI version is refused');
# what plugin-check reports is read defensively: an ABI version past int, bytes that are not UTF-8
is($node->safe_psql('postgres',
		"SELECT status || ' ' || coalesce(abi_version::text, 'null') FROM llm_plugin_inspect('$plugins/test_odd_abi.so')"),
	'abi null', 'an ABI version that does not fit int is reported as unknown, not an error');
like(fails("SELECT llm_install_plugin('odd_abi', 'engine', '$plugins/test_odd_abi.so')"),
	qr/ERROR:  0A000: engine plugin "odd_abi" implements ABI version out of range, this engine implements version 1/,
	'... and installing it is refused for its ABI version');
is($node->safe_psql('postgres',
		"SELECT status || ' ' || version || ' ' || description FROM llm_plugin_inspect('$plugins/test_latin1.so')"),
	'ok 1.0? caf? cr?me ?', 'a version and description that are not UTF-8 become valid text');
like(fails("SELECT llm_install_plugin('no_init', 'engine', '$plugins/test_no_init.so')"),
	qr/ERROR:  22023: file "\S+" is not a loadable engine plugin.*DETAIL:  "\S+" does not export lg_plugin_init/s,
	'a library without lg_plugin_init is refused');
like(fails("SELECT llm_install_plugin('other', 'engine', '$plugins/banwords.so')"),
	qr/calls itself "banwords", not "other"/, 'the name must be the plugin\'s own');
like(fails("SELECT llm_install_plugin('x', 'engine', '$plugins/missing.so')"),
	qr/ERROR:  58P01: file "\S+missing.so" is not a loadable engine plugin/, 'a missing file is refused');
$node->safe_psql('postgres', "CREATE ROLE plugin_admin LOGIN IN ROLE llm_admin; CREATE ROLE plugin_user LOGIN IN ROLE llm_user; SELECT llm_grant_model('stories', 'plugin_user')");
like(fails("SELECT llamagpu.llm_install_plugin('banwords', 'engine', '$plugins/banwords.so')", 'plugin_admin'),
	qr/ERROR:  42501: permission denied to install engine plugin "banwords"/, 'llm_admin cannot install an engine plugin');
like(fails("SELECT llamagpu.llm_install_plugin('banwords', 'engine', '$plugins/banwords.so')", 'plugin_user'),
	qr/ERROR:  42501: permission denied for function llm_install_plugin/, 'llm_user cannot install plugins');

is($node->safe_psql('postgres',
		"SELECT name, kind, version, checksum = '$sha', enabled, state FROM llm_install_plugin('banwords', 'engine', '$plugins/banwords.so', '$sha')"),
	'banwords|engine|1.0|t|f|disabled', 'the example installs, disabled');
like(fails("SELECT llamagpu.llm_enable_plugin('banwords')", 'plugin_admin'),
	qr/ERROR:  42501: permission denied to enable engine plugin "banwords"/, 'llm_admin cannot enable it');

# --- enabled: the engine restarts with it, and it changes sampling -------
my $pid = engine_pid($node);
$node->safe_psql('postgres', "SELECT llm_enable_plugin('banwords')");
my $new = wait_engine_restart($node, $pid);
ok($new, "enabling restarted the engine ($pid -> $new)");
ok(wait_for($node, "SELECT state FROM llm_plugins WHERE name = 'banwords'", 'loaded'), 'the engine loaded it');
ok($node->log_contains('engine plugin "banwords" 1.0 loaded from'), 'the engine says so in the log');

my $gen = "SELECT llm_generate('Once upon a time', 'stories', max_tokens => 24, temperature => 0, options => '%s')";
my $base = $node->safe_psql('postgres', sprintf($gen, '{}'));
my $first = $node->safe_psql('postgres',
	"SELECT (llm_tokenize(\$\$$base\$\$, 'stories'))[2]");    # [1] is BOS
my $banned = $node->safe_psql('postgres', sprintf($gen,
	qq({"logits_processor": "banwords", "plugin_options": {"tokens": [$first]}})));
my $biased = $node->safe_psql('postgres', sprintf($gen, qq({"logit_bias": {"$first": -1e9}})));
isnt($banned, $base, 'banning the first greedy token changes the output');
is($banned, $biased, '... exactly as a logit bias of -1e9 on it does');
like(fails(sprintf($gen, '{"logits_processor": "banwords", "plugin_options": {"colour": 1}}')),
	qr/ERROR:  38000: engine plugin failed.*DETAIL:  Engine plugin "banwords" refused the request: unknown option "colour"/s,
	'bad plugin options are the plugin\'s error');
is($node->safe_psql('postgres', sprintf($gen, '{}'), extra_params => ['-U', 'plugin_user']), $base,
	'llm_user generates as before');

$pid = engine_pid($node);
$node->safe_psql('postgres', "SELECT llm_disable_plugin('banwords')");
$new = wait_engine_restart($node, $pid);
ok($new, 'disabling restarted the engine');
like(fails(sprintf($gen, '{"logits_processor": "banwords"}')),
	qr/ERROR:  38000: engine plugin failed.*Engine plugin "banwords" is not loaded/s, 'a disabled plugin is not loaded');

# --- a plugin that crashes the engine ------------------------------------
$node->safe_psql('postgres', "SELECT llm_install_plugin('crash', 'engine', '$plugins/test_crash.so')");
$pid = engine_pid($node);
$node->safe_psql('postgres', "SELECT llm_enable_plugin('crash')");
$pid = wait_engine_restart($node, $pid);
ok(wait_for($node, "SELECT state FROM llm_plugins WHERE name = 'crash'", 'loaded'), 'the crashing plugin loaded');
for my $i (1 .. 3)
{
	like(fails(sprintf($gen, '{"logits_processor": "crash"}')),
		qr/ERROR:  58000: llamagpu engine terminated while processing the request/, "crash $i: the session gets an error");
	$pid = wait_engine_restart($node, $pid, 30);
	ok($pid, "crash $i: the supervisor restarted the engine");
}
ok($node->log_contains('llamagpu engine crashed 3 times within 300 s with engine plugins loaded; restarting it without them'),
	'the log says the plugins were disabled');
ok($node->log_contains('Engine plugins disabled: crash\.  Last exit: signal 11'), '... which, and why');
is($node->safe_psql('postgres', "SELECT enabled, state, last_error FROM llm_plugins WHERE name = 'crash'"),
	'f|crashed|disabled: the engine crashed 3 times within 300 s with this plugin loaded (last: signal 11: Segmentation fault)',
	'the view says so');
like(fails(sprintf($gen, '{"logits_processor": "crash"}')), qr/Engine plugin "crash" is not loaded/,
	'the engine runs without it');
is($node->safe_psql('postgres', sprintf($gen, '{}')), $base, 'and generates as before');
ok(!$node->log_contains('engine plugin "crash" 0.0 loaded from.*\n(?s:.*)restarting it without them(?s:.*)engine plugin "crash" 0.0 loaded'),
	'it was not loaded again');

# enabling it again clears the crash mark (and the engine loads it again)
$node->safe_psql('postgres', "SELECT llm_enable_plugin('crash')");
ok(wait_for($node, "SELECT state FROM llm_plugins WHERE name = 'crash'", 'loaded', 20), 'enabled again, it is loaded again');
$node->safe_psql('postgres', "SELECT llm_disable_plugin('crash')");

# --- a database's plugins go with its extension and with the database ---
my $state = "SELECT coalesce(string_agg(state, ','), 'none') FROM llm_plugin_engine_state() WHERE name = 'banwords'";
# install and enable banwords in database plugdb; returns the engine's new PID
sub plugdb_enable
{
	$node->safe_psql('plugdb', 'CREATE EXTENSION llamagpu');
	$node->safe_psql('plugdb', "SELECT llamagpu.llm_install_plugin('banwords', 'engine', '$plugins/banwords.so', '$sha')");
	my $old = engine_pid($node);
	$node->safe_psql('plugdb', "SELECT llamagpu.llm_enable_plugin('banwords')");
	return wait_engine_restart($node, $old);
}
$node->safe_psql('postgres', 'CREATE DATABASE plugdb');
my $dboid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'plugdb'");
my $list = $node->data_dir . "/llamagpu_plugins/$dboid.list";
ok(plugdb_enable(), 'enabling an engine plugin in another database restarted the engine');
ok(-e $list && wait_for($node, $state, 'loaded'), "... which loaded it from that database's list");
$node->safe_psql('plugdb', 'BEGIN; DROP EXTENSION llamagpu; ROLLBACK');
$node->safe_psql('plugdb', 'BEGIN; SAVEPOINT s; DROP EXTENSION llamagpu; ROLLBACK TO s; COMMIT');
like(slurp_file($list), qr/^banwords\t$sha\t/, 'a DROP EXTENSION rolled back (or to a savepoint) keeps the list');
$pid = engine_pid($node);
$node->safe_psql('plugdb', 'DROP EXTENSION llamagpu');
ok(!-e $list, 'DROP EXTENSION llamagpu removes the database\'s list');
$new = wait_engine_restart($node, $pid);
ok($new, '... and the engine restarts');
is($node->safe_psql('postgres', $state), 'none', '... without that database\'s plugin');
ok($node->log_contains("removed the engine plugin list of database $dboid \\(extension dropped\\)"), '... as the log says');

ok(plugdb_enable() && -e $list, 'enabled again in a new extension');
$pid = engine_pid($node);
$node->safe_psql('postgres', 'DROP DATABASE plugdb');
ok(!-e $list, 'DROP DATABASE removes its list');
ok(wait_engine_restart($node, $pid), '... and the engine restarts');
is($node->safe_psql('postgres', $state), 'none', '... without the plugin');

# a list left behind by a database that no longer exists (dropped by a
# backend without llamagpu loaded, or by an older version) is ignored
my $stale = $node->data_dir . '/llamagpu_plugins/4000000000.list';
append_to_file($stale, "banwords\t$sha\t$plugins/banwords.so\n");
$pid = engine_pid($node);
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
ok(wait_for($node, "SELECT pg_stat_file('llamagpu_plugins/4000000000.list', true) IS NULL", 't'),
	'the supervisor removes the list of a database that does not exist');
ok($node->log_contains('removed the engine plugin list of database 4000000000, which no longer exists'), '... and logs it');
is(engine_pid($node), $pid, '... and does not restart the engine for it');
is($node->safe_psql('postgres', $state), 'none', '... nor load its plugins');

# --- a file changed after it was enabled is not loaded -------------------
$pid = engine_pid($node);
$node->safe_psql('postgres', "SELECT llm_enable_plugin('banwords')");
$pid = wait_engine_restart($node, $pid);
ok(wait_for($node, "SELECT state FROM llm_plugins WHERE name = 'banwords'", 'loaded'), 'banwords loaded again');
open(my $fh, '>>', "$plugins/banwords.so") or die "cannot append to banwords.so: $!";
print $fh "x";
close($fh);
kill 'KILL', $pid;
ok(wait_engine_restart($node, $pid), 'the engine restarted');
ok(wait_for($node, "SELECT state FROM llm_plugins WHERE name = 'banwords'", 'failed'), 'the changed file was not loaded');
like($node->safe_psql('postgres', "SELECT last_error FROM llm_plugins WHERE name = 'banwords'"),
	qr/^checksum mismatch: "\S+banwords.so" has SHA-256 [0-9a-f]{64}, expected $sha$/, '... for its checksum');
like(fails("SELECT llm_enable_plugin('banwords')"),
	qr/ERROR:  XX001: checksum mismatch for engine plugin "banwords"/, 'enabling it again is refused');
is($node->safe_psql('postgres', "SELECT llm_drop_plugin('crash'), llm_drop_plugin('banwords')"), 't|t', 'dropped');
is($node->safe_psql('postgres', 'SELECT count(*) FROM llm_plugins'), '0', 'the registry is empty');

is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $start_time, 'postmaster never restarted');
$node->stop;
done_testing();
