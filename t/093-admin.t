# chat_admin in embedded mode: kick (with a ban), disconnect, presence and
# online, one POSTed JSON command each, and every refusal as the JSON
# error object.  t/094 does the same across hosts and workers on Redis.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest qw(enc);
use Time::HiRes qw(time sleep);

my $n = ChatTest->start(server => <<'EOF2');
location = /chat { chat; chat_user $arg_user; }
location = /admin { chat_admin; client_body_buffer_size 1k; }
location = /status { chat_status; }
EOF2
my $port = $n->port;

sub admin { ChatTest::http_post_json($port, '/admin', @_) }

my @alice = map { ChatTest::WS->chat($port, user => 'alice') } 1 .. 2;
my $bob = ChatTest::WS->chat($port, user => 'bob', ignore => []);
$_->join_room('r') for @alice, $bob;
$_->join_room('other') for @alice;
$bob->drain(timeout => 0.3);

# kick: every connection of the user leaves the room, and only that room
{
    my ($st, $h, $j) = admin({ op => 'kick', user => 'alice', room => 'r',
                               id => 'k1' });
    is($st, 200, 'kick: 200');
    like($h->{'content-type'} // '', qr{^application/json}, 'kick: JSON');
    is_deeply($j, { type => 'done', op => 'kick', connections => 2,
                    id => 'k1' }, 'kick: done, 2 connections, the id');
    for my $i (0, 1) {
        my $l = $alice[$i]->wait_for(type => 'left', room => 'r');
        is_deeply($l, { type => 'left', room => 'r', reason => 'kicked' },
                  "alice #$i: left r, kicked");
        my $e = $alice[$i]->call({ op => 'send', room => 'r', text => 'x' });
        is($e && $e->{code}, 'not_joined', "alice #$i: r is left");
        my $a = $alice[$i]->call({ op => 'send', room => 'other',
                                   text => 'still here' });
        is($a && $a->{type}, 'ack', "alice #$i: still in the other room");
    }
    my $p = $bob->wait_for(type => 'presence', timeout => 3);
    is($p && "$p->{user} $p->{event}", 'alice leave',
       'bob sees alice leave r');
    my $r = $alice[0]->call({ op => 'join', room => 'r' });
    is($r && $r->{type}, 'joined', 'no ban: alice may join again');
    $alice[0]->call({ op => 'leave', room => 'r' });
}

# a ban: joins of the room refused until it ends, on every connection
{
    $alice[1]->join_room('r');
    my ($st, $h, $j) = admin({ op => 'kick', user => 'alice', room => 'r',
                               ban => 2 });
    is_deeply($j, { type => 'done', op => 'kick', connections => 1 },
              'kick with a ban of 2 s: the one connection left in r');
    $alice[1]->wait_for(type => 'left', room => 'r');
    my $t0 = time;
    push @alice, ChatTest::WS->chat($port, user => 'alice');
    for my $ws (@alice) {
        my $e = $ws->call({ op => 'join', room => 'r', since => 0 });
        is($e && $e->{code}, 'forbidden', 'banned: join refused');
        is($e && $e->{message}, 'banned from this room', '... banned');
    }
    my $b = ChatTest::WS->chat($port, user => 'bobby');
    is($b->call({ op => 'join', room => 'r' })->{type}, 'joined',
       'another user is not banned');
    my $c = $alice[0]->call({ op => 'join', room => 'other2' });
    is($c && $c->{type}, 'joined', 'nor is alice from another room');
    sleep(2.2 - (time - $t0)) if time - $t0 < 2.2;
    my $r = $alice[0]->call({ op => 'join', room => 'r' });
    is($r && $r->{type}, 'joined', 'the ban over: alice joins again');
    $b->close_socket;
}

# presence and online, as a client asks them
{
    my (undef, undef, $p) = admin({ op => 'presence', room => 'r',
                                    id => 'p' });
    is_deeply([ sort @{$p->{users} || []} ], [ qw(alice bob) ],
              'presence of r: alice and bob');
    is($p->{type}, 'presence', '... a presence reply');
    is($p->{id}, 'p', '... with the id');
    my (undef, undef, $o) = admin({ op => 'online',
                                    users => [ qw(alice bob nobody) ] });
    is_deeply($o->{users}, { alice => JSON::PP::true, bob => JSON::PP::true,
                             nobody => JSON::PP::false },
              'online: alice and bob, not nobody')
        or diag(enc($o));
}

# disconnect: every connection of the user closes with 1008
{
    my ($st, $h, $j) = admin({ op => 'disconnect', user => 'alice' });
    is_deeply($j, { type => 'done', op => 'disconnect' }, 'disconnect: done');
    for my $i (0 .. 2) {
        my ($code, $reason) = $alice[$i]->expect_close(reply => 1);
        is("$code $reason", '1008 disconnected',
           "alice #$i: closed with 1008 disconnected");
        ok($alice[$i]->eof(3), "alice #$i: the server closed the connection");
    }
    ok($bob->alive, 'bob is still connected');
    # the server ends a session once the client has closed its side too
    $_->close_socket for @alice;
    my $o;
    for (1 .. 50) {
        (undef, undef, $o) = admin({ op => 'online', users => ['alice'] });
        last if $o && !$o->{users}{alice};
        sleep 0.05;
    }
    ok($o && $o->{type} eq 'online' && !$o->{users}{alice},
       'alice is not online any more');
    my (undef, undef, $k) = admin({ op => 'kick', user => 'nobody',
                                    room => 'r' });
    is($k && $k->{connections}, 0, 'kick of a user not here: 0');
}

# refusals: the JSON error object, the status of its code
for my $case (
    [ 'not JSON',            'kick',                          400 ],
    [ 'not an object',       '[1]',                           400 ],
    [ 'no op',               { user => 'a' },                 400 ],
    [ 'a client op',         { op => 'send', room => 'r', text => 't' }, 400 ],
    [ 'join',                { op => 'join', room => 'r' },   400 ],
    [ 'kick without user',   { op => 'kick', room => 'r' },   400 ],
    [ 'kick without room',   { op => 'kick', user => 'a' },   400 ],
    [ 'kick, bad room',      { op => 'kick', user => 'a', room => 'a b' },
      400 ],
    [ 'kick, empty user',    { op => 'kick', user => '', room => 'r' }, 400 ],
    [ 'kick, user too long', { op => 'kick', user => 'u' x 257, room => 'r' },
      400 ],
    [ 'kick, user a number', { op => 'kick', user => 5, room => 'r' }, 400 ],
    [ 'kick, control char',  "{\"op\":\"kick\",\"user\":\"a\\u0001\",\"room\":\"r\"}",
      400 ],
    [ 'ban negative',        { op => 'kick', user => 'a', room => 'r',
                               ban => -1 },                   400 ],
    [ 'ban a string',        { op => 'kick', user => 'a', room => 'r',
                               ban => '5' },                  400 ],
    [ 'ban over ten years',  { op => 'kick', user => 'a', room => 'r',
                               ban => 315360001 },            400 ],
    [ 'disconnect, no user', { op => 'disconnect' },          400 ],
    [ 'online, 101 users',   { op => 'online', users => [ 1 .. 101 ] }, 413 ],
    [ 'not UTF-8',           "{\"op\":\"kick\",\"user\":\"\xff\",\"room\":\"r\"}",
      400 ],
    [ 'too large',           { op => 'online', users => [ 'x' x 200000 ] },
      413 ],
) {
    my ($name, $body, $status) = @$case;
    my ($st, $h, $j, $raw) = admin($body);
    is($st, $status, "$name: $status");
    ok($j && $j->{type} eq 'error' && $j->{code}, "$name: the error object")
        or diag($raw);
}

{
    my ($st, $h, $j) = admin('', method => 'GET');
    is($st, 405, 'GET: 405');
    is($h->{allow}, 'POST', 'GET: Allow: POST');
    is($j && $j->{type}, 'error', 'GET: the error object');
}

my $st = $n->status('/status');
is($st->{kicks}, 3, 'the status counts 3 kicks (connections)');
is($st->{disconnects}, 3, 'and 3 disconnects');
is($st->{forbidden}, 3, 'and 3 joins refused for the ban');
like($n->error_log, qr/\[info\].*chat: "alice" kicked from "r" \(1 connections\), banned for 2 s/,
     'a kick is logged at info');

$n->stop;
done_testing;
