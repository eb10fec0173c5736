# chat_postgres, Redis restarted empty while a worker holds a room: after
# its subscriber reconnects, the worker finds the room's seq gone back and
# reads the room's position from Postgres again (and writes it back), so
# that a join with since answers the right seq and replays what followed,
# on the worker that held the room and on another one alike; live members
# go on without a gap.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
}
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC);
my $port = $n->port;

my $a = ChatTest::WS->chat($port, user => 'alice');
my $holder = $a->welcome->{worker};
$a->join_room('f');
$a->send_json({ op => 'send', room => 'f', text => "f $_", id => "f$_" })
    for 1 .. 50;
my @ev = $a->collect(n => 50, type => 'message', room => 'f');
is_deeply(seqs(@ev), [ 1 .. 50 ], '50 messages');
is($pg->wait_count(50, timeout => 20), 50, 'all 50 in Postgres');

# a client on each worker, for the joins after the restart
my (%on, @spare);
for my $i (1 .. 40) {
    my $ws = ChatTest::WS->chat($port, user => "c$i");
    my $w = $ws->welcome->{worker};
    if ($on{$w}) { push @spare, $ws; next }
    $on{$w} = $ws;
    last if keys %on == 2;
}
my ($other) = grep { $_ ne $holder } keys %on;
ok($on{$holder} && $other, 'a client on the worker holding the room, and '
   . 'one on the other');

my $log = length $n->error_log;
$r->restart;
my $deadline = time + 10;
sleep 0.2 while substr($n->error_log, $log) !~ /going on from seq 50/
                && time < $deadline;
my $since = substr($n->error_log, $log);
like($since, qr/seq went back from 50 to 0, Redis lost its data, its seq comes from Postgres/,
     'the holding worker finds the seq gone back');
like($since, qr/going on from seq 50, the last one in Postgres/,
     'and goes on from Postgres');
unlike($since, qr/clients will not get them/, 'nothing said to be lost');
is($r->cmd('GET', 'chat:{f}:seq'), 50, 'the seq key written back: 50');

for my $w ($holder, $other) {
    my $ws = $on{$w};
    my $label = $w eq $holder ? 'on the holding worker' : 'on the other one';
    my $j = $ws->call({ op => 'join', room => 'f', since => 45 });
    is($j && $j->{seq}, 50, "join since 45 $label: joined.seq 50")
        or diag(enc($j));
    my @m = $ws->collect(n => 5, type => 'message', room => 'f');
    is_deeply(seqs(@m), [ 46 .. 50 ], "... replays 46..50 (from Postgres)");
    is_deeply(\@m, [ @ev[45 .. 49] ], '... the same events');
}

my $ack = $a->call({ op => 'send', room => 'f', text => 'f 51', id => 'f51' });
is($ack && $ack->{seq}, 51, 'the next send: 51') or diag(enc($ack));
for my $ws ($a, values %on) {
    my @l = $ws->collect(n => 1, type => 'message', room => 'f');
    is_deeply(seqs(@l), [ 51 ], $ws->welcome->{user} . ': 51 live, no gap');
}

$_->close_socket for $a, values %on, @spare;
$n->stop;
done_testing;
