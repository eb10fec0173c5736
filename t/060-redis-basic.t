# chat_redis: the Redis layout (keys, channel, prefix), seq from INCR,
# the recent sorted set trimmed to chat_history_cache, history and join
# since read from Redis (and survive an nginx restart), the per-worker
# SUBSCRIBE refcount, unix socket and password URLs.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs hseqs);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $JSON = ChatTest::json();
my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
location = /status { chat_status; }
EOF2

ChatTest::Redis::need_chat_redis(server => $LOC);

# sends texts to room (one write each), returns the acks in order
sub send_all {
    my ($ws, $room, @texts) = @_;
    my $tag = 's' . int(rand 1e9);
    my $i = 0;
    for my $t (@texts) {
        $ws->send_json({ op => 'send', room => $room, text => $t,
                         id => "$tag-" . $i++ });
    }
    my @acks;
    for my $k (0 .. $#texts) {
        my $a = $ws->wait_for(id => "$tag-$k", timeout => 5);
        push @acks, $a;
    }
    return @acks;
}

sub ack_seqs {
    return [ map { $_ && $_->{type} eq 'ack' ? $_->{seq}
                   : 'not an ack: ' . enc($_) } @_ ];
}

my $r = ChatTest::Redis->start;
my $watch = $r->psubscribe('*');
my $n = $r->start_nginx(cache => 5,
                        server => $LOC);
my $port = $n->port;

# ---- keys and channel with the default prefix
my $a = ChatTest::WS->chat($port, user => 'alice');
ok(defined $a->welcome->{worker} && length $a->welcome->{worker},
   'welcome.worker: ' . ($a->welcome->{worker} // 'missing'));
is($r->numsub('chat:{room1}'), 0, 'nobody subscribed before the first join');
my $j = $a->call({ op => 'join', room => 'room1', id => 'j1' });
is_deeply($j, { type => 'joined', room => 'room1', seq => 0, id => 'j1' },
          'joined a new room: seq 0');
is($r->numsub('chat:{room1}'), 1,
   'SUBSCRIBE chat:{room1} confirmed when joined arrives');

my @acks = send_all($a, 'room1', 'one', 'two', 'three');
is_deeply(ack_seqs(@acks), [ 1, 2, 3 ], 'acks: seq 1, 2, 3');
my @msgs = $a->collect(n => 3, type => 'message');
is_deeply(seqs(@msgs), [ 1, 2, 3 ], 'sender got its messages 1..3');
is($r->cmd('GET', 'chat:{room1}:seq'), 3, 'chat:{room1}:seq == last ack');
is($r->cli('--raw', 'GET', 'chat:{room1}:seq'), "3\n", '(redis-cli agrees)');
is($r->cmd('TYPE', 'chat:{room1}:seq'), 'string', 'seq key is a string');
is($r->cmd('TYPE', 'chat:{room1}:recent'), 'zset',
   'recent key is a sorted set');
{
    my $z = $r->cmd('ZRANGE', 'chat:{room1}:recent', 0, -1, 'WITHSCORES');
    my (@members, @scores);
    while (my ($m, $s) = splice @$z, 0, 2) {
        push @members, eval { $JSON->decode($m) } // { raw => $m };
        push @scores, $s;
    }
    is_deeply(\@scores, [ 1, 2, 3 ], 'recent: scores are the seqs');
    is_deeply(\@members, \@msgs,
              'recent: members are the message events (JSON)');
}
{
    my @pub = grep { $_->{payload} =~ /"(?:one|two|three)"/ }
              $watch->drain(timeout => 0.3);
    is(scalar @pub, 3, 'three publications carry the texts');
    is_deeply([ map { $_->{channel} } @pub ], [ ('chat:{room1}') x 3 ],
              'published on channel chat:{room1}');
}
{
    my $keys = $r->cmd('KEYS', '*');
    my %k = map { $_ => 1 } @$keys;
    ok($k{'chat:{room1}:seq'} && $k{'chat:{room1}:recent'},
       'keys chat:{room1}:seq and chat:{room1}:recent exist');
    my @other = grep { !/^chat:/ } @$keys;
    ok(!@other, 'every key starts with the prefix "chat:"')
        or diag("other keys: @other");
    diag('keys: ' . join(' ', sort @$keys));
}

# ---- chat_history_cache 5: recent trimmed, history from Redis
$a->join_room('trim');
@acks = send_all($a, 'trim', map { "t$_" } 1 .. 8);
is_deeply(ack_seqs(@acks), [ 1 .. 8 ], 'trim: acks 1..8');
my @tmsgs = $a->collect(n => 8, type => 'message', room => 'trim');
is($r->cmd('ZCARD', 'chat:{trim}:recent'), 5,
   'recent trimmed to chat_history_cache 5');
{
    my $z = $r->cmd('ZRANGE', 'chat:{trim}:recent', 0, -1, 'WITHSCORES');
    my @scores = @$z[ grep { $_ % 2 } 0 .. $#$z ];
    is_deeply(\@scores, [ 4 .. 8 ], 'the last 5 are kept: 4..8');
}
my $h = $a->call({ op => 'history', room => 'trim', limit => 100 });
is_deeply(hseqs($h), [ 4 .. 8 ], 'history: 4..8');
is_deeply($h->{messages}, [ @tmsgs[3 .. 7] ], 'history: the message events');
$h = $a->call({ op => 'history', room => 'trim', before => 6 });
is_deeply(hseqs($h), [ 4, 5 ], 'history before 6: 4, 5');
$h = $a->call({ op => 'history', room => 'trim', limit => 2 });
is_deeply(hseqs($h), [ 7, 8 ], 'history limit 2: 7, 8');

# ---- join since replays from Redis
my $b = ChatTest::WS->chat($port, user => 'bob');
$j = $b->call({ op => 'join', room => 'room1', since => 1 });
is($j->{type}, 'joined', 'bob joined room1 since 1');
is($j->{seq}, 3, 'joined.seq 3');
my @replay = $b->collect(n => 2, type => 'message');
is_deeply(\@replay, [ @msgs[1, 2] ], 'since 1: messages 2, 3 replayed');
ok($b->quiet(timeout => 0.3), 'nothing more');

# ---- history and since read chat:{R}:recent: a room written by hand
{
    my @fake = map { {
        type => 'message', room => 'inject', seq => $_,
        msg_id => sprintf('00000000-0000-4000-8000-%012d', $_),
        user => 'importer', text => "imported $_",
        ts => 1700000000000 + $_,
    } } 1, 2;
    $r->cmd('SET', 'chat:{inject}:seq', 2);
    $r->cmd('ZADD', 'chat:{inject}:recent',
            map { ($_->{seq}, $JSON->encode($_)) } @fake);
    my $c = ChatTest::WS->chat($port, user => 'carol');
    $j = $c->call({ op => 'join', room => 'inject', since => 0 });
    is($j->{seq}, 2, 'joined.seq from chat:{inject}:seq');
    my @got = $c->collect(n => 2, type => 'message');
    is_deeply(\@got, \@fake, 'join since 0 replays chat:{inject}:recent');
    $h = $c->call({ op => 'history', room => 'inject' });
    is_deeply($h->{messages}, \@fake, 'history reads chat:{inject}:recent');
    my ($ack) = send_all($c, 'inject', 'after import');
    is($ack && $ack->{seq}, 3, 'next send: INCR chat:{inject}:seq -> 3');
    $c->close_socket;
}

# ---- SUBSCRIBE refcount on one worker
{
    my $c1 = ChatTest::WS->chat($port, user => 'rc1');
    my $c2 = ChatTest::WS->chat($port, user => 'rc2');
    is($r->numsub('chat:{rc}'), 0, 'rc: not subscribed');
    $c1->join_room('rc');
    is($r->numsub('chat:{rc}'), 1, 'rc: one member -> NUMSUB 1');
    $c2->join_room('rc');
    is($r->numsub('chat:{rc}'), 1, 'rc: two members on one worker -> 1');
    my $l = $c1->call({ op => 'leave', room => 'rc' });
    is($l && $l->{type}, 'left', 'rc1 left');
    sleep 0.3;
    is($r->numsub('chat:{rc}'), 1, 'rc: one left, one stays -> 1');
    $l = $c2->call({ op => 'leave', room => 'rc' });
    is($l && $l->{type}, 'left', 'rc2 left');
    is($r->wait_numsub('chat:{rc}', 0, 3), 0,
       'rc: the last member left -> UNSUBSCRIBE (0)');
    $c1->join_room('rc');
    is($r->numsub('chat:{rc}'), 1, 'rc: joined again -> 1');
    $c1->close_socket;
    is($r->wait_numsub('chat:{rc}', 0, 3), 0,
       'rc: the last member disconnected -> 0');
    ok($c2->alive, 'rc2 still served');
    is($r->numsub('chat:{room1}'), 1, 'room1 still subscribed');
}

# ---- an nginx restart: the history lives in Redis
$n->stop;
is($r->wait_numsub('chat:{room1}', 0, 3), 0,
   'nginx stopped: its subscription is gone');
my $n2 = $r->start_nginx(cache => 5,
                         server => $LOC);
my $d = ChatTest::WS->chat($n2->port, user => 'dave');
$j = $d->call({ op => 'join', room => 'room1', since => 0 });
is($j->{seq}, 3, 'new nginx: joined.seq 3 from Redis');
@replay = $d->collect(n => 3, type => 'message');
is_deeply(\@replay, \@msgs, 'new nginx: join since 0 replays 1..3');
$h = $d->call({ op => 'history', room => 'room1' });
is_deeply($h->{messages}, \@msgs, 'new nginx: history 1..3');
my ($ack) = send_all($d, 'room1', 'four');
is($ack && $ack->{seq}, 4, 'new nginx: seq continues at 4');
is($r->cmd('GET', 'chat:{room1}:seq'), 4, 'GET chat:{room1}:seq == 4');
$d->collect(n => 1, type => 'message');
$j = $d->call({ op => 'join', room => 'trim', since => 0 });
is($j->{seq}, 8, 'trim: joined.seq 8');
is($j->{truncated}, JSON::PP::true,
   'trim since 0: truncated (1..3 are no longer kept)');
@replay = $d->collect(n => 5, type => 'message');
is_deeply(seqs(@replay), [ 4 .. 8 ], 'trim since 0: 4..8 replayed');

# ---- chat_key_prefix app, on the same Redis
$watch->drain(timeout => 0.1);
my $n3 = $r->start_nginx(cache => 5, prefix => 'app',
    server => $LOC);
my $e = ChatTest::WS->chat($n3->port, user => 'erin');
$j = $e->call({ op => 'join', room => 'room1' });
is($j->{seq}, 0, 'prefix app: room1 is another room (seq 0)');
is($r->numsub('app:{room1}'), 1, 'prefix app: SUBSCRIBE app:{room1}');
is($r->numsub('chat:{room1}'), 1, '... chat:{room1} only has the other nginx');
($ack) = send_all($e, 'room1', 'with prefix');
is($ack && $ack->{seq}, 1, 'prefix app: ack seq 1');
is($r->cmd('GET', 'app:{room1}:seq'), 1, 'app:{room1}:seq == 1');
is($r->cmd('ZCARD', 'app:{room1}:recent'), 1, 'app:{room1}:recent has it');
is($r->cmd('GET', 'chat:{room1}:seq'), 4, 'chat:{room1}:seq untouched');
{
    my @pub = grep { $_->{payload} =~ /with prefix/ }
              $watch->drain(timeout => 0.3);
    is_deeply([ map { $_->{channel} } @pub ], [ 'app:{room1}' ],
              'published on channel app:{room1}');
}
ok($d->quiet(timeout => 0.3), 'members of chat:{room1} do not get it');
{
    my @other = grep { !/^(?:chat|app):/ } @{$r->cmd('KEYS', '*')};
    ok(!@other, 'every key starts with "chat:" or "app:"')
        or diag("other keys: @other");
}
$n3->stop;
$n2->stop;
$watch->close;
$r->stop;

# ---- unix:/path
{
    my $ru = ChatTest::Redis->start(unixsocket => 1);
    my $nu = $ru->start_nginx(url => $ru->unix_url,
        server => $LOC);
    my $u = ChatTest::WS->chat($nu->port, user => 'unix');
    $j = $u->call({ op => 'join', room => 'sock' });
    is($j->{type}, 'joined', 'unix socket: joined');
    ($ack) = send_all($u, 'sock', 'over a unix socket');
    is($ack && $ack->{seq}, 1, 'unix socket: ack seq 1');
    my ($m) = $u->collect(n => 1, type => 'message');
    is($m && $m->{text}, 'over a unix socket', 'unix socket: message back');
    is($ru->cmd('GET', 'chat:{sock}:seq'), 1, 'unix socket: key written');
    is($ru->numsub('chat:{sock}'), 1, 'unix socket: subscribed');
    $nu->stop;
    $ru->stop;
}

# ---- redis://:password@host:port/db, and a wrong password
{
    my $rp = ChatTest::Redis->start(requirepass => 's3cret');
    my $np = $rp->start_nginx(url => $rp->url(password => 1, db => 2),
        server => $LOC);
    my $p = ChatTest::WS->chat($np->port, user => 'pw');
    $j = $p->call({ op => 'join', room => 'pw' });
    is($j->{type}, 'joined', 'password: joined');
    ($ack) = send_all($p, 'pw', 'authenticated');
    is($ack && $ack->{seq}, 1, 'password: ack seq 1');
    my ($m) = $p->collect(n => 1, type => 'message');
    is($m && $m->{text}, 'authenticated', 'password: message back');
    is($rp->cli('-n', 2, '--raw', 'GET', 'chat:{pw}:seq'), "1\n",
       'db 2: chat:{pw}:seq == 1');
    is($rp->cli('-n', 0, '--raw', 'EXISTS', 'chat:{pw}:seq'), "0\n",
       'db 0: nothing');
    $np->stop;

    my $nw = $rp->start_nginx(url => $rp->url(password => 'wrong'), wait => 0,
        server => $LOC);
    my $q = ChatTest::WS->chat($nw->port, user => 'nopw');
    my $rep = $q->call({ op => 'join', room => 'pw', id => 'jw' },
                       timeout => 8);
    is($rep && $rep->{code}, 'unavailable',
       'wrong password: join -> unavailable')
        or diag(enc($rep));
    $nw->stop;
    $rp->stop;
}

done_testing;
