# chat_rate: a token bucket per connection that only `send` drains;
# repeated refusals close the connection with 1008.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use Time::HiRes qw(time sleep);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; chat_rate 5r/s burst=5; }
location = /slow { chat; chat_user $arg_user; chat_rate 60r/m burst=1; }
location = /dflt { chat; chat_user $arg_user; }
location = /status { chat_status; }
EOF2
my $port = $n->port;
my $frame = \&ChatTest::WS::frame;

# sends $count messages in one write; returns (acks, rate_limited errors)
sub burst {
    my ($ws, $count, $tag) = @_;
    my $bytes = join '', map {
        $frame->(payload => ChatTest::json()->encode(
            { op => 'send', room => 'r', text => "$tag $_", id => "$tag-$_" }))
    } 1 .. $count;
    $ws->send_raw($bytes);
    my (@acks, @errs);
    while (@acks + @errs < $count) {
        my $m = $ws->wait_for(match => sub {
                    $_[0]{type} eq 'ack' || $_[0]{type} eq 'error' },
                    timeout => 5) or last;
        push @{$m->{type} eq 'ack' ? \@acks : \@errs}, $m;
    }
    return (\@acks, \@errs);
}

{
    my $ws = ChatTest::WS->chat($port, user => 'burst');
    $ws->join_room('r');
    my ($acks, $errs) = burst($ws, 9, 'a');
    my $na = @$acks;
    ok($na >= 5 && $na <= 6, "burst of 9 at 5r/s burst=5: $na accepted");
    is($na + @$errs, 9, 'every send answered');
    ok(!grep({ $_->{code} ne 'rate_limited' } @$errs),
       'refusals are rate_limited');
    my %ids = map { $_->{id} => 1 } @$errs;
    is(scalar keys %ids, scalar @$errs, 'rate_limited errors carry the ids');
    my (undef, undef, $st) = ChatTest::http_get_json($port, '/status');
    is($st && $st->{rate_limited}, scalar @$errs,
       'the status counts them: rate_limited = ' . scalar @$errs);
    is_deeply([ map { $_->{id} } @$acks ], [ map { "a-$_" } 1 .. $na ],
              'the first sends are the accepted ones');
    my @msgs = $ws->collect(n => $na, type => 'message');
    is(scalar @msgs, $na, 'only accepted sends are broadcast');
    ok($ws->quiet(timeout => 0.3), 'no more messages');

    # other requests are not limited
    my $ok = 1;
    for my $i (1 .. 30) {
        my $r = $ws->call({ op => $i % 2 ? 'heartbeat' : 'history',
                            room => 'r' });
        $ok = 0 unless $r && $r->{type} ne 'error';
    }
    ok($ok, '30 heartbeat/history requests are not rate limited');

    # refill: 5 tokens per second
    sleep 1.1;
    ($acks, $errs) = burst($ws, 5, 'b');
    ok(@$acks >= 4, 'refilled after 1.1 s: ' . scalar(@$acks) . ' of 5');

    # a second connection of the same user has its own bucket
    my $ws2 = ChatTest::WS->chat($port, user => 'burst');
    $ws2->join_room('r');
    ($acks, $errs) = burst($ws2, 5, 'c');
    is(scalar @$acks, 5, 'the bucket is per connection');
    $ws2->close_socket;
    ok($ws->alive, 'connection alive after refusals');
}

# more than 10 consecutive refusals: closed with 1008
{
    my $ws = ChatTest::WS->chat($port, user => 'abuser');
    $ws->join_room('r');
    my $bytes = join '', map {
        $frame->(payload => ChatTest::json()->encode(
            { op => 'send', room => 'r', text => "x$_", id => "x$_" }))
    } 1 .. 30;
    $ws->send_raw($bytes);
    my (@acks, @errs);
    while (my $m = $ws->recv_json(timeout => 5)) {
        push @acks, $m if $m->{type} eq 'ack';
        push @errs, $m if $m->{type} eq 'error';
    }
    ok($ws->{got_close}, 'abuser gets a close frame');
    is($ws->{close_code}, 1008, 'close code 1008');
    ok($ws->eof(5), 'TCP closed');
    ok(@acks >= 5 && @acks <= 6, scalar(@acks) . ' accepted before');
    ok(@errs >= 10 && @errs <= 11,
       scalar(@errs) . ' rate_limited errors before the close');
    ok(!grep({ $_->{code} ne 'rate_limited' } @errs), 'all rate_limited');
}

# an accepted send resets the count of consecutive refusals
{
    my $ws = ChatTest::WS->chat($port, user => 'patient');
    $ws->join_room('r');
    my ($acks, $errs) = burst($ws, 5 + 8, 'p');     # 5 ok, 8 refused
    ok(@$errs >= 7 && @$errs <= 8, scalar(@$errs) . ' consecutive refusals');
    sleep 0.5;                                      # ~2.5 tokens
    ($acks, $errs) = burst($ws, 1 + 8, 'q');       # 1-3 ok, rest refused
    ok(@$acks >= 1, 'a send accepted after a pause');
    ok($ws->alive, '16 refusals, never 11 in a row: still open');
    ($acks, $errs) = burst($ws, 2, 'r');
    ok(!$ws->{got_close}, 'still no close');
}

# Nr/m
{
    my $ws = ChatTest::WS->chat($port, user => 'perminute', path => '/slow');
    $ws->join_room('r');
    my ($acks, $errs) = burst($ws, 4, 'm');
    ok(@$acks >= 1 && @$acks <= 2,
       '60r/m burst=1: ' . scalar(@$acks) . ' of 4 accepted');
    is(scalar @$errs, 4 - @$acks, 'the others are rate_limited');
}

# default 20r/s burst=40
{
    my $ws = ChatTest::WS->chat($port, user => 'dflt', path => '/dflt');
    $ws->join_room('r');
    my ($acks, $errs) = burst($ws, 50, 'd');
    ok(@$acks >= 40 && @$acks <= 42,
       'default burst: ' . scalar(@$acks) . ' of 50 accepted');
    is(scalar @$errs, 50 - @$acks, 'the rest refused');
}

$n->stop;
done_testing;
