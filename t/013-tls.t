# WebSockets over TLS (wss://, nginx terminating TLS): the handshake, the
# protocol, many frames, a client that vanishes, the close handshake and a
# graceful shutdown's 1001.  The client is `openssl s_client` on one end of
# a socketpair, the harness's WebSocket client on the other.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp ();
use POSIX ();
use Socket qw(AF_UNIX SOCK_STREAM PF_UNSPEC);
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatTest::WS;

my $openssl = '/usr/bin/openssl';
plan skip_all => "no $openssl" unless -x $openssl;

my $dir = File::Temp::tempdir('ngx_chat_tls_XXXXXX', TMPDIR => 1,
                              CLEANUP => 1);
system("$openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost"
       . " -keyout $dir/key.pem -out $dir/cert.pem >$dir/req.log 2>&1") == 0
    or BAIL_OUT("openssl req failed: " . `cat $dir/req.log`);

my $port = ChatTest::free_port();
my $n = ChatTest->start(port => $port, listen_opts => 'ssl',
                        http => "ssl_certificate $dir/cert.pem;\n"
                              . "ssl_certificate_key $dir/key.pem;\n",
                        server => <<'EOF');
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
location = /echo { chat_echo; chat_max_message_size 64k; }
EOF

my @kids;

# a WebSocket client whose bytes go through openssl s_client
sub wss {
    my ($path) = @_;
    socketpair(my $mine, my $theirs, AF_UNIX, SOCK_STREAM, PF_UNSPEC)
        or die "socketpair: $!";
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        close $mine;
        open STDIN, '<&', $theirs or POSIX::_exit(126);
        open STDOUT, '>&', $theirs or POSIX::_exit(126);
        open STDERR, '>', '/dev/null';
        exec $openssl, 's_client', '-quiet', '-no_ign_eof',
             '-connect', "127.0.0.1:$port" or POSIX::_exit(127);
    }
    close $theirs;
    push @kids, $pid;
    my ($req, $key) = ChatTest::ws_request(path => $path);
    ChatTest::write_all($mine, $req);
    my ($st, $h, undef, $rest) = ChatTest::read_response($mine,
                                                         timeout => 10);
    my $ws = bless { fh => $mine, buf => $rest, pending => [], ignore => {},
                     pings => [], eof => 0, idseq => 0 }, 'ChatTest::WS';
    return ($st, $h, $ws, $pid, $key);
}

my ($st, $h, $a, undef, $key) = wss('/chat?user=alice');
is($st, 101, 'wss handshake: 101');
is($h->{'sec-websocket-accept'}, ChatTest::accept_key($key),
   'Sec-WebSocket-Accept over TLS');
my $w = $a->recv_json(timeout => 5);
is($w && $w->{type}, 'welcome', 'welcome over TLS');
is($a->call({ op => 'join', room => 'tls' })->{type}, 'joined', 'join');

my (undef, undef, $b) = wss('/chat?user=bob');
$b->recv_json(timeout => 5);
$b->call({ op => 'join', room => 'tls' });

for my $i (1 .. 50) {
    $a->send_json({ op => 'send', room => 'tls', text => "m$i", id => "s$i" });
}
my @got = $b->collect(n => 50, type => 'message', timeout => 10);
is_deeply([ map { $_->{text} } @got ], [ map { "m$_" } 1 .. 50 ],
          '50 messages from one TLS client to another, in order');

# frames larger than a TLS record, echoed whole
my (undef, undef, $e) = wss('/echo');
my $big = 'x' x 60000;
$e->send_text($big);
my $m = $e->recv_message(timeout => 10);
is(length($m && $m->{payload} // ''), 60000, '60 KB message echoed over TLS');

# a client that vanishes without a close
my (undef, undef, $gone, $gone_pid) = wss('/chat?user=gone');
$gone->recv_json(timeout => 5);
$gone->call({ op => 'join', room => 'tls' });
kill 'KILL', $gone_pid;
close $gone->{fh};
$gone->{fh} = undef;
sleep 0.3;
ok($a->call({ op => 'heartbeat' }), 'the others go on after one vanished');

# the close handshake over TLS
$b->send_close(1000, 'bye');
my ($code) = $b->expect_close(timeout => 5);
is($code, 1000, 'close handshake answered over TLS');

# graceful shutdown: 1001 reaches a TLS client
$n->signal('QUIT');
($code) = $a->expect_close(timeout => 5);
is($code, 1001, 'worker shutdown: 1001 over TLS');

$n->stop;
kill 'KILL', @kids;
waitpid($_, 0) for @kids;
done_testing;
