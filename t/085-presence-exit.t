# A worker that exits cleanly (a reload, a stop) leaves the workers'
# registry itself, after its users' presence leaves have gone out: no
# other worker takes it for dead and nothing is logged.  A worker that
# really died is claimed once its entry expires, and said so at "error".
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $TTL = 2;
my $LOC = 'location = /chat { chat; chat_user $arg_user; }';

ChatTest::Redis::need_module(what => 'chat_redis', server => $LOC,
                             http => 'chat_redis redis://127.0.0.1:1/0;');

my $r = ChatTest::Redis->start;
my $n = $r->start_nginx(workers => 2, listen_opts => 'reuseport',
                        server => $LOC, http => "chat_presence_ttl ${TTL}s;\n",
                        allow_log => [ qr/exited on signal 9\b/ ]);
my $port = $n->port;

sub registry { my @w = sort @{$r->cmd('ZRANGE', 'chat:workers', 0, -1)}; @w }

# clients in a room on both workers
sub crowd {
    my ($tag) = @_;
    my (@c, %per);
    for my $i (1 .. 40) {
        my $ws = ChatTest::WS->chat($port, user => "$tag$i", ignore => []);
        $ws->join_room('hall');
        push @c, $ws;
        $per{$ws->welcome->{worker}}++;
        last if keys %per == 2 && $i >= 6;
    }
    return (\@c, \%per);
}

my ($c, $per) = crowd('a');
is(scalar keys %$per, 2, 'clients on both workers');
my $deadline = time + 5;
sleep 0.1 while scalar(my @w = registry()) < 2 && time < $deadline;
my @before = registry();
is(scalar @before, 2, 'both workers in the registry');

# ---- a reload: the old workers leave the registry themselves
my $log = length $n->error_log;
ok($n->reload, 'reloaded');
$_->expect_close for @$c;
$deadline = time + 10;
sleep 0.1 while grep({ my $w = $_; grep { $_ eq $w } @before } registry())
                && time < $deadline;
is_deeply([ grep { my $w = $_; grep { $_ eq $w } @before } registry() ], [],
          'the old workers left the registry');
is($r->cmd('HLEN', 'chat:{hall}:presence'), 0,
   "their users' presence in the room is gone");
is(scalar @{$r->cmd('KEYS', 'chat:worker:*:rooms')}, 0,
   'no room set of a worker is left');

sleep 3 * $TTL + 1;                     # what an expired entry would show
my $since = substr($n->error_log, $log);
unlike($since, qr/died without leaving the registry|is gone/,
       'nobody took a worker that exited cleanly for dead');

# ---- a worker killed: claimed, swept, logged at error
($c, $per) = crowd('b');
my ($victim) = grep { ChatTest::worker_pid_of($n, $_) } @$c;
my $pid = ChatTest::worker_pid_of($n, $victim);
my ($witness) = grep { (ChatTest::worker_pid_of($n, $_) // 0) != $pid } @$c;
ok($pid && $witness, "a client on worker $pid, another elsewhere");
$log = length $n->error_log;
kill 'KILL', $pid;
$deadline = time + 3 * $TTL + 2;
sleep 0.2 while substr($n->error_log, $log) !~ /died without leaving/
                && time < $deadline;
like(substr($n->error_log, $log),
     qr/\[error\].*chat: worker "[0-9a-f]{16}" died without leaving the registry, its users leave 1 rooms/,
     'the killed worker is claimed and logged at error');
my $u = $victim->welcome->{user};
ok($witness->wait_for(type => 'presence', timeout => 2,
                      match => sub { $_[0]{user} eq $u
                                     && $_[0]{event} eq 'leave' }),
   "$u, on the killed worker, left the room for the others")
    or diag(enc($witness->drain));

$_->close_socket for @$c;
$n->stop;
done_testing;
