# make install / make uninstall into a DESTDIR: Debian's layout of a
# dynamic module (libnginx-mod-*), and nginx -t with the installed snippet.
# Never installs into the real /usr or /etc.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use ChatTest;
use ChatTest::Process qw(run slurp write_file tempdir);
use File::Path qw(remove_tree);

my $repo = ChatTest::repo_root();

# the files make install writes, below DESTDIR, for a PREFIX
sub layout {
    my ($prefix) = @_;
    return (
        so      => "$prefix/lib/nginx/modules/ngx_chat_module.so",
        snippet => "$prefix/share/nginx/modules-available/mod-chat.conf",
        link    => '/etc/nginx/modules-enabled/50-mod-chat.conf',
    );
}

# lstat of the real paths, to see that the test leaves them alone
sub real_state {
    my %l = (layout('/usr'), layout('/usr/local'));
    return join ',', map { my @s = lstat $_; @s ? "$_:$s[1]:$s[9]" : "$_:-" }
                     sort values %l;
}

sub make {
    my ($dir, @args) = @_;
    my ($rc, $out) = run(cmd => [ 'make', '-C', $repo, @args ],
                         out => "$dir/make.out", timeout => 600);
    return ($rc, $out);
}

my $real_before = real_state();
my $work = tempdir('ngx_chat_install_XXXXXX');

for my $prefix ('/usr', '/usr/local') {
    my $dest = "$work/dest" . ($prefix eq '/usr' ? '' : '-local');
    my @vars = ("DESTDIR=$dest", $prefix eq '/usr' ? () : ("PREFIX=$prefix"));
    my %l = layout($prefix);
    my $what = "PREFIX=$prefix";

    my ($rc, $out) = make($work, 'install', @vars);
    is($rc, 0, "$what: make install DESTDIR succeeds") or diag($out);
    like($out, qr/nginx -t && systemctl reload nginx/,
         "$what: make install prints how to reload");

    # the module, the same bytes as the build
    ok(-f "$dest$l{so}", "$what: $l{so}") or next;
    is((stat "$dest$l{so}")[2] & 07777, 0644, "$what: the .so is 0644");
    ok(slurp("$dest$l{so}") eq slurp("$repo/build/ngx_chat_module.so"),
       "$what: the installed .so is build/ngx_chat_module.so");

    # modules-available: one load_module line with the installed path
    my $snippet = slurp("$dest$l{snippet}");
    ok(defined $snippet, "$what: $l{snippet}") or next;
    is($snippet, "load_module $l{so};\n",
       "$what: the snippet loads the installed module");

    # modules-enabled: a symlink to the final path, as Debian's
    ok(-l "$dest$l{link}", "$what: $l{link} is a symlink");
    is(readlink("$dest$l{link}"), $l{snippet},
       "$what: it points at the snippet's final path (no DESTDIR)");

    # a second install over the first one is fine
    ($rc, $out) = make($work, 'install', @vars);
    is($rc, 0, "$what: make install again succeeds") or diag($out);
    is(readlink("$dest$l{link}"), $l{snippet}, "$what: the symlink is the same");

    # nginx -t with the snippet, its path moved to the DESTDIR copy, the
    # way Debian's nginx.conf includes modules-enabled/*.conf
    (my $adjusted = $snippet) =~ s{load_module \Q$l{so}\E;}
                                  {load_module $dest$l{so};};
    write_file("$work/enabled.conf", $adjusted);
    my $server = 'location = /chat { chat; chat_user $arg_user; }';
    {
        # the installed module is built for Debian's nginx
        local $ENV{NGINX_BIN};
        ($rc, $out) = ChatTest->nginx_t(no_module => 1, server => $server,
                                        main => "include $work/enabled.conf;");
        is($rc, 0, "$what: nginx -t accepts a config including the snippet")
            or diag($out);
        ($rc, $out) = ChatTest->nginx_t(no_module => 1, server => $server);
        isnt($rc, 0, "$what: without it, nginx -t fails");
        like($out, qr/unknown directive "chat"/,
             "$what: ... because chat is an unknown directive") or diag($out);
    }

    # uninstall removes the three files and nothing else
    write_file("$dest/etc/nginx/modules-enabled/50-mod-other.conf", "\n");
    ($rc, $out) = make($work, 'uninstall', @vars);
    is($rc, 0, "$what: make uninstall DESTDIR succeeds") or diag($out);
    ok(!-e "$dest$l{so}", "$what: the .so is gone");
    ok(!-e "$dest$l{snippet}", "$what: the snippet is gone");
    ok(!-l "$dest$l{link}", "$what: the symlink is gone");
    ok(-f "$dest/etc/nginx/modules-enabled/50-mod-other.conf",
       "$what: other modules-enabled files stay");
    ($rc, $out) = make($work, 'uninstall', @vars);
    is($rc, 0, "$what: make uninstall again succeeds") or diag($out);
}

is(real_state(), $real_before, 'the real /usr and /etc are untouched');

remove_tree($work) unless $ENV{CHAT_TEST_KEEP};

done_testing;
