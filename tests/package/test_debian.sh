#!/usr/bin/env bash
# test_debian.sh - the Debian packages build from the tree and work from
# their files alone: `dpkg-buildpackage -b -us -uc` on a copy of the
# tracked files, lintian reports no error, every package holds what it
# should (the mem plugin in libidprime1, each store's plugin in its own
# package, nothing of a client library in a package that does not need
# it), the version is the CMake project's, and, unpacked into a scratch
# root, the command hands out IDs from the packaged SQLite store and a
# program builds against the packaged pkg-config files and runs.
#
# usage: test_debian.sh SOURCE_DIR WORK_DIR
#   WORK_DIR  emptied first (keep it in a build tree)
set -u

if [ $# -ne 2 ]; then
    sed -n '11,12s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi
SRC=$(realpath -- "$1")
WORK=$2
RUN_TIMEOUT=900   # a whole package build is one command
# shellcheck source-path=SCRIPTDIR source=../cli/check.sh
. "$SRC/tests/cli/check.sh"

case $WORK in
/*/*) ;;
*) echo "test_debian.sh: WORK_DIR '$WORK' is not a scratch folder" >&2; exit 2 ;;
esac
rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/root"
VERSION=$(sed -n 's/^project(idprime VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
LIB=usr/lib/$MA

begin "debian/changelog carries the CMake project version ($VERSION)"
run dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version
want_rc 0
want_out "$VERSION"
end

begin "dpkg-buildpackage -b -us -uc builds every package"
# the tracked files and new ones not ignored: what a clean clone holds
(cd "$SRC" && git ls-files -z -co --exclude-standard) |
    (cd "$SRC" && tar --null -cf - -T - 2>/dev/null) | tar -xf - -C "$WORK/src"
run bash -c "cd '$WORK/src' && dpkg-buildpackage -b -us -uc"
want_rc 0
[ "$rc" -eq 0 ] || tail -n 40 <<<"$out$err" >&2
PKGS=(libidprime1 libidprime-config0 libidprime-dev idprime lua-idprime
      idprime-plugin-redis idprime-plugin-memcached idprime-plugin-postgresql
      idprime-plugin-mysql)
for p in "${PKGS[@]}"; do
    [ -f "$WORK/${p}_${VERSION}_$ARCH.deb" ] || why "no ${p}_${VERSION}_$ARCH.deb"
done
end

begin "lintian reports no error"
# (as root it warns on stderr that root is not recommended; not a tag)
run lintian --fail-on error "$WORK/idprime_${VERSION}_$ARCH.changes"
want_rc 0
grep '^E:' <<<"$out" >&2
end

# contents PKG: the files of a package, one a line
contents() { dpkg-deb -c "$WORK/${1}_${VERSION}_$ARCH.deb" | awk '{print $6}'; }
depends() { dpkg-deb -f "$WORK/${1}_${VERSION}_$ARCH.deb" Depends; }

begin "each package holds its own files"
for want in "libidprime1 ./$LIB/libidprime.so.1" \
            "libidprime1 ./$LIB/idprime/idprime-mem.so" \
            "libidprime-config0 ./$LIB/libidprime-config.so.0" \
            "libidprime-dev ./usr/include/idprime/idprime.h" \
            "libidprime-dev ./$LIB/pkgconfig/idprime.pc" \
            "libidprime-dev ./$LIB/pkgconfig/idprime-config.pc" \
            "libidprime-dev ./$LIB/cmake/idprime/idprimeConfig.cmake" \
            "idprime ./usr/bin/idprime" \
            "idprime ./$LIB/idprime/idprime-sqlite.so" \
            "lua-idprime ./$LIB/lua/5.4/idprime.so" \
            "idprime-plugin-redis ./$LIB/idprime/idprime-redis.so" \
            "idprime-plugin-memcached ./$LIB/idprime/idprime-memcached.so" \
            "idprime-plugin-postgresql ./$LIB/idprime/idprime-postgresql.so" \
            "idprime-plugin-mysql ./$LIB/idprime/idprime-mysql.so"; do
    p=${want%% *} f=${want#* }
    contents "$p" | grep -qxF -- "$f" || why "$p lacks $f"
done
end

begin "a store's client library is a dependency of its plugin's package only"
for p in libidprime1 lua-idprime libidprime-dev; do
    d=$(depends "$p")
    for client in libhiredis libmemcached libpq libmariadb; do
        grep -q "$client" <<<"$d" && why "$p depends on $client: $d"
    done
done
grep -q libpq <<<"$(depends idprime-plugin-postgresql)" ||
    why "idprime-plugin-postgresql does not depend on libpq"
grep -q libmariadb <<<"$(depends idprime-plugin-mysql)" ||
    why "idprime-plugin-mysql does not depend on libmariadb"
end

ROOT=$WORK/root
for p in "${PKGS[@]}"; do
    dpkg-deb -x "$WORK/${p}_${VERSION}_$ARCH.deb" "$ROOT" 2>/dev/null
done
unset IDPRIME_PLUGIN_PATH IDPRIME_URI
export LD_LIBRARY_PATH=$ROOT/$LIB
ONE_TWO_THREE=$(printf '1\n2\n3')

begin "the packaged command reports the version and hands out IDs from its SQLite store"
run "$ROOT/usr/bin/idprime" --version
want_rc 0
grep -qF "$VERSION" <<<"$out" || why "--version says '$out', not $VERSION"
run "$ROOT/usr/bin/idprime" next "sqlite://$WORK/ids.db" inode -n 3
want_rc 0
want_out "$ONE_TWO_THREE"
run "$ROOT/usr/bin/idprime" plugins
grep -q "$ROOT/$LIB/idprime/idprime-sqlite.so" <<<"$out$err" ||
    why "the sqlite plugin was not taken from the scratch root: $out"
end

begin "a program builds with the packaged pkg-config files and runs on the packaged library"
export PKG_CONFIG_PATH=$ROOT/$LIB/pkgconfig PKG_CONFIG_LIBDIR=$ROOT/$LIB/pkgconfig
run pkg-config --modversion idprime
want_rc 0
want_out "$VERSION"
flags=$(pkg-config --cflags --libs idprime)
# shellcheck disable=SC2086 # pkg-config's flags are meant to split
run cc -std=c99 -Wall -Wextra -Werror -o "$WORK/example" \
    "$SRC/tests/install/main.c" $flags
want_rc 0
run "$WORK/example"
want_rc 0
want_out "$ONE_TWO_THREE"
end

summary
