# chat_rooms: the rooms a connection may join, names and prefix patterns
# from a variable evaluated at the handshake.  Other joins get forbidden,
# and nothing of a forbidden room reaches the connection: no replay,
# message, presence, typing or history.  Without the directive every room
# is open.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);

my $n = ChatTest->start(http => "large_client_header_buffers 4 32k;\n",
                        server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rooms $http_x_rooms;
    chat_rate 1000r/s burst=1000;
}
location = /open { chat; chat_user $arg_user; }
location = /status { chat_status; }
EOF2
my $port = $n->port;

sub client {
    my ($user, $rooms, %o) = @_;
    return ChatTest::WS->chat($port, user => $user,
                              headers => { 'X-Rooms' => $rooms }, %o);
}

# the reply to a join of $room: 'joined', or the error code
sub join_as {
    my ($ws, $room) = @_;
    my $r = $ws->call({ op => 'join', room => $room });
    return 'nothing' unless $r;
    return $r->{type} eq 'joined' ? 'joined'
         : $r->{type} eq 'error' ? $r->{code} : enc($r);
}

my @hundred = map { "room-$_" } 1 .. 99;

for my $case (
    # the value of chat_rooms, room, expected answer
    [ 'team-42',                       'team-42',        'joined' ],
    [ 'team-42',                       'team-4',         'forbidden' ],
    [ 'team-42',                       'team-421',       'forbidden' ],
    [ 'team-42',                       'TEAM-42',        'forbidden' ],
    [ 'team',                          'team-42',        'forbidden' ],
    [ 'team*',                         'team-42',        'joined' ],
    [ 'team*',                         'team',           'joined' ],
    [ 'team*',                         'tea',            'forbidden' ],
    [ 'dm:alice:*',                    'dm:alice:bob',   'joined' ],
    [ 'dm:alice:*',                    'dm:alice:',      'joined' ],
    [ 'dm:alice:*',                    'dm:alice',       'forbidden' ],
    [ 'dm:alice:*',                    'dm:bob:alice',   'forbidden' ],
    [ '*',                             'anything.at@all', 'joined' ],
    [ '',                              'lobby',          'forbidden' ],
    [ ' ',                             'lobby',          'forbidden' ],
    [ 'a,b c',                         'b',              'joined' ],
    [ 'a,b c',                         'c',              'joined' ],
    [ 'a,b c',                         'a,b',            'bad_request' ],
    [ ',,lobby,,',                     'lobby',          'joined' ],
    [ "a\tlobby",                      'lobby',          'joined' ],
    [ 'a  lobby',                      'lobby',          'joined' ],
    [ 'lob*by',                        'lobXby',         'forbidden' ],
    [ 'lob*by',                        'lob*by',         'bad_request' ],
    [ '**',                            'lobby',          'forbidden' ],
    [ 'bad!name lobby',                'lobby',          'joined' ],
    [ 'bad!name',                      'bad',            'forbidden' ],
    [ join(' ', @hundred, 'last'),     'last',           'joined' ],
    [ join(' ', @hundred, 'last'),     'room-50',        'joined' ],
    [ join(' ', @hundred, 'last'),     'room-100',       'forbidden' ],
    [ join(' ', @hundred, 'pre:*'),    'pre:x',          'joined' ],
    [ 'x' x 128 . '*',                 'x' x 128,        'joined' ],
) {
    my ($rooms, $room, $want) = @$case;
    my $ws = client('u', $rooms);
    my $show = length $rooms > 40 ? substr($rooms, 0, 20) . '...' : $rooms;
    is(join_as($ws, $room), $want, "chat_rooms \"$show\", join $room: $want");
    $ws->close_socket;
}

# without the directive every room is open
{
    my $ws = ChatTest::WS->chat($port, path => '/open', user => 'u');
    is(join_as($ws, 'anything'), 'joined', 'no chat_rooms: every room');
    $ws->close_socket;
}

# a forbidden room: nothing of it reaches the connection
{
    my $alice = client('alice', 'secret lobby');
    my $eve = ChatTest::WS->chat($port, user => 'eve',
                                 headers => { 'X-Rooms' => 'lobby' },
                                 ignore => []);
    $alice->join_room('secret');
    $alice->call({ op => 'send', room => 'secret', text => 'before' });

    my $r = $eve->call({ op => 'join', room => 'secret', since => 0 });
    is($r && $r->{code}, 'forbidden', 'join with since: forbidden');
    is($r && $r->{message}, 'not allowed in this room', '... its message');

    for my $op (qw(history presence typing send leave)) {
        my %req = (op => $op, room => 'secret');
        $req{text} = 'x' if $op eq 'send';
        if ($op eq 'typing') {
            $eve->send_json(\%req);
            next;
        }
        my $a = $eve->call(\%req);
        is($a && $a->{code}, 'not_joined', "then $op: not_joined");
    }
    $alice->call({ op => 'typing', room => 'secret' });
    $alice->call({ op => 'send', room => 'secret', text => 'after' });
    $eve->join_room('lobby');
    $alice->join_room('lobby');
    $alice->call({ op => 'send', room => 'lobby', text => 'public' });
    my $m = $eve->wait_for(type => 'message', timeout => 3);
    is($m && $m->{room}, 'lobby', 'the first message eve gets is of lobby');
    my @rest = $eve->drain(timeout => 0.5);
    ok(!grep({ ($_->{room} // '') eq 'secret' } @rest),
       'nothing of the forbidden room, of any type')
        or diag(join "\n", map { enc($_) } @rest);
    $_->close_socket for $alice, $eve;
}

# a room already joined stays joined; each join is checked
{
    my $ws = client('u', 'a b');
    is(join_as($ws, 'a'), 'joined', 'a');
    is(join_as($ws, 'a'), 'joined', 'a again');
    is(join_as($ws, 'z'), 'forbidden', 'z');
    is(join_as($ws, 'b'), 'joined', 'then b');
    $ws->close_socket;
}

# too long a value: the handshake fails with 500, logged at error
{
    my ($st) = ChatTest::ws_handshake($port, path => '/chat?user=u',
        headers => { 'X-Rooms' => join(' ', ('r' x 100) x 170) });
    is($st, 500, 'chat_rooms over 16384 bytes: 500');
    like($n->error_log, qr/\[error\].*chat_rooms value of 17169 bytes/,
         '... logged at error');
}

like($n->error_log,
     qr/\[info\].*chat: chat_rooms: "bad!name" is not a room name or pattern/,
     'an invalid item is logged at info');
like($n->error_log, qr/\[info\].*chat: join of "secret" forbidden/,
     'a forbidden join is logged at info');

my $forbidden = () = $n->error_log =~ /join of "[^"]*" forbidden/g;
my $st = $n->status('/status');
is($st->{forbidden}, $forbidden, "the status counts $forbidden forbidden joins");

$n->stop;
done_testing;
