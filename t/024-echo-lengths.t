# chat_echo at the length-encoding boundaries, text and binary, whole and
# fragmented.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /echo { chat_echo; chat_max_message_size 64k; }
EOF2
my $port = $n->port;
my $frame = \&ChatTest::WS::frame;

srand(7);
sub text_of { my ($len) = @_; join '', map { chr(32 + int rand 95) } 1 .. $len }
sub bin_of  { my ($len) = @_; join '', map { chr int rand 256 } 1 .. $len }

my $ws = ChatTest::WS->connect($port, path => '/echo');
for my $len (0, 1, 125, 126, 127, 1000, 65535, 65536) {
    for my $op (1, 2) {
        my $p = $op == 1 ? text_of($len) : bin_of($len);
        $ws->send_frame(opcode => $op, payload => $p);
        my $m = $ws->recv_message(timeout => 10);
        my $kind = $op == 1 ? 'text' : 'binary';
        ok($m && $m->{opcode} == $op, "$kind $len: opcode");
        ok($m && length $m->{payload} == $len && $m->{payload} eq $p,
           "$kind $len: same payload");
    }
}

# fragmented messages are echoed as one message with the same content
for my $case ([ 1, 4, 65536 ], [ 2, 4, 65536 ], [ 1, 100, 1000 ],
              [ 2, 3, 130 ], [ 1, 2, 1 ], [ 2, 2, 0 ])
{
    my ($op, $nfrag, $len) = @$case;
    my $p = $op == 1 ? text_of($len) : bin_of($len);
    my $size = int($len / $nfrag);
    my $bytes = '';
    for my $i (0 .. $nfrag - 1) {
        my $piece = $i == $nfrag - 1 ? substr($p, $i * $size)
                                     : substr($p, $i * $size, $size);
        $bytes .= $frame->(opcode => $i ? 0 : $op, fin => $i == $nfrag - 1,
                           payload => $piece);
    }
    $ws->send_raw($bytes);
    my $m = $ws->recv_message(timeout => 10);
    my $kind = $op == 1 ? 'text' : 'binary';
    ok($m && $m->{opcode} == $op && $m->{payload} eq $p,
       "$kind $len bytes in $nfrag fragments echoed as one message");
}

$ws->send_frame(opcode => 1, payload => 'x' x 65537);
$ws->close_ok(1009, '65537 bytes over a 64k limit');

$n->stop;
done_testing;
