# The process base of the harness (t/lib/ChatTest/Process.pm): bounded
# runs and their exit codes, spawn's redirections and environment, a
# child server started until ready (or failing), the registry, cleanup of
# a server's directory, and the order of the END block: nginx first, then
# the servers it used.  Needs no chat module.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest::Process qw(spawn wait_child run slurp write_file tempdir
                         pid_alive children_of);
use Time::HiRes qw(time sleep);

my $dir = tempdir('ngx_chat_proc_XXXXXX');
ok(-d $dir && $dir =~ m{^/}, "tempdir: an absolute directory ($dir)");
is(sprintf('%o', (stat $dir)[2] & 0777), '755', '... mode 0755');
my $r = tempdir('ngx_chat_proc_XXXXXX', reachable => 1);
ok(-d $r, 'tempdir reachable => 1');
rmdir $r;

# run: exit codes, output, the timeout
my ($rc, $out) = run(cmd => [ '/bin/sh', '-c', 'echo out; echo err >&2; exit 3' ],
                     out => "$dir/a.out", timeout => 10);
is($rc, 3, 'run: the exit code');
is($out, "out\nerr\n", 'run: stdout and stderr in the output file');
($rc, $out) = run(cmd => [ '/bin/sh', '-c', 'echo out; echo err >&2' ],
                  out => "$dir/b.out", err => "$dir/b.err", timeout => 10);
is($out, "out\n", 'run: err => a file of its own: stdout alone');
is(slurp("$dir/b.err"), "err\n", '... and stderr there');
($rc) = run(cmd => [ '/bin/sh', '-c', 'kill -9 $$' ], out => "$dir/c.out",
            timeout => 10);
is($rc, 128 + 9, 'run: a signal is 128 + its number');
my $t0 = time;
($rc) = run(cmd => [ '/bin/sleep', '30' ], out => "$dir/d.out",
            timeout => 0.3);
is($rc, -1, 'run: -1 after the timeout');
ok(time - $t0 < 5, sprintf('... SIGKILLed then (%.1f s)', time - $t0));
($rc) = run(cmd => [ '/nonexistent/binary' ], out => "$dir/e.out",
            timeout => 10);
is($rc, 127, 'run: a command that cannot be run: 127');
$ENV{CHAT_PROC_GONE} = 'here';
($rc, $out) = run(cmd => [ '/bin/sh', '-c',
                           'echo "$CHAT_PROC_SET ${CHAT_PROC_GONE-unset}"' ],
                  env => { CHAT_PROC_SET => 'set', CHAT_PROC_GONE => undef },
                  out => "$dir/f.out", timeout => 10);
is($out, "set unset\n", 'run: env sets and removes variables (in the '
   . 'child only)');
is($ENV{CHAT_PROC_GONE}, 'here', '... not in the test');
write_file("$dir/g.out", "old\n");
($rc, $out) = run(cmd => [ '/bin/echo', 'new' ], out => "$dir/g.out",
                  append => 1, timeout => 10);
is($out, "old\nnew\n", 'run: append => 1');
($rc, $out) = run(cmd => [ '/bin/pwd' ], out => "$dir/h.out", timeout => 10,
                  setup => sub { chdir '/' });
is($out, "/\n", 'run: setup runs in the child before the exec');

# spawn, wait_child, pid_alive, children_of
my $pid = spawn(cmd => [ '/bin/sleep', '30' ], out => "$dir/i.out",
                setpgrp => 1);
ok(pid_alive($pid), 'spawn: the child runs');
is_deeply([ children_of($$) ], [ $pid ], 'children_of: the test has it');
# (the child calls setpgrp after the fork)
my $pg_deadline = time + 5;
sleep 0.01 while getpgrp($pid) != $pid && time < $pg_deadline;
is(getpgrp($pid), $pid, 'setpgrp => 1: a process group of its own');
kill 'TERM', $pid;
is(wait_child($pid, 5), 128 + 15, 'wait_child: SIGTERM');
ok(!pid_alive($pid), 'pid_alive: reaped, gone');

# a server: _start_child until ready, or dying with its message
{
    package Fake;
    use parent -norequire, 'ChatTest::Process';
    sub _dir_label { 'fake dir' }
}
my $f = bless { dir => tempdir('ngx_chat_proc_XXXXXX') }, 'Fake';
my $tries = 0;
ok($f->_start_child(cmd => [ '/bin/sleep', '30' ], out => "$f->{dir}/out",
                    timeout => 5,
                    ready => sub { return (++$tries >= 3, 'not yet') },
                    exited => sub { 'exited' },
                    timed_out => sub { "timed out: $_[0]" }),
   '_start_child: returns once ready');
is($tries, 3, '... asked until ready said so');
ok($f->alive && pid_alive($f->pid), '... the child runs');
my $child = $f->pid;
ok($f->_signal_wait('KILL', 5), '_signal_wait: gone within the wait');
ok(!$f->alive && !defined $f->pid, '... reaped');
is($f->{last_status} & 127, 9, '... its status kept');

ok(!eval {
       $f->_start_child(cmd => [ '/bin/sh', '-c', 'exit 2' ],
                        out => "$f->{dir}/out", timeout => 5,
                        ready => sub { (0, 'no') },
                        exited => sub { "exited: $f->{last_status}" },
                        timed_out => sub { 'timed out' });
       1 }, '_start_child: dies when the child exits first');
like($@, qr/^exited: 512 /, '... with exited->() (its status kept)')
    or diag($@);
my $n = 0;
ok(!eval {
       $f->_start_child(cmd => [ '/bin/sh', '-c', 'exit 2' ],
                        out => "$f->{dir}/out", timeout => 0.5,
                        ready => sub { (0, 'no') },
                        retry => sub { ++$n },
                        exited => sub { 'exited' },
                        timed_out => sub { 'timed out' });
       1 }, '_start_child: retry, until the timeout');
ok($n >= 2, "... tried again ($n times)");
$t0 = time;
ok(!eval {
       $f->_start_child(cmd => [ '/bin/sleep', '30' ],
                        out => "$f->{dir}/out", timeout => 0.3,
                        ready => sub { (0, 'never') },
                        exited => sub { 'exited' },
                        timed_out => sub { "timed out: $_[0]" });
       1 }, '_start_child: dies at the timeout');
like($@, qr/^timed out: never/, '... with timed_out->(why not)');
ok(!$f->alive, '... the child killed (_kill_all)');

# cleanup: the directory goes, or is kept (and named)
my $fdir = $f->{dir};
undef $f;
ok(!-d $fdir || $ENV{CHAT_TEST_KEEP}, 'DESTROY removes the directory');
my $k = bless { dir => tempdir('ngx_chat_proc_XXXXXX') }, 'Fake';
{
    my $tb = Test::More->builder;
    my $fh = $tb->failure_output;
    $tb->failure_output(\my $said);
    $k->_dispose_dir(keep => 1);
    $tb->failure_output($fh);
    ok(-d $k->{dir} && $k->{kept}, '_dispose_dir(keep => 1) keeps it');
    is($said, "# fake dir kept: $k->{dir}\n", '... and says where');
}
my $kdir = $k->{dir};
undef $k;
ok(-d $kdir, '... also when the object goes away');
system('rm', '-rf', $kdir);

# a forked child cleans up nothing
{
    my $c = bless { dir => tempdir('ngx_chat_proc_XXXXXX') }, 'Fake';
    my $p = fork // die "fork: $!";
    if (!$p) {
        undef $c;
        POSIX::_exit(0);
    }
    waitpid $p, 0;
    ok(-d $c->{dir}, "a forked child's copy going away leaves the directory");
}

# the registry and the END order, in a perl of its own: servers (order 1)
# after nginx (order 0), each in start order; a weak registration does
# not keep an object alive, but an nginx keeps the servers started before
# it: perl frees the file's lexicals ($s1, $s2) before the END blocks
{
    my $script = "$dir/end.pl";
    write_file($script, <<'EOF');
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest::Process;
$| = 1;
{
    package Server;
    use parent -norequire, 'ChatTest::Process';
    sub _at_exit { print "server $_[0]{name}\n" }
    sub _cleanup { }
    package Nginx;
    use parent -norequire, 'ChatTest::Process';
    sub _exit_order { 0 }
    sub _at_exit { print "nginx $_[0]{name}\n" }
    sub _cleanup { }
}
my $s1 = bless({ name => 1 }, 'Server')->_register(weak => 1);
my $n1 = bless({ name => 1 }, 'Nginx')->_register;
my $s2 = bless({ name => 2 }, 'Server')->_register(weak => 1);
bless({ name => 'dropped' }, 'Server')->_register(weak => 1);
bless({ name => 2 }, 'Nginx')->_register;
my $n3 = bless({ name => 3 }, 'Nginx')->_register;
$n3->_unregister;
print 'running: ', join(' ', map { ref($_) . " $_->{name}" }
                             ChatTest::Process::running()), "\n";
print 'nginx: ', scalar(ChatTest::Process::running('Nginx')), "\n";
plan skip_all => 'only the END block';
EOF
    my ($rc, $out) = run(cmd => [ $^X, $script ], out => "$dir/end.out",
                         timeout => 30);
    is($out, "running: Server 1 Nginx 1 Server 2 Nginx 2\n"
             . "nginx: 2\n1..0 # SKIP only the END block\n"
             . "nginx 1\nnginx 2\nserver 1\nserver 2\n",
       'END: nginx first, then the servers, each in start order; a weak '
       . 'registration gone with its object, an unregistered one not '
       . 'stopped') or diag("exit $rc");
}

system('rm', '-rf', $dir);
done_testing;
