# chat_limit_conn: open chat connections per key for the host.  N are
# accepted, the next gets 429 with Connection: close; each line counts
# apart; an empty key is not counted, one over 256 bytes gets 400; every
# kind of close gives the slot back; two workers share the count; the
# slots of a SIGKILLed worker come back with its replacement; a reload
# keeps the count; a full zone refuses with 429; nginx -t checks the
# arguments.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use Time::HiRes qw(time sleep);

# ------------------------------------------------------------ nginx -t

my $LOC = 'location = /chat { chat; chat_user $arg_user; %s }';

for my $case (
    # name, directives, expected output (undef: accepted)
    [ 'one line',            'chat_limit_conn $arg_ip 2;',              undef ],
    [ 'a zone size',         'chat_limit_conn $arg_ip 2 zone=64k;',     undef ],
    [ 'two lines, one size', 'chat_limit_conn $arg_ip 2 zone=1m; '
                             . 'chat_limit_conn $arg_user 3;',          undef ],
    [ 'the same size twice', 'chat_limit_conn $arg_ip 2 zone=64k; '
                             . 'chat_limit_conn $arg_user 3 zone=64k;', undef ],
    [ 'N of 0',              'chat_limit_conn $arg_ip 0;',
      qr/has an invalid number of connections/ ],
    [ 'N negative',          'chat_limit_conn $arg_ip -1;',
      qr/has an invalid number of connections/ ],
    [ 'N not a number',      'chat_limit_conn $arg_ip two;',
      qr/has an invalid number of connections/ ],
    [ 'a bad zone size',     'chat_limit_conn $arg_ip 2 zone=big;',
      qr/has an invalid zone size/ ],
    [ 'an empty zone size',  'chat_limit_conn $arg_ip 2 zone=;',
      qr/expected "zone=size"/ ],
    [ 'a zone under 32k',    'chat_limit_conn $arg_ip 2 zone=16k;',
      qr/has a zone size under 32k/ ],
    [ 'another parameter',   'chat_limit_conn $arg_ip 2 size=1m;',
      qr/expected "zone=size"/ ],
    [ 'conflicting sizes',   'chat_limit_conn $arg_ip 2 zone=64k; '
                             . 'chat_limit_conn $arg_user 3 zone=128k;',
      qr/conflicting zone sizes/ ],
    [ 'no number',           'chat_limit_conn $arg_ip;',
      qr/invalid number of arguments in "chat_limit_conn"/ ],
    [ 'no arguments',        'chat_limit_conn;',
      qr/invalid number of arguments in "chat_limit_conn"/ ],
    [ 'too many',            'chat_limit_conn $arg_ip 2 zone=1m x;',
      qr/invalid number of arguments in "chat_limit_conn"/ ],
) {
    my ($name, $lines, $want) = @$case;
    my ($rc, $out) = ChatTest->nginx_t(server => sprintf($LOC, $lines));
    if (defined $want) {
        isnt($rc, 0, "nginx -t: $name: refused");
        like($out, $want, "nginx -t: $name: says why") or diag($out);
    } else {
        is($rc, 0, "nginx -t: $name: accepted") or diag($out);
    }
}
{
    my ($rc, $out) = ChatTest->nginx_t(
        http => 'chat_limit_conn $binary_remote_addr 10 zone=64k;',
        server => 'chat_limit_conn $arg_user 5 zone=64k; '
                  . 'location = /chat { chat; chat_user $arg_user; }');
    is($rc, 0, 'nginx -t: http and server levels') or diag($out);
    ($rc, $out) = ChatTest->nginx_t(
        http => 'chat_limit_conn $binary_remote_addr 10 zone=64k;',
        server => 'location = /chat { chat; chat_user $arg_user; '
                  . 'chat_limit_conn $arg_user 5 zone=1m; }');
    isnt($rc, 0, 'nginx -t: sizes conflict across levels too');
    like($out, qr/conflicting zone sizes/, '... conflicting zone sizes');
}

# ------------------------------------------------------------ helpers

my $refused = 0;    # the 429s of this file: refused_limit must say as many

# a handshake: the client (undef when refused), the status, the headers
sub try_ws {
    my ($port, $path, %o) = @_;
    my $ws = ChatTest::WS->connect($port, path => $path, allow_fail => 1,
                                   %o);
    my $st = $ChatTest::WS::last_status // 0;
    $refused++ if $st == 429;
    $ws->{welcome} = $ws->recv_json if $ws;
    return ($ws, $st, $ChatTest::WS::last_headers);
}

sub status_of {
    my ($port, $path) = @_;
    my (undef, $st) = try_ws($port, $path);
    return $st;
}

# a slot given back is the next handshake's, a little after the close
sub wait_ws {
    my ($port, $path, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        my ($ws, $st) = try_ws($port, $path);
        return $ws if $ws;
        return undef if $st != 429 || time > $deadline;
        sleep 0.05;
    }
}

# a refused handshake: its status, headers and whether the server closed
sub refusal {
    my ($port, $path) = @_;
    my ($req) = ChatTest::ws_request(path => $path);
    my $fh = ChatTest::tcp_connect($port);
    ChatTest::write_all($fh, $req, 5);
    my ($st, $h) = ChatTest::read_response($fh, timeout => 5);
    my $buf = '';
    my $n;
    my $deadline = time + 5;
    do {
        $n = ChatTest::read_some($fh, \$buf, 1);
    } while (defined $n && $n > 0 || !defined $n && time < $deadline);
    close $fh;
    $refused++ if ($st // 0) == 429;
    return ($st, $h, defined $n && $n == 0);
}

sub log_since {
    my ($n, $off) = @_;
    return substr($n->error_log, $off);
}

sub refused_limit {
    my ($n) = @_;
    my $s = $n->status;
    return $s->{refused_limit} // -1;
}

# ------------------------------------------------------------ one worker

my $n = ChatTest->start(server => <<'EOF2');
chat_limit_conn $arg_s 1;
location = /chat {
    chat;
    chat_user $arg_user;
    chat_limit_conn $arg_ip 2;
    chat_limit_conn $arg_user 3;
}
location = /idle {
    chat;
    chat_user $arg_user;
    chat_ping_interval 300ms;
    chat_idle_timeout 600ms;
    chat_limit_conn $arg_ip 1;
}
location = /slow {
    chat;
    chat_user $arg_user;
    chat_send_buffer 16k;
    chat_rate 100000r/s burst=100000;
    chat_limit_conn $arg_ip 1;
}
location = /inherit { chat; chat_user $arg_user; }
location = /rooms { chat; chat_user $arg_user; chat_rooms "a b";
                    chat_limit_conn $arg_ip 1; }
location = /admin { chat_admin; }
location = /status { chat_status; }
EOF2
my $port = $n->port;

# N accepted, the next refused with 429 and Connection: close
my ($a1) = try_ws($port, '/chat?ip=A&user=a1');
my ($a2) = try_ws($port, '/chat?ip=A&user=a2');
ok($a1 && $a2, 'ip A: 2 connections accepted');
{
    my $off = length $n->error_log;
    my ($st, $h, $eof) = refusal($port, '/chat?ip=A&user=a3');
    is($st, 429, 'ip A: the third gets 429');
    like($h->{connection} // '', qr/^close$/i, '... with Connection: close');
    ok($eof, '... and the server closes the connection');
    my $over = 'chat: over chat_limit_conn of 2 (';
    like(log_since($n, $off),
         qr/\[info\].*\Q$over\E\S+:\d+\), a key of 1 bytes: 429/,
         '... logged at info with the limit and the key length');
    ok($a1->alive && $a2->alive, 'the two accepted ones work');
}

# each line counts apart: user a1 has 1 of 3, ip B and C are new
{
    my ($b) = try_ws($port, '/chat?ip=B&user=a1');
    my ($c) = try_ws($port, '/chat?ip=C&user=a1');
    ok($b && $c, 'user a1 from ip B and C: accepted (3 of 3)');
    is(status_of($port, '/chat?ip=D&user=a1'), 429,
       'user a1, a fourth from a new ip D: 429 (the user line)');
    my ($d) = try_ws($port, '/chat?ip=D&user=d1');
    ok($d, 'ip D with another user: accepted');
    $_->close_socket for grep { $_ } $b, $c, $d;
}

# the lines of different locations do not share keys
{
    my ($i) = try_ws($port, '/idle?ip=A&user=i1');
    ok($i, 'ip A is full in /chat, /idle counts its own ip A');
    $i->close_socket if $i;
}

# a location without its own lines inherits the server's; one with lines
# has only its own
{
    my ($s1) = try_ws($port, '/inherit?s=X&user=s1');
    ok($s1, '/inherit: the first of s=X accepted');
    is(status_of($port, '/inherit?s=X&user=s2'), 429,
       '/inherit: the second 429 (the server level line, 1)');
    my ($s3) = try_ws($port, '/chat?s=X&ip=E&user=s3');
    ok($s3, '/chat does not count s');
    $_->close_socket for grep { $_ } $s1, $s3;
}

# an empty key is not counted
{
    my @e = map { (try_ws($port, "/chat?user=e$_"))[0] } 1 .. 5;
    is(scalar(grep { $_ } @e), 5, 'no ip: 5 connections, none counted');
    $_->close_socket for grep { $_ } @e;
}

# a key over 256 bytes is refused with 400, 256 are counted
{
    my $off = length $n->error_log;
    my ($st, $h) = refusal($port, '/chat?user=long&ip=' . ('k' x 257));
    is($st, 400, 'a key of 257 bytes: 400');
    like($h->{connection} // '', qr/^close$/i, '... with Connection: close');
    like(log_since($n, $off), qr/chat_limit_conn key of 257 bytes, over 256/,
         '... logged');
    my $k = 'k' x 256;
    my @k = map { (try_ws($port, "/chat?user=k$_&ip=$k"))[0] } 1 .. 2;
    ok($k[0] && $k[1], 'a key of 256 bytes: 2 accepted');
    is(status_of($port, "/chat?user=k3&ip=$k"), 429, '... the third 429');
    $_->close_socket for grep { $_ } @k;
}

# a handshake refused for another reason takes no slot
{
    is(status_of($port, '/rooms?ip=R0'), 401, 'no user: 401');
    my ($st) = ChatTest::ws_handshake($port, path => '/rooms?ip=R0&user=x',
                                      headers => { 'Sec-WebSocket-Version'
                                                   => '12' });
    is($st, 426, 'a wrong version: 426');
    my ($r) = try_ws($port, '/rooms?ip=R0&user=r');
    ok($r, 'the slot of ip R0 is still free');
    $r->close_socket if $r;
}

# every kind of close gives the slot back: ip A is full (a1, a2)
{
    $a1->send_close(1000);
    my ($code) = $a1->expect_close;
    is($code, 1000, 'a1 closes with a close frame');
    $a1->close_socket;
    $a1 = wait_ws($port, '/chat?ip=A&user=a1b');
    ok($a1, 'client close frame: the slot is back');
    is(status_of($port, '/chat?ip=A&user=a3'), 429, '... and A is full again');

    $a2->close_socket;
    $a2 = wait_ws($port, '/chat?ip=A&user=a2b');
    ok($a2, 'TCP dropped: the slot is back');
    is(status_of($port, '/chat?ip=A&user=a3'), 429, '... and A is full again');
}
{
    my ($i) = try_ws($port, '/idle?ip=I&user=i');
    ok($i, '/idle: ip I accepted');
    is(status_of($port, '/idle?ip=I&user=i2'), 429, '/idle: the second 429');
    my ($code) = $i->expect_close(timeout => 5);
    is($code, 1000, 'the silent client is closed for its idle timeout');
    $i->close_socket;
    my $j = wait_ws($port, '/idle?ip=I&user=i3');
    ok($j, 'idle timeout: the slot is back');
    $j->close_socket if $j;
}
{
    my ($who) = try_ws($port, '/chat?ip=F&user=victim');
    my ($who2) = try_ws($port, '/chat?ip=F&user=victim');
    is(status_of($port, '/chat?ip=F&user=other'), 429, 'ip F is full');
    my ($st, undef, $j) = ChatTest::http_post_json($port, '/admin',
        { op => 'disconnect', user => 'victim' });
    is($st, 200, 'chat_admin disconnect: 200');
    for my $ws ($who, $who2) {
        my ($code) = $ws->expect_close(reply => 1);
        is($code, 1008, 'disconnected: 1008');
        $ws->close_socket;
    }
    my @f = map { wait_ws($port, "/chat?ip=F&user=f$_") } 1 .. 2;
    ok($f[0] && $f[1], 'admin disconnect: both slots are back');
    $_->close_socket for grep { $_ } @f;
}
{
    my ($slow) = try_ws($port, '/slow?ip=S&user=slow', rcvbuf => 4096);
    my ($flood) = try_ws($port, '/slow?user=flood');
    ok($slow && $flood, '/slow: a slow reader and a flooder');
    $slow->join_room('flood');
    $flood->join_room('flood');
    is(status_of($port, '/slow?ip=S&user=s2'), 429, 'ip S is full');
    my $text = 'x' x 1000;
    my ($sent, $closed) = (0, 0);
    my $deadline = time + 30;
    while (!$closed && time < $deadline) {
        my $batch = '';
        for (1 .. 8) {
            $sent++;
            $batch .= ChatTest::WS::frame(payload => ChatTest::json()->encode(
                { op => 'send', room => 'flood', text => $text,
                  id => "f$sent" }));
        }
        $flood->send_raw($batch) or last;
        $flood->drain(timeout => 0.01);
        $closed = ($n->status->{slow_consumers} // 0) if $sent % 64 == 0;
    }
    ok($closed, "the slow reader is closed as a slow consumer ($sent sent)");
    $slow->close_socket;
    $flood->close_socket;
    my $s = wait_ws($port, '/slow?ip=S&user=s3');
    ok($s, 'slow consumer: the slot is back');
    $s->close_socket if $s;
}

is(refused_limit($n), $refused, "status: refused_limit is $refused");
$a1->close_socket;
$a2->close_socket;

# the server stops with clients connected: nothing in the log
{
    my @c = map { (try_ws($port, "/chat?ip=Q&user=q$_"))[0] } 1 .. 2;
    ok($c[0] && $c[1], 'two clients stay connected at the stop');
    $n->stop(keep_clients => 1);
}

# ------------------------------------------------------------ two workers

$refused = 0;
$n = ChatTest->start(workers => 2, listen_opts => 'reuseport',
                     allow_log => [ qr/exited on signal 9\b/ ],
                     server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_limit_conn $arg_ip 2;
}
location = /status { chat_status; }
EOF2
$port = $n->port;
ChatTest::wait_until(sub { @{$n->status->{workers} || []} == 2 }, 5);

sub pid_of_worker {
    my ($id) = @_;
    my ($w) = grep { $_->{worker} eq $id } @{$n->status->{workers} || []};
    return $w && $w->{pid};
}

# a second connection of ip $ip on a worker other than (or, same => 1,
# the same as) the first's
sub second_on {
    my ($ip, $first, %o) = @_;
    for my $try (1 .. 60) {
        my $ws = wait_ws($port, "/chat?ip=$ip&user=$ip$try") or return undef;
        my $same = $ws->{welcome}{worker} eq $first->{welcome}{worker};
        return $ws if $same == !!$o{same};
        $ws->close_socket;
    }
    return undef;
}

# one count for both workers
{
    my ($w1) = try_ws($port, '/chat?ip=W&user=w1');
    my $w2 = second_on('W', $w1);
    ok($w1 && $w2, 'ip W: one connection on each worker');
    my $off = length $n->error_log;
    my ($all, %by) = (1);
    for my $try (1 .. 40) {
        $all &&= status_of($port, "/chat?ip=W&user=x$try") == 429;
        %by = map { $_ => 1 } log_since($n, $off)
              =~ /(\d+)#\d+: \*\d+ chat: over chat_limit_conn/g;
        last if keys %by == 2;
    }
    ok($all, 'ip W: every third handshake gets 429');
    is(scalar keys %by, 2, '... refused by both workers');
    $_->close_socket for grep { $_ } $w1, $w2;
}

# the sessions are closed (and their slots back) when the gauge is 0
sub none_open {
    ok(ChatTest::wait_until(sub { ($n->status->{connections} // -1) == 0 },
                            5), 'no connection left open');
}
none_open();

# a worker killed with its connections: its replacement gives them back
{
    my ($k1) = wait_ws($port, '/chat?ip=K&user=k1');
    my $k2 = second_on('K', $k1, same => 1);
    ok($k1 && $k2, 'ip K: two connections on one worker');
    my $victim = pid_of_worker($k1->{welcome}{worker});
    is(ChatTest::worker_pid_of($n, $k1), $victim, '... its pid');
    is(status_of($port, '/chat?ip=K&user=k3'), 429, 'ip K is full');
    my $off = length $n->error_log;
    my $dropped = 'chat: chat_limit_conn: dropped 2 connections counted '
                  . 'by exited workers';
    kill 'KILL', $victim;
    ok($k1->eof(5) && $k2->eof(5), 'the clients see the worker go');
    ok(ChatTest::wait_until(sub {
        my @w = @{$n->status->{workers} || []};
        @w == 2 && !grep { $_->{pid} == $victim } @w;
    }, 10), 'the worker is replaced');
    ok(ChatTest::wait_until(sub {
        log_since($n, $off) =~ /\[notice\].*\Q$dropped\E/
    }, 5), 'the replacement logs the 2 slots it gave back, at notice');
    my @k = map { wait_ws($port, "/chat?ip=K&user=kk$_") } 1 .. 2;
    ok($k[0] && $k[1], 'ip K: 2 connections accepted again');
    is(status_of($port, '/chat?ip=K&user=kk3'), 429, '... and a third 429');
    $_->close_socket for grep { $_ } @k;
}
none_open();

# a reload: the zone is the same, the old workers' connections count
# until they close, then give their slots back
{
    my ($r1) = wait_ws($port, '/chat?ip=R&user=r1');
    my ($r2) = wait_ws($port, '/chat?ip=R&user=r2');
    ok($r1 && $r2, 'ip R: 2 connections');
    ok($n->reload, 'reload');
    my $st = status_of($port, '/chat?ip=R&user=r3');
    # the old workers close them with 1001 and wait (2 s at most) for the
    # clients' close: they count until then
    SKIP: {
        skip 'the old workers closed the connections before the check', 1
            unless ($n->status->{connections} // 0) >= 2;
        is($st, 429, 'after the reload, the new workers count the old ones');
    }
    for my $ws ($r1, $r2) {
        my ($code) = $ws->expect_close(reply => 1);
        is($code, 1001, 'the old worker closes with 1001');
        $ws->close_socket;
    }
    my @r = map { wait_ws($port, "/chat?ip=R&user=rr$_") } 1 .. 2;
    ok($r[0] && $r[1], 'their slots are back: 2 connections accepted');
    is(status_of($port, '/chat?ip=R&user=rr3'), 429, '... a third 429');
    $_->close_socket for grep { $_ } @r;
}

is(refused_limit($n), $refused,
   "status: refused_limit is $refused, across a crash and a reload");
$n->stop;

# ------------------------------------------------------------ zone full

$n = ChatTest->start(server => <<'EOF2');
location = /chat {
    chat;
    chat_user $arg_user;
    chat_limit_conn $arg_k 1000 zone=32k;
}
EOF2
$port = $n->port;
{
    my $off = length $n->error_log;
    my (@c, $st);
    for my $i (1 .. 1000) {
        my ($ws, $s) = try_ws($port, "/chat?user=u&k=" . sprintf('%0200d', $i));
        $st = $s;
        last unless $ws;
        push @c, $ws;
    }
    is($st, 429, 'distinct keys of 200 bytes fill 32k: 429');
    cmp_ok(scalar @c, '>', 10, '... after ' . scalar(@c) . ' connections');
    like(log_since($n, $off), qr/\[error\].*chat: chat_limit_conn zone is full/,
         '... logged at error');
    $_->close_socket for @c;
    my ($ws) = wait_ws($port, '/chat?user=u&k=' . sprintf('%0200d', 1));
    ok($ws, 'the zone has room again once they closed');
    $ws->close_socket if $ws;
}
$n->stop;

done_testing;
