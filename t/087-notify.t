# chat_notify: every stored message, and nothing else, in the Redis stream
# PREFIX:notify, with the fields room, seq, msg_id, user, ts and text, in
# each room's seq order; a resend adds nothing; without chat_notify nothing
# is written; chat_notify_max trims.  Then the example consumer,
# conf/notify-consumer.py, against it: two consumers in a group notify
# each message's offline recipients exactly once and skip the online
# ones; a consumer SIGKILLed in the middle of a batch loses nothing (a
# second one claims its entries); Redis going away is waited out, without
# a tight loop.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Process qw(spawn wait_child slurp write_file tempdir);
use Time::HiRes qw(time sleep);

my $JSON = ChatTest::json();
my $PY = '/usr/bin/python3';
my $CONSUMER = ChatTest::repo_root() . '/conf/notify-consumer.py';
my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
    chat_max_pending 4096;
}
location = /publish { chat_publish; chat_user $http_x_user; }
EOF2

ChatTest::Redis::need_module(
    what => 'chat_notify and chat_notify_max directives', server => $LOC,
    http => "chat_redis redis://127.0.0.1:1/0;\nchat_notify on;\n"
            . "chat_notify_max 1000;");

# ---- nginx -t
{
    my ($rc, $out) = ChatTest->nginx_t(server => $LOC,
                                       http => 'chat_notify on;');
    isnt($rc, 0, 'chat_notify without chat_redis: nginx -t fails');
    like($out, qr/"chat_notify" requires "chat_redis"/,
         '... saying that chat_notify requires chat_redis') or diag($out);

    for my $bad ('chat_notify on; chat_notify_max 0;',
                 'chat_notify on; chat_notify_max many;',
                 'chat_notify yes;') {
        ($rc, $out) = ChatTest->nginx_t(server => $LOC,
            http => "chat_redis redis://127.0.0.1:1/0;\n$bad");
        isnt($rc, 0, "'$bad' is refused") or diag($out);
    }
    ($rc, $out) = ChatTest->nginx_t(server => $LOC,
                                    http => 'chat_notify off;');
    is($rc, 0, 'chat_notify off without chat_redis is fine') or diag($out);
}

system($PY, '-c', 'import redis') == 0
    or BAIL_OUT("$PY cannot import redis: install python3-redis "
                . '(make test-deps)');

my $r = ChatTest::Redis->start;

sub post {
    my ($port, $room, $text, %o) = @_;
    my $body = $JSON->encode({ room => $room, text => $text,
                               defined $o{id} ? (id => $o{id}) : () });
    my $req = "POST /publish HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nX-User: " . ($o{user} // 'bot') . "\r\n"
        . "Content-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    my ($st, $h, $b) = ChatTest::http_request($port, $req, timeout => 5);
    my $j = eval { $JSON->decode($b // '') };
    return ($st // 0, ref $j eq 'HASH' ? $j : { raw => $b });
}

# the stream as [ [id, {field => value}, [field names in order]] ]
sub stream {
    my ($key) = @_;
    my $x = $r->cmd('XRANGE', $key, '-', '+') // [];
    my @e;
    for my $entry (@$x) {
        my ($id, $kv) = @$entry;
        my %f = @$kv;
        utf8::decode($_) for values %f;
        push @e, [ $id, \%f, [ @{$kv}[grep { $_ % 2 == 0 } 0 .. $#$kv] ] ];
    }
    return \@e;
}

# the message events Redis keeps for a room, by seq
sub recent {
    my ($prefix, $room) = @_;
    my %m;
    for my $j (@{$r->cmd('ZRANGE', "$prefix:{$room}:recent", 0, -1)}) {
        my $e = $JSON->decode($j);
        $m{$e->{seq}} = $e;
    }
    return \%m;
}

# some texts need escaping in the event, none in the stream
my @TEXTS = ('plain', "ü € 🎉 \"dq\" \\ back", "two\nlines\ttab", '{"x":1}');
sub text_of { my ($i) = @_; return "m$i " . $TEXTS[$i % @TEXTS] }

# ---- without chat_notify nothing is written
{
    my $n = $r->start_nginx(server => $LOC, prefix => 'off');
    my $ws = ChatTest::WS->chat($n->port, user => 'alice');
    $ws->join_room('r1');
    my $a = $ws->call({ op => 'send', room => 'r1', text => 'hi' });
    my ($st, $p) = post($n->port, 'r1', 'news');
    ok($a->{type} eq 'ack' && $st == 200, 'without chat_notify: sent')
        or diag(enc($a) . " $st " . enc($p));
    is($r->cmd('EXISTS', 'off:notify'), 0, '... and no off:notify stream');
    is_deeply([ grep { /notify/ } @{$r->cmd('KEYS', '*')} ], [],
              '... no notify key of any name');
    $ws->close_socket;
    $n->stop;
}

# ---- chat_notify_max trims the stream (MAXLEN ~)
{
    my $n = $r->start_nginx(server => $LOC, prefix => 'trim',
                            http => "chat_notify on;\nchat_notify_max 100;\n");
    my $ws = ChatTest::WS->chat($n->port, user => 'alice');
    $ws->join_room('big');
    my $N = 1000;
    for my $i (1 .. $N) {
        $ws->send_json({ op => 'send', room => 'big', text => "t$i",
                         id => "t$i" });
    }
    my @acks = $ws->collect(n => $N, type => 'ack', timeout => 20);
    is(scalar @acks, $N, "$N sends acked");
    my $len = $r->cmd('XLEN', 'trim:notify');
    ok($len >= 100 && $len < 300,
       "chat_notify_max 100: XLEN $len, about 100 (whole nodes trimmed)");
    my $e = stream('trim:notify');
    my @s = map { $_->[1]{seq} } @$e;
    is_deeply(\@s, [ $N - @s + 1 .. $N ], '... the newest ones, in order');
    $ws->close_socket;
    $n->stop;
}

# ---- chat_notify on: N sends from WebSockets and chat_publish
my $n = $r->start_nginx(server => $LOC, prefix => 'app', workers => 2,
                        listen_opts => 'reuseport',
                        http => "chat_notify on;\n");
my $port = $n->port;
my @ROOMS = qw(r1 r2 r3);
my %ws;
for my $u (qw(alice bob)) {
    $ws{$u} = ChatTest::WS->chat($port, user => $u);
    $ws{$u}->join_room($_) for @ROOMS;
}

my (%acked, @sent);      # "room|seq" => [user, text]
my $errors = 0;
for my $i (1 .. 36) {
    my $room = $ROOMS[$i % 3];
    my ($user, $a);
    if ($i % 4 == 0) {
        $user = 'bot';
        (my $st, $a) = post($port, $room, text_of($i), id => "p$i");
        $errors++ unless $st == 200;
    } else {
        $user = $i % 2 ? 'alice' : 'bob';
        $a = $ws{$user}->call({ op => 'send', room => $room,
                                text => text_of($i), id => "w$i" });
    }
    unless (($a->{type} // '') eq 'ack' && $a->{seq}) {
        $errors++;
        diag('send failed: ' . enc($a));
        next;
    }
    $acked{"$room|$a->{seq}"} = [ $user, text_of($i) ];
    push @sent, [ $room, $a->{seq}, $user, $i ];
}
my $N = @sent;
is($errors, 0, "$N messages acked (WebSocket sends and chat_publish)");

my $e = stream('app:notify');
is(scalar @$e, $N, "app:notify holds $N entries");
is($r->cmd('EXISTS', 'chat:notify'), 0,
   'chat_key_prefix names the stream (no chat:notify)');
{
    my ($fields, $bad, $order, %last) = (0, 0, 0);
    my %recent = map { $_ => recent('app', $_) } @ROOMS;
    for my $x (@$e) {
        my ($id, $f, $names) = @$x;
        $fields++ if "@$names" ne 'room seq msg_id user ts text';
        my $ev = $recent{$f->{room} // ''}{$f->{seq} // ''};
        my $want = $acked{($f->{room} // '') . '|' . ($f->{seq} // '')};
        if (!$ev || !$want || $f->{msg_id} ne $ev->{msg_id}
            || $f->{user} ne $ev->{user} || $f->{ts} ne $ev->{ts}
            || $f->{text} ne $ev->{text} || $f->{user} ne $want->[0]
            || $f->{text} ne $want->[1])
        {
            $bad++;
            diag("entry $id: " . enc($f) . ' event ' . enc($ev));
        }
        $order++ if ($f->{seq} // 0) != ($last{$f->{room} // ''} // 0) + 1;
        $last{$f->{room} // ''} = $f->{seq};
    }
    is($fields, 0, 'every entry has the fields room, seq, msg_id, user, '
       . 'ts, text, in that order');
    is($bad, 0, '... those of the message as acked and stored (msg_id, '
       . 'user, ts as in the event, text unescaped)');
    is($order, 0, "each room's entries in seq order, 1, 2, 3, ...");
    my %in = map {; "$_->[1]{room}|$_->[1]{seq}" => 1 } @$e;
    is(scalar(grep { !$in{$_} } keys %acked), 0,
       'every acked message is in the stream');
}

# resends answered from the idempotency key append nothing
{
    my $a = $ws{alice}->call({ op => 'send', room => 'r2',
                               text => 'again', id => 'w1' });
    my ($st, $p) = post($port, 'r1', 'again', id => 'p12');
    my $fresh = ChatTest::WS->chat($port, user => 'alice');
    $fresh->join_room('r2');
    my $b = $fresh->call({ op => 'send', room => 'r2', text => 'again',
                           id => 'w1' });
    my ($w1) = grep { $_->[3] == 1 } @sent;
    my ($p12) = grep { $_->[3] == 12 } @sent;
    ok($a->{seq} == $w1->[1] && $b->{seq} == $w1->[1]
       && $p->{seq} == $p12->[1],
       'resends (WebSocket, another connection, chat_publish) get the '
       . 'original seq') or diag(enc($a) . enc($b) . enc($p));
    is($r->cmd('XLEN', 'app:notify'), $N, '... and append nothing');
    $fresh->close_socket;
}

# ---- the example consumer
my $dir = tempdir('ngx_chat_notify_XXXXXX');
my %MEMBERS = (r1 => [qw(alice bob carol dave)],
               r2 => [qw(alice bob carol erin)],
               r3 => [qw(bob dave erin frank)]);
write_file("$dir/members.json", $JSON->encode(\%MEMBERS));
my %ONLINE = (alice => 1, bob => 1);
ok($r->cmd('EXISTS', 'app:presence:user:alice')
   && $r->cmd('EXISTS', 'app:presence:user:bob')
   && !$r->cmd('EXISTS', 'app:presence:user:carol'),
   'alice and bob are online, carol is not');

# what should be notified: "room|seq|to" for every offline member but the
# sender
my %WANT;
for my $s (@sent) {
    my ($room, $seq, $user) = @$s;
    $WANT{"$room|$seq|$_"} = 1
        for grep { $_ ne $user && !$ONLINE{$_} } @{$MEMBERS{$room}};
}

my $cn = 0;
sub consumer {
    my (%o) = @_;
    my $name = $o{name} // 'c' . ++$cn;
    my @args = ('--redis', $r->url, '--prefix', 'app',
                '--members', "$dir/members.json", '--consumer', $name,
                '--block', 200, '--retry', 0.2, '--retry-max', 0.5,
                @{$o{args} // []});
    my $pid = spawn(cmd => [ $PY, $CONSUMER, @args ],
                    out => "$dir/$name.out", err => "$dir/$name.err");
    return { pid => $pid, name => $name };
}

# the consumer's lines: [decoded]; bad lines are returned as {bad => line}
sub lines {
    my ($c) = @_;
    my @l;
    for (split /\n/, slurp("$dir/$c->{name}.out") // '') {
        my $j = eval { $JSON->decode($_) };
        push @l, ref $j eq 'HASH' ? $j : { bad => $_ };
    }
    return @l;
}

sub key_of { my ($l) = @_; return "$l->{room}|$l->{seq}|$l->{to}" }

# (pending, lag): what the group holds unacknowledged, and not yet read
sub group_state {
    my ($group) = @_;
    my ($pending, $lag) = (undef, undef);
    for my $g (@{$r->cmd('XINFO', 'GROUPS', 'app:notify')}) {
        my %g = @$g;
        ($pending, $lag) = ($g{pending}, $g{lag}) if $g{name} eq $group;
    }
    return ($pending, $lag);
}

sub wait_drained {
    my ($group, $timeout) = @_;
    return ChatTest::wait_until(sub {
        my ($p, $l) = group_state($group);
        return defined $p && $p == 0 && defined $l && $l == 0;
    }, $timeout);
}

sub stop_consumer {
    my ($c) = @_;
    kill 'TERM', $c->{pid};
    return wait_child($c->{pid}, 10);
}

sub check_lines {
    my ($label, @l) = @_;
    my %got;
    my ($bad, $dup, $extra, $online) = (0, 0, 0, 0);
    for my $l (@l) {
        if ($l->{bad} || !defined $l->{to}) {
            $bad++;
            diag("$label: " . ($l->{bad} // enc($l)));
            next;
        }
        $online++ if $ONLINE{$l->{to}};
        $dup++ if $got{key_of($l)}++;
        $extra++ unless $WANT{key_of($l)};
        my $want = $acked{"$l->{room}|$l->{seq}"};
        $bad++ unless $want && $l->{from} eq $want->[0]
                      && $l->{text} eq $want->[1] && $l->{msg_id}
                      && $l->{ts};
    }
    my @missing = grep { !$got{$_} } sort keys %WANT;
    is(scalar @missing, 0, "$label: every offline recipient of every "
       . 'message notified (' . scalar(keys %WANT) . ')')
        or diag("missing: @missing[0 .. ($#missing > 9 ? 9 : $#missing)]");
    is($dup, 0, "$label: ... exactly once");
    is($online, 0, "$label: ... and no online user");
    is($extra, 0, "$label: ... and nobody else (not the sender)");
    is($bad, 0, "$label: ... with the message's fields");
    return \%got;
}

# two consumers of one group share the stream: each message once; an
# entry that is no message (the stream is anyone's to write) is skipped
$r->cmd('XADD', 'app:notify', '*', 'hello', 'world');
{
    # slow enough for the second to start while the first has batches
    my @c = map { consumer(args => [ '--group', 'g1', '--start', '0',
                                     '--batch', 5, '--delay', 0.03 ]) }
            1 .. 2;
    ok(wait_drained('g1', 20), 'group g1: two consumers read and '
       . 'acknowledged every entry');
    is(stop_consumer($_), 0, "consumer $_->{name} stops on SIGTERM")
        for @c;
    my @a = lines($c[0]);
    my @b = lines($c[1]);
    ok(@a && @b, sprintf('the group shared them: consumer c1 wrote %d '
                         . 'lines, c2 %d', scalar @a, scalar @b));
    check_lines('group g1', @a, @b);
    like(join('', map { slurp("$dir/$_->{name}.err") // '' } @c),
         qr/entry \S+ is not a message, skipped/,
         'the entry that is no message was skipped, and acknowledged');
}

# a consumer SIGKILLed in the middle of a batch: a second one claims it
{
    my $a = consumer(args => [ '--group', 'g2', '--start', '0',
                               '--batch', 100, '--delay', 0.05 ]);
    ok(ChatTest::wait_until(sub { lines($a) >= 5 }, 10),
       'consumer A is notifying its batch');
    kill 'KILL', $a->{pid};
    is(wait_child($a->{pid}, 5), 128 + 9, '... and is SIGKILLed');
    my @la = lines($a);
    my ($pending) = group_state('g2');
    cmp_ok(scalar @la, '<', scalar keys %WANT,
           'A had not notified all of its batch (' . @la . ' lines)');
    is($pending, $N + 1, '... and acknowledged none of its ' . ($N + 1)
       . ' entries');

    my $b = consumer(args => [ '--group', 'g2', '--batch', 10,
                               '--claim-idle', 300, '--claim-every', 0.2 ]);
    ok(wait_drained('g2', 20), 'consumer B: every entry of group g2 '
       . 'acknowledged');
    is(stop_consumer($b), 0, '... B stops on SIGTERM');
    like(slurp("$dir/$b->{name}.err") // '', qr/claimed \d+ entries/,
         '... having claimed what A left');
    my $got = check_lines('group g2, consumer B', lines($b));
    is(scalar(grep { !$got->{key_of($_)} } @la), 0,
       "what A notified before it died, B notified again (at least once)");
    my %cons = map { my %h = @$_; $h{name} => $h{pending} }
               @{$r->cmd('XINFO', 'CONSUMERS', 'app:notify', 'g2')};
    is($cons{$a->{name}}, 0, 'A holds nothing any more');
}

# Redis goes away: the consumer waits, without spinning, and goes on
sub cpu_ticks {
    my ($pid) = @_;
    my $s = slurp("/proc/$pid/stat") // '';
    my @f = split ' ', ($s =~ /\)\s+(.*)$/s)[0] // '';
    return ($f[11] // 0) + ($f[12] // 0);
}
{
    my $c = consumer(args => [ '--group', 'g3', '--claim-every', 0.5 ]);
    ok(ChatTest::wait_until(sub {
        my ($p) = group_state('g3');
        return defined $p;
    }, 10), 'consumer C has created group g3');
    sleep 0.5;
    $r->kill;
    sleep 0.5;
    my $t0 = cpu_ticks($c->{pid});
    sleep 3;
    my $ticks = cpu_ticks($c->{pid}) - $t0;
    ok(kill(0, $c->{pid}), 'consumer C is still running with Redis gone');
    my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
    cmp_ok($ticks / $hz, '<', 0.5, sprintf('... using %.2f s of CPU in 3 s '
           . '(no tight loop)', $ticks / $hz));
    my @retries = (slurp("$dir/$c->{name}.err") // '')
                  =~ /redis unreachable/g;
    ok(@retries >= 2 && @retries <= 20,
       '... retrying with a pause: ' . @retries . ' attempts logged');

    $r->restart;
    my ($st, $p);
    ChatTest::wait_until(sub {
        ($st, $p) = post($port, 'r1', 'after the restart', id => 'x1');
        return $st == 200;
    }, 15);
    is($st, 200, 'Redis back (empty): nginx stores a message again')
        or diag(enc($p));
    ok(ChatTest::wait_until(sub {
        grep { ($_->{text} // '') eq 'after the restart' } lines($c);
    }, 15), '... and consumer C, its group created again, notifies it');
    like(slurp("$dir/$c->{name}.err") // '', qr/group g3 gone/,
         '... after logging that its group was gone');
    is(stop_consumer($c), 0, '... C stops on SIGTERM');
}

$_->close_socket for values %ws;
$n->stop;
done_testing;
