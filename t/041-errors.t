# Error replies: codes, id echo rules, and the connection staying open.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);

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
    diag('got: ' . enc($r)) unless $ok;
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

my $JSON = ChatTest::json();

# Each case: the text sent, the error code of the reply, a name, and
# id => the id the reply must echo (without: the reply has no id).
my @bad_rooms = ('', 'x' x 129, 'a b', 'a/b', 'a#b', "caf\x{e9}", 'a"b',
                 "a\nb", 'a,b', 'a*b');
my @CASES = (
    # not JSON / not an object
    [ '{"op":', 'bad_request', 'truncated JSON' ],
    [ 'hello', 'bad_request', 'not JSON' ],
    [ '', 'bad_request', 'empty message' ],
    [ '   ', 'bad_request', 'only spaces' ],
    [ '[1,2]', 'bad_request', 'array' ],
    [ '"join"', 'bad_request', 'string' ],
    [ '42', 'bad_request', 'number' ],
    [ 'null', 'bad_request', 'null' ],
    [ 'true', 'bad_request', 'true' ],
    [ '{"op":"heartbeat"} x', 'bad_request', 'trailing garbage' ],
    [ '{"op":"heartbeat",}', 'bad_request', 'trailing comma' ],
    [ "{'op':'heartbeat'}", 'bad_request', 'single quotes' ],
    [ '{"op":"heartbeat","x":[1,2}', 'bad_request', 'unbalanced' ],
    [ '{"op":"heartbeat","x":"\\q"}', 'bad_request', 'bad escape' ],
    [ '{"op":"heartbeat","x":"\\u12"}', 'bad_request', 'short \\u escape' ],
    [ qq({"op":"heartbeat","x":"a\x01b"}), 'bad_request',
      'raw control character in a string' ],
    # cJSON reads a number with a leading zero ("01") as decimal:
    # accepted, harmless, and documented in the README
    [ '{"op":"heartbeat","x":NaN}', 'bad_request', 'NaN' ],
    [ '[' x 4000 . ']' x 4000, 'bad_request', 'deeply nested array' ],

    # op
    [ '{"room":"r"}', 'bad_request', 'missing op' ],
    [ '{"op":"dance","id":"d1"}', 'bad_request', 'unknown op', id => 'd1' ],
    [ '{"op":"","id":"d2"}', 'bad_request', 'empty op', id => 'd2' ],
    [ '{"op":1,"id":"d3"}', 'bad_request', 'op a number', id => 'd3' ],
    [ '{"op":["join"],"id":"d4"}', 'bad_request', 'op an array',
      id => 'd4' ],
    [ '{"op":"JOIN","room":"r","id":"d5"}', 'bad_request',
      'op is case-sensitive', id => 'd5' ],
    [ '{"op":null}', 'bad_request', 'op null' ],

    # id
    [ '{"op":"dance","id":5}', 'bad_request', 'id a number' ],
    [ '{"op":"heartbeat","id":5}', 'bad_request', 'valid op, id a number' ],
    [ '{"op":"heartbeat","id":{"a":1}}', 'bad_request', 'id an object' ],
    [ '{"op":"heartbeat","id":null}', 'bad_request', 'id null' ],
    [ '{"op":"heartbeat","id":"' . 'i' x 65 . '"}', 'bad_request',
      'id of 65 bytes' ],
    [ '{"op":"dance","id":"' . 'i' x 65 . '"}', 'bad_request',
      'unknown op, 65-byte id: no id' ],
    # 65 bytes as UTF-8 (16 four-byte characters and one more)
    [ $JSON->encode({ op => 'heartbeat', id => "\x{1F600}" x 16 . 'x' }),
      'bad_request', 'id of 65 UTF-8 bytes' ],

    # room: each bad name with each op that takes a room
    (map {
        my $room = $_;
        map {
            my $req = { op => $_, room => $room, id => "br-$_" };
            $req->{text} = 't' if $_ eq 'send';
            [ $JSON->encode($req), 'bad_request',
              "$_ with bad room '" . (substr($room, 0, 10) =~ s/\n/\\n/gr)
              . "' (" . length($room) . ')', id => "br-$_" ]
        } 'join', 'leave', 'send', 'history'
    } @bad_rooms),
    [ '{"op":"join","id":"nr"}', 'bad_request', 'join without room',
      id => 'nr' ],
    [ '{"op":"join","room":5,"id":"nr"}', 'bad_request', 'room a number',
      id => 'nr' ],
    [ '{"op":"join","room":null,"id":"nr"}', 'bad_request', 'room null',
      id => 'nr' ],
    [ '{"op":"join","room":["r"],"id":"nr"}', 'bad_request',
      'room an array', id => 'nr' ],
    [ '{"op":"send","text":"t","id":"nr"}', 'bad_request',
      'send without room', id => 'nr' ],

    # text
    [ '{"op":"send","room":"r","id":"t1"}', 'bad_request', 'missing text',
      id => 't1' ],
    [ '{"op":"send","room":"r","text":"","id":"t2"}', 'bad_request',
      'empty text', id => 't2' ],
    [ '{"op":"send","room":"r","text":5,"id":"t3"}', 'bad_request',
      'text a number', id => 't3' ],
    [ '{"op":"send","room":"r","text":null,"id":"t4"}', 'bad_request',
      'text null', id => 't4' ],
    [ '{"op":"send","room":"r","text":["a"],"id":"t5"}', 'bad_request',
      'text an array', id => 't5' ],
    [ '{"op":"send","room":"r","text":{"a":1},"id":"t6"}', 'bad_request',
      'text an object', id => 't6' ],

    # since / before / limit: each bad value in each
    (map {
        [ qq({"op":"join","room":"r","since":$_,"id":"s"}), 'bad_request',
          "since $_", id => 's' ],
        [ qq({"op":"history","room":"r","before":$_,"id":"b"}),
          'bad_request', "before $_", id => 'b' ],
        [ qq({"op":"history","room":"r","limit":$_,"id":"l"}),
          'bad_request', "limit $_", id => 'l' ]
    } '-1', '1.5', '"3"', 'null', 'true', '[]', '-0.5', '{}'),

    # not_joined
    [ '{"op":"send","room":"elsewhere","text":"x","id":"nj1"}',
      'not_joined', 'send to a room not joined', id => 'nj1' ],
    [ '{"op":"history","room":"elsewhere","id":"nj2"}', 'not_joined',
      'history of a room not joined', id => 'nj2' ],
    [ '{"op":"leave","room":"elsewhere","id":"nj3"}', 'not_joined',
      'leave a room not joined', id => 'nj3' ],
    [ '{"op":"send","room":"elsewhere","text":"x"}', 'not_joined',
      'not_joined without id' ],
);
err_is(@$_) for @CASES;
ok($ws->quiet(timeout => 0.3), 'no message was broadcast by bad sends');

{
    # deep nesting inside an object: refused or ignored, but not fatal
    $ws->send_text('{"op":"heartbeat","id":"deep","x":' . '[' x 3000
                   . ']' x 3000 . '}');
    my $r = $ws->recv_json;
    ok($r && ($r->{type} eq 'heartbeat' || ($r->{type} eq 'error'
       && $r->{code} eq 'bad_request')), 'deep nesting in an object');
}

# the longest ids are echoed
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
}

# too_many_rooms (chat_max_rooms 3; 'r' is joined).  Steps in order: a
# request and the type of its reply, or an error case as above.
for my $step (
    [ { op => 'join', room => 'r2' }, 'joined', 'room 2' ],
    [ { op => 'join', room => 'r3' }, 'joined', 'room 3' ],
    [ '{"op":"join","room":"r4","id":"tm"}', 'too_many_rooms',
      'fourth room', id => 'tm' ],
    [ { op => 'join', room => 'r3' }, 'joined',
      'rejoining a joined room at the limit is fine' ],
    [ '{"op":"join","room":"r4","id":"tm2"}', 'too_many_rooms',
      'still three rooms', id => 'tm2' ],
    [ '{"op":"send","room":"r4","text":"x","id":"tm3"}', 'not_joined',
      'the refused room was not joined', id => 'tm3' ],
    [ { op => 'leave', room => 'r2' }, 'left', 'leave one' ],
    [ { op => 'join', room => 'r4' }, 'joined', 'then a new room is fine' ],
  )
{
    if (ref $step->[0]) {
        my ($req, $type, $name) = @$step;
        my $r = $ws->call($req);
        is($r && $r->{type}, $type, $name);
    } else {
        err_is(@$step);
    }
}
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
