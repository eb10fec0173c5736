# chat_publish: HTTP publishing for back ends.  POST {"room","text","id"}
# as the chat_user -> 200 + ack, delivered to the WebSocket members; bad
# bodies -> 400 bad_request; too large -> 400/413 too_large; other methods
# -> 405; keep-alive.  In memory (no chat_redis, one worker) and with Redis
# (two workers; Redis down -> 503 unavailable).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use Time::HiRes qw(time sleep);

my $JSON = ChatTest::json();
my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
location = /publish { chat_publish; chat_user $http_x_user; }
location = /publish-small {
    chat_publish;
    chat_user $http_x_user;
    chat_max_message_size 100;
}
location = /publish-disk {
    chat_publish;
    chat_user $http_x_user;
    client_body_buffer_size 1k;
}
EOF2

ChatTest::Redis::need_module(what => 'chat_publish directive (no Redis)',
                             server => $LOC);

sub post_raw {
    my ($body, %o) = @_;
    my $path = $o{path} // '/publish';
    my $method = $o{method} // 'POST';
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n";
    $req .= "Connection: close\r\n" unless $o{keepalive};
    $req .= "X-User: " . ($o{user} // 'bot') . "\r\n"
        unless exists $o{user} && !defined $o{user};
    $req .= "Content-Type: application/json\r\n" unless $o{no_type};
    if ($o{chunked}) {
        $req .= "Transfer-Encoding: chunked\r\n\r\n";
        my $half = int(length($body) / 2);
        for my $part (substr($body, 0, $half), substr($body, $half)) {
            $req .= sprintf("%x\r\n%s\r\n", length $part, $part)
                if length $part;
        }
        $req .= "0\r\n\r\n";
    } elsif (defined $body) {
        $req .= "Content-Length: " . length($body) . "\r\n\r\n$body";
    } else {
        $req .= "\r\n";
    }
    return $req;
}

# (status, headers, decoded body or raw body)
sub post {
    my ($port, $body, %o) = @_;
    $body = $JSON->encode($body) if ref $body;
    my ($st, $h, $b) = ChatTest::http_request($port, post_raw($body, %o),
                                              timeout => $o{timeout} // 5);
    my $j = eval { $JSON->decode($b) };
    return ($st // 0, $h, ref $j eq 'HASH' ? $j : $b);
}

sub is_error {
    my ($port, $body, $status, $code, $name, %o) = @_;
    my ($st, $h, $j) = post($port, $body, %o);
    my @st = ref $status ? @$status : ($status);
    ok(grep({ $st == $_ } @st), "$name: status " . join('|', @st))
        or diag("got $st " . enc($j));
    is(ref $j && $j->{type}, 'error', "$name: error object")
        or diag(enc($j));
    is(ref $j && $j->{code}, $code, "$name: code $code");
    ok(ref $j && defined $j->{message} && length $j->{message},
       "$name: message");
    like($h->{'content-type'} // '', qr{^application/json}, "$name: JSON")
        if ref $j;
    return $j;
}

# n messages of room news from every member: the same on each; returns
# the first member's.
sub delivered {
    my ($members, $n, $name) = @_;
    my ($first, $same);
    $same = 1;
    for my $ws (@$members) {
        my @m = $ws->collect(n => $n, type => 'message', room => 'news',
                             timeout => 5);
        my $sig = join "\n", map { "$_->{seq} $_->{msg_id}" } @m;
        if (!$first) {
            $first = [ \@m, $sig ];
        } elsif ($sig ne $first->[1]) {
            $same = 0;
        }
        $same = 0 if @m != $n;
    }
    ok($same, "$name: all " . @$members . " members got the same $n");
    return @{$first->[0]};
}

# The common part, for a server and WebSocket members of room "news".
sub publish_suite {
    my ($n, $label, @members) = @_;
    my $port = $n->port;

    my ($st, $h, $j) = post($port, { room => 'news', text => 'hello',
                                     id => 'p1' });
    is($st, 200, "$label: POST -> 200");
    like($h->{'content-type'} // '', qr{^application/json},
         "$label: Content-Type application/json");
    is_deeply($j, { type => 'ack', id => 'p1', room => 'news', seq => 1 },
              "$label: body is the ack");
    for my $ws (@members) {
        my $m = $ws->wait_for(type => 'message', room => 'news');
        ok($m && $m->{seq} == 1 && $m->{text} eq 'hello'
           && $m->{user} eq 'bot' && $m->{msg_id} && $m->{ts},
           "$label: delivered to " . $ws->welcome->{user}
           . ' as a message from the chat_user') or diag(enc($m));
    }

    ($st, $h, $j) = post($port, { room => 'news', text => 'no id' },
                         user => 'sys');
    is($st, 200, "$label: without id -> 200");
    is_deeply($j, { type => 'ack', room => 'news', seq => 2 },
              "$label: ack without id");
    my ($mm) = delivered(\@members, 1, "$label: without id");
    is($mm && $mm->{user}, 'sys', "$label: user from X-User");

    # a WebSocket send and a publish share the sequence
    my $ack = $members[0]->call({ op => 'send', room => 'news',
                                  text => 'ws' });
    is($ack && $ack->{seq}, 3, "$label: WebSocket send -> seq 3");
    ($st, $h, $j) = post($port, { room => 'news', text => "\x{e9}t\x{e9} \x{1F600}",
                                  id => 'utf8' });
    is(ref $j && $j->{seq}, 4, "$label: publish after it -> seq 4");
    my @m = delivered(\@members, 2, "$label: send + publish");
    is_deeply([ map { $_->{seq} } @m ], [ 3, 4 ], "$label: got 3, 4");
    is($m[1] && $m[1]{text}, "\x{e9}t\x{e9} \x{1F600}",
       "$label: UTF-8 text intact");

    # chunked request body, and a body written to a temporary file
    ($st, $h, $j) = post($port, { room => 'news', text => 'chunked',
                                  id => 'ch' }, chunked => 1);
    is($st, 200, "$label: chunked body -> 200") or diag(enc($j));
    my $big = 'd' x 5000;
    ($st, $h, $j) = post($port, { room => 'news', text => $big, id => 'disk' },
                         path => '/publish-disk');
    is($st, 200, "$label: body buffered to a file -> 200") or diag(enc($j));
    @m = delivered(\@members, 2, "$label: chunked, file");
    is_deeply([ map { $_->{text} } @m ], [ 'chunked', $big ],
              "$label: both delivered");

    # a room nobody joined: stored, replayed on join
    ($st, $h, $j) = post($port, { room => 'empty', text => 'stored' });
    is(ref $j && $j->{seq}, 1, "$label: room without members -> seq 1");
    my $late = ChatTest::WS->chat($port, user => 'late');
    my $jr = $late->call({ op => 'join', room => 'empty', since => 0 });
    is($jr && $jr->{seq}, 1, "$label: joined.seq 1");
    my ($rm) = $late->collect(n => 1, type => 'message');
    is($rm && $rm->{text}, 'stored', "$label: replayed to a later member");
    $late->close_socket;

    # bad bodies
    is_error($port, 'not json', 400, 'bad_request', "$label: not JSON");
    is_error($port, '', 400, 'bad_request', "$label: empty body");
    is_error($port, undef, 400, 'bad_request', "$label: no body");
    is_error($port, '{"room":"news","text":"x"', 400, 'bad_request',
             "$label: truncated JSON");
    is_error($port, '[1]', 400, 'bad_request', "$label: JSON array");
    is_error($port, '"x"', 400, 'bad_request', "$label: JSON string");
    is_error($port, { text => 'x' }, 400, 'bad_request',
             "$label: missing room");
    is_error($port, { room => 'news' }, 400, 'bad_request',
             "$label: missing text");
    is_error($port, { room => 'a b', text => 'x' }, 400, 'bad_request',
             "$label: bad room name");
    is_error($port, { room => 'r' x 129, text => 'x' }, 400, 'bad_request',
             "$label: room of 129 bytes");
    is_error($port, { room => '', text => 'x' }, 400, 'bad_request',
             "$label: empty room");
    is_error($port, { room => 5, text => 'x' }, 400, 'bad_request',
             "$label: room a number");
    is_error($port, { room => 'news', text => [ 'x' ] }, 400, 'bad_request',
             "$label: text an array");
    is_error($port, { room => 'news', text => 'x', id => 5 }, 400,
             'bad_request', "$label: id a number");
    is_error($port, { room => 'news', text => 'x', id => 'i' x 65 }, 400,
             'bad_request', "$label: id of 65 bytes");
    is_error($port, "{\"room\":\"news\",\"text\":\"\xc3\x28\"}", 400,
             'bad_request', "$label: invalid UTF-8");
    is_error($port, '{"room":"news","text":"x"} trailing', 400,
             'bad_request', "$label: trailing garbage");

    # too large: the text, and the whole body
    is_error($port, { room => 'news', text => 'y' x 9000 }, [ 400, 413 ],
             'too_large', "$label: text over chat_max_message_size 8k");
    is_error($port, { room => 'news', text => 'y' x 200 }, [ 400, 413 ],
             'too_large', "$label: text over chat_max_message_size 100",
             path => '/publish-small');
    ($st, $h, $j) = post($port, { room => 'news', text => 'y' x 50 },
                         path => '/publish-small');
    is($st, 200, "$label: text under chat_max_message_size 100 -> 200");
    delivered(\@members, 1, "$label: small");

    # no user, or one that is no user id: nothing is published, and the
    # answer is the JSON error object like every other
    is_error($port, { room => 'news', text => 'anonymous' }, 401,
             'forbidden', "$label: no chat_user value", user => undef);
    is_error($port, { room => 'news', text => 'anonymous' }, 401,
             'forbidden', "$label: empty chat_user value", user => '');
    is_error($port, { room => 'news', text => 'bad user' }, 400,
             'bad_request', "$label: chat_user not UTF-8", user => "b\xffot");
    is_error($port, { room => 'news', text => 'bad user' }, 400,
             'bad_request', "$label: chat_user with a control character",
             user => "b\x01ot");
    is_error($port, { room => 'news', text => 'long user' }, 400,
             'bad_request', "$label: chat_user over 256 bytes",
             user => 'u' x 257);

    # other methods
    for my $method ('GET', 'PUT', 'DELETE', 'PATCH') {
        my $body = $method eq 'GET' || $method eq 'DELETE' ? undef
                 : $JSON->encode({ room => 'news', text => 'wrong method' });
        ($st, $h, $j) = post($port, $body, method => $method);
        is($st, 405, "$label: $method -> 405");
        is(ref $j && $j->{code}, 'bad_request',
           "$label: $method: the JSON error object") or diag(enc($j));
        is($h->{allow}, 'POST', "$label: $method: Allow: POST");
    }
    for my $ws (@members) {
        ok($ws->quiet(timeout => 0.3),
           "$label: " . $ws->welcome->{user}
           . ': nothing delivered for refused requests');
    }

    # keep-alive: several POSTs on one connection
    {
        my $fh = ChatTest::tcp_connect($port);
        my (@st, @seq, $closed);
        for my $k (1 .. 3) {
            ChatTest::write_all($fh, post_raw(
                $JSON->encode({ room => 'news', text => "ka $k" }),
                keepalive => 1), 5);
            my ($s, $hh, $b) = ChatTest::read_response($fh, timeout => 5);
            push @st, $s // 0;
            my $x = eval { $JSON->decode($b) } || {};
            push @seq, $x->{seq} // 0;
            $closed = 1 if ($hh->{connection} // '') =~ /close/i;
        }
        close $fh;
        is_deeply(\@st, [ 200, 200, 200 ], "$label: keep-alive: 3 x 200");
        ok(!$closed, "$label: the connection stayed open");
        ok($seq[1] == $seq[0] + 1 && $seq[2] == $seq[1] + 1,
           "$label: keep-alive: consecutive seqs (@seq)");
        my @m = delivered(\@members, 3, "$label: keep-alive");
        is_deeply([ map { $_->{text} } @m ], [ 'ka 1', 'ka 2', 'ka 3' ],
                  "$label: keep-alive: delivered");
    }
    # refused requests on a kept-alive connection leave it in sync
    {
        my @seq = ([ $JSON->encode({ room => 'news', text => 'mix 1' }),
                     'POST', 200 ],
                   [ 'not json', 'POST', 400 ],
                   [ $JSON->encode({ room => 'news', text => 'x' x 9000 }),
                     'POST', [ 400, 413 ] ],
                   [ $JSON->encode({ room => 'news', text => 'put' }),
                     'PUT', 405 ],
                   [ $JSON->encode({ room => 'news', text => 'mix 2' }),
                     'POST', 200 ]);
        my $fh;
        my @got;
        for my $s (@seq) {
            $fh ||= ChatTest::tcp_connect($port);
            ChatTest::write_all($fh, post_raw($s->[0], keepalive => 1,
                                              method => $s->[1]), 5);
            my ($code, $hh) = ChatTest::read_response($fh, timeout => 5);
            push @got, $code // 0;
            if (!defined $code || ($hh->{connection} // '') =~ /close/i) {
                close $fh;
                $fh = undef;
            }
        }
        close $fh if $fh;
        my $ok = 1;
        for my $k (0 .. $#seq) {
            my @want = ref $seq[$k][2] ? @{$seq[$k][2]} : ($seq[$k][2]);
            $ok = 0 unless grep { $got[$k] == $_ } @want;
        }
        ok($ok, "$label: mixed requests on keep-alive: @got");
        my @m = delivered(\@members, 2, "$label: mixed");
        is_deeply([ map { $_->{text} } @m ], [ 'mix 1', 'mix 2' ],
                  "$label: only the accepted ones delivered");
    }
    $_->drain(timeout => 0.2) for @members;
}

# ============================================================ in memory
{
    my $n = ChatTest->start(server => $LOC);
    my $w1 = ChatTest::WS->chat($n->port, user => 'm1');
    my $w2 = ChatTest::WS->chat($n->port, user => 'm2');
    $_->join_room('news') for $w1, $w2;
    publish_suite($n, 'memory', $w1, $w2);
    my $h = $w1->call({ op => 'history', room => 'news', limit => 100 });
    ok(grep({ $_->{text} eq 'hello' && $_->{user} eq 'bot' }
            @{$h->{messages} || []}), 'memory: published message in history');
    $n->stop;
}

# ============================================================ Redis
ChatTest::Redis::need_chat_redis(server => $LOC);
{
    my $r = ChatTest::Redis->start;
    my $n = $r->start_nginx(workers => 2, listen_opts => 'reuseport',
                        server => $LOC);
    # members on both workers when the kernel spreads them
    my (@w, %per);
    for my $i (1 .. 20) {
        my $ws = ChatTest::WS->chat($n->port, user => "r$i");
        push @w, $ws;
        $per{$ws->welcome->{worker}}++;
        last if keys %per == 2 && @w >= 2;
    }
    diag('members per worker: '
         . join(', ', map { "$_=$per{$_}" } sort keys %per));
    $_->join_room('news') for @w;
    publish_suite($n, 'redis', @w);
    {
        my $last = $r->cmd('ZRANGE', 'chat:{news}:recent', -1, -1,
                           'WITHSCORES');
        my $ev = eval { $JSON->decode($last->[0] // '') } || {};
        is($ev->{text}, 'mix 2', 'redis: the last publish is in '
           . 'chat:{news}:recent');
        is($last->[1], $r->cmd('GET', 'chat:{news}:seq'),
           'redis: ... with score chat:{news}:seq');
    }

    # Redis down: 503 unavailable; back: 200 again
    $r->kill;
    my ($st, $h, $j) = post($n->port, { room => 'news', text => 'down' });
    is($st, 503, 'redis down: 503');
    is(ref $j && $j->{code}, 'unavailable', 'redis down: code unavailable')
        or diag(enc($j));
    is(ref $j && $j->{type}, 'error', 'redis down: error object');
    $r->restart;
    my $t0 = time;
    my $ok;
    while (time - $t0 < 10) {
        ($st, $h, $j) = post($n->port, { room => 'news', text => 'back',
                                         id => 'back' });
        if ($st == 200) {
            $ok = 1;
            last;
        }
        sleep 0.3;
    }
    ok($ok, sprintf('redis back: 200 after %.1f s', time - $t0));
    is(ref $j && $j->{seq}, 1, 'redis back: seq 1 (Redis lost its data)');
    for my $ws (@w) {
        my $m = $ws->wait_for(type => 'message', room => 'news',
                              timeout => 8);
        is($m && $m->{text}, 'back', 'redis back: delivered to '
           . $ws->welcome->{user});
    }
    $n->stop;
    $r->stop;
}

done_testing;
