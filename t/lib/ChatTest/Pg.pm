package ChatTest::Pg;

# A private PostgreSQL cluster for the durability tests: initdb into a
# fresh directory, the postmaster started in the foreground as a child of
# the test (as the unprivileged `postgres` user when the test runs as root,
# since Postgres refuses root), listening on 127.0.0.1 on a free port and
# on a unix socket in that directory, `-A trust`, fsync off (but
# synchronous_commit on: a commit has reached the OS when it returns, so
# committed rows survive $pg->kill); database `chat` with conf/schema.sql
# applied.  Stopped (SIGKILL if need be) and
# removed when the object goes away or the test exits (after the nginx
# servers: ChatTest::Process).  Perl core modules only.
#
#   my $pg = ChatTest::Pg->start(port => P, args => ['-c', 'x=y'],
#                                schema => $file, timeout => 30);
#   $pg->port, $pg->host, $pg->socket_dir, $pg->dir, $pg->pid, $pg->alive
#   $pg->conninfo                    host=127.0.0.1 port=P dbname=chat
#                                    user=postgres
#   my @rows = $pg->psql($sql)       psql -At -F '|': one string per row
#                                    (scalar context: the first row); dies
#                                    on an error
#   my ($rows, $err) = $pg->try_psql($sql)   [rows] or (undef, error)
#   $pg->rows($sql)                  list of [fields] (split on '|')
#   $pg->value($sql)                 the first field of the first row
#   $pg->query($sql)                 [ {column => value}, ... ] through
#                                    json_agg: any text, any column
#   $pg->messages(where => "room = 'r'")   chat_messages rows ordered by
#                                    room, seq: {room, seq, msg_id, user_id,
#                                    body, ts} (ts: created_at in ms)
#   $pg->count(where => ...)         rows of chat_messages
#   $pg->wait_count($n, where => ..., timeout => 20)   polls until at
#                                    least $n rows; returns the last count
#   $pg->stop                        fast shutdown (SIGINT), bounded
#   $pg->start                       again: same data directory and port
#   $pg->kill                        SIGKILL the postmaster (a crash); its
#                                    backends are waited for (bounded),
#                                    then killed
#   $pg->restart                     stop + start
#   $pg->log                         the server log (all starts)
#   my $lock = $pg->lock_table('chat_messages')   EXCLUSIVE lock held by
#                                    a session of its own: INSERTs wait,
#                                    SELECTs go on; $lock->release
#   $pg->lock_waiters                sessions waiting for a lock
#   $pg->terminate_lock_waiters      pg_terminate_backend of those
#
#   For the chat tests:
#   ChatTest::Pg::need_module(server => $loc, ...)   nginx -t with
#                                    chat_redis + chat_postgres, or fail
#                                    one test and exit
#   $pg->chat_http(pool => 2)        chat_postgres + chat_postgres_pool
#   $pg->start_nginx($redis, pool => 2, cache => 20, workers => 2, ...)
#                                    $redis->start_nginx with chat_postgres,
#                                    then waits (bounded, never failing)
#                                    for the workers' Postgres connections
#   my ($redis, $pg, $n) = ChatTest::Pg::start_stack(server => $loc,
#                                    pool => 2, pg => { args => [...] })
#                                    need_module, a Redis, a cluster and
#                                    $pg->start_nginx on both
#   ChatTest::Pg::worker_pid_of($nginx, $ws)   pid of the nginx worker that
#                                    holds a test client's connection
#
# Environment: PG_BIN_DIR (default /usr/lib/postgresql/15/bin), PG_USER
# (the unprivileged user when run as root, default postgres),
# CHAT_TEST_KEEP (keep the directory), TMPDIR.

use strict;
use warnings;

use ChatTest ();
use ChatTest::Process qw(spawn wait_child run slurp write_file tempdir
                         proc_stat);
use parent -norequire, 'ChatTest::Process';

use Cwd qw(abs_path);
use Encode ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);

sub bin_dir { $ENV{PG_BIN_DIR} || '/usr/lib/postgresql/15/bin' }

sub bin {
    my ($name) = @_;
    return bin_dir() . "/$name";
}

sub psql_bin {
    my $p = bin('psql');
    return -x $p ? $p : '/usr/bin/psql';
}

sub schema_file { ChatTest::repo_root() . '/conf/schema.sql' }


# ---------------------------------------------------------------- start

# Class method: a new cluster.  Instance method: the same cluster again
# (after stop or kill), on the same port, with its data.
sub start {
    my ($class, %o) = @_;
    return $class->_start_again(%o) if ref $class;

    for my $b (qw(initdb postgres)) {
        die bin($b) . " not found: `make deps` installs it (Debian package "
            . "postgresql), or set PG_BIN_DIR\n" unless -x bin($b);
    }

    my ($uid, $gid, $user) = ($>, (split ' ', $))[0],
                              scalar getpwuid($>));
    if ($> == 0) {
        $user = $ENV{PG_USER} || 'postgres';
        my @pw = getpwnam($user)
            or die "user $user does not exist (Postgres refuses to run as "
                 . "root): `make deps` creates it with the postgresql "
                 . "package\n";
        ($uid, $gid) = @pw[2, 3];
    }

    my $dir = _tempdir();
    my $self = bless {
        dir       => $dir,
        data      => "$dir/data",
        sock      => "$dir/sock",
        port      => $o{port} || ChatTest::free_port(),
        uid       => $uid,
        gid       => $gid,
        user      => $user,
        args      => $o{args} || [],
        timeout   => $o{timeout} || 30,
        dbname    => $o{dbname} // 'chat',
        schema    => $o{schema} // schema_file(),
        pid       => undef,
        starts    => 0,
    }, $class;
    $self->_register(weak => 1);

    for my $d ($self->{data}, $self->{sock}) {
        mkdir $d or die "mkdir $d: $!";
        chown $uid, $gid, $d or die "chown $d: $!";
    }
    chmod 0700, $self->{data};
    chmod 0755, $self->{sock};
    # the log is appended to by every start, written by the postmaster
    write_file("$dir/postgres.log", '');
    chown $uid, $gid, "$dir/postgres.log";

    my ($rc, $out) = $self->_run_as_pg("$dir/initdb.out", 120,
        bin('initdb'), '-D', $self->{data}, '-A', 'trust', '-U', 'postgres',
        '-E', 'UTF8', '--locale=C', '--no-sync');
    die "initdb failed (exit $rc):\n$out\n" if $rc != 0;

    $self->_spawn;

    unless ($o{no_db}) {
        my $db = $self->{dbname};
        $self->psql(qq{CREATE DATABASE "$db"}, dbname => 'postgres');
        if (length $self->{schema}) {
            my ($rows, $err) = $self->try_psql(undef, file => $self->{schema});
            die "applying $self->{schema} failed: $err\n" if defined $err;
        }
    }
    return $self;
}

# A directory the unprivileged user can reach.
sub _tempdir {
    my $dir = tempdir('ngx_chat_pg_XXXXXX', reachable => 1);
    die "unix socket path too long under $dir\n" if length($dir) > 80;
    return $dir;
}

# In a forked child: become the cluster's owner (when root).
sub _become_owner {
    my ($self) = @_;
    if ($> == 0 && $self->{uid} != 0) {
        POSIX::setgid($self->{gid});
        $) = "$self->{gid} $self->{gid}";
        POSIX::setuid($self->{uid});
        POSIX::_exit(125) if $< == 0 || $> == 0;
    }
    $ENV{HOME} = $self->{dir};
    $ENV{USER} = $ENV{LOGNAME} = $self->{user} // 'postgres';
    chdir $self->{dir};
}

# Runs a command as the cluster's owner, output to $out, bounded.
# Returns (exit code or -1 on timeout, output).
sub _run_as_pg {
    my ($self, $out, $timeout, @cmd) = @_;
    return run(cmd => \@cmd, out => $out, timeout => $timeout,
               setup => sub { $self->_become_owner });
}

sub _spawn {
    my ($self) = @_;
    my $dir = $self->{dir};
    my @args = ('-D', $self->{data}, '-p', $self->{port},
                '-k', $self->{sock},
                '-c', 'listen_addresses=127.0.0.1',
                '-c', 'fsync=off',
                '-c', 'full_page_writes=off',
                '-c', 'max_connections=100',
                '-c', 'log_line_prefix=%m [%p] ',
                '-c', 'logging_collector=off',
                @{$self->{args}});

    ++$self->{starts};
    my $logpos = -s "$dir/postgres.log" // 0;
    my $log = sub {
        return substr(slurp("$dir/postgres.log") // '', $logpos);
    };

    return $self->_start_child(
        cmd => [ bin('postgres'), @args ], out => "$dir/postgres.log",
        append => 1, setpgrp => 1, setup => sub { $self->_become_owner },
        timeout => $self->{timeout}, poll => 0.05,
        ready => sub {
            my ($rows, $err) = $self->try_psql('SELECT 1',
                                               dbname => 'postgres',
                                               timeout => 5);
            return ($rows && "@$rows" eq '1', $err);
        },
        # after a kill, a new postmaster may refuse to start while the old
        # backends still hold the shared memory: try again
        retry => sub {
            return $log->() =~ /still in use|already running|lock file/i;
        },
        exited => sub {
            return "postgres exited at start (port $self->{port}, status "
                . ($self->{last_status} // '?') . "):\n" . $log->() . "\n";
        },
        timed_out => sub {
            my ($err) = @_;
            return "postgres on port $self->{port} not ready within "
                . "$self->{timeout} s ($err):\n" . $log->();
        });
}

sub _start_again {
    my ($self, %o) = @_;
    die "postgres is still running (pid $self->{pid})\n"
        if $self->{pid} && $self->_reap(0);
    $self->{timeout} = $o{timeout} if $o{timeout};
    $self->_spawn;
    return $self;
}

sub host       { '127.0.0.1' }
sub port       { $_[0]{port} }
sub socket_dir { $_[0]{sock} }
sub data_dir   { $_[0]{data} }
sub dbname     { $_[0]{dbname} }

sub _dir_label { 'postgres dir' }

# libpq conninfo: conninfo(dbname => 'x', socket => 1)
sub conninfo {
    my ($self, %o) = @_;
    my $host = $o{socket} ? $self->{sock} : $self->host;
    return "host=$host port=$self->{port} dbname="
        . ($o{dbname} // $self->{dbname}) . ' user=postgres';
}

sub log {
    my ($self) = @_;
    return slurp("$self->{dir}/postgres.log") // '';
}


# ---------------------------------------------------------------- stop

# Every process of the cluster: the postmaster and its backends, found by
# their working directory (the data directory), also once orphaned.
sub cluster_pids {
    my ($self) = @_;
    my $data = abs_path($self->{data}) // $self->{data};
    my @pids;
    opendir my $d, '/proc' or return ();
    for my $e (readdir $d) {
        next unless $e =~ /^\d+$/ && $e != $$;
        my $cwd = readlink "/proc/$e/cwd";
        next unless defined $cwd && $cwd eq $data;
        my $st = proc_stat($e) or next;
        next if $st->{state} eq 'Z' || $st->{state} eq 'X';
        push @pids, $e + 0;
    }
    closedir $d;
    return sort { $a <=> $b } @pids;
}

sub _wait_gone {
    my ($self, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        $self->_reap(0);
        my @p = $self->cluster_pids;
        return 1 unless @p || $self->{pid};
        return 0 if time > $deadline;
        sleep 0.02;
    }
}

# Every process of the cluster SIGKILLed (bounded): at a failed start and
# at cleanup.
sub _kill_all {
    my ($self) = @_;
    return unless $self->{pid} || $self->cluster_pids;
    CORE::kill 'KILL', $self->{pid} if $self->{pid};
    $self->_reap(5);
    my $deadline = time + 5;
    while (time < $deadline) {
        my @p = $self->cluster_pids or last;
        CORE::kill 'KILL', @p;
        sleep 0.02;
    }
}

# SIGKILL the postmaster: a crash.  The orphaned backends notice and exit;
# those still there after 5 s are killed, so that start works again.
sub kill {
    my ($self) = @_;
    return 1 unless $self->{pid};
    CORE::kill 'KILL', $self->{pid};
    $self->_reap(10)
        and die "postgres $self->{pid} survived SIGKILL\n";
    unless ($self->_wait_gone(5)) {
        CORE::kill 'KILL', $self->cluster_pids;
        $self->_wait_gone(5);
    }
    return 1;
}

# Fast shutdown (SIGINT: clients disconnected, checkpoint), then immediate
# (SIGQUIT), then SIGKILL, each bounded.
sub stop {
    my ($self, %o) = @_;
    return 1 unless $self->{pid};
    for my $step ([ 'INT', $o{timeout} // 15 ], [ 'QUIT', 5 ]) {
        CORE::kill $step->[0], $self->{pid};
        if (!$self->_reap($step->[1])) {
            $self->_wait_gone(5);
            return 1;
        }
    }
    return $self->kill;
}

sub restart {
    my ($self, %o) = @_;
    $self->stop;
    return $self->start(%o);
}

# ---------------------------------------------------------------- psql

# ($rows, undef) or (undef, $error).  $sql undef with file => $path runs a
# file.  Options: dbname, timeout (s, default 30), sep (default '|').
# Rows are decoded from UTF-8; a row is one output line.
sub try_psql {
    my ($self, $sql, %o) = @_;
    return (undef, 'postgres is not running') unless $self->{pid};
    my $dir = $self->{dir};
    my $tag = "$$." . int(rand 1e9);
    my $file = $o{file};
    unless (defined $file) {
        $file = "$dir/q.$tag.sql";
        my $bytes = $sql;
        utf8::encode($bytes) if utf8::is_utf8($bytes);
        write_file($file, $bytes);
    }
    my $out = "$dir/q.$tag.out";
    my $err = "$dir/q.$tag.err";
    my @cmd = (psql_bin(), '-X', '-q', '-A', '-t', '-F', $o{sep} // '|',
               '-v', 'ON_ERROR_STOP=1', '-h', $self->host,
               '-p', $self->{port}, '-U', 'postgres',
               '-d', $o{dbname} // $self->{dbname}, '-f', $file);
    # only what is on the command line counts
    my %env = (PGCONNECT_TIMEOUT => 5, PGCLIENTENCODING => 'UTF8',
               map { $_ => undef } qw(PGHOST PGPORT PGUSER PGDATABASE
                                      PGPASSWORD PGSERVICE PGOPTIONS));
    my $rc = wait_child(spawn(cmd => \@cmd, out => $out, err => $err,
                              env => \%env), $o{timeout} // 30);
    my $text = slurp($out) // '';
    my $etext = slurp($err) // '';
    unlink $out, $err;
    unlink $file unless defined $o{file};
    if ($rc != 0) {
        $etext =~ s/\s+\z//;
        return (undef, $rc == -1 ? "psql timed out: $etext"
                                 : "psql exit $rc: $etext");
    }
    $text = Encode::decode('UTF-8', $text);
    return ([ split /\n/, $text ], undef);
}

sub psql {
    my ($self, $sql, %o) = @_;
    my ($rows, $err) = $self->try_psql($sql, %o);
    die "psql: $err\n--- SQL: $sql\n" if defined $err;
    return wantarray ? @$rows : $rows->[0];
}

sub rows {
    my ($self, $sql, %o) = @_;
    my $sep = $o{sep} // '|';
    return map { [ split /\Q$sep\E/, $_, -1 ] } $self->psql($sql, %o);
}

sub value {
    my ($self, $sql, %o) = @_;
    my $first = $self->psql($sql, %o);
    return undef unless defined $first;
    my $sep = $o{sep} // '|';
    return (split /\Q$sep\E/, $first, -1)[0];
}

# [ {column => value}, ... ] of one SELECT, whatever the text holds.
sub query {
    my ($self, $sql, %o) = @_;
    $sql =~ s/;\s*\z//;
    my $j = join '', $self->psql(
        "SELECT coalesce(json_agg(q), '[]'::json) FROM ($sql) q", %o);
    return JSON::PP->new->canonical->allow_nonref->decode($j);
}

sub _where {
    my (%o) = @_;
    return defined $o{where} && length $o{where} ? " WHERE $o{where}" : '';
}

# chat_messages as hashes: room, seq, msg_id, user_id, body, ts (ms).
sub messages {
    my ($self, %o) = @_;
    return $self->query(
        'SELECT room, seq, msg_id::text AS msg_id, user_id, body, '
        . '(extract(epoch FROM created_at) * 1000)::bigint AS ts '
        . 'FROM chat_messages' . _where(%o) . ' ORDER BY room, seq');
}

sub count {
    my ($self, %o) = @_;
    return $self->value('SELECT count(*) FROM chat_messages' . _where(%o));
}

# Polls (every 0.2 s, Postgres errors count as 0) until chat_messages has
# at least $want rows (matching where) or timeout (default 20 s) passes.
# Returns the last count seen.
sub wait_count {
    my ($self, $want, %o) = @_;
    my $deadline = time + ($o{timeout} // 20);
    my $have = 0;
    while (1) {
        my ($rows) = $self->try_psql(
            'SELECT count(*) FROM chat_messages' . _where(%o),
            timeout => 10);
        $have = $rows->[0] if $rows && defined $rows->[0];
        return $have if $have >= $want || time > $deadline;
        sleep 0.2;
    }
}


# ---------------------------------------------------------------- locks

# Holds a table lock in a session of its own until $lock->release (or the
# object goes away, or max seconds pass): with EXCLUSIVE, the default,
# INSERTs wait while SELECTs go on.  Returns once the lock is granted.
sub lock_table {
    my ($self, $table, %o) = @_;
    my $mode = $o{mode} // 'EXCLUSIVE';
    my $app = 'ngx_chat_test_lock_' . int(rand 1e9);
    my $file = "$self->{dir}/$app.sql";
    write_file($file, "SET application_name = '$app';\n"
        . "BEGIN;\nLOCK TABLE $table IN $mode MODE;\n"
        . 'SELECT pg_sleep(' . ($o{max} // 120) . ");\nCOMMIT;\n");
    my $pid = spawn(cmd => [ psql_bin(), '-X', '-q', '-h', $self->host,
                             '-p', $self->{port}, '-U', 'postgres', '-d',
                             $o{dbname} // $self->{dbname}, '-f', $file ],
                    out => "$self->{dir}/$app.out");
    my $lock = bless { pg => $self, pid => $pid, app => $app },
                     'ChatTest::Pg::Lock';
    my $granted = ChatTest::wait_until(sub {
        my ($rows) = $self->try_psql(
            'SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a '
            . "USING (pid) WHERE a.application_name = '$app' AND l.granted "
            . "AND l.locktype = 'relation' AND l.relation = '$table'::regclass",
            timeout => 5);
        return $rows && $rows->[0];
    }, 10);
    unless ($granted) {
        $lock->release;
        die "lock on $table not granted within 10 s: "
            . (slurp("$self->{dir}/$app.out") // '') . "\n";
    }
    return $lock;
}

# Sessions waiting for a lock (e.g. INSERTs behind lock_table).
sub lock_waiters {
    my ($self) = @_;
    my ($rows) = $self->try_psql("SELECT count(*) FROM pg_stat_activity "
                                 . "WHERE wait_event_type = 'Lock'");
    return $rows ? $rows->[0] : 0;
}

# Terminates the sessions waiting for a lock (their statements fail, their
# clients lose the connection); returns how many.
sub terminate_lock_waiters {
    my ($self) = @_;
    my ($rows) = $self->try_psql(
        'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity '
        . "WHERE wait_event_type = 'Lock'");
    return $rows ? $rows->[0] : 0;
}

package ChatTest::Pg::Lock;

# The session ends (its backend terminated, psql waited for, SIGKILLed
# after 5 s).
sub release {
    my ($self) = @_;
    return 1 unless $self->{pid};
    $self->{pg}->try_psql('SELECT pg_terminate_backend(pid) FROM '
                          . "pg_stat_activity WHERE application_name = "
                          . "'$self->{app}'", timeout => 5)
        if $self->{pg}{pid};
    ChatTest::Process::wait_child($self->{pid}, 5);
    $self->{pid} = undef;
    return 1;
}

sub DESTROY {
    my ($self) = @_;
    local ($., $@, $!, $^E, $?);
    $self->release if ChatTest::Process::owner();
}

package ChatTest::Pg;


# ---------------------------------------------------------------- nginx

# The http-level part for the module.
sub chat_http {
    my ($self, %o) = @_;
    my $h = 'chat_postgres "' . $self->conninfo(%o) . "\";\n";
    $h .= "chat_postgres_pool $o{pool};\n" if defined $o{pool};
    return $h;
}

# nginx -t with chat_redis and chat_postgres (and the options of
# ChatTest->nginx_t); fails one test with nginx's output and exits when
# nginx rejects it.
sub need_module {
    my (%o) = @_;
    my $http = 'chat_redis redis://127.0.0.1:1/0;' . "\n"
        . 'chat_postgres "host=127.0.0.1 port=1 dbname=chat user=postgres";'
        . "\nchat_postgres_pool 2;\n" . (delete $o{http} // '');
    return ChatTest::Redis::need_module(
        what => 'chat_postgres directive', %o, http => $http);
}

# $redis->start_nginx(%o) with chat_postgres (pool => N), then waits up to
# 3 s, never failing, until Postgres sees pool x workers connections to the
# database.
sub start_nginx {
    my ($self, $redis, %o) = @_;
    my $pool = delete $o{pool};
    my $wait = $o{wait} // 1;
    my $before = $self->backends;
    my $n = $redis->start_nginx(%o, http => $self->chat_http(pool => $pool)
                                            . ($o{http} // ''));
    if ($wait) {
        my $want = $before + ($pool // 2) * ($o{workers} || 1);
        my $have = 0;
        my $deadline = time + 3;
        while (($have = $self->backends) < $want && time < $deadline) {
            sleep 0.05;
        }
        Test::More::note("nginx connected to Postgres: $have of $want "
                         . 'connections');
    }
    return $n;
}

# The start of a Postgres test file: need_module (with the http part and
# chat_history_cache of the nginx to come), a Redis, a cluster (pg => {
# options of ChatTest::Pg->start }), and $pg->start_nginx($redis, %o) on
# both.  Returns ($redis, $pg, $nginx).
sub start_stack {
    my (%o) = @_;
    my $pg_opts = delete $o{pg} || {};
    my $http = (defined $o{cache} ? "chat_history_cache $o{cache};\n" : '')
             . ($o{http} // '');
    need_module(server => $o{server}, length $http ? (http => $http) : ());
    my $redis = ChatTest::Redis->start;
    my $pg = ChatTest::Pg->start(%$pg_opts);
    return ($redis, $pg, $pg->start_nginx($redis, %o));
}

# Client connections to the chat database, but for the one asking.
sub backends {
    my ($self) = @_;
    my ($rows) = $self->try_psql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
        . "current_database() AND backend_type = 'client backend' "
        . "AND pid <> pg_backend_pid()", timeout => 5);
    return $rows && defined $rows->[0] ? $rows->[0] : 0;
}

# (the worker holding a client: ChatTest::worker_pid_of)
*worker_pid_of = \&ChatTest::worker_pid_of;

require ChatTest::Redis;

1;
