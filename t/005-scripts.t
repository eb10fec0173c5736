# The Lua scripts of src/lua/ are what the module embeds: the checked-in
# src/ngx_chat_scripts.[ch] are exactly what src/lua/embed.pl writes, each
# script documents its KEYS and ARGV, and the embedded code carries no
# comments.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use File::Temp ();

my $root = ChatTest::repo_root();
my $tmp = File::Temp::tempdir('ngx_chat_scripts_XXXXXX', TMPDIR => 1,
                              CLEANUP => 1);

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return undef;
    local $/;
    return scalar <$fh>;
}

my $rc = system($^X, "$root/src/lua/embed.pl", "$root/src/lua",
                "$tmp/ngx_chat_scripts");
is($rc, 0, 'embed.pl runs');

for my $ext (qw(c h)) {
    my $want = slurp("$tmp/ngx_chat_scripts.$ext");
    my $have = slurp("$root/src/ngx_chat_scripts.$ext");
    ok(defined $want && defined $have && $want eq $have,
       "src/ngx_chat_scripts.$ext is up to date"
       . " (run: perl src/lua/embed.pl src/lua src/ngx_chat_scripts)");
}

opendir my $dh, "$root/src/lua" or die "src/lua: $!";
my @scripts = sort grep { /^[a-z_]+\.lua$/ } readdir $dh;
closedir $dh;

cmp_ok(scalar @scripts, '>=', 10, 'every script in a file of its own: '
       . join(' ', @scripts));

my $c = slurp("$root/src/ngx_chat_scripts.c") // '';

for my $file (@scripts) {
    my $text = slurp("$root/src/lua/$file");
    (my $name = $file) =~ s/\.lua$//;
    like($text, qr/^-- KEYS\[1\]|^-- ARGV\[1\]/m,
         "$file documents its KEYS and ARGV");
    like($c, qr/\bngx_chat_script_$name\[\]/, "$file is embedded");

    for my $inc ($text =~ /^--#include\s+(\S+)/mg) {
        ok(-f "$root/src/lua/lib/$inc", "$file includes lib/$inc");
    }
}

unlike($c, qr/"\s*--/, 'no Lua comment travels to Redis');
like($c, qr/redis\.call\('TIME'\)/, 'the time prelude is embedded');

done_testing();
