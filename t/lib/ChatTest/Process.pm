package ChatTest::Process;

# The process base of the harness.  Functions that run child processes
# (bounded) and read /proc and files, and a base class for the servers a
# test file runs (nginx in ChatTest, redis-server in ChatTest::Redis, the
# postmaster in ChatTest::Pg): a registry of them, their temporary
# directory, and one END block that stops them in order, nginx first with
# its log checks, then the servers it talked to, so that nginx never
# watches its Redis or Postgres go away while it shuts down.  Perl core
# modules only.
#
#   my $pid = spawn(cmd => [...], out => $file, err => $file, append => 1,
#                   env => { K => 'v', GONE => undef }, setpgrp => 1,
#                   setup => sub { ... in the child, before exec });
#   my $rc = wait_child($pid, $timeout)    exit code, 128 + signal, or -1
#                                          (SIGKILLed after $timeout)
#   my ($rc, $output) = run(timeout => 30, cmd => [...], out => $file, ...)
#   slurp($path), write_file($path, $data), tmp_base,
#   tempdir('ngx_chat_x_XXXXXX', reachable => 1)
#   proc_stat($pid), pid_alive($pid), children_of($ppid)
#
#   ChatTest::Process::owner        true but in forked children
#
#   The base class (use parent -norequire, 'ChatTest::Process'); every
#   object is cleaned up (_cleanup) when it goes away:
#   $self->_register(weak => 1)     stopped or cleaned up at exit; weak:
#                                   the registry does not keep it alive;
#                                   the servers it may use are held until
#   $self->_release_uses            (nginx: once it has stopped)
#   $self->_unregister;  ChatTest::Process::running('ChatTest')
#   $self->_start_child(cmd => ..., ready => sub {...}, ...)  $self->{pid}
#   $self->dir, $self->pid, $self->alive   (the child's)
#   $self->_reap($wait)             true while $self->{pid} runs
#   $self->_signal_wait($sig, $wait)   true once it exited
#   $self->_dispose_dir(keep => 1)  $self->{dir}: removed, or kept and
#                                   named (always under CHAT_TEST_KEEP)
#   A subclass may override _kill_all (default: SIGKILL $self->{pid}),
#   _at_exit (default: _cleanup), _exit_order (default 1; nginx: 0) and
#   _dir_label.

use strict;
use warnings;

# Loaded first so that Test::Builder's END block runs after ours.
use Test::More ();

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Path qw(remove_tree);
use File::Temp ();
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(spawn wait_child run slurp write_file tmp_base tempdir
                    proc_stat pid_alive children_of);

my @RUNNING;        # registered objects; weak references where asked
my $OWNER_PID = $$; # forked children clean up nothing


# ---------------------------------------------------------------- children

# Forks and execs $o{cmd} (an array ref) with stdin from /dev/null and
# stdout to $o{out} (appended with append => 1), stderr to $o{err} or with
# stdout.  env: variables to set (undef: to remove); setpgrp: a process
# group of its own, so that a terminal's Ctrl-C reaches only the test,
# which cleans up; setup: code run in the child last, before the exec.
# Returns the pid.
sub spawn {
    my (%o) = @_;
    my @cmd = @{$o{cmd}};
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    return $pid if $pid;

    open STDIN, '<', '/dev/null';
    open STDOUT, $o{append} ? '>>' : '>', $o{out} or POSIX::_exit(126);
    if (defined $o{err}) {
        open STDERR, '>', $o{err} or POSIX::_exit(126);
    } else {
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
    }
    setpgrp(0, 0) if $o{setpgrp};
    for my $k (keys %{$o{env} || {}}) {
        if (defined $o{env}{$k}) {
            $ENV{$k} = $o{env}{$k};
        } else {
            delete $ENV{$k};
        }
    }
    $o{setup}->() if $o{setup};
    exec { $cmd[0] } @cmd or POSIX::_exit(127);
}

# Waits for $pid to exit; after $timeout seconds it is SIGKILLed.  Returns
# its exit code, 128 + the signal that ended it, or -1 on the timeout.
sub wait_child {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r < 0) {
            return $? & 127 ? 128 + ($? & 127) : $? >> 8;
        }
        if (time > $deadline) {
            CORE::kill 'KILL', $pid;
            waitpid($pid, 0);
            return -1;
        }
        sleep 0.005;
    }
}

# spawn(%o), then wait_child for up to $o{timeout} seconds.  Returns (exit
# code or -1, what was written to $o{out}).
sub run {
    my (%o) = @_;
    my $rc = wait_child(spawn(%o), $o{timeout});
    return ($rc, slurp($o{out}) // '');
}


# ---------------------------------------------------------------- files

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d;
}

sub write_file {
    my ($path, $data) = @_;
    open my $fh, '>', $path or die "write $path: $!";
    print {$fh} $data;
    close $fh or die "close $path: $!";
}

sub tmp_base {
    my $d = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    return $d;
}

# A new directory (absolute, mode 0755) from a File::Temp template, under
# tmp_base.  reachable => 1: under tmp_base only if every parent lets
# others through (a server run as another user must reach it), else under
# /tmp.
sub tempdir {
    my ($template, %o) = @_;
    my $base = tmp_base();
    if ($o{reachable}) {
        my $p = abs_path($base) // '/tmp';
        my $ok = 1;
        while (1) {
            my @st = stat $p;
            $ok = 0 unless @st && ($st[2] & 0001);
            last if $p eq '/';
            $p = $p =~ m{^(.*)/[^/]*$} && length $1 ? $1 : '/';
        }
        $base = '/tmp' unless $ok;
    }
    my $dir = File::Temp::tempdir($template, DIR => $base, CLEANUP => 0);
    $dir = abs_path($dir);
    chmod 0755, $dir;
    return $dir;
}


# ---------------------------------------------------------------- /proc

# { state, ppid } of a process, or undef when there is none.
sub proc_stat {
    my ($pid) = @_;
    my $s = slurp("/proc/$pid/stat");
    return undef unless defined $s;
    # pid (comm) state ppid ...
    return undef unless $s =~ /\)\s+(\S)\s+(\d+)/;
    return { state => $1, ppid => $2 };
}

# True while $pid exists and is no zombie (also for processes that are
# not our children, which kill 0 cannot tell from zombies).
sub pid_alive {
    my ($pid) = @_;
    return 0 unless $pid;
    my $st = proc_stat($pid);
    return 0 unless $st;
    return 0 if $st->{state} eq 'Z' || $st->{state} eq 'X';
    return 1;
}

# The live children of $ppid (e.g. an nginx master's workers), sorted.
sub children_of {
    my ($ppid) = @_;
    my @pids;
    opendir my $d, '/proc' or return ();
    for my $e (readdir $d) {
        next unless $e =~ /^\d+$/;
        my $st = proc_stat($e) or next;
        next unless $st->{ppid} == $ppid;
        next if $st->{state} eq 'Z' || $st->{state} eq 'X';
        push @pids, $e + 0;
    }
    closedir $d;
    return sort { $a <=> $b } @pids;
}


# ---------------------------------------------------------------- base

# True in the process that loaded the harness (not in forked children).
sub owner { $$ == $OWNER_PID }

# The servers already running that go after this one at exit (nginx: the
# Redis and Postgres it may use) are held until _release_uses, so that
# they outlive it also when the test's variables go: perl frees a file's
# lexicals before the END blocks run.
sub _register {
    my ($self, %o) = @_;
    $self->{uses} = [ grep { $_->_exit_order > $self->_exit_order }
                      running() ];
    push @RUNNING, $self;
    weaken($RUNNING[-1]) if $o{weak};
    return $self;
}

sub _release_uses { delete $_[0]{uses} }

# (splice, not a copy: a copied weak reference would be a strong one)
sub _unregister {
    my ($self) = @_;
    for my $i (reverse 0 .. $#RUNNING) {
        splice @RUNNING, $i, 1
            if !defined $RUNNING[$i] || $RUNNING[$i] == $self;
    }
}

# The registered objects of $class (all without one), oldest first.
sub running {
    my ($class) = @_;
    return grep { defined && (!defined $class || $_->isa($class)) }
           @RUNNING;
}

# Starts $self->{pid} (spawn options: cmd, out, err, append, env, setpgrp,
# setup) and polls ready->() every poll seconds (default 0.02) until it
# returns true; ready returns (ok, why not).  If the child exits first:
# when retry->() says so and the timeout has not passed, after 0.2 s it is
# started again, else this dies with exited->().  After timeout seconds
# everything is killed (_kill_all) and it dies with timed_out->(why not).
sub _start_child {
    my ($self, %o) = @_;
    my %spawn = map { $_ => $o{$_} }
                grep { exists $o{$_} } qw(cmd out err append env setpgrp
                                          setup);
    my $deadline = time + $o{timeout};
    while (1) {
        $self->{pid} = spawn(%spawn);
        while (1) {
            if (!$self->_reap(0)) {
                last if $o{retry} && time < $deadline && $o{retry}->();
                die $o{exited}->();
            }
            my ($ok, $why) = $o{ready}->();
            return 1 if $ok;
            if (time > $deadline) {
                $self->_kill_all;
                die $o{timed_out}->($why // '');
            }
            sleep $o{poll} // 0.02;
        }
        sleep 0.2;
    }
}

# False once the child $self->{pid} has exited (and reaps it, its status
# in $self->{last_status}); $wait: seconds to wait for that.
sub _reap {
    my ($self, $wait) = @_;
    my $pid = $self->{pid} or return 0;
    my $deadline = time + ($wait // 0);
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || $r < 0) {
            $self->{pid} = undef;
            $self->{last_status} = $?;
            return 0;
        }
        return 1 if time >= $deadline;
        sleep 0.01;
    }
}

# Sends $sig to the child; true once it exited within $wait seconds.
sub _signal_wait {
    my ($self, $sig, $wait) = @_;
    return 1 unless $self->{pid};
    CORE::kill $sig, $self->{pid};
    return !$self->_reap($wait);
}

sub dir   { $_[0]{dir} }
sub pid   { $_[0]{pid} }
sub alive { $_[0]->_reap(0) }

sub _kill_all {
    my ($self) = @_;
    $self->_signal_wait('KILL', 5) if $self->{pid};
}

sub _dir_label { 'server dir' }

# Removes $self->{dir}, or keeps it (keep => 1, or CHAT_TEST_KEEP) and
# says where it is, once.
sub _dispose_dir {
    my ($self, %o) = @_;
    my $dir = $self->{dir};
    return unless defined $dir && -d $dir && !$self->{kept};
    if ($o{keep} || $ENV{CHAT_TEST_KEEP}) {
        $self->{kept} = 1;
        Test::More::diag($self->_dir_label . " kept: $dir");
    } else {
        remove_tree($dir);
    }
}

# Everything of the server killed, its directory gone (or kept): when the
# object goes away and at exit.  Never in a forked child.
sub _cleanup {
    my ($self) = @_;
    return unless owner();
    $self->_kill_all;
    $self->_dispose_dir;
}

sub _at_exit { $_[0]->_cleanup }

sub _exit_order { 1 }

sub DESTROY {
    my ($self) = @_;
    local ($., $@, $!, $^E, $?);
    $self->_cleanup;
}

END {
    if (owner()) {
        my $rc = $?;
        my @all = running();
        for my $order (0, 1) {
            $_->_at_exit for grep { $_->_exit_order == $order } @all;
        }
        $? = $rc;
    }
}

1;
