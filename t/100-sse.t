# Server-Sent Events on the chat location (memory mode, one worker): a GET
# with Accept: text/event-stream and ?rooms= streams welcome, joined per
# room in the order of ?rooms=, then message, presence and typing events,
# each one "data:" line of the JSON a WebSocket gets; a message event
# carries "id:", the last seq of every room of the stream in that order,
# from which Last-Event-ID resumes every room with no gap and no
# duplicate; since= does the same from the URL.  Keep-alive comments
# every chat_ping_interval; a reload ends the stream with a close event;
# the head carries no-cache and X-Accel-Buffering; the bounds (rooms,
# cursors, Last-Event-ID) answer 400 with the error object; chat_rooms,
# the Origin rule, CORS and chat_limit_conn apply as to a WebSocket
# (presence, and everything across workers and hosts: t/101).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::WS;
use ChatTest::SSE;
use Time::HiRes qw(time sleep);

my $n = ChatTest->start(
    http => 'chat_ping_interval 1s;',
    server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
location = /limited { chat; chat_user $arg_user; chat_limit_conn $arg_user 1; }
location = /rooms { chat; chat_user $arg_user; chat_rooms "open-*"; }
location = /slow {
    chat; chat_user $arg_user; chat_send_buffer 16k;
    chat_rate 100000r/s burst=100000;
}
location = /status { chat_status; }
location = /cors {
    chat; chat_user $arg_user;
    chat_allowed_origins https://app.example;
}
EOF2
my $port = $n->port;

sub types { join ' ', map { $_->{json}{type} // '?' } @_ }
sub seqs_of {
    my ($room, @e) = @_;
    join ',', map { $_->{json}{seq} }
        grep { ($_->{json}{type} // '') eq 'message'
               && $_->{json}{room} eq $room } @e;
}

my $ws = ChatTest::WS->user($port, 'alice');
$ws->join_room($_) for qw(a b);
sub send_to {
    my ($room, $text) = @_;
    my $r = $ws->call({ op => 'send', room => $room, text => $text });
    die "send failed" unless $r && $r->{type} eq 'ack';
    return $r->{seq};
}

# ---- framing
{
    my $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=b,a');
    is($s->status, 200, 'stream: 200');
    like($s->head->{'content-type'} // '', qr{^text/event-stream},
         'stream: text/event-stream');
    like($s->head->{'cache-control'} // '', qr/no-cache/, 'stream: no-cache');
    is($s->head->{'x-accel-buffering'}, 'no', 'stream: X-Accel-Buffering: no');
    ok(!defined $s->head->{'content-length'}
       && !defined $s->head->{'transfer-encoding'},
       'stream: no length, no chunks');
    my @e = map { $s->next_event(5) } 1 .. 3;
    is(types(@e), 'welcome joined joined', 'welcome, then joined per room');
    is(join(' ', map { $_->{json}{room} } @e[1, 2]), 'b a',
       'joined in the order of ?rooms=');
    is($e[0]{json}{user}, 'bob', 'welcome names the user');
    ok(!grep({ defined $_->{id} } @e), 'no id on welcome and joined');

    my $s1 = send_to('a', "x\ny");
    my $m = $s->wait_for(5, type => 'message');
    is($m->{json}{text}, "x\ny", 'a text with a newline is one data line');
    unlike($m->{data}, qr/\n/, 'data: the JSON on one line');
    is($m->{id}, "0,$s1", 'id: the seq of each room in ?rooms= order');
    my $s2 = send_to('b', 'to b');
    $m = $s->wait_for(5, type => 'message');
    is($m->{id}, "$s2,$s1", 'id follows both rooms');

    $ws->send_json({ op => 'typing', room => 'a' });
    my $t = $s->wait_for(5, type => 'typing');
    ok($t && $t->{json}{user} eq 'alice' && !defined $t->{id},
       'typing reaches the stream, without an id');

    # keep-alive comments
    my $c0 = $s->comments;
    $s->collect(2.5);
    cmp_ok($s->comments - $c0, '>=', 2, 'a comment every chat_ping_interval');
    like($s->raw, qr/^: ping\n\n/m, 'the comment is ": ping"');
    $s->close_socket;
}

# ---- Last-Event-ID resume, one room and many
{
    my $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a');
    $s->wait_for(5, type => 'joined');
    my @sent = map { send_to('a', "m$_") } 1 .. 3;
    my @got = grep { $_->{json}{type} eq 'message' } $s->collect(1);
    is(scalar @got, 3, 'one room: three messages');
    my $last = $got[1]{id};
    $s->close_socket;
    send_to('a', 'while away') for 1 .. 2;

    $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a',
                             headers => { 'Last-Event-ID' => $last });
    my @e = $s->collect(1);
    is(seqs_of('a', @e), join(',', $sent[2], $sent[2] + 1, $sent[2] + 2),
       'Last-Event-ID of one room: what followed it, once, in order');
    $s->close_socket;

    $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a,b');
    $s->collect(0.5);
    my $sa = send_to('a', 'A');
    my $sb = send_to('b', 'B');
    @got = grep { $_->{json}{type} eq 'message' } $s->collect(1);
    my $id = $got[-1]{id};
    is($id, "$sa,$sb", 'two rooms: the id holds both');
    $s->close_socket;
    my @ta = map { send_to('a', "a$_") } 1 .. 2;
    my @tb = map { send_to('b', "b$_") } 1 .. 3;
    $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a,b',
                             headers => { 'Last-Event-ID' => $id });
    @e = $s->collect(1);
    is(seqs_of('a', @e), join(',', @ta), 'two rooms: a resumed');
    is(seqs_of('b', @e), join(',', @tb), 'two rooms: b resumed');

    # since= in the URL, and Last-Event-ID winning over it
    $s->close_socket;
    $s = ChatTest::SSE->open($port, "/chat?user=bob&rooms=a,b&since=b:$tb[1]");
    @e = $s->collect(1);
    is(seqs_of('b', @e), $tb[2], 'since=: b from its seq');
    is(seqs_of('a', @e), '', 'since=: a without one starts now');
    $s->close_socket;
    $s = ChatTest::SSE->open($port, "/chat?user=bob&rooms=a,b&since=b:0",
                             headers => { 'Last-Event-ID' => ",$tb[1]" });
    @e = $s->collect(1);
    is(seqs_of('b', @e), $tb[2], 'Last-Event-ID wins over since');
    $s->close_socket;

    # percent-encoded names
    $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a%2Cb'
                                    . "&since=a%3A$ta[0]");
    @e = $s->collect(1);
    is(seqs_of('a', @e), $ta[1], 'percent-encoded rooms and since');
    $s->close_socket;
}

# ---- bounds: 400 with the error object
{
    my @bad = (
        [ '/chat?user=bob', 'no rooms' ],
        [ '/chat?user=bob&rooms=', 'empty rooms' ],
        [ '/chat?user=bob&rooms=a,,b', 'empty room name' ],
        [ '/chat?user=bob&rooms=a,', 'trailing comma' ],
        [ '/chat?user=bob&rooms=a%20b', 'a space in a name' ],
        [ '/chat?user=bob&rooms=a,a', 'a room twice' ],
        [ '/chat?user=bob&rooms=' . ('x' x 129), 'a name of 129 bytes' ],
        [ '/chat?user=bob&rooms=' . join(',', map { "r$_" } 1 .. 101),
          '101 rooms (chat_max_rooms 100)' ],
        [ '/chat?user=bob&rooms=a&since=b:1', 'since of another room' ],
        [ '/chat?user=bob&rooms=a&since=a:x', 'since not a number' ],
        [ '/chat?user=bob&rooms=a&since=a:-1', 'negative since' ],
        [ '/chat?user=bob&rooms=a&since=a:' . ('9' x 20), 'since of 20 digits' ],
        [ '/chat?user=bob&rooms=a&since=a:1,', 'since: trailing comma' ],
    );
    for my $b (@bad) {
        my $s = ChatTest::SSE->open($port, $b->[0]);
        is($s->status, 400, "$b->[1]: 400");
        is($s->json && $s->json->{code}, 'bad_request',
           "$b->[1]: the error object");
    }
    my $ok = ChatTest::SSE->open($port, '/chat?user=bob&rooms='
                                 . join(',', map { "r$_" } 1 .. 100));
    is($ok->status, 200, '100 rooms: streamed');
    my @j = grep { $_->{json}{type} eq 'joined' } $ok->collect(1.5);
    is(scalar @j, 100, '100 rooms: 100 joined (no rate applies to them)');
    $ok->close_socket;

    for my $b ([ '1,2', 'more seqs than rooms' ], [ 'x', 'not a seq' ],
               [ '1' x 30, 'a seq of 30 digits' ],
               [ ('9' x 19 . ',') x 200, 'a huge Last-Event-ID' ]) {
        my $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a',
                                    headers => { 'Last-Event-ID' => $b->[0] });
        is($s->status, 400, "Last-Event-ID, $b->[1]: 400");
    }
    my $s = ChatTest::SSE->open($port, '/chat?rooms=a');
    is($s->status, 401, 'no user: 401');
    $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a',
                             headers => { Origin => 'https://evil.example' });
    is($s->status, 403, 'an Origin of another site: 403');
}

# ---- chat_rooms: a room not allowed is an error event, the others stream
{
    my $s = ChatTest::SSE->open($port, '/rooms?user=bob&rooms=open-1,closed');
    is($s->status, 200, 'chat_rooms: the stream opens');
    my @e = $s->collect(1);
    my ($err) = grep { $_->{json}{type} eq 'error' } @e;
    is($err && $err->{json}{code}, 'forbidden',
       'chat_rooms: forbidden for the room not allowed');
    ok(grep({ $_->{json}{type} eq 'joined' && $_->{json}{room} eq 'open-1' }
            @e), 'chat_rooms: the allowed room joined');
    my $w2 = ChatTest::WS->chat($port, path => '/rooms', user => 'carol');
    $w2->join_room('open-1');
    my $r = $w2->call({ op => 'send', room => 'open-1', text => 'hey' });
    my $m = $s->wait_for(5, type => 'message');
    is($m && $m->{id}, "$r->{seq},", 'chat_rooms: id keeps the refused room empty');
    $s->close_socket;
    $w2->close_socket;
}

# ---- CORS
{
    my $s = ChatTest::SSE->open($port, '/cors?user=bob&rooms=a',
                                headers => { Origin => 'https://app.example' });
    is($s->status, 200, 'allowed origin: streamed');
    is($s->head->{'access-control-allow-origin'}, 'https://app.example',
       'CORS: the origin allowed');
    is($s->head->{'access-control-allow-credentials'}, 'true',
       'CORS: credentials');
    $s->close_socket;
}

# ---- chat_limit_conn counts streams
{
    my $s1 = ChatTest::SSE->open($port, '/limited?user=dan&rooms=a');
    is($s1->status, 200, 'limit: the first stream');
    $s1->next_event(5);
    my $s2 = ChatTest::SSE->open($port, '/limited?user=dan&rooms=a');
    is($s2->status, 429, 'limit: a second stream of the key: 429');
    my $w = eval { ChatTest::WS->chat($port, path => '/limited', user => 'dan') };
    ok(!$w, 'limit: a WebSocket of the same key too');
    $s1->close_socket;
    ok(ChatTest::wait_until(sub {
        my $s = ChatTest::SSE->open($port, '/limited?user=dan&rooms=a');
        my $ok = $s->status == 200;
        $s->close_socket;
        $ok;
    }, 5), 'limit: the slot comes back when the stream closes');
}

# ---- a stream that does not drain: closed as a slow consumer
{
    my $s = ChatTest::SSE->open($port, '/slow?user=slow&rooms=flood',
                                rcvbuf => 4096);
    $s->next_event(5);
    is($n->status('/status')->{streams}, 1, 'status: streams 1');
    my $f = ChatTest::WS->chat($port, path => '/slow', user => 'flooder');
    $f->join_room('flood');
    my $text = 'x' x 1000;
    my ($sent, $closed) = (0, 0);
    my $deadline = time + 30;
    while (!$closed && $sent < 5000 && time < $deadline) {
        for (1 .. 20) {
            $sent++;
            $f->send_json({ op => 'send', room => 'flood', text => $text });
        }
        $f->drain(timeout => 0.05);
        if ($sent % 200 == 0) {
            my $st = $n->status('/status');
            $closed = 1 if $st->{slow_consumers};
        }
    }
    ok($closed, "slow stream: closed as a slow consumer ($sent sent)");
    my $c = $s->wait_for(10, type => 'close');
    is($c && $c->{json}{code}, 1013, 'slow stream: its last event, 1013');
    ok($s->wait_eof(5), 'slow stream: the connection ends');
    $s->close_socket;
    ok(ChatTest::wait_until(sub { !$n->status('/status')->{streams} }, 5),
       'status: no stream open');
    $f->close_socket;
    my $o = ChatTest::WS->chat($port, path => '/slow', user => 'other');
    ok($o->call({ op => 'heartbeat' }), 'the worker still serves others');
    $o->close_socket;
}

# ---- a reload ends the stream with a close event
{
    my $s = ChatTest::SSE->open($port, '/chat?user=bob&rooms=a');
    $s->next_event(5);
    $n->reload;
    my $c = $s->wait_for(10, type => 'close');
    is($c && $c->{json}{code}, 1001, 'reload: close event, 1001');
    ok($s->wait_eof(5), 'reload: the stream ends');
}

$n->stop;
done_testing;
