# chat_postgres with chat_history_cache 20: history and join since reach
# past the Redis cache into Postgres.  100 messages: history pages back
# across the cache boundary (ascending, no duplicates, nothing skipped, the
# same message objects as the live events); join since 0 replays all 100 in
# order, then live.  1,100 messages: a replay is capped at 1000 (the latest,
# so that live messages follow without a gap) and joined says
# "truncated":true; exactly 1000 is not truncated.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs hseqs);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $CACHE = 20;
my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 10000r/s burst=10000;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
    chat_send_buffer 16m;
}
EOF2

sub range { [ $_[0] .. $_[1] ] }
sub truthy { my ($v) = @_; return $v && (!ref $v || $$v) ? 1 : 0 }

# up to $n message events of $room; gives up after 2 s without one
sub msgs {
    my ($ws, $room, $n) = @_;
    my @m;
    my $end = time + 20;
    while (@m < $n && time < $end) {
        my $m = $ws->wait_for(type => 'message', room => $room, timeout => 2)
            or last;
        push @m, $m;
    }
    return @m;
}

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, cache => $CACHE, listen_opts => 'reuseport',
    server => $LOC);
my $port = $n->port;

# sends $count messages to $room from $ws (pipelined, 100 unacked at most);
# returns the message events the sender received, by seq
sub fill {
    my ($ws, $room, $count) = @_;
    my ($sent, $acked, @events) = (0, 0);
    my $deadline = time + 60;
    while ((@events < $count || $acked < $count) && time < $deadline) {
        while ($sent < $count && $sent - $acked < 100) {
            $sent++;
            $ws->send_json({ op => 'send', room => $room,
                             text => "$room $sent", id => "$room-$sent" });
        }
        for my $m ($ws->drain(timeout => 0.05)) {
            if ($m->{type} eq 'ack') {
                $acked++;
            } elsif ($m->{type} eq 'message' && $m->{room} eq $room) {
                push @events, $m;
            } else {
                diag('unexpected: ' . enc($m));
                $acked++ if $m->{type} eq 'error';
            }
        }
    }
    return @events;
}

my $a = ChatTest::WS->chat($port, user => 'alice');
$a->join_room('h');
my @ev = fill($a, 'h', 100);
is_deeply(seqs(@ev), range(1, 100), 'h: 100 messages sent, events 1..100');
is($r->cmd('ZCARD', 'chat:{h}:recent'), $CACHE,
   "the Redis cache keeps $CACHE");
is($pg->wait_count(100, where => "room = 'h'", timeout => 20), 100,
   '100 rows in Postgres');
my %ev = map { $_->{seq} => $_ } @ev;
sub evs { [ map { $ev{$_} } @_ ] }

# ---- history
my $h = $a->history('h');
is_deeply(hseqs($h), range(51, 100), 'history: the latest 50 (51..100)');
is_deeply($h->{messages}, evs(51 .. 100),
          '... the same objects as the message events');
$h = $a->history('h', before => 81, limit => 10);
is_deeply(hseqs($h), range(71, 80), 'before 81 limit 10: 71..80 '
          . '(all older than the cache)');
is_deeply($h->{messages}, evs(71 .. 80), '... the same objects as the events '
          . '(read from Postgres)');
$h = $a->history('h', before => 85, limit => 10);
is_deeply(hseqs($h), range(75, 84), 'before 85 limit 10: 75..84 (across the '
          . 'cache boundary)');
is_deeply($h->{messages}, evs(75 .. 84), '... the same objects');
$h = $a->history('h', before => 101, limit => 100);
is_deeply(hseqs($h), range(1, 100), 'before 101 limit 100: 1..100');
is_deeply($h->{messages}, \@ev, '... the same objects');
$h = $a->history('h', before => 11, limit => 100);
is_deeply(hseqs($h), range(1, 10), 'before 11 limit 100: 1..10');
$h = $a->history('h', before => 1);
is_deeply(hseqs($h), [], 'before 1: nothing');
$h = $a->history('h', before => 2, limit => 1);
is_deeply(hseqs($h), [ 1 ], 'before 2 limit 1: 1');

for my $limit (30, 7, 20, 1) {
    my (@all, $before, $pages);
    while ($pages++ < 200) {
        my $p = $a->history('h', limit => $limit,
                            defined $before ? (before => $before) : ());
        # (an error ends the paging; the check below tells)
        my $s = seqs(@{$p && $p->{messages} || []});
        last unless @$s;
        if (@$s > $limit) {
            fail("limit $limit: a page of " . scalar(@$s));
            last;
        }
        unshift @all, @{$p->{messages}};
        $before = $s->[0];
    }
    is_deeply(seqs(@all), range(1, 100),
              "paging back with limit $limit: 1..100, ascending, no "
              . "duplicate, nothing skipped");
    is_deeply(\@all, \@ev, '... the same objects as the events');
}

# ---- join since
{
    my $c = ChatTest::WS->chat($port, user => 'carol');
    my $j = $c->call({ op => 'join', room => 'h', since => 0 });
    is($j && $j->{seq}, 100, 'join since 0: joined.seq 100');
    ok(!truthy($j && $j->{truncated}), '... not truncated');
    my @m = msgs($c, 'h', 100);
    is_deeply(seqs(@m), range(1, 100), '... replays 1..100 in order (80 from '
              . 'Postgres, 20 from the cache)');
    is_deeply(\@m, \@ev, '... the same objects as the live events');
    my $ack = $a->call({ op => 'send', room => 'h', text => 'live 101' });
    is($ack && $ack->{seq}, 101, 'a new message: 101');
    my @l = $c->collect(n => 1, type => 'message', room => 'h');
    is_deeply(seqs(@l), [ 101 ], '... arrives live after the replay');
    ok($c->quiet(timeout => 0.5), '... once, nothing more');
    $a->drain(timeout => 0.2);

    for my $since (50, 79, 80, 81) {
        my $d = ChatTest::WS->chat($port, user => "since$since");
        $j = $d->call({ op => 'join', room => 'h', since => $since });
        my @m = msgs($d, 'h', 101 - $since);
        is_deeply(seqs(@m), range($since + 1, 101),
                  "join since $since: " . ($since + 1) . '..101');
        ok($d->quiet(timeout => 0.2), '... nothing more');
        $d->close_socket;
    }
    $c->close_socket;
}

# ---- a replay over 1000 messages
{
    my $b = ChatTest::WS->chat($port, user => 'bulk');
    $b->join_room('big');
    my $t0 = time;
    my @big = fill($b, 'big', 1100);
    is_deeply(seqs(@big), range(1, 1100),
              sprintf('big: 1100 messages in %.1f s', time - $t0));
    is($pg->wait_count(1100, where => "room = 'big'", timeout => 20), 1100,
       '1100 rows in Postgres');
    my %big = map { $_->{seq} => $_ } @big;

    $h = $b->history('big', before => 1000, limit => 100);
    is_deeply(hseqs($h), range(900, 999), 'big: history before 1000: '
              . '900..999');

    # since L-k for k messages after it (L: the room's last seq, one more
    # after each case): min(k, 1000) replayed, the latest ones
    my $L = 1100;
    for my $k (1100, 1001, 1000, 600) {
        my $since = $L - $k;
        $since = 0 if $k == 1100;
        my $cnt = $k > 1000 ? 1000 : $k;
        my $from = $L - $cnt + 1;
        my $c = ChatTest::WS->chat($port, user => "big$k");
        my $j = $c->call({ op => 'join', room => 'big', since => $since });
        is($j && $j->{seq}, $L, "big: join since $since: joined.seq $L");
        is(truthy($j && $j->{truncated}), $k > 1000 ? 1 : 0,
           "... $k after it: truncated "
           . ($k > 1000 ? 'true' : 'absent or false')) or diag(enc($j));
        my @m = msgs($c, 'big', $cnt);
        is(scalar @m, $cnt, "... $cnt messages");
        is_deeply(seqs(@m), range($from, $L),
                  "... $from..$L in order (the latest, up to 1000)");
        my $same = grep { $big{$_->{seq}}
                          && enc($_) eq enc($big{$_->{seq}})
                        } @m;
        is($same, scalar @m, '... the same objects as the live events');
        ok($c->quiet(timeout => 0.3), '... nothing more');
        my $ack = $b->call({ op => 'send', room => 'big',
                             text => "live after since $since" });
        is($ack && $ack->{seq}, $L + 1, 'a live message: ' . ($L + 1));
        my @l = $c->collect(n => 1, type => 'message', room => 'big');
        is_deeply(seqs(@l), [ $L + 1 ], '... follows the replay, no gap');
        $c->close_socket;
        my $own = $b->wait_for(type => 'message', room => 'big',
                               match => sub { $_[0]{seq} == $L + 1 });
        $big{$L + 1} = $own if $own;
        $b->drain(timeout => 0);
        $L++;
        # the replay reads Postgres: let the live one arrive there too
        $pg->wait_count($L, where => "room = 'big'", timeout => 20);
    }
    $b->close_socket;
}

$a->close_socket;
$n->stop;
$r->stop;
$pg->stop;
done_testing;
