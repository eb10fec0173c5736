# chat_postgres across nginx -s reload and quit.  A sender sends 400
# messages (10 unacked at most) while nginx is reloaded twice; on close
# 1001 it reconnects and resends what got no ack, with the same id.  A
# receiver reconnects with since = the last seq it saw.  The receiver sees
# every message exactly once, seqs 1..400 in order; the old workers exit;
# Postgres has every message once.  Then a quit right after a burst: the
# clients get 1001, and with a new nginx on the same Redis and Postgres
# nothing is lost.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $N = 400;
my $ROOM = 'rl';
my @RELOAD_AT = (100, 250);      # acks
my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
    chat_send_buffer 16m;
}
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC);

my (%ack, %unacked, @retry);     # id => ack / text
my (@events, %by_seq, $last);   # the receiver's view
my (@closes, $dups, @joins, $resent);
my ($S, $R);
my $port;

sub closed {
    my ($ws) = @_;
    return !$ws || !$ws->fh || $ws->{eof} || $ws->{got_close};
}

sub note_close {
    my ($ws, $who) = @_;
    return unless $ws;
    # the close frame may still be in the buffer
    $ws->expect_close(timeout => 2, eof_timeout => 2) unless $ws->{got_close};
    push @closes, [ $who, $ws->{got_close} ? $ws->{close_code} : 'none' ];
    $ws->close_socket;
}

sub connect_sender {
    my ($user) = @_;
    for (1 .. 50) {
        my $ws = eval { ChatTest::WS->chat($port, user => $user) };
        if ($ws) {
            my $j = $ws->call({ op => 'join', room => $ROOM });
            return $ws if $j && $j->{type} eq 'joined';
            diag('sender join: ' . enc($j));
        }
        sleep 0.1;
    }
    die "sender cannot reconnect\n";
}

sub connect_receiver {
    for (1 .. 50) {
        my $ws = eval { ChatTest::WS->chat($port, user => 'receiver') };
        if ($ws) {
            my $j = $ws->call({ op => 'join', room => $ROOM,
                                since => $last // 0 });
            if ($j && $j->{type} eq 'joined') {
                push @joins, [ $last // 0, $j->{seq} ];
                return $ws;
            }
            diag('receiver join: ' . enc($j));
        }
        sleep 0.1;
    }
    die "receiver cannot reconnect\n";
}

sub take_receiver {
    for my $m ($R->drain(timeout => 0)) {
        next unless ($m->{type} // '') eq 'message' && $m->{room} eq $ROOM;
        push @events, $m;
        $dups++ if $by_seq{$m->{seq}};
        $by_seq{$m->{seq}} = $m;
        $last = $m->{seq} if !defined $last || $m->{seq} > $last;
    }
}

sub take_sender {
    for my $m ($S->drain(timeout => 0)) {
        my $t = $m->{type} // '';
        my $id = $m->{id} // '';
        if ($t eq 'ack') {
            if ($ack{$id} && $ack{$id}{seq} != $m->{seq}) {
                diag("$id acked twice with different seqs: $ack{$id}{seq} "
                     . "and $m->{seq}");
                $dups++;
            }
            $ack{$id} //= $m;
            delete $unacked{$id};
        } elsif ($t eq 'error' && exists $unacked{$id}) {
            diag("send $id: " . enc($m)) if @retry < 5;
            push @retry, [ $id, time + 0.2 ];
        }
    }
}

sub send_one {
    my ($id) = @_;
    $S->send_json({ op => 'send', room => $ROOM, text => $unacked{$id},
                    id => $id });
}

# Sends ids $from..$to ("s$k", text "msg $k"), reloading nginx when the
# acks reach each of @$reload_at; returns when all are acked and received.
sub run {
    my ($from, $to, $reload_at, $timeout) = @_;
    my @at = @$reload_at;
    my $next = $from;
    my $deadline = time + $timeout;
    my $want = $to;          # the receiver's last seq when done
    while (time < $deadline) {
        if (closed($S)) {
            note_close($S, 'sender');
            $S = connect_sender('sender');
            # resend what got no ack, with the same id
            for my $id (sort { substr($a, 1) <=> substr($b, 1) }
                        keys %unacked)
            {
                send_one($id);
                $resent++;
            }
            @retry = ();
        }
        if (closed($R)) {
            note_close($R, 'receiver');
            $R = connect_receiver();
        }
        if (@at && keys(%ack) >= $at[0]) {
            shift @at;
            my %old = map { $_ => 1 } $n->worker_pids;
            my $t0 = time;
            ok($n->reload, 'reload at ' . keys(%ack) . ' acks');
            my $gone = ChatTest::wait_until(
                sub { !grep { $old{$_} } $n->worker_pids }, 15);
            ok($gone, sprintf('the old workers exited (%.1f s)', time - $t0));
        }
        while ($next <= $to && keys(%unacked) < 10) {
            my $id = 's' . $next;
            $unacked{$id} = "msg $next";
            send_one($id);
            $next++;
        }
        while (@retry && $retry[0][1] < time) {
            my ($id) = @{shift @retry};
            send_one($id) if exists $unacked{$id};
        }
        ChatTest::WS::pump([ $S, $R ], timeout => 0.02);
        take_sender();
        take_receiver();
        last if $next > $to && !%unacked && ($last // 0) >= $want
                && @events >= $want;
    }
}

$port = $n->port;
$R = connect_receiver();
$S = connect_sender('sender');
my $t0 = time;
run(1, $N, \@RELOAD_AT, 60);
diag(sprintf('%d messages across %d reloads in %.1f s', $N,
             scalar @RELOAD_AT, time - $t0));

# ---- what the clients saw
is(scalar keys %ack, $N, "all $N sends acked");
{
    my %s;
    $s{$_->{seq}}++ for values %ack;
    is_deeply([ sort { $a <=> $b } keys %s ], [ 1 .. $N ],
              "the acks carry seqs 1..$N, one each");
}
is_deeply([ map { $_->{seq} } @events ], [ 1 .. $N ],
          "the receiver got 1..$N in order, each once, across its "
          . 'reconnections');
ok(!$dups, 'no duplicate');
{
    my $bad = grep { !$by_seq{$ack{"s$_"}{seq} // 0}
                     || $by_seq{$ack{"s$_"}{seq}}{text} ne "msg $_" }
              grep { $ack{"s$_"} } 1 .. $N;
    is($bad, 0, 'each ack names the message event of its text');
    my %t;
    $t{$_->{text}}++ for @events;
    is(scalar(grep { $t{"msg $_"} != 1 } grep { $t{"msg $_"} // 0 } 1 .. $N)
       + scalar(grep { !$t{"msg $_"} } 1 .. $N), 0,
       'each text exactly once (the resends were not stored again)');
}
{
    my %who;
    $who{$_->[0]}++ for @closes;
    diag('closes: ' . join(', ', map { "$_->[0] $_->[1]" } @closes));
    diag(($resent // 0) . ' sends resent after a reconnection');
    diag('receiver joins (since, joined.seq): '
         . join(', ', map { "($_->[0], $_->[1])" } @joins));
    ok(($who{receiver} // 0) >= @RELOAD_AT,
       'the receiver was closed at each reload');
    ok(($who{sender} // 0) >= @RELOAD_AT,
       'the sender was closed at each reload');
    is(scalar(grep { $_->[1] ne '1001' } @closes), 0,
       'every close was 1001');
}

# ---- Postgres
is($pg->wait_count($N, timeout => 20), $N, "$N rows in Postgres");
{
    my $rows = $pg->messages;
    is_deeply([ map { $_->{seq} } @$rows ], [ 1 .. $N ], "seqs 1..$N");
    my $bad = grep { !$by_seq{$_->{seq}}
                     || $by_seq{$_->{seq}}{text} ne $_->{body}
                     || lc $by_seq{$_->{seq}}{msg_id} ne lc $_->{msg_id} }
              @$rows;
    is($bad, 0, 'each row is the message event of its seq');
}

# ---- quit right after a burst
{
    my $M = 200;
    for my $k ($N + 1 .. $N + $M) {
        $unacked{"s$k"} = "msg $k";
        send_one("s$k");
    }
    my $end = time + 10;
    while (%unacked && time < $end) {
        ChatTest::WS::pump([ $S, $R ], timeout => 0.05);
        take_sender();
        take_receiver();
    }
    is(scalar keys %unacked, 0, "a burst of $M acked");
    my $t = time;
    $n->stop(keep_clients => 1);
    ok(time - $t < 10, sprintf('quit: nginx exited in %.1f s', time - $t));
    for my $p ([ $S, 'sender' ], [ $R, 'receiver' ]) {
        take_sender() if $p->[1] eq 'sender';
        my ($code) = $p->[0]->expect_close(timeout => 3);
        is($code, 1001, "quit: the $p->[1] got close 1001");
        take_receiver() if $p->[1] eq 'receiver';
    }
    take_receiver();
    my $in_pg = $pg->wait_count($N + $M, timeout => 3);
    diag("$in_pg of " . ($N + $M) . ' rows in Postgres 3 s after the quit '
         . '(the rest waits in the Redis stream)');

    # a new nginx on the same Redis and Postgres; the receiver comes back
    $n = $pg->start_nginx($r, pool => 2, workers => 2,
                          listen_opts => 'reuseport', server => $LOC);
    $port = $n->port;
    $R = connect_receiver();
    my $end2 = time + 10;
    while (($last // 0) < $N + $M && time < $end2) {
        ChatTest::WS::pump([ $R ], timeout => 0.1);
        take_receiver();
    }
    is_deeply([ map { $_->{seq} } @events ], [ 1 .. $N + $M ],
              'the receiver, back with since, has 1..' . ($N + $M)
              . ' once each');
    $t = time;
    is($pg->wait_count($N + $M, timeout => 30), $N + $M,
       sprintf('all %d rows in Postgres (%.1f s after the new start)',
               $N + $M, time - $t));
    sleep 1;
    is($pg->count, $N + $M, '... and no more');
}

$_->close_socket for grep { $_ } $S, $R;
$n->stop;
$r->stop;
$pg->stop;
done_testing;
