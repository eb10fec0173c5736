# Long polling on the chat location (memory mode): GET ?poll=1&cursor=
# answers at once with {"type":"poll","events":[...],"cursor":...} when
# something past the cursor exists, else holds the request until the next
# event of its rooms (a message, a typing) or its timeout (then with no
# events), the cursor carrying every room's seq; a held poll ends with a
# reload, or when the client goes; the bounds of the cursor and of
# timeout answer 400; a room chat_rooms does not allow, 403; the Origin
# rule, CORS and chat_limit_conn apply.  A poll announces no presence in
# its rooms.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::WS;
use Time::HiRes qw(time sleep);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
location = /rooms { chat; chat_user $arg_user; chat_rooms "open-*"; }
location = /limited { chat; chat_user $arg_user; chat_limit_conn $arg_user 1; }
location = /status { chat_status; }
location = /cors {
    chat; chat_user $arg_user;
    chat_allowed_origins https://app.example;
}
EOF2
my $port = $n->port;
my $J = ChatTest::json();

my $ws = ChatTest::WS->user($port, 'alice', ignore => []);
$ws->join_room($_) for qw(a b);
sub send_to {
    my ($room, $text) = @_;
    my $r = $ws->call({ op => 'send', room => $room, text => $text });
    die 'send failed' unless $r && $r->{type} eq 'ack';
    return $r->{seq};
}

sub poll {
    my ($path, %o) = @_;
    my ($st, $h, $body) = ChatTest::http_get($port, $path, $o{headers},
                                             timeout => $o{timeout} // 10);
    my $j = eval { $J->decode($body) };
    return ($st, $j, $h, $body);
}

# a poll sent, its answer read later
sub start_poll {
    my ($path) = @_;
    my $fh = ChatTest::tcp_connect($port);
    ChatTest::write_all($fh, "GET $path HTTP/1.1\r\nHost: localhost\r\n"
                             . "Connection: close\r\n\r\n");
    return $fh;
}
sub finish_poll {
    my ($fh, $timeout) = @_;
    my ($st, $h, $body) = ChatTest::read_response($fh, timeout => $timeout);
    close $fh;
    return ($st, eval { $J->decode($body) });
}
sub seqs { [ map { $_->{seq} } grep { $_->{type} eq 'message' }
             @{$_[0]{events} || []} ] }

# ---- answered at once
my @s = map { send_to('a', "a$_") } 1 .. 3;
my ($st, $j) = poll("/chat?user=bob&poll=1&cursor=a:$s[0],b:0");
is($st, 200, 'at once: 200');
is($j->{type}, 'poll', 'at once: type poll');
is_deeply(seqs($j), [ @s[1, 2] ], 'at once: what followed the cursor, in order');
is($j->{cursor}, "a:$s[2],b:0", 'at once: the new cursor');
($st, $j) = poll("/chat?user=bob&poll=1&cursor=a:0");
is_deeply(seqs($j), \@s, 'cursor a:0: every message of a');

# ---- waiting, then answered by the next message
{
    my $t = time;
    my $fh = start_poll("/chat?user=bob&poll=1&cursor=a:$s[2],b:");
    sleep 0.5;
    is($n->status('/status')->{polls}, 1, 'status: polls 1 while it waits');
    my $s4 = send_to('a', 'late');
    my ($st, $j) = finish_poll($fh, 5);
    is($st, 200, 'waiting: 200');
    is_deeply(seqs($j), [ $s4 ], 'waiting: answered with the next message');
    like($j->{cursor}, qr/^a:$s4,b:\d+$/,
         'waiting: a without a seq gets the room\'s in the cursor');
    cmp_ok(time - $t, '<', 4, 'waiting: answered before the timeout');
    is($n->status('/status')->{polls}, 0, 'status: polls 0 once answered');
    push @s, $s4;
}

# ---- a typing answers a poll too
{
    my $fh = start_poll("/chat?user=bob&poll=1&cursor=a:$s[-1]");
    sleep 0.3;
    $ws->send_json({ op => 'typing', room => 'a' });
    my ($st, $j) = finish_poll($fh, 5);
    is($j && $j->{events}[0]{type}, 'typing', 'a typing event answers');
    is($j && $j->{cursor}, "a:$s[-1]", '... the cursor unchanged');
}

# ---- timeout
{
    my $t = time;
    my ($st, $j) = poll("/chat?user=bob&poll=1&cursor=a:$s[-1]&timeout=1");
    my $took = time - $t;
    is($st, 200, 'timeout: 200');
    is_deeply($j->{events}, [], 'timeout: no events');
    is($j->{cursor}, "a:$s[-1]", 'timeout: the same cursor');
    ok($took >= 0.9 && $took < 3, sprintf('timeout=1: %.2f s', $took));
    my $t0 = time;
    ($st, $j) = poll("/chat?user=bob&poll=1&cursor=a:$s[-1]&timeout=0");
    is($st, 200, 'timeout=0: 200 at once');
}

# ---- no gap between polls
{
    my $cursor = "a:$s[-1]";
    my @want;
    my @got;
    for my $round (1 .. 5) {
        push @want, send_to('a', "r$round $_") for 1 .. 3;
        my ($st, $j) = poll("/chat?user=bob&poll=1&cursor=$cursor");
        push @got, @{seqs($j)};
        $cursor = $j->{cursor};
    }
    is_deeply(\@got, \@want, 'five polls: every message once, in order');
}

# ---- bounds
{
    my @bad = (
        [ '/chat?user=bob&poll=1', 'no cursor' ],
        [ '/chat?user=bob&poll=1&cursor=', 'empty cursor' ],
        [ '/chat?user=bob&poll=1&cursor=a:1,a:2', 'a room twice' ],
        [ '/chat?user=bob&poll=1&cursor=a:x', 'a bad seq' ],
        [ '/chat?user=bob&poll=1&cursor=a%20b:1', 'a bad room' ],
        [ '/chat?user=bob&poll=1&cursor=a:1,', 'a trailing comma' ],
        [ '/chat?user=bob&poll=1&cursor=' . join(',', map { "r$_:" } 1 .. 101),
          '101 rooms' ],
        [ '/chat?user=bob&poll=1&cursor=a:1&timeout=26', 'timeout 26' ],
        [ '/chat?user=bob&poll=1&cursor=a:1&timeout=x', 'timeout x' ],
    );
    for my $b (@bad) {
        my ($st, $j) = poll($b->[0]);
        is($st, 400, "$b->[1]: 400");
        is($j && $j->{code}, 'bad_request', "$b->[1]: bad_request");
    }
    my ($st, $j) = poll('/chat?poll=1&cursor=a:1');
    is($st, 401, 'no user: 401');
    ($st, $j) = poll('/chat?user=bob&poll=1&cursor=a:1',
                     headers => { Origin => 'http://evil.example' });
    is($st, 403, 'another site\'s Origin: 403');
    ($st, $j) = poll('/chat?user=bob&poll=1&cursor='
                     . join(',', map { "r$_:" } 1 .. 100) . '&timeout=0');
    is($st, 200, '100 rooms: answered');
    is(scalar(split /,/, $j->{cursor} // ''), 100, '100 rooms: 100 in the cursor');
}

# ---- chat_rooms
{
    my ($st, $j) = poll('/rooms?user=bob&poll=1&cursor=open-1:0,closed:0');
    is($st, 403, 'a room not allowed: 403');
    is($j && $j->{code}, 'forbidden', '... forbidden');
    ($st, $j) = poll('/rooms?user=bob&poll=1&cursor=open-1:0&timeout=0');
    is($st, 200, 'allowed rooms: 200');
}

# ---- CORS and chat_limit_conn
{
    my ($st, $j, $h) = poll('/cors?user=bob&poll=1&cursor=a:0&timeout=0',
                            headers => { Origin => 'https://app.example' });
    is($st, 200, 'CORS: 200');
    is($h->{'access-control-allow-origin'}, 'https://app.example', 'CORS: origin');
    is($h->{'access-control-allow-credentials'}, 'true', 'CORS: credentials');
    like($h->{vary} // '', qr/Origin/, 'CORS: Vary');

    my $fh = start_poll('/limited?user=dan&poll=1&cursor=a:&timeout=3');
    sleep 0.3;
    ($st) = poll('/limited?user=dan&poll=1&cursor=a:&timeout=0');
    is($st, 429, 'chat_limit_conn: a second poll while one waits: 429');
    close $fh;
    ok(ChatTest::wait_until(sub {
        (poll('/limited?user=dan&poll=1&cursor=a:&timeout=0'))[0] == 200 }, 5),
       'chat_limit_conn: the client gone, its slot is back');
}

# ---- no presence from polls; the members leave when it is answered
{
    $ws->drain(timeout => 0.2);
    my ($st, $j) = poll('/chat?user=erin&poll=1&cursor=a:&timeout=1');
    my @p = grep { $_->{type} eq 'presence' } $ws->drain(timeout => 0.5);
    is(scalar @p, 0, 'a poll announces no presence in its rooms')
        or diag(enc(\@p));
    my $r = $ws->call({ op => 'presence', room => 'a' });
    ok(!grep({ $_ eq 'erin' } @{$r->{users} || []}),
       'and is not listed in it');
}

# ---- a reload ends a waiting poll: the client polls the new workers
{
    my $fh = start_poll("/chat?user=bob&poll=1&cursor=a:$s[0]&timeout=20");
    my ($st, $j) = finish_poll($fh, 5);
    is($st, 200, 'before the reload: answered at once');
    $fh = start_poll("/chat?user=bob&poll=1&cursor=b:999999&timeout=20");
    sleep 0.3;
    my $t = time;
    $n->reload;
    my ($st2) = finish_poll($fh, 10);
    cmp_ok(time - $t, '<', 8, 'reload: the waiting poll ends at once, not at '
           . 'its timeout (' . ($st2 // 'closed') . ')');
    ($st, $j) = poll("/chat?user=bob&poll=1&cursor=a:0&timeout=0");
    is($st, 200, 'after the reload: the next poll answered');
}

$n->stop;
done_testing;
