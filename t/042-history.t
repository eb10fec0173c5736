# history and join since against the in-memory ring (chat_history_cache).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(hseqs);

my $n = ChatTest->start(
    http => 'chat_history_cache 150;',
    server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; chat_rate 10000r/s burst=10000; }
EOF2
my $port = $n->port;

my $a = ChatTest::WS->chat($port, user => 'hist');
my $b = ChatTest::WS->chat($port, user => 'reader');
$a->join_room('small');
$b->join_room('small');

# empty room
my $h = $a->history('small', id => 'h0');
is_deeply($h, { type => 'history', room => 'small', messages => [],
                id => 'h0' }, 'history of an empty room');

# 10 messages
my @live;
for my $i (1 .. 10) {
    $a->send_json({ op => 'send', room => 'small', text => "text $i",
                    id => "s$i" });
}
@live = $b->collect(n => 10, type => 'message');
is(scalar @live, 10, '10 messages sent');
$a->drain(timeout => 0.3);

$h = $b->history('small');
is($h->{type}, 'history', 'history reply');
is($h->{room}, 'small', 'history.room');
is_deeply($h->{messages}, \@live,
          'history messages are the message events, ascending');
$h = $b->history('small', limit => 3);
is_deeply(hseqs($h), [ 8, 9, 10 ], 'limit 3: the latest 3');
$h = $b->history('small', before => 5);
is_deeply(hseqs($h), [ 1 .. 4 ], 'before 5');
$h = $b->history('small', before => 5, limit => 2);
is_deeply(hseqs($h), [ 3, 4 ], 'before 5 limit 2');
$h = $b->history('small', before => 1);
is_deeply(hseqs($h), [], 'before 1: nothing');
$h = $b->history('small', before => 0);
is_deeply(hseqs($h), [], 'before 0: nothing');
$h = $b->history('small', before => 11);
is_deeply(hseqs($h), [ 1 .. 10 ], 'before last+1: everything');
$h = $b->history('small', before => 1000);
is_deeply(hseqs($h), [ 1 .. 10 ], 'before beyond the last seq');
$h = $b->history('small', limit => 1);
is_deeply(hseqs($h), [ 10 ], 'limit 1');
$h = $b->history('small', limit => 100);
is_deeply(hseqs($h), [ 1 .. 10 ], 'limit larger than the room');
$h = $b->history('small', limit => 1000);
is_deeply(hseqs($h), [ 1 .. 10 ], 'limit 1000 on a small room');
ok($b->quiet(timeout => 0.2), 'history sends no message events');

# a big room: 160 messages, the ring keeps the last 150
$a->join_room('big');
my $c = ChatTest::WS->chat($port, user => 'bigreader');
for my $batch (0 .. 7) {
    for my $i (1 .. 20) {
        my $k = $batch * 20 + $i;
        $a->send_json({ op => 'send', room => 'big', text => "big $k" });
    }
    $a->collect(n => 20, type => 'ack');
}
$a->drain(timeout => 0.3);

$h = $a->history('big');
is_deeply(hseqs($h), [ 111 .. 160 ], 'default limit 50');
is($h->{messages}[0]{text}, 'big 111', 'history text');
$h = $a->history('big', limit => 100);
is_deeply(hseqs($h), [ 61 .. 160 ], 'limit 100');
$h = $a->history('big', limit => 1000);
is_deeply(hseqs($h), [ 61 .. 160 ], 'limit 1000 clamped to 100');
$h = $a->history('big', limit => 101);
is(scalar @{$h->{messages} || []}, 100, 'limit 101 clamped to 100');
$h = $a->history('big', before => 20);
is_deeply(hseqs($h), [ 11 .. 19 ], 'before 20: only what the ring holds');
$h = $a->history('big', before => 11);
is_deeply(hseqs($h), [], 'before the ring: nothing');
$h = $a->history('big', before => 100, limit => 5);
is_deeply(hseqs($h), [ 95 .. 99 ], 'before 100 limit 5');
$h = $a->history('big', before => 100, limit => 1000);
is_deeply(hseqs($h), [ 11 .. 99 ], 'before 100 limit 1000');

# join since with the ring
my $r = $c->call({ op => 'join', room => 'big', since => 10 });
is($r->{seq}, 160, 'joined.seq 160');
ok(!$r->{truncated}, 'since 10: all of 11.. is in the ring, not truncated');
my @m = $c->collect(n => 150, type => 'message');
is_deeply([ map { $_->{seq} } @m ], [ 11 .. 160 ], 'since 10: 11..160');
ok($c->quiet(timeout => 0.3), 'nothing more');

$r = $c->call({ op => 'join', room => 'big', since => 9 });
is($r->{truncated}, JSON::PP::true, 'since 9: truncated true');
like($c->{last_raw}, qr/"truncated":true/, 'truncated is a JSON boolean');
@m = $c->collect(n => 150, type => 'message');
is_deeply([ map { $_->{seq} } @m ], [ 11 .. 160 ], 'since 9: 11..160');

$r = $c->call({ op => 'join', room => 'big', since => 0 });
is($r->{truncated}, JSON::PP::true, 'since 0 on a big room: truncated');
@m = $c->collect(n => 150, type => 'message');
is(scalar @m, 150, 'since 0: the 150 messages of the ring');

$r = $c->call({ op => 'join', room => 'big', since => 155 });
ok(!$r->{truncated}, 'since 155: not truncated');
@m = $c->collect(n => 5, type => 'message');
is_deeply([ map { $_->{seq} } @m ], [ 156 .. 160 ], 'since 155: 156..160');
ok($c->quiet(timeout => 0.3), 'nothing more');

$r = $c->call({ op => 'join', room => 'big' });
ok(!$r->{truncated}, 'join without since: not truncated');

# the ring keeps moving
for my $i (161 .. 170) {
    $a->send_json({ op => 'send', room => 'big', text => "big $i" });
}
$a->collect(n => 10, type => 'ack');
$c->collect(n => 10, type => 'message');
$h = $a->history('big', limit => 100, before => 30);
is_deeply(hseqs($h), [ 21 .. 29 ], 'ring moved: oldest is 21');

# history requires membership
$r = $b->call({ op => 'history', room => 'big' });
is($r->{code}, 'not_joined', 'history of a room not joined: not_joined');
$b->call({ op => 'leave', room => 'small' });
$r = $b->call({ op => 'history', room => 'small' });
is($r->{code}, 'not_joined', 'history after leave: not_joined');

$n->stop;
done_testing;
