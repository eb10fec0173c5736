# Room presence: `presence` lists the users with a connection joined to
# the room, on any worker or host; a `presence` event "join" goes to the
# room's other users when a user's first connection joins, "leave" when
# the last one leaves, disconnects or its worker dies (within the TTL); a
# second tab makes no event.  In memory mode and across two instances on
# one Redis.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $LOC = 'location = /chat { chat; chat_user $arg_user; }';

# (clients with ignore => []: they see the presence events too)

# waits until $ws got the presence event "$user $event"
sub got {
    my ($ws, $want, $t) = @_;
    my $end = time + $t;
    while (time < $end) {
        my $m = $ws->recv_json(timeout => $end - time) or last;
        return 1 if $m->{type} eq 'presence' && $m->{event}
                    && "$m->{user} $m->{event}" eq $want;
    }
    return 0;
}

sub users {
    my ($ws, $room) = @_;
    my $r = $ws->call({ op => 'presence', room => $room });
    return $r && $r->{type} eq 'presence'
           ? join(',', sort @{$r->{users}}) : 'error';
}

sub scenario {
    my ($label, $A, $B) = @_;

    my $alice = ChatTest::WS->user($A->port, 'alice', ignore => []);
    is($alice->call({ op => 'join', room => 'pr' })->{type}, 'joined',
       "$label: alice joined");
    is_deeply($alice->presence_events(0.5), [],
              "$label: no event of her own join to alice");

    my $bob = ChatTest::WS->user($B->port, 'bob', ignore => []);
    $bob->call({ op => 'join', room => 'pr' });
    ok(got($alice, 'bob join', 3), "$label: alice gets bob's join");
    is_deeply($bob->presence_events(0.5), [], "$label: nor of his own to bob");
    is(users($bob, 'pr'), 'alice,bob', "$label: presence lists both");

    my $alice2 = ChatTest::WS->user($B->port, 'alice', ignore => []);
    $alice2->call({ op => 'join', room => 'pr' });
    is_deeply($bob->presence_events(0.7), [],
              "$label: alice's second tab: no event");

    $alice->call({ op => 'leave', room => 'pr' });
    is_deeply($bob->presence_events(0.7), [],
              "$label: one of alice's tabs leaves: no event");
    is(users($bob, 'pr'), 'alice,bob', "$label: alice still present");

    $alice2->close_socket;
    ok(got($bob, 'alice leave', 3),
       "$label: alice's last tab disconnects: leave");
    is(users($bob, 'pr'), 'bob', "$label: presence lists bob");

    my $r = $bob->call({ op => 'presence', room => 'elsewhere' });
    is($r && $r->{code}, 'not_joined', "$label: presence needs a join");

    return $bob;
}

# ---- memory mode
{
    my $n = ChatTest->start(server => $LOC);
    scenario('memory', $n, $n);
    $n->stop;
}

# ---- Redis: two instances, two workers each; a worker killed
{
    my $r = ChatTest::Redis->start;
    my %o = (server => $LOC, workers => 2, listen_opts => 'reuseport',
             http => "chat_presence_ttl 2s;\n");
    my $A = $r->start_nginx(%o, allow_log => [ qr/exited on signal 9\b/ ]);
    my $B = $r->start_nginx(%o);

    my $bob = scenario('redis', $A, $B);

    my $carol = ChatTest::WS->user($A->port, 'carol', ignore => []);
    $carol->call({ op => 'join', room => 'pr' });
    ok(got($bob, 'carol join', 3), 'redis: bob gets carol\'s join');

    my $pid = ChatTest::worker_pid_of($A, $carol);
    ok($pid, 'the worker holding carol');
    kill 'KILL', $pid if $pid;
    my $t0 = time;
    ok(got($bob, 'carol leave', 6), 'redis: carol\'s worker killed: leave');
    my $took = time - $t0;
    ok($took < 2 + 1 + 0.5, sprintf('... within TTL + 1 s (%.1f s)',
                                    $took));
    is(users($bob, 'pr'), 'bob', 'redis: carol is no longer listed');

    # a room of 10,000 users answers in one round trip, in one frame
    $r->cmd('HSET', 'chat:{pr}:presence', map { ("u$_", 1) } 1 .. 10000);
    my $big = $bob->call({ op => 'presence', room => 'pr' }, timeout => 10);
    is(scalar @{$big && $big->{users} || []}, 10001,
       'redis: a room of 10,001 users listed whole');

    $A->stop;
    $B->stop;
    $r->stop;
}


done_testing;
