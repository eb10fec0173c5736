# The JSON protocol in in-memory mode: welcome, join, leave, send, fan-out,
# join since, heartbeat.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use Time::HiRes qw(time);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
EOF2
my $port = $n->port;
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

my $alice = ChatTest::WS->chat($port, user => 'alice');
my $bob   = ChatTest::WS->chat($port, user => 'bob');
my $carol = ChatTest::WS->chat($port, user => 'carol');

# welcome
is_deeply([ sort keys %{$alice->welcome} ], [ qw(conn type user worker) ],
          'welcome has exactly type, user, conn, worker');
is($alice->welcome->{user}, 'alice', 'welcome.user');

# join
my $r = $alice->call({ op => 'join', room => 'lobby', id => 'j1' });
is_deeply($r, { type => 'joined', room => 'lobby', seq => 0, id => 'j1' },
          'joined a new room: seq 0, id echoed');
like($alice->{last_raw}, qr/"seq":0[,}]/, 'seq is a JSON number');
$alice->send_json({ op => 'join', room => 'lobby2' });
$r = $alice->recv_json;
is_deeply($r, { type => 'joined', room => 'lobby2', seq => 0 },
          'joined without id: no id in the reply');

# send / ack / message
$bob->join_room('lobby');
my $before = time * 1000;
$alice->send_json({ op => 'send', room => 'lobby', text => 'hello', id => 'm1' });
my @am = $alice->collect(n => 2, timeout => 5,
                         match => sub { $_[0]{type} =~ /^(?:ack|message)$/ });
my ($ack) = grep { $_->{type} eq 'ack' } @am;
my ($msg) = grep { $_->{type} eq 'message' } @am;
is_deeply($ack, { type => 'ack', id => 'm1', room => 'lobby', seq => 1 },
          'ack with id, room, seq 1');
ok($msg, 'sender receives its own message');
is_deeply([ sort keys %$msg ], [ qw(msg_id room seq text ts type user) ],
          'message event fields');
is($msg->{room}, 'lobby', 'message.room');
is($msg->{seq}, 1, 'message.seq');
is($msg->{user}, 'alice', 'message.user is the sender');
is($msg->{text}, 'hello', 'message.text');
like($msg->{msg_id}, $UUID, 'message.msg_id is a UUID');
ok($msg->{ts} >= $before - 2000 && $msg->{ts} <= time * 1000 + 2000,
   'message.ts is now in ms');
like($ack->{seq} . '', qr/^\d+$/, 'ack.seq integer');
my $bm = $bob->wait_for(type => 'message');
is_deeply($bm, $msg, 'other member receives the same message');
ok($carol->quiet(timeout => 0.3), 'non-member receives nothing');

# seq grows by one per message, per room
my @seqs;
for my $i (2 .. 6) {
    my $a = $alice->call({ op => 'send', room => 'lobby', text => "m$i" });
    push @seqs, $a->{seq};
}
is_deeply(\@seqs, [ 2 .. 6 ], 'seq 2..6');
my @bmsg = $bob->collect(n => 5, type => 'message');
is_deeply([ map { $_->{seq} } @bmsg ], [ 2 .. 6 ], 'member got 2..6 in order');
is_deeply([ map { $_->{text} } @bmsg ], [ map { "m$_" } 2 .. 6 ],
          '... with the texts');
my %ids = map { $_->{msg_id} => 1 } $msg, @bmsg;
is(scalar keys %ids, 6, 'msg_id unique');
$alice->collect(n => 5, type => 'message');

$r = $alice->call({ op => 'send', room => 'lobby2', text => 'other room' });
is($r->{seq}, 1, 'another room has its own seq');
$alice->wait_for(type => 'message');

# joined reports the last seq
$r = $carol->call({ op => 'join', room => 'lobby' });
is($r->{seq}, 6, 'joined.seq is the current last seq');
ok($carol->quiet(timeout => 0.3), 'join without since replays nothing');

# three members, three senders, everything in seq order everywhere
{
    my @m = ($alice, $bob, $carol);
    my @names = ('alice', 'bob', 'carol');
    for my $round (1 .. 10) {
        for my $i (0 .. 2) {
            $m[$i]->send_json({ op => 'send', room => 'lobby',
                                text => "$names[$i] $round",
                                id => "$names[$i]-$round" });
        }
    }
    my %acks;
    for my $i (0 .. 2) {
        my @a = $m[$i]->collect(n => 10, type => 'ack');
        $acks{$names[$i]} = [ map { $_->{seq} } @a ];
        is_deeply([ map { $_->{id} } @a ], [ map { "$names[$i]-$_" } 1 .. 10 ],
                  "$names[$i]: acks in request order");
    }
    for my $i (0 .. 2) {
        my @got = $m[$i]->collect(n => 30, type => 'message');
        is_deeply([ map { $_->{seq} } @got ], [ 7 .. 36 ],
                  "$names[$i] got 30 messages in seq order");
        my %by = map { $_->{seq} => $_ } @got;
        my $ok = 1;
        for my $j (0 .. 2) {
            my $k = 0;
            for my $s (@{$acks{$names[$j]} || []}) {
                $k++;
                $ok = 0 unless $by{$s} && $by{$s}{user} eq $names[$j]
                               && $by{$s}{text} eq "$names[$j] $k";
            }
        }
        ok($ok, "$names[$i]: messages match the acks of every sender");
    }
    my @all = sort { $a <=> $b } map { @$_ } values %acks;
    is_deeply(\@all, [ 7 .. 36 ], 'acks cover 7..36 exactly once');
    is_deeply($acks{alice}, [ sort { $a <=> $b } @{$acks{alice}} ],
              "a sender's acks grow");
}

# join again: joined again, still one membership
$r = $bob->call({ op => 'join', room => 'lobby' });
is($r->{type}, 'joined', 'joining a joined room again: joined');
is($r->{seq}, 36, '... with the current seq');
$alice->call({ op => 'send', room => 'lobby', text => 'once' });
my @once = $bob->drain(timeout => 0.5);
is(scalar(grep { $_->{type} eq 'message' } @once), 1,
   'member of a room joined twice gets one copy');

# leave
$r = $bob->call({ op => 'leave', room => 'lobby', id => 'l1' });
is_deeply($r, { type => 'left', room => 'lobby', id => 'l1' }, 'left');
$alice->call({ op => 'send', room => 'lobby', text => 'after leave' });
ok($bob->quiet(timeout => 0.3), 'no messages after leaving');
$r = $bob->call({ op => 'send', room => 'lobby', text => 'x', id => 'nj' });
is($r->{type}, 'error', 'send after leave fails');
is($r->{code}, 'not_joined', '... not_joined');
$r = $bob->call({ op => 'leave', room => 'lobby' });
is($r->{code}, 'not_joined', 'leave twice: not_joined');
$alice->drain(timeout => 0.2);
$carol->drain(timeout => 0.2);

# join since
$r = $bob->call({ op => 'join', room => 'lobby', since => 30 });
is($r->{type}, 'joined', 'join since: joined first');
is($r->{seq}, 38, 'join since: joined.seq');
ok(!$r->{truncated}, 'join since within the cache: not truncated');
my @replay = $bob->collect(n => 8, type => 'message');
is_deeply([ map { $_->{seq} } @replay ], [ 31 .. 38 ],
          'since 30: messages 31..38 in order');
is($replay[-1]{text}, 'after leave', 'replayed text');
ok($bob->quiet(timeout => 0.3), 'nothing more');

# live messages follow the replay with no gap
$alice->call({ op => 'send', room => 'lobby', text => 'live' });
$r = $bob->wait_for(type => 'message');
is($r->{seq}, 39, 'live message right after the replay');

my $dave = ChatTest::WS->chat($port, user => 'dave');
$r = $dave->call({ op => 'join', room => 'lobby', since => 0 });
my @all = $dave->collect(n => 39, type => 'message');
is_deeply([ map { $_->{seq} } @all ], [ 1 .. 39 ], 'since 0: everything');
is_deeply($all[0], $msg, 'replayed message identical to the live one');
$r = $dave->call({ op => 'join', room => 'lobby', since => 39 });
ok($dave->quiet(timeout => 0.3), 'since = last: nothing');
$r = $dave->call({ op => 'join', room => 'lobby', since => 1000 });
is($r->{type}, 'joined', 'since beyond the last seq: joined');
ok($dave->quiet(timeout => 0.3), 'since beyond the last seq: nothing');
$r = $dave->call({ op => 'join', room => 'fresh', since => 5 });
is_deeply([ @$r{qw(type room seq)} ], [ 'joined', 'fresh', 0 ],
          'since on an empty room');

# joined right before others send: first live message is seq+1
{
    my $eve = ChatTest::WS->chat($port, user => 'eve');
    for my $i (1 .. 20) {
        $alice->send_json({ op => 'send', room => 'lobby', text => "burst $i" });
    }
    my $j = $eve->call({ op => 'join', room => 'lobby', since => 39 });
    my $last = $j->{seq};
    my @got = $eve->collect(n => 20, type => 'message', timeout => 5);
    my @s = map { $_->{seq} } @got;
    is_deeply(\@s, [ 40 .. 59 ],
              'join since during a burst: no gap, no duplicate');
    $alice->drain(timeout => 0.3);
}

# heartbeat
$r = $alice->call({ op => 'heartbeat', id => 'hb' });
is_deeply($r, { type => 'heartbeat', id => 'hb' }, 'heartbeat with id');
$alice->send_json({ op => 'heartbeat' });
$r = $alice->wait_for(type => 'heartbeat');
is_deeply($r, { type => 'heartbeat' }, 'heartbeat');

# room names
for my $room ('A', 'Room_1.a:b@c-d', 'x' x 128, '0', '...', '@:-_') {
    $r = $alice->call({ op => 'join', room => $room });
    is($r->{type}, 'joined', 'valid room name ' . substr($room, 0, 20)
                             . ' (' . length($room) . ')');
    is($r->{room}, $room, '... echoed');
}

# a member that goes away is dropped from the room
$carol->close_socket;
$r = $alice->call({ op => 'send', room => 'lobby', text => 'carol gone' });
is($r->{type}, 'ack', 'send after a member disconnected');

$alice->close_socket;
$bob->close_socket;
$dave->close_socket;
$n->stop;
done_testing;
