# Frames arriving in arbitrary pieces: byte by byte, at every split point,
# several frames per write, random chunking.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
location = /echo { chat_echo; chat_max_message_size 128k; }
EOF2
my $port = $n->port;
my $frame = \&ChatTest::WS::frame;

srand(20240611);

# a text frame one byte per write
{
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    $ws->send_text('byte by byte', split => 1);
    my $m = $ws->recv_message;
    is($m && $m->{payload}, 'byte by byte', 'text frame sent one byte per write');

    my $p = join '', map { chr(65 + $_ % 26) } 0 .. 299;
    $ws->send_text($p, split => 1, pause => 0.001);
    $m = $ws->recv_message;
    is($m && $m->{payload}, $p, '300-byte frame (16-bit length) byte by byte');

    $ws->send_ping('pp', split => 1);
    my $f = $ws->recv_frame;
    ok($f && $f->{opcode} == 10 && $f->{payload} eq 'pp', 'ping byte by byte');

    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => 'frag')
                  . $frame->(opcode => 0, fin => 1, payload => 'mented'),
                  split => 1, pause => 0.001);
    $m = $ws->recv_message;
    is($m && $m->{payload}, 'fragmented', 'fragmented message byte by byte');

    $ws->send_close(1000, 'bye', split => 1);
    $ws->close_ok(1000, 'close frame byte by byte');
}

# every split point of a 7-bit, a 16-bit and a 64-bit-length frame
for my $case ([ 'short', 'x' x 20 ], [ '16-bit', 'y' x 140 ],
              [ '64-bit', 'z' x 65536 ])
{
    my ($name, $payload) = @$case;
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    my $bytes = $frame->(payload => $payload);
    my $last = $name eq '64-bit' ? 20 : length($bytes) - 1;
    my ($good, $tried) = (0, 0);
    for my $i (1 .. $last) {
        $tried++;
        $ws->send_raw($bytes, chunks => [ $i ], pause => 0.003);
        my $m = $ws->recv_message;
        $good++ if $m && $m->{payload} eq $payload;
        last unless $m;
    }
    is($good, $tried, "$name frame split at each of the first $last points");
    $ws->close_socket;
}

# three splits inside a frame, each at every position of the header+mask
{
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    my $bytes = $frame->(payload => 'abcdefghij' x 20);
    my ($good, $tried) = (0, 0);
    for my $i (1 .. 7) {
        $tried++;
        $ws->send_raw($bytes, chunks => [ 1, $i, 1 ], pause => 0.003);
        my $m = $ws->recv_message;
        $good++ if $m && $m->{payload} eq 'abcdefghij' x 20;
    }
    is($good, $tried, 'header split into 1 + i + 1 + rest');
}

# several frames in one write
{
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    $ws->send_raw(join '', map { $frame->(payload => "m$_") } 1 .. 20);
    my @got = map { my $m = $ws->recv_message; $m ? $m->{payload} : undef }
              1 .. 20;
    is_deeply(\@got, [ map { "m$_" } 1 .. 20 ], '20 frames in one write');

    # a frame and a half, then the rest
    my $b = $frame->(payload => 'first') . $frame->(payload => 'second');
    $ws->send_raw($b, chunks => [ length($b) - 3 ], pause => 0.01);
    @got = map { my $m = $ws->recv_message; $m ? $m->{payload} : undef } 1, 2;
    is_deeply(\@got, [ 'first', 'second' ], 'a frame and a half per write');
}

# random messages, random sizes, random chunking
{
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    my (@payloads, $stream);
    for my $i (1 .. 60) {
        my $len = (0, 1, 5, 125, 126, 127, 300, 2000, 20000)[rand 9];
        my $p = join '', map { chr(97 + rand 26) } 1 .. $len;
        my $op = rand() < 0.3 ? 2 : 1;
        if (rand() < 0.3 && $len > 2) {
            my $cut = 1 + int rand($len - 1);
            $stream .= $frame->(opcode => $op, fin => 0,
                                payload => substr($p, 0, $cut));
            $stream .= $frame->(opcode => 9, payload => "p$i") if rand() < 0.5;
            $stream .= $frame->(opcode => 0, fin => 1,
                                payload => substr($p, $cut));
        } else {
            $stream .= $frame->(opcode => $op, payload => $p);
        }
        push @payloads, [ $op, $p ];
    }
    my @chunks;
    my $left = length $stream;
    while ($left > 0) {
        my $c = 1 + int rand(rand() < 0.5 ? 16 : 9000);
        push @chunks, $c;
        $left -= $c;
    }
    $ws->send_raw($stream, chunks => \@chunks, pause => 0.0005);
    my $ok = 0;
    for my $i (0 .. $#payloads) {
        my $m = $ws->recv_message(timeout => 10);
        last unless $m;
        last unless $m->{opcode} == $payloads[$i][0]
                    && $m->{payload} eq $payloads[$i][1];
        $ok++;
    }
    is($ok, scalar @payloads, 'random stream of 60 messages, random chunks');
}

# a JSON request one byte per write on a chat location
{
    my $ws = ChatTest::WS->chat($port, user => 'splitter');
    $ws->send_json({ op => 'join', room => 'split', id => 'j' }, split => 1);
    my $r = $ws->recv_json;
    is($r && $r->{type}, 'joined', 'join sent byte by byte');
    $ws->send_json({ op => 'send', room => 'split', text => 'hi', id => 's' },
                   split => 1);
    $r = $ws->wait_for(type => 'ack');
    is($r && $r->{id}, 's', 'send sent byte by byte acknowledged');
    my $frames = join '', map {
        $frame->(payload => qq({"op":"send","room":"split","text":"t$_","id":"i$_"}))
    } 1 .. 10;
    $ws->send_raw($frames, chunks => [ map { 1 + int rand 40 } 1 .. 200 ]);
    my @m = $ws->collect(n => 11, type => 'message');
    is_deeply([ map { $_->{text} } @m ], [ 'hi', map { "t$_" } 1 .. 10 ],
              'ten requests in random chunks');
}

$n->stop;
done_testing;
