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
location = /echo { chat_echo; }
location = /echo_o { chat_echo; chat_allowed_origins https://good.example; }
EOF2
my $port = $n->port;

sub hs {
    my (%o) = @_;
    return ChatTest::ws_handshake($port, %o);
}

my ($st, $h, $body);

# 1. method
for my $m (qw(POST PUT DELETE PATCH OPTIONS)) {
    ($st) = hs(path => '/chat?user=a', method => $m);
    is($st, 405, "$m -> 405");
}
($st) = hs(path => '/chat?user=a', method => 'POST',
           headers => { Upgrade => undef, Connection => undef,
                        'Sec-WebSocket-Version' => undef,
                        'Sec-WebSocket-Key' => undef });
is($st, 405, 'method is checked first');
($st) = hs(path => '/echo', method => 'POST');
is($st, 405, 'chat_echo: POST -> 405');

# 2. Upgrade / Connection
($st, $h) = ChatTest::http_get($port, '/chat?user=a');
is($st, 426, 'plain GET -> 426');
like($h->{upgrade} // '', qr/^websocket$/i, '426 carries Upgrade: websocket');
($st, $h) = ChatTest::http_get($port, '/echo');
is($st, 426, 'chat_echo: plain GET -> 426');

($st, $h) = hs(path => '/chat?user=a', headers => { Upgrade => undef });
is($st, 426, 'no Upgrade header -> 426');
like($h->{upgrade} // '', qr/^websocket$/i, 'Upgrade: websocket in the 426');
($st) = hs(path => '/chat?user=a', headers => { Upgrade => 'h2c' });
is($st, 426, 'Upgrade: h2c -> 426');
($st) = hs(path => '/chat?user=a', headers => { Upgrade => 'websocketx' });
is($st, 426, 'Upgrade: websocketx -> 426');
($st) = hs(path => '/chat?user=a', headers => { Connection => undef });
is($st, 426, 'no Connection header -> 426');
($st) = hs(path => '/chat?user=a', headers => { Connection => 'keep-alive' });
is($st, 426, 'Connection without upgrade token -> 426');
($st) = hs(path => '/chat?user=a', headers => { Connection => 'upgraded' });
is($st, 426, 'Connection: upgraded (not the token) -> 426');
($st, $h) = hs(path => '/chat?user=a',
               headers => { Upgrade => undef, 'Sec-WebSocket-Version' => undef,
                            'Sec-WebSocket-Key' => undef });
is($st, 426, 'upgrade checked before version and key');
like($h->{upgrade} // '', qr/^websocket$/i, '... with Upgrade: websocket');

# 3. version
($st, $h) = hs(path => '/chat?user=a',
               headers => { 'Sec-WebSocket-Version' => undef });
is($st, 426, 'no Sec-WebSocket-Version -> 426');
is($h->{'sec-websocket-version'}, '13', '... with Sec-WebSocket-Version: 13');
for my $v ('8', '12', '14', '130', 'abc', '') {
    ($st, $h) = hs(path => '/chat?user=a',
                   headers => { 'Sec-WebSocket-Version' => $v });
    is($st, 426, "Sec-WebSocket-Version '$v' -> 426");
}
is($h->{'sec-websocket-version'}, '13', 'version 426 advertises 13');
($st) = hs(path => '/chat?user=a',
           headers => { 'Sec-WebSocket-Version' => 8,
                        'Sec-WebSocket-Key' => undef });
is($st, 426, 'version checked before key');

# 4. key
my %bad_keys = (
    'missing'         => undef,
    'empty'           => '',
    'not base64'      => 'abc',
    '15 bytes'        => encode_base64('x' x 15, ''),
    '17 bytes'        => encode_base64('x' x 17, ''),
    'invalid chars'   => '!!!!!!!!!!!!!!!!!!!!!!==',
    '32 bytes'        => encode_base64('x' x 32, ''),
);
for my $name (sort keys %bad_keys) {
    ($st) = hs(path => '/chat?user=a',
               headers => { 'Sec-WebSocket-Key' => $bad_keys{$name} });
    is($st, 400, "Sec-WebSocket-Key $name -> 400");
}
($st) = hs(path => '/chat_o?user=a', origin => 'https://evil.example',
           headers => { 'Sec-WebSocket-Key' => 'abc' });
is($st, 400, 'key checked before origin');
($st) = hs(path => '/echo', headers => { 'Sec-WebSocket-Key' => 'abc' });
is($st, 400, 'chat_echo: bad key -> 400');

# 5. origin
($st) = hs(path => '/chat_o?user=a', origin => 'https://evil.example');
is($st, 403, 'origin not allowed -> 403');
($st) = hs(path => '/chat_o?user=a', origin => 'https://good.example.evil');
is($st, 403, 'origin prefix match is not enough -> 403');
($st) = hs(path => '/chat_o?user=a', origin => 'https://good.exampl');
is($st, 403, 'origin truncated -> 403');
($st) = hs(path => '/chat_o?user=a', origin => 'http://good.example');
is($st, 403, 'origin with another scheme -> 403');
($st) = hs(path => '/chat_o?user=a', origin => 'null');
is($st, 403, 'origin null -> 403');
($st) = hs(path => '/chat_o', origin => 'https://evil.example');
is($st, 403, 'origin checked before user');
($st) = hs(path => '/echo_o', origin => 'https://evil.example');
is($st, 403, 'chat_echo: origin not allowed -> 403');

for my $o ('https://good.example', 'HTTPS://GOOD.EXAMPLE',
           'http://other.example:8080', 'http://Other.Example:8080')
{
    ($st) = hs(path => '/chat_o?user=a', origin => $o);
    is($st, 101, "allowed origin $o -> 101");
}
($st) = hs(path => '/chat_o?user=a');
is($st, 101, 'no Origin header -> allowed');
($st) = hs(path => '/chat?user=a', origin => 'https://anything.example');
is($st, 101, 'no chat_allowed_origins: any origin allowed');

# 6. user
($st) = hs(path => '/chat');
is($st, 401, 'no user -> 401');
($st) = hs(path => '/chat?user=');
is($st, 401, 'empty user -> 401');
($st) = hs(path => '/echo');
is($st, 101, 'chat_echo needs no user');

# success
($st, $h) = hs(path => '/chat?user=a', key => 'dGhlIHNhbXBsZSBub25jZQ==');
is($st, 101, 'valid handshake -> 101');
like($h->{upgrade} // '', qr/^websocket$/i, 'Upgrade: websocket');
like($h->{connection} // '', qr/^upgrade$/i, 'Connection: upgrade');
is($h->{'sec-websocket-accept'}, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=',
   'Sec-WebSocket-Accept of the RFC example key');

my %ok_variants = (
    'Upgrade list'             => { Upgrade => 'foo, WebSocket' },
    'Upgrade upper case'       => { Upgrade => 'WEBSOCKET' },
    'Connection list'          => { Connection => 'keep-alive, Upgrade' },
    'Connection upper case'    => { Connection => 'UPGRADE' },
    'Connection list no space' => { Connection => 'keep-alive,upgrade' },
    'both lists'               => { Upgrade => 'h2c, websocket',
                                    Connection => 'Upgrade, keep-alive' },
);
for my $name (sort keys %ok_variants) {
    ($st) = hs(path => '/chat?user=a', headers => $ok_variants{$name});
    is($st, 101, "$name -> 101");
}

for my $i (1 .. 5) {
    my $key = encode_base64(ChatTest::random_bytes(16), '');
    ($st, $h) = hs(path => '/echo', key => $key);
    is($h->{'sec-websocket-accept'}, ChatTest::accept_key($key),
       "accept value for random key $i");
}

# welcome
my $a = ChatTest::WS->chat($port, user => 'alice');
my $w = $a->welcome;
is($w->{type}, 'welcome', 'welcome right after the handshake');
is($w->{user}, 'alice', 'welcome.user');
like($a->{welcome_raw}, qr/"conn":\d+[,}]/, 'welcome.conn is an integer');
like($a->{welcome_raw}, qr/"worker":"[^"]+"/,
     'welcome.worker is a non-empty string');
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
