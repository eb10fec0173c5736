# Embedded mode keeps a room with messages and no member for whoever joins
# next, at most chat_memory_rooms of them (default 1000): past that, the
# room left longest ago goes, its history and its seq with it.  A room with
# members is never forgotten, but counts.  2,500 rooms of 4 KB messages do
# not hold the worker's memory.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs);
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=5000;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
}
EOF2

sub rss_kb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

# one message in each room, the writer leaving each; in batches, read as
# they go, so that the writer's own 4 KB messages never wait undrained
# past chat_send_buffer (it would be a slow consumer)
sub visit {
    my ($ws, @rooms) = @_;
    my $ok = 0;
    while (my @batch = splice @rooms, 0, 50) {
        for my $room (@batch) {
            $ws->send_json({ op => 'join', room => $room, id => "j$room" });
            $ws->send_json({ op => 'send', room => $room, id => "s$room",
                             text => "in $room " . ('z' x 4000) });
            $ws->send_json({ op => 'leave', room => $room,
                             id => "l$room" });
        }
        for my $room (@batch) {
            my $a = $ws->wait_for(id => "s$room", timeout => 10);
            my $l = $ws->wait_for(id => "l$room", timeout => 10);
            $ok++ if $a && $a->{type} eq 'ack'
                && $l && $l->{type} eq 'left';
        }
        $ws->drain(timeout => 0);
    }
    return $ok;
}

{
    my $n = ChatTest->start(server => $LOC, http => "chat_memory_rooms 4;\n");
    my $w = ChatTest::WS->chat($n->port, user => 'w');
    my $keeper = ChatTest::WS->chat($n->port, user => 'keeper');
    $keeper->join_room('kept');
    is(visit($w, 'kept'), 1, 'a room that keeps a member');
    is(visit($w, qw(a b c d)), 4, 'four rooms with a message each, left');

    my $r = ChatTest::WS->chat($n->port, user => 'r');
    my $j = $r->call({ op => 'join', room => 'a', since => 0 });
    is($j && $j->{seq}, 0, 'a, left first, is forgotten: seq 0 again')
        or diag(enc($j));
    ok($r->quiet(timeout => 0.3), '... and nothing replayed');
    for my $room (qw(b c d)) {
        $j = $r->call({ op => 'join', room => $room, since => 0 });
        my @m = $r->collect(n => 1, type => 'message', room => $room);
        ok($j && $j->{seq} == 1 && @m == 1 && $m[0]{text} =~ /^in $room/,
           "$room is kept: seq 1, its message replayed");
    }
    $j = $r->call({ op => 'join', room => 'kept', since => 0 });
    is($j && $j->{seq}, 1, 'a room with a member is never forgotten');

    # joined again, a room is used again: the least recently left goes
    $r->call({ op => 'leave', room => $_ }) for qw(b c d kept);
    is(visit($w, 'e'), 1, 'one room more');
    $j = $r->call({ op => 'join', room => 'b', since => 0 });
    is($j && $j->{seq}, 0, 'b, left longest ago, is forgotten');
    $j = $r->call({ op => 'join', room => 'd', since => 0 });
    is($j && $j->{seq}, 1, 'd is kept');
    $_->close_socket for $w, $keeper, $r;
    $n->stop;
}

# the default, and the memory of 2,500 rooms
{
    my $n = ChatTest->start(server => $LOC);
    my ($pid) = $n->worker_pids;
    my $w = ChatTest::WS->chat($n->port, user => 'w', rcvbuf => 1 << 20);
    is(visit($w, map { "r$_" } 1 .. 1000), 1000, '1000 rooms');
    my $base = rss_kb($pid);
    my $ok = 0;
    $ok += visit($w, map { "r$_" } ($_ * 500 + 1) .. ($_ * 500 + 500))
        for 2 .. 4;
    is($ok, 1500, '1500 rooms more, 4 KB each');
    my $grew = rss_kb($pid) - $base;
    SKIP: {
        # ASan's quarantine keeps what is freed
        skip 'memory under ASan', 1 if $ENV{CHAT_ASAN};
        cmp_ok($grew, '<', 3 * 1024,
               "the worker grew by $grew KB past 1000 rooms (not 6 MB)");
    }
    my $r = ChatTest::WS->chat($n->port, user => 'r');
    my $j = $r->call({ op => 'join', room => 'r1', since => 0 });
    is($j && $j->{seq}, 0, 'the default keeps 1000: the first room is gone');
    $j = $r->call({ op => 'join', room => 'r2400', since => 0 });
    is($j && $j->{seq}, 1, '... a recent one is kept');
    $_->close_socket for $w, $r;
    $n->stop;
}

done_testing;
