# Two workers without chat_redis: status sums over workers; each worker
# reports itself.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(workers => 2, server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
location = /status { chat_status; }
EOF2
my $port = $n->port;
my @pids = $n->worker_pids;
is(scalar @pids, 2, 'two workers');

# a worker takes its status slot in its init_process, which may come a
# little after the process exists
my $s;
ChatTest::wait_until(sub {
    $s = $n->status;
    @{$s->{workers} || []} == 2;
}, 3);
is(scalar @{$s->{workers} || []}, 2, 'status lists both workers');
is_deeply([ sort { $a <=> $b } map { $_->{pid} } @{$s->{workers} || []} ],
          [ sort { $a <=> $b } @pids ], 'worker pids');
my %wid = map { $_->{worker} => 1 } @{$s->{workers} || []};
is(scalar keys %wid, 2, 'distinct worker ids');

# spread connections until both workers hold some
my (@c, %per);
for my $i (1 .. 60) {
    my $ws = ChatTest::WS->chat($port, user => "u$i");
    push @c, $ws;
    $per{$ws->welcome->{worker}}++;
    last if keys %per == 2 && $i >= 10;
}
SKIP: {
    skip 'the kernel gave every connection to one worker', 3
        if keys %per < 2;
    $s = $n->status;
    is($s->{connections}, scalar @c, 'total connections');
    my %got = map { $_->{worker} => $_->{connections} } @{$s->{workers}};
    is_deeply(\%got, \%per, 'per-worker connections match the welcomes');
    my $sum = 0;
    $sum += $_->{connections} for @{$s->{workers}};
    is($sum, $s->{connections}, 'total is the sum');
}

$_->close_socket for @c;
ok(ChatTest::wait_until(sub { ($n->status->{connections} // -1) == 0 }, 3),
   'connections back to 0');
$n->stop;
done_testing;
