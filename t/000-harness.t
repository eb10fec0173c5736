# The harness itself: frame encoding, handshake key, HTTP helpers and
# nginx start/stop (without the chat module, so this runs before a build).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $frame = \&ChatTest::WS::frame;

# RFC 6455 5.7 examples
is(unpack('H*', $frame->(payload => 'Hello', mask => 0)),
   '810548656c6c6f', 'unmasked text "Hello"');
is(unpack('H*', $frame->(payload => 'Hello', mask => 1,
                         mask_key => "\x37\xfa\x21\x3d")),
   '818537fa213d7f9f4d5158', 'masked text "Hello"');
is(unpack('H*', $frame->(opcode => 1, fin => 0, payload => 'Hel', mask => 0)),
   '010348656c', 'first fragment');
is(unpack('H*', $frame->(opcode => 0, fin => 1, payload => 'lo', mask => 0)),
   '80026c6f', 'last fragment');
is(unpack('H*', $frame->(opcode => 9, payload => 'Hello', mask => 0)),
   '890548656c6c6f', 'ping');

my $f256 = $frame->(opcode => 2, payload => 'x' x 256, mask => 0);
is(unpack('H*', substr($f256, 0, 4)), '827e0100', '256 bytes: 16-bit length');
my $f64k = $frame->(opcode => 2, payload => 'x' x 65536, mask => 0);
is(unpack('H*', substr($f64k, 0, 10)), '827f0000000000010000',
   '64 KiB: 64-bit length');
is(length $f64k, 65546, '64 KiB frame size');
is(unpack('H*', $frame->(payload => 'ab', mask => 0, len_bytes => 2)),
   '817e00026162', 'forced non-minimal 16-bit length');
is(unpack('H*', $frame->(payload => '', mask => 0, len_bytes => 8,
                         len => 2**30)),
   '817f0000000040000000', 'announced 1 GiB length, no payload');
is(unpack('H*', $frame->(payload => '', mask => 0, rsv => 4)),
   'c100', 'RSV1');
is(unpack('H*', ChatTest::WS::close_payload(1000, 'ok')), '03e86f6b',
   'close payload');
{
    use utf8;
    is(unpack('H*', $frame->(payload => 'é', mask => 0)), '8102c3a9',
       'character strings are sent as UTF-8');
}

is(ChatTest::accept_key('dGhlIHNhbXBsZSBub25jZQ=='),
   's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'Sec-WebSocket-Accept (RFC example)');

# frame parser and message reassembly, from a buffer
my $ws = bless { buf => '', pending => [], ignore => {}, pings => [],
                 eof => 0 }, 'ChatTest::WS';
$ws->{buf} = $frame->(opcode => 1, fin => 0, payload => 'Hel', mask => 0)
           . $frame->(opcode => 9, payload => 'p', mask => 0)
           . $frame->(opcode => 0, fin => 1, payload => 'lo', mask => 0)
           . $frame->(opcode => 1, payload => '{"type":"x","a":"é"}', mask => 0)
           . $frame->(opcode => 8, payload => pack('n', 1002) . 'bad',
                      mask => 0);
my $m = $ws->recv_message(timeout => 0);
is($m->{payload}, 'Hello', 'fragments reassembled');
is($ws->{pings}[0]{payload}, 'p', 'ping between fragments recorded');
my $j = $ws->recv_json(timeout => 0);
is($j->{a}, "\x{e9}", 'JSON decoded as UTF-8');
ok(!defined $ws->recv_json(timeout => 0), 'close ends reading');
is($ws->{close_code}, 1002, 'close code parsed');
is($ws->{close_reason}, 'bad', 'close reason parsed');

# raw handshake request text
my ($req, $key) = ChatTest::ws_request(path => '/chat?user=a',
    headers => { 'Sec-WebSocket-Version' => undef, 'X-Test' => 'y' },
    origin => 'http://o.example');
like($req, qr{^GET /chat\?user=a HTTP/1\.1\r\n}, 'request line');
unlike($req, qr/Sec-WebSocket-Version/, 'header omitted with undef');
like($req, qr/\r\nX-Test: y\r\n/, 'extra header');
like($req, qr/\r\nOrigin: http:\/\/o\.example\r\n/, 'origin header');
is(length(MIME::Base64::decode_base64($key)), 16, '16-byte random key');

# nginx without the module: start, HTTP helpers, reload, stop
my $n = ChatTest->start(no_module => 1, server => <<'EOF2');
location = /hello { return 200 "hello\n"; }
location = /chunked { chunked_transfer_encoding on; return 200 "x"; }
EOF2
ok($n->port > 0, 'port ' . $n->port);
ok(-d $n->root, 'server root');
my ($st, $h, $body) = ChatTest::http_get($n->port, '/hello');
is($st, 200, 'GET /hello status');
is($body, "hello\n", 'GET /hello body');
is($h->{'content-length'}, 6, 'headers are lower-cased');
($st) = ChatTest::http_request($n->port,
    "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
is($st, 404, 'raw request');
my @w = $n->worker_pids;
is(scalar @w, 1, 'one worker');
ok($n->reload, 'reload');
my @w2 = $n->worker_pids;
ok((grep { $_ != $w[0] } @w2), "new worker after reload");
($st) = ChatTest::http_get($n->port, '/hello');
is($st, 200, 'serves after reload');
like($n->error_log, qr/reconfiguring/, 'error log readable');

# the log check sees alerts, sanitizer reports and crashed workers
{
    my $log = $n->root . '/logs/error.log';
    open my $fh, '>>', $log or die;
    print {$fh} "2024/01/01 00:00:00 [alert] 1#1: test alert\n",
                "x.c:1:2: runtime error: test\n",
                "2024/01/01 00:00:00 [notice] 1#1: worker process 7 exited "
                . "with code 1\n";
    close $fh;
    is(scalar $n->log_problems, 3, 'log problems detected');
    truncate $log, 0;
    is(scalar $n->log_problems, 0, 'clean log');
}
$n->stop;

# a whole custom configuration (the harness adds pid, error_log, module)
$n = ChatTest->start(no_module => 1, config => <<'EOF2');
worker_processes 1;
events { worker_connections 64; }
http {
    client_body_temp_path %%ROOT%%/tmp/body;
    proxy_temp_path %%ROOT%%/tmp/proxy;
    fastcgi_temp_path %%ROOT%%/tmp/fastcgi;
    uwsgi_temp_path %%ROOT%%/tmp/uwsgi;
    scgi_temp_path %%ROOT%%/tmp/scgi;
    access_log off;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 204; }
    }
}
EOF2
($st) = ChatTest::http_get($n->port, '/');
is($st, 204, 'custom configuration served');
$n->stop;

my ($rc, $text) = ChatTest->nginx_t(no_module => 1,
                                    server => 'location / { bogus; }');
isnt($rc, 0, 'nginx -t fails on an unknown directive');
like($text, qr/unknown directive "bogus"/, 'nginx -t output captured');

done_testing;
