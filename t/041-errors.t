# Error replies: codes, id echo rules, and the connection staying open.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_max_rooms 3;
    chat_rate 1000r/s burst=1000;
}
EOF2
my $port = $n->port;
my $ws = ChatTest::WS->chat($port, user => 'errs');
$ws->join_room('r');

# sends raw text, expects one error reply
sub err_is {
    my ($raw, $code, $name, %o) = @_;
    $ws->send_text($raw);
    my $r = $ws->recv_json(timeout => 5);
    my $ok = ok($r && $r->{type} eq 'error' && ($r->{code} // '') eq $code,
                "$name -> $code");
    diag('got: ' . ($r ? ChatTest::json()->encode($r) : 'nothing')) unless $ok;
    if ($r && $r->{type} eq 'error') {
        ok(defined $r->{message} && !ref $r->{message}
           && length $r->{message}, "$name: error has a message");
        if (exists $o{id}) {
            is($r->{id}, $o{id}, "$name: id echoed");
        } else {
            ok(!exists $r->{id}, "$name: no id in the reply");
        }
        my %k = map { $_ => 1 } keys %$r;
        delete @k{qw(type code message id)};
        ok(!%k, "$name: no other fields");
    }
    return $r;
}

# not JSON / not an object
err_is('{"op":', 'bad_request', 'truncated JSON');
err_is('hello', 'bad_request', 'not JSON');
err_is('', 'bad_request', 'empty message');
err_is('   ', 'bad_request', 'only spaces');
err_is('[1,2]', 'bad_request', 'array');
err_is('"join"', 'bad_request', 'string');
err_is('42', 'bad_request', 'number');
err_is('null', 'bad_request', 'null');
err_is('true', 'bad_request', 'true');
err_is('{"op":"heartbeat"} x', 'bad_request', 'trailing garbage');
err_is('{"op":"heartbeat",}', 'bad_request', 'trailing comma');
err_is("{'op':'heartbeat'}", 'bad_request', 'single quotes');
err_is('{"op":"heartbeat","x":[1,2}', 'bad_request', 'unbalanced');
err_is('{"op":"heartbeat","x":"\\q"}', 'bad_request', 'bad escape');
err_is('{"op":"heartbeat","x":"\\u12"}', 'bad_request', 'short \\u escape');
err_is(qq({"op":"heartbeat","x":"a\x01b"}), 'bad_request',
       'raw control character in a string');
# cJSON reads a number with a leading zero ("01") as decimal: accepted,
# harmless, and documented in the README
err_is('{"op":"heartbeat","x":NaN}', 'bad_request', 'NaN');
err_is('[' x 4000 . ']' x 4000, 'bad_request', 'deeply nested array');
{
    # deep nesting inside an object: refused or ignored, but not fatal
    $ws->send_text('{"op":"heartbeat","id":"deep","x":' . '[' x 3000
                   . ']' x 3000 . '}');
    my $r = $ws->recv_json;
    ok($r && ($r->{type} eq 'heartbeat' || ($r->{type} eq 'error'
       && $r->{code} eq 'bad_request')), 'deep nesting in an object');
}

# op
err_is('{"room":"r"}', 'bad_request', 'missing op');
err_is('{"op":"dance","id":"d1"}', 'bad_request', 'unknown op', id => 'd1');
err_is('{"op":"","id":"d2"}', 'bad_request', 'empty op', id => 'd2');
err_is('{"op":1,"id":"d3"}', 'bad_request', 'op a number', id => 'd3');
err_is('{"op":["join"],"id":"d4"}', 'bad_request', 'op an array', id => 'd4');
err_is('{"op":"JOIN","room":"r","id":"d5"}', 'bad_request',
       'op is case-sensitive', id => 'd5');
err_is('{"op":null}', 'bad_request', 'op null');

# id
err_is('{"op":"dance","id":5}', 'bad_request', 'id a number');
err_is('{"op":"heartbeat","id":5}', 'bad_request', 'valid op, id a number');
err_is('{"op":"heartbeat","id":{"a":1}}', 'bad_request', 'id an object');
err_is('{"op":"heartbeat","id":null}', 'bad_request', 'id null');
err_is('{"op":"heartbeat","id":"' . 'i' x 65 . '"}', 'bad_request',
       'id of 65 bytes');
err_is('{"op":"dance","id":"' . 'i' x 65 . '"}', 'bad_request',
       'unknown op, 65-byte id: no id');
{
    my $id = 'i' x 64;
    my $r = $ws->call({ op => 'heartbeat', id => $id });
    is($r && $r->{id}, $id, 'id of 64 bytes echoed');
    $r = $ws->call({ op => 'heartbeat', id => '' });
    is($r && $r->{type}, 'heartbeat', 'empty string id accepted');
    is($r && $r->{id}, '', '... and echoed');
    # 64 bytes as UTF-8 (16 four-byte characters)
    $id = "\x{1F600}" x 16;
    $r = $ws->call({ op => 'heartbeat', id => $id });
    is($r && $r->{id}, $id, 'id of 64 UTF-8 bytes echoed');
    err_is(ChatTest::json()->encode({ op => 'heartbeat',
                                      id => "\x{1F600}" x 16 . 'x' }),
           'bad_request', 'id of 65 UTF-8 bytes');
}

# room
my @bad_rooms = ('', 'x' x 129, 'a b', 'a/b', 'a#b', "caf\x{e9}", 'a"b',
                 "a\nb", 'a,b', 'a*b');
for my $room (@bad_rooms) {
    for my $op ('join', 'leave', 'send', 'history') {
        my $req = { op => $op, room => $room, id => "br-$op" };
        $req->{text} = 't' if $op eq 'send';
        err_is(ChatTest::json()->encode($req), 'bad_request',
               "$op with bad room '" . substr($room, 0, 10) . "' ("
               . length($room) . ')', id => "br-$op");
    }
}
err_is('{"op":"join","id":"nr"}', 'bad_request', 'join without room',
       id => 'nr');
err_is('{"op":"join","room":5,"id":"nr"}', 'bad_request', 'room a number',
       id => 'nr');
err_is('{"op":"join","room":null,"id":"nr"}', 'bad_request', 'room null',
       id => 'nr');
err_is('{"op":"join","room":["r"],"id":"nr"}', 'bad_request',
       'room an array', id => 'nr');
err_is('{"op":"send","text":"t","id":"nr"}', 'bad_request',
       'send without room', id => 'nr');

# text
err_is('{"op":"send","room":"r","id":"t1"}', 'bad_request', 'missing text',
       id => 't1');
err_is('{"op":"send","room":"r","text":"","id":"t2"}', 'bad_request',
       'empty text', id => 't2');
err_is('{"op":"send","room":"r","text":5,"id":"t3"}', 'bad_request',
       'text a number', id => 't3');
err_is('{"op":"send","room":"r","text":null,"id":"t4"}', 'bad_request',
       'text null', id => 't4');
err_is('{"op":"send","room":"r","text":["a"],"id":"t5"}', 'bad_request',
       'text an array', id => 't5');
err_is('{"op":"send","room":"r","text":{"a":1},"id":"t6"}', 'bad_request',
       'text an object', id => 't6');
ok($ws->quiet(timeout => 0.3), 'no message was broadcast by bad sends');

# since / before / limit
for my $v ('-1', '1.5', '"3"', 'null', 'true', '[]', '-0.5', '{}')
{
    err_is(qq({"op":"join","room":"r","since":$v,"id":"s"}), 'bad_request',
           "since $v", id => 's');
    err_is(qq({"op":"history","room":"r","before":$v,"id":"b"}),
           'bad_request', "before $v", id => 'b');
    err_is(qq({"op":"history","room":"r","limit":$v,"id":"l"}),
           'bad_request', "limit $v", id => 'l');
}

# not_joined
err_is('{"op":"send","room":"elsewhere","text":"x","id":"nj1"}',
       'not_joined', 'send to a room not joined', id => 'nj1');
err_is('{"op":"history","room":"elsewhere","id":"nj2"}', 'not_joined',
       'history of a room not joined', id => 'nj2');
err_is('{"op":"leave","room":"elsewhere","id":"nj3"}', 'not_joined',
       'leave a room not joined', id => 'nj3');
err_is('{"op":"send","room":"elsewhere","text":"x"}', 'not_joined',
       'not_joined without id');

# too_many_rooms (chat_max_rooms 3; 'r' is joined)
is($ws->call({ op => 'join', room => 'r2' })->{type}, 'joined', 'room 2');
is($ws->call({ op => 'join', room => 'r3' })->{type}, 'joined', 'room 3');
err_is('{"op":"join","room":"r4","id":"tm"}', 'too_many_rooms',
       'fourth room', id => 'tm');
is($ws->call({ op => 'join', room => 'r3' })->{type}, 'joined',
   'rejoining a joined room at the limit is fine');
err_is('{"op":"join","room":"r4","id":"tm2"}', 'too_many_rooms',
       'still three rooms', id => 'tm2');
err_is('{"op":"send","room":"r4","text":"x","id":"tm3"}', 'not_joined',
       'the refused room was not joined', id => 'tm3');
is($ws->call({ op => 'leave', room => 'r2' })->{type}, 'left', 'leave one');
is($ws->call({ op => 'join', room => 'r4' })->{type}, 'joined',
   'then a new room is fine');
{
    my $other = ChatTest::WS->chat($port, user => 'other');
    is($other->call({ op => 'join', room => 'r5' })->{type}, 'joined',
       'the limit is per connection');
    $other->close_socket;
}

# unknown fields are ignored, errors never close the connection
my $r = $ws->call({ op => 'heartbeat', extra => [1, 2], more => { a => 1 } });
is($r && $r->{type}, 'heartbeat', 'unknown fields ignored');
ok($ws->alive, 'connection still open after all the errors');
my $a = $ws->call({ op => 'send', room => 'r', text => 'works' });
is($a && $a->{type}, 'ack', 'send still works');

$ws->close_socket;
$n->stop;
done_testing;
