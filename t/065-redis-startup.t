# A worker that has just started (a reload, a restart) gets its clients
# back at once: requests that come before its connections to Redis are up
# wait for them instead of failing; if Redis stays away, they fail with
# "unavailable" after a bounded wait, and the handshake still succeeds.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $LOC = 'location = /chat { chat; chat_user $arg_user; }';

ChatTest::Redis::need_module(server => $LOC);

# requests in the first moments of a worker's life, before it reached
# Redis: they wait for it
{
    my $r = ChatTest::Redis->start;
    my $port = $r->port;
    $r->stop;
    my $n = ChatTest->start(server => $LOC, workers => 2,
                            http => "chat_redis redis://127.0.0.1:$port/0;");
    my $ws = ChatTest::WS->chat($n->port, user => 'early');
    $ws->send_json({ op => 'join', room => 'early', id => 'j' });
    $ws->send_json({ op => 'send', room => 'early', text => 'hi',
                     id => 's' });
    sleep 0.5;
    $r->restart;
    my $j = $ws->wait_for(id => 'j', timeout => 8);
    is($j && $j->{type}, 'joined', 'a join sent before the worker reached '
       . 'Redis: joined once it did');
    my $a = $ws->wait_for(id => 's', timeout => 8);
    is($a && $a->{type}, 'ack', '... and the send after it: ack');

    # after a reload, the new workers: every client that comes back at
    # once is served
    $n->reload;
    my @c = map { ChatTest::WS->chat($n->port, user => "back$_") } 1 .. 10;
    $_->send_json({ op => 'join', room => 'early', id => 'j' }) for @c;
    my $joined = grep { my $m = $_->wait_for(id => 'j', timeout => 8);
                        $m && $m->{type} eq 'joined' } @c;
    is($joined, 10, 'after a reload: 10 of 10 immediate joins answered '
       . '"joined"');
    $n->stop;
    $r->stop;
}

# Redis away: the wait is bounded, the handshake works
{
    my $r = ChatTest::Redis->start;
    my $port = $r->port;
    $r->stop;
    my $n = ChatTest->start(server => $LOC,
                            http => "chat_redis redis://127.0.0.1:$port/0;");
    my $t0 = time;
    my $ws = ChatTest::WS->chat($n->port, user => 'alone');
    ok($ws && $ws->welcome, 'Redis away: the handshake works');
    my $j = $ws->call({ op => 'join', room => 'x' }, timeout => 8);
    my $took = time - $t0;
    is($j && $j->{code}, 'unavailable', 'join: unavailable');
    ok($took < 5, sprintf('... within the bounded wait (%.1f s)', $took));
    $n->stop;
}

done_testing;
