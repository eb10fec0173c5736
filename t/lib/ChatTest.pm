package ChatTest;

# Test harness for ngx_chat: starts a private nginx with the module loaded,
# talks raw HTTP and WebSocket to it, and fails the test when the server
# logs an alert/crit/emerg or a sanitizer report.  Perl core modules only.
#
#   my $n = ChatTest->start(http => '...', server => '...', main => '...',
#                           workers => 1, listen_opts => 'reuseport');
#   $n->port, $n->root, $n->error_log, $n->worker_pids, $n->reload,
#   $n->stop, $n->status
#   my ($rc, $text) = ChatTest->nginx_t(server => '...');
#   my ($st, $hdr, $body) = ChatTest::http_get($port, '/path', {H => 'v'});
#   my ($st, $hdr, $body) = ChatTest::http_request($port, $raw);
#   use ChatTest qw(enc seqs hseqs);   helpers for the tests' checks
#
# Servers are ChatTest::Process objects: stopped (with the log checks) at
# exit, before the Redis and Postgres servers of ChatTest::Redis and
# ChatTest::Pg go.
#
# Environment: NGINX_BIN, CHAT_MODULE, CHAT_ASAN (path of libasan.so to
# preload), CHAT_TEST_KEEP (keep server roots), CHAT_TEST_LOG_LEVEL (the
# error_log level where a test sets none; default info), TMPDIR.

use strict;
use Socket qw(unpack_sockaddr_in);
use warnings;

# Loaded first so that Test::Builder's END block runs after ours.
use Test::More ();

use ChatTest::Process qw(run slurp write_file tempdir pid_alive
                         children_of);
use parent -norequire, 'ChatTest::Process';

use Cwd qw(abs_path);
use Encode ();
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Handle;
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use Scalar::Util qw(weaken);
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF SO_SNDBUF
              IPPROTO_TCP TCP_NODELAY inet_aton pack_sockaddr_in);
use Time::HiRes qw(time sleep);

our $VERSION = '1.0';
our @EXPORT_OK = qw(enc seqs hseqs);

$SIG{PIPE} = 'IGNORE';

# tests print UTF-8 names and diagnostics
for my $m (qw(output failure_output todo_output)) {
    binmode Test::More->builder->$m, ':encoding(UTF-8)';
}

my $REPO_ROOT = abs_path(dirname(abs_path(__FILE__)) . '/../..');

# the names bench/run.pl uses
*_slurp = \&slurp;
*_children_of = \&children_of;

sub repo_root { $REPO_ROOT }

sub nginx_bin { $ENV{NGINX_BIN} || '/usr/sbin/nginx' }

sub module_path {
    my $p = $ENV{CHAT_MODULE} || "$REPO_ROOT/build/ngx_chat_module.so";
    my $abs = abs_path($p);
    return defined $abs ? $abs : $p;
}

sub module_exists { -f module_path() }

sub json { JSON::PP->new->utf8->canonical->allow_nonref }


# ---------------------------------------------------------------- config

sub _new_root {
    my $root = tempdir('ngx_chat_t_XXXXXX');
    make_path("$root/conf", "$root/logs", "$root/tmp", "$root/html");
    return $root;
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "cannot bind a free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub _asan_env {
    my ($root) = @_;
    return () unless $ENV{CHAT_ASAN};
    return (
        LD_PRELOAD    => $ENV{CHAT_ASAN},
        ASAN_OPTIONS  => "detect_leaks=0:abort_on_error=0"
                         . ":log_path=$root/logs/asan",
        UBSAN_OPTIONS => "print_stacktrace=1:log_path=$root/logs/ubsan",
    );
}

# The part of the main context the harness always controls.
sub _preamble {
    my (%o) = @_;
    my $root = $o{root};
    my $c = '';
    unless ($o{no_module}) {
        my $m = module_path();
        die "ngx_chat module not found at $m (run `make` first, or set "
            . "CHAT_MODULE)\n" unless -f $m;
        $c .= "load_module $m;\n";
    }
    $c .= "daemon on;\nmaster_process on;\n";
    $c .= "user root;\n" if $> == 0;
    $c .= "pid $root/logs/nginx.pid;\n";
    $c .= "error_log $root/logs/error.log "
        . ($o{log_level} || $ENV{CHAT_TEST_LOG_LEVEL} || 'info') . ";\n";
    $c .= "env LD_PRELOAD;\nenv ASAN_OPTIONS;\nenv UBSAN_OPTIONS;\n"
        if $ENV{CHAT_ASAN};
    return $c;
}

sub _config_text {
    my (%o) = @_;
    my $root = $o{root};
    my $port = $o{port};
    my $text;

    if (defined $o{config}) {
        $text = _preamble(%o) . $o{config};

    } else {
        my $workers = $o{workers} || 1;
        my $http = $o{http} // '';
        my $server = $o{server} // '';
        my $main = $o{main} // '';
        my $listen = defined $o{listen_opts} ? " $o{listen_opts}" : '';
        $text = _preamble(%o) . <<"EOF";
worker_processes $workers;
$main
events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path $root/tmp/body;
    proxy_temp_path $root/tmp/proxy;
    fastcgi_temp_path $root/tmp/fastcgi;
    uwsgi_temp_path $root/tmp/uwsgi;
    scgi_temp_path $root/tmp/scgi;

$http

    server {
        listen 127.0.0.1:$port$listen;
        server_name localhost;

$server
    }
}
EOF
    }

    $text =~ s/%%PORT%%/$port/g;
    $text =~ s/%%ROOT%%/$root/g;
    return $text;
}

# ---------------------------------------------------------------- nginx -t

# ChatTest->nginx_t(http => ..., server => ..., main => ..., workers => N)
# or ChatTest->nginx_t(config => $full_text).  Returns (exit code, text)
# where text is what nginx printed (stderr and stdout).
sub nginx_t {
    my ($class, %o) = @_;
    my $root = _new_root();
    my $port = $o{port} || free_port();
    my $conf = _config_text(%o, root => $root, port => $port);
    write_file("$root/conf/nginx.conf", $conf);

    my ($rc, $text) = run(env => { _asan_env($root) },
                          out => "$root/logs/nginx-t.out", timeout => 30,
                          cmd => [ nginx_bin(), '-t', '-p', "$root/",
                                   '-c', 'conf/nginx.conf',
                                   '-e', "$root/logs/error.log" ]);

    my $log = slurp("$root/logs/error.log") // '';
    remove_tree($root) unless $ENV{CHAT_TEST_KEEP};
    return ($rc, $text, $log);
}


# ---------------------------------------------------------------- start/stop

sub start {
    my ($class, %o) = @_;
    my $self = bless {
        opts    => \%o,
        dir     => _new_root(),
        port    => $o{port} || free_port(),
        workers => $o{workers} || 1,
        clients => [],
        allow   => $o{allow_log} || [],
        name    => $o{name} || $0,
    }, $class;

    my $root = $self->{dir};
    write_file("$root/conf/nginx.conf",
               _config_text(%o, root => $root, port => $self->{port}));

    # nginx daemonizes: its master is no child of ours, only the nginx
    # that starts it is
    my ($rc, $out) = run(env => { _asan_env($root) },
                         out => "$root/logs/start.out", timeout => 30,
                         cmd => [ nginx_bin(), '-p', "$root/",
                                  '-c', 'conf/nginx.conf',
                                  '-e', "$root/logs/error.log" ]);
    if ($rc != 0) {
        my $log = slurp("$root/logs/error.log") // '';
        $self->_kill_all;
        $self->_dispose_dir(keep => 1);
        die "nginx failed to start (exit $rc):\n$out\n--- error.log:\n$log\n"
            . "--- nginx.conf:\n" . slurp("$root/conf/nginx.conf");
    }

    $self->_register;

    my $deadline = time + 5;
    while (time < $deadline) {
        last if $self->master_pid;
        sleep 0.02;
    }
    unless ($self->master_pid) {
        my $log = $self->error_log;
        die "nginx did not write its pid file:\n$out\n$log\n";
    }

    unless (wait_port($self->{port}, 5)) {
        my $log = $self->error_log;
        $self->_kill_all;
        $self->_dispose_dir(keep => 1);
        die "nginx does not accept on port $self->{port}:\n$log\n";
    }

    # wait for the workers to exist
    $deadline = time + 5;
    while (time < $deadline) {
        my @w = $self->worker_pids;
        last if @w >= $self->{workers};
        sleep 0.02;
    }

    return $self;
}

sub wait_port {
    my ($port, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 1);
        if ($s) {
            close $s;
            return 1;
        }
        sleep 0.02;
    }
    return 0;
}

sub port { $_[0]{port} }
sub root { $_[0]{dir} }

sub error_log {
    my ($self) = @_;
    return slurp("$self->{dir}/logs/error.log") // '';
}

sub conf_text {
    my ($self) = @_;
    return slurp("$self->{dir}/conf/nginx.conf") // '';
}

sub master_pid {
    my ($self) = @_;
    my $p = slurp("$self->{dir}/logs/nginx.pid");
    return undef unless defined $p && $p =~ /(\d+)/;
    $self->{master_pid} = $1;
    return $1;
}

sub worker_pids {
    my ($self) = @_;
    my $m = $self->{master_pid} || $self->master_pid or return ();
    my @w = children_of($m);
    return @w;
}

# (the master: nginx runs as a daemon, no child of the test)
sub pid { $_[0]->master_pid }
sub alive { pid_alive($_[0]->master_pid) }

sub signal {
    my ($self, $sig) = @_;
    my $m = $self->master_pid or return 0;
    return kill $sig, $m;
}

# nginx -s reload equivalent; waits until the new workers run.
sub reload {
    my ($self, %o) = @_;
    my %old = map { $_ => 1 } $self->worker_pids;
    my $log_before = length $self->error_log;
    $self->signal('HUP') or die "cannot signal nginx master";
    my $deadline = time + ($o{timeout} || 10);
    while (time < $deadline) {
        my @new = grep { !$old{$_} } $self->worker_pids;
        return 1 if @new >= $self->{workers};
        sleep 0.05;
    }
    Test::More::diag("reload: new workers did not appear");
    return 0;
}

sub track_client {
    my ($self, $ws) = @_;
    push @{$self->{clients}}, $ws;
    weaken($self->{clients}[-1]);
}

# Stops nginx (SIGQUIT, SIGKILL after 10 s), then checks the error log.
# Emits test results: "nginx stopped gracefully" and "error log clean".
# keep_clients => 1 leaves test clients connected during the shutdown.
sub stop {
    my ($self, %o) = @_;
    return if $self->{stopped};
    $self->{stopped} = 1;
    $self->_unregister;

    unless ($o{keep_clients}) {
        for my $ws (@{$self->{clients}}) {
            $ws->close_socket if $ws;
        }
    }

    my $master = $self->{master_pid} || $self->master_pid;
    my @workers = $master ? children_of($master) : ();
    my $graceful = 1;

    if ($master && pid_alive($master)) {
        kill 'QUIT', $master;
        my $deadline = time + ($o{timeout} || 10);
        while (time < $deadline && (pid_alive($master)
                                    || grep { pid_alive($_) } @workers))
        {
            sleep 0.02;
        }
        if (pid_alive($master) || grep { pid_alive($_) } @workers) {
            $graceful = 0;
            kill 'KILL', $master, @workers;
            sleep 0.1;
        }
    }

    my $ok_stop = Test::More::ok($graceful,
        "nginx exited on SIGQUIT within 10 s");
    my $ok_log = $self->check_log;
    $self->_dispose_dir(keep => !($ok_stop && $ok_log));
    $self->_release_uses;
    return $ok_stop && $ok_log;
}

# SIGKILL for the master and its workers (a server that failed to start).
sub _kill_all {
    my ($self) = @_;
    return if $self->{stopped};
    my $m = $self->{master_pid} || $self->master_pid or return;
    my @w = children_of($m);
    kill 'KILL', $m, @w;
    $self->_unregister;
    $self->_release_uses;
    $self->{stopped} = 1;
}

# At exit: stopped first, with the log checks (ChatTest::Process).
sub _exit_order { 0 }
sub _at_exit { $_[0]->stop }
sub _dir_label { 'nginx server root' }

# Lines of the error log (and sanitizer logs) that make a test fail.
sub log_problems {
    my ($self) = @_;
    my @bad;
    for my $line (split /\n/, $self->error_log) {
        next unless $line =~ /\[(?:alert|emerg|crit)\]|AddressSanitizer
                              |runtime\ error:|LeakSanitizer
                              |process\ \d+\ exited\ with\ code\ [1-9]
                              |exited\ on\ signal/x;
        next if grep { $line =~ $_ } @{$self->{allow}};
        push @bad, $line;
    }
    for my $f (glob("$self->{dir}/logs/asan*"),
               glob("$self->{dir}/logs/ubsan*"))
    {
        my $d = slurp($f) // '';
        push @bad, "$f:\n$d";
    }
    return @bad;
}

sub check_log {
    my ($self) = @_;
    my @bad = $self->log_problems;
    my $ok = Test::More::ok(!@bad,
        "nginx error log: no alert/crit/emerg, sanitizer report or crash");
    if (@bad) {
        my @show = @bad > 40 ? (@bad[0 .. 39], '...') : @bad;
        Test::More::diag(join "\n", @show);
    }
    return $ok;
}


# ---------------------------------------------------------------- HTTP

sub tcp_connect {
    my ($port, %o) = @_;
    my $fh;
    socket($fh, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    setsockopt($fh, SOL_SOCKET, SO_RCVBUF, pack('i', $o{rcvbuf}))
        or die "SO_RCVBUF: $!" if $o{rcvbuf};
    setsockopt($fh, SOL_SOCKET, SO_SNDBUF, pack('i', $o{sndbuf}))
        or die "SO_SNDBUF: $!" if $o{sndbuf};
    connect($fh, pack_sockaddr_in($port, inet_aton('127.0.0.1')))
        or die "connect 127.0.0.1:$port: $!";
    setsockopt($fh, IPPROTO_TCP, TCP_NODELAY, 1);
    $fh->blocking(0);
    binmode $fh;
    return $fh;
}

# Writes all of $data within $timeout; returns 1, or 0 on error/timeout.
sub write_all {
    my ($fh, $data, $timeout) = @_;
    $timeout //= 10;
    my $deadline = time + $timeout;
    my $off = 0;
    my $len = length $data;
    while ($off < $len) {
        my $n = syswrite($fh, $data, $len - $off, $off);
        if (defined $n) {
            $off += $n;
            next;
        }
        return 0 unless $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
        my $left = $deadline - time;
        return 0 if $left <= 0;
        my $sel = IO::Select->new($fh);
        $sel->can_write($left > 0.2 ? 0.2 : $left);
    }
    return 1;
}

# Reads what is available within $timeout into $$buf.  Returns bytes read,
# 0 on EOF (or reset), undef on timeout.
sub read_some {
    my ($fh, $buf, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $n = sysread($fh, $$buf, 65536, length $$buf);
        return $n if defined $n;
        return 0 unless $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
        my $left = $deadline - time;
        return undef if $left <= 0;
        IO::Select->new($fh)->can_read($left);
    }
}

sub _parse_head {
    my ($head) = @_;
    my @lines = split /\r\n/, $head;
    my $sl = shift @lines // '';
    my ($status) = $sl =~ m{^HTTP/\d\.\d\s+(\d{3})};
    my %h;
    for my $l (@lines) {
        next unless $l =~ /^([^:]+):\s*(.*?)\s*$/;
        my $k = lc $1;
        $h{$k} = exists $h{$k} ? "$h{$k}, $2" : $2;
    }
    return ($status, \%h);
}

sub _dechunk {
    my ($data) = @_;
    my $out = '';
    while ($data =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $n = hex $1;
        last if $n == 0;
        return undef if length $data < $n + 2;
        $out .= substr($data, 0, $n);
        substr($data, 0, $n + 2) = '';
    }
    return $out;
}

# Reads one HTTP response from $fh.  Returns (status, \%headers, body,
# rest) where rest is what followed the header of a 101 response.
sub read_response {
    my ($fh, %o) = @_;
    my $timeout = $o{timeout} // 5;
    my $deadline = time + $timeout;
    my $buf = '';
    my $eof = 0;

    while (index($buf, "\r\n\r\n") < 0) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $n = read_some($fh, \$buf, $left);
        if (defined $n && $n == 0) {
            $eof = 1;
            last;
        }
    }
    my $i = index($buf, "\r\n\r\n");
    return (undef, {}, $buf, '') if $i < 0;

    my $head = substr($buf, 0, $i);
    my $body = substr($buf, $i + 4);
    my ($status, $h) = _parse_head($head);
    $status //= 0;

    if ($status == 101 || ($status >= 100 && $status < 200)) {
        return ($status, $h, '', $body);
    }
    if ($o{head} || $status == 204 || $status == 304) {
        return ($status, $h, '', '');
    }

    my $complete = sub {
        if (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
            return $body =~ /(?:^|\r\n)0[^\r\n]*\r\n\r\n/;
        }
        if (defined $h->{'content-length'}) {
            return length($body) >= $h->{'content-length'};
        }
        return 0;
    };

    while (!$eof && !$complete->()) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $n = read_some($fh, \$body, $left);
        $eof = 1 if defined $n && $n == 0;
    }

    if (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
        $body = _dechunk($body) // $body;
    } elsif (defined $h->{'content-length'}) {
        $body = substr($body, 0, $h->{'content-length'});
    }
    return ($status, $h, $body, '');
}

# Sends a raw request; returns (status, \%headers, body).  Headers are
# lower-cased, repeated ones joined with ", ".
sub http_request {
    my ($port, $raw, %o) = @_;
    my $fh = tcp_connect($port);
    write_all($fh, $raw, $o{timeout} // 5) or return (undef, {}, '');
    my @r = read_response($fh, timeout => $o{timeout} // 5,
                          head => scalar($raw =~ /^HEAD /));
    close $fh;
    return @r[0 .. 2];
}

sub http_get {
    my ($port, $path, $headers, %o) = @_;
    my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    for my $k (sort keys %{$headers || {}}) {
        $req .= "$k: $headers->{$k}\r\n";
    }
    $req .= "\r\n";
    return http_request($port, $req, %o);
}

sub http_get_json {
    my ($port, $path) = @_;
    my ($st, $h, $body) = http_get($port, $path);
    my $j = eval { json()->decode($body) };
    return ($st, $h, $j, $body);
}

# POSTs $body (a string, or a reference encoded as JSON) to $path:
# (status, headers, the decoded JSON answer or undef, the raw answer)
sub http_post_json {
    my ($port, $path, $body, %o) = @_;
    $body = json()->encode($body) if ref $body;
    my $req = ($o{method} // 'POST') . " $path HTTP/1.1\r\n"
            . "Host: localhost\r\nConnection: close\r\n";
    for my $k (sort keys %{$o{headers} || {}}) {
        $req .= "$k: $o{headers}{$k}\r\n";
    }
    $req .= "Content-Length: " . length($body) . "\r\n\r\n$body";
    my ($st, $h, $raw) = http_request($port, $req, %o);
    my $j = eval { json()->decode($raw) };
    return ($st, $h, $j, $raw);
}

sub status {
    my ($self, $path) = @_;
    my ($st, $h, $j, $body) = http_get_json($self->{port}, $path // '/status');
    return $j if ref $j eq 'HASH';
    Test::More::diag('status: ' . ($st // 'no response') . ' '
                     . substr($body // '', 0, 200));
    return {};
}

sub http_get_self {
    my ($self, $path, $headers) = @_;
    return http_get($self->{port}, $path, $headers);
}

# Polls $cond every 50 ms until it returns true or $timeout passes.
sub wait_until {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return $r if time > $deadline;
        sleep 0.05;
    }
}

sub random_bytes {
    my ($n) = @_;
    return join '', map { chr int rand 256 } 1 .. $n;
}


# ---------------------------------------------------------------- checks

# For the tests' diagnostics and comparisons (use ChatTest qw(enc ...)).

# A reply or any value as canonical JSON; undef (no reply) as 'nothing'.
sub enc {
    my ($v) = @_;
    return defined $v ? json()->encode($v) : 'nothing';
}

# The seqs of acks and message events, in order.  Anything else (an
# error, undef) shows as itself, so that it never passes for a seq.
sub seqs {
    return [ map { ref $_ eq 'HASH' && defined $_->{type}
                   && ($_->{type} eq 'ack' || $_->{type} eq 'message')
                   ? $_->{seq} : 'not an ack or message: ' . enc($_) } @_ ];
}

# The seqs of the messages of a history reply.  A reply that is no
# history (an error, none) shows as such: an empty history is [].
sub hseqs {
    my ($h) = @_;
    return [ 'not a history reply: ' . enc($h) ]
        unless ref $h eq 'HASH' && ($h->{type} // '') eq 'history';
    return seqs(@{$h->{messages} || []});
}

# Handshake request text: headers => {Name => value or undef to omit},
# extra => [raw header lines], method, path.
sub ws_request {
    my (%o) = @_;
    my $method = $o{method} // 'GET';
    my $path = $o{path} // '/chat';
    my @order = ('Host', 'Upgrade', 'Connection', 'Sec-WebSocket-Key',
                 'Sec-WebSocket-Version');
    my %v = (
        'host'                  => 'localhost',
        'upgrade'               => 'websocket',
        'connection'            => 'Upgrade',
        'sec-websocket-key'     => $o{key}
                                   // MIME::Base64::encode_base64(
                                          random_bytes(16), ''),
        'sec-websocket-version' => '13',
    );
    my %name = map { lc($_) => $_ } @order;
    for my $k (sort keys %{$o{headers} || {}}) {
        my $lk = lc $k;
        push @order, $k unless exists $name{$lk};
        $name{$lk} //= $k;
        $v{$lk} = $o{headers}{$k};
    }
    $v{origin} = $o{origin} if defined $o{origin};
    push @order, 'Origin' if defined $o{origin} && !grep { lc eq 'origin' }
                                                       @order;
    my $req = "$method $path HTTP/1.1\r\n";
    for my $k (@order) {
        my $val = $v{lc $k};
        next unless defined $val;
        $req .= "$k: $val\r\n";
    }
    $req .= "$_\r\n" for @{$o{extra} || []};
    $req .= "Content-Length: 0\r\n"
        if $method ne 'GET' && $method ne 'HEAD' && !$o{no_body_header};
    $req .= "\r\n";
    return ($req, $v{'sec-websocket-key'});
}

# A handshake whose result is inspected by the test: returns
# (status, \%headers, body).
sub ws_handshake {
    my ($port, %o) = @_;
    my ($req) = ws_request(%o);
    my $fh = tcp_connect($port);
    write_all($fh, $req, 5) or return (undef, {}, '');
    my @r = read_response($fh, timeout => $o{timeout} // 5,
                          head => ($o{method} // '') eq 'HEAD');
    close $fh;
    return @r[0 .. 2];
}

sub accept_key {
    my ($key) = @_;
    require Digest::SHA;
    return MIME::Base64::encode_base64(
        Digest::SHA::sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'),
        '');
}

require MIME::Base64;
require ChatTest::WS;

# The pid of the nginx worker holding the server side of $ws (from
# /proc/net/tcp and the workers' file descriptors), or undef.
sub worker_pid_of {
    my ($n, $ws) = @_;
    my $fh = $ws->fh or return undef;
    my $name = getsockname($fh) or return undef;
    my ($cport) = unpack_sockaddr_in($name);
    my $sport = $n->port;
    my $inode;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $t, '<', $f or next;
        while (my $l = <$t>) {
            my @c = split ' ', $l;
            next unless @c > 9 && $c[1] =~ /:([0-9A-F]{4})$/i;
            my $lp = hex $1;
            next unless $c[2] =~ /:([0-9A-F]{4})$/i;
            my $rp = hex $1;
            if ($lp == $sport && $rp == $cport) {
                $inode = $c[9];
                last;
            }
        }
        close $t;
        last if $inode;
    }
    return undef unless $inode;
    for my $pid ($n->worker_pids) {
        opendir my $d, "/proc/$pid/fd" or next;
        for my $e (readdir $d) {
            my $l = readlink "/proc/$pid/fd/$e";
            return $pid if defined $l && $l eq "socket:[$inode]";
        }
    }
    return undef;
}

1;
