# WebSocket handshake: checks and their order, success headers, welcome.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use MIME::Base64 qw(encode_base64);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
location = /chat_o {
    chat;
    chat_user $arg_user;
    chat_allowed_origins https://good.example http://Other.Example:8080;
}
location = /chat_h { chat; chat_user $http_x_user; }
location = /echo { chat_echo; }
location = /echo_o { chat_echo; chat_allowed_origins https://good.example; }
location = /chat_any { chat; chat_user $arg_user; chat_allowed_origins *; }
location = /status { chat_status; }
EOF2
my $port = $n->port;

# request options: headers set (a value) or omitted (undef)
sub h { return (headers => { @_ }) }

# headers an answer must carry (value, or a pattern)
my $UPGRADE = { upgrade => qr/^websocket$/i };
my $VERSION = { 'sec-websocket-version' => '13' };

my $RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
my @random_keys = map { encode_base64(ChatTest::random_bytes(16), '') }
                  1 .. 5;

# Each case: name, request (ChatTest::ws_handshake options, path
# /chat?user=a unless given; plain => 1: a GET without any WebSocket
# header), the status, and the headers of the answer (each a test of its
# own).  In the order of the checks the module makes.
my @CASES = (
    # 1. method
    (map { [ "$_ -> 405", { method => $_ }, 405 ] }
         qw(POST PUT DELETE PATCH OPTIONS)),
    [ 'method is checked first',
      { method => 'PUT', h(Upgrade => undef, Connection => undef,
                            'Sec-WebSocket-Version' => undef,
                            'Sec-WebSocket-Key' => undef) }, 405 ],
    [ 'chat_echo: POST -> 405', { path => '/echo', method => 'POST' }, 405 ],

    # 2. Upgrade / Connection
    [ 'plain GET -> 426', { plain => 1 }, 426, $UPGRADE ],
    [ 'chat_echo: plain GET -> 426', { plain => 1, path => '/echo' }, 426,
      $UPGRADE ],
    [ 'no Upgrade header -> 426', { h(Upgrade => undef) }, 426, $UPGRADE ],
    [ 'Upgrade: h2c -> 426', { h(Upgrade => 'h2c') }, 426, $UPGRADE ],
    [ 'Upgrade: websocketx -> 426', { h(Upgrade => 'websocketx') }, 426,
      $UPGRADE ],
    [ 'no Connection header -> 426', { h(Connection => undef) }, 426,
      $UPGRADE ],
    [ 'Connection without upgrade token -> 426',
      { h(Connection => 'keep-alive') }, 426, $UPGRADE ],
    [ 'Connection: upgraded (not the token) -> 426',
      { h(Connection => 'upgraded') }, 426, $UPGRADE ],
    [ 'upgrade checked before version and key',
      { h(Upgrade => undef, 'Sec-WebSocket-Version' => undef,
          'Sec-WebSocket-Key' => undef) }, 426, $UPGRADE ],

    # 3. version
    [ 'no Sec-WebSocket-Version -> 426',
      { h('Sec-WebSocket-Version' => undef) }, 426, $VERSION ],
    (map { [ "Sec-WebSocket-Version '$_' -> 426",
             { h('Sec-WebSocket-Version' => $_) }, 426, $VERSION ] }
         '8', '12', '14', '130', 'abc', ''),
    [ 'version checked before key',
      { h('Sec-WebSocket-Version' => 8, 'Sec-WebSocket-Key' => undef) }, 426,
      $VERSION ],

    # 4. key
    [ 'Sec-WebSocket-Key 15 bytes -> 400',
      { h('Sec-WebSocket-Key' => encode_base64('x' x 15, '')) }, 400 ],
    [ 'Sec-WebSocket-Key 17 bytes -> 400',
      { h('Sec-WebSocket-Key' => encode_base64('x' x 17, '')) }, 400 ],
    [ 'Sec-WebSocket-Key 32 bytes -> 400',
      { h('Sec-WebSocket-Key' => encode_base64('x' x 32, '')) }, 400 ],
    [ 'Sec-WebSocket-Key empty -> 400', { h('Sec-WebSocket-Key' => '') },
      400 ],
    [ 'Sec-WebSocket-Key invalid chars -> 400',
      { h('Sec-WebSocket-Key' => '!!!!!!!!!!!!!!!!!!!!!!==') }, 400 ],
    [ 'Sec-WebSocket-Key missing -> 400', { h('Sec-WebSocket-Key' => undef) },
      400 ],
    [ 'Sec-WebSocket-Key not base64 -> 400',
      { h('Sec-WebSocket-Key' => 'abc') }, 400 ],
    [ 'key checked before origin',
      { path => '/chat_o?user=a', origin => 'https://evil.example',
        h('Sec-WebSocket-Key' => 'abc') }, 400 ],
    [ 'chat_echo: bad key -> 400',
      { path => '/echo', h('Sec-WebSocket-Key' => 'abc') }, 400 ],

    # 5. origin
    (map { [ $_->[0], { path => '/chat_o?user=a', origin => $_->[1] }, 403 ] }
         [ 'origin not allowed -> 403', 'https://evil.example' ],
         [ 'origin prefix match is not enough -> 403',
           'https://good.example.evil' ],
         [ 'origin truncated -> 403', 'https://good.exampl' ],
         [ 'origin with another scheme -> 403', 'http://good.example' ],
         [ 'origin null -> 403', 'null' ]),
    [ 'origin checked before user',
      { path => '/chat_o', origin => 'https://evil.example' }, 403 ],
    [ 'chat_echo: origin not allowed -> 403',
      { path => '/echo_o', origin => 'https://evil.example' }, 403 ],
    (map { [ "allowed origin $_ -> 101",
             { path => '/chat_o?user=a', origin => $_ }, 101 ] }
         'https://good.example', 'HTTPS://GOOD.EXAMPLE',
         'http://other.example:8080', 'http://Other.Example:8080'),
    [ 'no Origin header -> allowed', { path => '/chat_o?user=a' }, 101 ],
    # without chat_allowed_origins: a page of this site only, the
    # Origin's host and port being the Host's (the harness sends
    # "Host: localhost")
    (map { [ "no chat_allowed_origins: $_->[0] -> $_->[2]",
             { origin => $_->[1], %{$_->[3] || {}} }, $_->[2] ] }
         [ "another site's origin", 'https://anything.example', 403 ],
         [ 'the same host', 'http://localhost', 101 ],
         [ 'the same host, https, upper case', 'HTTPS://LocalHost', 101 ],
         [ 'the same host, another port', 'http://localhost:8080', 403 ],
         [ 'the same host and port', 'https://chat.example:8443', 101,
           { h(Host => 'chat.example:8443') } ],
         [ 'the same host, not the port', 'https://chat.example', 403,
           { h(Host => 'chat.example:8443') } ],
         [ 'a longer host', 'http://localhost.evil.example', 403 ],
         [ 'a host ending the same', 'http://evil-localhost', 403 ],
         [ 'origin with a path', 'http://localhost/', 403 ],
         [ 'origin without a scheme', 'localhost', 403 ],
         [ 'origin null', 'null', 403 ]),
    [ 'chat_allowed_origins *: any origin -> 101',
      { path => '/chat_any?user=a', origin => 'https://anything.example' },
      101 ],
    [ 'chat_echo, no chat_allowed_origins: another site -> 403',
      { path => '/echo', origin => 'https://anything.example' }, 403 ],

    # 6. user
    [ 'no user -> 401', { path => '/chat' }, 401 ],
    [ 'empty user -> 401', { path => '/chat?user=' }, 401 ],
    [ 'user of 256 bytes -> 101', { path => '/chat?user=' . 'u' x 256 },
      101 ],
    [ 'user of 257 bytes -> 400', { path => '/chat?user=' . 'u' x 257 },
      400 ],
    (map { [ "user $_->[0] -> 400",
             { path => '/chat_h', h('X-User' => $_->[1]) }, 400 ] }
         [ 'not UTF-8', "ab\xff" ], [ 'cut UTF-8', "ab\xc3" ],
         [ 'overlong UTF-8', "\xc0\xaf" ], [ 'with a C0 control', "a\x01b" ],
         [ 'with DEL', "a\x7fb" ], [ 'with a C1 control', "a\xc2\x85b" ],
         [ 'with a tab', "a\tb" ]),
    (map { [ "user $_->[0] -> 101",
             { path => '/chat_h', h('X-User' => $_->[1]) }, 101 ] }
         [ 'in UTF-8', "j\xc3\xbcrgen" ], [ 'with a space', 'a b' ],
         [ 'with an emoji', "\xf0\x9f\x8e\x89" ]),
    [ 'chat_echo needs no user', { path => '/echo' }, 101 ],

    # success
    [ 'valid handshake -> 101', { key => $RFC_KEY }, 101,
      { upgrade => qr/^websocket$/i, connection => qr/^upgrade$/i,
        # the RFC example key's
        'sec-websocket-accept' => 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=' } ],
    [ 'Connection list -> 101', { h(Connection => 'keep-alive, Upgrade') },
      101 ],
    [ 'Connection list no space -> 101',
      { h(Connection => 'keep-alive,upgrade') }, 101 ],
    [ 'Connection upper case -> 101', { h(Connection => 'UPGRADE') }, 101 ],
    [ 'Upgrade list -> 101', { h(Upgrade => 'foo, WebSocket') }, 101 ],
    [ 'Upgrade upper case -> 101', { h(Upgrade => 'WEBSOCKET') }, 101 ],
    [ 'both lists -> 101', { h(Upgrade => 'h2c, websocket',
                              Connection => 'Upgrade, keep-alive') }, 101 ],
    (map { [ "random key $_ -> 101", { path => '/echo',
                                       key => $random_keys[$_ - 1] }, 101,
             { 'sec-websocket-accept'
                   => ChatTest::accept_key($random_keys[$_ - 1]) } ] }
         1 .. 5),
);

for my $case (@CASES) {
    my ($name, $req, $status, $headers) = @$case;
    my %req = (path => '/chat?user=a', %$req);
    my ($st, $h) = delete $req{plain}
                 ? ChatTest::http_get($port, $req{path})
                 : ChatTest::ws_handshake($port, %req);
    is($st, $status, $name);
    for my $k (sort keys %{$headers || {}}) {
        my $want = $headers->{$k};
        if (ref $want) {
            my ($re, $flags) = re::regexp_pattern($want);
            like($h->{$k} // '', $want, "$name: $k =~ /$re/$flags");
        } else {
            is($h->{$k}, $want, "$name: $k: $want");
        }
    }
}

{
    my $refused = grep { $_->[2] == 403 } @CASES;
    my (undef, undef, $st) = ChatTest::http_get_json($port, '/status');
    is($st && $st->{refused_origin}, $refused,
       "the status counts the $refused origins refused");
    like($n->error_log, qr/\[info\].*chat: handshake from origin "null" refused/,
         'a refused origin is logged at info');
}

# a refused upgrade answers "Connection: close" and closes: a client that
# asked for a WebSocket waits for nothing more on it
sub closed_within {
    my ($fh, $t) = @_;
    my $sel = IO::Select->new($fh);
    my $end = time + $t;
    while ((my $left = $end - time) > 0) {
        $sel->can_read($left) or return 0;
        my $n = sysread($fh, my $buf, 4096);
        return 1 if defined $n && $n == 0;
        return 1 unless defined $n;
    }
    return 0;
}

for my $case (
    [ 405, { method => 'POST' } ],
    [ 426, { h(Upgrade => undef) } ],
    [ 426, { h('Sec-WebSocket-Version' => 8) } ],
    [ 400, { h('Sec-WebSocket-Key' => 'abc') } ],
    [ 403, { path => '/chat_o?user=a', origin => 'https://evil.example' } ],
    [ 401, { path => '/chat' } ],
    [ 400, { path => '/chat_h', h('X-User' => "a\x01b") } ],
    [ 400, { path => '/echo', h('Sec-WebSocket-Key' => '') } ],
) {
    my ($status, $o) = @$case;
    my %o = (path => '/chat?user=a', %$o);
    my ($req) = ChatTest::ws_request(%o);
    my $fh = ChatTest::tcp_connect($port);
    ChatTest::write_all($fh, $req);
    my ($st, $h) = ChatTest::read_response($fh);
    my $what = "$status for $o{path}"
               . ($o->{headers} ? ' ' . join(',', sort keys %{$o->{headers}})
                                : '');
    is($st, $status, "refused: $what");
    is(lc($h->{connection} // ''), 'close', "$what: Connection: close");
    ok(closed_within($fh, 3), "$what: the server closes the connection");
    close $fh;
}

like($n->error_log, qr/\[info\].*chat: invalid user id of 3 bytes/,
     'an invalid user id is logged at info');

# welcome
my $a = ChatTest::WS->chat($port, user => 'alice');
my $w = $a->welcome;
is($w->{type}, 'welcome', 'welcome right after the handshake');
is($w->{user}, 'alice', 'welcome.user');
like($a->{welcome_raw}, qr/"conn":\d+[,}]/, 'welcome.conn is an integer');
like($a->{welcome_raw}, qr/"worker":"[0-9a-f]{16}"/,
     'welcome.worker is 16 hex digits');
{
    my $host = `hostname`;
    chomp $host;
    my @pids = $n->worker_pids;
    unlike($w->{worker}, qr/\Q$host\E|\Q$pids[0]\E/,
           'welcome.worker tells neither the host name nor the pid');
}
my $b = ChatTest::WS->chat($port, user => 'bob');
isnt($b->welcome->{conn}, $w->{conn}, 'connections get distinct ids');
is($b->welcome->{worker}, $w->{worker}, 'same worker string (one worker)');
ok($a->alive && $b->alive, 'both connections work');

# bytes sent right behind the handshake are not lost
{
    my ($req, $key) = ChatTest::ws_request(path => '/echo');
    my $fh = ChatTest::tcp_connect($port);
    ChatTest::write_all($fh, $req . ChatTest::WS::frame(payload => 'early'));
    my ($st, $h, undef, $rest) = ChatTest::read_response($fh);
    is($st, 101, 'handshake with a frame in the same packet');
    my $ws = bless { fh => $fh, buf => $rest, pending => [], ignore => {},
                     pings => [], eof => 0 }, 'ChatTest::WS';
    my $m = $ws->recv_message;
    is($m && $m->{payload}, 'early', 'frame sent with the handshake echoed');
    close $fh;
}

$a->close_socket;
$b->close_socket;
$n->stop;
done_testing;
