#!/usr/bin/perl
# Embeds the Lua scripts of this directory into the module:
#
#   perl src/lua/embed.pl src/lua src/ngx_chat_scripts
#
# writes src/ngx_chat_scripts.h (one NGX_CHAT_SCRIPT_<NAME> per script)
# and src/ngx_chat_scripts.c (their texts).  A line "--#include F" is
# replaced by lib/F; comment lines and blank lines are left out, so Redis
# gets only the code.  t/005-scripts.t checks that the files in the
# repository are what this writes.

use strict;
use warnings;

my ($dir, $out) = @ARGV;
die "usage: $0 LUA_DIR OUT_BASE\n" unless defined $out;

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or die "$path: $!\n";
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

sub code {
    my ($path) = @_;
    my @lines;

    for my $line (split /\n/, slurp($path)) {
        if ($line =~ /^--#include\s+(\S+)\s*$/) {
            push @lines, code("$dir/lib/$1");
            next;
        }

        next if $line =~ /^\s*(--.*)?$/;
        die "$path: a line over 72 columns: $line\n" if length $line > 72;
        push @lines, $line;
    }

    return @lines;
}

sub c_string {
    my ($line) = @_;
    $line =~ s/\\/\\\\/g;
    $line =~ s/"/\\"/g;
    return "    \"$line\\n\"";
}

opendir my $dh, $dir or die "$dir: $!\n";
my @scripts = sort grep { /^[a-z_]+\.lua$/ } readdir $dh;
closedir $dh;

my $notice = "/*\n * Copyright (C) ngx_chat authors\n */\n\n\n"
           . "/* written by src/lua/embed.pl from src/lua/: do not edit */\n";

my $h = "\n$notice\n\n"
      . "#ifndef _NGX_CHAT_SCRIPTS_H_INCLUDED_\n"
      . "#define _NGX_CHAT_SCRIPTS_H_INCLUDED_\n\n\n"
      . "#include <ngx_config.h>\n#include <ngx_core.h>\n\n\n";

my $c = "\n$notice\n\n"
      . "#include <ngx_config.h>\n#include <ngx_core.h>\n"
      . "#include \"ngx_chat_scripts.h\"\n\n\n";

my @names;
my $i = 0;

for my $file (@scripts) {
    (my $name = $file) =~ s/\.lua$//;
    push @names, $name;

    $h .= sprintf "#define NGX_CHAT_SCRIPT_%-16s %d\n", uc $name, $i++;

    $c .= "static u_char  ngx_chat_script_$name\[\] =\n"
        . join("\n", map { c_string($_) } code("$dir/$file")) . ";\n\n";
}

$h .= sprintf "\n#define NGX_CHAT_SCRIPTS          %d\n\n\n", scalar @names;
$h .= "extern ngx_str_t  ngx_chat_scripts[];\n\n\n"
    . "#endif /* _NGX_CHAT_SCRIPTS_H_INCLUDED_ */\n";

$c .= "\n/* by NGX_CHAT_SCRIPT_* */\n\n"
    . "ngx_str_t  ngx_chat_scripts[] = {\n"
    . join(",\n", map {
          "    ngx_string(ngx_chat_script_$_)"
      } @names)
    . "\n};\n";

for (["$out.h", $h], ["$out.c", $c]) {
    my ($path, $text) = @$_;
    open my $fh, '>', "$path.tmp" or die "$path.tmp: $!\n";
    print $fh $text;
    close $fh or die "$path.tmp: $!\n";
    rename "$path.tmp", $path or die "$path: $!\n";
}
