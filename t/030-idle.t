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
ok(defined $first_ping{silent} && $first_ping{silent} > 0.5
   && $first_ping{silent} < 2.5, 'first ping after ~1 s')
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

$n->stop;
done_testing;
