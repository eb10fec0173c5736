# chat_send_buffer bounds what a client fails to drain of the events the
# server sends on its own, not the size of what it asked for: a history
# reply, a replay, a presence list or an echo larger than the buffer goes
# out whole to a client that reads, which is never closed for it.  A
# client that asks for large answers without reading them is paused (its
# next requests wait), not closed, and the worker's memory stays bounded.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs hseqs);
use ChatTest::Redis;
use ChatTest::WS;
use Time::HiRes qw(time sleep);

my $JSON = ChatTest::json();
my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=2000; }
location = /echo { chat_echo; chat_max_message_size 16m; }
EOF2

my $n = ChatTest->start(server => $LOC);
my $port = $n->port;

sub fill {
    my ($room, $count, $size) = @_;
    my $w = ChatTest::WS->chat($port, user => "writer$room");
    $w->join_room($room);
    for my $k (1 .. $count) {
        $w->send_json({ op => 'send', room => $room, id => "w$k",
                        text => sprintf('%05d', $k) . ('x' x ($size - 5)) });
    }
    my @a = $w->collect(n => $count, type => 'ack', timeout => 30);
    $w->close_socket;
    return scalar @a;
}

sub rss_kb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

# ---- echo: one message over chat_send_buffer, whole or in fragments
{
    my $ws = ChatTest::WS->connect($port, path => '/echo');
    for my $case ([ 1 << 20, 1 ], [ 1 << 20, 256 ], [ 16 << 20, 1 ],
                  [ 16 << 20, 64 ]) {
        my ($size, $pieces) = @$case;
        my $text = join '', map { chr(97 + $_ % 26) } 0 .. 25;
        $text = substr($text x ($size / 26 + 1), 0, $size);
        my $bytes = '';
        my $chunk = $size / $pieces;
        for my $i (0 .. $pieces - 1) {
            $bytes .= ChatTest::WS::frame(
                opcode => $i == 0 ? 1 : 0, fin => $i == $pieces - 1,
                payload => substr($text, $i * $chunk, $chunk));
        }
        $ws->send_raw($bytes, timeout => 60);
        my $m = $ws->recv_message(timeout => 60);
        my $name = sprintf '%d MiB in %d frame%s', $size >> 20, $pieces,
                           $pieces > 1 ? 's' : '';
        ok($m && $m->{payload} eq $text, "echo: $name, echoed whole")
            or diag($m ? 'got ' . length($m->{payload}) . ' bytes'
                       : 'no message, close ' . ($ws->{close_code} // '-'));
    }
    my $m = $ws->echo('still there');
    is($m && $m->{payload}, 'still there', 'echo: the connection is open');
    $ws->close_socket;
}

# ---- history: 100 messages of 5.4 KB, a reply of 540 KB
is(fill('hist', 100, 5400), 100, '100 messages of 5.4 KB');
{
    my $ws = ChatTest::WS->chat($port, user => 'reader');
    $ws->join_room('hist');
    my $h = $ws->call({ op => 'history', room => 'hist', limit => 100 },
                      timeout => 10);
    is_deeply(hseqs($h), [ 1 .. 100 ], 'history of 540 KB: all 100');
    ok($ws->alive, '... and the connection is open');
    $ws->close_socket;
}

# ---- a replay of 1000 messages of 600 bytes (600 KB)
is(fill('replay', 1000, 600), 1000, '1000 messages of 600 bytes');
{
    my $ws = ChatTest::WS->chat($port, user => 'rejoiner');
    my $j = $ws->call({ op => 'join', room => 'replay', since => 0 });
    is($j && $j->{seq}, 1000, 'join since 0: joined.seq 1000');
    my @m = $ws->collect(n => 1000, type => 'message', room => 'replay',
                         timeout => 20);
    is_deeply(seqs(@m), [ 1 .. 1000 ], '... replays 1..1000 in order');
    ok($ws->alive, '... and the connection is open');
    $ws->close_socket;
}

# ---- a room poisoned with 70 messages of 8 KB: everybody's replays
is(fill('poison', 70, 8000), 70, '70 messages of 8 KB');
for my $u (1 .. 3) {
    my $ws = ChatTest::WS->chat($port, user => "victim$u");
    my $j = $ws->call({ op => 'join', room => 'poison', since => 0 });
    my @m = $ws->collect(n => 70, type => 'message', room => 'poison',
                         timeout => 20);
    is(scalar @m, 70, "victim $u: the replay of 560 KB arrives whole");
    $ws->close_socket;
}

# ---- events while a large answer waits: counted apart
{
    my $ws = ChatTest::WS->chat($port, user => 'busy');
    $ws->join_room('hist');
    $ws->send_json({ op => 'history', room => 'hist', limit => 100,
                     id => 'h' });
    my $w = ChatTest::WS->chat($port, user => 'talker');
    $w->join_room('hist');
    for my $k (1 .. 20) {
        $w->call({ op => 'send', room => 'hist', text => 'y' x 5000,
                   id => "t$k" });
    }
    my $h = $ws->wait_for(id => 'h', timeout => 10);
    my @m = $ws->collect(n => 20, type => 'message', room => 'hist',
                         timeout => 10);
    ok($h && @{$h->{messages} || []} == 100 && @m == 20,
       'a reply of 540 KB, then 20 live messages behind it: all arrive');
    $_->close_socket for $ws, $w;
}

# ---- asked and not read: paused, not closed, memory bounded
{
    my ($pid) = $n->worker_pids;
    my $ws = ChatTest::WS->chat($port, user => 'greedy', rcvbuf => 65536);
    $ws->join_room('hist');
    my $before = rss_kb($pid);
    $ws->send_raw(join '', map {
        ChatTest::WS::frame(payload => $JSON->encode(
            { op => 'history', room => 'hist', limit => 100, id => "g$_" }))
    } 1 .. 40);
    sleep 1;
    my $during = rss_kb($pid);
    cmp_ok($during - $before, '<', 8 * 1024,
           '40 replies of 540 KB asked, none read: the worker grew by '
           . ($during - $before) . ' KB (not 21 MB)');
    my @h = map { $ws->wait_for(id => "g$_", timeout => 20) } 1 .. 40;
    is(scalar(grep { $_ && @{$_->{messages} || []} == 100 } @h), 40,
       'then read: all 40 replies, whole, in order');
    ok($ws->alive, '... and the connection is open');
    $ws->close_socket;
}

$n->stop;

# ---- presence: a room of 10,000 users with 50-byte ids (540 KB), Redis
{
    my $r = ChatTest::Redis->start;
    my $m = $r->start_nginx(server => $LOC);
    $r->cmd('HSET', 'chat:{crowd}:presence',
            map { (sprintf('%050d', $_), 1) } 1 .. 10000);
    my $ws = ChatTest::WS->chat($m->port, user => 'counter', ignore => []);
    $ws->join_room('crowd');
    my $p = $ws->call({ op => 'presence', room => 'crowd' }, timeout => 10);
    is(scalar @{$p && $p->{users} || []}, 10001,
       'presence of 10,001 users (540 KB): the whole list');
    ok($ws->alive, '... and the connection is open');
    $ws->close_socket;
    $m->stop;
}

done_testing;
