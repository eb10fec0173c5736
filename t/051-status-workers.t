# Two workers without chat_redis: status sums over workers; each worker
# reports itself, with its number (slot).  The Prometheus series are the
# worker numbers: a crashed worker's replacement and a reload's new
# workers continue them, and their counters do not go back.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(workers => 2,
                        allow_log => [ qr/exited on signal 9\b/ ],
                        server => <<'EOF2');
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
is_deeply([ sort map { $_->{slot} } @{$s->{workers} || []} ], [ 0, 1 ],
          'slots 0 and 1');

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

# the Prometheus series by worker number, their values those of JSON
my %slot_conns = map { $_->{slot} => $_->{connections} }
                 @{$s->{workers} || []};
my $prom = prom();
is_deeply({ map { $_ => $prom->{"ngx_chat_connections|$_"} } 0, 1 },
          \%slot_conns, 'ngx_chat_connections{worker="N"} as in JSON');

# every client sends once: messages_received on both workers
for my $i (0 .. $#c) {
    $c[$i]->join_room("r$i");
    $c[$i]->call({ op => 'send', room => "r$i", text => 'x' });
}
$_->close_socket for @c;
ok(ChatTest::wait_until(sub { ($n->status->{connections} // -1) == 0 }, 3),
   'connections back to 0');
my $before = prom();
is(($before->{'ngx_chat_messages_received_total|0'} // 0)
   + ($before->{'ngx_chat_messages_received_total|1'} // 0), scalar @c,
   'the series sum to the messages received');

# a worker killed: its replacement takes its number, the series goes on
$s = $n->status;
my ($victim) = sort { $b->{messages_received} <=> $a->{messages_received} }
               @{$s->{workers} || []};
my $vslot = $victim->{slot};
cmp_ok($before->{"ngx_chat_messages_received_total|$vslot"}, '>', 0,
       "worker $vslot has counted messages");
kill 'KILL', $victim->{pid};
ChatTest::wait_until(sub {
    $s = $n->status;
    my @w = @{$s->{workers} || []};
    @w == 2 && !grep { $_->{pid} == $victim->{pid} } @w;
}, 5);
my ($new) = grep { $_->{slot} == $vslot } @{$s->{workers} || []};
ok($new && $new->{pid} != $victim->{pid},
   "the killed worker is replaced, in slot $vslot")
    or diag(ChatTest::enc($s));
is($new && $new->{messages_received}, 0, 'the new process counts from 0');
is($s->{messages_received}, scalar @c, 'the JSON sum keeps its value');
is_deeply(prom_counters(prom()), prom_counters($before),
          "after the crash, every counter series keeps its value");

# a reload: new processes, the same numbers, the same values
ok($n->reload, 'reload');
ChatTest::wait_until(sub {
    $s = $n->status;
    my %old = map { $_ => 1 } @pids, $new->{pid};
    my @w = @{$s->{workers} || []};
    @w == 2 && !grep { $old{$_->{pid}} } @w;
}, 10);
is_deeply([ sort map { $_->{slot} } @{$s->{workers} || []} ], [ 0, 1 ],
          'after the reload, slots 0 and 1 again');
is_deeply(prom_counters(prom()), prom_counters($before),
          'after the reload, every counter series keeps its value');

$n->stop;

# the samples of the text format: { "name|worker" => value }
sub prom {
    my ($st, $h, $body) = ChatTest::http_get($port, '/status',
                              { Accept => 'text/plain;version=0.0.4' });
    my %v;
    for ($body =~ /^(ngx_chat_\w+\{worker="\d+"\} \d+)$/mg) {
        /^(\w+)\{worker="(\d+)"\} (\d+)$/;
        $v{"$1|$2"} = $3;
    }
    return \%v;
}

sub prom_counters {
    my ($v) = @_;
    return { map { $_ => $v->{$_} } grep { /_total\|/ } keys %$v };
}
done_testing;
