# The HTTP transports with Redis and Postgres, no sticky sessions: one
# client's POSTed sends and its long polls, each on a new connection,
# spread over 4 workers (reuseport) of one host and over a second host,
# see every message once, in order; a held poll is answered by a message
# sent on the other host; a poll whose cursor is past chat_history_cache
# is answered from Postgres; a resent send (same id) is stored once; a
# waiting poll sends no Redis command; a polling user is online for
# chat_presence_ttl.
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
    chat_max_pending 4096;
}
EOF2

my ($r, $pg, $A) = ChatTest::Pg::start_stack(
    workers => 4, cache => 20, listen_opts => 'reuseport', server => $LOC,
    http => "chat_presence_ttl 3s;\n");
my $B = $pg->start_nginx($r, server => $LOC, http => "chat_presence_ttl 3s;\n");
my $J = ChatTest::json();

sub post {
    my ($host, $body) = @_;
    my ($st, $h, $j) = ChatTest::http_post_json($host->port, '/chat?user=bob',
        $body, headers => { 'Content-Type' => 'application/json' });
    return ($st, $j);
}
sub poll {
    my ($host, $cursor, %o) = @_;
    my ($st, $h, $body) = ChatTest::http_get($host->port,
        "/chat?user=bob&poll=1&cursor=$cursor&timeout=" . ($o{timeout} // 0),
        undef, timeout => 30);
    return ($st, eval { $J->decode($body) });
}
sub start_poll {
    my ($host, $path) = @_;
    my $fh = ChatTest::tcp_connect($host->port);
    ChatTest::write_all($fh, "GET $path HTTP/1.1\r\nHost: localhost\r\n"
                             . "Connection: close\r\n\r\n");
    return $fh;
}
sub seqs_of {
    my ($room, $j) = @_;
    [ map { $_->{seq} } grep { $_->{type} eq 'message' && $_->{room} eq $room }
      @{$j->{events} || []} ];
}

# ---- sends and polls of one client over 4 workers and two hosts
my (%sent, %got);
{
    my $cursor = 'x:0,y:0';
    my %workers;
    for my $i (1 .. 24) {
        my $host = $i % 3 == 0 ? $B : $A;
        my $room = $i % 2 ? 'x' : 'y';
        my ($st, $j) = post($host, { op => 'send', room => $room,
                                     text => "m$i", id => "m$i" });
        die "send: $st " . enc($j) unless $st == 200 && $j->{type} eq 'ack';
        push @{$sent{$room}}, $j->{seq};

        # a held poll: its worker is seen while it waits
        if ($i % 4 == 0) {
            my ($cx, $cy) = $cursor =~ /^x:(\d+),y:(\d+)$/;
            my $fh = start_poll($A, "/chat?user=bob&poll=1&cursor=x:"
                                . ($sent{x}[-1]) . ",y:" . ($sent{y}[-1])
                                . "&timeout=5");
            sleep 0.1;
            my $w = ChatTest::worker_pid_of($A, bless({ fh => $fh },
                                                      'ChatTest::WS'));
            $workers{$w}++ if $w;
            close $fh;
        }

        my ($pst, $pj) = poll($i % 2 ? $A : $B, $cursor);
        is($pst, 200, "poll $i: 200") unless $pst == 200;
        push @{$got{$_}}, @{seqs_of($_, $pj)} for qw(x y);
        $cursor = $pj->{cursor};
    }
    cmp_ok(scalar(keys %workers), '>=', 2,
           'held polls landed on ' . scalar(keys %workers) . ' workers of A');
    is_deeply($got{x}, $sent{x}, 'x: every message once, in order, over '
              . 'workers and hosts');
    is_deeply($got{y}, $sent{y}, 'y: the same');
}

# ---- a held poll answered by a send on the other host
{
    my $fh = start_poll($A, "/chat?user=bob&poll=1&cursor=x:$sent{x}[-1]"
                            . "&timeout=10");
    sleep 0.3;
    my $t = time;
    my ($st, $j) = post($B, { op => 'send', room => 'x', text => 'from B' });
    push @{$sent{x}}, $j->{seq};
    my ($pst, $h, $body) = ChatTest::read_response($fh, timeout => 10);
    my $pj = eval { $J->decode($body) };
    is_deeply(seqs_of('x', $pj), [ $j->{seq} ],
              'a poll held on A is answered by a send on B');
    cmp_ok(time - $t, '<', 5, '... well before its timeout');
}

# ---- a waiting poll costs no Redis command
{
    my $mon = $r->connection;
    $mon->write([ 'MONITOR' ]);
    $mon->read_reply(time + 5);
    my $fh = start_poll($B, "/chat?user=bob&poll=1&cursor=x:$sent{x}[-1]"
                            . "&timeout=4");
    sleep 1;
    my $mark = time;
    my @cmds;
    while (time < $mark + 2) {
        my ($line) = $mon->read_reply(time + 0.2);
        push @cmds, $line if defined $line && !ref $line;
    }
    close $fh;
    # what the workers do on their own: the registry's script (and the
    # commands it runs), the Postgres writer's reads, the subscriber's
    # liveness check
    @cmds = grep { /^(\d+\.\d+)/ && $1 >= $mark } @cmds;
    my @mine = grep { !/\[\d+ lua\]|"EVALSHA" "\w+" "1" "chat:workers"|"XREADGROUP"|"XACK"|"XAUTOCLAIM"|"SUBSCRIBE" "chat:worker:\w+:ping"/ } @cmds;
    note(scalar(@cmds) . ' commands while it waited: ' . join("\n", @cmds));
    is(scalar @mine, 0, 'a waiting poll: no Redis command (but the '
       . 'workers\' own periodic ones)') or diag(join "\n", @mine);
}

# ---- the same id twice: stored once
{
    my ($st, $j1) = post($A, { op => 'send', room => 'x', text => 'once',
                               id => 'dup-1' });
    my ($st2, $j2) = post($B, { op => 'send', room => 'x', text => 'once',
                                id => 'dup-1' });
    is($j2->{seq}, $j1->{seq}, 'a resent id (on the other host): the same seq');
    push @{$sent{x}}, $j1->{seq};
    my ($pst, $pj) = poll($A, "x:" . ($j1->{seq} - 1));
    is_deeply(seqs_of('x', $pj), [ $j1->{seq} ], '... one message');
}

# ---- a cursor past the cache: from Postgres
{
    my $from = $sent{x}[-1];
    my @more;
    for my $k (1 .. 40) {
        my ($st, $j) = post($A, { op => 'send', room => 'x', text => "far $k" });
        push @more, $j->{seq};
    }
    my $total = @{$sent{x}} + @{$sent{y}} + @more;
    $pg->wait_count($total, timeout => 20);
    my ($st, $j) = poll($B, "x:$from");
    is_deeply(seqs_of('x', $j), \@more,
              'a cursor 40 back over a cache of 20: every message, from '
              . 'Postgres');
}

# ---- presence of a polling user
{
    my $ws = ChatTest::WS->chat($A->port, user => 'alice', ignore => []);
    my $o = $ws->call({ op => 'online', users => ['carol'] });
    ok($o && !$o->{users}{carol}, 'carol offline before polling');
    ChatTest::http_get($B->port, '/chat?user=carol&poll=1&cursor=x:&timeout=0');
    # the refresh goes by another worker's Redis link than the question
    ok(ChatTest::wait_until(sub {
        my $o = $ws->call({ op => 'online', users => ['carol'] });
        $o && $o->{users}{carol} }, 2), 'a poll: carol online');
    ok(ChatTest::wait_until(sub {
        my $o = $ws->call({ op => 'online', users => ['carol'] });
        $o && !$o->{users}{carol} }, 6),
       'no poll nor heartbeat for chat_presence_ttl: offline');
    ChatTest::http_post_json($A->port, '/chat?user=carol', { op => 'heartbeat' });
    ok(ChatTest::wait_until(sub {
        my $o = $ws->call({ op => 'online', users => ['carol'] });
        $o && $o->{users}{carol} }, 2), 'a POSTed heartbeat: online again');
}

$B->stop;
$A->stop;
done_testing;
