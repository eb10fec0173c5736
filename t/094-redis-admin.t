# chat_admin on Redis, two hosts of two workers each: a kick and a
# disconnect asked of one host reach the user's connections on every
# worker of both; a ban is one key with a TTL, refusing joins everywhere
# until it ends; a malformed command on the control channel is dropped;
# without Redis, commands answer 503.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; }
location = /admin { chat_admin; }
location = /status { chat_status; }
EOF2

ChatTest::Redis::need_chat_redis(server => $LOC);

my $r = ChatTest::Redis->start;
my %cfg = (server => $LOC, workers => 2, listen_opts => 'reuseport');
my $A = $r->start_nginx(%cfg);
my $B = $r->start_nginx(%cfg);

# connections of $user until every worker of $n has one (bounded)
sub everywhere {
    my ($n, $user) = @_;
    my (%by, @ws);
    for (1 .. 40) {
        my $ws = ChatTest::WS->chat($n->port, user => $user);
        push @ws, $ws;
        $by{$ws->welcome->{worker}}++;
        last if keys %by == 2 && @ws >= 2;
    }
    return @ws;
}

my @alice = (everywhere($A, 'alice'), everywhere($B, 'alice'));
my %workers = map { $_->welcome->{worker} => 1 } @alice;
is(scalar keys %workers, 4, 'alice on the 4 workers of the 2 hosts ('
                            . scalar(@alice) . ' connections)');
my $bob = ChatTest::WS->chat($B->port, user => 'bob', ignore => []);
$_->join_room('r') for @alice, $bob;
$_->join_room('keep') for @alice;
$bob->drain(timeout => 0.5);

# a kick on host A: every connection of alice leaves r, on both hosts
{
    my $t0 = time;
    my ($st, $h, $j) = ChatTest::http_post_json($A->port, '/admin',
        { op => 'kick', user => 'alice', room => 'r', ban => 3, id => 'k' });
    is($st, 200, 'kick: 200');
    is_deeply($j, { type => 'done', op => 'kick', id => 'k',
                    connections => scalar @alice },
              'kick: every connection of alice in r, on every host, counted');
    my $left = 0;
    for my $ws (@alice) {
        my $l = $ws->wait_for(type => 'left', room => 'r', timeout => 5);
        $left++ if $l && ($l->{reason} // '') eq 'kicked';
    }
    my $took = time - $t0;
    is($left, scalar @alice, "every connection got left, kicked");
    diag(sprintf 'kick: the last of %d connections on 4 workers of 2 hosts '
                 . 'left %.1f ms after the POST', scalar @alice,
                 1000 * $took);
    my $p = $bob->wait_for(type => 'presence', timeout => 3);
    is($p && "$p->{user} $p->{event}", 'alice leave', 'bob sees alice leave');
    my $k = $alice[-1]->call({ op => 'send', room => 'keep', text => 'x' });
    is($k && $k->{type}, 'ack', 'the other room is kept');

    my $ttl = $r->cmd('TTL', 'chat:{r}:ban:alice');
    ok($ttl >= 1 && $ttl <= 3, "the ban: chat:{r}:ban:alice, TTL $ttl s");
    my $refused = 0;
    for my $ws (@alice) {
        my $e = $ws->call({ op => 'join', room => 'r', since => 0 });
        $refused++ if $e && ($e->{code} // '') eq 'forbidden';
    }
    is($refused, scalar @alice, 'banned: joins refused on every worker');
    ok($bob->quiet(timeout => 0.3), 'bob sees nothing of the refused joins');

    my $deadline = time + 5;
    sleep 0.2 while $r->cmd('EXISTS', 'chat:{r}:ban:alice') && time < $deadline;
    my $ok = 0;
    for my $ws (@alice) {
        my $j2 = $ws->call({ op => 'join', room => 'r' });
        $ok++ if $j2 && $j2->{type} eq 'joined';
    }
    is($ok, scalar @alice, 'the ban over: every connection joins again');
}

# a kick without a ban leaves no key
{
    ChatTest::http_post_json($B->port, '/admin',
        { op => 'kick', user => 'alice', room => 'r' });
    $_->wait_for(type => 'left', room => 'r') for @alice;
    is($r->cmd('EXISTS', 'chat:{r}:ban:alice'), 0, 'no ban, no key');
}

# a malformed command on the control channel: dropped, logged
{
    $r->cmd('PUBLISH', 'chat:control', '{"op":"disconnect"}');
    $r->cmd('PUBLISH', 'chat:control', 'not json');
    $r->cmd('PUBLISH', 'chat:control', '{"op":"join","room":"r"}');
    my $a = $alice[0]->call({ op => 'heartbeat' });
    is($a && $a->{type}, 'heartbeat', 'alice still served');
    sleep 0.3;
    my $warned = () = ($A->error_log . $B->error_log)
        =~ /\[warn\].*dropped a malformed command of \d+ bytes on the control/g;
    is($warned, 12, 'each of 4 workers warned of each of the 3 commands');
}

# a disconnect on host B closes alice everywhere, with 1008
{
    my ($st, $h, $j) = ChatTest::http_post_json($B->port, '/admin',
        { op => 'disconnect', user => 'alice' });
    is_deeply($j, { type => 'done', op => 'disconnect' }, 'disconnect: done');
    my $closed = 0;
    for my $ws (@alice) {
        my ($code, $reason) = $ws->expect_close(reply => 1);
        $closed++ if ($code // 0) == 1008 && ($reason // '') eq 'disconnected';
    }
    is($closed, scalar @alice, 'every connection closed with 1008');
    ok($bob->alive, 'bob stays');
    my $sum = 0;
    for my $n ($A, $B) {
        my $s = $n->status('/status');
        $sum += $s->{disconnects} // 0;
    }
    is($sum, scalar @alice, 'the status of both hosts counts them');
}

# without Redis: 503 and the error object
{
    $r->kill;
    my ($st, $h, $j) = ChatTest::http_post_json($A->port, '/admin',
        { op => 'kick', user => 'bob', room => 'r' });
    is($st, 503, 'Redis down: kick 503');
    is($j && $j->{code}, 'unavailable', '... unavailable');
    ($st) = ChatTest::http_post_json($A->port, '/admin',
        { op => 'disconnect', user => 'bob' });
    is($st, 503, 'Redis down: disconnect 503');
}

$_->close_socket for @alice, $bob;
$A->stop;
$B->stop;
done_testing;
