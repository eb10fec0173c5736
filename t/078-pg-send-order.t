# chat_postgres keeps a connection's send order, as the Redis-only store
# does (t/061): sends pipelined on one connection are stored in the order
# they were sent (growing seqs, acks in send order), in a new room (whose
# seq may first be looked up in Postgres) and in a room that already has
# messages; Postgres holds them in that order too.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use ChatTest::Pg;

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 10000r/s burst=10000;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
}
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(pool => 2, server => $LOC);
my $a = ChatTest::WS->chat($n->port, user => 'alice');

my $base = 0;
for my $case ([ 'new', 'a new room' ], [ 'new', 'the same room again' ]) {
    my ($room, $name) = @$case;
    $a->join_room($room) unless $base;
    $a->send_json({ op => 'send', room => $room, text => "t$_",
                    id => "$room-$base-$_" }) for 1 .. 100;
    my @acks = $a->collect(n => 100, type => 'ack');
    my @ev = $a->collect(n => 100, type => 'message', room => $room);
    is_deeply([ map { $_->{id} } @acks ],
              [ map { "$room-$base-$_" } 1 .. 100 ],
              "$name: 100 pipelined sends, acks in send order");
    is_deeply([ map { $_->{seq} } @acks ], [ $base + 1 .. $base + 100 ],
              "$name: ... with seqs " . ($base + 1) . '..' . ($base + 100));
    is_deeply([ map { $_->{text} } @ev ], [ map { "t$_" } 1 .. 100 ],
              "$name: the message events in send order");
    $base += 100;
}
is($pg->wait_count(200, timeout => 20), 200, '200 rows in Postgres');
is_deeply([ map { $_->{body} } @{$pg->messages} ],
          [ map { "t$_" } 1 .. 100, 1 .. 100 ],
          'Postgres: bodies in seq order are the send order');

$n->stop;
$r->stop;
$pg->stop;
done_testing;
