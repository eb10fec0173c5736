# chat_postgres: consumers of the stream group `writers` that hold nothing,
# have not read for 15 s and whose worker is not in the workers' registry
# are deleted (every restarted or killed worker would otherwise leave one
# behind for good); a live worker's consumer stays however long it has
# had nothing to read, and messages go on reaching Postgres.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $LOC = 'location = /chat { chat; chat_user $arg_user; }';

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 1, workers => 1, server => $LOC, http => "chat_presence_ttl 3s;\n",
    allow_log => [ qr/exited on signal 9\b/ ]);

sub consumers {
    my $list = $r->cmd('XINFO', 'CONSUMERS', 'chat:stream', 'writers');
    my %c;
    for my $e (@$list) {
        my %f = @$e;
        $c{$f{name}} = \%f;
    }
    return \%c;
}

my $a = ChatTest::WS->chat($n->port, user => 'alice');
my $worker = $a->welcome->{worker};
$a->join_room('c');
is($a->call({ op => 'send', room => 'c', text => 'one' })->{type}, 'ack',
   'first message acked');
is($pg->wait_count(1, timeout => 10), 1, 'and in Postgres');
ok(consumers()->{$worker}, "the worker's consumer exists ($worker)");

# a gone worker's consumer, holding nothing
$r->cmd('XGROUP', 'CREATECONSUMER', 'chat:stream', 'writers', 'gone/1/1');
ok(consumers()->{'gone/1/1'}, 'a consumer of a gone worker');

my $t0 = time;
my $deadline = $t0 + 45;
sleep 0.5 while consumers()->{'gone/1/1'} && time < $deadline;
my $c = consumers();
ok(!$c->{'gone/1/1'}, sprintf('deleted after %.0f s', time - $t0));
ok($c->{$worker}, "the live worker's consumer stays");

is($a->call({ op => 'send', room => 'c', text => 'two' })->{type}, 'ack',
   'a message after the cleanup acked');
is($pg->wait_count(2, timeout => 10), 2, 'and in Postgres');

# a worker killed: its consumer goes once its registry entry expired
my ($pid) = $n->worker_pids;
kill 'KILL', $pid;
$a->close_socket;
$t0 = time;
$deadline = $t0 + 45;
sleep 0.5 while consumers()->{$worker} && time < $deadline;
ok(!consumers()->{$worker},
   sprintf("a killed worker's consumer deleted after %.0f s", time - $t0));

my $b = ChatTest::WS->chat($n->port, user => 'bob');
isnt($b->welcome->{worker}, $worker, 'a new worker');
$b->join_room('c');
is($b->call({ op => 'send', room => 'c', text => 'three' })->{type}, 'ack',
   'the new worker stores messages');
is($pg->wait_count(3, timeout => 10), 3, 'and they reach Postgres');
ok(consumers()->{$b->welcome->{worker}}, "with the new worker's consumer");

$b->close_socket;
$n->stop;
done_testing;
