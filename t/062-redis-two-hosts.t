# Two nginx instances (two "hosts") on one Redis share rooms and one
# sequence per room; a third instance whose clients are in another room is
# not subscribed to the first room and gets none of its events.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
EOF2

ChatTest::Redis::need_chat_redis(server => $LOC);

my $r = ChatTest::Redis->start;
my %cfg = (server => $LOC);
my $A = $r->start_nginx(%cfg);
my $B = $r->start_nginx(%cfg);
isnt($A->root, $B->root, 'two server roots');
isnt($A->port, $B->port, 'two ports');

my $a1 = ChatTest::WS->chat($A->port, user => 'a1');
my $a2 = ChatTest::WS->chat($A->port, user => 'a2');
my $b1 = ChatTest::WS->chat($B->port, user => 'b1');
my $b2 = ChatTest::WS->chat($B->port, user => 'b2');
my @all = ($a1, $a2, $b1, $b2);
isnt($a1->welcome->{worker}, $b1->welcome->{worker},
     'worker ids differ between the instances ('
     . ($a1->welcome->{worker} // '?') . ' / '
     . ($b1->welcome->{worker} // '?') . ')');
is($a1->welcome->{worker}, $a2->welcome->{worker},
   'one worker per instance: same id for a1 and a2');

$_->join_room('shared') for @all;
is($r->numsub('chat:{shared}'), 2, 'NUMSUB chat:{shared} == 2 (A and B)');

# A -> B
my $ack = $a1->call({ op => 'send', room => 'shared', text => 'from A' });
is($ack && $ack->{seq}, 1, 'A: ack seq 1');
for my $ws (@all) {
    my $m = $ws->wait_for(type => 'message', room => 'shared');
    ok($m && $m->{seq} == 1 && $m->{text} eq 'from A' && $m->{user} eq 'a1',
       $ws->welcome->{user} . ' got "from A" (seq 1)');
}
# B -> A
$ack = $b2->call({ op => 'send', room => 'shared', text => 'from B' });
is($ack && $ack->{seq}, 2, 'B: ack seq 2 (the sequence is shared)');
for my $ws (@all) {
    my $m = $ws->wait_for(type => 'message', room => 'shared');
    ok($m && $m->{seq} == 2 && $m->{text} eq 'from B' && $m->{user} eq 'b2',
       $ws->welcome->{user} . ' got "from B" (seq 2)');
}

# interleaved sends from both instances: one sequence, the same everywhere
my $N = 20;
for my $k (1 .. $N) {
    $a1->send_json({ op => 'send', room => 'shared', text => "a $k",
                     id => "a$k" });
    $b1->send_json({ op => 'send', room => 'shared', text => "b $k",
                     id => "b$k" });
}
my @acks = (map({ $a1->wait_for(id => "a$_") } 1 .. $N),
            map({ $b1->wait_for(id => "b$_") } 1 .. $N));
my @as = sort { $a <=> $b } map { $_ && $_->{seq} // 0 } @acks;
is_deeply(\@as, [ 3 .. 2 * $N + 2 ], 'acks from both instances: 3..'
          . (2 * $N + 2) . ', each once');
my @streams;
for my $ws (@all) {
    my @m = $ws->collect(n => 2 * $N, type => 'message', room => 'shared',
                         timeout => 10);
    is_deeply(seqs(@m), [ 3 .. 2 * $N + 2 ],
              $ws->welcome->{user} . ': seq 3..' . (2 * $N + 2)
              . ' in order');
    push @streams, [ map { "$_->{seq} $_->{msg_id} $_->{user} $_->{text}" }
                     @m ];
}
ok(!grep({ join("\n", @$_) ne join("\n", @{$streams[0]}) } @streams),
   'all four clients saw the identical stream');
{
    my %by_text = map { my ($s, $id, $u, @t) = split / /;
                        ("@t" => $s) } @{$streams[0]};
    my $ok = 1;
    for my $x (@acks) {
        my ($who, $k) = $x->{id} =~ /^([ab])(\d+)$/;
        $ok = 0 unless ($by_text{"$who $k"} // -1) == $x->{seq};
    }
    ok($ok, 'each ack seq is the seq of its message');
}
is($r->cmd('GET', 'chat:{shared}:seq'), 2 * $N + 2, 'chat:{shared}:seq');
ok($_->quiet(timeout => 0.2), $_->welcome->{user} . ': no duplicates')
    for @all;

# ---- joined means subscribed: a message sent from A right after a client
# on B got "joined" reaches it (20 fresh rooms)
{
    my $missed = 0;
    for my $i (1 .. 20) {
        my $room = "race$i";
        $a1->join_room($room);
        my $j = $b1->call({ op => 'join', room => $room });
        my $x = $a1->call({ op => 'send', room => $room, text => "r$i" });
        my $m = $b1->wait_for(type => 'message', room => $room,
                              timeout => 3);
        unless ($j && $j->{type} eq 'joined' && $x && $x->{type} eq 'ack'
                && $m && $m->{text} eq "r$i")
        {
            $missed++;
            diag("$room: joined " . enc($j) . ', ack ' . enc($x)
                 . ', message ' . enc($m));
        }
        $a1->wait_for(type => 'message', room => $room, timeout => 3);
        $_->call({ op => 'leave', room => $room }) for $a1, $b1;
    }
    is($missed, 0, 'sent right after joined (other host): always delivered');
    ok(ChatTest::wait_until(sub {
           !grep { $r->numsub("chat:{race$_}") } 1 .. 20 }, 3),
       'race rooms left: unsubscribed');
}

# ---- instance C: members of another room only
my $C = $r->start_nginx(%cfg);
my $c1 = ChatTest::WS->chat($C->port, user => 'c1');
$c1->join_room('other');
is($r->numsub('chat:{shared}'), 2, 'C holds no member of shared: NUMSUB 2');
is($r->numsub('chat:{other}'), 1, 'NUMSUB chat:{other} == 1 (C)');
$b2->join_room('other');
is($r->numsub('chat:{other}'), 2, 'b2 joins other: NUMSUB 2 (B and C)');

$ack = $a2->call({ op => 'send', room => 'shared', text => 'not for C' });
ok($ack && $ack->{type} eq 'ack', 'send to shared');
$_->wait_for(type => 'message', room => 'shared') for @all;
ok($c1->quiet(timeout => 0.5), 'C: no event of shared');

$ack = $b2->call({ op => 'send', room => 'other', text => 'B to C' });
is($ack && $ack->{seq}, 1, 'other: ack seq 1');
my $m = $c1->wait_for(type => 'message', room => 'other');
ok($m && $m->{text} eq 'B to C', 'C got the message of other from B');
$m = $b2->wait_for(type => 'message', room => 'other');
ok($m && $m->{text} eq 'B to C', 'b2 got it too');
ok($_->quiet(timeout => 0.3), $_->welcome->{user} . ': nothing of other')
    for $a1, $a2, $b1;
ok($c1->quiet(timeout => 0.2), 'C: still nothing of shared');

$A->stop;
$B->stop;
$C->stop;
$r->stop;
done_testing;
