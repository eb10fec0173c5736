# The module builds, loads, and its directives are checked by nginx -t.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

ok(ChatTest::module_exists(), 'module built: ' . ChatTest::module_path())
    or BAIL_OUT('ngx_chat module not built (run make); every test needs it');

my $chat = <<'EOF2';
location = /chat { chat; chat_user $arg_user; }
location = /echo { chat_echo; }
location = /status { chat_status; }
EOF2

my ($rc, $out) = ChatTest->nginx_t(server => $chat);
is($rc, 0, 'nginx -t accepts a minimal chat config') or diag($out);
like($out, qr/syntax is ok/, 'syntax is ok');

# every directive with a valid value, at the levels the contract allows
($rc, $out) = ChatTest->nginx_t(
    http => <<'EOF2',
chat_history_cache 10;
chat_key_prefix testchat;
chat_user $arg_user;
chat_ping_interval 20s;
chat_idle_timeout 1m;
chat_max_message_size 16k;
chat_send_buffer 1m;
chat_max_rooms 5;
chat_rate 10r/m;
chat_allowed_origins http://a.example https://b.example:8443;
chat_presence_ttl 30s;
chat_redis_timeout 2s;
chat_redis_max_pending 100;
chat_postgres_timeout 500ms;
EOF2
    server => <<'EOF2');
chat_rate 5r/s burst=10;
chat_max_rooms 50;
chat_presence_ttl 10s;
location = /chat {
    chat;
    chat_user $http_x_user;
    chat_ping_interval 1s;
    chat_idle_timeout 3s;
    chat_max_message_size 1k;
    chat_send_buffer 16k;
    chat_max_rooms 1;
    chat_rate 100r/s burst=1;
    chat_allowed_origins http://c.example;
    chat_presence_ttl 5s;
}
location = /chat2 { chat; chat_rate 7r/s; }
location = /echo { chat_echo; chat_max_message_size 64k; }
location = /status { chat_status; }
EOF2
is($rc, 0, 'nginx -t accepts every directive with valid values') or diag($out);

# several workers without chat_redis: a warning naming chat_redis
($rc, $out, my $log) = ChatTest->nginx_t(workers => 2, server => $chat);
is($rc, 0, 'two workers without chat_redis is not an error') or diag($out);
ok(grep({ /chat_redis/ } split /\n/, $out . "\n" . $log),
   'nginx -t warns about chat_redis with worker_processes 2')
    or diag($out);
like($out . $log, qr/\[warn\][^\n]*chat_redis/, 'the warning is a [warn]');

# at Debian's default error_log level (error), nginx -t still says it
($rc, $out, $log) = ChatTest->nginx_t(workers => 2, server => $chat,
                                      log_level => 'error');
like($out, qr/\[warn\][^\n]*chat_redis/,
     'with error_log at "error", nginx -t prints the warning')
    or diag($out);

# invalid values fail nginx -t
my @bad = (
    [ 'chat_rate abc',              'location = /c { chat; chat_user $arg_user; chat_rate abc; }' ],
    [ 'chat_rate 10r/h',            'location = /c { chat; chat_user $arg_user; chat_rate 10r/h; }' ],
    [ 'chat_rate 0r/s',             'location = /c { chat; chat_user $arg_user; chat_rate 0r/s; }' ],
    [ 'chat_rate burst=abc',        'location = /c { chat; chat_user $arg_user; chat_rate 5r/s burst=abc; }' ],
    [ 'chat_rate junk argument',    'location = /c { chat; chat_user $arg_user; chat_rate 5r/s foo=1; }' ],
    [ 'chat_max_rooms 0',           'location = /c { chat; chat_user $arg_user; chat_max_rooms 0; }' ],
    [ 'chat_max_rooms -1',          'location = /c { chat; chat_user $arg_user; chat_max_rooms -1; }' ],
    [ 'chat_max_rooms abc',         'location = /c { chat; chat_user $arg_user; chat_max_rooms abc; }' ],
    [ 'chat_max_message_size abc',  'location = /c { chat; chat_user $arg_user; chat_max_message_size abc; }' ],
    [ 'chat_send_buffer abc',       'location = /c { chat; chat_user $arg_user; chat_send_buffer abc; }' ],
    [ 'chat_ping_interval abc',     'location = /c { chat; chat_user $arg_user; chat_ping_interval abc; }' ],
    [ 'chat_idle_timeout abc',      'location = /c { chat; chat_user $arg_user; chat_idle_timeout abc; }' ],
    [ 'chat_user without value',    'location = /c { chat; chat_user; }' ],
    [ 'chat_allowed_origins empty', 'location = /c { chat; chat_user $arg_user; chat_allowed_origins; }' ],
    [ 'chat with an argument',      'location = /c { chat on; chat_user $arg_user; }' ],
    [ 'chat at server level',       "chat;\nlocation = /c { chat_user \$arg_user; }" ],
    [ 'chat_history_cache in a location',
      'location = /c { chat; chat_user $arg_user; chat_history_cache 10; }' ],
    [ 'chat_key_prefix in a location',
      'location = /c { chat; chat_user $arg_user; chat_key_prefix x; }' ],
    [ 'unknown chat directive',     'location = /c { chat; chat_user $arg_user; chat_bogus 1; }' ],
);
for my $b (@bad) {
    my ($name, $server) = @$b;
    my ($rc, $out) = ChatTest->nginx_t(server => $server);
    isnt($rc, 0, "nginx -t rejects $name") or diag($out);
    like($out, qr/\[emerg\]/, "$name: [emerg] message") or diag($out);
}

for my $http ('chat_history_cache abc;', 'chat_history_cache -5;',
              'chat_redis_timeout 0;', 'chat_redis_timeout abc;',
              'chat_postgres_timeout 0;', 'chat_redis_max_pending 0;',
              'chat_redis_max_pending abc;')
{
    my ($rc, $out) = ChatTest->nginx_t(http => $http, server => $chat);
    isnt($rc, 0, "nginx -t rejects $http") or diag($out);
}

# a running server with the module loaded
my $n = ChatTest->start(server => $chat);
my ($st, $h, $body) = ChatTest::http_get($n->port, '/status');
is($st, 200, 'status location answers');
my $j = eval { ChatTest::json()->decode($body) };
is(ref $j, 'HASH', 'status is a JSON object') or diag($body);
my $ws = ChatTest::WS->chat($n->port, user => 'alice');
is($ws->welcome->{type}, 'welcome', 'a chat connection works');
$ws->close_socket;
$n->stop;

done_testing;
