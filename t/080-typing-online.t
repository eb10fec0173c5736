# typing and online, and the global presence key chat:presence:user:U.
#
# typing: no reply; every member connection of the room whose user is not
# the typer gets {"type":"typing","room":R,"user":U} (exactly that), the
# typer's own connections (all tabs) get nothing; not joined: not_joined;
# one per second per connection per room, extras dropped silently; never
# stored (no seq, not in history, not replayed by join since).  In memory
# mode (one worker), and with chat_redis across two workers and two nginx
# instances on one Redis.
#
# online: {"type":"online","users":{U:bool,...},"id":C}, every asked user a
# key; more than 100 users: too_large; not an array or a non-string user:
# bad_request; no join needed.  Memory mode: connections of this worker;
# Redis mode: anywhere (the presence keys).
#
# Redis mode: chat:presence:user:U exists with a TTL (0 < PTTL <=
# chat_presence_ttl) while U has a connection anywhere, set at connect,
# gone once the last one closes (any worker, any instance); with
# chat_presence_ttl 2s it is kept alive by heartbeats (or other requests)
# but refreshed at most once per TTL/3, and it expires within TTL + 1 s
# when the worker holding U's only connection is SIGKILLed.  A key that
# expired under silent connections comes back with their next request and
# stays while one of them is open (closing another does not remove it).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
EOF2

ChatTest::Redis::need_chat_redis(what => 'chat_redis and chat_presence_ttl',
    http => 'chat_presence_ttl 2s;', server => $LOC);

sub encs { @_ ? join(' ', map { enc($_) } @_) : 'nothing' }

# A client of $user on a worker of $n: want => that worker id, or not =>
# any other one (reuseport spreads connections by their source port).
sub on_worker {
    my ($n, $user, %o) = @_;
    my @spare;
    my $found;
    for (1 .. 60) {
        my $ws = ChatTest::WS->user($n->port, $user);
        my $w = $ws->welcome->{worker} // '';
        if (defined $o{want} ? $w eq $o{want} : $w ne $o{not}) {
            $found = $ws;
            last;
        }
        push @spare, $ws;
    }
    $_->close_socket for @spare;
    return $found;
}

# Everything (but presence events) each client got within $t seconds.
sub received {
    my ($t, @ws) = @_;
    sleep $t;
    return map { [ $_->drain(timeout => 0.02) ] } @ws;
}

sub nothing_ok {
    my ($got, $name) = @_;
    my $ok = ok(!@$got, $name);
    diag('got: ' . encs(@$got)) unless $ok;
    if (grep { ($_->{code} // '') eq 'unavailable' } @$got) {
        diag('the module still answers "unavailable": not implemented?');
    }
    return $ok;
}

sub typing_ok {
    my ($ws, $room, $user, $name) = @_;
    my $e = $ws->wait_for(type => 'typing', room => $room, timeout => 2);
    my $ok = is_deeply($e, { type => 'typing', room => $room, user => $user },
                       $name);
    diag('got ' . enc($e) . '; also queued: ' . encs(@{$ws->{pending}}))
        unless $ok;
    return $ok;
}

# online reply as { user => 'true' | 'false' | 'not a boolean: ...' }
sub online {
    my ($ws, @users) = @_;
    my $quiet = ref $users[0] ? shift(@users)->{quiet} : 0;
    my $x = $ws->call({ op => 'online', users => [ @users ] });
    unless ($x && ($x->{type} // '') eq 'online'
            && ref $x->{users} eq 'HASH')
    {
        diag('online ' . join(',', @users) . ': ' . enc($x)) unless $quiet;
        return undef;
    }
    my $u = $x->{users};
    return { map {
        $_ => ref $u->{$_} eq 'JSON::PP::Boolean' ? ($u->{$_} ? 'true'
                                                              : 'false')
              : 'not a boolean: ' . enc($u->{$_})
    } keys %$u };
}

sub close_clean {
    my ($ws) = @_;
    $ws->send_close(1000);
    my $code = $ws->expect_close(timeout => 2, eof_timeout => 2);
    $ws->close_socket;
    return $code;
}

# The online requests a connection can get wrong, in any mode.
sub online_validation {
    my ($ws, $mode) = @_;
    my $x = $ws->call({ op => 'online', users => [ map { "u$_" } 1 .. 100 ],
                        id => 'o100' });
    ok($x && $x->{type} eq 'online' && $x->{id} eq 'o100'
       && keys %{$x->{users} || {}} == 100,
       "$mode: online with 100 users answered, 100 keys, id echoed")
        or diag(substr(enc($x), 0, 300));
    $x = $ws->call({ op => 'online', users => [ map { "u$_" } 1 .. 101 ],
                     id => 'o101' });
    ok($x && $x->{type} eq 'error' && $x->{code} eq 'too_large'
       && $x->{id} eq 'o101', "$mode: online with 101 users: too_large")
        or diag(enc($x));
    for my $bad ([ 'users a string', 'alice' ], [ 'users an object',
                  { alice => 1 } ], [ 'a number in users', [ 'alice', 5 ] ],
                 [ 'null in users', [ undef ] ],
                 [ 'an array in users', [ [ 'alice' ] ] ],
                 [ 'no users', undef ])
    {
        my ($what, $v) = @$bad;
        my %req = (op => 'online', id => 'ob');
        $req{users} = $v if defined $v;
        $x = $ws->call(\%req);
        ok($x && $x->{type} eq 'error' && $x->{code} eq 'bad_request'
           && $x->{id} eq 'ob', "$mode: online with $what: bad_request")
            or diag(enc($x));
    }
    ok($ws->alive, "$mode: connection open after the refused requests");
}


# ================================================================ memory mode
{
    my $n = ChatTest->start(server => $LOC);
    my $port = $n->port;
    my $a1 = ChatTest::WS->user($port, 'alice');
    my $a2 = ChatTest::WS->user($port, 'alice');
    my $b1 = ChatTest::WS->user($port, 'bob');
    my $e1 = ChatTest::WS->user($port, 'erin');
    my $c1 = ChatTest::WS->user($port, 'carol');
    $_->join_room('t') for $a1, $a2, $b1, $e1;
    $c1->join_room('elsewhere');

    # typing with an id: still no reply
    $a1->send_json({ op => 'typing', room => 't', id => 'ty1' });
    typing_ok($b1, 't', 'alice', 'memory: bob gets {type typing, room t, '
              . 'user alice}, nothing more');
    typing_ok($e1, 't', 'alice', 'memory: erin gets it too');
    my @g = received(0.3, $a1, $a2, $b1, $e1, $c1);
    nothing_ok($g[0], 'memory: no reply to the typer (the request had an id)');
    nothing_ok($g[1], "memory: the typer's other tab gets nothing");
    nothing_ok($g[2], 'memory: bob: one typing event, no duplicate');
    nothing_ok($g[3], 'memory: erin: one typing event, no duplicate');
    nothing_ok($g[4], 'memory: carol (not in t) gets nothing');

    # one per second per connection per room, extras dropped silently
    $_->join_room('r') for $a1, $a2, $b1;
    my $t0 = time;
    $a1->send_json({ op => 'typing', room => 'r' }) for 1 .. 5;
    $a2->send_json({ op => 'typing', room => 'r' });
    my @ev;
    while (time < $t0 + 1.1) {
        push @ev, grep { $_->{type} eq 'typing' }
                  $b1->drain(timeout => $t0 + 1.1 - time);
    }
    is(scalar @ev, 2, 'memory: 5 typing from one tab, 1 from the other '
       . 'within the second: 2 relayed (one per connection), none late')
        or diag(encs(@ev));
    ok(!grep({ ($_->{room} // '') ne 'r' || ($_->{user} // '') ne 'alice' }
             @ev), '... room r, user alice') or diag(encs(@ev));
    @g = received(0, $a1, $a2);
    nothing_ok($g[0], 'memory: the dropped typing got no error');
    nothing_ok($g[1], "memory: alice's other tab: nothing either");
    $a1->send_json({ op => 'typing', room => 'r' });
    @ev = grep { $_->{type} eq 'typing' } $b1->drain(timeout => 0.4);
    is(scalar @ev, 1, 'memory: a second later typing is relayed again')
        or diag(encs(@ev));
    # per room: r was typed in 0.4 s ago, t more than a second ago
    $a1->send_json({ op => 'typing', room => 't' });
    typing_ok($b1, 't', 'alice', 'memory: the limit is per room');

    # not joined
    my $x = $c1->call({ op => 'typing', room => 't', id => 'nj' });
    ok($x && $x->{type} eq 'error' && $x->{code} eq 'not_joined'
       && $x->{id} eq 'nj', 'memory: typing without join: not_joined')
        or diag(enc($x));
    $b1->call({ op => 'leave', room => 't' });
    $x = $b1->call({ op => 'typing', room => 't', id => 'nj2' });
    is($x && $x->{code}, 'not_joined', 'memory: typing after leave: '
       . 'not_joined') or diag(enc($x));
    $a2->send_json({ op => 'typing', room => 't' });
    typing_ok($e1, 't', 'alice', 'memory: erin still gets typing in t');
    @g = received(0.2, $b1);
    nothing_ok($g[0], 'memory: bob left t: no typing event of t');

    # never stored
    $_->join_room('s') for $a1, $b1;
    my $ack = $a1->call({ op => 'send', room => 's', text => 'one' });
    is($ack && $ack->{seq}, 1, 'memory: s: ack seq 1');
    $b1->send_json({ op => 'typing', room => 's' });
    typing_ok($a1, 's', 'bob', 'memory: s: alice gets the typing of bob');
    $ack = $a1->call({ op => 'send', room => 's', text => 'two' });
    is($ack && $ack->{seq}, 2, 'memory: s: ack seq 2 (typing took no seq)');
    my $h = $b1->call({ op => 'history', room => 's' });
    is_deeply([ map { "$_->{seq} $_->{text}" } @{$h->{messages} || []} ],
              [ '1 one', '2 two' ], 'memory: history has the 2 messages only')
        or diag(enc($h));
    my $d1 = ChatTest::WS->user($port, 'dave');
    my $j = $d1->call({ op => 'join', room => 's', since => 0 });
    is($j && $j->{seq}, 2, 'memory: join since 0: joined seq 2');
    my @re = $d1->drain(timeout => 0.4);
    is_deeply([ map { ($_->{type} // '') . ' ' . ($_->{seq} // '') } @re ],
              [ 'message 1', 'message 2' ],
              'memory: join since 0 replays the 2 messages, no typing')
        or diag(encs(@re));
    $_->drain(timeout => 0.1) for $a1, $b1;

    # online: no join needed
    my $q = ChatTest::WS->user($port, 'q');
    is_deeply(online($q, qw(alice bob carol nobody q)),
              { alice => 'true', bob => 'true', carol => 'true',
                nobody => 'false', q => 'true' },
              'memory: online: connected users true, others false, '
              . 'JSON booleans');
    $x = $q->call({ op => 'online', users => [ 'erin' ], id => 'oid' });
    ok($x && $x->{type} eq 'online' && ($x->{id} // '') eq 'oid',
       'memory: online echoes the id') or diag(enc($x));
    online_validation($q, 'memory');

    is(close_clean($b1), 1000, 'memory: bob closes his only connection');
    ok(ChatTest::wait_until(sub {
           ((online($q, { quiet => 1 }, 'bob') // {})->{bob} // '')
               eq 'false' }, 1),
       'memory: bob offline once closed');
    close_clean($a1);
    sleep 0.2;
    is_deeply(online($q, 'alice'), { alice => 'true' },
              'memory: alice closed one tab: still online');
    close_clean($a2);
    ok(ChatTest::wait_until(sub {
           ((online($q, { quiet => 1 }, 'alice') // {})->{alice} // '')
               eq 'false' }, 1),
       'memory: alice closed both tabs: offline');

    $n->stop;
}


# ================================================================ Redis mode
my $r = ChatTest::Redis->start;
my $rc = $r->connection;

sub rcmd {
    my ($x, $e) = $rc->call([ @_ ]);
    die "redis @_: $e\n" if defined $e;
    return $x;
}

sub pkey { "chat:presence:user:$_[0]" }
sub exists_key { rcmd('EXISTS', pkey($_[0])) }

my %two = (server => $LOC, workers => 2, listen_opts => 'reuseport');
my $A = $r->start_nginx(%two, extra => "chat_presence_ttl 10s;\n");
my $B = $r->start_nginx(%two, extra => "chat_presence_ttl 10s;\n");

{
    my $a1 = ChatTest::WS->user($A->port, 'alice');
    my $W1 = $a1->welcome->{worker};
    my $a2 = on_worker($A, 'alice', not => $W1);
    my $W2 = $a2 && $a2->welcome->{worker};
    ok($a2, "A has a second worker ($W1 / " . ($W2 // 'none') . ')')
        or BAIL_OUT('reuseport did not spread the clients over 2 workers');
    my $b1 = on_worker($A, 'bob', want => $W2);
    my $c1 = on_worker($A, 'carol', want => $W1);
    my $a3 = ChatTest::WS->user($B->port, 'alice');
    my $b2 = ChatTest::WS->user($B->port, 'bob');
    my $d1 = ChatTest::WS->user($B->port, 'dave');
    ok($b1 && $c1, 'clients on both workers of A');
    my @all = ($a1, $a2, $b1, $c1, $a3, $b2, $d1);
    $_->join_room('rt') for $a1, $a2, $b1, $c1, $a3, $b2;
    $d1->join_room('other');

    $a1->send_json({ op => 'typing', room => 'rt', id => 'ty' });
    typing_ok($c1, 'rt', 'alice', 'redis: carol (same worker) gets the '
              . 'typing of alice');
    typing_ok($b1, 'rt', 'alice', 'redis: bob (other worker) gets it');
    typing_ok($b2, 'rt', 'alice', 'redis: bob (other instance) gets it');
    my @g = received(0.3, @all);
    nothing_ok($g[0], 'redis: no reply to the typer');
    nothing_ok($g[1], "redis: alice's tab on the other worker: nothing");
    nothing_ok($g[4], "redis: alice's tab on the other instance: nothing");
    nothing_ok($g[6], 'redis: dave (not in rt) gets nothing');
    nothing_ok([ map { @$_ } @g[2, 3, 5] ], 'redis: no duplicate events');

    $b2->send_json({ op => 'typing', room => 'rt' });
    typing_ok($_->[0], 'rt', 'bob', "redis: $_->[1] gets the typing of bob")
        for [ $a1, 'alice (A, worker 1)' ], [ $a2, 'alice (A, worker 2)' ],
            [ $a3, 'alice (B)' ], [ $c1, 'carol (A)' ];
    @g = received(0.3, @all);
    nothing_ok($g[2], "redis: bob's tab on A gets nothing");
    nothing_ok($g[5], 'redis: no reply to bob');
    nothing_ok([ map { @$_ } @g[0, 1, 3, 4, 6] ],
               'redis: no duplicate, nothing for dave');

    # the rate limit holds across workers and instances
    $_->join_room('rr') for $a1, $b1, $b2;
    $a1->send_json({ op => 'typing', room => 'rr' }) for 1 .. 5;
    my ($eb1, $eb2) = received(0.6, $b1, $b2);
    is(scalar(grep { $_->{type} eq 'typing' } @$eb1), 1,
       'redis: 5 typing within a second: 1 relayed (other worker)')
        or diag(encs(@$eb1));
    is(scalar(grep { $_->{type} eq 'typing' } @$eb2), 1,
       'redis: ... 1 relayed (other instance)') or diag(encs(@$eb2));
    @g = received(0, $a1);
    nothing_ok($g[0], 'redis: no error for the dropped ones');

    # not joined
    my $x = $d1->call({ op => 'typing', room => 'rt', id => 'nj' });
    ok($x && $x->{type} eq 'error' && $x->{code} eq 'not_joined'
       && $x->{id} eq 'nj', 'redis: typing without join: not_joined')
        or diag(enc($x));

    # never stored
    my $ack = $a1->call({ op => 'send', room => 'rt', text => 'one' });
    is($ack && $ack->{seq}, 1, 'redis: rt: ack seq 1');
    $c1->send_json({ op => 'typing', room => 'rt' });
    typing_ok($b2, 'rt', 'carol', 'redis: typing of carol relayed');
    $ack = $a1->call({ op => 'send', room => 'rt', text => 'two' });
    is($ack && $ack->{seq}, 2, 'redis: rt: ack seq 2 (typing took no seq)');
    is(rcmd('GET', 'chat:{rt}:seq'), 2, 'redis: chat:{rt}:seq == 2');
    my $recent = rcmd('ZRANGE', 'chat:{rt}:recent', 0, -1);
    is(scalar @$recent, 2, 'redis: chat:{rt}:recent holds the 2 messages');
    ok(!grep({ /typing/ } @$recent), '... no typing in it')
        or diag("@$recent");
    my $h = $b2->call({ op => 'history', room => 'rt' });
    is_deeply([ map { "$_->{seq} $_->{text}" } @{$h->{messages} || []} ],
              [ '1 one', '2 two' ], 'redis: history has the 2 messages only')
        or diag(enc($h));
    my $late = ChatTest::WS->user($B->port, 'late');
    my $j = $late->call({ op => 'join', room => 'rt', since => 0 });
    is($j && $j->{seq}, 2, 'redis: join since 0: joined seq 2');
    my @re = $late->drain(timeout => 0.4);
    is_deeply([ map { ($_->{type} // '') . ' ' . ($_->{seq} // '') } @re ],
              [ 'message 1', 'message 2' ],
              'redis: join since 0 replays the 2 messages, no typing')
        or diag(encs(@re));
    $_->drain(timeout => 0) for @all;

    # online, asked on B, no join: carol is connected on A only
    my $q = ChatTest::WS->user($B->port, 'q');
    is_deeply(online($q, qw(alice bob carol dave nobody)),
              { alice => 'true', bob => 'true', carol => 'true',
                dave => 'true', nobody => 'false' },
              'redis: online on B: carol (on A only) true, nobody false');
    online_validation($q, 'redis');

    # the presence keys
    ok(ChatTest::wait_until(sub { exists_key('carol') }, 1),
       'redis: ' . pkey('carol') . ' exists');
    my $pttl = rcmd('PTTL', pkey('carol'));
    ok($pttl > 0 && $pttl <= 10000, "redis: with a TTL, 0 < PTTL <= 10000 "
       . "(chat_presence_ttl 10s): $pttl");
    my $str = rcmd('TYPE', pkey('carol'));
    is($str, 'string', 'redis: the presence key is a string');
    my $fresh = ChatTest::WS->user($A->port, 'fresh');
    ok(ChatTest::wait_until(sub { exists_key('fresh') }, 1),
       'redis: set at connect (no request sent)');

    # two tabs on two instances
    my $t1 = ChatTest::WS->user($A->port, 'tab');
    my $t2 = ChatTest::WS->user($B->port, 'tab');
    my $had = ok(ChatTest::wait_until(sub { exists_key('tab') }, 1),
                 'redis: tab: key');
    close_clean($t1);
    sleep 0.5;
    is(exists_key('tab'), 1, 'redis: one of two tabs (A, B) closed: key '
       . 'stays');
    is_deeply(online($a1, 'tab'), { tab => 'true' }, '... online on A: true');
    close_clean($t2);
    ok($had && ChatTest::wait_until(sub { !exists_key('tab') }, 1),
       'redis: both tabs closed: key gone within 1 s');
    is_deeply(online($a1, 'tab'), { tab => 'false' },
              '... online on A: false');

    # two tabs on two workers of one instance
    my $u1 = on_worker($A, 'duo', want => $W1);
    my $u2 = on_worker($A, 'duo', want => $W2);
    $had = ok(ChatTest::wait_until(sub { exists_key('duo') }, 1),
              'redis: duo: key');
    close_clean($u2);
    sleep 0.5;
    is(exists_key('duo'), 1, 'redis: one of two tabs (2 workers) closed: '
       . 'key stays');
    close_clean($u1);
    ok($had && ChatTest::wait_until(sub { !exists_key('duo') }, 1),
       'redis: both closed: key gone within 1 s');

    # a TCP close without a close frame is a close too
    my $dr = ChatTest::WS->user($B->port, 'drop');
    $had = ok(ChatTest::wait_until(sub { exists_key('drop') }, 1),
              'redis: drop: key');
    $dr->close_socket;
    ok($had && ChatTest::wait_until(sub { !exists_key('drop') }, 1),
       'redis: TCP closed without a close frame: key gone within 1 s');

    # a new tab on B while the old one on A closes: still online
    my $f1 = ChatTest::WS->user($A->port, 'flip');
    $had = ok(ChatTest::wait_until(sub { exists_key('flip') }, 1),
              'redis: flip: key');
    my $f2 = ChatTest::WS->user($B->port, 'flip');
    close_clean($f1);
    sleep 0.6;
    is(exists_key('flip'), 1, 'redis: tab moved from A to B: key stays');
    is_deeply(online($q, 'flip'), { flip => 'true' }, '... online: true');
    close_clean($f2);
    ok($had && ChatTest::wait_until(sub { !exists_key('flip') }, 1),
       '... gone once the tab on B closed');
}

# ================================================ chat_presence_ttl 2s, crash
{
    my $C = $r->start_nginx(%two, extra => "chat_presence_ttl 2s;\n",
                            allow_log => [ qr/exited on signal 9\b/ ]);
    my $k = ChatTest::WS->user($C->port, 'crash');
    my $Wk = $k->welcome->{worker};
    my $hb = on_worker($C, 'hb', not => $Wk);
    my $rq = on_worker($C, 'rq', not => $Wk);
    my $fast = on_worker($C, 'fast', not => $Wk);
    my $P = ChatTest::worker_pid_of($C, $k);
    my $Q = $hb && ChatTest::worker_pid_of($C, $hb);
    ok($hb && $rq && $fast && $P && $Q && $P != $Q,
       'C: crash on worker ' . ($P // 'none') . ', the others on '
       . ($Q // 'none'));
    ok(ChatTest::wait_until(sub {
           !grep { !exists_key($_) } qw(crash hb rq fast) }, 1),
       'C: presence keys of crash, hb, rq, fast');
    my $had = exists_key('crash');
    my $p = rcmd('PTTL', pkey('hb'));
    ok($p > 0 && $p <= 2000, "C: 0 < PTTL <= 2000 (chat_presence_ttl 2s): "
       . "$p");
    # two tabs of idle, silent: their key may expire (see the loop below)
    my $i1 = on_worker($C, 'idle', not => $Wk);
    my $i2 = on_worker($C, 'idle', not => $Wk);
    my $ti = time;
    my $obs = ChatTest::WS->user($A->port, 'observer');
    is_deeply(online($obs, 'crash'), { crash => 'true' },
              'online on A: crash is online');

    # never kill 0 (our own process group)
    kill 'KILL', $P if $P && $P > 1;
    my $t0 = time;
    my ($gone, %min, %lost);
    $min{$_} = 1e9 for qw(hb rq fast);
    my $next = $t0;
    my ($idle_step, $idle_closed, $idle_lost) = (0);
    while (time < $t0 + 4.5) {
        # 2.4 s after connecting (TTL 2 s), i1 comes back with a heartbeat
        # and i2 closes: idle has a live, refreshed connection, so the key
        # must stay (0.5 s sampled)
        if ($idle_step == 0 && time >= $ti + 2.4) {
            $idle_step = 1;
            note('idle: key '
                 . (exists_key('idle') ? 'still there' : 'expired')
                 . ' after 2.4 s without requests');
            $i1->call({ op => 'heartbeat' });
            # the refresh goes through i1's worker's Redis link, the close
            # through i2's (maybe another worker's): the refresh first
            ChatTest::wait_until(sub { rcmd('PTTL', pkey('idle')) > 1500 },
                                 1);
            close_clean($i2);
            $idle_closed = time;
        }
        if ($idle_step == 1) {
            $idle_lost //= sprintf('%.2f s after the close',
                                   time - $idle_closed)
                unless exists_key('idle');
            $idle_step = 2 if time > $idle_closed + 0.5;
        }
        $fast->call({ op => 'heartbeat' });
        if (time >= $next) {
            $hb->call({ op => 'heartbeat' });
            $rq->call({ op => 'online', users => [ 'nobody' ] });
            $next += 0.5;
        }
        for my $u (qw(hb rq fast)) {
            my $v = rcmd('PTTL', pkey($u));
            $min{$u} = $v if $v < $min{$u};
            $lost{$u} //= sprintf('%.2f s: PTTL %d', time - $t0, $v)
                if $v <= 0;
        }
        $gone //= time - $t0 unless exists_key('crash');
        sleep 0.04;
    }
    ok(!$lost{hb}, 'heartbeat every 0.5 s: online for 4.5 s (TTL 2 s)')
        or diag("hb: $lost{hb}");
    ok(!$lost{rq}, 'online request every 0.5 s: online for 4.5 s')
        or diag("rq: $lost{rq}");
    ok(!$lost{fast}, 'heartbeat every 40 ms: online') or diag($lost{fast});
    ok($min{fast} > 0 && $min{fast} < 1500, 'heartbeat every 40 ms: '
       . 'refreshed at most once per TTL/3 (lowest PTTL seen '
       . "$min{fast} < 1500)");
    ok($idle_step == 2 && !$idle_lost, 'two tabs silent past the TTL, '
       . 'then one heartbeats and the other closes: the key stays')
        or diag('key of idle gone ' . ($idle_lost // '?'));
    ok($had && defined $gone && $gone <= 3.0, 'worker of the only '
       . 'connection of crash SIGKILLed: key gone within TTL + 1 s ('
       . (defined $gone ? sprintf('%.2f s', $gone) : 'still there') . ')');
    is_deeply(online($obs, qw(crash hb rq fast)),
              { crash => 'false', hb => 'true', rq => 'true',
                fast => 'true' }, 'online on A: crash false, the others true');
    ok($k->eof(1), 'the client of the killed worker was disconnected');
    $C->stop;
}


$A->stop;
$B->stop;
$rc->close;
$r->stop;
done_testing;
