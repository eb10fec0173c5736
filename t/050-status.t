# chat_status: JSON and Prometheus output, counters.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
location = /status { chat_status; }
EOF2
my $port = $n->port;
my @FIELDS = qw(connections rooms messages_received messages_delivered
                slow_consumers);

# What GET /status says after each phase of the test (the fields named).
my %AFTER = (
    'initial'     => { map { $_ => 0 } @FIELDS },
    'after joins' => { connections => 3, rooms => 2 },
    'after sends' => { messages_received => 4, messages_delivered => 7 },
);

# GET /status: 200, a JSON object, the values of %AFTER for $phase
sub status_is {
    my ($phase) = @_;
    my ($st, $h, $j, $body) = ChatTest::http_get_json($port, '/status');
    is($st, 200, "$phase: 200");
    like($h->{'content-type'} // '', qr{^application/json},
         "$phase: JSON type");
    ok(ref $j eq 'HASH', "$phase: JSON object") or diag($body);
    my $want = $AFTER{$phase};
    is(ref $j eq 'HASH' ? $j->{$_} : undef, $want->{$_},
       "$phase: $_ = $want->{$_}")
        for sort keys %$want;
    return ($j || {}, $body);
}

my ($s, $raw) = status_is('initial');
is_deeply([ sort keys %$s ], [ sort(@FIELDS, 'workers') ],
          'top-level fields');
like($raw, qr/"connections":0[,}]/, 'numbers are JSON numbers');
is(ref $s->{workers}, 'ARRAY', 'workers array');
is(scalar @{$s->{workers} || []}, 1, 'one worker');
my $w = $s->{workers}[0] || {};
is_deeply([ sort keys %$w ], [ sort(@FIELDS, 'worker', 'pid') ],
          'worker fields');
is($w->{pid}, ($n->worker_pids)[0], 'worker pid is the real pid');
ok(defined $w->{worker} && !ref $w->{worker} && length $w->{worker},
   'worker id is a string');
like($raw, qr/"worker":"/, 'worker id is a JSON string');

# activity
my $a = ChatTest::WS->chat($port, user => 'a');
my $b = ChatTest::WS->chat($port, user => 'b');
my $c = ChatTest::WS->chat($port, user => 'c');
is($a->welcome->{worker}, $w->{worker}, 'welcome.worker matches status');
$a->join_room('r1');
$b->join_room('r1');
$c->join_room('r2');
$a->join_room('r3');
$a->call({ op => 'leave', room => 'r3' });

($s) = status_is('after joins');

for my $i (1 .. 3) {
    $a->call({ op => 'send', room => 'r1', text => "m$i" });
}
$c->call({ op => 'send', room => 'r2', text => 'solo' });
$a->call({ op => 'send', room => 'nowhere', text => 'x' });      # not_joined
$b->collect(n => 3, type => 'message');

# messages_received counts accepted sends, messages_delivered each
# recipient
($s) = status_is('after sends');
$w = $s->{workers}[0];
for my $f (@FIELDS) {
    is($w->{$f}, $s->{$f}, "worker $f equals the total");
}

# prometheus
{
    my ($st, $h, $body) = ChatTest::http_get($port, '/status?format=prometheus');
    is($st, 200, 'prometheus: 200');
    like($h->{'content-type'} // '', qr{^text/plain}, 'prometheus: text/plain');
    # the values of JSON after the sends
    my %metric = (
        ngx_chat_connections              => [ 'gauge',   3 ],
        ngx_chat_rooms                    => [ 'gauge',   2 ],
        ngx_chat_messages_received_total  => [ 'counter', 4 ],
        ngx_chat_messages_delivered_total => [ 'counter', 7 ],
        ngx_chat_slow_consumers_total     => [ 'counter', 0 ],
    );
    my $wid = $w->{worker};
    for my $m (sort keys %metric) {
        my ($type, $v) = @{$metric{$m}};
        like($body, qr/^# HELP $m \S.*$/m, "$m HELP");
        like($body, qr/^# TYPE $m $type$/m, "$m TYPE $type");
        like($body, qr/^$m \Q$v\E$/m, "$m total = $v");
        like($body, qr/^$m\{worker="\Q$wid\E"\} \Q$v\E$/m,
             "$m per worker = $v");
    }
    my @bad = grep { !/^#/ && !/^ngx_chat_\w+(\{worker="[^"]*"\})? \d+$/ }
              grep { length } split /\n/, $body;
    ok(!@bad, 'every line is a comment or a sample') or diag(join "\n", @bad);
    like($body, qr/\n\z/, 'ends with a newline');
}

# disconnects
$c->close_socket;
ok(ChatTest::wait_until(sub { (status_q()->{connections} // -1) == 2 }, 3),
   'connections drop on disconnect');
is(status_q()->{rooms}, 1, 'the room of the gone member is not counted');
$a->send_close(1000);
$a->expect_close;
$b->close_socket;
ok(ChatTest::wait_until(sub { (status_q()->{connections} // -1) == 0 }, 3),
   'connections back to 0');
$s = status_q();
is($s->{rooms}, 0, 'rooms back to 0');
is($s->{messages_received}, 4, 'counters keep their values');

# other requests to the status location: the raw request, the statuses
# that are right
for my $case (
    [ "HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      200, 405 ],
    [ "POST /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      . "Content-Length: 0\r\n\r\n", 405 ],
  )
{
    my ($raw, @ok) = @$case;
    my ($method) = $raw =~ /^(\S+)/;
    my ($st) = ChatTest::http_request($port, $raw);
    ok(defined $st && grep({ $st == $_ } @ok),
       "$method /status: " . join('|', @ok))
        or diag('got ' . ($st // 'no response'));
}

sub status_q { $n->status('/status') || {} }

$n->stop;
done_testing;
