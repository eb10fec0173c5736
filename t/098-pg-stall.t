# chat_postgres_timeout: a Postgres that stops answering.
#   1. The whole cluster SIGSTOPped for 8 s (a frozen host, a partition
#      without a reset): history and replay older than the cache answer
#      "unavailable" within the timeout and a second; sends are acked all
#      along (acks do not wait for Postgres); after SIGCONT the writers
#      catch up and every acked message is in Postgres, once.
#   2. A lock that blocks the writers' INSERT: their connections are
#      dropped and reopened after the timeout, the batch is tried again,
#      reads go on meanwhile; once the lock goes every acked message is in
#      Postgres, once.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs hseqs);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $T = 2;    # chat_postgres_timeout, in seconds

my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
}
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, cache => 5, listen_opts => 'reuseport',
    server => $LOC, http => "chat_postgres_timeout ${T}s;\n");
my $port = $n->port;
my @pids = $n->worker_pids;

# whatever happens, Postgres runs again before the harness stops it
my @stopped;
sub resume {
    kill 'CONT', @stopped, $pg->cluster_pids if @stopped;
    @stopped = ();
}
END { resume() }

sub stalls {
    my @l = $n->error_log =~ /chat: postgres: no answer in \d+ ms/g;
    return scalar @l;
}

my $ws = ChatTest::WS->chat($port, user => 'sender');
$ws->join_room('ps');
my %acked;
sub send_some {
    my ($tag, $count) = @_;
    my $ok = 0;
    for my $i (1 .. $count) {
        my $a = $ws->call({ op => 'send', room => 'ps', text => "$tag $i" });
        next unless $a && $a->{type} eq 'ack';
        $acked{$a->{seq}} = "$tag $i";
        $ok++;
    }
    return $ok;
}

# every acked message in Postgres, once
sub all_written {
    my ($timeout) = @_;
    my @missing;
    ChatTest::wait_until(sub {
        my %rows;
        $rows{$_->{seq}}++ for @{$pg->messages(where => "room = 'ps'")};
        @missing = grep { ($rows{$_} // 0) != 1 } keys %acked;
        return !@missing && keys %rows == keys %acked;
    }, $timeout);
    return !@missing;
}

is(send_some('pre', 20), 20, '20 messages acked');
ok(all_written(20), '... and written to Postgres');

# ---------------------------------------------------------------- 1. stopped
{
    push @stopped, $pg->pid;
    kill 'STOP', $pg->pid or BAIL_OUT("cannot SIGSTOP postgres: $!");
    push @stopped, grep { $_ != $pg->pid } $pg->cluster_pids;
    kill 'STOP', @stopped;
    my $t0 = time;

    my $h = $ws->call({ op => 'history', room => 'ps', before => 5 },
                      timeout => 3 * $T + 5);
    my $took = time - $t0;
    is($h && $h->{code}, 'unavailable',
       'Postgres stopped: history older than the cache -> unavailable')
        or diag(enc($h));
    ok($took <= $T + 1, sprintf('... %.2f s after SIGSTOP (timeout %d s)',
                                $took, $T));
    diag(sprintf('SIGSTOP to "unavailable": %.2f s', $took));

    my $c = ChatTest::WS->chat($port, user => 'late');
    my $t1 = time;
    my $j = $c->call({ op => 'join', room => 'ps', since => 0 },
                     timeout => 3 * $T + 5);
    is($j && $j->{code}, 'unavailable', 'a replay from Postgres -> '
       . 'unavailable') or diag(enc($j));
    ok(time - $t1 <= $T + 1, sprintf('... in %.2f s', time - $t1));

    $h = $ws->call({ op => 'history', room => 'ps', limit => 3 });
    is_deeply(hseqs($h), [ 18, 19, 20 ], 'history within the cache works');

    my $t2 = time;
    is(send_some('stopped', 10), 10, 'sends are acked meanwhile');
    ok(time - $t2 < $T, sprintf('... at once (%.2f s for 10)', time - $t2));
    ok(ChatTest::wait_until(sub { stalls() >= 2 }, 2 * $T + 2),
       'the stalled queries were given up: ' . stalls());

    sleep 0.1 while time - $t0 < 8;
    resume();

    ok(all_written(25), 'SIGCONT: every acked message is in Postgres, once '
       . '(' . scalar(keys %acked) . ')');
    $h = $ws->call({ op => 'history', room => 'ps', before => 5 });
    is_deeply(hseqs($h), [ 1 .. 4 ], 'history from Postgres works again')
        or diag(enc($h));
    $j = $c->call({ op => 'join', room => 'ps', since => 0 });
    is($j && $j->{type}, 'joined', 'the replay works again') or diag(enc($j));
    my @m = $c->collect(n => 30, type => 'message', room => 'ps');
    is_deeply(seqs(@m), [ 1 .. 30 ], '... all of it');
}

# ---------------------------------------------------------------- 2. a lock
{
    my $before = stalls();
    my $lock = $pg->lock_table('chat_messages');
    is(send_some('locked', 10), 10, 'the INSERTs are blocked: sends are '
       . 'acked');
    ok(ChatTest::wait_until(sub { stalls() > $before }, 2 * $T + 3),
       'the INSERT is given up after the timeout');
    my $h = $ws->call({ op => 'history', room => 'ps', before => 5 },
                      timeout => 3 * $T + 5);
    is_deeply(hseqs($h), [ 1 .. 4 ], 'reads go on');
    sleep $T;
    $lock->release;
    ok(all_written(20), 'the lock is gone: every acked message is in '
       . 'Postgres, once (' . scalar(keys %acked) . ')');
}

is_deeply([ $n->worker_pids ], \@pids, 'no worker crashed');
$n->stop;
done_testing();
