# presence, typing and online.  While room presence answers
# `unavailable`, only the request validation that happens before
# (too_large, bad_request) is checked and the rest is skipped.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
EOF2
my $port = $n->port;

# clients that see presence events too
my $alice = ChatTest::WS->user($port, 'alice', ignore => []);
my $bob = ChatTest::WS->user($port, 'bob', ignore => []);

# helpers that skip presence *events* when waiting for replies
sub presence_event {
    my ($ws, %o) = @_;
    return $ws->wait_for(type => 'presence', timeout => $o{timeout} // 3,
                         match => sub { defined $_[0]{event} });
}

# request validation, answered in every mode
{
    my $r = $alice->call({ op => 'online', users => [ map { "u$_" } 1 .. 101 ],
                           id => 'big' });
    is($r->{type}, 'error', 'online with 101 users refused');
    is($r->{code}, 'too_large', '... too_large');
    is($r->{id}, 'big', '... with the id');
    $r = $alice->call({ op => 'online', users => 'alice' });
    is($r->{code}, 'bad_request', 'online users not an array: bad_request');
    $r = $alice->call({ op => 'online' });
    is($r->{code}, 'bad_request', 'online without users: bad_request');
    $r = $alice->call({ op => 'online', users => [ 'a', 5 ] });
    is($r->{code}, 'bad_request', 'online with a non-string user: bad_request');
    $r = $alice->call({ op => 'presence', room => 'bad room' });
    is($r->{code}, 'bad_request', 'presence with a bad room: bad_request');
    $r = $alice->call({ op => 'typing', room => '', id => 't0' });
    is($r->{code}, 'bad_request', 'typing with a bad room: bad_request');
    ok($alice->alive, 'connection open');
}

$alice->join_room('p');
my $probe = $alice->call({ op => 'presence', room => 'p', id => 'probe' });
my $supported = !($probe->{type} eq 'error' && $probe->{code} eq 'unavailable');
if (!$supported) {
    # room presence comes after typing and online (t/080 tests those)
    is($probe->{id}, 'probe', 'unavailable error carries the id');
    my $r = $alice->call({ op => 'online', users => [ 'x' ] });
    is($r && $r->{type}, 'online', 'online: answered meanwhile');
}

SKIP: {
skip 'presence/typing/online need chat_redis in this build', 23
    unless $supported;

my $r = $probe;
is($r->{type}, 'presence', 'presence reply');
is($r->{room}, 'p', 'presence.room');
is_deeply($r->{users}, [ 'alice' ], 'only alice in the room');

$bob->join_room('p');
my $e = presence_event($alice);
is_deeply({ map { $_ => $e->{$_} } qw(type room user event) },
          { type => 'presence', room => 'p', user => 'bob', event => 'join' },
          'alice sees bob join');
$r = $alice->call({ op => 'presence', room => 'p' });
is_deeply([ sort @{$r->{users} || []} ], [ 'alice', 'bob' ], 'both present');

# a second connection of the same user: no new join event, one entry
my $bob2 = ChatTest::WS->user($port, 'bob', ignore => []);
$bob2->join_room('p');
$r = $alice->call({ op => 'presence', room => 'p' });
is_deeply([ sort @{$r->{users} || []} ], [ 'alice', 'bob' ],
          'a user with two connections is listed once');
ok(!presence_event($alice, timeout => 0.5),
   'no join event for a second connection of a present user');

$bob->call({ op => 'leave', room => 'p' });
ok(!presence_event($alice, timeout => 0.5),
   'no leave event while another connection of bob remains');
$bob2->close_socket;
$e = presence_event($alice);
is_deeply({ map { $_ => $e->{$_} } qw(type room user event) },
          { type => 'presence', room => 'p', user => 'bob', event => 'leave' },
          'leave event when the last connection of bob goes');
$r = $alice->call({ op => 'presence', room => 'p' });
is_deeply($r->{users}, [ 'alice' ], 'bob gone');

$r = $bob->call({ op => 'presence', room => 'p', id => 'pnj' });
is($r->{code}, 'not_joined', 'presence needs a join');

# typing
$bob->join_room('p');
presence_event($alice);
$alice->drain(timeout => 0.2);
$bob->drain(timeout => 0.2);
$bob->send_json({ op => 'typing', room => 'p' });
$e = $alice->wait_for(type => 'typing');
is_deeply($e, { type => 'typing', room => 'p', user => 'bob' },
          'others get a typing event');
my @b = grep { $_->{type} ne 'presence' } $bob->drain(timeout => 0.3);
ok(!@b, 'typing: no reply to the sender');
$bob->send_json({ op => 'typing', room => 'q', id => 'tq' });
$r = $bob->wait_for(id => 'tq');
is($r && $r->{code}, 'not_joined', 'typing needs a join');
$r = $alice->call({ op => 'history', room => 'p' });
is_deeply($r->{messages}, [], 'typing is not stored');

# online
$r = $alice->call({ op => 'online', users => [ 'alice', 'bob', 'nobody' ] });
is($r->{type}, 'online', 'online reply');
is_deeply($r->{users}, { alice => JSON::PP::true, bob => JSON::PP::true,
                         nobody => JSON::PP::false },
          'online: connected users true, others false');
like($alice->{last_raw}, qr/"nobody":false/, 'online values are booleans');
$r = $alice->call({ op => 'online', users => [] });
is_deeply($r->{users}, {}, 'online with no users');
$r = $alice->call({ op => 'online', users => [ map { "u$_" } 1 .. 100 ] });
is($r->{type}, 'online', '100 users is fine');
is(scalar keys %{$r->{users} || {}}, 100, '... 100 answers');
$bob->close_socket;
ok(ChatTest::wait_until(sub {
       my $x = $alice->call({ op => 'online', users => [ 'bob' ] });
       $x && $x->{users} && !$x->{users}{bob} }, 3),
   'bob offline once disconnected');
}

$n->stop;
done_testing;
