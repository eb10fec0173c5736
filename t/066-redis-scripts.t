# The Redis command layer: every Lua script is loaded with SCRIPT LOAD when
# a connection comes up and always called with EVALSHA, so in steady state
# no script text travels (INFO commandstats shows no EVAL at all, and no
# SCRIPT LOAD while the traffic goes on); a script Redis lost (SCRIPT
# FLUSH) is loaded again after its NOSCRIPT and the call goes through.
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
}
EOF2

ChatTest::Pg::need_module(server => $LOC);

# {command => calls} from INFO commandstats
sub stats {
    my ($r) = @_;
    my %calls;
    for (split /\r?\n/, $r->cmd('INFO', 'commandstats')) {
        $calls{$1} = $2 if /^cmdstat_([a-z|]+):calls=(\d+)/;
    }
    return \%calls;
}

sub calls { $_[0]{$_[1]} // 0 }

# wait until Redis has run a command, from a client or from a script
sub wait_command {
    my ($r, $name, $timeout) = @_;
    my $deadline = time + $timeout;
    sleep 0.2 while !calls(stats($r), $name) && time < $deadline;
    return calls(stats($r), $name);
}

my $r = ChatTest::Redis->start;
my $pg = ChatTest::Pg->start;
my $n = $pg->start_nginx($r, workers => 2, listen_opts => 'reuseport',
                         server => $LOC);
my $port = $n->port;

my $round = 0;

# every request that runs a script, and the rest of the protocol
sub traffic {
    $round++;
    my @c = map { ChatTest::WS->chat($port, user => "u$_", ignore => []) }
            1 .. 4;
    my $k = 0;

    for my $ws (@c) {
        my $j = $ws->call({ op => 'join', room => 'lobby', since => 0 });
        is($j && $j->{type}, 'joined', "round $round: joined") or diag(enc($j));
    }

    for my $ws (@c) {
        for my $i (1 .. 5) {
            my $a = $ws->call({ op => 'send', room => 'lobby',
                                text => "r$round m$i", id => "r$round-$k" });
            is($a && $a->{type}, 'ack', "round $round: send acked")
                or diag(enc($a));
            $k++;
        }
    }

    # a resend of an id: the same message
    my $again = $c[0]->call({ op => 'send', room => 'lobby',
                              text => "r$round m1", id => "r$round-0" });
    is($again && $again->{type}, 'ack', "round $round: a resend acked");

    $c[1]->send_json({ op => 'typing', room => 'lobby' });

    my $p = $c[1]->call({ op => 'presence', room => 'lobby' });
    is($p && $p->{type}, 'presence', "round $round: presence");

    my $o = $c[2]->call({ op => 'online', users => [ 'u1', 'u9' ] });
    is_deeply($o && $o->{users}, { u1 => JSON::PP::true,
                                   u9 => JSON::PP::false },
              "round $round: online");

    my $h = $c[3]->call({ op => 'history', room => 'lobby', before => 3 });
    is($h && $h->{type}, 'history', "round $round: history");

    my $hb = $c[3]->call({ op => 'heartbeat' });
    is($hb && $hb->{type}, 'heartbeat', "round $round: heartbeat");

    my $l = $c[3]->call({ op => 'leave', room => 'lobby' });
    is($l && $l->{type}, 'left', "round $round: left");

    $_->close_socket for @c;
}

# ---- a first round: the scripts of every path run
traffic();

# a seq key gone: re-seeded from Postgres (seed.lua), then numbered
my $c = ChatTest::WS->chat($port, user => 'seeder');
$c->join_room('lobby');
$r->cmd('DEL', 'chat:{lobby}:seq');
my $a = $c->call({ op => 'send', room => 'lobby', text => 'after DEL',
                   id => 'seeded' });
is($a && $a->{seq}, 21, 'the seq goes on after its key was deleted')
    or diag(enc($a));
$c->close_socket;

ok(wait_command($r, 'xtrim', 15), "the stream's housekeeping ran "
   . '(stream_trim.lua: XTRIM inside a script)');
ok(wait_command($r, 'zrangebyscore', 15),
   'the registry ran (registry.lua: ZRANGEBYSCORE inside a script)');

my $s1 = stats($r);
is(calls($s1, 'eval'), 0, 'no EVAL after the first round: ' . calls($s1,
   'eval'));
cmp_ok(calls($s1, 'evalsha'), '>=', 37 + 7,
       'EVALSHA for every script call: ' . calls($s1, 'evalsha'));
my $loads = calls($s1, 'script|load') || calls($s1, 'script');
cmp_ok($loads, '>=', 10, "SCRIPT LOAD on connect: $loads");

# ---- a second round: no script text travels
traffic();

# the closes' scripts run after the clients are gone: wait for them
my $s2;
ChatTest::wait_until(sub {
    $s2 = stats($r);
    calls($s2, 'evalsha') - calls($s1, 'evalsha') >= 37;
}, 10);
is(calls($s2, 'eval'), 0, 'no EVAL after the second round either');
# per round: 4 connections seen and gone, 4 room joins and leaves, 21 sends
cmp_ok(calls($s2, 'evalsha') - calls($s1, 'evalsha'), '>=', 37,
       'the second round ran its scripts by SHA1: '
       . (calls($s2, 'evalsha') - calls($s1, 'evalsha')) . ' EVALSHA');
is(calls($s2, 'script|load') || calls($s2, 'script'), $loads,
   'no SCRIPT LOAD while the traffic goes on');
unlike($n->error_log, qr/NOSCRIPT|was not loaded/,
       'no NOSCRIPT in steady state');

# ---- Redis loses its scripts: NOSCRIPT, loaded again, the call goes on
$r->cmd('SCRIPT', 'FLUSH');
$c = ChatTest::WS->chat($port, user => 'late');
my $j = $c->call({ op => 'join', room => 'lobby' });
is($j && $j->{type}, 'joined', 'joined after SCRIPT FLUSH');
$a = $c->call({ op => 'send', room => 'lobby', text => 'after flush',
                id => 'f1' });
is($a && $a->{type}, 'ack', 'a send after SCRIPT FLUSH is acked')
    or diag(enc($a));
my $m = $c->wait_for(type => 'message', match => sub {
    $_[0]{text} eq 'after flush' });
is($m && $m->{seq}, $a && $a->{seq}, 'and delivered with its seq');
like($n->error_log, qr/script \d+ was not loaded, loading it again/,
     'the NOSCRIPT is logged, and the script loaded again');
$a = $c->call({ op => 'send', room => 'lobby', text => 'again',
               id => 'f2' });
is($a && $a->{type}, 'ack', 'the next send is acked too');
is(calls(stats($r), 'eval'), 0, 'still no EVAL');
$c->close_socket;

$n->stop;
done_testing();
