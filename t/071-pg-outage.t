# chat_postgres while Postgres is away.  Stopped (fast shutdown, the pool's
# connections closed under the workers): 1,000 messages are sent and acked
# anyway, the clients disconnect, Postgres stays down a while, starts again:
# all 1,000 rows appear, once, seqs in order.  Then a crash (SIGKILL of the
# postmaster) in the middle of a send loop: every acked message still
# reaches Postgres once it is back.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
    chat_send_buffer 16m;
}
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC);
my $port = $n->port;
my @pids = $n->worker_pids;

my %acked;     # "room|seq" => [user, text], every ack of the whole test

# Sends $count messages round-robin from @$clients (each in its own room),
# at most $window unacked per client, in bursts of $burst with $pause s
# between them; $during->($acked_so_far) is called between bursts.
# Returns the number of acks; errors are diagnosed and counted in $$errs.
sub send_many {
    my (%o) = @_;
    my @c = @{$o{clients}};
    my $tag = $o{tag};
    my ($sent, $got, $errs) = (0, 0, 0);
    my %pending;   # id => [ws, text]
    my $deadline = time + ($o{timeout} // 60);
    my $burst_left = $o{burst} // $o{count};
    while (time < $deadline && ($sent < $o{count} || %pending)) {
        for my $ws (@c) {
            last if $sent >= $o{count} || $burst_left <= 0;
            next if ($ws->{unacked} // 0) >= ($o{window} // 20);
            my $k = ++$sent;
            $burst_left--;
            my $id = "$tag-$k";
            my $text = "$tag $k from $ws->{user}";
            $ws->send_json({ op => 'send', room => $ws->{room},
                             text => $text, id => $id })
                or diag("$ws->{user}: write failed");
            $pending{$id} = [ $ws, $text ];
            $ws->{unacked}++;
        }
        ChatTest::WS::pump(\@c, timeout => 0.02);
        for my $ws (@c) {
            for my $m ($ws->drain(timeout => 0)) {
                next unless ($m->{type} // '') =~ /^(?:ack|error)$/;
                my $p = delete $pending{$m->{id} // ''} or next;
                $ws->{unacked}--;
                if ($m->{type} eq 'ack') {
                    $got++;
                    my $key = "$m->{room}|$m->{seq}";
                    diag("seq acked twice: $key") if $acked{$key};
                    $acked{$key} = [ $ws->{user}, $p->[1] ];
                } else {
                    $errs++;
                    diag('error: ' . enc($m)) if $errs <= 5;
                }
            }
        }
        if ($burst_left <= 0 && $sent < $o{count}) {
            $o{during}->($got) if $o{during};
            sleep($o{pause} // 0);
            $burst_left = $o{burst};
        }
    }
    diag(scalar(keys %pending) . " sends of $tag got no answer") if %pending;
    return ($got, $errs);
}

sub check_rows {
    my ($name, @rooms) = @_;
    my %in = map { $_ => 1 } @rooms;
    my $rows = $pg->messages;
    my (%row, $dup);
    for my $x (grep { $in{$_->{room}} } @$rows) {
        $dup++ if $row{"$x->{room}|$x->{seq}"}++;
    }
    ok(!$dup, "$name: each (room, seq) once in Postgres");
    my ($missing, $wrong) = (0, 0);
    my %byroom;
    for my $x (@$rows) {
        next unless $in{$x->{room}};
        push @{$byroom{$x->{room}}}, $x;
    }
    for my $room (@rooms) {
        my @s = map { $_->{seq} } @{$byroom{$room} || []};
        my $max = $r->cmd('GET', "chat:{$room}:seq") // 0;
        is_deeply(\@s, [ 1 .. $max ], "$name: $room: seqs 1..$max in order");
        my %x = map { $_->{seq} => $_ } @{$byroom{$room} || []};
        for my $key (grep { /^\Q$room\E\|/ } keys %acked) {
            my ($seq) = $key =~ /\|(\d+)$/;
            my $x = $x{$seq};
            if (!$x) {
                $missing++;
            } elsif ($x->{body} ne $acked{$key}[1]
                     || $x->{user_id} ne $acked{$key}[0])
            {
                $wrong++;
                diag("$key: acked '$acked{$key}[1]', row '$x->{body}'")
                    if $wrong <= 5;
            }
        }
    }
    is($missing, 0, "$name: every acked message is in Postgres");
    is($wrong, 0, "$name: ... with its body and user_id");
}

sub clients {
    my ($tag, @rooms) = @_;
    my @c;
    for my $i (0 .. 3) {
        my $ws = ChatTest::WS->chat($port, user => "$tag$i");
        $ws->{user} = "$tag$i";
        $ws->{room} = $rooms[$i % @rooms];
        $ws->join_room($ws->{room});
        push @c, $ws;
    }
    return @c;
}

# ============================================================ up
{
    my @c = clients('up', 'o1', 'o2');
    my ($got) = send_many(clients => \@c, count => 20, tag => 'up');
    is($got, 20, 'Postgres up: 20 messages acked');
    is($pg->wait_count(20, timeout => 20), 20, '... and written');
    $_->close_socket for @c;
}

# ============================================================ stopped
{
    my @c = clients('down', 'o1', 'o2');
    ok($pg->stop, 'Postgres stopped (fast shutdown)');
    my $t_down = time;
    sleep 1;
    my $t0 = time;
    my ($got, $errs) = send_many(
        clients => \@c, count => 1000, tag => 'down', burst => 100,
        pause => 0.3);
    is($got, 1000, sprintf('Postgres down: 1000 messages acked in %.1f s',
                           time - $t0));
    is($errs, 0, '... no error replies');
    # recent history comes from the Redis cache
    my $h = $c[0]->call({ op => 'history', room => 'o1', limit => 5 });
    is(scalar @{$h && $h->{messages} || []}, 5,
       'history of the recent messages answers while Postgres is down')
        or diag(enc($h));
    # the clients go away before anything could be written
    $_->close_socket for @c;
    sleep 0.1 while time - $t_down < 8;
    is_deeply([ $n->worker_pids ], \@pids, 'no worker crashed');
    ok(!$pg->alive, sprintf('Postgres was down %.0f s', time - $t_down));

    $pg->start;
    $t0 = time;
    my $have = $pg->wait_count(1020, timeout => 30);
    is($have, 1020, sprintf('Postgres started: all 1020 rows after %.1f s',
                            time - $t0));
    sleep 1;
    is($pg->count, 1020, '... and no more a second later');
    check_rows('after the outage', 'o1', 'o2');
}

# ============================================================ crashed
{
    my @c = clients('crash', 'o3', 'o4');
    my ($killed, $t_kill);
    my ($got, $errs) = send_many(
        clients => \@c, count => 600, tag => 'crash', burst => 50,
        pause => 0.05, during => sub {
            my ($acks) = @_;
            if (!$killed && $acks >= 200) {
                $pg->kill;
                $killed = $acks;
                $t_kill = time;
            }
        });
    ok($killed, "Postgres SIGKILLed after $killed acks of the send loop");
    is($got, 600, '600 messages acked');
    is($errs, 0, '... no error replies');
    $_->close_socket for @c;
    sleep 0.1 while time - $t_kill < 3;
    is_deeply([ $n->worker_pids ], \@pids, 'no worker crashed');

    $pg->start;
    my $t0 = time;
    my $want = 1020 + 600;
    my $have = $pg->wait_count($want, timeout => 30);
    is($have, $want, sprintf('Postgres recovered: all %d rows after %.1f s',
                             $want, time - $t0));
    check_rows('after the crash', 'o3', 'o4');
}

# the pool works again: a new message is written promptly
{
    my @c = clients('again', 'o1');
    my ($got) = send_many(clients => \@c, count => 4, tag => 'again');
    is($got, 4, 'after both outages: 4 more acked');
    is($pg->wait_count(1624, timeout => 10), 1624, '... and written');
    check_rows('at the end', 'o1', 'o2', 'o3', 'o4');
    $_->close_socket for @c;
}

$n->stop;
$r->stop;
$pg->stop;
done_testing;
