package ChatTest::WS;

# A WebSocket test client that can send anything, valid or not, in any
# pieces.  Perl core modules only.
#
#   my $ws = ChatTest::WS->connect($port, path => '/chat?user=alice');
#   my $ws = ChatTest::WS->chat($port, user => 'alice');   # + reads welcome
#   my $ws = ChatTest::WS->user($port, 'alice', ignore => []);   # the same
#   my $bytes = ChatTest::WS::frame(opcode => 1, payload => 'hi', fin => 1,
#                                   mask => 1, rsv => 0, mask_key => 'abcd',
#                                   len => N, len_bytes => 0|2|8);
#   $ws->send_raw($bytes, split => 1) / (chunks => [1, 5, ...])
#   $ws->send_text($str), send_binary, send_json(\%h), send_frame(%frame)
#   $ws->recv_frame(timeout => 5)   {opcode, payload, fin, rsv, masked}
#   $ws->recv_message(timeout => 5) {opcode, payload} (reassembled)
#   $ws->recv_json(timeout => 5)    next decoded message (skips pings)
#   $ws->wait_for(type => 'ack', id => 'x', timeout => 5)
#   $ws->call(\%request)            sends with an id, waits for its reply
#   $ws->collect(n => 10, type => 'message', timeout => 5)
#   $ws->join_room('r'), $ws->history('r', before => 5, limit => 2)
#   $ws->drain(timeout => 0.5)      every message arriving in that time
#   $ws->presence_events(0.5)       ["bob join", ...] arriving in that time
#   ChatTest::WS::pump(\@clients, timeout => 0.2)  read many at once
#   $ws->expect_close(timeout => 5) code (1005 for an empty close payload,
#                                   undef without close frame), reason;
#                                   then waits for the TCP EOF
#   $ws->close_ok($code, $name)     expect_close + is(code) + ok(tcp eof)
#   $ws->eof(timeout)               true when the server closed TCP

use strict;
use warnings;

use Digest::SHA ();
use Encode ();
use IO::Select;
use JSON::PP ();
use MIME::Base64 ();
use Time::HiRes qw(time sleep);

our $last_status;
our $last_response;
our $last_headers;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

sub connect {
    my ($class, $port, %o) = @_;
    my $path = $o{path} // '/chat';
    my ($req, $key) = ChatTest::ws_request(%o, path => $path);
    my $fh = ChatTest::tcp_connect($port, rcvbuf => $o{rcvbuf},
                                   sndbuf => $o{sndbuf});
    ChatTest::write_all($fh, $req, 5)
        or die "handshake write failed: $!";
    my ($st, $h, $body, $rest) = ChatTest::read_response($fh,
                                             timeout => $o{timeout} // 5);
    $last_status = $st;
    $last_headers = $h;
    $last_response = $body;

    my $err;
    if (!defined $st) {
        $err = "no HTTP response to the handshake";
    } elsif ($st != 101) {
        $err = "handshake got status $st, not 101";
    } elsif (($h->{upgrade} // '') !~ /^\s*websocket\s*$/i) {
        $err = "101 without Upgrade: websocket";
    } elsif (($h->{connection} // '') !~ /\bupgrade\b/i) {
        $err = "101 without Connection: upgrade";
    } elsif (($h->{'sec-websocket-accept'} // '')
             ne ChatTest::accept_key($key))
    {
        $err = "wrong Sec-WebSocket-Accept";
    }
    if ($err) {
        close $fh;
        return undef if $o{allow_fail};
        die "WebSocket connect to $path: $err\n";
    }

    my $self = bless {
        fh        => $fh,
        buf       => $rest,
        port      => $port,
        path      => $path,
        eof       => 0,
        pending   => [],
        ignore    => { map { $_ => 1 } @{$o{ignore} || ['presence']} },
        auto_pong => $o{auto_pong} // 0,
        pings     => [],
        idseq     => 0,
        frag      => undef,
        headers   => $h,
    }, $class;

    $o{server}->track_client($self) if $o{server};
    for my $n (ChatTest::Process::running('ChatTest')) {
        $n->track_client($self) if $n->port == $port;
    }
    return $self;
}

# Connects to a chat location as user $o{user} and reads the welcome.
sub chat {
    my ($class, $port, %o) = @_;
    my $path = $o{path} // '/chat';
    if (defined $o{user}) {
        my $u = $o{user};
        $path .= ($path =~ /\?/ ? '&' : '?') . "user=$u";
    }
    my $self = $class->connect($port, %o, path => $path);
    my $w = $self->recv_json(timeout => $o{timeout} // 5);
    die "no welcome message after the handshake\n"
        unless $w && ($w->{type} // '') eq 'welcome';
    $self->{welcome} = $w;
    $self->{welcome_raw} = $self->{last_raw};
    return $self;
}

# chat($port, user => $user, %o): the tests' usual client.
sub user {
    my ($class, $port, $user, %o) = @_;
    return $class->chat($port, %o, user => $user);
}

sub welcome { $_[0]{welcome} }

# Many clients at once: waits up to timeout (default 0) for any of
# @$clients to become readable and reads what has arrived on each into its
# buffer, for the JSON readers (drain(timeout => 0) then parses it without
# waiting).  Returns how many clients had data.
sub pump {
    my ($clients, %o) = @_;
    my %by;
    for my $ws (@$clients) {
        next unless $ws && $ws->{fh} && !$ws->{eof};
        $by{fileno $ws->{fh}} = $ws;
    }
    return 0 unless %by;
    my $sel = IO::Select->new(map { $_->{fh} } values %by);
    my $n = 0;
    for my $fh ($sel->can_read($o{timeout} // 0)) {
        my $ws = $by{fileno $fh} or next;
        $n++;
        for (1 .. 64) {
            my $r = $ws->_fill(0);
            last unless $r;
        }
    }
    return $n;
}
sub fh { $_[0]{fh} }

sub close_socket {
    my ($self) = @_;
    if ($self->{fh}) {
        close $self->{fh};
        $self->{fh} = undef;
    }
}

sub DESTROY {
    my ($self) = @_;
    close $self->{fh} if $self->{fh};
}


# ---------------------------------------------------------------- frames

sub _bytes {
    my ($s) = @_;
    $s //= '';
    if (utf8::is_utf8($s)) {
        $s = Encode::encode('UTF-8', $s);
    }
    return $s;
}

# Builds raw frame bytes.  len overrides the announced payload length,
# len_bytes forces the length encoding (0: 7-bit, 2: 16-bit, 8: 64-bit).
sub frame {
    my %o = (opcode => 1, payload => '', fin => 1, mask => 1, rsv => 0, @_);
    my $p = _bytes($o{payload});
    my $len = $o{len} // length $p;

    my $b0 = ($o{fin} ? 0x80 : 0) | (($o{rsv} & 7) << 4) | ($o{opcode} & 0xF);
    my $mbit = $o{mask} ? 0x80 : 0;
    my $lb = $o{len_bytes};
    if (!defined $lb) {
        $lb = $len < 126 ? 0 : $len < 65536 ? 2 : 8;
    }

    my $f = chr $b0;
    if ($lb == 0) {
        $f .= chr($mbit | $len);
    } elsif ($lb == 2) {
        $f .= chr($mbit | 126) . pack('n', $len);
    } else {
        $f .= chr($mbit | 127) . pack('NN', int($len / 4294967296),
                                      $len % 4294967296);
    }

    if ($o{mask}) {
        my $key = $o{mask_key} // ChatTest::random_bytes(4);
        $f .= $key;
        $f .= mask_payload($p, $key);
    } else {
        $f .= $p;
    }
    return $f;
}

sub mask_payload {
    my ($p, $key) = @_;
    return '' unless length $p;
    my $k = $key x (int(length($p) / 4) + 1);
    return $p ^ substr($k, 0, length $p);
}

sub close_payload {
    my ($code, $reason) = @_;
    return '' unless defined $code;
    return pack('n', $code) . _bytes($reason // '');
}

# send_raw($bytes, split => 1, pause => 0.002) / chunks => [sizes]
sub send_raw {
    my ($self, $bytes, %o) = @_;
    return 0 unless $self->{fh};
    $bytes = _bytes($bytes);
    my @pieces;
    if ($o{split}) {
        @pieces = split //, $bytes;
    } elsif ($o{chunks}) {
        my $off = 0;
        my @c = @{$o{chunks}};
        while ($off < length $bytes) {
            my $n = @c ? shift @c : length($bytes) - $off;
            $n = 1 if $n < 1;
            push @pieces, substr($bytes, $off, $n);
            $off += $n;
        }
    } else {
        @pieces = ($bytes);
    }
    my $pause = $o{pause} // ($o{split} || $o{chunks} ? 0.002 : 0);
    for my $i (0 .. $#pieces) {
        unless (ChatTest::write_all($self->{fh}, $pieces[$i],
                                    $o{timeout} // 10))
        {
            $self->{write_error} = "$!";
            return 0;
        }
        sleep $pause if $pause && $i < $#pieces;
    }
    return 1;
}

sub send_frame {
    my ($self, %o) = @_;
    my %send = map { $_ => delete $o{$_} } grep { exists $o{$_} }
               qw(split chunks pause timeout);
    return $self->send_raw(frame(%o), %send);
}

sub send_text {
    my ($self, $s, %o) = @_;
    return $self->send_frame(opcode => 1, payload => $s, %o);
}

sub send_binary {
    my ($self, $s, %o) = @_;
    return $self->send_frame(opcode => 2, payload => $s, %o);
}

sub send_json {
    my ($self, $h, %o) = @_;
    return $self->send_frame(opcode => 1, payload => $JSON->encode($h), %o);
}

sub send_ping {
    my ($self, $p, %o) = @_;
    return $self->send_frame(opcode => 9, payload => $p // '', %o);
}

sub send_pong {
    my ($self, $p, %o) = @_;
    return $self->send_frame(opcode => 10, payload => $p // '', %o);
}

sub send_close {
    my ($self, $code, $reason, %o) = @_;
    return $self->send_frame(opcode => 8,
                             payload => close_payload($code, $reason), %o);
}


# ---------------------------------------------------------------- reading

sub _fill {
    my ($self, $timeout) = @_;
    return 0 if $self->{eof} || !$self->{fh};
    my $n = ChatTest::read_some($self->{fh}, \$self->{buf}, $timeout);
    if (defined $n && $n == 0) {
        $self->{eof} = 1;
        $self->{eof_time} = time;
    }
    return $n;
}

sub _parse_frame {
    my ($self) = @_;
    my $b = \$self->{buf};
    return undef if length $$b < 2;
    my ($b0, $b1) = unpack 'CC', $$b;
    my $masked = $b1 & 0x80;
    my $len = $b1 & 0x7f;
    my $off = 2;
    if ($len == 126) {
        return undef if length $$b < 4;
        $len = unpack 'n', substr($$b, 2, 2);
        $off = 4;
    } elsif ($len == 127) {
        return undef if length $$b < 10;
        my ($hi, $lo) = unpack 'NN', substr($$b, 2, 8);
        $len = $hi * 4294967296 + $lo;
        $off = 10;
    }
    my $key;
    if ($masked) {
        return undef if length $$b < $off + 4;
        $key = substr($$b, $off, 4);
        $off += 4;
    }
    return undef if length $$b < $off + $len;
    my $p = substr($$b, $off, $len);
    substr($$b, 0, $off + $len) = '';
    $p = mask_payload($p, $key) if $masked;

    if ($masked && !$self->{masked_reported}++) {
        Test::More::ok(0, 'server frames must not be masked');
    }
    return {
        opcode  => $b0 & 0x0f,
        fin     => ($b0 & 0x80) ? 1 : 0,
        rsv     => ($b0 >> 4) & 7,
        masked  => $masked ? 1 : 0,
        payload => $p,
    };
}

# Next frame, or undef on timeout/EOF.
sub recv_frame {
    my ($self, %o) = @_;
    my $deadline = $o{deadline} // time + ($o{timeout} // 5);
    while (1) {
        my $f = $self->_parse_frame;
        return $f if $f;
        return undef if $self->{eof} || !$self->{fh};
        my $left = $deadline - time;
        return undef if $left <= 0;
        $self->_fill($left);
    }
}

sub _on_close_frame {
    my ($self, $f) = @_;
    $self->{got_close} = 1;
    my $p = $f->{payload};
    if (length $p >= 2) {
        $self->{close_code} = unpack 'n', $p;
        $self->{close_reason} = substr($p, 2);
    } else {
        $self->{close_code} = 1005;
        $self->{close_reason} = '';
        $self->{close_payload_len} = length $p;
    }
}

# Next complete data message {opcode, payload, frames}: control frames are
# handled on the way (pings recorded, answered if auto_pong).  Returns
# undef on timeout, EOF or close frame (then got_close/close_code are set).
sub recv_message {
    my ($self, %o) = @_;
    my $deadline = $o{deadline} // time + ($o{timeout} // 5);
    while (1) {
        my $f = $self->recv_frame(deadline => $deadline) or return undef;
        my $op = $f->{opcode};
        if ($op == 9) {
            push @{$self->{pings}}, { time => time, payload => $f->{payload} };
            $self->send_pong($f->{payload}) if $self->{auto_pong};
            next;
        }
        if ($op == 10) {
            push @{$self->{pongs}}, $f->{payload};
            next;
        }
        if ($op == 8) {
            $self->_on_close_frame($f);
            return undef;
        }
        if ($op == 0) {
            unless ($self->{frag}) {
                $self->{bad_server_frame} = 'continuation without start';
                Test::More::ok(0, 'server sent a continuation without start');
                next;
            }
            $self->{frag}{payload} .= $f->{payload};
            $self->{frag}{frames}++;
        } elsif ($op == 1 || $op == 2) {
            if ($self->{frag}) {
                Test::More::ok(0, 'server started a message inside another');
            }
            $self->{frag} = { opcode => $op, payload => $f->{payload},
                              frames => 1 };
        } else {
            Test::More::ok(0, "server sent a frame with opcode $op");
            next;
        }
        if ($f->{fin}) {
            my $m = $self->{frag};
            $self->{frag} = undef;
            return $m;
        }
    }
}

sub _decode {
    my ($self, $m) = @_;
    if ($m->{opcode} != 1) {
        return { type => '__binary__', payload => $m->{payload} };
    }
    $self->{last_raw} = $m->{payload};
    my $j = eval { $JSON->decode($m->{payload}) };
    if (!defined $j || ref $j ne 'HASH') {
        my $e = $@ || 'not an object';
        Test::More::ok(0, "server sent valid JSON object");
        Test::More::diag("invalid server JSON ($e): "
                         . substr($m->{payload}, 0, 300));
        return { type => '__invalid__', raw => $m->{payload} };
    }
    return $j;
}

sub _next_json {
    my ($self, $deadline) = @_;
    while (1) {
        my $m = $self->recv_message(deadline => $deadline) or return undef;
        my $j = $self->_decode($m);
        next if $self->{ignore}{$j->{type} // ''};
        push @{$self->{log}}, $j if $self->{keep_log};
        return $j;
    }
}

# Next decoded JSON message (queued ones first), or undef.
sub recv_json {
    my ($self, %o) = @_;
    return shift @{$self->{pending}} if @{$self->{pending}};
    return $self->_next_json(time + ($o{timeout} // 5));
}

sub _matches {
    my ($m, %o) = @_;
    return 0 if defined $o{type} && ($m->{type} // '') ne $o{type};
    return 0 if defined $o{id} && (!defined $m->{id} || $m->{id} ne $o{id});
    return 0 if defined $o{room} && ($m->{room} // '') ne $o{room};
    return 0 if $o{match} && !$o{match}->($m);
    return 1;
}

# First message matching type/id/room/match (a code ref); the others stay
# queued for later reads.
sub wait_for {
    my ($self, %o) = @_;
    my $deadline = time + ($o{timeout} // 5);
    my $p = $self->{pending};
    for my $i (0 .. $#$p) {
        if (_matches($p->[$i], %o)) {
            return splice @$p, $i, 1;
        }
    }
    while (1) {
        my $m = $self->_next_json($deadline) or return undef;
        return $m if _matches($m, %o);
        push @$p, $m;
    }
}

# Sends a request (adding an id when it has none) and returns the reply
# carrying that id.
sub call {
    my ($self, $req, %o) = @_;
    my %r = %$req;
    $r{id} //= 'r' . ++$self->{idseq};
    $self->send_json(\%r) or return undef;
    return $self->wait_for(id => $r{id}, timeout => $o{timeout} // 5);
}

sub join_room {
    my ($self, $room, %extra) = @_;
    my $r = $self->call({ op => 'join', room => $room, %extra });
    die "join $room failed: " . ($r ? $JSON->encode($r) : 'no reply') . "\n"
        unless $r && $r->{type} eq 'joined';
    return $r;
}

# The history reply for $room (options: before, limit, id).
sub history {
    my ($self, $room, %q) = @_;
    return $self->call({ op => 'history', room => $room, %q });
}

# N messages of a type (others stay queued).
sub collect {
    my ($self, %o) = @_;
    my $deadline = time + ($o{timeout} // 5);
    my @got;
    while (@got < ($o{n} // 1)) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $m = $self->wait_for(%o, timeout => $left) or last;
        push @got, $m;
    }
    return @got;
}

# The presence events ("user join", "user leave") that arrive within
# $t seconds, other messages dropped.
sub presence_events {
    my ($self, $t) = @_;
    my @e;
    my $end = time + $t;
    while (time < $end) {
        my $m = $self->recv_json(timeout => $end - time) or last;
        push @e, "$m->{user} $m->{event}" if $m->{type} eq 'presence'
                                              && $m->{event};
    }
    return \@e;
}

# Everything (queued or arriving) within timeout.
sub drain {
    my ($self, %o) = @_;
    my @got = @{$self->{pending}};
    $self->{pending} = [];
    my $deadline = time + ($o{timeout} // 0.5);
    while (my $m = $self->_next_json($deadline)) {
        push @got, $m;
    }
    return @got;
}

# Reads until a close frame; returns its code (1005: empty payload, undef:
# none) and reason, then waits up to eof_timeout for the server's TCP close.
sub expect_close {
    my ($self, %o) = @_;
    my $deadline = time + ($o{timeout} // 5);
    while (!$self->{got_close}) {
        my $f = $self->recv_frame(deadline => $deadline) or last;
        if ($f->{opcode} == 8) {
            $self->_on_close_frame($f);
            last;
        }
        push @{$self->{before_close}}, $f;
    }
    if ($self->{got_close} && $o{reply}) {
        $self->send_close($self->{close_code} == 1005 ? undef
                                                      : $self->{close_code});
    }
    $self->{tcp_closed} = $self->eof($o{eof_timeout} // 5);
    my $code = $self->{got_close} ? $self->{close_code} : undef;
    return wantarray ? ($code, $self->{close_reason}) : $code;
}

# expect_close, then test the code (a number or a list ref of accepted
# codes) and that the TCP connection was closed by the server.
sub close_ok {
    my ($self, $want, $name, %o) = @_;
    my ($code) = $self->expect_close(%o);
    my @want = ref $want ? @$want : ($want);
    my $ok = Test::More::ok(defined $code && grep({ $_ == $code } @want),
                            "$name: close code " . join('|', @want));
    Test::More::diag("got close code " . ($code // 'none (no close frame)'))
        unless $ok;
    my $ok2 = Test::More::ok($self->{tcp_closed},
                             "$name: server closed the TCP connection");
    return $ok && $ok2;
}

# True when the server closed the TCP connection within $timeout (data
# arriving meanwhile is buffered).
sub eof {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (!$self->{eof}) {
        return 0 unless $self->{fh};
        my $left = $deadline - time;
        return 0 if $left <= 0;
        $self->_fill($left);
        # keep memory bounded while waiting
        $self->{buf} = substr($self->{buf}, -65536)
            if length $self->{buf} > 16 * 1048576;
    }
    return 1;
}

# True if nothing is received (or queued) within $timeout, i.e. the
# connection is quiet and open.
sub quiet {
    my ($self, %o) = @_;
    my @m = $self->drain(timeout => $o{timeout} // 0.5);
    $self->{pending} = [@m];
    return !@m && !$self->{eof} && !$self->{got_close};
}

# Request/response round trip proving the connection still works.
sub alive {
    my ($self, %o) = @_;
    return 0 if $self->{eof} || $self->{got_close};
    my $r = $self->call({ op => 'heartbeat' }, timeout => $o{timeout} // 5);
    return $r && ($r->{type} // '') eq 'heartbeat';
}

# For echo locations: send a message and return the echoed message.
sub echo {
    my ($self, $payload, %o) = @_;
    my $op = $o{opcode} // 1;
    $self->send_frame(opcode => $op, payload => $payload) or return undef;
    return $self->recv_message(timeout => $o{timeout} // 5);
}

1;
