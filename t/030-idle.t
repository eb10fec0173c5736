# Keepalive pings and the idle timeout (client silence).
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
    chat_ping_interval 1s;
    chat_idle_timeout 3s;
}
location = /echo { chat_echo; chat_ping_interval 1s; chat_idle_timeout 3s; }
location = /chat_default { chat; chat_user $arg_user; }
EOF2
my $port = $n->port;

my $t0 = time;
my $silent = ChatTest::WS->chat($port, user => 'silent');
my $ponger = ChatTest::WS->chat($port, user => 'ponger');
my $talker = ChatTest::WS->chat($port, user => 'talker');
my $echo_silent = ChatTest::WS->connect($port, path => '/echo');
my $dflt = ChatTest::WS->chat($port, user => 'default', path => '/chat_default');

my (%first_ping, %close_at, %close_code);
my $next_talk = time + 0.8;
my %who = (silent => $silent, ponger => $ponger, talker => $talker,
           echo_silent => $echo_silent, default => $dflt);

# one loop serving every client for 6 seconds
while (time < $t0 + 6) {
    for my $name (sort keys %who) {
        my $ws = $who{$name};
        next if $close_at{$name};
        while (my $f = $ws->recv_frame(timeout => 0.02)) {
            if ($f->{opcode} == 9) {
                $first_ping{$name} //= time - $t0;
                $ws->send_pong($f->{payload}) if $name eq 'ponger';
            } elsif ($f->{opcode} == 8) {
                $close_at{$name} = time - $t0;
                $close_code{$name} = length $f->{payload} >= 2
                    ? unpack('n', $f->{payload}) : 1005;
                last;
            }
        }
        if ($ws->{eof} && !$close_at{$name}) {
            $close_at{$name} = time - $t0;
            $close_code{$name} = 'eof';
        }
    }
    if (time > $next_talk && !$close_at{talker}) {
        $talker->send_json({ op => 'heartbeat' });
        $next_talk = time + 0.8;
    }
}

# silent client: pinged after ~1 s, closed after ~3 s
ok(defined $first_ping{silent}, 'silent client receives a ping');
ok(defined $first_ping{silent} && $first_ping{silent} > 0.45
   && $first_ping{silent} < 2.5, 'first ping after 0.5 to 1 s')
    or diag("first ping at " . ($first_ping{silent} // 'never'));
ok(defined $close_at{silent} && $close_at{silent} > 2.5
   && $close_at{silent} < 5, 'silent client closed after ~3 s')
    or diag("closed at " . ($close_at{silent} // 'never'));
is($close_code{silent}, 1000, 'idle close code 1000');
ok($silent->eof(3), 'idle: TCP closed after the close frame');

ok(defined $close_at{echo_silent} && $close_at{echo_silent} > 2.5
   && $close_at{echo_silent} < 5, 'chat_echo: silent client closed too')
    or diag("closed at " . ($close_at{echo_silent} // 'never'));
ok(defined $first_ping{echo_silent}, 'chat_echo: pings too');

# a client answering pings is not idle
ok(!$close_at{ponger}, 'client answering pings stays connected')
    or diag("ponger closed at $close_at{ponger}: $close_code{ponger}");
ok(defined $first_ping{ponger}, 'ponger was pinged');
ok($ponger->alive, 'ponger still works');

# a client sending requests is not idle (pings optional)
ok(!$close_at{talker}, 'talking client stays connected')
    or diag("talker closed at $close_at{talker}: $close_code{talker}");
ok($talker->alive, 'talker still works');

# defaults (20 s / 60 s): no ping, no close within 6 s
ok(!$close_at{default}, 'default timers: still connected after 6 s');
ok(!defined $first_ping{default}, 'default timers: no ping within 6 s');

$_->close_socket for $silent, $ponger, $talker, $echo_silent, $dflt;

# clients connected together are not pinged together: each one's first
# ping comes up to half an interval early, spread by connection
{
    my $m = ChatTest->start(server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_ping_interval 2s;
    chat_idle_timeout 10s;
}
EOF2
    my $t1 = time;
    my @c = map { ChatTest::WS->chat($m->port, user => "c$_") } 1 .. 40;
    note(sprintf("40 connected in %.2f s", time - $t1));
    my %first;
    while (time < $t1 + 3.5 && keys %first < @c) {
        ChatTest::WS::pump(\@c, timeout => 0.05);
        for my $i (0 .. $#c) {
            next if defined $first{$i};
            while (my $f = $c[$i]->recv_frame(timeout => 0)) {
                if ($f->{opcode} == 9) {
                    $first{$i} = time - $t1;
                    last;
                }
            }
        }
    }
    is(scalar keys %first, 40, '40 clients connected at once all pinged');
    my @t = sort { $a <=> $b } values %first;
    ok(@t && $t[0] > 0.9 && $t[-1] < 2.6,
       'first pings between half an interval and one')
        or diag("first pings from $t[0] to $t[-1] s");
    ok(@t && $t[-1] - $t[0] > 0.6, 'and spread out, not all at once')
        or diag("first pings from $t[0] to $t[-1] s");
    $_->close_socket for @c;
    $m->stop;
}

$n->stop;
done_testing;
