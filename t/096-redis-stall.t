# chat_redis_timeout: a Redis that stops answering without closing its
# sockets (SIGSTOP for 10 s here; a fork, a slow script or a partition
# without a reset in real life).  A send gets "unavailable" within the
# timeout and a second, chat_publish 503, join, history, online and
# presence "unavailable"; the subscriber and the stream reader notice the
# stall on their own.  After SIGCONT everything flows again: sends are
# acked, the seq goes on, members on both workers get every acked message
# in order (the subscriber came back), and every acked message is in
# Postgres.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs hseqs);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $T = 2;    # chat_redis_timeout, in seconds

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
}
location = /publish { chat_publish; chat_user $http_x_chat_user; }
location = /status { chat_status; }
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC,
    http => "chat_redis_timeout ${T}s;\n");
my $port = $n->port;
my @pids = $n->worker_pids;

sub publish {
    my ($room, $text, $id) = @_;
    my $body = ChatTest::json()->encode({ room => $room, text => $text,
                                          id => $id });
    return ChatTest::http_request($port,
        "POST /publish HTTP/1.1\r\nHost: x\r\nX-Chat-User: app\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\nConnection: close\r\n\r\n$body",
        timeout => 3 * $T + 5);
}

# a member on each worker, and the sender
my %on;
for my $i (1 .. 40) {
    my $ws = ChatTest::WS->chat($port, user => "m$i");
    my $pid = ChatTest::worker_pid_of($n, $ws) // 0;
    push @{$on{$pid}}, $ws;
    last if keys %on == 2 && !grep { @$_ < 2 } values %on;
}
my ($pa, $pb) = sort keys %on;
ok($pa && $pb && $on{$pa}[1] && $on{$pb}[1],
   'clients on both workers') or BAIL_OUT('reuseport did not spread');
my ($wa, $ws) = @{$on{$pa}};
my ($wb) = @{$on{$pb}};
$_->join_room('st') for $wa, $wb, $ws;

my (@acked, %unavailable);    # [seq, text]; texts answered "unavailable"
for my $i (1 .. 3) {
    my $a = $ws->call({ op => 'send', room => 'st', text => "pre $i" });
    push @acked, [ $a->{seq}, "pre $i" ] if $a && $a->{type} eq 'ack';
}
is_deeply([ map { $_->[0] } @acked ], [ 1, 2, 3 ], 'before: acks 1..3');
for my $m ($wa, $wb) {
    is_deeply(seqs($m->collect(n => 3, type => 'message')), [ 1, 2, 3 ],
              'before: delivered');
}
$_->drain(timeout => 0.2) for $wa, $wb, $ws;

# ---------------------------------------------------------------- stopped
$r->freeze;
my $t0 = time;

my $rep = $ws->call({ op => 'send', room => 'st', text => 'during',
                     id => 'during' }, timeout => 3 * $T + 5);
my $took = time - $t0;
is($rep && $rep->{code}, 'unavailable', 'Redis stopped: send -> unavailable')
    or diag(enc($rep));
is($rep && $rep->{id}, 'during', '... with its id');
ok($took <= $T + 1, sprintf('... %.2f s after SIGSTOP (timeout %d s)',
                            $took, $T));
diag(sprintf('SIGSTOP to "unavailable": %.2f s', $took));
$unavailable{during} = 1;

my $t1 = time;
my ($st, $h, $body) = publish('st', 'published during', 'pd');
is($st, 503, 'chat_publish -> 503') or diag($body);
like($body // '', qr/"code":"unavailable"/, '... unavailable');
ok(time - $t1 <= $T + 1, sprintf('... in %.2f s', time - $t1));
$unavailable{'published during'} = 1;

for my $req ([ join => { op => 'join', room => 'st2' } ],
             [ history => { op => 'history', room => 'st' } ],
             [ online => { op => 'online', users => [ 'm1', 'nobody' ] } ],
             [ presence => { op => 'presence', room => 'st' } ])
{
    my ($what, $q) = @$req;
    my $t = time;
    my $x = $wa->call($q, timeout => 3 * $T + 5);
    is($x && $x->{code}, 'unavailable', "$what -> unavailable")
        or diag(enc($x));
    ok(time - $t <= $T + 1, sprintf('... in %.2f s', time - $t));
}

# the subscriber and the stream reader find out by themselves
for my $link ('subscriber', 'stream') {
    my $seen = ChatTest::wait_until(sub {
        my @l = $n->error_log
                =~ /redis $link: no answer from .* in \d+ ms, reconnecting/g;
        return @l >= 2;
    }, 2 * $T + 3);
    ok($seen, "both workers' $link connections noticed the stall");
}
my $down = ChatTest::wait_until(sub {
    my $s = $n->status('/status') or return 0;
    my @w = grep { $_->{redis} } @{$s->{workers} || []};
    return @w == 2 && !grep { $_->{redis}{subscriber} } @w;
}, 3);
ok($down, 'chat_status: both subscribers down');
ok($ws->call({ op => 'heartbeat' })->{type} eq 'heartbeat',
   'the connections are still served');

sleep 0.1 while time - $t0 < 10;
$r->thaw;

# ---------------------------------------------------------------- resumed
my $t2 = time;
my $first;
for (my $i = 1; time - $t2 < 15; $i++) {
    my $a = $ws->call({ op => 'send', room => 'st', text => "probe $i",
                        id => "probe$i" }, timeout => 3 * $T + 5);
    if ($a && $a->{type} eq 'ack') {
        push @acked, [ $a->{seq}, "probe $i" ];
        $first = time - $t2;
        last;
    }
    $unavailable{"probe $i"} = 1;
    sleep 0.2;
}
ok(defined $first, sprintf('SIGCONT: a send is acked after %.1f s',
                           $first // -1));
for my $i (1 .. 5) {
    my $a = $ws->call({ op => 'send', room => 'st', text => "post $i" });
    ok($a && $a->{type} eq 'ack', "post $i acked") or diag(enc($a));
    push @acked, [ $a->{seq}, "post $i" ] if $a && $a->{type} eq 'ack';
}
($st, $h, $body) = publish('st', 'published after', 'pa');
is($st, 200, 'chat_publish -> 200 again') or diag($body);
my $pack = eval { ChatTest::json()->decode($body) };
push @acked, [ $pack->{seq}, 'published after' ] if $pack && $pack->{seq};

my @s = map { $_->[0] } @acked;
ok($s[3] > 3 && !grep({ $s[$_] <= $s[$_ - 1] } 1 .. $#s),
   'the seq goes on: ' . join(' ', @s));

# every acked message reaches both workers' members, in order; the only
# others are sends that were answered "unavailable" but stored anyway
my %acked = map { $_->[0] => $_->[1] } @acked;
for my $m ([ 'worker A', $wa ], [ 'worker B', $wb ]) {
    my ($name, $c) = @$m;
    my @got;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $x = $c->wait_for(type => 'message', room => 'st', timeout => 1)
            or next;
        push @got, $x;
        last if $x->{seq} >= $s[-1];
    }
    my @g = map { $_->{seq} } @got;
    my @missing = grep { my $k = $_; !grep { $_ == $k } @g } @s[3 .. $#s];
    is_deeply(\@missing, [], "$name: every acked message delivered");
    ok(!grep({ $g[$_] <= $g[$_ - 1] } 1 .. $#g),
       "$name: in seq order, once: @g");
    my @odd = grep { !$acked{$_->{seq}} && !$unavailable{$_->{text}} }
              @got;
    is(scalar @odd, 0, "$name: nothing that was not sent")
        or diag(enc(\@odd));
    my %t = map { $_->{seq} => $_->{text} } @got;
    ok(!grep({ defined $t{$_} && $t{$_} ne $acked{$_} } keys %acked),
       "$name: the texts of their seqs");
}

# everything works again
my $j = $wa->call({ op => 'join', room => 'st2' });
is($j && $j->{type}, 'joined', 'join works again') or diag(enc($j));
my $hist = $wa->call({ op => 'history', room => 'st', limit => 100 });
ok(!grep({ my $k = $_; !grep { $_ == $k } @{hseqs($hist)} } @s),
   'history has every acked message');
my $o = $wa->call({ op => 'online', users => [ 'm1' ] });
is($o && $o->{type}, 'online', 'online works again') or diag(enc($o));

# and Postgres has every acked message
my @lost;
ChatTest::wait_until(sub {
    my %rows = map { $_->{seq} => $_->{body} }
               @{$pg->messages(where => "room = 'st'")};
    @lost = grep { ($rows{$_} // '') ne $acked{$_} } @s;
    return !@lost;
}, 20);
is_deeply(\@lost, [], 'Postgres has every acked message ('
          . scalar(@s) . ')');

is_deeply([ $n->worker_pids ], \@pids, 'no worker crashed');
$n->stop;
done_testing();
