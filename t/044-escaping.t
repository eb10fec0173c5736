# Every string the server sends is valid, exactly escaped JSON, whatever
# the client sent: texts, ids, user ids.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use Encode qw(encode decode);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
location = /chat_h { chat; chat_user $http_x_user; chat_rate 1000r/s burst=1000; }
EOF2
my $port = $n->port;

my $ws = ChatTest::WS->chat($port, user => 'esc');
my $reader = ChatTest::WS->chat($port, user => 'reader');
$ws->join_room('esc');
$reader->join_room('esc');

# Each case: a name, the text field of a send, and what the members get.
# text => $t: sent as JSON::PP encodes it; json => '"..."': exactly as
# written.  want => $t: accepted, and delivered as exactly $t; maybe =>
# $t or undef: refused with bad_request, or accepted and delivered as
# valid JSON (as exactly $t if defined), but never truncated or broken.
my @CASES = (
    map({ [ $_->[0], { text => $_->[1], want => $_->[1] } ] }
        [ 'BOM',              "\x{FEFF}bom" ],
        [ 'CJK',              '日本語のテキスト' ],
        [ 'DEL',              "del\x{7f}" ],
        [ 'U+10FFFF',         "x\x{10FFFF}y" ],
        [ 'U+2028 U+2029',    "a\x{2028}b\x{2029}c" ],
        [ 'U+FFFF',           "x\x{FFFF}y" ],
        [ 'accents',          'àéîõü ß Ωμέγα' ],
        [ 'all controls',     join('', map { chr } 1 .. 31) ],
        [ 'backslash',        'back\\slash \\\\ double' ],
        [ 'control 0x01',     "a\x{01}b" ],
        [ 'emoji',            "smile \x{1F600} party \x{1F389}" ],
        [ 'escape lookalike', '\\u0000 \\n \\" not escapes' ],
        [ 'json inside',      '{"op":"send","room":"x","text":"y"}' ],
        [ 'many backslashes', '\\' x 2000 ],
        [ 'many controls',    "\x{01}" x 1300 ],
        [ 'many quotes',      '"' x 2000 ],
        [ 'mixed',            qq(\x{1F600}"\\\x{01}\n/\x{e9}) ],
        [ 'only spaces',      '   ' ],
        [ 'quotes',           'he said "hi"' ],
        [ 'slash',            'a/b </script>' ],
        [ 'tab nl cr',        "line1\nline2\r\n\ttabbed" ]),

    # escaped input forms decode to the same text
    map({ [ "escaped input $_->[0]", { json => $_->[0], want => $_->[1] } ] }
        [ '"\\u00e9\\u00E9"',        "\x{e9}\x{e9}" ],
        [ '"\\ud83d\\ude00"',        "\x{1F600}" ],
        [ '"\\"\\\\\\/\\b\\f\\n\\r\\t"', qq("\\/\b\f\n\r\t) ],
        [ '"\\u0001\\u001f"',        "\x{01}\x{1f}" ]),

    # NUL and lone surrogates
    [ '"a\\u0000b"', { json => '"a\\u0000b"', maybe => "a\x{0}b" } ],
    map({ [ $_, { json => $_, maybe => undef } ] }
        '"\\ud800"', '"\\udc00x"', '"\\ud83dx"'),
);

for my $case (@CASES) {
    my ($name, $c) = @$case;
    my %c = %$c;
    my $id = "id-$name";
    if (exists $c{text}) {
        $ws->send_json({ op => 'send', room => 'esc', text => $c{text},
                         id => $id });
    } else {
        $id = 'e';
        $ws->send_text('{"op":"send","room":"esc","id":"e","text":'
                       . $c{json} . '}');
    }
    # (the next reply, whatever its id: the id is checked)
    my $r = $ws->wait_for(match => sub { $_[0]{type} =~ /^(?:ack|error)$/ });
    if (exists $c{maybe}) {
        ok($r && ($r->{type} eq 'ack' || $r->{code} eq 'bad_request'),
           "$name: ack or bad_request");
        next unless $r && $r->{type} eq 'ack';
        my $m = $reader->wait_for(type => 'message');
        ok($m, "$name: delivered as valid JSON");
        is($m && $m->{text}, $c{maybe}, "$name: delivered exactly")
            if defined $c{maybe};
    } else {
        is($r && $r->{type}, 'ack', "$name: accepted");
        is($r && $r->{id}, $id, "$name: id echoed");
        my $m = $reader->wait_for(type => 'message');
        ok($m && $m->{text} eq $c{want}, "$name: text round-trips exactly")
            or diag('got ' . ($m ? enc($m->{text}) : 'none'));
    }
    $ws->wait_for(type => 'message');
}

# the same texts through history
{
    my @want = map { exists $_->[1]{want} ? $_->[1]{want} : () } @CASES;
    my $h = $reader->history('esc', limit => 100);
    my %in_hist = map { $_->{text} => 1 } @{$h->{messages} || []};
    is(scalar(grep { $in_hist{$_} } @want), scalar @want,
       'every text round-trips through history');
}

# ids with special characters
for my $id ('q"uote', 'back\\slash', "ctl\x{01}\x{1f}", "nl\n", "\x{1F600}",
            '</x>', '{"a":1}')
{
    my $r = $ws->call({ op => 'heartbeat', id => $id });
    is($r && $r->{id}, $id, 'id ' . enc($id) . ' echoed exactly');
    $ws->send_json({ op => 'dance', id => $id });
    $r = $ws->wait_for(type => 'error');
    is($r && $r->{id}, $id, '... also in an error');
}

# error messages stay valid JSON whatever the bad input
for my $raw ('{"op":"join","room":"a\\"b\\\\c\\u0001","id":"x"}',
             '{"op":"d\\"a\\\\n\\u0001ce","id":"y"}',
             '{"op":"send","room":"esc","text":5,"id":"\\"\\\\"}')
{
    $ws->send_text($raw);
    my $r = $ws->recv_json;
    is($r && $r->{type}, 'error', "error reply to $raw is valid JSON");
}

# user ids from a header, with characters that need escaping
for my $user ('we"ird\\user', 'a\\"b', 'quote"', 'ünïcødé ☃', "{\"x\":1}",
              '</script>')
{
    my $bytes = encode('UTF-8', $user);
    my $c = ChatTest::WS->connect($port, path => '/chat_h',
                                  headers => { 'X-User' => $bytes });
    my $w = $c->recv_json;
    is($w && $w->{user}, $user, "welcome.user $bytes");
    $c->join_room('esc');
    $c->call({ op => 'send', room => 'esc', text => 'hi from header' });
    my $m = $reader->wait_for(type => 'message');
    is($m && $m->{user}, $user, "message.user $bytes");
    $ws->wait_for(type => 'message');
    $c->close_socket;
}

# user ids from the query string are not URL-decoded
{
    my $c = ChatTest::WS->chat($port, user => 'a%22b%5C');
    is($c->welcome->{user}, 'a%22b%5C', '$arg_user is used as is');
}
{
    my $c = ChatTest::WS->connect($port, path => '/chat?user=x"y',
                                  allow_fail => 1);
    if ($c) {
        my $w = $c->recv_json;
        is($w && $w->{user}, 'x"y', 'raw quote in the query string');
    } else {
        pass('raw quote in the query string refused by nginx');
    }
}

# a user id that is not valid UTF-8: refused, or replaced so that every
# frame stays valid UTF-8 JSON
{
    my $c = ChatTest::WS->connect($port, path => '/chat_h',
                                  headers => { 'X-User' => "bad\xffuser" },
                                  allow_fail => 1);
    if (!$c) {
        ok($ChatTest::WS::last_status >= 400,
           "invalid UTF-8 user refused ($ChatTest::WS::last_status)");
    } else {
        my $m = $c->recv_message;
        ok($m, 'invalid UTF-8 user: welcome frame');
        my $bytes = $m ? $m->{payload} : '';
        ok(eval { decode("UTF-8", $bytes, Encode::FB_CROAK | Encode::LEAVE_SRC); 1 },
           'invalid UTF-8 user: the frame is valid UTF-8');
        ok(eval { ChatTest::json()->decode($bytes) }, '... and valid JSON');
    }
}

$n->stop;
done_testing;
