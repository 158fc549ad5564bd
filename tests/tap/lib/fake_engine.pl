#!/usr/bin/env perl
# fake_engine.pl — a stand-in for `llamagpu serve` that speaks the protocol
# of docs/protocol.md with the behaviour of the continuous-batching engine
# the extension must cope with: a small wait queue that answers X
# status=busy when full, STATUS `sched` lines, and the new END fields.
# A GENERATE answers "echo: PROMPT" after a short delay; a prompt starting
# with "busy" is answered busy the first two times; every request's prompt
# and priority are appended to DIR/requests.log.
#
#   fake_engine.pl serve --socket-dir DIR [any other options, ignored]
use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Select;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time);
use MIME::Base64 ();

my $running_max = 2;    # sequences generating at once
my $queue_max = 3;      # waiting requests before busy
my $tick = 0.01;        # one request finishes per tick

my $dir;
for (my $i = 0; $i < @ARGV; $i++) { $dir = $ARGV[ $i + 1 ] if $ARGV[$i] eq '--socket-dir'; }
die "fake engine: --socket-dir missing\n" unless $dir;
mkdir $dir, 0700;
chmod 0700, $dir;
my $path = "$dir/engine.sock";
unlink $path;
my $listen = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $path, Listen => 128)
  or die "fake engine: listen: $!\n";
$SIG{TERM} = sub { unlink $path; exit 0; };
$SIG{PIPE} = 'IGNORE';

my %stat = (submitted => 0, finished => 0, rejected => 0);
my %seen;    # prompt -> times received
my %buf;     # fileno -> read buffer
my %sock;    # fileno -> socket
my @queue;   # waiting: [fileno, id, prompt]
my @run;     # running
my $sel = IO::Select->new($listen);

sub fields { join('', map { "$_\0" } @_) }
sub frame { my ($t, $id, $p) = @_; pack('N C N', length($p), ord($t), $id) . $p }
sub send_to { my ($fd, $data) = @_; my $s = $sock{$fd} or return; syswrite($s, $data); }

sub parse_fields
{
	my @kv = split(/\0/, $_[0], -1);
	pop @kv;
	my %f;
	while (@kv) { my $k = shift @kv; my $v = shift @kv; $f{$k} //= $v; }
	return \%f;
}

sub handle
{
	my ($fd, $type, $id, $payload) = @_;
	my $f = parse_fields($payload);
	if ($type eq 'H') { send_to($fd, frame('H', 0, fields('protocol', 1, 'server', 'fake', 'pid', $$))); }
	elsif ($type eq 'I')
	{
		send_to($fd, frame('R', $id, fields('architecture', 'llama', 'name', 'fake', 'parameters', 1,
			'quantization', 'F32', 'context_length', 2048, 'n_vocab', 32, 'n_layer', 1, 'n_embd', 8,
			'file_size', -s $f->{path} // 0)));
	}
	elsif ($type eq 'L') { send_to($fd, frame('R', $id, fields('loaded', 1))); }
	elsif ($type eq 'G')
	{
		open(my $log, '>>', "$dir/requests.log");
		print $log "$f->{prompt}\t" . ($f->{priority} // '') . "\n";
		close $log;
		if (@queue >= $queue_max || ($f->{prompt} =~ /^busy/ && ++$seen{ $f->{prompt} } <= 2))
		{
			$stat{rejected}++;
			send_to($fd, frame('X', $id, fields('status', 'busy', 'message', 'the wait queue is full')));
			return;
		}
		$stat{submitted}++;
		push @queue, [ $fd, $id, $f->{prompt}, time() ];
	}
	elsif ($type eq 'B')
	{
		# EMBED: [1, 0] per input; an input "too many" gets one embedding more than asked
		my @kv = split(/\0/, $payload, -1);
		my $n = grep { $kv[$_] eq 'input' } grep { $_ % 2 == 0 } 0 .. $#kv - 1;
		$n++ if ($f->{input} // '') eq 'too many';
		my $vec = MIME::Base64::encode_base64(pack('f<2', 1, 0), '');
		send_to($fd, frame('R', $id, fields('n_embd', 2, 'pooling', 'mean', 'n_prompt', $n,
			map { ('n_tokens', 1, 'embedding', $vec) } 1 .. $n)));
	}
	elsif ($type eq 'C')
	{
		for my $list (\@queue, \@run)
		{
			my @keep;
			for my $r (@$list)
			{
				if ($r->[0] == $fd && $r->[1] == $id)
				{
					send_to($fd, frame('X', $id, fields('status', 'cancelled', 'message', 'cancelled')));
				}
				else { push @keep, $r; }
			}
			@$list = @keep;
		}
	}
	elsif ($type eq 'S')
	{
		my $sched = join("\t", 'fake', scalar(@queue), scalar(@run), $stat{submitted}, $stat{finished},
			$stat{rejected}, 10, 2560, 2000, 560, 3, 512, 16, 100, 40, 25, 200, 50);
		# measurements of a model whose name needs escaping in Prometheus labels
		my $odd = "q\"uote\\back\nline";
		my @hist = map { ('histogram', "$odd\t$_\t2\t0.3\t0.1,1\t1,2,2") } qw(ttft itl e2e);
		# and one whose lines are malformed, each its own way: the extension leaves those out
		my @bad = (
			'histogram', "malformed\tttft\t70\t1\t" . join(',', 1 .. 70) . "\t" . join(',', 1 .. 71),
			'histogram', "malformed\titl\t2\t0.3\t1,0.5\t1,2,2",
			'histogram', "malformed\te2e\t2\t0.3\t0.1,abc\t1,2,2",
			'histogram', "malformed\tnew_kind\t2\t0.3\t0.1\t1,2",
			'histogram', "malformed\tttft",
			'metrics', "malformed\t4\t0\t1\t2\tstop,:,x:y:3,:5",
			'metrics', "malformed\t9",
			'model_memory', "malformed\tcpu");
		send_to($fd, frame('R', $id, fields('pid', $$, 'model', "fake\t/fake.gguf\t" . (@queue + @run),
			'sched', $sched, 'metrics', "$odd\t3\t1\t30\t20\tstop:2,timeout:1", @hist, @bad)));
	}
	else { send_to($fd, frame('X', $id, fields('status', 'protocol', 'message', "unknown frame $type"))); }
}

my $next_tick = time() + $tick;
while (1)
{
	my @ready = $sel->can_read(0.005);
	for my $s (@ready)
	{
		if ($s == $listen)
		{
			my $c = $listen->accept or next;
			$sock{ fileno($c) } = $c;
			$buf{ fileno($c) } = '';
			$sel->add($c);
			next;
		}
		my $fd = fileno($s);
		my $n = sysread($s, $buf{$fd}, 65536, length($buf{$fd}));
		if (!$n)
		{
			# a closed connection cancels its requests
			@queue = grep { $_->[0] != $fd } @queue;
			@run = grep { $_->[0] != $fd } @run;
			$sel->remove($s);
			delete $sock{$fd};
			delete $buf{$fd};
			close $s;
			next;
		}
		while (length($buf{$fd}) >= 9)
		{
			my ($len, $type, $id) = unpack('N C N', $buf{$fd});
			last if length($buf{$fd}) < 9 + $len;
			my $payload = substr($buf{$fd}, 9, $len);
			substr($buf{$fd}, 0, 9 + $len) = '';
			handle($fd, chr($type), $id, $payload);
		}
	}
	next if time() < $next_tick;
	$next_tick = time() + $tick;
	# one running request finishes per tick; the queue moves up
	if (my $r = shift @run)
	{
		my ($fd, $id, $prompt, $t0) = @$r;
		my $ms = int((time() - $t0) * 1000);
		send_to($fd, frame('P', $id, "echo: $prompt"));
		send_to($fd, frame('E', $id, fields('finish', 'length', 'n_prompt', 3, 'n_gen', 2, 't_prompt_ms', 1,
			't_gen_ms', 1, 'n_cached', 1, 'n_preempted', 0, 't_queue_ms', $ms, 't_first_ms', $ms)));
		$stat{finished}++;
	}
	push @run, shift @queue while @run < $running_max && @queue;
}
