# chat_jwt_secret: $chat_jwt_user and $chat_jwt_rooms from an HS256 token
# in Authorization: Bearer, ?token= or ?access_token=; every bad token
# leaves both empty (401 with chat_user $chat_jwt_user), is logged at info
# and counted as refused_token.  Join tokens let in one room beyond
# chat_rooms, for their own user and room only, and never past a ban.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use ChatTest qw(enc);

my $secret = 'k' x 32 . '-the-test-secret';

sub b64 { encode_base64url($_[0]) }

# a token of raw header and payload JSON text, signed with $key
sub sign_raw {
    my ($head, $body, $key) = @_;
    my $in = b64($head) . '.' . b64($body);
    return "$in." . b64(hmac_sha256($in, $key // $secret));
}

sub token {
    my (%claims) = @_;
    my $head = delete $claims{_head} // '{"alg":"HS256","typ":"JWT"}';
    my $key = delete $claims{_key};
    $claims{exp} //= time + 600;
    delete $claims{exp} if $claims{exp} eq 'none';
    return sign_raw($head, ChatTest::json()->encode(\%claims), $key);
}

my $n = ChatTest->start(
    http => "chat_jwt_secret $secret;\n"
          . "large_client_header_buffers 4 32k;\n",
    server => <<'EOF');
location = /chat {
    chat;
    chat_user $chat_jwt_user;
    chat_rooms $chat_jwt_rooms;
    chat_rate 1000r/s burst=1000;
    chat_request_rate 1000r/s burst=1000;
    chat_max_message_size 16k;
}
location = /limited {
    chat;
    chat_user $chat_jwt_user;
    chat_limit_conn $chat_jwt_user 1;
}
location = /vars {
    return 200 "user=[$chat_jwt_user] rooms=[$chat_jwt_rooms]\n";
}
location = /admin { chat_admin; }
location = /status { chat_status; }
EOF
my $port = $n->port;

# what the variables hold for a request carrying $tok in ?token=
sub vars {
    my ($q) = @_;
    my ($st, $h, $body) = ChatTest::http_get($port, "/vars?$q");
    return $body // '';
}

sub connect_with {
    my ($tok, %o) = @_;
    return ChatTest::WS->chat($port, path => "/chat?token=$tok", %o);
}

sub join_as {
    my ($ws, $room, $tok) = @_;
    my $r = $ws->call({ op => 'join', room => $room,
                        defined $tok ? (token => $tok) : () });
    return 'nothing' unless $r;
    return $r->{type} eq 'joined' ? 'joined'
         : $r->{type} eq 'error' ? $r->{code} : enc($r);
}

# a good token, through each way of carrying it
{
    my $t = token(sub => 'alice', rooms => [ 'lobby', 'team-*' ]);
    is(vars("token=$t"), "user=[alice] rooms=[lobby team-*]\n",
       '?token=: both variables');
    is(vars("access_token=$t"), "user=[alice] rooms=[lobby team-*]\n",
       '?access_token=');
    my ($st, $h, $body) = ChatTest::http_request($port,
        "GET /vars HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Authorization: Bearer $t\r\n\r\n");
    is($body, "user=[alice] rooms=[lobby team-*]\n", 'Authorization: Bearer');
    ($st, $h, $body) = ChatTest::http_request($port,
        "GET /vars?token=garbage HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nAuthorization: bearer   $t  \r\n\r\n");
    is($body, "user=[alice] rooms=[lobby team-*]\n",
       'the header before the query, "bearer" in any case, spaces');
    is(vars('token=' . token(sub => 'bob')), "user=[bob] rooms=[]\n",
       'no rooms claim: no room');
    is(vars('x=1'), "user=[] rooms=[]\n", 'no token: both empty');

    my $ws = connect_with($t);
    is($ws->welcome->{user}, 'alice', 'the handshake takes the user');
    is(join_as($ws, 'lobby'), 'joined', 'a room of the claim');
    is(join_as($ws, 'team-7'), 'joined', 'a pattern of the claim');
    is(join_as($ws, 'other'), 'forbidden', 'another room: forbidden');
    $ws->close_socket;
}

# bad tokens: both variables empty, the handshake 401
my $good = token(sub => 'alice', rooms => ['lobby']);
my ($gh, $gp, $gs) = split /\./, $good;
my $now = time;
my @bad = (
    [ 'alg none, no signature',
      b64('{"alg":"none"}') . ".$gp." ],
    [ 'alg none, signed anyway',
      sign_raw('{"alg":"none"}', '{"sub":"alice","exp":' . ($now + 600) . '}') ],
    [ 'alg HS512', token(sub => 'a', _head => '{"alg":"HS512"}') ],
    [ 'alg RS256', token(sub => 'a', _head => '{"alg":"RS256"}') ],
    [ 'alg hs256 (case)', token(sub => 'a', _head => '{"alg":"hs256"}') ],
    [ 'alg missing', token(sub => 'a', _head => '{"typ":"JWT"}') ],
    [ 'alg a number', token(sub => 'a', _head => '{"alg":256}') ],
    [ 'crit header', token(sub => 'a',
                           _head => '{"alg":"HS256","crit":["x"]}') ],
    [ 'header not an object', token(sub => 'a', _head => '["HS256"]') ],
    [ 'header not JSON', token(sub => 'a', _head => 'alg=HS256') ],
    [ 'another key', token(sub => 'alice', _key => 'x' x 32) ],
    [ 'signature of another token', "$gh.$gp." . (split /\./,
                                      token(sub => 'mallory'))[2] ],
    [ 'payload changed', "$gh." . b64('{"sub":"mallory","exp":'
                                      . ($now + 600) . '}') . ".$gs" ],
    [ 'signature cut short', "$gh.$gp." . substr($gs, 0, 42) ],
    [ 'signature one char longer', "$gh.$gp.${gs}A" ],
    [ 'signature padded', "$gh.$gp.$gs=" ],
    [ 'signature empty', "$gh.$gp." ],
    [ '+ and / of standard base64', do {
        my $t;
        for my $i (1 .. 1000) {
            $t = token(sub => "u$i?>~");
            last if (split /\./, $t)[1] =~ /[-_]/;
        }
        $t =~ tr/-_/+\//;
        $t } ],
    [ 'padding in the payload', "$gh.$gp==.$gs" ],
    [ 'two parts', "$gh.$gp" ],
    [ 'four parts', "$good.$gs" ],
    [ 'one part', $gh ],
    [ 'dots only', '..' ],
    [ 'expired', token(sub => 'alice', exp => $now - 5) ],
    [ 'exp missing', token(sub => 'alice', exp => 'none') ],
    [ 'exp a string', token(sub => 'alice', exp => '' . ($now + 600)) ],
    [ 'nbf in the future', token(sub => 'alice', nbf => $now + 120) ],
    [ 'nbf a string', token(sub => 'alice', nbf => 'yesterday') ],
    [ 'sub missing', token(rooms => ['lobby']) ],
    [ 'sub empty', token(sub => '') ],
    [ 'sub a number', token(sub => 42) ],
    [ 'rooms a string', token(sub => 'alice', rooms => 'lobby') ],
    [ 'rooms with a bad name', token(sub => 'alice',
                                     rooms => [ 'lobby', 'bad name' ]) ],
    [ 'rooms with a bad pattern', token(sub => 'alice', rooms => ['a*b']) ],
    [ 'rooms with a number', token(sub => 'alice', rooms => [1]) ],
    [ 'rooms with a long name', token(sub => 'alice',
                                      rooms => [ 'r' x 129 ]) ],
    [ 'payload not an object', sign_raw('{"alg":"HS256"}', '[1]') ],
    [ 'payload with trailing data',
      sign_raw('{"alg":"HS256"}', '{"sub":"a","exp":' . ($now + 600)
                                  . '} x') ],
    [ 'payload with U+0000', sign_raw('{"alg":"HS256"}',
      '{"sub":"a\u0000b","exp":' . ($now + 600) . '}') ],
    [ 'over 8192 bytes', token(sub => 'alice', pad => 'p' x 8200) ],
);

ok(@bad >= 15, scalar(@bad) . ' bad tokens');
my $refused = $n->status->{refused_token} // 0;
for my $case (@bad) {
    my ($name, $t) = @$case;
    is(vars("token=$t"), "user=[] rooms=[]\n", "$name: variables empty");
    my ($st) = ChatTest::ws_handshake($port, path => "/chat?token=$t");
    is($st, 401, "$name: handshake 401");
}
ok($n->alive, 'nginx survived every bad token');
is($n->status->{refused_token} // 0, $refused + @bad,
   'each refused handshake counted as refused_token');

# the longest token read is 8192 bytes
{
    my $t;
    for (my $l = 6200; $l > 0; $l--) {
        $t = token(sub => 'alice', pad => 'p' x $l);
        last if length $t <= 8192;
    }
    ok(length $t > 8180 && length $t <= 8192,
       'a token of ' . length($t) . ' bytes');
    is(vars("token=$t"), "user=[alice] rooms=[]\n", '... is accepted');
}

# nothing above info, nothing of a token in the log
{
    my $log = $n->error_log;
    like($log, qr/\[info\].*chat: token of \d+ bytes refused: bad signature/,
         'a bad signature logged at info');
    like($log, qr/\[info\].*refused: "alg" is not HS256/, 'a bad alg');
    like($log, qr/\[info\].*refused: expired/, 'an expired token');
    like($log, qr/\[info\].*refused: not three parts/, 'a malformed token');
    unlike($log, qr/\[(?:notice|warn|error|crit|alert|emerg)\].*token/,
           'no token message above info');
}

# a token in the header is never logged (one in the query string is, in
# the request line nginx's log lines name: the README says so)
{
    my $t = token(sub => 'alice', exp => time - 60);
    my $sig = (split /\./, $t)[2];
    my $count = sub { scalar(() = $n->error_log =~ /refused: expired/g) };
    my $before = $count->();
    my ($st) = ChatTest::ws_handshake($port, path => '/chat',
        headers => { Authorization => "Bearer $t" });
    is($st, 401, 'an expired token in Authorization: 401');
    ok(ChatTest::wait_until(sub { $count->() > $before }, 3),
       '... refused as expired');
    # at debug nginx itself logs every request header: then the module's
    # own lines are looked at
    my $log = $n->error_log;
    $log = join "\n", grep { / chat: / } split /\n/, $log
        if ($ENV{CHAT_TEST_LOG_LEVEL} // 'info') eq 'debug';
    unlike($log, qr/\Q$sig\E/, '... and not in the error log');
}

# join tokens
{
    my $ws = connect_with(token(sub => 'alice', rooms => ['lobby']));
    my $jt = token(sub => 'alice', room => 'dm:alice:bob');
    is(join_as($ws, 'dm:alice:bob', $jt), 'joined',
       'a join token allows its room');
    is(join_as($ws, 'dm:alice:carol', $jt), 'forbidden',
       '... not another room');
    is(join_as($ws, 'dm:x', token(sub => 'bob', room => 'dm:x')),
       'forbidden', 'a join token of another user');
    is(join_as($ws, 'dm:y', token(sub => 'alice', room => 'dm:y',
                                  exp => time - 1)),
       'forbidden', 'an expired join token');
    is(join_as($ws, 'dm:z', token(sub => 'alice', room => 'dm:z',
                                  _key => 'y' x 32)),
       'forbidden', 'a join token signed with another key');
    is(join_as($ws, 'dm:w', token(sub => 'alice')), 'forbidden',
       'a join token without room');
    is(join_as($ws, 'dm:v', 'not.a.token'), 'forbidden', 'garbage');
    my $r = $ws->call({ op => 'join', room => 'dm:u', token => 7 });
    is($r && $r->{code}, 'bad_request', 'a token that is not a string');
    $r = $ws->call({ op => 'join', room => 'dm:u', token => 'x' x 8193 });
    is($r && $r->{code}, 'bad_request', 'a token over 8192 bytes');
    is(join_as($ws, 'lobby', 'garbage'), 'joined',
       'a bad token does not matter where chat_rooms allows');

    # a ban wins over the join token
    my ($st, $h, $j) = ChatTest::http_post_json($port, '/admin',
        { op => 'kick', user => 'alice', room => 'dm:alice:bob', ban => 60 });
    is($st, 200, 'kick with a ban');
    $ws->wait_for(type => 'left', room => 'dm:alice:bob', timeout => 3);
    $r = $ws->call({ op => 'join', room => 'dm:alice:bob', token => $jt });
    is($r && $r->{code}, 'forbidden', 'banned: the join token is refused');
    is($r && $r->{message}, 'banned from this room', '... for the ban');
    $ws->close_socket;
}

# the claims serve any directive: one connection per token user
{
    my $a = token(sub => 'alice');
    my $ws = ChatTest::WS->chat($port, path => "/limited?token=$a");
    my ($st) = ChatTest::ws_handshake($port, path => "/limited?token=$a");
    is($st, 429, 'chat_limit_conn $chat_jwt_user 1: a second alice gets 429');
    my $bob = ChatTest::WS->chat($port,
                                 path => '/limited?token=' . token(sub => 'bob'));
    is($bob->welcome->{user}, 'bob', '... bob connects');
    $_->close_socket for $ws, $bob;
}

$n->stop;

# the directive: http only, one, at least 32 bytes
for my $case (
    [ 'too short', "chat_jwt_secret 0123456789abcdef0123456789abcde;",
      qr/at least 32 bytes/ ],
    [ 'duplicate', "chat_jwt_secret $secret;\nchat_jwt_secret $secret;",
      qr/is duplicate/ ],
) {
    my ($name, $http, $re) = @$case;
    my ($rc, $text, $log) = ChatTest->nginx_t(http => "$http\n",
        server => "location = /chat { chat; chat_user \$chat_jwt_user; }\n");
    isnt($rc, 0, "nginx -t refuses chat_jwt_secret $name");
    like($text . $log, $re, '... saying why');
}
{
    my ($rc, $text, $log) = ChatTest->nginx_t(
        server => "location = /chat { chat; chat_jwt_secret $secret; "
                . "chat_user \$arg_user; }\n");
    isnt($rc, 0, 'nginx -t refuses chat_jwt_secret in a location');
    my ($rc2) = ChatTest->nginx_t(
        server => "location = /chat { chat; chat_user \$chat_jwt_user; }\n");
    is($rc2, 0, 'without chat_jwt_secret the variables exist (empty)');
}

done_testing;
