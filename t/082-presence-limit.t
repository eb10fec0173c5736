# chat_presence_events_max: presence join/leave events only while the room
# has at most that many users (connections in memory mode), so that a big
# room does not send every join to every member; `presence` still lists
# everyone.  Memory mode and Redis (two instances); the default is 1000.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $LOC = 'location = /chat { chat; chat_user $arg_user; }';

# (clients with ignore => []: they see the presence events too)

sub scenario {
    my ($label, $A, $B) = @_;

    my $alice = ChatTest::WS->user($A->port, 'alice', ignore => []);
    $alice->join_room('big');
    my @others;
    for my $u (qw(bob carol)) {
        my $w = ChatTest::WS->user($B->port, $u, ignore => []);
        $w->join_room('big');
        push @others, $w;
    }
    is_deeply($alice->presence_events(0.5), ['bob join', 'carol join'],
              "$label: joins while the room has at most 3 users");

    my $dave = ChatTest::WS->user($B->port, 'dave', ignore => []);
    $dave->join_room('big');
    is_deeply($alice->presence_events(0.5), [],
              "$label: no event for the 4th user's join");

    my $r = $alice->call({ op => 'presence', room => 'big' });
    is(join(',', sort @{$r->{users} || []}), 'alice,bob,carol,dave',
       "$label: presence lists all 4");

    $dave->call({ op => 'leave', room => 'big' });
    is_deeply($alice->presence_events(0.5), [],
              "$label: no event for a leave from 4 users");

    $others[1]->call({ op => 'leave', room => 'big' });
    is_deeply($alice->presence_events(0.5), ['carol leave'],
              "$label: leave event again from 3 users down");

    # other rooms are not affected by the size of this one
    $alice->join_room('small');
    $others[0]->join_room('small');
    is_deeply($alice->presence_events(0.5), ['bob join'],
              "$label: small room");

    $_->close_socket for $alice, @others, $dave;
}

# ---- memory mode
{
    my $n = ChatTest->start(server => $LOC,
                            http => "chat_presence_events_max 3;\n");
    scenario('memory', $n, $n);
    $n->stop;
}

# ---- Redis: two instances
{
    my $r = ChatTest::Redis->start;
    my %o = (server => $LOC, http => "chat_presence_events_max 3;\n");
    my $A = $r->start_nginx(%o);
    my $B = $r->start_nginx(%o);
    scenario('redis', $A, $B);
    $A->stop;
    $B->stop;
}

# ---- the default: 1000 users (a room's users counted in Redis, 998 or
# 999 of them written there beside the two real ones)
{
    my $r = ChatTest::Redis->start;
    my $n = $r->start_nginx(server => $LOC);
    for my $case ([ 998, 1, 'the 1000th user\'s join is announced' ],
                  [ 999, 0, 'the 1001st user\'s is not' ]) {
        my ($fakes, $want, $name) = @$case;
        my $room = "room$fakes";
        $r->cmd('HSET', "chat:{$room}:presence",
                map { ("fake$_", 1) } 1 .. $fakes);
        my $alice = ChatTest::WS->user($n->port, 'alice', ignore => []);
        $alice->join_room($room);
        my $bob = ChatTest::WS->user($n->port, 'bob', ignore => []);
        $bob->join_room($room);
        is(scalar @{$alice->presence_events(0.5)}, $want,
           "default chat_presence_events_max 1000: $name");
        $_->close_socket for $alice, $bob;
    }
    $n->stop;
}

# ---- 0: no limit
{
    my $n = ChatTest->start(server => $LOC,
                            http => "chat_presence_events_max 0;\n");
    my $alice = ChatTest::WS->user($n->port, 'alice', ignore => []);
    $alice->join_room('r');
    my @w = map {
        my $w = ChatTest::WS->user($n->port, "u$_", ignore => []);
        $w->join_room('r');
        $w
    } 1 .. 5;
    is(scalar @{$alice->presence_events(0.5)}, 5, '0: every join announced');
    $_->close_socket for $alice, @w;
    $n->stop;
}

done_testing;
