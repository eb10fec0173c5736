# The Redis part of the harness (t/lib/ChatTest/Redis.pm): start, RESP
# commands, redis-cli, pattern subscriptions, kill, restart, stop, unix
# socket, password, cleanup.  Needs no chat module.  A missing redis-server
# fails: `make deps` installs it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

ok(-x ChatTest::Redis::server_bin(),
   'redis-server installed at ' . ChatTest::Redis::server_bin())
    or do {
        diag('redis-server missing: run `make deps`');
        done_testing;
        exit 1;
    };
ok(-x ChatTest::Redis::cli_bin(), 'redis-cli installed');

ok(!eval { ChatTest::Redis->start(bin => '/nonexistent/redis-server'); 1 },
   'a missing redis-server binary dies');
like($@, qr/make deps/, '... saying how to install it');

my $r = ChatTest::Redis->start;
my $port = $r->port;
ok($port > 0, "port $port");
is($r->url, "redis://127.0.0.1:$port/0", 'url');
is($r->url(db => 3), "redis://127.0.0.1:$port/3", 'url with db');
ok($r->alive, 'running');
my $pid = $r->pid;
ok(kill(0, $pid), "pid $pid exists");
is($r->cmd('PING'), 'PONG', 'PING');
like($r->cmd('CONFIG', 'GET', 'bind')->[1], qr/^127\.0\.0\.1$/,
     'bound to loopback only');
is($r->cmd('CONFIG', 'GET', 'save')->[1], '', 'no RDB snapshots');
is($r->cmd('CONFIG', 'GET', 'appendonly')->[1], 'no', 'no AOF');

# commands: strings, integers, nil, arrays, binary-safe values, errors
is($r->cmd('SET', 'k', "a\r\nb\0c"), 'OK', 'SET');
is($r->cmd('GET', 'k'), "a\r\nb\0c", 'GET binary-safe');
is($r->cmd('INCR', 'n'), 1, 'INCR');
ok(!defined $r->cmd('GET', 'missing'), 'nil');
is($r->cmd('ZADD', 'z', 2, 'two', 1, 'one'), 2, 'ZADD');
is_deeply($r->cmd('ZRANGE', 'z', 0, -1, 'WITHSCORES'),
          [ 'one', 1, 'two', 2 ], 'array reply');
my ($v, $err) = $r->try_cmd('NOSUCHCOMMAND');
like($err, qr/^ERR/, 'error reply from try_cmd');
ok(!eval { $r->cmd('NOSUCHCOMMAND'); 1 }, 'cmd dies on an error reply');

# redis-cli
is($r->cli('--raw', 'GET', 'n'), "1\n", 'cli --raw GET');
is($r->{cli_rc}, 0, 'cli exit code');
is($r->cli('--raw', 'PUBSUB', 'NUMSUB', 'ch'), "ch\n0\n", 'cli NUMSUB');

# pub/sub: a pattern subscriber is not counted by NUMSUB
my $s = $r->psubscribe('chat:{room}');
is($r->numsub('chat:{room}'), 0, 'pattern subscription not in NUMSUB');
is($r->cmd('PUBLISH', 'chat:{room}', 'hello'), 1, 'PUBLISH reaches it');
my $m = $s->next(timeout => 2);
is_deeply($m, { pattern => 'chat:{room}', channel => 'chat:{room}',
                payload => 'hello' }, 'pmessage received');
my $s2 = $r->subscribe('chat:{room}');
is($r->numsub('chat:{room}'), 1, 'SUBSCRIBE counted by NUMSUB');
$s2->close;
is($r->wait_numsub('chat:{room}', 0, 3), 0, 'wait_numsub after close');
$r->cmd('PUBLISH', 'chat:{room}', 'x' x 100000);
$m = $s->next(timeout => 2);
is(length($m->{payload} // ''), 100000, 'large payload');
ok(!defined $s->next(timeout => 0.2), 'next times out');
$s->close;

# kill: the port refuses, the process is reaped
$r->kill;
ok(!$r->alive, 'killed');
ok(!kill(0, $pid), 'process gone');
($v, $err) = $r->try_cmd('PING');
ok(defined $err, "PING after kill fails ($err)");
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                          Proto => 'tcp'), 'port closed');

# restart: same port, empty
my $t0 = time;
$r->restart;
ok($r->alive, sprintf('restarted in %.2f s', time - $t0));
is($r->port, $port, 'same port');
isnt($r->pid, $pid, 'new process');
is($r->cmd('PING'), 'PONG', 'PING after restart');
ok(!defined $r->cmd('GET', 'k'), 'data gone after restart');
$r->cmd('SET', 'k', 'v');
$r->restart;
ok(!defined $r->cmd('GET', 'k'), 'restart of a running server: data gone');

# stop: SHUTDOWN NOSAVE
$pid = $r->pid;
ok($r->stop, 'stop');
ok(!$r->alive && !kill(0, $pid), 'stopped');
ok($r->stop, 'stop twice is harmless');
$r->restart;
ok($r->alive, 'restart after stop');
my $dir = $r->dir;
$pid = $r->pid;
undef $r;
ok(!kill(0, $pid), 'DESTROY kills the server');
ok($ENV{CHAT_TEST_KEEP} || !-d $dir, 'DESTROY removes its directory');

# unix socket
$r = ChatTest::Redis->start(unixsocket => 1);
ok(-S $r->unixsocket, 'unix socket ' . $r->unixsocket);
is($r->unix_url, 'unix:' . $r->unixsocket, 'unix_url');
is(sprintf('%o', (stat $r->unixsocket)[2] & 0777), '777', 'socket mode 777');
is($r->cmd({ unix => 1 }, 'PING'), 'PONG', 'PING over the unix socket');
$r->restart;
ok(-S $r->unixsocket, 'unix socket after restart');
is($r->cmd({ unix => 1 }, 'PING'), 'PONG', '... answers');
$r->stop;

# password
$r = ChatTest::Redis->start(requirepass => 's3cret');
is($r->url(password => 1), 'redis://:s3cret@127.0.0.1:' . $r->port . '/0',
   'url with password');
is($r->cmd('PING'), 'PONG', 'PING with AUTH');
($v, $err) = $r->try_cmd({ noauth => 1 }, 'GET', 'x');
like($err // '', qr/NOAUTH/, 'without AUTH: NOAUTH');
is($r->cli('--raw', 'SET', 'x', 'y'), "OK\n", 'redis-cli with the password');
is($r->cmd('GET', 'x'), 'y', 'value set through redis-cli');
$r->kill;

# a second server at the same time gets another port
my $r1 = ChatTest::Redis->start;
my $r2 = ChatTest::Redis->start;
isnt($r1->port, $r2->port, 'two servers, two ports');
$r1->cmd('SET', 'which', 'one');
ok(!defined $r2->cmd('GET', 'which'), 'independent data');

# need_module passes a valid configuration through
ok(ChatTest::Redis::need_module(no_module => 1,
                                server => 'location / { return 204; }'),
   'need_module: valid configuration');

# the END block stops what is still running ($r1, $r2)
done_testing;
