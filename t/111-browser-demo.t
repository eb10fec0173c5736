# The demo page (conf/html: index.html, demo.js, demo.css on ngx-chat.js)
# in headless Chromium as two people use it (t/browser/demo.mjs), alice on
# a desktop and bob on a phone, against nginx with two workers on Redis:
# sign in, chat both ways (every message once, in seq order, under its
# user's name), hostile texts shown as text (no element made, nothing run),
# "bob is typing…", the member list, unread counts of another room; nginx
# stopped and started again (the pages say so, the messages written
# meanwhile wait and arrive once), nginx reloaded (the pages come back,
# every message once, in order), a page reload (name, rooms and the room
# shown remembered, the history shown again).  Screenshots go to
# build/test-out/111-browser-demo/ (CHAT_TEST_OUT to change).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Redis;
use ChatTest::Browser;

ChatTest::Browser::need();

my $html = ChatTest::repo_root() . '/conf/html';
my $out = ChatTest::Browser::out_dir('111-browser-demo');

my %conf = (workers => 2, listen_opts => 'reuseport',
            http => <<'EOF', server => <<"EOF");
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
EOF
root $html;
location / { }
location = /chat { chat; chat_user \$arg_user; }
EOF

my $r = ChatTest::Redis->start;
my $n = $r->start_nginx(%conf);
my $port = $n->port;

ChatTest::Browser::run('demo.mjs',
    args => { base => "http://127.0.0.1:$port", out => $out },
    actions => {
        stop   => sub { $n->stop; 1 },
        start  => sub { $n = $r->start_nginx(%conf, port => $port); 1 },
        reload => sub { $n->reload },
    },
    timeout => 150);

diag("screenshots: $out");
$n->stop;
done_testing;
