# chat_status: JSON and Prometheus output, counters, the version, which
# format the Accept header and ?format= choose.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
location = /status { chat_status; }
EOF2
my $port = $n->port;
my @FIELDS = qw(connections rooms messages_received messages_delivered
                slow_consumers rate_limited forbidden refused_origin
                refused_token refused_limit kicks disconnects streams polls
                http_requests);

# What GET /status says after each phase of the test (the fields named).
my %AFTER = (
    'initial'     => { map { $_ => 0 } @FIELDS },
    'after joins' => { connections => 3, rooms => 2 },
    'after sends' => { messages_received => 4, messages_delivered => 7 },
);

# GET /status: 200, a JSON object, the values of %AFTER for $phase
sub status_is {
    my ($phase) = @_;
    my ($st, $h, $j, $body) = ChatTest::http_get_json($port, '/status');
    is($st, 200, "$phase: 200");
    like($h->{'content-type'} // '', qr{^application/json},
         "$phase: JSON type");
    ok(ref $j eq 'HASH', "$phase: JSON object") or diag($body);
    my $want = $AFTER{$phase};
    is(ref $j eq 'HASH' ? $j->{$_} : undef, $want->{$_},
       "$phase: $_ = $want->{$_}")
        for sort keys %$want;
    return ($j || {}, $body);
}

my ($s, $raw) = status_is('initial');
is_deeply([ sort keys %$s ], [ sort(@FIELDS, 'version', 'workers') ],
          'top-level fields');
like($s->{version} // '', qr/^\d+\.\d+\.\d+$/, "version $s->{version}");
my ($src_version) = ChatTest::slurp('src/ngx_chat.h')
    =~ /NGX_CHAT_VERSION\s+"([^"]+)"/;
is($s->{version}, $src_version, 'the version of src/ngx_chat.h');
SKIP: {
    my $level = $ENV{CHAT_TEST_LOG_LEVEL} || 'info';
    skip "error_log at $level", 1
        unless $level =~ /^(?:debug|info|notice)$/;
    like($n->error_log,
         qr/\[notice\].*chat: ngx_chat \Q$src_version\E, worker 0/,
         'the version is logged at notice when the worker starts');
}
like($raw, qr/"connections":0[,}]/, 'numbers are JSON numbers');
is(ref $s->{workers}, 'ARRAY', 'workers array');
is(scalar @{$s->{workers} || []}, 1, 'one worker');
my $w = $s->{workers}[0] || {};
is_deeply([ sort keys %$w ], [ sort(@FIELDS, 'worker', 'pid', 'slot') ],
          'worker fields (no redis or postgres without chat_redis)');
is($w->{pid}, ($n->worker_pids)[0], 'worker pid is the real pid');
is($w->{slot}, 0, "the worker's number is its slot");
ok(defined $w->{worker} && !ref $w->{worker} && length $w->{worker},
   'worker id is a string');
like($raw, qr/"worker":"/, 'worker id is a JSON string');

# activity
my $a = ChatTest::WS->chat($port, user => 'a');
my $b = ChatTest::WS->chat($port, user => 'b');
my $c = ChatTest::WS->chat($port, user => 'c');
is($a->welcome->{worker}, $w->{worker}, 'welcome.worker matches status');
$a->join_room('r1');
$b->join_room('r1');
$c->join_room('r2');
$a->join_room('r3');
$a->call({ op => 'leave', room => 'r3' });

($s) = status_is('after joins');

for my $i (1 .. 3) {
    $a->call({ op => 'send', room => 'r1', text => "m$i" });
}
$c->call({ op => 'send', room => 'r2', text => 'solo' });
$a->call({ op => 'send', room => 'nowhere', text => 'x' });      # not_joined
$b->collect(n => 3, type => 'message');

# messages_received counts accepted sends, messages_delivered each
# recipient
($s) = status_is('after sends');
$w = $s->{workers}[0];
for my $f (@FIELDS) {
    is($w->{$f}, $s->{$f}, "worker $f equals the total");
}

# prometheus: one family per metric, each sample labelled with the
# worker's number, no unlabelled sum beside them
{
    my ($st, $h, $body) = ChatTest::http_get($port, '/status?format=prometheus');
    is($st, 200, 'prometheus: 200');
    is($h->{'content-type'} // '', 'text/plain; version=0.0.4; charset=utf-8',
       'prometheus: text format 0.0.4');
    # the values of JSON after the sends
    my %metric = (
        ngx_chat_connections              => [ 'gauge',   3 ],
        ngx_chat_rooms                    => [ 'gauge',   2 ],
        ngx_chat_messages_received_total  => [ 'counter', 4 ],
        ngx_chat_messages_delivered_total => [ 'counter', 7 ],
        ngx_chat_slow_consumers_total     => [ 'counter', 0 ],
        ngx_chat_rate_limited_total       => [ 'counter', 0 ],
        ngx_chat_forbidden_total          => [ 'counter', 0 ],
        ngx_chat_kicks_total              => [ 'counter', 0 ],
        ngx_chat_disconnects_total        => [ 'counter', 0 ],
    );
    for my $m (sort keys %metric) {
        my ($type, $v) = @{$metric{$m}};
        like($body, qr/^# HELP $m \S.*$/m, "$m HELP");
        like($body, qr/^# TYPE $m $type$/m, "$m TYPE $type");
        like($body, qr/^$m\{worker="0"\} \Q$v\E$/m, "${m}{worker=\"0\"} = $v");
        unlike($body, qr/^$m /m, "$m: no unlabelled sample");
        my @n = $body =~ /^# TYPE $m /mg;
        is(scalar @n, 1, "$m: one family");
    }
    like($body, qr/^# TYPE ngx_chat_build_info gauge\n
                  ngx_chat_build_info\{version="\Q$src_version\E"\}\ 1$/mx,
         'ngx_chat_build_info{version} 1');
    unlike($body, qr/ngx_chat_(?:redis|postgres|stream)_/,
           'no link or stream gauges without chat_redis');
    unlike($body, qr/\Q$w->{worker}\E|pid/, 'no pid, no worker id in labels');
    for my $cause (qw(origin token limit)) {
        like($body, qr/^ngx_chat_handshakes_refused_total\{worker="0",cause="$cause"\} 0$/m,
             "ngx_chat_handshakes_refused_total{cause=\"$cause\"}");
    }
    my @n = $body =~ /^# TYPE ngx_chat_handshakes_refused_total counter$/mg;
    is(scalar @n, 1, 'ngx_chat_handshakes_refused_total: one family');
    my @bad = grep { !/^#/ && !/^ngx_chat_\w+\{(?:worker="\d+"(?:,cause="\w+")?|version="[^"]*")\} \d+$/ }
              grep { length } split /\n/, $body;
    ok(!@bad, 'every line is a comment or a labelled sample')
        or diag(join "\n", @bad);
    like($body, qr/\n\z/, 'ends with a newline');
}

# which format: ?format= wins, then Accept (the text format when
# text/plain or OpenMetrics ranks above JSON), else JSON
my $PROM = 'application/openmetrics-text;version=1.0.0,'
         . 'application/openmetrics-text;version=0.0.1;q=0.75,'
         . 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
my $BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,'
            . 'image/avif,image/webp,*/*;q=0.8';
for my $case (
    # path, Accept (undef: none), the format
    [ '/status',                   undef,    'json' ],
    [ '/status',                   $PROM,    'text' ],
    [ '/status',                   'text/plain;version=0.0.4;q=0.4,*/*;q=0.1',
                                             'text' ],
    [ '/status',                   'text/plain', 'text' ],
    [ '/status',                   'TEXT/Plain ; Q=1', 'text' ],
    [ '/status',                   'text/*', 'text' ],
    [ '/status',                   'application/openmetrics-text', 'text' ],
    [ '/status',                   $BROWSER, 'json' ],
    [ '/status',                   '*/*',    'json' ],
    [ '/status',                   'application/json', 'json' ],
    [ '/status',                   'application/json, text/plain, */*',
                                             'json' ],
    [ '/status',                   'text/plain;q=0.5, application/json',
                                             'json' ],
    [ '/status',                   'text/plain;q=0, */*', 'json' ],
    [ '/status',                   'text/plain;q=0.001, application/json;q=0',
                                             'text' ],
    [ '/status',                   'text/plain;foo="a,b;q=0", */*;q=0.5',
                                             'text' ],
    [ '/status?format=json',       $PROM,    'json' ],
    [ '/status?format=prometheus', $BROWSER, 'text' ],
    [ '/status?format=prometheus', undef,    'text' ],
    [ '/status?format=other',      $PROM,    'text' ],
  )
{
    my ($path, $accept, $want) = @$case;
    my ($st, $h, $body) = ChatTest::http_get($port, $path,
                                defined $accept ? { Accept => $accept } : {});
    my $type = $h->{'content-type'} // '';
    my $got = $type =~ m{^application/json} && $body =~ /^\{"version"/
                  ? 'json'
            : $type =~ m{^text/plain; version=0\.0\.4}
              && $body =~ /^# HELP ngx_chat_/ ? 'text' : "?? $type";
    is($got, $want, "$path, Accept: " . ($accept // 'none') . ": $want");
    is($h->{vary} // '', 'Accept', "$path: Vary: Accept") if $st;
}

# disconnects
$c->close_socket;
ok(ChatTest::wait_until(sub { (status_q()->{connections} // -1) == 2 }, 3),
   'connections drop on disconnect');
is(status_q()->{rooms}, 1, 'the room of the gone member is not counted');
$a->send_close(1000);
$a->expect_close;
$b->close_socket;
ok(ChatTest::wait_until(sub { (status_q()->{connections} // -1) == 0 }, 3),
   'connections back to 0');
$s = status_q();
is($s->{rooms}, 0, 'rooms back to 0');
is($s->{messages_received}, 4, 'counters keep their values');

# other requests to the status location: the raw request, the statuses
# that are right
for my $case (
    [ "HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      200, 405 ],
    [ "POST /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      . "Content-Length: 0\r\n\r\n", 405 ],
  )
{
    my ($raw, @ok) = @$case;
    my ($method) = $raw =~ /^(\S+)/;
    my ($st) = ChatTest::http_request($port, $raw);
    ok(defined $st && grep({ $st == $_ } @ok),
       "$method /status: " . join('|', @ok))
        or diag('got ' . ($st // 'no response'));
}

sub status_q { $n->status('/status') || {} }

$n->stop;
done_testing;
