package ChatTest::Redis;

# A private redis-server for the Redis backplane tests: started in the
# foreground as a child of the test on a free loopback port, no persistence,
# stopped (SIGKILL if need be) when the object goes away or the test exits
# (after the nginx servers: ChatTest::Process).  Perl core modules only.
#
#   my $r = ChatTest::Redis->start(unixsocket => 1, requirepass => 'pw',
#                                  port => $p, args => [...]);
#   $r->port, $r->unixsocket, $r->url, $r->url(password => 1, db => 3)
#   $r->cmd('GET', 'k')            RESP round trip (dies on an error reply)
#   $r->try_cmd('GET', 'k')        (reply, error) without dying
#   my $c = $r->connection;  $c->call(['CONFIG', 'GET', 'x'])  persistent
#   $r->cli('--raw', 'GET', 'k')   redis-cli's stdout
#   $r->numsub('chat:{r}'), $r->wait_numsub('chat:{r}', 0, 5)
#   my $s = $r->psubscribe('chat:{r}');  $s->next(timeout => 2); $s->close
#   $r->kill (SIGKILL), $r->stop (SHUTDOWN NOSAVE), $r->restart, $r->alive
#   $r->log                        redis.log
#   $r->start_nginx(server => ..., workers => N, cache => 5, prefix => 'p')
#                                  ChatTest->start with chat_redis, waiting
#                                  until the workers' connections are set up
#   $r->ready_clients              clients that have sent a command
#   ChatTest::Redis::need_module(...)  fails the test file and exits when
#                                  nginx -t rejects a configuration
#   ChatTest::Redis::need_chat_redis(server => ...)   the same with a
#                                  chat_redis line in the http part
#
# Environment: REDIS_SERVER_BIN (default /usr/bin/redis-server),
# REDIS_CLI_BIN (default /usr/bin/redis-cli), CHAT_TEST_KEEP.

use strict;
use warnings;

use ChatTest ();
use ChatTest::Process qw(run slurp tempdir);
use parent -norequire, 'ChatTest::Process';

use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);

sub server_bin { $ENV{REDIS_SERVER_BIN} || '/usr/bin/redis-server' }
sub cli_bin    { $ENV{REDIS_CLI_BIN}    || '/usr/bin/redis-cli' }


# ---------------------------------------------------------------- start

# start(port => P, unixsocket => 1 | '/path', requirepass => 'pw',
#       args => [more redis-server arguments], bin => '/path',
#       timeout => seconds to wait for PING)
sub start {
    my ($class, %o) = @_;
    my $bin = $o{bin} // server_bin();
    die "redis-server not found or not executable at $bin: "
        . "`make deps` installs it (Debian package redis-server)\n"
        unless -x $bin;

    my $dir = tempdir('ngx_chat_redis_XXXXXX');

    my $sock;
    if ($o{unixsocket}) {
        $sock = $o{unixsocket} =~ m{^/} ? $o{unixsocket} : "$dir/redis.sock";
        die "unix socket path too long: $sock\n" if length $sock > 100;
    }

    my $self = bless {
        bin        => $bin,
        dir        => $dir,
        port       => $o{port} || ChatTest::free_port(),
        unixsocket => $sock,
        password   => $o{requirepass},
        args       => $o{args} || [],
        timeout    => $o{timeout} || 10,
        pid        => undef,
        starts     => 0,
    }, $class;

    $self->_spawn;
    $self->_register(weak => 1);
    return $self;
}

sub _spawn {
    my ($self) = @_;
    my $dir = $self->{dir};
    my @args = ('--port', $self->{port}, '--bind', '127.0.0.1',
                '--save', '', '--appendonly', 'no', '--dir', $dir,
                '--daemonize', 'no', '--logfile', "$dir/redis.log");
    if ($self->{unixsocket}) {
        unlink $self->{unixsocket};
        push @args, '--unixsocket', $self->{unixsocket},
                    '--unixsocketperm', '777';
    }
    push @args, '--requirepass', $self->{password}
        if defined $self->{password};
    push @args, @{$self->{args}};

    my $n = ++$self->{starts};
    my $out = "$dir/redis.out.$n";
    return $self->_start_child(
        cmd => [ $self->{bin}, @args ], out => $out, setpgrp => 1,
        timeout => $self->{timeout},
        ready => sub {
            my ($pong, $err) = $self->try_cmd('PING');
            return (defined $pong && $pong eq 'PONG', $err);
        },
        exited => sub {
            return "redis-server exited at start (port $self->{port}):\n"
                . (slurp($out) // '') . "\n--- redis.log:\n" . $self->log
                . "\n";
        },
        timed_out => sub {
            my ($err) = @_;
            return "redis-server on port $self->{port} did not answer PING "
                . "within $self->{timeout} s ($err):\n" . $self->log;
        });
}

sub port       { $_[0]{port} }
sub unixsocket { $_[0]{unixsocket} }
sub password   { $_[0]{password} }

sub _dir_label { 'redis-server dir' }

# redis://127.0.0.1:P/0; url(password => 1 | 'pw', db => N)
sub url {
    my ($self, %o) = @_;
    my $auth = '';
    if ($o{password}) {
        my $pw = $o{password} eq '1' ? $self->{password} : $o{password};
        $auth = ":$pw@";
    }
    return "redis://${auth}127.0.0.1:$self->{port}/" . ($o{db} // 0);
}

sub unix_url {
    my ($self) = @_;
    die "this redis-server has no unix socket\n" unless $self->{unixsocket};
    return "unix:$self->{unixsocket}";
}

sub log {
    my ($self) = @_;
    return slurp("$self->{dir}/redis.log") // '';
}


# ---------------------------------------------------------------- stop

# SIGKILL: no goodbye to the clients, no data kept.
sub kill {
    my ($self) = @_;
    return 1 unless $self->{pid};
    $self->_signal_wait('KILL', 10)
        or die "redis-server $self->{pid} survived SIGKILL\n";
    return 1;
}

# SIGSTOP: a Redis that stops answering without closing its sockets;
# thaw (SIGCONT) undoes it, and so do stop and the end of the test.
my %frozen;
sub freeze {
    my ($self) = @_;
    CORE::kill('STOP', $self->{pid})
        or die "cannot SIGSTOP redis-server: $!\n";
    $frozen{$self->{pid}} = 1;
    return $self;
}

sub thaw {
    my ($self) = @_;
    CORE::kill 'CONT', $self->{pid} if delete $frozen{$self->{pid} // ''};
    return $self;
}

END { CORE::kill 'CONT', keys %frozen if %frozen }

# SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL, each bounded.
sub stop {
    my ($self) = @_;
    return 1 unless $self->{pid};
    $self->thaw;
    $self->try_cmd('SHUTDOWN', 'NOSAVE');
    return 1 unless $self->_reap(5);
    return 1 if $self->_signal_wait('TERM', 5);
    return $self->kill;
}

# Starts again on the same port (and socket); the data is gone.
sub restart {
    my ($self) = @_;
    $self->kill if $self->{pid};
    $self->_spawn;
    return $self;
}


# ---------------------------------------------------------------- RESP

sub _connect {
    my ($self, %o) = @_;
    my $s;
    if ($o{unix}) {
        $s = IO::Socket::UNIX->new(Type => SOCK_STREAM,
                                   Peer => $self->{unixsocket});
    } else {
        $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                   PeerPort => $self->{port},
                                   Proto => 'tcp', Timeout => 2);
    }
    return (undef, "connect: $!") unless $s;
    binmode $s;
    my $conn = bless { fh => $s, buf => '' }, 'ChatTest::Redis::Conn';
    if (defined $self->{password} && !$o{noauth}) {
        my ($r, $err) = $conn->call(['AUTH', $self->{password}],
                                    $o{timeout} // 5);
        return (undef, $err // 'AUTH failed') if defined $err;
    }
    return ($conn, undef);
}

# (reply, error): reply is a string, number, undef (nil) or array ref;
# error is a server error reply or a connection problem.
sub try_cmd {
    my ($self, @args) = @_;
    my %o;
    %o = %{shift @args} if ref $args[0] eq 'HASH';
    my ($c, $err) = $self->_connect(%o);
    return (undef, $err) unless $c;
    my @r = $c->call(\@args, $o{timeout} // 5);
    $c->close;
    return @r;
}

# The reply; dies on an error reply or a connection problem.  A hash ref
# first sets options: {timeout => s, noauth => 1, unix => 1}.
sub cmd {
    my ($self, @args) = @_;
    my ($r, $err) = $self->try_cmd(@args);
    die "redis " . join(' ', grep { !ref } @args) . ": $err\n"
        if defined $err;
    return $r;
}

# A persistent connection (AUTH done): $c->call([args], timeout) returns
# (reply, error); $c->close.  For command sequences that must not open new
# connections (e.g. while maxclients is lowered).
sub connection {
    my ($self, %o) = @_;
    my ($c, $err) = $self->_connect(%o);
    die "redis connect: $err\n" unless $c;
    return $c;
}

# Number of subscribers (not pattern subscribers) of a channel.
sub numsub {
    my ($self, $channel) = @_;
    my $r = $self->cmd('PUBSUB', 'NUMSUB', $channel);
    return $r->[1];
}

# Polls NUMSUB until it equals $want or $timeout passes; returns the last
# value.
sub wait_numsub {
    my ($self, $channel, $want, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        my $n = $self->numsub($channel);
        return $n if $n == $want || time > $deadline;
        sleep 0.05;
    }
}

# A connection in subscribed mode.  Pattern subscriptions do not count in
# PUBSUB NUMSUB, so psubscribe can watch a channel without changing what
# the tests assert about the module's subscriptions.
sub psubscribe {
    my ($self, @patterns) = @_;
    return $self->_subscriber('PSUBSCRIBE', @patterns);
}

sub subscribe {
    my ($self, @channels) = @_;
    return $self->_subscriber('SUBSCRIBE', @channels);
}

sub _subscriber {
    my ($self, $cmd, @names) = @_;
    my ($c, $err) = $self->_connect;
    die "redis $cmd: $err\n" unless $c;
    $c->write([$cmd, @names]);
    for (@names) {
        my ($r, $e) = $c->read_reply(time + 5);
        die "redis $cmd: " . ($e // 'no confirmation') . "\n"
            if defined $e || ref $r ne 'ARRAY';
    }
    return bless { conn => $c }, 'ChatTest::Redis::Sub';
}

# Runs redis-cli -p PORT [-a PASSWORD] @args (bounded); returns stdout.
# The exit code is in $r->{cli_rc}, stderr in $r->{cli_err}.
sub cli {
    my ($self, @args) = @_;
    my @cmd = (cli_bin(), '-p', $self->{port});
    push @cmd, '-a', $self->{password}, '--no-auth-warning'
        if defined $self->{password};
    push @cmd, @args;
    my $err = "$self->{dir}/cli.err";
    my ($rc, $out) = run(cmd => \@cmd, out => "$self->{dir}/cli.out",
                         err => $err, timeout => 10);
    $self->{cli_rc} = $rc;
    $self->{cli_err} = slurp($err) // '';
    return $out;
}


# ---------------------------------------------------------------- nginx

# Runs nginx -t on a configuration (ChatTest->nginx_t options).  When nginx
# rejects it (e.g. the module does not know chat_redis yet), fails one test
# with nginx's output, ends the test file and exits.
sub need_module {
    my (%o) = @_;
    my $what = delete $o{what} // 'configuration';
    my ($rc, $text) = ChatTest->nginx_t(%o);
    return 1 if $rc == 0;
    Test::More::fail("nginx -t accepts the $what");
    Test::More::diag($text);
    Test::More::done_testing();
    exit;
}

# need_module with chat_redis (an unreachable URL: nginx -t does not
# connect) before the http text given, for the tests of the Redis mode.
sub need_chat_redis {
    my (%o) = @_;
    return need_module(what => 'chat_redis directive', %o,
                       http => "chat_redis redis://127.0.0.1:1/0;"
                               . (defined $o{http} ? "\n$o{http}" : ''));
}

# Clients of this server that have sent a command (the module's
# connections once set up: AUTH/SELECT), not counting this query.
sub ready_clients {
    my ($self) = @_;
    my ($list) = $self->try_cmd('CLIENT', 'LIST');
    return 0 unless defined $list;
    return scalar grep { /\bcmd=/ && !/\bcmd=(?:NULL|client\|list)\b/ }
                  split /\n/, $list;
}

# ChatTest->start(%o) with the http part from chat_http(%o), then waits
# (bounded, never failing) until the new workers' Redis connections (one
# for commands, one for SUBSCRIBE) are set up, so that the first requests
# do not race the module's connect at start.  Options: everything of
# ChatTest->start, url/prefix/cache/extra of chat_http, http => more text,
# wait => 0 to skip the wait.
sub start_nginx {
    my ($self, %o) = @_;
    my %h = map { $_ => delete $o{$_} }
            grep { exists $o{$_} } qw(url prefix cache extra);
    my $wait = delete $o{wait} // 1;
    my $http = chat_http($self, %h) . (delete $o{http} // '');
    my $before = $self->ready_clients;
    my $n = ChatTest->start(%o, http => $http);
    if ($wait) {
        my $want = $before + 2 * ($o{workers} || 1);
        my $deadline = time + 5;
        my $have;
        while (($have = $self->ready_clients) < $want && time < $deadline) {
            sleep 0.02;
        }
        Test::More::note("nginx connected to Redis: $have of $want clients"
                         . " set up");
    }
    return $n;
}

# The usual chat locations for the Redis tests.
sub chat_http {
    my ($r, %o) = @_;
    my $url = $o{url} // $r->url;
    my $h = "chat_redis $url;\n";
    $h .= "chat_key_prefix $o{prefix};\n" if defined $o{prefix};
    $h .= "chat_history_cache $o{cache};\n" if defined $o{cache};
    $h .= $o{extra} if defined $o{extra};
    return $h;
}


# ---------------------------------------------------------------- conn

package ChatTest::Redis::Conn;

use Time::HiRes qw(time);

sub _encode {
    my ($args) = @_;
    my $s = '*' . @$args . "\r\n";
    for my $a (@$args) {
        my $b = $a;
        utf8::encode($b) if utf8::is_utf8($b);
        $s .= '$' . length($b) . "\r\n$b\r\n";
    }
    return $s;
}

sub write {
    my ($self, $args, $timeout) = @_;
    return ChatTest::write_all($self->{fh}, _encode($args), $timeout // 5);
}

sub _fill {
    my ($self, $deadline) = @_;
    my $left = $deadline - time;
    return 0 if $left <= 0;
    return 0 unless IO::Select->new($self->{fh})->can_read($left);
    my $n = sysread($self->{fh}, $self->{buf}, 65536, length $self->{buf});
    return 0 unless $n;
    return 1;
}

sub _line {
    my ($self, $deadline) = @_;
    while (1) {
        my $i = index($self->{buf}, "\r\n");
        if ($i >= 0) {
            my $l = substr($self->{buf}, 0, $i);
            substr($self->{buf}, 0, $i + 2) = '';
            return $l;
        }
        $self->_fill($deadline) or return undef;
    }
}

sub _bytes {
    my ($self, $n, $deadline) = @_;
    while (length $self->{buf} < $n + 2) {
        $self->_fill($deadline) or return undef;
    }
    my $b = substr($self->{buf}, 0, $n);
    substr($self->{buf}, 0, $n + 2) = '';
    return $b;
}

# (reply, error)
sub read_reply {
    my ($self, $deadline) = @_;
    my $l = $self->_line($deadline);
    return (undef, 'no reply (timeout or connection closed)')
        unless defined $l;
    my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
    return ($v, undef) if $t eq '+';
    return (undef, $v) if $t eq '-';
    return ($v + 0, undef) if $t eq ':';
    if ($t eq '$') {
        return (undef, undef) if $v < 0;
        my $b = $self->_bytes($v, $deadline);
        return (undef, 'truncated bulk reply') unless defined $b;
        return ($b, undef);
    }
    if ($t eq '*') {
        return (undef, undef) if $v < 0;
        my @a;
        for (1 .. $v) {
            my ($r, $e) = $self->read_reply($deadline);
            return (undef, $e) if defined $e;
            push @a, $r;
        }
        return (\@a, undef);
    }
    return (undef, "unexpected reply line: $l");
}

sub call {
    my ($self, $args, $timeout) = @_;
    $self->write($args, $timeout) or return (undef, "write: $!");
    return $self->read_reply(time + ($timeout // 5));
}

sub close {
    my ($self) = @_;
    CORE::close $self->{fh} if $self->{fh};
    $self->{fh} = undef;
}


# ---------------------------------------------------------------- sub

package ChatTest::Redis::Sub;

use Time::HiRes qw(time);

# Next published message {channel, pattern, payload}, or undef on timeout.
sub next {
    my ($self, %o) = @_;
    my $deadline = time + ($o{timeout} // 5);
    while (1) {
        my ($r, $e) = $self->{conn}->read_reply($deadline);
        return undef if defined $e || ref $r ne 'ARRAY';
        if ($r->[0] eq 'pmessage') {
            return { pattern => $r->[1], channel => $r->[2],
                     payload => $r->[3] };
        }
        if ($r->[0] eq 'message') {
            return { channel => $r->[1], payload => $r->[2] };
        }
    }
}

# Every message arriving within timeout (default 0.5 s).
sub drain {
    my ($self, %o) = @_;
    my $deadline = time + ($o{timeout} // 0.5);
    my @m;
    while (time < $deadline) {
        my $m = $self->next(timeout => $deadline - time) or last;
        push @m, $m;
    }
    return @m;
}

sub close { $_[0]{conn}->close }

1;
