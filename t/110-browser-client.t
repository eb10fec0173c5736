# The JavaScript client, conf/html/ngx-chat.js, in headless Chromium
# against the real server (t/browser/client.mjs): loaded as an ES module;
# for each transport the server speaks (the WebSocket; SSE and long
# polling with POST where it has them, else those checks are skipped and
# say so), two clients in two browser contexts: connect, states, sends
# acked with consecutive seqs and delivered once in order to both, typing,
# presence, online, history, a client away and back (resumed from its last
# seq: no gap, no duplicate), two messages lost on the way (filled from
# history), leave, join on a live connection; on the WebSocket a send
# whose ack is lost with the connection (resent with its id, stored once,
# acked with the first seq).  Then what the library refuses itself
# (maxPending, maxMessageSize, rooms not joined, bad names, close()), the
# fallback order on a location where nothing works (each transport twice,
# then the next, then the first again, delays within the cap), the switch
# back from SSE to the WebSocket with no gap or duplicate (with SSE), a
# chat_admin disconnect (1008: closed, no reconnect), an embedded-mode
# reload (the room's seq goes back to 0: "reset", and the new seq 1 is
# delivered, not dropped), and a gap history no longer holds (reported
# with "gap", what it still has delivered in order).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use ChatTest::Browser;

ChatTest::Browser::need();

my $html = ChatTest::repo_root() . '/conf/html';

my $HTTP = <<'EOF';
types {
    text/html                html;
    text/css                 css;
    application/javascript   js;
}
default_type  application/octet-stream;
charset       utf-8;
# a browser opens connections ahead of its requests; nginx's graceful
# stop waits for those until this timeout (60 s by default)
client_header_timeout  3s;
map "$http_upgrade:$arg_ws" $chat_ws_off {
    "~*^websocket:0$"  1;
    default            0;
}
EOF

my $SERVER = <<"EOF";
root $html;
location / { }
location = /blank.html {
    default_type text/html;
    return 200 "<!DOCTYPE html><title>ngx_chat test</title>\\n";
}
location = /chat { chat; chat_user \$arg_user; }
location = /wsoff {
    if (\$chat_ws_off) { return 403; }
    chat;
    chat_user \$arg_user;
}
location = /nochat { return 404; }
location = /admin { chat_admin; }
EOF

my $r = ChatTest::Redis->start;
my $n = $r->start_nginx(workers => 2, listen_opts => 'reuseport',
                        http => $HTTP, server => $SERVER);
my $mem = ChatTest->start(http => $HTTP . "chat_history_cache 5;\n",
                          server => $SERVER);

ChatTest::Browser::run('client.mjs',
    args => { base => 'http://127.0.0.1:' . $n->port,
              mem => 'http://127.0.0.1:' . $mem->port },
    actions => { reload_mem => sub { $mem->reload } },
    timeout => 120);

$mem->stop;
$n->stop;
done_testing;
