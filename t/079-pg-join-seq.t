# chat_postgres: a join that finds no seq key in Redis asks Postgres for the
# room's last seq, but only the room's first join on a worker does: the
# worker then holds the room and has seen every later message.  Without
# this, every join of a room nobody wrote to yet went to Postgres, and a
# crowd joining overflowed the query queue into `unavailable`.  What
# Postgres said is written back to the seq key, for the other workers,
# when the room has stored messages; a join of a room without any writes
# nothing that would outlive the room's use.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $LOC = 'location = /chat { chat; chat_user $arg_user; }';

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 1, server => $LOC,
    pg => { args => ['-c', 'log_statement=all'] });
my $port = $n->port;

sub asked {
    my ($room) = @_;
    return scalar grep { /coalesce\(max\(seq\)/ } split /\n/, $pg->log;
}

my $before = asked();
my @ws;
for my $i (1 .. 30) {
    my $w = ChatTest::WS->chat($port, user => "u$i");
    my $j = $w->join_room('quiet');
    is($j->{seq}, 0, "join $i: seq 0") if $i == 1 || $i == 30;
    push @ws, $w;
}
sleep 0.3;
my $q = asked() - $before;
ok($q >= 1 && $q <= 2, "30 joins of an unwritten room: $q Postgres reads");

# the seq the worker learned since is what the next joins get
my $ack = $ws[0]->call({ op => 'send', room => 'quiet', text => 'one' });
is($ack && $ack->{seq}, 1, 'first message: seq 1');
$r->cmd('DEL', 'chat:{quiet}:seq');
my $late = ChatTest::WS->chat($port, user => 'late');
is($late->join_room('quiet')->{seq}, 1,
   'seq key gone: the joined seq comes from what the worker saw');

# a room's state goes with its last member: the next first join asks again
$_->close_socket for @ws, $late;
sleep 0.5;
$before = asked();
my $again = ChatTest::WS->chat($port, user => 'again');
is($again->join_room('quiet')->{seq}, 1, 'rejoin after everyone left: 1');
is(asked() - $before, 1, 'and that first join read Postgres once');
$again->close_socket;

# a room without stored messages: its joins write nothing to Redis, so
# each instance's first join asks Postgres once
{
    my $m = $pg->start_nginx($r, pool => 2, workers => 1, server => $LOC);
    $before = asked();
    my $x = ChatTest::WS->chat($port, user => 'x');
    is($x->join_room('other')->{seq}, 0, 'a new room on one instance');
    sleep 0.2;
    is(($r->cmd('GET', 'chat:{other}:seq'))[0] // 'nil', 'nil',
       'no seq key for a room without stored messages');
    my $y = ChatTest::WS->chat($m->port, user => 'y');
    is($y->join_room('other')->{seq}, 0, 'joined on the other instance');
    is(asked() - $before, 2, 'one Postgres read per instance');
    my $ack = $y->call({ op => 'send', room => 'other', text => 'hi' });
    is($ack && $ack->{seq}, 1, 'and the first message gets seq 1');
    $_->close_socket for $x, $y;

    # a room with stored messages: what Postgres said goes back into
    # Redis, and another instance does not ask
    ok($pg->wait_count(1, room => 'other', timeout => 10),
       'the message is in Postgres');
    $r->cmd('DEL', 'chat:{other}:seq');
    sleep 0.5;
    $before = asked();
    $x = ChatTest::WS->chat($port, user => 'x');
    is($x->join_room('other')->{seq}, 1, 'seq key gone: 1 from Postgres');
    sleep 0.2;
    is(($r->cmd('GET', 'chat:{other}:seq'))[0] // 'nil', '1',
       'its seq key set from Postgres (1)');
    $y = ChatTest::WS->chat($m->port, user => 'y');
    is($y->join_room('other')->{seq}, 1, 'joined on the other instance');
    is(asked() - $before, 1, 'one Postgres read for both instances');
    $_->close_socket for $x, $y;
    $m->stop;
}

$n->stop;
done_testing;
