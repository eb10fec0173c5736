#!/usr/bin/env bash
# make debug-nginx: the source of Debian's nginx, with Debian's patches
# applied, in $1 (e.g. build/debug/deb/nginx), with Debian's conf_flags
# (those of nginx-dev) beside configure.
#
# apt-get source needs deb-src entries; rather than adding one to
# /etc/apt, this uses a private apt state under $1's parent: the enabled
# deb entries of /etc/apt turned into deb-src, their own lists and cache.
# It wants the source of the installed nginx; a mirror that no longer has
# it (a security update whose .dsc is gone) gets the newest other source
# of the same upstream version, with a warning.
set -euo pipefail

dest=$1
work=$(dirname "$dest")/apt
etc=/etc/apt

rm -rf "$work" "$dest"
mkdir -p "$work/sources" "$work/lists/partial" "$work/cache/archives/partial" \
         "$work/dl"

for f in "$etc"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$work/sources/${f##*/}"
done
for f in "$etc"/sources.list "$etc"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -nE 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" \
        >"$work/sources/${f##*/}.list"
done

apt=(-q -o "Dir::Etc::SourceList=/dev/null"
     -o "Dir::Etc::SourceParts=$work/sources"
     -o "Dir::State::Lists=$work/lists"
     -o "Dir::Cache=$work/cache")

apt-get "${apt[@]}" update >"$work/update.log" 2>&1 \
    || { cat "$work/update.log"; exit 1; }

want=$(dpkg-query -W -f='${source:Version}' nginx)
upstream=${want%-*}
versions=$(apt-cache "${apt[@]}" showsrc nginx \
               | sed -n 's/^Version: //p' | sort -rV | uniq)

got=
for v in $want $(grep -Fx -v "$want" <<<"$versions" | grep "^$upstream-" || true)
do
    if (cd "$work/dl" && apt-get "${apt[@]}" --download-only source \
            "nginx=$v") >"$work/source.log" 2>&1
    then
        got=$v
        break
    fi
    echo "nginx $v: its source cannot be downloaded here:" >&2
    grep -E '^(E|Err):' "$work/source.log" >&2 || true
done
[ -n "$got" ] || { echo "no nginx $upstream source found" >&2; exit 1; }
[ "$got" = "$want" ] || echo "WARNING: Debian's nginx is $want, building" \
    "from the source of $got (same upstream $upstream)" >&2

dpkg-source --no-copy -x "$work/dl"/nginx_"${got#*:}".dsc "$dest" >"$work/extract.log" \
    || { cat "$work/extract.log"; exit 1; }
cp /usr/share/nginx/src/conf_flags "$dest/conf_flags"
echo "$got" >"$dest/DEBIAN_VERSION"
echo "nginx $got source in $dest"
