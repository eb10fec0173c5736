# chat_redis with 4 workers (reuseport spreads the connections): 40 clients
# in one room each send 20 messages concurrently; every client receives all
# 800, seq 1..800 in order, no gap, no duplicate; the acks cover 1..800
# once.  NUMSUB counts the workers holding members.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $CLIENTS = 40;
my $PER = 20;
my $TOTAL = $CLIENTS * $PER;
my $ROOM = 'crowd';
my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; }
location = /status { chat_status; }
EOF2

ChatTest::Redis::need_chat_redis(server => $LOC);

my $r = ChatTest::Redis->start;
my $n = $r->start_nginx(workers => 4, listen_opts => 'reuseport',
                        server => $LOC);
my $port = $n->port;
is(scalar(my @w = $n->worker_pids), 4, '4 workers');

my (@c, %per_worker);
for my $i (1 .. $CLIENTS) {
    my $ws = ChatTest::WS->chat($port, user => "u$i");
    $ws->{i} = $i;
    push @c, $ws;
    $per_worker{$ws->welcome->{worker}}++;
}
my $nw = keys %per_worker;
diag("clients per worker: "
     . join(', ', map { "$_=$per_worker{$_}" } sort keys %per_worker));
ok($nw >= 2, "the clients landed on $nw distinct workers (>= 2)");

for my $ws (@c) {
    $ws->join_room($ROOM);
}
is($r->numsub("chat:{$ROOM}"), $nw,
   "NUMSUB chat:{$ROOM} == $nw, the workers holding members");

# a room with one member: only its worker subscribes
{
    $c[0]->join_room('solo');
    is($r->numsub('chat:{solo}'), 1, 'one member: NUMSUB 1 (of 4 workers)');
    $c[0]->call({ op => 'leave', room => 'solo' });
    is($r->wait_numsub('chat:{solo}', 0, 3), 0, '... 0 once it left');
}

# ---- 20 rounds: every client sends one message per round
my %st = map { $_->{i} => { msgs => [], acks => [], errs => [], other => [] } }
         @c;

sub take {
    for my $ws (@c) {
        my $s = $st{$ws->{i}};
        for my $m ($ws->drain(timeout => 0)) {
            my $t = $m->{type} // '';
            if ($t eq 'message' && ($m->{room} // '') eq $ROOM) {
                push @{$s->{msgs}}, $m;
            } elsif ($t eq 'ack') {
                push @{$s->{acks}}, $m;
            } elsif ($t eq 'error') {
                push @{$s->{errs}}, $m;
            } else {
                push @{$s->{other}}, $m;
            }
        }
    }
}

sub complete {
    for my $s (values %st) {
        return 0 if @{$s->{msgs}} < $TOTAL
                 || @{$s->{acks}} + @{$s->{errs}} < $PER;
    }
    return 1;
}

my $t0 = time;
for my $round (1 .. $PER) {
    for my $ws (@c) {
        my $i = $ws->{i};
        $ws->send_json({ op => 'send', room => $ROOM, text => "u$i m$round",
                         id => "u$i-$round" })
            or diag("client $i: write failed");
    }
    ChatTest::WS::pump(\@c, timeout => 0.01);
    take();
}
my $deadline = time + 60;
while (!complete() && time < $deadline) {
    ChatTest::WS::pump(\@c, timeout => 0.2);
    take();
}
diag(sprintf('%d messages to %d clients in %.1f s', $TOTAL, $CLIENTS,
             time - $t0));
# anything late (duplicates) shows up here
sleep 0.3;
ChatTest::WS::pump(\@c, timeout => 0.2);
take();

# ---- acks
my (@all_acks, @errs);
for my $ws (@c) {
    my $s = $st{$ws->{i}};
    push @all_acks, @{$s->{acks}};
    push @errs, @{$s->{errs}};
}
is(scalar @errs, 0, 'no error replies')
    or diag(join "\n", map { ChatTest::json()->encode($_) }
                       @errs[0 .. ($#errs > 9 ? 9 : $#errs)]);
is(scalar @all_acks, $TOTAL, "$TOTAL acks");
my %ack_seq;
$ack_seq{$_->{seq}}++ for @all_acks;
is_deeply([ sort { $a <=> $b } keys %ack_seq ], [ 1 .. $TOTAL ],
          "ack seqs cover 1..$TOTAL");
ok(!grep({ $_ > 1 } values %ack_seq), 'ack seqs are unique');
is($r->cmd('GET', "chat:{$ROOM}:seq"), $TOTAL, "chat:{$ROOM}:seq == $TOTAL");
{
    my $bad = 0;
    for my $ws (@c) {
        my $i = $ws->{i};
        my @ids = map { $_->{id} } @{$st{$i}{acks}};
        my @s = map { $_->{seq} } @{$st{$i}{acks}};
        $bad++ unless "@ids" eq join ' ', map { "u$i-$_" } 1 .. $PER;
        $bad++ if grep { $s[$_] <= $s[$_ - 1] } 1 .. $#s;
    }
    is($bad, 0, "each client's acks come in send order with growing seqs");
}

# ---- every client saw the same 800 messages, in order, exactly once
my $ref = $st{$c[0]{i}}{msgs};
my %by_seq = map { $_->{seq} => $_ } @$ref;
my ($bad_order, $bad_same) = (0, 0);
for my $ws (@c) {
    my $i = $ws->{i};
    my $m = $st{$i}{msgs};
    my @s = map { $_->{seq} } @$m;
    my $want = join ',', 1 .. $TOTAL;
    if (join(',', @s) ne $want) {
        $bad_order++;
        my %seen;
        my @dup = grep { $seen{$_}++ } @s;
        my @missing = grep { !$seen{$_} } 1 .. $TOTAL;
        my ($first) = grep { $s[$_] != $_ + 1 } 0 .. $#s;
        diag(sprintf('client u%d (worker %s): %d messages, %d duplicates, '
                     . '%d missing (first: %s), first out of place at #%s',
                     $i, $ws->welcome->{worker}, scalar @s, scalar @dup,
                     scalar @missing, $missing[0] // '-',
                     $first // '-'));
    }
    for my $k (0 .. $#$m) {
        my $o = $by_seq{$m->[$k]{seq}};
        if (!$o || $o->{msg_id} ne $m->[$k]{msg_id}
            || $o->{text} ne $m->[$k]{text})
        {
            $bad_same++;
            last;
        }
    }
}
is($bad_order, 0, "every client got seq 1..$TOTAL in order, no gap, no dup");
is($bad_same, 0, 'every client got the same message for each seq');

# each ack's seq is the message with that client's text
{
    my $bad = 0;
    for my $ak (@all_acks) {
        my ($u, $k) = $ak->{id} =~ /^(u\d+)-(\d+)$/;
        my $m = $by_seq{$ak->{seq}};
        $bad++ unless $m && $m->{text} eq "$u m$k" && $m->{user} eq $u;
    }
    is($bad, 0, 'ack seq S names the message event with seq S');
}
{
    my $bad = 0;
    for my $ws (@c) {
        my $u = "u$ws->{i}";
        my @mine = map { $_->{text} } grep { $_->{user} eq $u } @$ref;
        $bad++ unless "@mine" eq join ' ', map { "$u m$_" } 1 .. $PER;
    }
    is($bad, 0, "each sender's messages are in the order it sent them");
}
my $other = 0;
$other += @{$st{$_}{other}} for keys %st;
is($other, 0, 'no other events');

# ---- everyone leaves: no subscription left
$_->close_socket for @c;
is($r->wait_numsub("chat:{$ROOM}", 0, 5), 0,
   'all clients gone: NUMSUB 0');
$n->stop;
$r->stop;
done_testing;
