package ChatTest::Browser;

# Headless Chromium tests: Debian's /usr/bin/chromium driven by
# playwright-core (pinned in t/browser/package.json, installed by `npm ci`
# from t/browser/package-lock.json), from a node script of t/browser/ that
# the test file runs.  The script reports one JSON object per line on its
# stdout, which become Test::More checks here, and asks the test file for
# actions (stop nginx, start it again, reload) that it waits for:
#
#   {"ok":true,"name":"..."}                 ok(1, name)
#   {"ok":false,"name":"...","diag":"..."}   ok(0, name) with the diag
#   {"skip":"why","name":"..."}              a skipped check
#   {"note":"..."}                           note(...)
#   {"action":"stop","arg":...}              runs $actions{stop}->($arg),
#                                            answers {"action":"stop",
#                                            "result":...} on its stdin
#   {"done":true}                            the script's last line
#
#   ChatTest::Browser::need();   skip_all, loudly, without node, npm or
#                                chromium; `npm ci` when node_modules lacks
#                                playwright-core
#   my $dir = ChatTest::Browser::out_dir('111-browser-demo');
#   ChatTest::Browser::run('demo.mjs', args => { base => $url, out => $dir },
#                          actions => { reload => sub { ... } },
#                          timeout => 120);
#
# Environment: CHROMIUM_BIN (default /usr/bin/chromium), NODE_BIN (default
# node on PATH), CHAT_TEST_OUT (where screenshots go; default
# build/test-out/ of the repository, one directory per test file).

use strict;
use warnings;

use ChatTest ();
use ChatTest::Process qw(slurp);
use Fcntl qw(:flock);
use File::Path qw(make_path);
use File::Temp ();
use IO::Select;
use IPC::Open3 qw(open3);
use Symbol qw(gensym);
use Test::More ();
use Time::HiRes qw(time);

my $DIR = ChatTest::repo_root() . '/t/browser';

sub chromium_bin { $ENV{CHROMIUM_BIN} || '/usr/bin/chromium' }

sub _which {
    my ($name) = @_;
    return $name if $name =~ m{/} && -x $name;
    for my $d (split /:/, $ENV{PATH} // '') {
        return "$d/$name" if -x "$d/$name";
    }
    return undef;
}

sub node_bin { _which($ENV{NODE_BIN} || 'node') }

sub dir { $DIR }

# skip_all when a tool is missing, saying so on stderr too (a skipped
# browser test is easy to overlook in prove's summary); make deps
# installs them all
sub need {
    my @missing;
    push @missing, 'node' unless node_bin();
    push @missing, 'npm' unless _which('npm');
    push @missing, chromium_bin() unless -x chromium_bin();
    if (@missing) {
        my $why = 'browser tests need ' . join(', ', @missing)
                . ' (`make deps` or `make browser-deps` installs them)';
        print STDERR "\n*** SKIPPED: $why ***\n";
        Test::More::plan(skip_all => $why);
    }
    my $have = "$DIR/node_modules/playwright-core/package.json";
    return if -f $have;
    # one npm ci at a time (prove -j: it empties node_modules first)
    open(my $lock, '>', "$DIR/.npm-ci.lock") or die "$DIR/.npm-ci.lock: $!";
    flock($lock, LOCK_EX) or die "flock: $!";
    unless (-f $have) {
        Test::More::note('npm ci in t/browser (playwright-core)');
        my $log = _tempfile();
        my ($rc, $out) = ChatTest::Process::run(
            cmd => [ 'sh', '-c', "cd '$DIR' && npm ci --no-audit --no-fund" ],
            out => "$log", timeout => 300);
        die "npm ci in t/browser failed (exit $rc):\n$out\n" if $rc != 0;
    }
    close $lock;
}

sub _tempfile {
    return File::Temp->new(TEMPLATE => 'ngx_chat_browser_XXXXXX',
                           DIR => ChatTest::Process::tmp_base());
}

sub out_dir {
    my ($name) = @_;
    my $base = $ENV{CHAT_TEST_OUT} || ChatTest::repo_root() . '/build/test-out';
    my $d = "$base/$name";
    make_path($d);
    return $d;
}

sub _json { ChatTest::json() }

# Runs t/browser/$script with --key=value arguments; every line it prints
# becomes a check (above).  Fails one check when the script exits non-zero,
# times out or ends without {"done":true}.  Returns the number of failed
# checks.
sub run {
    my ($script, %o) = @_;
    my $args = $o{args} || {};
    my $actions = $o{actions} || {};
    my $timeout = $o{timeout} || 120;
    my @cmd = (node_bin(), "$DIR/$script",
               map { "--$_=$args->{$_}" } sort keys %$args);
    local $ENV{CHROMIUM_BIN} = chromium_bin();

    my $errfile = _tempfile();
    open(my $err, '>', "$errfile") or die "$errfile: $!";
    my ($in, $out);
    my $pid = open3($in, $out, '>&' . fileno($err), @cmd);
    close $err;
    $in->autoflush(1);

    my $sel = IO::Select->new($out);
    my $buf = '';
    my ($done, $failed) = (0, 0);
    my $deadline = time + $timeout;
    my $eof = 0;
    while (!$eof && time < $deadline) {
        next unless $sel->can_read(0.5);
        my $n = sysread($out, $buf, 65536, length $buf);
        $eof = 1 unless $n;
        while ($buf =~ s/^([^\n]*)\n//) {
            my $line = $1;
            my $m = eval { _json()->decode($line) };
            unless (ref $m eq 'HASH') {
                Test::More::note("node: $line");
                next;
            }
            if (exists $m->{ok}) {
                my $ok = Test::More::ok($m->{ok}, $m->{name} // '?');
                Test::More::diag($m->{diag}) if !$ok && defined $m->{diag};
                $failed++ unless $ok;
            } elsif (exists $m->{skip}) {
                SKIP: {
                    Test::More::skip("$m->{skip}: " . ($m->{name} // '?'), 1);
                }
            } elsif (exists $m->{note}) {
                Test::More::note($m->{note});
            } elsif (exists $m->{action}) {
                my $f = $actions->{$m->{action}};
                my $result = $f ? eval { $f->($m->{arg}) } : undef;
                my $error = $f ? $@ : "no action $m->{action}";
                Test::More::diag("action $m->{action}: $error") if $error;
                print $in _json()->encode({ action => $m->{action},
                                            result => $result,
                                            error => $error || undef }), "\n";
            } elsif ($m->{done}) {
                $done = 1;
            }
        }
    }
    close $in;
    my $rc;
    if ($eof) {
        waitpid($pid, 0);
        $rc = $? >> 8;
    } else {
        # SIGTERM first: playwright closes its Chromium on it
        Test::More::diag("$script: no end within $timeout s, stopped");
        CORE::kill('TERM', $pid);
        $rc = ChatTest::Process::wait_child($pid, 5);
    }
    my $ok = Test::More::ok($eof && $rc == 0 && $done,
                            "$script ran to its end (exit $rc)");
    unless ($ok) {
        my $e = slurp("$errfile") // '';
        $e = substr($e, -6000) if length $e > 6000;
        Test::More::diag("$script stderr:\n$e");
        $failed++;
    }
    return $failed;
}

1;
