# Server-Sent Events with Redis and Postgres, no sticky sessions: a
# stream resumed from its Last-Event-ID on whichever of 4 workers
# (reuseport) and of two nginx hosts takes the reconnect gets every
# message of every room once, in order; the same across the loss of
# the subscriber connections (CLIENT KILL TYPE pubsub) while the stream
# stays open, and across a gap longer than chat_history_cache, filled
# from Postgres.  A stream counts as a connection joined to its rooms
# for presence, on every worker.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use ChatTest::SSE;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
    chat_max_pending 4096;
}
EOF2

my ($r, $pg, $A) = ChatTest::Pg::start_stack(
    workers => 4, cache => 20, listen_opts => 'reuseport', server => $LOC);
my $B = $pg->start_nginx($r, server => $LOC);

my $ws = ChatTest::WS->chat($A->port, user => 'alice', ignore => []);
$ws->join_room($_) for qw(x y);
my %sent = (x => [], y => []);
sub send_to {
    my ($room, $text) = @_;
    my $a = $ws->call({ op => 'send', room => $room, text => $text });
    die 'send failed: ' . enc($a) unless $a && $a->{type} eq 'ack';
    push @{$sent{$room}}, $a->{seq};
    return $a->{seq};
}

# what a stream got of a room, in order
sub got {
    my ($room, @e) = @_;
    [ map { $_->{json}{seq} }
      grep { ($_->{json}{type} // '') eq 'message' && $_->{json}{room} eq $room }
      @e ];
}

# ---- resumed on every worker of A, then on B
{
    my (%seen, %workers);
    my $id;
    my %got = (x => [], y => []);
    for my $round (1 .. 8) {
        my $host = $round <= 6 ? $A : $B;
        my $s = ChatTest::SSE->open($host->port, '/chat?user=bob&rooms=x,y',
                                    $id ? (headers => { 'Last-Event-ID' => $id })
                                        : ());
        my $w = $s->wait_for(5, type => 'welcome');
        $workers{($round <= 6 ? 'A ' : 'B ') . $w->{json}{worker}}++;
        $s->collect(0.3) if !$id;
        send_to($round % 2 ? 'x' : 'y', "r$round $_") for 1 .. 3;
        send_to('x', "r$round x");
        my @e = $s->collect(1);
        push @{$got{$_}}, @{got($_, @e)} for qw(x y);
        my ($last) = grep { defined $_->{id} } reverse @e;
        $id = $last->{id} if $last;
        $s->close_socket;
        # sent between two streams
        send_to('y', "gap $round");
    }
    my $s = ChatTest::SSE->open($B->port, '/chat?user=bob&rooms=x,y',
                                headers => { 'Last-Event-ID' => $id });
    my @e = $s->collect(1);
    push @{$got{$_}}, @{got($_, @e)} for qw(x y);
    $s->close_socket;
    note('workers: ' . join(' ', sort keys %workers));
    cmp_ok(scalar(grep { /^A / } keys %workers), '>=', 2,
           'the reconnects landed on several workers of A');
    ok(scalar(grep { /^B / } keys %workers), '... and on B');
    is_deeply($got{x}, $sent{x}, 'x: every message once, in order, across '
              . '9 streams on workers of two hosts');
    is_deeply($got{y}, $sent{y}, 'y: the same (sent between streams too)');
}

# ---- the subscriber connections lost while the stream stays open
{
    my $s = ChatTest::SSE->open($A->port, '/chat?user=bob&rooms=x');
    $s->wait_for(5, type => 'joined');
    my $first = scalar @{$sent{x}};
    my $adm = $r->connection;
    my ($killed) = $adm->call([ 'CLIENT', 'KILL', 'TYPE', 'pubsub' ]);
    cmp_ok($killed // 0, '>=', 1, "CLIENT KILL TYPE pubsub: $killed");
    send_to('x', "during $_") for 1 .. 10;
    my @e = $s->collect(3);
    is_deeply(got('x', @e), [ @{$sent{x}}[$first .. $#{$sent{x}}] ],
              'pubsub lost: the open stream still gets each message once, '
              . 'in order');
    $s->close_socket;
}

# ---- a gap longer than chat_history_cache (20): from Postgres
{
    my $s = ChatTest::SSE->open($A->port, '/chat?user=bob&rooms=y,x');
    $s->wait_for(5, type => 'joined');
    $s->collect(0.3);
    send_to('x', 'before');
    my $m = $s->wait_for(5, type => 'message');
    my $id = $m->{id};
    $s->close_socket;
    my $from = scalar @{$sent{x}};
    send_to('x', "far $_") for 1 .. 50;
    my $total = scalar(@{$sent{x}}) + scalar(@{$sent{y}});
    $pg->wait_count($total, timeout => 20);
    $s = ChatTest::SSE->open($B->port, '/chat?user=bob&rooms=y,x',
                             headers => { 'Last-Event-ID' => $id });
    my @e = $s->collect(3);
    my ($j) = grep { $_->{json}{type} eq 'joined' && $_->{json}{room} eq 'x' } @e;
    ok($j && !$j->{json}{truncated}, 'gap of 50 over a cache of 20: not truncated');
    is_deeply(got('x', @e), [ @{$sent{x}}[$from .. $#{$sent{x}}] ],
              'gap of 50: every message once, in order, from Postgres');
    $s->close_socket;
}

# ---- presence
{
    $ws->drain(timeout => 0.3);
    my $s = ChatTest::SSE->open($A->port, '/chat?user=erin&rooms=x');
    my $p = $ws->wait_for(type => 'presence',
                          match => sub { ($_[0]{user} // '') eq 'erin' });
    is($p && $p->{event}, 'join', 'presence: the stream joins the room');
    my $l = $ws->call({ op => 'presence', room => 'x' });
    ok(grep({ $_ eq 'erin' } @{$l->{users} || []}),
       'presence: listed in the room') or diag(enc($l));
    my $o = $ws->call({ op => 'online', users => ['erin'] });
    ok($o && $o->{users}{erin}, 'online: the user of the stream');
    $s->close_socket;
    $p = $ws->wait_for(type => 'presence',
                       match => sub { ($_[0]{user} // '') eq 'erin' });
    is($p && $p->{event}, 'leave', 'presence: the closed stream leaves');
}

$B->stop;
$A->stop;
done_testing;
