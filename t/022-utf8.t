# Text messages must be valid UTF-8 (1007 otherwise), also across
# fragments; binary messages are not checked.
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

# valid text, one connection
{
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    my %valid = (
        'ascii'             => 'plain',
        '2-byte'            => "caf\xc3\xa9",
        '3-byte'            => "\xe2\x82\xac 10",
        '4-byte'            => "\xf0\x9f\x98\x80",
        'U+007F'            => "\x7f",
        'U+0080'            => "\xc2\x80",
        'U+07FF'            => "\xdf\xbf",
        'U+0800'            => "\xe0\xa0\x80",
        'U+D7FF'            => "\xed\x9f\xbf",
        'U+E000'            => "\xee\x80\x80",
        'U+FFFD'            => "\xef\xbf\xbd",
        'U+FFFF'            => "\xef\xbf\xbf",
        'U+10000'           => "\xf0\x90\x80\x80",
        'U+10FFFF'          => "\xf4\x8f\xbf\xbf",
        'NUL'               => "a\x00b",
        'mixed'             => "Gr\xc3\xbc\xc3\x9fe \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89",
    );
    for my $name (sort keys %valid) {
        my $m = $ws->echo($valid{$name});
        is($m && $m->{payload}, $valid{$name}, "valid UTF-8 echoed: $name");
    }

    # valid characters split across fragments
    my @split = (
        [ "\xf0\x9f", "\x98\x80" ],
        [ "\xf0", "\x9f\x98", "\x80" ],
        [ "\xf0", "\x9f", "\x98", "\x80" ],
        [ "\xe2", "\x82", "\xac" ],
        [ "ab\xc3", "\xa9cd" ],
        [ "", "\xc3", "", "\xa9", "" ],
    );
    for my $parts (@split) {
        my $bytes = '';
        for my $i (0 .. $#$parts) {
            $bytes .= $frame->(opcode => $i ? 0 : 1, fin => $i == $#$parts,
                               payload => $parts->[$i]);
        }
        $ws->send_raw($bytes);
        my $m = $ws->recv_message;
        is($m && $m->{payload}, join('', @$parts),
           'character split across fragments: '
           . join(' | ', map { unpack 'H*', $_ } @$parts));
    }

    # binary is not UTF-8 checked
    my $m = $ws->echo("\xff\xfe\xc0\x80", opcode => 2);
    is($m && $m->{payload}, "\xff\xfe\xc0\x80", 'binary may hold any bytes');

    ok($ws->echo('still open'), 'connection still open');
}

my %invalid = (
    'lone continuation'          => "a\x80b",
    'continuation at start'      => "\xbf",
    'overlong 2-byte /'          => "\xc0\xaf",
    'overlong 2-byte C1'         => "\xc1\xbf",
    'overlong 3-byte'            => "\xe0\x80\xaf",
    'overlong 3-byte max'        => "\xe0\x9f\xbf",
    'overlong 4-byte'            => "\xf0\x80\x80\xaf",
    'overlong 4-byte max'        => "\xf0\x8f\xbf\xbf",
    'surrogate U+D800'           => "\xed\xa0\x80",
    'surrogate U+DFFF'           => "\xed\xbf\xbf",
    'surrogate pair'             => "\xed\xa0\xbd\xed\xb8\x80",
    'above U+10FFFF'             => "\xf4\x90\x80\x80",
    'F5'                         => "\xf5\x80\x80\x80",
    'F8 5-byte'                  => "\xf8\x88\x80\x80\x80",
    'FE'                         => "\xfe",
    'FF'                         => "x\xff",
    'truncated 2-byte at end'    => "ab\xc3",
    'truncated 3-byte at end'    => "\xe2\x82",
    'truncated 4-byte at end'    => "\xf0\x9f\x98",
    'truncated then ascii'       => "\xe2\x82A",
    'missing continuation'       => "\xc3\x28",
    'valid then invalid'         => "\xf0\x9f\x98\x80\xf0\x9f\x98",
);

for my $name (sort keys %invalid) {
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    $ws->send_text($invalid{$name});
    $ws->close_ok(1007, "echo: $name");
}

my @invalid_frag = (
    [ 'truncated char, then ascii fragment', [ "ab\xe2\x82", "A" ] ],
    [ 'truncated char at message end',       [ "ab\xe2", "\x82" ] ],
    [ 'invalid byte in the last fragment',   [ "hello", " world\xff" ] ],
    [ 'invalid byte in a middle fragment',   [ "hello", "\xff", "world" ] ],
    [ 'surrogate split across fragments',    [ "\xed", "\xa0\x80" ] ],
    [ 'overlong split across fragments',     [ "\xc0", "\xaf" ] ],
    [ 'above U+10FFFF split',                [ "\xf4", "\x90\x80\x80" ] ],
    [ 'lone continuation starts a fragment', [ "ok", "\x80ok" ] ],
);
for my $case (@invalid_frag) {
    my ($name, $parts) = @$case;
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    my $bytes = '';
    for my $i (0 .. $#$parts) {
        $bytes .= $frame->(opcode => $i ? 0 : 1, fin => $i == $#$parts,
                           payload => $parts->[$i]);
    }
    $ws->send_raw($bytes);
    $ws->close_ok(1007, "fragments: $name");
}

# invalid data in a non-final fragment: refused without waiting for the end
{
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => "ok")
                  . $frame->(opcode => 0, fin => 0, payload => "\xff"));
    $ws->close_ok(1007, 'invalid byte in a non-final fragment (fail fast)');
}

# chat locations check too, before any JSON parsing
for my $bad ("\xff", "\xed\xa0\x80", "\xc3") {
    my $ws = ChatTest::WS->chat($port, user => 'u');
    $ws->send_text("{\"op\":\"heartbeat\",\"x\":\"$bad\"}");
    $ws->close_ok(1007, 'chat: invalid UTF-8 in a JSON request '
                        . unpack('H*', $bad));
}
{
    my $ws = ChatTest::WS->chat($port, user => 'u');
    $ws->send_raw($frame->(opcode => 1, fin => 0, payload => "{\"op\":\"heartbeat\",\"x\":\"\xe2")
                  . $frame->(opcode => 0, fin => 1, payload => "\x82\xac\"}"));
    my $r = $ws->recv_json;
    is($r && $r->{type}, 'heartbeat',
       'chat: JSON request with a character split across fragments');
}

$n->stop;
done_testing;
