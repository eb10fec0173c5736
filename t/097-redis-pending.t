# chat_redis_max_pending: a worker's bound on the commands in flight to
# Redis.  With Redis stopped (SIGSTOP), 5 clients pipeline 4,000
# "online" requests of 100 users each (under chat_max_pending, the bound
# of a connection): the first 4096 (the default) of the 20,000 wait
# for Redis, every other one is answered "unavailable" at once, long
# before chat_redis_timeout, and the worker's memory stays put.  The bound
# is the worker's, not a connection's: 10 clients of 50 requests each
# share 100.  After SIGCONT the requests that waited are answered.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $T = 20;    # chat_redis_timeout: nothing times out during the flood

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
}
EOF2

ChatTest::Redis::need_chat_redis(server => $LOC,
                                 http => 'chat_redis_max_pending 100;');

my $r = ChatTest::Redis->start;

sub rss_kb {
    my ($pid) = @_;
    my $s = ChatTest::Process::slurp("/proc/$pid/status") // '';
    return $s =~ /^VmRSS:\s+(\d+)\s+kB/m ? $1 : 0;
}

my @USERS = map { sprintf 'someone-%05d', $_ } 1 .. 100;
my $FRAME = ChatTest::WS::frame(
    payload => ChatTest::json()->encode({ op => 'online',
                                          users => \@USERS }),
    mask_key => 'abcd');

# counts the replies read so far into $c->{online} and $c->{unavailable}
sub tally {
    my ($clients, $timeout) = @_;
    ChatTest::WS::pump($clients, timeout => $timeout);
    for my $c (@$clients) {
        for my $m ($c->drain(timeout => 0)) {
            my $k = ($m->{type} // '') eq 'online' ? 'online'
                  : ($m->{code} // '') eq 'unavailable' ? 'unavailable'
                  : 'other';
            $c->{$k}++;
            diag('unexpected: ' . enc($m)) if $k eq 'other'
                                              && ++$c->{odd} <= 3;
        }
    }
}

sub total {
    my ($clients, $k) = @_;
    my $n = 0;
    $n += $_->{$k} // 0 for @$clients;
    return $n;
}

# every client pipelines $count requests, in bursts, reading meanwhile
sub flood {
    my ($clients, $count) = @_;
    my $burst = 200;
    for my $c (@$clients) {
        $c->{left} = $count;
    }
    while (grep { $_->{left} } @$clients) {
        for my $c (@$clients) {
            my $k = $c->{left} < $burst ? $c->{left} : $burst;
            next unless $k;
            ChatTest::write_all($c->fh, $FRAME x $k, 10)
                or return fail("write: $!");
            $c->{left} -= $k;
        }
        tally($clients, 0);
    }
    return 1;
}

# ---------------------------------------------------------------- 5 clients
{
    my $n = $r->start_nginx(server => $LOC,
                            http => "chat_redis_timeout ${T}s;\n");
    my ($pid) = $n->worker_pids;
    my @ws = map { ChatTest::WS->chat($n->port, user => "flood$_") } 1 .. 5;
    my $o = $ws[0]->call({ op => 'online', users => \@USERS });
    is($o && $o->{type}, 'online', 'online answered') or diag(enc($o));
    my $rss0 = rss_kb($pid);

    $r->freeze;
    my $t0 = time;

    my $N = 20000;
    flood(\@ws, $N / @ws);
    my $written = time - $t0;
    while (total(\@ws, 'unavailable') < $N - 4096 && time - $t0 < $T - 5)
    {
        tally(\@ws, 0.1);
    }
    my $t = time - $t0;
    my $rss1 = rss_kb($pid);
    my $unavailable = total(\@ws, 'unavailable');

    diag(sprintf('20,000 requests written in %.1f s; %d "unavailable" '
                 . 'after %.1f s; worker RSS %d -> %d kB', $written,
                 $unavailable, $t, $rss0, $rss1));
    is(total(\@ws, 'online'), 0, 'Redis stopped: no answer from it');
    cmp_ok($unavailable, '>=', $N - 4096,
           'all but chat_redis_max_pending (4096) got "unavailable"');
    cmp_ok($t, '<', $T - 5, '... at once, long before chat_redis_timeout');
    SKIP: {
        # ASan keeps freed memory in quarantine and pads every allocation
        skip 'worker RSS under ASan', 1 if $ENV{CHAT_ASAN};
        cmp_ok($rss1 - $rss0, '<', 64 * 1024,
               'the worker grew by less than 64 MB');
    }
    like($n->error_log, qr/chat: redis commands: \d+ in flight, new requests/,
         'logged at warn');

    $r->thaw;
    my $deadline = time + 20;
    while (total(\@ws, 'online') + total(\@ws, 'unavailable') < $N
           && time < $deadline)
    {
        tally(\@ws, 0.2);
    }
    my $online = total(\@ws, 'online');
    is($online + total(\@ws, 'unavailable'), $N,
       'SIGCONT: every request answered');
    ok($online > 0 && $online <= 4096,
       "... the $online that waited for Redis by Redis");
    $n->stop;
}

# ---------------------------------------------------------------- a bound per worker
{
    my $n = $r->start_nginx(server => $LOC,
                            http => "chat_redis_timeout ${T}s;\n"
                                    . "chat_redis_max_pending 100;\n");
    my @c = map { ChatTest::WS->chat($n->port, user => "c$_") } 1 .. 10;

    $r->freeze;
    my $t0 = time;

    flood(\@c, 50);
    tally(\@c, 0.1) while total(\@c, 'unavailable') < 400 && time - $t0 < 5;
    cmp_ok(total(\@c, 'unavailable'), '>=', 400,
           '10 clients of 50: at least 400 "unavailable" at once');

    $r->thaw;
    my $deadline = time + 20;
    tally(\@c, 0.2)
        while total(\@c, 'online') + total(\@c, 'unavailable') < 500
              && time < $deadline;
    my $online = total(\@c, 'online');
    is($online + total(\@c, 'unavailable'), 500, 'every request answered');
    ok($online > 0 && $online <= 100,
       "$online waited for Redis: at most 100 for the worker");
    $n->stop;
}

done_testing();
