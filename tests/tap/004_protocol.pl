# The engine server on its own (no Postgres): the framed protocol of
# docs/protocol.md, several requests multiplexed on one connection, CANCEL
# frames, STATUS, and clean shutdown.
use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Utils;
use Test::More;

my $model = $ENV{LLAMAGPU_TEST_MODEL} // '';
plan skip_all => 'SKIP: no test model (LLAMAGPU_TEST_MODEL is not set or absent)'
  unless $model ne '' && -r $model;

my $bin = $ENV{LLAMAGPU_ENGINE_PATH};
if (!$bin)
{
	my $bindir = `pg_config --bindir`;
	chomp $bindir;
	$bin = "$bindir/llamagpu";
}

my $dir = PostgreSQL::Test::Utils::tempdir_short() . '/sock';
my $pid = fork();
if ($pid == 0)
{
	exec($bin, 'serve', '--socket-dir', $dir, '--threads', '1',
		'--debug-token-delay-ms', '5', '--log-level', 'warning')
	  or die "exec: $!";
}
my $path = "$dir/engine.sock";
for (1 .. 500) { last if -S $path; usleep(10_000); }
ok(-S $path, 'server listens');
is((stat $dir)[2] & 07777, 0700, 'socket directory is mode 0700');

sub fields { join('', map { "$_\0" } @_) }

sub frame
{
	my ($type, $id, $payload) = @_;
	return pack('N C N', length($payload), ord($type), $id) . $payload;
}

sub connect_engine
{
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path) or die "connect: $!";
	return $s;
}

# Read one frame (undef on EOF or after $timeout seconds).
sub read_frame
{
	my ($s, $timeout) = @_;
	my $sel = IO::Select->new($s);
	my $buf = '';
	my $want = 9;
	my $deadline = time() + ($timeout // 10);
	while (length($buf) < $want)
	{
		return undef unless $sel->can_read($deadline - time());
		my $n = sysread($s, $buf, $want - length($buf), length($buf));
		return undef unless $n;
		if (length($buf) == 9 && $want == 9)
		{
			my ($len) = unpack('N', $buf);
			$want = 9 + $len;
		}
	}
	my ($len, $type, $id) = unpack('N C N', $buf);
	my $payload = substr($buf, 9);
	my %f;
	if (chr($type) ne 'P')
	{
		my @kv = split(/\0/, $payload, -1);
		pop @kv;
		while (@kv) { my $k = shift @kv; my $v = shift @kv; $f{$k} //= $v; }
	}
	return { type => chr($type), id => $id, payload => $payload, f => \%f };
}

sub hello
{
	my $s = connect_engine();
	print $s frame('H', 0, fields('protocol', '1'));
	my $r = read_frame($s);
	return ($s, $r);
}

# handshake
my ($s, $r) = hello();
is($r->{type}, 'H', 'HELLO answered');
is($r->{f}{protocol}, '1', '... with protocol 1');

my $bad = connect_engine();
print $bad frame('H', 0, fields('protocol', '99'));
$r = read_frame($bad);
is($r->{type} . ':' . $r->{f}{status}, 'X:protocol', 'unknown protocol version refused');
is(read_frame($bad, 2), undef, '... and the connection closed');

$bad = connect_engine();
print $bad frame('S', 1, '');
is(read_frame($bad, 2), undef, 'request before HELLO closes the connection');

# INSPECT
print $s frame('I', 7, fields('path', $model));
$r = read_frame($s);
is($r->{type} . $r->{id}, 'R7', 'INSPECT answered');
is($r->{f}{architecture}, 'llama', '... architecture');
is($r->{f}{context_length}, '2048', '... context length');

# two generations multiplexed on one connection
my @gen = ('model', 'stories', 'path', $model, 'prompt', 'Once upon a time',
	'temperature', '0', 'max_tokens');
print $s frame('G', 1, fields(@gen, '8')) . frame('G', 2, fields(@gen, '8'));
my %text = (1 => '', 2 => '');
my %end;
while (keys %end < 2)
{
	$r = read_frame($s) or last;
	$text{ $r->{id} } .= $r->{payload} if $r->{type} eq 'P';
	$end{ $r->{id} } = $r if $r->{type} eq 'E' || $r->{type} eq 'X';
}
is($end{1}{type} . $end{2}{type}, 'EE', 'both requests ended');
is($end{1}{f}{n_gen}, '8', '... with 8 tokens');
is($end{1}{f}{finish}, 'length', '... finish reason');
like($text{1}, qr/^, there was a little girl/, '... greedy text');
is($text{1}, $text{2}, '... the same for both');

# CANCEL stops one request and frees it
print $s frame('G', 3, fields(@gen, '1000'));
$r = read_frame($s);
is($r->{type} . $r->{id}, 'P3', 'generation started');
my ($s2) = hello();
print $s2 frame('S', 1, '');
$r = read_frame($s2);
like($r->{payload}, qr/request\0\d+\t0\t\tstories\t(generating|prompt)\t5\t/, 'STATUS shows it');
my $t0 = time();
print $s frame('C', 3, '');
do { $r = read_frame($s) } while ($r && $r->{type} eq 'P');
my $elapsed = time() - $t0;
is($r->{type} . ':' . $r->{f}{status}, 'X:cancelled', 'CANCEL ends the request');
cmp_ok($elapsed, '<', 0.1, sprintf('... within 100 ms (%.3f s)', $elapsed));
print $s2 frame('S', 2, '');
$r = read_frame($s2);
unlike($r->{payload}, qr/request\0/, '... and it is gone from STATUS');
like($r->{payload}, qr/model\0stories\t/, 'the model stays loaded');

# errors
print $s frame('G', 4, fields('model', 'stories', 'path', $model, 'prompt', 'x', 'temperature', 'hot'));
$r = read_frame($s);
is($r->{type} . ':' . $r->{f}{status}, 'X:arg', 'bad number refused');
print $s frame('T', 5, fields('model', 'nofile', 'path', '/nonexistent.gguf', 'text', 'x'));
$r = read_frame($s);
is($r->{type} . ':' . $r->{f}{status}, 'X:io', 'missing model file refused');
print $s frame('Q', 6, '');
$r = read_frame($s);
is($r->{type} . ':' . $r->{f}{status}, 'X:protocol', 'unknown frame type refused');
print $s frame('U', 8, fields('model', 'stories'));
$r = read_frame($s);
is($r->{f}{unloaded}, '1', 'UNLOAD');

# shutdown
kill 'TERM', $pid;
waitpid($pid, 0);
is($? >> 8, 0, 'SIGTERM: clean exit');
ok(!-e $path, '... socket removed');

done_testing();
