#!/usr/bin/perl
# A correct Maelstrom echo node in Perl (core modules only: JSON::PP).
use strict;
use warnings;
use JSON::PP;
$| = 1;
my $json = JSON::PP->new->canonical;
my ($me, $next) = ("", 0);
while (my $line = <STDIN>) {
    my $msg = $json->decode($line);
    my $body = $msg->{body};
    my $reply;
    if ($body->{type} eq "init") {
        $me = $body->{node_id};
        $reply = {type => "init_ok"};
    } elsif ($body->{type} eq "echo") {
        $reply = {type => "echo_ok", echo => $body->{echo}};
    } else {
        next;
    }
    $reply->{in_reply_to} = $body->{msg_id};
    $reply->{msg_id} = ++$next;
    print $json->encode({src => $me, dest => $msg->{src}, body => $reply}), "\n";
}
