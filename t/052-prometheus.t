# chat_status as Prometheus scrapes it: the text format answered to the
# scraper's Accept header, `promtool check metrics` on it, one family per
# metric, worker="N" labels and nothing unlabelled beside them; the Redis
# and Postgres link gauges while up and after Redis or Postgres went
# away; the durable stream's backlog and its oldest entry's age while
# Postgres is down, and both back to 0 once it is up again.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);
use POSIX ();

my $PROMTOOL = $ENV{PROMTOOL_BIN} || '/usr/bin/promtool';

# what Prometheus 2.42 (Debian bookworm) sends
my $ACCEPT = 'application/openmetrics-text;version=1.0.0,'
           . 'application/openmetrics-text;version=0.0.1;q=0.75,'
           . 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
}
location = /status { chat_status; }
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC);
my $port = $n->port;

# per worker: every sample has worker="N" (and link= for redis_up)
my %PER_WORKER = map { $_ => 1 } qw(
    ngx_chat_connections ngx_chat_rooms ngx_chat_messages_received_total
    ngx_chat_messages_delivered_total ngx_chat_slow_consumers_total
    ngx_chat_rate_limited_total ngx_chat_forbidden_total
    ngx_chat_handshakes_refused_total ngx_chat_kicks_total
    ngx_chat_disconnects_total ngx_chat_sse_streams ngx_chat_polls
    ngx_chat_http_requests_total ngx_chat_redis_up ngx_chat_postgres_connections
    ngx_chat_postgres_connections_up);
my %PER_HOST = map { $_ => 1 } qw(
    ngx_chat_stream_backlog ngx_chat_stream_oldest_age_seconds);

# GET /status as a scraper: (content type, body, families), the families
# by name: { type, help, samples => [ [ \%labels, value, line ] ] }, and
# in {errors} every line that does not fit the text format as written
sub scrape {
    my ($st, $h, $body) = ChatTest::http_get($port, '/status',
                                             { Accept => $ACCEPT });
    my (%fam, @errors, $cur);
    for my $line (split /\n/, $body // '') {
        if ($line =~ /^# HELP (\w+) (.+)$/) {
            push @errors, "second HELP: $line" if $fam{$1};
            $cur = $fam{$1} = { help => $2, samples => [] };
        } elsif ($line =~ /^# TYPE (\w+) (\w+)$/) {
            if ($cur && $fam{$1} && $fam{$1} == $cur && !$cur->{type}) {
                $cur->{type} = $2;
            } else {
                push @errors, "TYPE without its HELP: $line";
            }
        } elsif ($line =~ /^(\w+)(?:\{([^}]*)\})? (\S+)$/) {
            my ($name, $ls, $v) = ($1, $2, $3);
            my %l;
            for my $pair (split /,/, $ls // '') {
                $pair =~ /^(\w+)="([^"\\]*)"$/
                    or push(@errors, "label $pair: $line"), next;
                $l{$1} = $2;
            }
            if (!$cur || !$fam{$name} || $fam{$name} != $cur) {
                push @errors, "sample outside its family: $line";
                next;
            }
            push @{$cur->{samples}}, [ \%l, $v, $line ];
        } else {
            push @errors, "not the text format: $line";
        }
    }
    return ($h->{'content-type'} // '', $body // '',
            { fam => \%fam, errors => \@errors });
}

# the value of one sample: scrape()'s families, name, labels
sub value {
    my ($m, $name, %l) = @_;
    my $f = $m->{fam}{$name} or return undef;
    SAMPLE: for my $s (@{$f->{samples}}) {
        next if keys %{$s->[0]} != keys %l;
        for (keys %l) {
            next SAMPLE unless ($s->[0]{$_} // '') eq $l{$_};
        }
        return $s->[1];
    }
    return undef;
}

# promtool check metrics on a scrape: no output, exit 0
sub promtool_ok {
    my ($body, $what) = @_;
    SKIP: {
        skip "$PROMTOOL is missing: `make deps` installs Debian's "
             . "prometheus package, which ships it", 1 unless -x $PROMTOOL;
        my $in = $n->root . '/metrics.txt';
        ChatTest::write_file($in, $body);
        my ($rc, $out) = ChatTest::run(
            cmd => [ $PROMTOOL, 'check', 'metrics' ],
            out => $n->root . '/promtool.out', timeout => 30,
            setup => sub { open STDIN, '<', $in or POSIX::_exit(126) });
        ok($rc == 0 && $out eq '', "promtool check metrics: $what")
            or diag("exit $rc: $out");
    }
}

# the structure every scrape must have
sub structure_ok {
    my ($m, $what) = @_;
    my @bad = @{$m->{errors}};
    for my $name (sort keys %{$m->{fam}}) {
        my $f = $m->{fam}{$name};
        push @bad, "$name: no TYPE" unless $f->{type};
        push @bad, "$name: a counter without _total"
            if ($f->{type} // '') eq 'counter' && $name !~ /_total$/;
        my $labelled = grep { %{$_->[0]} } @{$f->{samples}};
        push @bad, "$name: labelled and unlabelled samples mixed"
            if $labelled && $labelled != @{$f->{samples}};
        my %seen;
        for my $s (@{$f->{samples}}) {
            my $l = $s->[0];
            my $key = join ',', map { "$_=$l->{$_}" } sort keys %$l;
            push @bad, "$name: twice {$key}" if $seen{$key}++;
            push @bad, "$name: pid in labels: $s->[2]"
                if grep { /pid/ } keys %$l;
            if ($PER_WORKER{$name}) {
                push @bad, "$name: no worker number: $s->[2]"
                    unless ($l->{worker} // '') =~ /^\d+$/;
            } elsif ($PER_HOST{$name}) {
                push @bad, "$name: labelled: $s->[2]" if %$l;
            }
            push @bad, "$name: value: $s->[2]"
                unless $s->[1] =~ /^\d+(?:\.\d+)?$/;
        }
    }
    ok(!@bad, "one family per metric, labels as documented: $what")
        or diag(join "\n", @bad);
}

sub scrape_ok {
    my ($what) = @_;
    my ($type, $body, $m) = scrape();
    is($type, 'text/plain; version=0.0.4; charset=utf-8',
       "$what: the text format for a Prometheus Accept");
    promtool_ok($body, $what);
    structure_ok($m, $what);
    return $m;
}

# waits until $cond->(scrape) holds; returns the last scrape
sub wait_scrape {
    my ($cond, $timeout) = @_;
    my $m;
    ChatTest::wait_until(sub { (undef, undef, $m) = scrape(); $cond->($m) },
                         $timeout);
    return $m;
}

sub links_are {
    my ($m, $want) = @_;
    for my $w (0, 1) {
        for my $link (qw(commands subscriber stream)) {
            return 0 unless (value($m, 'ngx_chat_redis_up', worker => $w,
                                   link => $link) // -1) == $want;
        }
    }
    return 1;
}

sub pg_up_is {
    my ($m, $want) = @_;
    for my $w (0, 1) {
        return 0 unless (value($m, 'ngx_chat_postgres_connections_up',
                               worker => $w) // -1) == $want;
    }
    return 1;
}

# ---- all up
my $m = wait_scrape(sub { links_are($_[0], 1) && pg_up_is($_[0], 2)
                          && defined value($_[0], 'ngx_chat_stream_backlog') },
                    15);
$m = scrape_ok('all up');
is(value($m, 'ngx_chat_build_info', version => '0.1.0'), 1,
   'ngx_chat_build_info{version="0.1.0"} 1');
for my $w (0, 1) {
    for my $link (qw(commands subscriber stream)) {
        is(value($m, 'ngx_chat_redis_up', worker => $w, link => $link), 1,
           "ngx_chat_redis_up{worker=\"$w\",link=\"$link\"} 1");
    }
    is(value($m, 'ngx_chat_postgres_connections', worker => $w), 2,
       "worker $w: a pool of 2");
    is(value($m, 'ngx_chat_postgres_connections_up', worker => $w), 2,
       "worker $w: 2 Postgres connections up");
}
is(value($m, 'ngx_chat_stream_backlog'), 0, 'stream backlog 0');
is(value($m, 'ngx_chat_stream_oldest_age_seconds'), '0.000',
   'oldest unwritten entry: none');
for my $f (sort keys %PER_WORKER, sort keys %PER_HOST) {
    my $want = $f =~ /_total$/ ? 'counter' : 'gauge';
    is($m->{fam}{$f} && $m->{fam}{$f}{type}, $want, "$f: $want");
}

# ---- traffic on both workers
my (@c, %per);
for my $i (1 .. 40) {
    my $ws = ChatTest::WS->chat($port, user => "u$i");
    push @c, $ws;
    $per{$ws->welcome->{worker}}++;
    last if keys %per == 2 && @c >= 4;
}
$_->join_room('lobby') for @c;
my $sent = 0;
for my $ws (@c) {
    my $a = $ws->call({ op => 'send', room => 'lobby', text => 'hi' });
    $sent++ if $a && $a->{type} eq 'ack';
}
is($sent, scalar @c, "$sent messages acked");
is($pg->wait_count($sent, timeout => 15), $sent, 'and written to Postgres');

$m = scrape_ok('after traffic');
my $j = $n->status('/status');
my ($recv, $conns) = (0, 0);
for my $w (@{$j->{workers} || []}) {
    my $v = value($m, 'ngx_chat_messages_received_total',
                  worker => $w->{slot});
    is($v, $w->{messages_received},
       "worker $w->{slot}: messages_received_total as in JSON");
    is(value($m, 'ngx_chat_connections', worker => $w->{slot}),
       $w->{connections}, "worker $w->{slot}: connections as in JSON");
    $recv += $v // 0;
    $conns += value($m, 'ngx_chat_connections', worker => $w->{slot}) // 0;
}
is($recv, $sent, 'the sum of the series is the messages received');
is($conns, scalar @c, 'the sum of the series is the connections');
is_deeply([ sort map { $_->[0]{worker} }
            @{$m->{fam}{ngx_chat_connections}{samples}} ], [ 0, 1 ],
          'series worker="0" and worker="1"');

# ---- Postgres killed: its gauges go to 0, the backlog grows
$pg->kill;
$m = wait_scrape(sub { pg_up_is($_[0], 0) }, 10);
ok(pg_up_is($m, 0), 'Postgres killed: ngx_chat_postgres_connections_up 0')
    or diag(join "\n", map { $_->[2] }
            @{$m->{fam}{ngx_chat_postgres_connections_up}{samples} || []});
ok(links_are($m, 1), 'Redis links still up');

my $down = 0;
my $first = time;
for my $k (1 .. 30) {
    my $ws = $c[$k % @c];
    my $a = $ws->call({ op => 'send', room => 'lobby',
                        text => "while Postgres is down $k" });
    $down++ if $a && $a->{type} eq 'ack';
    sleep 1.5 if $k == 1;    # the oldest is that much older than the rest
}
is($down, 30, 'messages are acked while Postgres is down');

$m = wait_scrape(sub {
    (value($_[0], 'ngx_chat_stream_backlog') // 0) == $down }, 25);
is(value($m, 'ngx_chat_stream_backlog'), $down,
   "ngx_chat_stream_backlog $down while Postgres is down");
my $age = value($m, 'ngx_chat_stream_oldest_age_seconds') // 0;
cmp_ok($age, '>=', 1.4, "the oldest unwritten entry is $age s old");
cmp_ok($age, '<=', time - $first + 1, 'and not older than it is');
scrape_ok('Postgres down');

# ---- Postgres back: everything written, backlog 0
$pg->start;
$m = wait_scrape(sub { pg_up_is($_[0], 2) }, 15);
ok(pg_up_is($m, 2), 'Postgres back: 2 connections up per worker');
is($pg->wait_count($sent + $down, timeout => 30), $sent + $down,
   'every message reached Postgres');
$m = wait_scrape(sub {
    (value($_[0], 'ngx_chat_stream_backlog') // -1) == 0
    && (value($_[0], 'ngx_chat_stream_oldest_age_seconds') // -1) == 0 },
    25);
is(value($m, 'ngx_chat_stream_backlog'), 0, 'backlog back to 0');
is(value($m, 'ngx_chat_stream_oldest_age_seconds'), '0.000',
   'no unwritten entry');

# ---- Redis stopped: every link gauge 0; restarted: 1 again
$_->close_socket for @c;
$r->stop;
$m = wait_scrape(sub { links_are($_[0], 0) }, 10);
ok(links_are($m, 0), 'Redis stopped: ngx_chat_redis_up 0 for every link')
    or diag(join "\n", map { $_->[2] }
            @{$m->{fam}{ngx_chat_redis_up}{samples} || []});
scrape_ok('Redis down');
$r->restart;
$m = wait_scrape(sub { links_are($_[0], 1) }, 10);
ok(links_are($m, 1), 'Redis back: ngx_chat_redis_up 1 again');
is(value($m, 'ngx_chat_messages_received_total', worker => 0)
   + value($m, 'ngx_chat_messages_received_total', worker => 1),
   $sent + $down, 'the counters kept their values');

$n->stop;
done_testing;
