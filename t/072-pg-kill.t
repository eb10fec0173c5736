# chat_postgres with 2 workers, one of them SIGKILLed in the middle of a
# send loop.  Its clients are disconnected and reconnect (to the living
# worker or the one the master starts instead); the clients of the other
# worker keep sending.  Every message acked before the kill, and after it,
# reaches Postgres, once; in fact every stored message does: seqs per room
# 1..chat:{R}:seq without a gap.  So that the killed worker surely holds
# messages it read but had not written, chat_messages is locked (INSERTs
# wait) from 300 acks until after the kill, and the INSERTs waiting for
# it are then terminated: what the dead worker had read never reached
# Postgres, the living ones claim it after ~15 s idle (and retry theirs).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my @ROOMS = ('k1', 'k2');
my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
    chat_send_buffer 16m;
}
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC,
    allow_log => [ qr/exited on signal 9\b/ ]);
# For the diagnostics only (the stream is no part of the contract): the
# pending entries per consumer of each stream in Redis.
sub stream_state {
    my @out;
    my ($cursor, $keys) = (0);
    do {
        my $rep = $r->cmd('SCAN', $cursor, 'TYPE', 'stream', 'COUNT', 1000);
        ($cursor, $keys) = @$rep;
        for my $k (@$keys) {
            my $len = $r->cmd('XLEN', $k);
            my ($groups) = $r->try_cmd('XINFO', 'GROUPS', $k);
            for my $g (@{$groups || []}) {
                my %g = @$g;
                my ($p) = $r->try_cmd('XPENDING', $k, $g{name});
                my $per = join ' ', map { "$_->[0]=$_->[1]" }
                                    @{$p && $p->[3] || []};
                push @out, "$k len $len group $g{name} pending "
                           . "$g{pending}" . ($per ? " ($per)" : '');
            }
            push @out, "$k len $len" unless @{$groups || []};
        }
    } while ($cursor ne '0');
    return @out ? join('; ', @out) : 'none';
}

my $port = $n->port;
my @pids = $n->worker_pids;
is(scalar @pids, 2, '2 workers');

# ---- at least 3 clients on each worker
my (@c, %on);
my $uid = 0;

sub connect_client {
    my ($user, $room) = @_;
    my $ws = ChatTest::WS->chat($port, user => $user);
    $ws->{user} = $user;
    $ws->{room} = $room;
    $ws->{pid} = ChatTest::Pg::worker_pid_of($n, $ws) // 0;
    $ws->{unacked} = {};
    $ws->join_room($room);
    return $ws;
}

for (1 .. 60) {
    $uid++;
    my $ws = connect_client("s$uid", $ROOMS[$uid % 2]);
    if (($on{$ws->{pid}} // 0) >= 3) {
        $ws->close_socket;
        next;
    }
    push @c, $ws;
    $on{$ws->{pid}}++;
    last if keys(%on) == 2 && !grep { $_ < 3 } values %on;
}
ok(keys(%on) == 2 && !grep({ $_ < 3 } values %on),
   'at least 3 clients on each worker: '
   . join(', ', map { "pid $_: $on{$_}" } sort keys %on));
my $victim = $pids[0];

my (%acked, %sent_text, %uncertain);  # acked: "room|seq" => [user, text]
my %before;                           # "room|seq" acked before the kill
my ($k, $errs, $acked_before_kill) = (0, 0);
my ($killed, $t_kill, @lost, $lock, $t_release);

sub record {
    my ($ws, $m) = @_;
    my $t = $m->{type} // '';
    return unless $t eq 'ack' || $t eq 'error';
    my $text = delete $ws->{unacked}{$m->{id} // ''} // return;
    if ($t eq 'ack') {
        my $key = "$m->{room}|$m->{seq}";
        diag("seq acked twice: $key") if $acked{$key};
        $acked{$key} = [ $ws->{user}, $text ];
        $before{$key} = 1 unless $killed;
    } else {
        $errs++;
        diag('error: ' . enc($m)) if $errs <= 5;
        $uncertain{$text} = 1;
    }
}

my $t0 = time;
my $deadline = time + 60;
while (time < $deadline) {
    my $n_acked = keys %acked;
    last if $killed && $n_acked >= $acked_before_kill + 600;

    if (!$lock && !$killed && $n_acked >= 300) {
        $lock = $pg->lock_table('chat_messages');
        diag("chat_messages locked after $n_acked acks");
    }
    if (!$killed && $n_acked >= 600) {
        $acked_before_kill = $n_acked;
        diag($pg->lock_waiters . ' sessions wait for the lock; '
             . $pg->count . ' rows written');
        diag('the stream: ' . stream_state());
        $killed = kill 'KILL', $victim;
        $t_kill = time;
        diag("worker $victim SIGKILLed after $n_acked acks, "
             . scalar(map { keys %{$_->{unacked}} } @c) . ' sends in flight');
    }

    for my $ws (@c) {
        # disconnected (the worker died): what it had in flight is uncertain;
        # come back as the same user
        if ($ws->{eof} || !$ws->fh) {
            push @lost, $ws;
            $uncertain{$_} = 1 for values %{$ws->{unacked}};
            my $new = eval { connect_client($ws->{user}, $ws->{room}) };
            if (!$new) {
                diag("reconnect of $ws->{user} failed: $@");
                next;
            }
            $ws = $new;       # aliases the element of @c
            next;
        }
        while (keys %{$ws->{unacked}} < 5) {
            $k++;
            my $text = "m$k from $ws->{user}";
            $sent_text{$text} = $ws->{user};
            $ws->{unacked}{"i$k"} = $text;
            $ws->send_json({ op => 'send', room => $ws->{room},
                             text => $text, id => "i$k" })
                or last;
        }
    }
    ChatTest::WS::pump(\@c, timeout => 0.02);
    for my $ws (@c) {
        record($ws, $_) for $ws->drain(timeout => 0);
    }
}
# the last answers
{
    my $end = time + 5;
    while (time < $end && grep { %{$_->{unacked}} && !$_->{eof} } @c) {
        ChatTest::WS::pump(\@c, timeout => 0.1);
        for my $ws (@c) {
            record($ws, $_) for $ws->drain(timeout => 0);
        }
    }
    for my $ws (@c) {
        $uncertain{$_} = 1 for values %{$ws->{unacked}};
    }
}
my $n_acked = keys %acked;
diag('the stream before the release: ' . stream_state());
diag($pg->terminate_lock_waiters . ' INSERTs waiting for the lock '
     . 'terminated');
$lock->release if $lock;
$t_release = time;
ok($killed, 'a worker was killed during the send loop');
diag(sprintf('%d acked (%d before the kill), %d uncertain, %d errors, '
             . 'in %.1f s', $n_acked, $acked_before_kill // 0,
             scalar keys %uncertain, $errs, time - $t0));
ok($n_acked >= ($acked_before_kill // 0) + 600,
   'the send loop went on after the kill');
my %lost_pid = map { $_->{pid} => 1 } @lost;
ok(@lost >= 3, scalar(@lost) . ' clients were disconnected by the kill');
is_deeply([ keys %lost_pid ], [ $victim ],
          '... all of them clients of the killed worker');
ok(ChatTest::wait_until(sub { my @w = $n->worker_pids; @w == 2 }, 5),
   'the master started a new worker');

# ---- Postgres: everything stored arrives
my %max;
$max{$_} = $r->cmd('GET', "chat:{$_}:seq") // 0 for @ROOMS;
my $stored = 0;
$stored += $_ for values %max;
ok($stored >= $n_acked, "Redis: $stored stored (>= $n_acked acked)");
my $have = $pg->wait_count($stored, timeout => 40);
is($have, $stored, sprintf('all %d stored messages in Postgres %.1f s '
                           . 'after the kill, %.1f s after the lock was '
                           . 'released', $stored, time - $t_kill,
                           time - $t_release));
diag('the stream at the end: ' . stream_state());
sleep 1;
is($pg->count, $stored, '... and no more a second later');

my $rows = $pg->messages;
my %row = map { ("$_->{room}|$_->{seq}" => $_) } @$rows;
my ($missing_before, $missing_after, $wrong) = (0, 0, 0);
for my $key (sort keys %acked) {
    my $x = $row{$key};
    my ($user, $text) = @{$acked{$key}};
    if (!$x) {
        $before{$key} ? $missing_before++ : $missing_after++;
        diag('missing: ' . ($before{$key} ? 'acked before' : 'acked after')
             . " the kill: $key $text")
            if $missing_before + $missing_after <= 10;
    } elsif ($x->{body} ne $text || $x->{user_id} ne $user) {
        $wrong++;
        diag("$key: acked '$user: $text', row '$x->{user_id}: $x->{body}'")
            if $wrong <= 10;
    }
}
is($missing_before, 0, 'every message acked before the kill ('
   . scalar(keys %before) . ') is in Postgres');
is($missing_after, 0, 'every message acked after the kill ('
   . ($n_acked - keys %before) . ') is in Postgres');
is($wrong, 0, '... with the body and user_id that were sent');
{
    my (%seen, $dup, $foreign);
    for my $x (@$rows) {
        $dup++ if $seen{$x->{body}}++;
        $foreign++ unless ($sent_text{$x->{body}} // '') eq $x->{user_id};
    }
    ok(!$dup, 'no message twice in Postgres');
    ok(!$foreign, 'every row is a message that was sent, by its user');
}
for my $room (@ROOMS) {
    my @s = map { $_->{seq} } grep { $_->{room} eq $room } @$rows;
    is_deeply(\@s, [ 1 .. $max{$room} ],
              "$room: seqs 1..$max{$room} in Postgres, no gap");
}
{
    # of the uncertain ones (in flight at the kill), those stored are there
    my %body = map { $_->{body} => 1 } @$rows;
    my $in = grep { $body{$_} } keys %uncertain;
    diag("$in of " . scalar(keys %uncertain) . ' uncertain sends were '
         . 'stored');
}

$_->close_socket for @c;
$n->stop;
$r->stop;
$pg->stop;
done_testing;
