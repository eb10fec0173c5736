# Graceful shutdown and reload close client connections with 1001.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use Time::HiRes qw(time);

my $conf = <<'EOF2';
location = /chat { chat; chat_user $arg_user; }
location = /echo { chat_echo; }
EOF2

# reload: connections of the old worker get 1001, new ones work
{
    my $n = ChatTest->start(server => $conf);
    my $old = ChatTest::WS->chat($n->port, user => 'old');
    $old->join_room('r');
    my $echo = ChatTest::WS->connect($n->port, path => '/echo');
    my $t = time;
    ok($n->reload, 'reload');
    $old->close_ok(1001, 'chat connection on reload');
    $echo->close_ok(1001, 'echo connection on reload');
    ok(time - $t < 8, 'closed promptly');
    my $new = ChatTest::WS->chat($n->port, user => 'new');
    isnt($new->welcome->{worker}, $old->welcome->{worker},
         'new connection on a new worker');
    ok($new->alive, 'new worker serves');
    ok(ChatTest::wait_until(sub { $n->worker_pids == 1 }, 5),
       'old worker exited');
    $n->stop;
}

# quit: clients get 1001 and nginx exits quickly
{
    my $n = ChatTest->start(server => $conf);
    my @c = map { ChatTest::WS->chat($n->port, user => "q$_") } 1 .. 3;
    $_->join_room('r') for @c;
    my $echo = ChatTest::WS->connect($n->port, path => '/echo');
    my $t = time;
    $n->stop(keep_clients => 1);
    ok(time - $t < 5, 'nginx stopped within 5 s with clients connected');
    $_->close_ok(1001, 'chat connection on shutdown') for @c;
    $echo->close_ok(1001, 'echo connection on shutdown');
}

done_testing;
