# chat_postgres: 10,000 messages from 20 clients in 5 rooms on 2 workers.
# Every acked message reaches Postgres exactly once: (room, seq) as acked,
# seqs per room exactly 1..n, and body, user_id, msg_id and created_at as
# in the message events.
use strict;
use warnings;
use utf8;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $CLIENTS = 20;
my $ROOMS = 5;
my $PER = 500;                      # messages per client
my $TOTAL = $CLIENTS * $PER;        # 10,000
my $PER_ROOM = $TOTAL / $ROOMS;     # 2,000
my $WINDOW = 50;                    # unacked sends per client
my $LOC = <<'EOF2';
location = /chat {
    chat;
    chat_user $arg_user;
    chat_rate 1000r/s burst=1000;
    chat_request_rate 100000r/s burst=100000;
    chat_max_pending 4096;
    chat_send_buffer 16m;
}
EOF2

# a few texts carry what needs escaping on the way to Postgres
sub text_of {
    my ($i, $k) = @_;
    my $t = "u$i m$k";
    $t .= " ü € 🎉 \"dq\" \\ it's' ; -- | %s \$1" if $k % 50 == 0;
    return $t;
}

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC);
my $port = $n->port;

my (@c, %workers);
for my $i (1 .. $CLIENTS) {
    my $ws = ChatTest::WS->chat($port, user => "u$i");
    $ws->{i} = $i;
    $ws->{room} = 'room' . ($i % $ROOMS);
    $ws->{sent} = 0;
    $ws->{acks} = {};
    $ws->{errs} = [];
    $ws->{msgs} = [];
    $ws->{other} = [];
    push @c, $ws;
    $workers{$ws->welcome->{worker}}++;
}
diag('clients per worker: ' . join(', ', map { "$_=$workers{$_}" }
                                          sort keys %workers));
$_->join_room($_->{room}) for @c;

sub take {
    for my $ws (@c) {
        for my $m ($ws->drain(timeout => 0)) {
            my $t = $m->{type} // '';
            if ($t eq 'ack') {
                $ws->{acks}{$m->{id} // ''} = $m;
            } elsif ($t eq 'error') {
                push @{$ws->{errs}}, $m;
            } elsif ($t eq 'message' && ($m->{room} // '') eq $ws->{room}) {
                push @{$ws->{msgs}}, $m;
            } else {
                push @{$ws->{other}}, $m;
            }
        }
    }
}

sub answered { my ($ws) = @_; return keys(%{$ws->{acks}}) + @{$ws->{errs}} }

my $t0 = time;
my $deadline = time + 90;
while (time < $deadline) {
    my $busy = 0;
    for my $ws (@c) {
        while ($ws->{sent} < $PER && $ws->{sent} - answered($ws) < $WINDOW) {
            my $k = ++$ws->{sent};
            $ws->send_json({ op => 'send', room => $ws->{room},
                             text => text_of($ws->{i}, $k),
                             id => "u$ws->{i}-$k" })
                or diag("client $ws->{i}: write failed");
        }
        $busy++ if answered($ws) < $PER || @{$ws->{msgs}} < $PER_ROOM;
    }
    last unless $busy;
    ChatTest::WS::pump(\@c, timeout => 0.05);
    take();
}
my $sent_time = time - $t0;
sleep 0.3;
ChatTest::WS::pump(\@c, timeout => 0.1);
take();
diag(sprintf('%d messages sent, acked and delivered in %.1f s', $TOTAL,
             $sent_time));

# ---- acks
my (@errs, %acked);       # "room|seq" => [user, text]
my $ack_bad = 0;
for my $ws (@c) {
    push @errs, @{$ws->{errs}};
    for my $k (1 .. $PER) {
        my $a = $ws->{acks}{"u$ws->{i}-$k"};
        unless ($a && ($a->{room} // '') eq $ws->{room} && $a->{seq}) {
            $ack_bad++;
            next;
        }
        my $key = "$a->{room}|$a->{seq}";
        $ack_bad++ if $acked{$key};
        $acked{$key} = [ "u$ws->{i}", text_of($ws->{i}, $k) ];
    }
}
is(scalar @errs, 0, 'no error replies')
    or diag(join "\n", map { enc($_) } @errs[0 .. ($#errs > 9 ? 9 : $#errs)]);
is($ack_bad, 0, "all $TOTAL sends acked, each with its own (room, seq)");
for my $room (map { "room$_" } 0 .. $ROOMS - 1) {
    my @s = sort { $a <=> $b } map { /^\Q$room\E\|(\d+)$/ ? $1 : () }
            keys %acked;
    is_deeply(\@s, [ 1 .. $PER_ROOM ], "$room: acked seqs 1..$PER_ROOM");
}

# ---- events: every member got its room's messages once, in order
my %event;                # "room|seq" => message event
{
    my $bad = 0;
    for my $ws (@c) {
        my @s = map { $_->{seq} } @{$ws->{msgs}};
        if ("@s" ne join ' ', 1 .. $PER_ROOM) {
            $bad++;
            diag("u$ws->{i} ($ws->{room}): " . scalar(@s) . ' events');
        }
        $event{"$_->{room}|$_->{seq}"} //= $_ for @{$ws->{msgs}};
    }
    is($bad, 0, "every member received its room's $PER_ROOM events in order");
    my $other = 0;
    $other += @{$_->{other}} for @c;
    is($other, 0, 'no other events');
}

# ---- Postgres
$t0 = time;
my $have = $pg->wait_count($TOTAL, timeout => 30);
is($have, $TOTAL, sprintf('%d rows in chat_messages (waited %.1f s)',
                          $TOTAL, time - $t0));
sleep 1;
is($pg->count, $TOTAL, '... and no more a second later');

my $rows = $pg->messages;
my (%row, $dup);
for my $x (@$rows) {
    my $key = "$x->{room}|$x->{seq}";
    $dup++ if $row{$key};
    $row{$key} = $x;
}
ok(!$dup, 'each (room, seq) once');
{
    my %ids;
    $ids{lc $_->{msg_id}}++ for @$rows;
    is(scalar(grep { $_ > 1 } values %ids), 0, 'each msg_id once');
}
for my $room (map { "room$_" } 0 .. $ROOMS - 1) {
    my @s = map { $_->{seq} } grep { $_->{room} eq $room } @$rows;
    is_deeply(\@s, [ 1 .. $PER_ROOM ], "$room: seqs in Postgres 1..$PER_ROOM");
}

# every acked message is the row at its (room, seq)
{
    my ($missing, $wrong, @show) = (0, 0);
    for my $key (sort keys %acked) {
        my $x = $row{$key};
        my ($user, $text) = @{$acked{$key}};
        if (!$x) {
            $missing++;
            push @show, "missing $key ($text)";
        } elsif ($x->{body} ne $text || $x->{user_id} ne $user) {
            $wrong++;
            push @show, "$key: acked '$user: $text', row '$x->{user_id}: "
                        . "$x->{body}'";
        }
    }
    is($missing, 0, 'every acked message is in Postgres');
    is($wrong, 0, '... with the body and user_id that were sent');
    diag(join "\n", @show[0 .. ($#show > 9 ? 9 : $#show)]) if @show;
}

# the rows are the message events
{
    my ($bad, @show) = (0);
    for my $key (sort keys %event) {
        my $e = $event{$key};
        my $x = $row{$key} or next;
        my @diff;
        push @diff, 'msg_id' if lc $x->{msg_id} ne lc($e->{msg_id} // '');
        push @diff, 'user_id' if $x->{user_id} ne ($e->{user} // '');
        push @diff, 'body' if $x->{body} ne ($e->{text} // '');
        push @diff, "created_at ($x->{ts} ms, event ts "
                    . ($e->{ts} // '-') . ')'
            if $x->{ts} != ($e->{ts} // -1);
        next unless @diff;
        $bad++;
        push @show, "$key: " . join(', ', @diff);
    }
    is(scalar keys %event, $TOTAL, "$TOTAL distinct message events");
    is($bad, 0, 'each row: msg_id, user_id, body and created_at (ms) as in '
       . 'its message event');
    diag(join "\n", @show[0 .. ($#show > 9 ? 9 : $#show)]) if @show;
    my %ev_ids = map { lc $_->{msg_id} => 1 } values %event;
    is(scalar(grep { !$ev_ids{lc $_->{msg_id}} } @$rows), 0,
       'no row with a msg_id that no event carried');
}

$_->close_socket for @c;
$n->stop;
$r->stop;
$pg->stop;
done_testing;
