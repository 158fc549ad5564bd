#!/usr/bin/env perl
# fake_structured_engine.pl — a stand-in for `llamagpu serve` that answers
# the structured-output fields of GENERATE (docs/protocol.md) in fixed ways,
# so the extension's side of the protocol can be tested exactly: every
# GENERATE's fields are appended to DIR/requests.jsonl (one JSON object per
# request; a repeated key keeps its first value), and the answer depends on
# the request:
#
#   messages, tools, tool_choice not "none"   a call of the first tool, {"a": 2, "b": 3}
#   messages, chat_template "raise"           X status=template
#   messages                                  "hello from fake" (E carries message)
#   grammar containing "undefined"            X status=grammar, with detail and hint
#   grammar containing "elsewhere"            X status=grammar, a detail not in the message
#   grammar  root ::= " "? ( "l1" | ... )     " " and the last label
#   grammar                                   "yes"
#   json_schema containing "uniqueItems"      X status=unsupported, with detail and hint
#   json_schema containing "truncate"         '{"a": [1, 2' and finish=length
#   json_schema                               '{"ok": true}'
#   prompt "unsupported"                      X status=unsupported (no detail)
#   otherwise                                 "echo: PROMPT"
#
#   fake_structured_engine.pl serve --socket-dir DIR [any other options, ignored]
use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Select;
use JSON::PP;
use Socket qw(SOCK_STREAM);

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

my $json = JSON::PP->new->canonical;
my %buf;
my %sock;
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

# A finished generation: the text as one piece, then END with extra fields.
sub answer
{
	my ($fd, $id, $text, $finish, @extra) = @_;
	send_to($fd, frame('P', $id, $text)) if $text ne '';
	send_to($fd, frame('E', $id, fields('finish', $finish, 'n_prompt', 7, 'n_gen', 3, @extra)));
}

sub fail
{
	my ($fd, $id, @f) = @_;
	send_to($fd, frame('X', $id, fields(@f)));
}

sub generate
{
	my ($fd, $id, $f) = @_;
	if (open(my $log, '>>', "$dir/requests.jsonl"))
	{
		print $log $json->encode($f), "\n";
		close $log;
	}
	if (defined $f->{messages})
	{
		if (($f->{chat_template} // '') eq 'raise')
		{
			return fail($fd, $id, 'status', 'template', 'message', 'the template raised: no system messages',
				'hint', 'Fix the messages.');
		}
		if (defined $f->{tools} && ($f->{tool_choice} // 'auto') ne 'none')
		{
			my $name = decode_json($f->{tools})->[0]{function}{name};
			my $msg = $json->encode({ role => 'assistant', content => undef, tool_calls => [
				{ id => 'call_1', type => 'function',
				  function => { name => $name, arguments => '{"a": 2, "b": 3}' } } ] });
			return answer($fd, $id, "{\"tool_call\": {\"name\": \"$name\"}}", 'tool_calls', 'message', $msg);
		}
		my $msg = $json->encode({ role => 'assistant', content => 'hello from fake' });
		return answer($fd, $id, 'hello from fake', 'stop', 'message', $msg);
	}
	if (defined $f->{grammar})
	{
		if ($f->{grammar} =~ /undefined/)
		{
			return fail($fd, $id, 'status', 'grammar', 'message', 'invalid grammar: line 1, column 10: undefined rule "undefined"',
				'detail', 'line 1, column 10', 'hint', 'Grammars use llama.cpp\'s GBNF syntax, with the start rule "root".');
		}
		if ($f->{grammar} =~ /elsewhere/)
		{
			return fail($fd, $id, 'status', 'grammar', 'message', 'the grammar can never end', 'detail', 'line 2, column 3');
		}
		if ($f->{grammar} =~ /^root ::= " "\? \((.*) \)$/s)
		{
			my @labels = $1 =~ /"((?:[^"\\]|\\.)*)"/g;
			(my $label = $labels[-1]) =~ s/\\(.)/$1/g;
			return answer($fd, $id, " $label", 'stop');
		}
		return answer($fd, $id, 'yes', 'stop');
	}
	if (defined $f->{json_schema})
	{
		if ($f->{json_schema} =~ /uniqueItems/)
		{
			return fail($fd, $id, 'status', 'unsupported', 'message', 'invalid json_schema: unsupported keyword "uniqueItems" at #/properties/tags',
				'detail', '#/properties/tags', 'hint', 'The engine cannot enforce this keyword; remove it from the schema or check it after generation.');
		}
		return answer($fd, $id, '{"a": [1, 2', 'length') if $f->{json_schema} =~ /truncate/;
		return answer($fd, $id, '{"ok": true}', 'stop');
	}
	if (($f->{prompt} // '') eq 'unsupported')
	{
		return fail($fd, $id, 'status', 'unsupported', 'message', 'unsupported architecture "mamba"');
	}
	return answer($fd, $id, "echo: " . ($f->{prompt} // ''), 'stop');
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
	elsif ($type eq 'G') { generate($fd, $id, $f); }
	elsif ($type eq 'C') { }
	elsif ($type eq 'S') { send_to($fd, frame('R', $id, fields('pid', $$))); }
	else { fail($fd, $id, 'status', 'protocol', 'message', "unknown frame $type"); }
}

while (1)
{
	for my $s ($sel->can_read(1))
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
}
