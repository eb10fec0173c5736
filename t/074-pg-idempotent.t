# chat_postgres: a send repeated with the same id, by the same user, in the
# same room, gets the original ack (same seq), stores nothing new (one row)
# and makes no second message event: resent after the ack, pipelined before
# it, over a new connection (maybe on the other worker), after the row was
# written.  Another user with the same id, or the same id in another room,
# is another message; sends without an id are never merged.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
EOF2

sub texts { [ map { "$_->{seq} $_->{user}: $_->{text}" } @_ ] }

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC);
my $port = $n->port;

my $a = ChatTest::WS->chat($port, user => 'alice');
my $b = ChatTest::WS->chat($port, user => 'bob');
my $watch = ChatTest::WS->chat($port, user => 'watcher');
$_->join_room('i') for $a, $b, $watch;
$_->join_room('j') for $a, $watch;

my %send1 = (op => 'send', room => 'i', text => 'hello', id => 'm1');

# ---- resent after the ack
my $ack1 = $a->call(\%send1);
is_deeply($ack1, { type => 'ack', id => 'm1', room => 'i', seq => 1 },
          'first send: ack seq 1');
my $ack2 = $a->call(\%send1);
is_deeply($ack2, $ack1, 'the same send again: the original ack');
my @ev = grep { $_->{type} eq 'message' } $watch->drain(timeout => 1);
is_deeply(texts(@ev), [ '1 alice: hello' ], 'members got one message event');
@ev = grep { $_->{type} eq 'message' } $b->drain(timeout => 0.2);
is(scalar @ev, 1, '... bob too');
@ev = grep { $_->{type} eq 'message' } $a->drain(timeout => 0.2);
is(scalar @ev, 1, '... and the sender');

# ---- pipelined: the second copy sent before the first ack
$a->send_json({ op => 'send', room => 'i', text => 'twice', id => 'p1' });
$a->send_json({ op => 'send', room => 'i', text => 'twice', id => 'p1' });
my @acks = $a->collect(n => 2, type => 'ack', id => 'p1');
is(scalar @acks, 2, 'pipelined duplicate: two acks');
is_deeply($acks[1], $acks[0], '... the same ack');
is($acks[0] && $acks[0]{seq}, 2, '... seq 2');
@ev = grep { $_->{type} eq 'message' } $watch->drain(timeout => 1);
is_deeply(texts(@ev), [ '2 alice: twice' ], '... one message event');

# ---- over a new connection (the client lost the first one)
{
    my %seen;
    my $a2;
    # prefer a connection on the other worker
    for (1 .. 10) {
        $a2 = ChatTest::WS->chat($port, user => 'alice');
        last if $a2->welcome->{worker} ne $a->welcome->{worker};
    }
    diag('the new connection is on the '
         . ($a2->welcome->{worker} eq $a->welcome->{worker} ? 'same'
                                                           : 'other')
         . ' worker');
    $a2->join_room('i');
    my $x = $a2->call(\%send1);
    is_deeply($x, $ack1, 'resent over a new connection: the original ack');
    $x = $a2->call({ op => 'send', room => 'i', text => 'twice',
                     id => 'p1' });
    is_deeply($x, $acks[0], '... for p1 too');
    ok($watch->quiet(timeout => 1), '... no message event');
    $a2->close_socket;
}

# ---- another user, another room: other messages
my $ackb = $b->call({ op => 'send', room => 'i', text => 'hello from bob',
                      id => 'm1' });
is($ackb && $ackb->{seq}, 3, 'bob with id m1: a new message, seq 3')
    or diag(enc($ackb));
my $ackj = $a->call({ op => 'send', room => 'j', text => 'hello j',
                      id => 'm1' });
is_deeply($ackj, { type => 'ack', id => 'm1', room => 'j', seq => 1 },
          'alice with id m1 in room j: a new message, j seq 1');
@ev = grep { $_->{type} eq 'message' } $watch->drain(timeout => 1);
is_deeply([ map { "$_->{room} " } @ev ], [ 'i ', 'j ' ],
          'two message events');
is_deeply(texts(@ev), [ '3 bob: hello from bob', '1 alice: hello j' ],
          '... bob\'s and the one in j');
is_deeply($a->call(\%send1), $ack1, 'alice m1 in i still gets its ack');

# ---- no id: never merged
$a->send_json({ op => 'send', room => 'i', text => 'no id' }) for 1, 2;
@ev = $watch->collect(n => 2, type => 'message', room => 'i');
is_deeply(texts(@ev), [ '4 alice: no id', '5 alice: no id' ],
          'two sends without an id: two messages');

# ---- Postgres: one row per message
is($pg->wait_count(6, timeout => 20), 6, '6 rows in Postgres');
my $rows = $pg->messages;
is_deeply([ map { "$_->{room} $_->{seq} $_->{user_id}: $_->{body}" } @$rows ],
          [ 'i 1 alice: hello', 'i 2 alice: twice', 'i 3 bob: hello from bob',
            'i 4 alice: no id', 'i 5 alice: no id', 'j 1 alice: hello j' ],
          'rows: hello and twice once each');

# ---- resent once the row is in Postgres
is_deeply($a->call(\%send1), $ack1, 'resent after the row was written: the '
          . 'original ack');
ok($watch->quiet(timeout => 1), '... no message event');
my $ack6 = $a->call({ op => 'send', room => 'i', text => 'last', id => 'm9' });
is($ack6 && $ack6->{seq}, 6, 'a new id: seq 6 (no seq was used up by the '
   . 'duplicates)');
is($pg->wait_count(7, timeout => 20), 7, '7 rows');
sleep 1;
is($pg->count, 7, '... no more');
is($pg->count(where => "body = 'hello'"), 1, "one row 'hello'");

$n->stop;
$r->stop;
$pg->stop;
done_testing;
