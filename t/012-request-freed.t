# After the upgrade the HTTP request is freed (its pool and header buffers)
# and the WebSocket lives on the connection alone: the access log line is
# written at the handshake, the connection keeps working, frames sent with
# the handshake and requests that needed large header buffers still work.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use ChatTest;
use ChatTest::WS;

my $n = ChatTest->start(http => <<'EOF', server => <<'EOF2');
log_format chat '$status $arg_user $request_uri';
large_client_header_buffers 4 8k;
EOF
location = /chat {
    chat;
    chat_user $arg_user;
    access_log %%ROOT%%/logs/chat.log chat;
}
location = /echo { chat_echo; }
EOF2
my $port = $n->port;
my $log = $n->root . '/logs/chat.log';

sub access_log {
    open(my $fh, '<', $log) or return '';
    local $/;
    return <$fh>;
}

# ---- the access log line comes at the handshake, not at the close
my $a = ChatTest::WS->chat($port, user => 'carol');
my $deadline = time + 5;
sleep 0.05 while access_log() !~ /^101 carol / && time < $deadline;
like(access_log(), qr/^101 carol \/chat\?user=carol$/m,
     'access log line written while the WebSocket is open');

# the user id outlives the request it was read from
my $j = $a->join_room('r1');
is($j->{seq}, 0, 'join works after the request is gone');
my $ack = $a->call({ op => 'send', room => 'r1', text => 'hi' });
is($ack && $ack->{type}, 'ack', 'send works');
my ($m) = $a->collect(type => 'message', n => 1);
is($m && $m->{user}, 'carol', 'message carries the user copied at upgrade');
is($m && $m->{text}, 'hi', 'message text');

# ---- requests read with large header buffers (header over 1k)
{
    my $big = 'x' x 3000;
    my $b = ChatTest::WS->chat($port, user => 'dave',
                               headers => { Cookie => "c=$big" });
    ok($b, 'handshake with a 3 KB header');
    $b->join_room('r1');
    my $ack = $b->call({ op => 'send', room => 'r1', text => 'big' });
    is($ack && $ack->{type}, 'ack', 'connection from large buffers works');
    my @got = $a->collect(type => 'message', n => 1);
    is($got[0] && $got[0]{text}, 'big', 'and its message reaches others');

    # the same with a frame sent right behind the large header
    my ($req) = ChatTest::ws_request(path => '/chat?user=erin',
                                     headers => { Cookie => "c=$big" });
    my $fh = ChatTest::tcp_connect($port);
    ChatTest::write_all($fh, $req . ChatTest::WS::frame(
        payload => '{"op":"join","room":"r2","id":"j"}'));
    my ($st, undef, undef, $rest) = ChatTest::read_response($fh);
    is($st, 101, '101 with a frame behind a large header');
    my $ws = bless { fh => $fh, buf => $rest, pending => [], ignore => {},
                     pings => [], eof => 0 }, 'ChatTest::WS';
    my $r = $ws->wait_for(id => 'j');
    is($r && $r->{type}, 'joined', 'early join behind a large header');
    close $fh;
}

# ---- many frames with the handshake: part in the header buffer, the rest
# still in the socket; all arrive, in order
{
    my ($req) = ChatTest::ws_request(path => '/echo');
    my $frames = join '', map {
        ChatTest::WS::frame(payload => sprintf('early %03d %s', $_, 'y' x 90))
    } 1 .. 60;
    my $fh = ChatTest::tcp_connect($port);
    ChatTest::write_all($fh, $req . $frames);
    my ($st, undef, undef, $rest) = ChatTest::read_response($fh);
    is($st, 101, 'handshake with 6 KB of frames behind it');
    my $ws = bless { fh => $fh, buf => $rest, pending => [], ignore => {},
                     pings => [], eof => 0 }, 'ChatTest::WS';
    my @got;
    for (1 .. 60) {
        my $m = $ws->recv_message or last;
        push @got, $m->{payload} =~ /^early (\d+)/ ? $1 + 0 : -1;
    }
    is_deeply(\@got, [1 .. 60], '60 early frames echoed in order');
    close $fh;
}

# ---- clients gone right after their handshake, with and without a frame
for my $i (1 .. 20) {
    my ($req) = ChatTest::ws_request(path => "/chat?user=gone$i");
    my $fh = ChatTest::tcp_connect($port);
    my $data = $req;
    $data .= ChatTest::WS::frame(payload => '{"op":"join","room":"r1"}')
        if $i % 2;
    ChatTest::write_all($fh, $data);
    close $fh;
}
sleep 0.3;
my $c = ChatTest::WS->chat($port, user => 'frank');
ok($c->join_room('r1'), 'the worker serves on after clients vanished');
ok($a->alive, 'and the first connection is still up');

$a->close_socket;
$c->close_socket;
$n->stop;
done_testing;
