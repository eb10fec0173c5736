# Joining never-used room names leaves nothing behind in Redis: with
# chat_postgres, a join of a room without stored messages writes no seq
# key, and the worker's set of rooms it holds presence in
# (chat:worker:W:rooms) loses a room when its last local member leaves.
# 20,000 join/leave cycles of new names: Redis' key count and memory come
# back to where they were.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $CYCLES = 20000;
my $BATCH = 100;                        # chat_max_rooms
my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_send_buffer 4m;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
}
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(pool => 2, workers => 1,
                                             server => $LOC);
my $port = $n->port;

sub used_memory {
    my ($m) = $r->cmd('INFO', 'memory') =~ /^used_memory:(\d+)/m;
    return $m;
}

sub worker_rooms {
    my $keys = $r->cmd('KEYS', 'chat:worker:*:rooms');
    return @$keys ? $r->cmd('SCARD', $keys->[0]) : 0;
}

my $ws = ChatTest::WS->chat($port, user => 'roamer');

# one cycle first, so that what a connection itself keeps is there
$ws->join_room('warmup');
$ws->call({ op => 'leave', room => 'warmup' });
sleep 0.5;
my $keys0 = $r->cmd('DBSIZE');
my $mem0 = used_memory();
note("before: $keys0 keys, $mem0 bytes");

my ($joined, $left, $bad) = (0, 0, 0);
my $t0 = time;
for (my $i = 0; $i < $CYCLES; $i += $BATCH) {
    my @rooms = map { "new-" . ($i + $_) } 1 .. $BATCH;
    $ws->send_json({ op => 'join', room => $_, id => "j$_" }) for @rooms;
    for (@rooms) {
        my $j = $ws->wait_for(id => "j$_", timeout => 10);
        $j && $j->{type} eq 'joined' && $j->{seq} == 0 ? $joined++ : $bad++;
    }
    $ws->send_json({ op => 'leave', room => $_, id => "l$_" }) for @rooms;
    for (@rooms) {
        my $l = $ws->wait_for(id => "l$_", timeout => 10);
        $l && $l->{type} eq 'left' ? $left++ : $bad++;
    }
}
note(sprintf '%d joins and leaves in %.1f s', $joined + $left, time - $t0);
is($joined, $CYCLES, "$CYCLES joins of new room names, each seq 0");
is($left, $CYCLES, "$CYCLES leaves");
is($bad, 0, 'no error');

# what the last leaves sent has reached Redis
my $deadline = time + 10;
sleep 0.2 while worker_rooms() && time < $deadline;
is(worker_rooms(), 0, "the worker's room set is empty again");
is(scalar @{$r->cmd('KEYS', 'chat:{new-*')}, 0, 'no key of a new room');

my $keys1 = $r->cmd('DBSIZE');
my $mem1 = used_memory();
note("after: $keys1 keys, $mem1 bytes");
is($keys1, $keys0, "Redis' key count back at its start ($keys0)");
cmp_ok($mem1 - $mem0, '<', 512 * 1024,
       'used memory back at its start, within 512 KB (was 8.4 MB up)');

# a room with a stored message keeps its seq, and only that room
my $a = $ws->call({ op => 'join', room => 'kept' });
my $s = $ws->call({ op => 'send', room => 'kept', text => 'stay' });
is($s && $s->{seq}, 1, 'a message in a room of its own') or diag(enc($s));
$ws->call({ op => 'leave', room => 'kept' });
sleep 0.3;
is($r->cmd('GET', 'chat:{kept}:seq'), 1, 'its seq key stays');

$ws->close_socket;
$n->stop;
done_testing;
