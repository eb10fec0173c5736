# The Postgres part of the harness (t/lib/ChatTest/Pg.pm): a fresh cluster
# as the unprivileged user, loopback and unix socket only, the chat schema,
# psql helpers, stop and start again (data kept), kill (a crash) and start
# again, a second cluster, cleanup.  Needs no chat module.  A missing
# Postgres fails: `make deps` installs it.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

binmode STDOUT, ':encoding(UTF-8)';

ok(-x ChatTest::Pg::bin('initdb') && -x ChatTest::Pg::bin('postgres'),
   'initdb and postgres installed in ' . ChatTest::Pg::bin_dir())
    or BAIL_OUT('Postgres missing: run `make deps`');
ok(-x ChatTest::Pg::psql_bin(), 'psql installed');

my $t0 = time;
my $pg = ChatTest::Pg->start;
diag(sprintf('cluster created and started in %.1f s', time - $t0));
my $port = $pg->port;
ok($port > 0, "port $port");
is($pg->host, '127.0.0.1', 'host');
is($pg->conninfo,
   "host=127.0.0.1 port=$port dbname=chat user=postgres", 'conninfo');
ok($pg->alive, 'running');
my $pid = $pg->pid;
ok(kill(0, $pid), "postmaster pid $pid");
if ($> == 0) {
    my ($uid) = (ChatTest::Process::slurp("/proc/$pid/status") // '')
                =~ /^Uid:\s+(\d+)/m;
    is($uid, scalar getpwnam('postgres'), 'runs as the postgres user');
}
ok(-S $pg->socket_dir . "/.s.PGSQL.$port", 'unix socket in '
   . $pg->socket_dir);
is(sprintf('%o', (stat $pg->dir)[2] & 0777), '755', 'its directory is 0755');

# settings
is($pg->value('SHOW listen_addresses'), '127.0.0.1', 'loopback only');
is($pg->value('SHOW fsync'), 'off', 'fsync off');
is($pg->value('SHOW server_encoding'), 'UTF8', 'UTF8');
is($pg->value('SELECT current_database()'), 'chat', 'database chat');
is($pg->value('SELECT current_user'), 'postgres', 'user postgres');
is($pg->value("SELECT count(*) FROM pg_hba_file_rules WHERE auth_method "
              . "<> 'trust'"), 0, 'trust authentication');

# the schema
is_deeply([ $pg->psql("SELECT column_name || ' ' || data_type FROM "
                      . "information_schema.columns WHERE table_name = "
                      . "'chat_messages' ORDER BY ordinal_position") ],
          [ 'room text', 'seq bigint', 'msg_id uuid', 'user_id text',
            'body text', 'created_at timestamp with time zone' ],
          'conf/schema.sql applied: chat_messages columns');
is($pg->count, 0, 'chat_messages empty');

# psql helpers
is_deeply([ $pg->psql('SELECT 1, 2 UNION ALL SELECT 3, 4') ],
          [ '1|2', '3|4' ], 'psql: rows as "a|b" strings');
is(scalar $pg->psql('SELECT 7'), 7, 'psql in scalar context: the first row');
is_deeply([ $pg->rows("SELECT 'a', '', 'c'") ], [ [ 'a', '', 'c' ] ],
          'rows: split fields');
is($pg->value('SELECT 41 + 1, 0'), 42, 'value: the first field');
is_deeply([ $pg->psql('SELECT 1 WHERE false') ], [], 'no rows: empty list');
is_deeply([ $pg->psql("SELECT 1; SELECT 2") ], [ 1, 2 ],
          'several statements');
my $odd = "pipe | quote ' dq \" bs \\ nl \n tab \t ü € 🎉";
{
    my $q = $odd;
    $q =~ s/'/''/g;
    my $rows = $pg->query("SELECT '$q'::text AS t, 5 AS n");
    is_deeply($rows, [ { t => $odd, n => 5 } ],
              'query: any text through json_agg, decoded');
    is_deeply($pg->query('SELECT 1 AS x WHERE false'), [], 'query: no rows');
}
ok(!eval { $pg->psql('SELECT no_such_column'); 1 }, 'psql dies on an error');
like($@, qr/no_such_column/, '... with the message');
my ($rows, $err) = $pg->try_psql('SELEC 1');
ok(!$rows && $err =~ /syntax error/, 'try_psql returns the error');

# chat_messages rows, messages() and wait_count
$pg->psql(q{INSERT INTO chat_messages VALUES ('r1', 1,
  '11111111-2222-4333-8444-555555555555', 'alice', 'héllo',
  to_timestamp(1700000000123 / 1000.0))});
is_deeply($pg->messages, [ {
    room => 'r1', seq => 1, msg_id => '11111111-2222-4333-8444-555555555555',
    user_id => 'alice', body => 'héllo', ts => 1700000000123 } ],
    'messages(): the row, created_at in ms');
is($pg->count(where => "room = 'r1'"), 1, 'count(where)');
($rows, $err) = $pg->try_psql(q{INSERT INTO chat_messages VALUES ('r1', 2,
  '11111111-2222-4333-8444-555555555555', 'bob', 'dup', now())});
like($err // '', qr/duplicate key/, 'msg_id is unique');
($rows, $err) = $pg->try_psql(q{INSERT INTO chat_messages VALUES ('r1', 1,
  '21111111-2222-4333-8444-555555555555', 'bob', 'dup', now())});
like($err // '', qr/duplicate key/, '(room, seq) is the primary key');
$t0 = time;
is($pg->wait_count(1), 1, 'wait_count: already there');
ok(time - $t0 < 1, '... at once');
$t0 = time;
is($pg->wait_count(2, timeout => 0.5), 1, 'wait_count: times out');
ok(time - $t0 < 2, sprintf('... bounded (%.1f s)', time - $t0));
{
    # a row inserted later is seen
    my $child = fork;
    if (!$child) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        sleep 0.5;
        { exec ChatTest::Pg::psql_bin(), '-X', '-q', '-h', '127.0.0.1',
               '-p', $port, '-U', 'postgres', '-d', 'chat', '-c',
               q{INSERT INTO chat_messages VALUES ('r1', 2,
                 '31111111-2222-4333-8444-555555555555', 'carol', 'later',
                 now())}; }
        POSIX::_exit(127);
    }
    is($pg->wait_count(2, timeout => 10), 2, 'wait_count: sees a new row');
    waitpid $child, 0;
}

# stop, start again: same port, data kept
$t0 = time;
ok($pg->stop, 'stop');
diag(sprintf('fast shutdown in %.2f s', time - $t0));
ok(!$pg->alive && !kill(0, $pid), 'stopped');
is_deeply([ $pg->cluster_pids ], [], 'no process of the cluster left');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                          Proto => 'tcp'), 'port closed');
($rows, $err) = $pg->try_psql('SELECT 1');
ok(!$rows && defined $err, "psql while stopped fails ($err)");
is($pg->wait_count(1, timeout => 0.3), 0, 'wait_count while stopped: 0');
ok($pg->stop, 'stop twice is harmless');
$t0 = time;
$pg->start;
diag(sprintf('started again in %.2f s', time - $t0));
ok($pg->alive, 'started again');
is($pg->port, $port, 'same port');
isnt($pg->pid, $pid, 'new postmaster');
is($pg->count, 2, 'data kept');
ok(!eval { $pg->start; 1 }, 'start while running dies');

# kill: a crash; start again recovers the committed data
$pg->psql(q{INSERT INTO chat_messages VALUES ('r2', 1,
  '41111111-2222-4333-8444-555555555555', 'dave', 'before the kill',
  now())});
# a connection open at the kill (its backend is orphaned)
my $holder = fork;
if (!$holder) {
    open STDOUT, '>', '/dev/null';
    open STDERR, '>', '/dev/null';
    { exec ChatTest::Pg::psql_bin(), '-X', '-q', '-h', '127.0.0.1', '-p',
           $port, '-U', 'postgres', '-d', 'chat', '-c',
           'SELECT pg_sleep(30)'; }
    POSIX::_exit(127);
}
ok(ChatTest::wait_until(sub { $pg->backends >= 1 }, 5),
   'a client connection is open');
my @before = $pg->cluster_pids;
ok(@before >= 3, scalar(@before) . ' processes in the cluster');
$pid = $pg->pid;
$t0 = time;
ok($pg->kill, 'kill');
diag(sprintf('killed, backends gone in %.2f s', time - $t0));
ok(!$pg->alive && !kill(0, $pid), 'postmaster gone');
is_deeply([ $pg->cluster_pids ], [], 'backends gone');
waitpid $holder, 0;
$t0 = time;
$pg->start;
diag(sprintf('crash recovery in %.2f s', time - $t0));
ok($pg->alive, 'started after the kill');
is($pg->count, 3, 'committed rows survive the crash');
is($pg->value("SELECT body FROM chat_messages WHERE room = 'r2'"),
   'before the kill', '... the last one too');
ok($pg->restart && $pg->alive && $pg->count == 3, 'restart');
like($pg->log, qr/database system is ready/, 'log');

# lock_table: INSERTs wait, SELECTs go on, the waiters can be terminated
{
    my $lock = $pg->lock_table('chat_messages');
    ok($lock, 'chat_messages locked');
    my $ins = fork;
    if (!$ins) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        { exec ChatTest::Pg::psql_bin(), '-X', '-q', '-h', '127.0.0.1',
               '-p', $port, '-U', 'postgres', '-d', 'chat', '-c',
               q{INSERT INTO chat_messages VALUES ('r3', 1,
                 '51111111-2222-4333-8444-555555555555', 'erin', 'waits',
                 now())}; }
        POSIX::_exit(127);
    }
    ok(ChatTest::wait_until(sub { $pg->lock_waiters == 1 }, 5),
       'an INSERT waits for the lock');
    is($pg->count, 3, 'SELECT goes on');
    is($pg->terminate_lock_waiters, 1, 'the waiting INSERT terminated');
    waitpid $ins, 0;
    isnt($?, 0, '... its client failed');
    ok($lock->release, 'released');
    is($pg->count, 3, 'nothing inserted');
    $lock = $pg->lock_table('chat_messages');
    $ins = fork;
    if (!$ins) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        { exec ChatTest::Pg::psql_bin(), '-X', '-q', '-h', '127.0.0.1',
               '-p', $port, '-U', 'postgres', '-d', 'chat', '-c',
               q{INSERT INTO chat_messages VALUES ('r3', 1,
                 '51111111-2222-4333-8444-555555555555', 'erin', 'waits',
                 now())}; }
        POSIX::_exit(127);
    }
    ok(ChatTest::wait_until(sub { $pg->lock_waiters == 1 }, 5),
       'another INSERT waits');
    undef $lock;
    waitpid $ins, 0;
    is($?, 0, 'the lock going away lets it through');
    is($pg->count, 4, '... inserted');
}

# worker_pid_of: which nginx worker holds a connection (nginx without the
# chat module, a keep-alive connection)
{
    my $n = ChatTest->start(no_module => 1, workers => 2,
                            listen_opts => 'reuseport',
                            server => 'location / { return 204; }');
    my %seen;
    for (1 .. 20) {
        my $fh = ChatTest::tcp_connect($n->port);
        ChatTest::write_all($fh, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5);
        my ($st) = ChatTest::read_response($fh);
        my $pid = ChatTest::Pg::worker_pid_of($n, bless { fh => $fh },
                                              'ChatTest::WS');
        $seen{$pid // 'none'}++;
    }
    my %w = map { $_ => 1 } $n->worker_pids;
    ok(!$seen{none} && !grep({ !$w{$_} } keys %seen),
       'worker_pid_of: a worker pid for each connection ('
       . join(', ', map { "$_: $seen{$_}" } sort keys %seen) . ')');
    $n->stop;
}

# a second cluster at the same time
my $pg2 = ChatTest::Pg->start(no_db => 1);
isnt($pg2->port, $pg->port, 'two clusters, two ports');
ok(!eval { $pg2->psql('SELECT 1'); 1 }, 'no_db: no database chat');
is($pg2->value('SELECT 1', dbname => 'postgres'), 1,
   'database postgres answers');
my $dir = $pg2->dir;
my @p2 = $pg2->cluster_pids;
ok(@p2 >= 1, 'its processes');
undef $pg2;
ok(!grep({ ChatTest::Process::pid_alive($_) } @p2),
   'DESTROY stops every process of it');
ok($ENV{CHAT_TEST_KEEP} || !-d $dir, 'DESTROY removes its directory');
ok($pg->alive && $pg->count == 4, 'the first one is untouched');

# the END block stops what is still running ($pg)
done_testing;
