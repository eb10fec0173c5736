# A member that stops reading is dropped with 1013 once chat_send_buffer
# is exceeded; the others are not affected.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use Time::HiRes qw(time sleep);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_send_buffer 16k;
    chat_rate 100000r/s burst=100000;
}
location = /status { chat_status; }
EOF2
my $port = $n->port;

my $slow = ChatTest::WS->chat($port, user => 'slow', rcvbuf => 4096);
my $fast = ChatTest::WS->chat($port, user => 'fast');
my $flooder = ChatTest::WS->chat($port, user => 'flooder');
$_->join_room('flood') for $slow, $fast, $flooder;

my $text = 'x' x 1000;
my $sent = 0;
my $acked = 0;
my $fast_got = 0;
my $deadline = time + 30;
my $slow_closed = 0;

# $slow reads nothing from now on
while ($sent < 10000 && time < $deadline) {
    my $batch = '';
    for (1 .. 4) {
        $sent++;
        $batch .= ChatTest::WS::frame(payload => ChatTest::json()->encode(
            { op => 'send', room => 'flood', text => $text, id => "f$sent" }));
    }
    $flooder->send_raw($batch) or last;
    # the flooder and the fast member keep reading
    while ($acked < $sent) {
        my $m = $flooder->recv_json(timeout => 5) or last;
        $acked++ if $m->{type} eq 'ack';
    }
    while ($fast_got < $sent) {
        my $m = $fast->recv_json(timeout => 5) or last;
        $fast_got++ if $m->{type} eq 'message';
    }
    $flooder->{pending} = [];
    if ($sent % 100 == 0) {
        my $st = $n->status;
        if ($st && $st->{slow_consumers}) {
            $slow_closed = 1;
            last;
        }
    }
}
diag("sent $sent messages of 1 KB");
ok($slow_closed, 'status counts a slow consumer');
is($acked, $sent, 'every send acknowledged');

# the fast member got everything so far, in order
my @rest = $fast->collect(n => $sent - $fast_got, type => 'message',
                          timeout => 10);
is($fast_got + @rest, $sent, 'fast member received every message');

# the slow one: whatever arrived, then a close 1013
my ($msgs, $in_order, $last_seq) = (0, 1, 0);
my $code;
my $t = time + 15;
while (time < $t) {
    my $m = $slow->recv_message(timeout => 5);
    if (!$m) {
        last if $slow->{got_close} || $slow->{eof};
        next;
    }
    my $j = eval { ChatTest::json()->decode($m->{payload}) } or next;
    next unless $j->{type} eq 'message';
    $msgs++;
    $in_order = 0 if $j->{seq} != $last_seq + 1 && $last_seq;
    $last_seq = $j->{seq};
}
ok($slow->{got_close}, 'slow consumer gets a close frame');
is($slow->{close_code}, 1013, 'slow consumer close code 1013');
ok($slow->eof(5), 'slow consumer: TCP closed');
ok($in_order, "slow consumer got $msgs messages in order before the close");
ok($msgs < $sent, 'slow consumer did not get everything');

ok($fast->alive, 'fast member still connected');
ok($flooder->alive, 'flooder still connected');
my $ack = $flooder->call({ op => 'send', room => 'flood', text => 'after' });
is($ack && $ack->{type}, 'ack', 'room still works');
my $m = $fast->wait_for(type => 'message',
                        match => sub { $_[0]{text} eq 'after' });
ok($m, 'fast member gets the next message');

my $st = $n->status;
is($st->{slow_consumers}, 1, 'slow_consumers = 1');
is($st->{workers}[0]{slow_consumers}, 1, 'per-worker slow_consumers = 1');
ok(ChatTest::wait_until(sub { ($n->status->{connections} // -1) == 2 }, 5),
   'slow consumer no longer counted as a connection');

$n->stop;
done_testing;
