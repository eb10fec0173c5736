# A send pipelined behind its join (in one write) waits for the join: with
# Redis, numbered before the worker had the room's channel, it would never
# reach the sender, whose "joined" would already count it.  Every member,
# the sender included, gets every message it was acked for after its
# "joined".  Also: join, leave, join, send; a send behind a join that
# fails; and a leave while the join is under way.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::WS;

my $JSON = ChatTest::json();
my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
EOF2

ChatTest::Redis::need_module(what => 'chat_redis', server => $LOC,
                             http => 'chat_redis redis://127.0.0.1:1/0;');

my $r = ChatTest::Redis->start;
my $n = $r->start_nginx(server => $LOC);
my $port = $n->port;

sub frames { join '', map { ChatTest::WS::frame(payload => $JSON->encode($_)) }
                          @_ }

# the sender's own message after its joined, with the acked seq
sub own_message {
    my ($ws, $ack, $text) = @_;
    my $m = $ws->wait_for(type => 'message', timeout => 3,
                          match => sub { $_[0]{text} eq $text });
    return $m && $ack && $ack->{type} eq 'ack' && $m->{seq} == $ack->{seq};
}

my ($ok, $order) = (0, 0);
for my $i (1 .. 30) {
    my $ws = ChatTest::WS->chat($port, user => "p$i");
    $ws->send_raw(frames({ op => 'join', room => "pipe$i", id => 'j' },
                         { op => 'send', room => "pipe$i", text => "t$i",
                           id => 's' }));
    my $j = $ws->wait_for(id => 'j', timeout => 5);
    my $a = $ws->wait_for(id => 's', timeout => 5);
    $ok++ if $j && $j->{type} eq 'joined' && $j->{seq} == 0
             && own_message($ws, $a, "t$i");
    $ws->close_socket;
}
is($ok, 30, 'join and send in one write: the sender got its message, '
   . '30 of 30');

$ok = 0;
for my $i (1 .. 50) {
    my $ws = ChatTest::WS->chat($port, user => "q$i");
    my $room = "again$i";
    $ws->send_raw(frames({ op => 'join', room => $room, id => 'j1' },
                         { op => 'leave', room => $room, id => 'l' },
                         { op => 'join', room => $room, id => 'j2' },
                         { op => 'send', room => $room, text => "u$i",
                           id => 's' }));
    my $a = $ws->wait_for(id => 's', timeout => 5);
    $ok++ if own_message($ws, $a, "u$i");
    $ws->close_socket;
}
is($ok, 50, 'join, leave, join, send in one write: 50 of 50');

# several sends behind one join, and another member already there
{
    my $b = ChatTest::WS->chat($port, user => 'bob');
    $b->join_room('many');
    my $ws = ChatTest::WS->chat($port, user => 'alice');
    $ws->send_raw(frames({ op => 'join', room => 'many', id => 'j' },
                         map { { op => 'send', room => 'many',
                                 text => "m$_", id => "s$_" } } 1 .. 5));
    my @acks = map { $ws->wait_for(id => "s$_", timeout => 5) } 1 .. 5;
    is_deeply([ map { $_ && $_->{seq} } @acks ], [ 1 .. 5 ],
              'five sends behind a join: acked in order');
    my @mine = $ws->collect(n => 5, type => 'message', room => 'many');
    is_deeply([ map { $_->{seq} } @mine ], [ 1 .. 5 ],
              'and delivered to the sender, in order');
    my @his = $b->collect(n => 5, type => 'message', room => 'many');
    is_deeply([ map { $_->{seq} } @his ], [ 1 .. 5 ], 'and to bob');
    $_->close_socket for $ws, $b;
}

# a leave while the join is under way: the send behind it is refused
{
    my $ws = ChatTest::WS->chat($port, user => 'carol');
    $ws->send_raw(frames({ op => 'join', room => 'gone', id => 'j' },
                         { op => 'send', room => 'gone', text => 'x',
                           id => 's' },
                         { op => 'leave', room => 'gone', id => 'l' }));
    my $a = $ws->wait_for(id => 's', timeout => 5);
    my $l = $ws->wait_for(id => 'l', timeout => 5);
    is($l && $l->{type}, 'left', 'left while joining');
    ok($a && ($a->{type} eq 'ack'
              || ($a->{type} eq 'error' && $a->{code} eq 'not_joined')),
       'the send behind it: acked before the leave, or not_joined')
        or diag(enc($a));
    $ws->close_socket;
}

$n->stop;
done_testing;
