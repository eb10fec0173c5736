# chat_request_rate: a token bucket per connection for every request
# but send (join, leave, history, presence, online, typing, heartbeat),
# apart from chat_rate's; the same rate_limited and the same 1008 after
# 10 refusals in a row.  chat_max_pending: the requests of a connection
# waiting for Redis at once; more get rate_limited at once.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_request_rate 1r/s burst=5;
    chat_rate 1r/s burst=3;
}
location = /dflt { chat; chat_user $arg_user; }
EOF2
my $port = $n->port;
my $frame = \&ChatTest::WS::frame;

# $count requests in one write; the replies (typing has none but errors)
sub burst {
    my ($ws, $count, $req) = @_;
    my @ids = map { "b$_" } 1 .. $count;
    $ws->send_raw(join '', map {
        $frame->(payload => ChatTest::json()->encode({ %$req, id => $_ }))
    } @ids);
    my @r;
    for my $id (@ids) {
        push @r, $ws->wait_for(id => $id,
                               timeout => $req->{op} eq 'typing' ? 0.2 : 5);
    }
    return @r;
}

sub codes { join ' ', map { !$_ ? '-' : $_->{type} eq 'error' ? $_->{code} : 'ok' } @_ }

# each request but send: 5 pass (the join before them included), then
# rate_limited; leave goes in pairs with a join, so that it has a room
for my $op (qw(join leave history presence online typing heartbeat)) {
    my $ws = ChatTest::WS->chat($port, user => "u$op", ignore => []);
    my $room = !grep { $op eq $_ } qw(online heartbeat);
    my $spent = ($room && $op ne 'join') ? 1 : 0;
    $ws->call({ op => 'join', room => 'r' }) if $spent;
    my %req = (op => $op);
    $req{room} = 'r' if $room;
    $req{users} = ['a'] if $op eq 'online';
    my @ids = map { "b$_" } 1 .. 8;
    my @reqs = map { +{ %req, id => $_ } } @ids;
    @reqs = map { ({ op => 'join', room => 'r', id => "j$_" },
                   { op => 'leave', room => 'r', id => "b$_" }) } 1 .. 4
        if $op eq 'leave';
    $ws->send_raw(join '', map {
        $frame->(payload => ChatTest::json()->encode($_))
    } @reqs);
    my @r = map { $ws->wait_for(id => $_->{id},
                                timeout => $op eq 'typing' ? 0.3 : 5) }
            @reqs;
    my $want = 5 - $spent;
    my @ok = grep { $_ && $_->{type} ne 'error' } @r;
    my @limited = grep { $_ && $_->{type} eq 'error'
                         && $_->{code} eq 'rate_limited' } @r;
    if ($op eq 'typing') {
        # typing is answered only when refused
        is(scalar @limited, 8 - $want,
           "typing: past the burst, rate_limited (" . codes(@r) . ")");
    } elsif ($op eq 'leave') {
        # a leave behind a refused join is not_joined, and not counted
        my @nj = grep { $_ && ($_->{code} // '') eq 'not_joined' } @r;
        ok(@ok >= $want && @ok <= $want + 1 && @limited
           && @ok + @limited + @nj == @r,
           "leave: joins and leaves, $want pass, then rate_limited ("
           . codes(@r) . ")");
    } else {
        ok(@ok >= $want && @ok <= $want + 1 && @ok + @limited == @r,
           "$op: $want of " . scalar(@r) . " pass, the rest rate_limited ("
           . codes(@r) . ")");
    }
    is($limited[0] && $limited[0]{message}, 'chat_request_rate exceeded',
       "$op: the message says which rate");
    $ws->close_socket;
}

# the two buckets are apart
{
    my $ws = ChatTest::WS->chat($port, user => 'both');
    $ws->join_room('r');
    my @h = burst($ws, 6, { op => 'heartbeat' });
    is(codes(@h), 'ok ok ok ok rate_limited rate_limited',
       'heartbeats: the request bucket empties (one went to the join)');
    my @s = burst($ws, 4, { op => 'send', room => 'r', text => 't' });
    is(codes(@s), 'ok ok ok rate_limited', 'sends still have their own 3');
    my $r = $ws->call({ op => 'history', room => 'r' });
    is($r && $r->{code}, 'rate_limited', 'and requests are still refused');
    sleep 1.1;
    $r = $ws->call({ op => 'history', room => 'r' });
    is($r && $r->{type}, 'history', 'refilled after a second');
    $ws->close_socket;
}

# 10 refusals in a row close with 1008
{
    my $ws = ChatTest::WS->chat($port, user => 'flood');
    $ws->send_raw(join '', map {
        $frame->(payload => '{"op":"heartbeat"}')
    } 1 .. 20);
    my ($code, $reason) = $ws->expect_close;
    is(($code // '') . ' ' . ($reason // ''), '1008 rate limit',
       '16 heartbeats over the burst: closed with 1008');
}

# the default: 10 per second, a burst of 50
{
    my $ws = ChatTest::WS->chat($port, path => '/dflt', user => 'd');
    my @r = burst($ws, 55, { op => 'heartbeat' });
    my $ok = grep { $_ && $_->{type} eq 'heartbeat' } @r;
    ok($ok >= 50 && $ok <= 51, "default: $ok of 55 heartbeats pass");
    $ws->close_socket;
}
$n->stop;

# chat_max_pending: Redis paused (CLIENT PAUSE: it keeps the connections
# and answers nothing), the requests that wait are bounded
{
    my $r = ChatTest::Redis->start;
    my $m = $r->start_nginx(server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_request_rate 1000r/s burst=1000;
    chat_max_pending 8;
}
EOF2
    my $ws = ChatTest::WS->chat($m->port, user => 'p');
    my $other = ChatTest::WS->chat($m->port, user => 'q');
    $r->cmd('CLIENT', 'PAUSE', 1500, 'ALL');
    my $t0 = time;
    $ws->send_raw(join '', map {
        $frame->(payload => ChatTest::json()->encode(
            { op => 'online', users => ['q'], id => "o$_" }))
    } 1 .. 12);
    my @early = map { $ws->wait_for(id => "o$_", timeout => 1) } 9 .. 12;
    ok(time - $t0 < 1.2, 'the refusals come while Redis is paused');
    is(codes(@early), join(' ', ('rate_limited') x 4),
       'past 8 waiting: rate_limited at once');
    is($early[0] && $early[0]{message}, 'too many requests waiting',
       '... too many requests waiting');
    my $o = $other->call({ op => 'online', users => ['p'] }, timeout => 5);
    is($o && $o->{type}, 'online', 'another connection has its own bound');
    my @late = map { $ws->wait_for(id => "o$_", timeout => 5) } 1 .. 8;
    is(codes(@late), join(' ', ('ok') x 8), 'the 8 that waited are answered');
    my $h = $ws->call({ op => 'heartbeat' });
    is($h && $h->{type}, 'heartbeat', 'the connection goes on');
    $_->close_socket for $ws, $other;
    $m->stop;
}

done_testing;
