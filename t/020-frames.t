# Frame-level protocol: violations close with 1002, control frames,
# binary on chat locations, size limits.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
location = /echo { chat_echo; chat_max_message_size 64k; }
location = /small { chat_echo; chat_max_message_size 1k; }
location = /chat_small { chat; chat_user $arg_user; chat_max_message_size 1k; }
EOF2
my $port = $n->port;
my $frame = \&ChatTest::WS::frame;

sub echo_ws { ChatTest::WS->connect($port, path => $_[0] // '/echo') }
sub chat_ws { ChatTest::WS->chat($port, user => 'u', path => $_[0] // '/chat') }

# each violation on a fresh connection, on both kinds of location
sub violation {
    my ($name, $bytes, $code, %o) = @_;
    for my $kind ('echo', 'chat') {
        my $ws = $kind eq 'echo' ? echo_ws() : chat_ws();
        $ws->send_raw(ref $bytes ? $bytes->($ws) : $bytes);
        $ws->close_ok($code, "$kind: $name");
    }
}

violation('unmasked text frame', $frame->(payload => 'hi', mask => 0), 1002);
violation('unmasked empty frame', $frame->(payload => '', mask => 0), 1002);
violation('unmasked ping', $frame->(opcode => 9, payload => 'p', mask => 0),
          1002);
for my $rsv (1, 2, 4, 7) {
    violation("RSV bits $rsv", $frame->(payload => 'hi', rsv => $rsv), 1002);
}
violation('RSV on a ping', $frame->(opcode => 9, rsv => 4), 1002);
for my $op (3 .. 7, 0xB .. 0xF) {
    violation(sprintf('opcode 0x%X', $op),
              $frame->(opcode => $op, payload => 'x'), 1002);
}
violation('fragmented ping', $frame->(opcode => 9, fin => 0, payload => 'p'),
          1002);
violation('fragmented pong', $frame->(opcode => 10, fin => 0), 1002);
violation('fragmented close',
          $frame->(opcode => 8, fin => 0, payload => pack('n', 1000)), 1002);
violation('ping with 126 bytes',
          $frame->(opcode => 9, payload => 'x' x 126), 1002);
violation('pong with 200 bytes',
          $frame->(opcode => 10, payload => 'x' x 200), 1002);
violation('close with 126 bytes',
          $frame->(opcode => 8, payload => pack('n', 1000) . 'x' x 124), 1002);
violation('ping announcing 126 bytes (header only)',
          $frame->(opcode => 9, len => 126, payload => ''), 1002);
violation('continuation without start',
          $frame->(opcode => 0, payload => 'x'), 1002);
violation('final continuation without start',
          $frame->(opcode => 0, fin => 1, payload => ''), 1002);
violation('text inside a fragmented text',
          $frame->(opcode => 1, fin => 0, payload => 'a')
          . $frame->(opcode => 1, fin => 1, payload => 'b'), 1002);
violation('binary inside a fragmented text',
          $frame->(opcode => 1, fin => 0, payload => 'a')
          . $frame->(opcode => 2, fin => 1, payload => 'b'), 1002);
violation('continuation after a complete message',
          $frame->(opcode => 1, payload => '{"op":"heartbeat"}')
          . $frame->(opcode => 0, payload => 'x'), 1002);

# ping / pong
{
    my $ws = echo_ws();
    for my $p ('hello', '', 'x' x 125, "\x00\xff\x80binary") {
        $ws->send_ping($p);
        my $f = $ws->recv_frame;
        ok($f && $f->{opcode} == 10, 'ping answered with a pong (len '
           . length($p) . ')');
        is($f && $f->{payload}, $p, '... with the same payload');
        ok($f && $f->{fin}, '... unfragmented');
    }

    # ping between the fragments of a message
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => 'Hel')
                  . $frame->(opcode => 9, payload => 'mid')
                  . $frame->(opcode => 0, fin => 0, payload => 'lo ')
                  . $frame->(opcode => 10, payload => 'unsolicited')
                  . $frame->(opcode => 0, fin => 1, payload => 'World'));
    my $m = $ws->recv_message;
    is($m && $m->{payload}, 'Hello World',
       'fragmented message with ping and pong inside completes');
    is_deeply($ws->{pongs}, ['mid'], 'pong for the ping between fragments');

    # unsolicited pong is ignored
    $ws->send_pong('nobody asked');
    $m = $ws->echo('after pong');
    is($m && $m->{payload}, 'after pong', 'unsolicited pong ignored');
    $ws->send_close(1000);
    $ws->close_ok(1000, 'echo: normal close after control frames');
}

{
    my $ws = chat_ws();
    $ws->send_ping('chat ping');
    my $f = $ws->recv_frame;
    ok($f && $f->{opcode} == 10 && $f->{payload} eq 'chat ping',
       'chat location answers pings');
    # ping between fragments of a JSON request
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => '{"op":"hea')
                  . $frame->(opcode => 9, payload => '1')
                  . $frame->(opcode => 0, fin => 1,
                             payload => 'rtbeat","id":"f"}'));
    my $r = $ws->recv_json;
    is($r && $r->{type}, 'heartbeat', 'fragmented JSON request with a ping');
    is($r && $r->{id}, 'f', '... id echoed');
    is_deeply($ws->{pongs}, ['1'], '... and the ping answered');
}

# binary on a chat location
{
    my $ws = chat_ws();
    $ws->send_binary("\x01\x02\x03");
    $ws->close_ok(1003, 'binary message on a chat location');
    $ws = chat_ws();
    $ws->send_raw($frame->(opcode => 2, fin => 0, payload => '{"op":')
                  . $frame->(opcode => 0, fin => 1,
                             payload => '"heartbeat"}'));
    $ws->close_ok(1003, 'fragmented binary message on a chat location');
}
{
    my $ws = echo_ws();
    my $m = $ws->echo("\x00\x01\xfe\xff", opcode => 2);
    ok($m && $m->{opcode} == 2 && $m->{payload} eq "\x00\x01\xfe\xff",
       'chat_echo echoes binary');
}

# message size limit (1k on /small and /chat_small, 8k default on /chat)
{
    my $ws = echo_ws('/small');
    my $m = $ws->echo('x' x 1024);
    is($m && length $m->{payload}, 1024, 'exactly chat_max_message_size ok');
    $m = $ws->echo('y' x 1000, opcode => 2);
    is($m && length $m->{payload}, 1000, 'binary under the limit ok');
    $ws->send_text('z' x 1025);
    $ws->close_ok(1009, 'one byte over the limit');

    $ws = echo_ws('/small');
    $ws->send_raw($frame->(opcode => 1, len => 1025, payload => ''));
    $ws->close_ok(1009, 'refused on the header alone (1025 announced)');

    $ws = echo_ws('/small');
    $ws->send_raw($frame->(opcode => 2, len => 2**30, payload => ''));
    $ws->close_ok(1009, 'refused on the header alone (1 GiB, 64-bit length)');

    $ws = echo_ws('/small');
    $ws->send_raw($frame->(opcode => 1, len => 2**32 + 5, payload => ''));
    $ws->close_ok(1009, 'refused on the header alone (4 GiB + 5)');

    $ws = echo_ws('/small');
    $ws->send_raw($frame->(opcode => 1, len => 65535, payload => '',
                           mask => 1));
    $ws->close_ok(1009, 'refused on the header alone (16-bit length)');

    $ws = echo_ws('/small');
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => 'a' x 600));
    $ws->send_raw($frame->(opcode => 0, fin => 1, payload => 'b' x 600));
    $ws->close_ok(1009, 'fragments summing over the limit');

    $ws = echo_ws('/small');
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => 'a' x 600));
    $ws->send_raw($frame->(opcode => 0, fin => 0, len => 600, payload => ''));
    $ws->close_ok(1009, 'fragment header pushing the sum over the limit');

    $ws = echo_ws('/small');
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => 'a' x 512)
                  . $frame->(opcode => 0, fin => 1, payload => 'b' x 512));
    $m = $ws->recv_message;
    is($m && length $m->{payload}, 1024, 'fragments summing to the limit ok');

    # 2^63 and above: most significant bit must be 0
    $ws = echo_ws('/small');
    $ws->send_raw("\x81\xff\x80\0\0\0\0\0\0\x01" . 'abcd');
    $ws->close_ok([1002, 1009], '64-bit length with the top bit set');

    $ws = chat_ws('/chat_small');
    $ws->send_raw($frame->(opcode => 1, len => 1025, payload => ''));
    $ws->close_ok(1009, 'chat location: header over the limit');

    $ws = chat_ws('/chat');
    $ws->send_raw($frame->(opcode => 1, len => 8193, payload => ''));
    $ws->close_ok(1009, 'chat location: default limit 8k');

    $ws = chat_ws('/chat');
    my $text = 'x' x (8192 - length('{"op":"heartbeat","pad":""}'));
    $ws->send_text('{"op":"heartbeat","pad":"' . $text . '"}');
    my $r = $ws->recv_json;
    is($r && $r->{type}, 'heartbeat', 'chat location: 8192-byte message ok');
}

# zero-length frames
{
    my $ws = echo_ws();
    my $m = $ws->echo('');
    ok($m && $m->{opcode} == 1 && $m->{payload} eq '', 'empty text echoed');
    $m = $ws->echo('', opcode => 2);
    ok($m && $m->{opcode} == 2 && $m->{payload} eq '', 'empty binary echoed');
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => '')
                  . $frame->(opcode => 0, fin => 0, payload => 'abc')
                  . $frame->(opcode => 0, fin => 1, payload => ''));
    $m = $ws->recv_message;
    is($m && $m->{payload}, 'abc', 'empty fragments');
}

# a non-minimal length encoding is either accepted or refused with 1002,
# never misparsed
{
    my $ws = echo_ws();
    $ws->send_raw($frame->(payload => 'short', len_bytes => 2));
    my $m = $ws->recv_message;
    if ($m) {
        is($m->{payload}, 'short', 'non-minimal 16-bit length accepted');
    } else {
        ok($ws->{got_close} && $ws->{close_code} == 1002,
           'non-minimal 16-bit length refused with 1002');
    }
    $ws = echo_ws();
    $ws->send_raw($frame->(payload => 'short', len_bytes => 8));
    $m = $ws->recv_message;
    if ($m) {
        is($m->{payload}, 'short', 'non-minimal 64-bit length accepted');
    } else {
        ok($ws->{got_close} && $ws->{close_code} == 1002,
           'non-minimal 64-bit length refused with 1002');
    }
}

# after a protocol error nothing else is processed
{
    my $ws = echo_ws();
    $ws->send_raw($frame->(payload => 'bad', mask => 0)
                  . $frame->(payload => 'after'));
    my $m = $ws->recv_message;
    ok(!$m, 'no echo of frames after the violation');
    is($ws->{close_code}, 1002, '... only the close frame');
}

$n->stop;
done_testing;
