package ChatTest::SSE;

# A raw Server-Sent Events client: sends any GET, reads the response head
# and then events as they come, each parsed as an EventSource would (its
# data lines joined, its id, what it held raw), comments counted apart.

use strict;
use warnings;
use Time::HiRes qw(time);
use ChatTest ();

# open($port, $path, headers => {...}, rcvbuf => N): the stream, its
# status and head read (status 200 or not: a refusal's body is in {body})
sub open {
    my ($class, $port, $path, %o) = @_;
    my $fh = ChatTest::tcp_connect($port, rcvbuf => $o{rcvbuf});
    my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\n"
            . "Accept: text/event-stream\r\n";
    my %h = %{$o{headers} || {}};
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    $req .= "\r\n";
    ChatTest::write_all($fh, $req, 5) or die "sse: write: $!";

    my $self = bless { fh => $fh, buf => '', events => [], comments => 0,
                       eof => 0, raw => '' }, $class;
    my $deadline = time + ($o{timeout} // 5);
    while (index($self->{buf}, "\r\n\r\n") < 0) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $n = ChatTest::read_some($fh, \$self->{buf}, $left);
        if (defined $n && $n == 0) { $self->{eof} = 1; last }
    }
    my $i = index($self->{buf}, "\r\n\r\n");
    die "sse: no response head" if $i < 0;
    my ($status, $head) = ChatTest::_parse_head(substr($self->{buf}, 0, $i));
    $self->{status} = $status;
    $self->{head} = $head;
    $self->{buf} = substr($self->{buf}, $i + 4);
    if ($status != 200) {
        # the refusal's body: read it whole
        my (undef, undef, $body) = (undef, undef, $self->{buf});
        while (defined $head->{'content-length'}
               && length($body) < $head->{'content-length'}) {
            my $n = ChatTest::read_some($fh, \$body, 2);
            last unless $n;
        }
        $self->{body} = $body;
        $self->{json} = eval { ChatTest::json()->decode($body) };
    }
    return $self;
}

sub status { $_[0]{status} }
sub head   { $_[0]{head} }
sub json   { $_[0]{json} }
sub fh     { $_[0]{fh} }
sub eof    { $_[0]{eof} }
sub comments { $_[0]{comments} }
sub raw    { $_[0]{raw} }

sub _parse {
    my ($self) = @_;
    while ((my $i = index($self->{buf}, "\n\n")) >= 0) {
        my $block = substr($self->{buf}, 0, $i);
        $self->{raw} .= substr($self->{buf}, 0, $i + 2);
        $self->{buf} = substr($self->{buf}, $i + 2);
        my (@data, $id);
        my $comment = 0;
        for my $l (split /\n/, $block) {
            if ($l =~ /^:/) { $comment++; next }
            my ($k, $v) = $l =~ /^([^:]*):? ?(.*)$/;
            push @data, $v if $k eq 'data';
            $id = $v if $k eq 'id';
        }
        if (!@data && !defined $id) {
            $self->{comments} += $comment;
            next;
        }
        my $data = join "\n", @data;
        push @{$self->{events}}, {
            data => $data, id => $id,
            json => eval { ChatTest::json()->decode($data) },
        };
    }
}

# reads for up to $timeout: 1 while the stream is open
sub pump {
    my ($self, $timeout) = @_;
    return 0 if $self->{eof};
    my $n = ChatTest::read_some($self->{fh}, \$self->{buf}, $timeout // 0.1);
    $self->{eof} = 1 if defined $n && $n == 0;
    $self->_parse;
    return !$self->{eof};
}

# the next event (a hash: json, id, data) within $timeout, or undef
sub next_event {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (!@{$self->{events}}) {
        my $left = $deadline - time;
        return undef if $left <= 0 || $self->{eof};
        $self->pump($left > 0.2 ? 0.2 : $left);
    }
    return shift @{$self->{events}};
}

# the next event whose JSON matches every key of %want
sub wait_for {
    my ($self, $timeout, %want) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        my $left = $deadline - time;
        return undef if $left <= 0;
        my $e = $self->next_event($left) or return undef;
        my $j = $e->{json} or next;
        return $e unless grep { !defined $j->{$_} || $j->{$_} ne $want{$_} }
                         keys %want;
    }
}

# every event within $t seconds
sub collect {
    my ($self, $t) = @_;
    my $deadline = time + $t;
    my @got;
    while ((my $left = $deadline - time) > 0) {
        my $e = $self->next_event($left) or last;
        push @got, $e;
    }
    return @got;
}

# waits for the end of the stream (the server closed it)
sub wait_eof {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (!$self->{eof} && time < $deadline) {
        $self->pump(0.2);
    }
    return $self->{eof};
}

sub close_socket { close $_[0]{fh} if $_[0]{fh}; $_[0]{fh} = undef }

1;
