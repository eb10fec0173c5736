# chat_postgres after Redis lost its data (FLUSHALL), the messages being in
# Postgres: the room's last seq, history and join since come from Postgres,
# so that a client that rejoins with since misses nothing (PROTOCOL.md,
# "join": joined carries the room's current last seq; since replays every
# stored message after N, no gap).  Then a new message (seq re-seeded, 51)
# and the reads mixing Postgres and the new cache.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs hseqs);
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
    pool => 2, workers => 2, cache => 20, listen_opts => 'reuseport',
    server => $LOC);
my $port = $n->port;

my $a = ChatTest::WS->chat($port, user => 'alice');
$a->join_room('f');
for my $k (1 .. 50) {
    $a->send_json({ op => 'send', room => 'f', text => "f $k", id => "f$k" });
}
my @ev = $a->collect(n => 50, type => 'message', room => 'f');
is_deeply(seqs(@ev), [ 1 .. 50 ], '50 messages');
$a->drain(timeout => 0.2);
is($pg->wait_count(50, timeout => 20), 50, '50 rows in Postgres');
my %ev = map { $_->{seq} => $_ } @ev;

is($r->cmd('FLUSHALL'), 'OK', 'FLUSHALL');

my $b = ChatTest::WS->chat($port, user => 'bob');
my $j = $b->call({ op => 'join', room => 'f' });
is($j && $j->{seq}, 50, 'join: joined.seq 50, the last seq in Postgres')
    or diag(enc($j));
my $h = $b->call({ op => 'history', room => 'f', limit => 5 });
is_deeply(hseqs($h), [ 46 .. 50 ], 'history: the latest, 46..50')
    or diag(enc($h));
is_deeply($h && $h->{messages}, [ @ev{46 .. 50} ],
          '... the same objects as the events');
$h = $b->call({ op => 'history', room => 'f', before => 30, limit => 5 });
is_deeply(hseqs($h), [ 25 .. 29 ], 'history before 30: 25..29');

my @c;
for my $since (45, 0) {
    my $c = ChatTest::WS->chat($port, user => "since$since");
    $j = $c->call({ op => 'join', room => 'f', since => $since });
    is($j && $j->{seq}, 50, "join since $since: joined.seq 50")
        or diag(enc($j));
    my @m = $c->collect(n => 50 - $since, type => 'message', room => 'f');
    is_deeply(seqs(@m), [ $since + 1 .. 50 ],
              '... replays ' . ($since + 1) . '..50');
    is_deeply(\@m, [ @ev{$since + 1 .. 50} ], '... the same objects');
    ok($c->quiet(timeout => 0.3), '... nothing more');
    push @c, $c;
}

my $ack = $a->call({ op => 'send', room => 'f', text => 'f 51', id => 'f51' });
is($ack && $ack->{seq}, 51, 'the next send: 51') or diag(enc($ack));
for my $ws ($a, $b, @c) {
    my @l = $ws->collect(n => 1, type => 'message', room => 'f');
    is_deeply(seqs(@l), [ 51 ], $ws->welcome->{user} . ': 51 live, no gap');
}

# Postgres (1..50) and the new cache (51) together
{
    my $d = ChatTest::WS->chat($port, user => 'dave');
    $j = $d->call({ op => 'join', room => 'f', since => 45 });
    is($j && $j->{seq}, 51, 'join since 45: joined.seq 51');
    my @m = $d->collect(n => 6, type => 'message', room => 'f');
    is_deeply(seqs(@m), [ 46 .. 51 ], '... replays 46..51');
    ok($d->quiet(timeout => 0.3), '... nothing more');
    $h = $d->call({ op => 'history', room => 'f', limit => 5 });
    is_deeply(hseqs($h), [ 47 .. 51 ], 'history: 47..51');
}
is($pg->wait_count(51, timeout => 20), 51, '51 rows in Postgres');

$n->stop;
$r->stop;
$pg->stop;
done_testing;
