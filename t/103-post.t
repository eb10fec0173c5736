# Requests over HTTP on the chat location (memory mode): a POST of one
# protocol request answers with its reply object (send: ack, history,
# presence, online, heartbeat; typing: 204) or with the error object and
# its status; send needs the room allowed (chat_rooms), not joined (a
# resent id stored once: t/104, with Postgres); join and leave are refused (the rooms of a
# stream or poll are in its URL); bodies over chat_max_message_size get
# 413, bodies not UTF-8 or not JSON 400.  OPTIONS preflights are answered
# for the origins chat_allowed_origins allows, with credentials.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::WS;

my $n = ChatTest->start(
    http => 'limit_req_zone $arg_user zone=chat_http:1m rate=1r/s;',
    server => <<'EOF2');
location = /chat {
    chat; chat_user $arg_user; chat_max_message_size 1k;
    chat_allowed_origins https://app.example;
}
location = /status { chat_status; }
location = /rooms { chat; chat_user $arg_user; chat_rooms "open-*"; }
location = /limited {
    chat; chat_user $arg_user;
    limit_req zone=chat_http burst=2 nodelay; limit_req_status 429;
}
EOF2
my $port = $n->port;

sub post {
    my ($path, $body, %o) = @_;
    my ($st, $h, $j, $raw) = ChatTest::http_post_json($port, $path, $body,
        headers => { 'Content-Type' => 'application/json',
                     %{$o{headers} || {}} });
    return ($st, $j, $h, $raw);
}

my $ws = ChatTest::WS->user($port, 'alice', ignore => []);
$ws->join_room('a');

# ---- send
my ($st, $j) = post('/chat?user=bob', { op => 'send', room => 'a',
                                        text => 'over http', id => 's1' });
is($st, 200, 'send: 200');
is($j->{type}, 'ack', 'send: ack');
is($j->{id}, 's1', 'send: the id');
my $seq = $j->{seq};
my $m = $ws->wait_for(type => 'message', room => 'a');
ok($m && $m->{seq} == $seq && $m->{user} eq 'bob' && $m->{text} eq 'over http',
   'send: members of the room get it, from the POSTing user');

# ---- history, presence, online, heartbeat, typing
($st, $j) = post('/chat?user=bob', { op => 'history', room => 'a', id => 'h' });
is($st, 200, 'history: 200');
is_deeply([ map { $_->{seq} } @{$j->{messages}} ], [ $seq ],
          'history: the messages');
($st, $j) = post('/chat?user=bob', { op => 'presence', room => 'a' });
is($j->{type}, 'presence', 'presence: the reply');
is_deeply($j->{users}, ['alice'], 'presence: the members');
($st, $j) = post('/chat?user=bob', { op => 'online', users => [qw(alice zed)] });
is_deeply($j->{users}, { alice => JSON::PP::true, zed => JSON::PP::false },
          'online: the reply');
($st, $j) = post('/chat?user=bob', { op => 'heartbeat', id => 'hb' });
is_deeply($j, { type => 'heartbeat', id => 'hb' }, 'heartbeat: the reply');
($st) = post('/chat?user=bob', { op => 'typing', room => 'a' });
is($st, 204, 'typing: 204');
my $t = $ws->wait_for(type => 'typing');
is($t && $t->{user}, 'bob', 'typing: the room gets it');

# ---- errors
for my $c (
    [ { op => 'join', room => 'a' }, 400, 'bad_request', 'join' ],
    [ { op => 'leave', room => 'a' }, 400, 'bad_request', 'leave' ],
    [ { op => 'send', room => 'a' }, 400, 'bad_request', 'send without text' ],
    [ { op => 'send', room => 'bad room', text => 'x' }, 400, 'bad_request',
      'a bad room' ],
    [ { op => 'nope' }, 400, 'bad_request', 'an unknown op' ],
    [ '{"op":', 400, 'bad_request', 'not JSON' ],
    [ "\xff\xfe", 400, 'bad_request', 'not UTF-8' ],
    [ { op => 'send', room => 'a', text => 'x' x 2000 }, 413, 'too_large',
      'a body over chat_max_message_size' ],
    [ { op => 'online', users => [ map { "u$_" } 1 .. 101 ] }, 413,
      'too_large', 'online of 101 users' ],
) {
    my ($st, $j) = post('/chat?user=bob', $c->[0]);
    is($st, $c->[1], "$c->[3]: $c->[1]");
    is($j && $j->{code}, $c->[2], "$c->[3]: $c->[2]");
}
($st, $j) = post('/chat', { op => 'heartbeat' });
is($st, 401, 'no user: 401');
($st, $j) = post('/rooms?user=bob', { op => 'send', room => 'closed', text => 'x' });
is($st, 403, 'chat_rooms: send to a room not allowed: 403');
is($j && $j->{code}, 'forbidden', '... forbidden');
($st, $j) = post('/rooms?user=bob', { op => 'history', room => 'closed' });
is($st, 403, 'chat_rooms: history of a room not allowed: 403');
($st, $j) = post('/rooms?user=bob', { op => 'send', room => 'open-1', text => 'x' });
is($st, 200, 'chat_rooms: send to an allowed room, not joined: 200');
($st) = post('/chat?user=bob', { op => 'heartbeat' },
             headers => { Origin => 'https://evil.example' });
is($st, 403, 'an Origin not allowed: 403');

# ---- CORS
{
    my ($st, $j, $h) = post('/chat?user=bob', { op => 'heartbeat' },
                            headers => { Origin => 'https://app.example' });
    is($st, 200, 'CORS: an allowed origin');
    is($h->{'access-control-allow-origin'}, 'https://app.example',
       'CORS: Access-Control-Allow-Origin');
    is($h->{'access-control-allow-credentials'}, 'true', 'CORS: credentials');
    ($st, $j, $h) = post('/chat?user=bob', { op => 'nope' },
                         headers => { Origin => 'https://app.example' });
    is($h->{'access-control-allow-origin'}, 'https://app.example',
       'CORS: on errors too');

    my ($pst, $ph) = ChatTest::http_request($port,
        "OPTIONS /chat?user=bob HTTP/1.1\r\nHost: localhost\r\n"
        . "Origin: https://app.example\r\n"
        . "Access-Control-Request-Method: POST\r\n"
        . "Access-Control-Request-Headers: content-type\r\n"
        . "Connection: close\r\n\r\n");
    is($pst, 204, 'preflight: 204');
    is($ph->{'access-control-allow-origin'}, 'https://app.example',
       'preflight: the origin');
    like($ph->{'access-control-allow-methods'} // '', qr/POST/,
         'preflight: POST allowed');
    like($ph->{'access-control-allow-headers'} // '', qr/Content-Type/i,
         'preflight: Content-Type allowed');
    like($ph->{'access-control-allow-headers'} // '', qr/Last-Event-ID/i,
         'preflight: Last-Event-ID allowed');
    ($pst) = ChatTest::http_request($port,
        "OPTIONS /chat HTTP/1.1\r\nHost: localhost\r\n"
        . "Origin: https://evil.example\r\nConnection: close\r\n\r\n");
    is($pst, 403, 'preflight from an origin not allowed: 403');
}

# ---- limit_req bounds a user's HTTP requests, as the README shows
{
    my @st = map { (post('/limited?user=flood', { op => 'heartbeat' }))[0] }
             1 .. 6;
    is(join(' ', @st[0 .. 2]), '200 200 200', 'limit_req: the burst goes');
    ok(grep({ $_ == 429 } @st[3 .. 5]), 'limit_req: past it, 429');
    my ($st) = post('/limited?user=other', { op => 'heartbeat' });
    is($st, 200, 'limit_req: another user is not limited');
}

ok($ws->call({ op => 'heartbeat' }), 'the WebSocket client is still served');
cmp_ok($n->status('/status')->{http_requests}, '>=', 20,
       'status: http_requests counts the POSTs');

$n->stop;
done_testing;
