# chat_postgres: a seq is never reused, also after Redis loses its data.
# FLUSHALL with the messages already in Postgres: the next message gets
# max(seq)+1, also when clients on both workers send at once right after
# the flush; the members stay subscribed; the stream feeding Postgres works
# again.  DEL chat:{R}:seq alone: the same.  A room that only Postgres
# knows continues after its last seq.  (Reading after a FLUSHALL: 077.)
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc seqs);
use ChatTest::Redis;
use ChatTest::Pg;
use Time::HiRes qw(time sleep);

my $LOC = <<'EOF2';
location = /chat { chat; chat_user $arg_user; chat_rate 1000r/s burst=1000; }
EOF2

my ($r, $pg, $n) = ChatTest::Pg::start_stack(
    pool => 2, workers => 2, listen_opts => 'reuseport', server => $LOC);
my $port = $n->port;

# clients on both workers
my (@c, %on);
for my $i (1 .. 40) {
    my $ws = ChatTest::WS->chat($port, user => "u$i");
    my $w = $ws->welcome->{worker};
    next if ($on{$w} // 0) >= 3;
    $on{$w}++;
    push @c, $ws;
    last if @c == 6;
}
ok(keys(%on) == 2, '6 clients on both workers: '
   . join(', ', map { "$_=$on{$_}" } sort keys %on));

my %sent;    # "room|seq" => text
my $tag = 0;

# each of @$who sends one message to $room at once; returns the acks
sub send_from {
    my ($room, @who) = @_;
    my @ids;
    for my $ws (@who) {
        my $id = 'x' . ++$tag;
        $ws->send_json({ op => 'send', room => $room, text => "text $id",
                         id => $id });
        push @ids, [ $ws, $id ];
    }
    my @acks;
    for my $p (@ids) {
        my $a = $p->[0]->wait_for(id => $p->[1], timeout => 5);
        push @acks, $a;
        $sent{"$room|$a->{seq}"} = "text $p->[1]"
            if $a && $a->{type} eq 'ack';
    }
    return @acks;
}

# $count messages one after the other, from @who in turn
sub send_seq {
    my ($room, $count, @who) = @_;
    @who = @c unless @who;
    return map { send_from($room, $who[$_ % @who]) } 0 .. $count - 1;
}

sub rows_ok {
    my ($room, $max, $name) = @_;
    my $have = $pg->wait_count($max, where => "room = '$room'",
                               timeout => 20);
    my $rows = $pg->messages(where => "room = '$room'");
    is_deeply([ map { $_->{seq} } @$rows ], [ 1 .. $max ],
              "$name: Postgres has $room seqs 1..$max once each");
    my $bad = grep { exists $sent{"$room|$_->{seq}"}
                     && $_->{body} ne $sent{"$room|$_->{seq}"} } @$rows;
    is($bad, 0, "$name: each row is the message acked with its seq");
}

# ============================================================ FLUSHALL
$_->join_room('f') for @c;
my @acks = send_seq('f', 30);
is_deeply(seqs(@acks), [ 1 .. 30 ], 'f: acks 1..30');
$_->drain(timeout => 0.3) for @c;
is($pg->wait_count(30, where => "room = 'f'", timeout => 20), 30,
   'f: 30 rows in Postgres');

is($r->cmd('FLUSHALL'), 'OK', 'FLUSHALL');
is($r->cmd('EXISTS', 'chat:{f}:seq', 'chat:{f}:recent'), 0,
   "room f's keys are gone");
@acks = send_from('f', @c);
my @s = sort { $a <=> $b } @{seqs(@acks)};
is_deeply(\@s, [ 31 .. 36 ],
          '6 clients on 2 workers send at once after the flush: seqs 31..36, '
          . 'none reused');
push @acks, send_seq('f', 4);
is_deeply([ sort { $a <=> $b } @{seqs(@acks[6 .. 9])} ], [ 37 .. 40 ],
          'then 37..40');
is($r->cmd('GET', 'chat:{f}:seq'), 40, 'chat:{f}:seq == 40');
for my $ws (@c) {
    my @m = $ws->collect(n => 10, type => 'message', room => 'f');
    is_deeply(seqs(@m), [ 31 .. 40 ],
              $ws->welcome->{user} . ': still subscribed, got 31..40 in order');
}
rows_ok('f', 40, 'after FLUSHALL');

# ============================================================ DEL seq
$_->join_room('g') for @c[0, 1];
@acks = send_seq('g', 10, @c[0, 1]);
is_deeply(seqs(@acks), [ 1 .. 10 ], 'g: acks 1..10');
is($pg->wait_count(10, where => "room = 'g'", timeout => 20), 10,
   'g: 10 rows in Postgres');
is($r->cmd('DEL', 'chat:{g}:seq'), 1, 'DEL chat:{g}:seq');
@acks = send_from('g', @c[0, 1]);
is_deeply([ sort { $a <=> $b } @{seqs(@acks)} ], [ 11, 12 ],
          'after DEL chat:{g}:seq: 11, 12');
rows_ok('g', 12, 'after DEL seq');

# ============================================================ only in Postgres
{
    $pg->psql(join "\n", map { "INSERT INTO chat_messages VALUES ('old', $_, "
        . "gen_random_uuid(), 'importer', 'imported $_', "
        . "now() - interval '1 day' + $_ * interval '1 second');" } 1 .. 5);
    $c[0]->join_room('old');
    my ($a) = send_from('old', $c[0]);
    is($a && $a->{seq}, 6, 'a room only Postgres knows: the first send gets '
       . 'seq 6 (after its 5 rows)') or diag(enc($a));
    rows_ok('old', 6, 'room only in Postgres');
}

$n->stop;
$r->stop;
$pg->stop;
done_testing;
