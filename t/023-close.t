# The close handshake.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
location = /echo { chat_echo; }
EOF2
my $port = $n->port;
my $frame = \&ChatTest::WS::frame;

sub ws {
    my ($kind) = @_;
    return $kind eq 'chat' ? ChatTest::WS->chat($port, user => 'c')
                           : ChatTest::WS->connect($port, path => '/echo');
}

for my $kind ('echo', 'chat') {
    for my $code (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                  3000, 4000, 4999)
    {
        my $ws = ws($kind);
        $ws->send_close($code, 'reason');
        my ($got) = $ws->expect_close;
        ok(defined $got && ($got == $code || ($code != 1000 && $got == 1000)),
           "$kind: close $code answered with a close frame")
            or diag('got ' . ($got // 'no close frame'));
        ok($ws->{tcp_closed}, "$kind: close $code: TCP closed by the server");
    }

    my $ws = ws($kind);
    $ws->send_close(1000);
    $ws->close_ok(1000, "$kind: close 1000 echoed");

    $ws = ws($kind);
    $ws->send_close(1000, 'x' x 123);
    $ws->close_ok(1000, "$kind: close with a 123-byte reason");

    $ws = ws($kind);
    $ws->send_close(1000, "bien s\xc3\xbbr \xf0\x9f\x98\x80");
    $ws->close_ok(1000, "$kind: close with a UTF-8 reason");

    $ws = ws($kind);
    $ws->send_close();
    $ws->close_ok([1000, 1005], "$kind: empty close answered");
    ok(!$ws->{close_payload_len} || $ws->{close_code} == 1000,
       "$kind: empty close: reply empty or 1000");

    $ws = ws($kind);
    $ws->send_raw($frame->(opcode => 8, payload => "\x03"));
    $ws->close_ok(1002, "$kind: 1-byte close payload");

    for my $code (0, 1, 999, 1004, 1005, 1006, 1012 + 3, 1016, 1100, 2000,
                  2999, 5000, 65535)
    {
        $ws = ws($kind);
        $ws->send_close($code);
        $ws->close_ok(1002, "$kind: invalid close code $code");
    }

    for my $reason ("\xff", "ab\xc3", "\xed\xa0\x80", "\xc0\xaf") {
        $ws = ws($kind);
        $ws->send_raw($frame->(opcode => 8,
                               payload => pack('n', 1000) . $reason));
        $ws->close_ok(1007, "$kind: invalid UTF-8 close reason "
                            . unpack('H*', $reason));
    }

    # close in the middle of a fragmented message is fine
    $ws = ws($kind);
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => 'part')
                  . $frame->(opcode => 8, payload => pack('n', 1000)));
    $ws->close_ok(1000, "$kind: close between fragments");

    # nothing is answered after the close
    $ws = ws($kind);
    $ws->send_raw($frame->(opcode => 8, payload => pack('n', 1000))
                  . $frame->(opcode => 9, payload => 'late')
                  . $frame->(opcode => 1, payload => '{"op":"heartbeat"}'));
    $ws->close_ok(1000, "$kind: frames after the close");
    ok(!grep({ $_->{opcode} != 8 } @{$ws->{before_close} || []}),
       "$kind: no frame answered before the close frame");
    my $after = $ws->recv_frame(timeout => 0.2);
    ok(!$after, "$kind: nothing after the close frame");

    # a client that just disappears
    $ws = ws($kind);
    $ws->close_socket;
}

# closing one chat connection does not disturb others in the same room
{
    my $a = ChatTest::WS->chat($port, user => 'a');
    my $b = ChatTest::WS->chat($port, user => 'b');
    $a->join_room('r');
    $b->join_room('r');
    $b->send_close(1000);
    $b->close_ok(1000, 'member closes');
    my $ack = $a->call({ op => 'send', room => 'r', text => 'still here' });
    is($ack && $ack->{type}, 'ack', 'room works after a member closed');
    my $m = $a->wait_for(type => 'message');
    is($m && $m->{text}, 'still here', 'remaining member gets its message');

    my $c = ChatTest::WS->chat($port, user => 'c');
    $c->join_room('r');
    $c->close_socket;      # vanishes without a close frame
    $ack = $a->call({ op => 'send', room => 'r', text => 'after vanish' });
    is($ack && $ack->{type}, 'ack', 'room works after a member vanished');
}

$n->stop;
done_testing;
