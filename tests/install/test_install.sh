#!/usr/bin/env bash
# test_install.sh - an install is usable as installed: `cmake --install`
# into a scratch prefix puts every file under that prefix, pkg-config finds
# idprime and idprime-config there, programs using only <idprime/idprime.h>
# and <idprime/config.h> build with pkg-config's flags and with a CMake
# project's find_package(idprime), and get their IDs through the installed
# mem plugin, and the installed idprime command runs.
#
# usage: test_install.sh CMAKE BUILD_DIR PREFIX VERSION LIBDIR INCLUDEDIR
#                        BINDIR CC PKG_CONFIG MAIN_C [CFLAG...]
#   PREFIX      the scratch prefix, emptied first (keep it in the build tree)
#   LIBDIR ...  GNUInstallDirs' CMAKE_INSTALL_LIBDIR, _INCLUDEDIR, _BINDIR
#   CFLAG...    extra flags for CC (the sanitizers the library was built with)
set -u

if [ $# -lt 10 ]; then
    sed -n '8,12s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi
CMAKE=$1 BUILD=$2 PREFIX=$3 VERSION=$4 LIBDIR=$5 INCLUDEDIR=$6 BINDIR=$7
CC=$8 PKG_CONFIG=$9 MAIN_C=${10}
shift 10
CFLAGS=("$@")
# shellcheck source-path=SCRIPTDIR source=../cli/check.sh
. "$(dirname "$0")/../cli/check.sh"

case $PREFIX in
/*/*) ;;
*) echo "test_install.sh: PREFIX '$PREFIX' is not a scratch folder" >&2; exit 2 ;;
esac
unset DESTDIR PKG_CONFIG_SYSROOT_DIR IDPRIME_URI
LIB=$PREFIX/$LIBDIR
PLUGINS=$LIB/idprime
ONE_TWO_THREE=$(printf '1\n2\n3')

# same_dir A B: A and B name the same folder once resolved ("x/../.." too).
same_dir() { [ "$(realpath -m -- "$1")" = "$(realpath -m -- "$2")" ]; }

begin "cmake --install --prefix puts every file under the prefix"
rm -rf "$PREFIX"
# `cmake --install BUILD --prefix P` is this script with that prefix; run
# directly it also takes the flag that refuses, before writing it, a file
# whose DESTINATION is absolute and so ignores the prefix (it would land in
# the real /usr/local when the suite runs as root).
run "$CMAKE" -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DCMAKE_ERROR_ON_ABSOLUTE_INSTALL_DESTINATION=ON \
    -P "$BUILD/cmake_install.cmake"
want_rc 0
if grep -q 'ABSOLUTE path INSTALL DESTINATION' <<<"$err"; then
    why "an install() rule has an absolute DESTINATION, which ignores the prefix: make it relative (\${CMAKE_INSTALL_LIBDIR}/idprime)"
fi
end

begin "the library, headers, pkg-config file, mem plugin and command are installed"
for f in "$LIB/libidprime.so" "$PREFIX/$INCLUDEDIR/idprime/idprime.h" \
         "$PREFIX/$INCLUDEDIR/idprime/plugin.h" "$LIB/pkgconfig/idprime.pc" \
         "$PLUGINS/idprime-mem.so" "$PREFIX/$BINDIR/idprime"; do
    [ -e "$f" ] || why "missing $f"
done
end

# Only the scratch prefix's pkg-config folder is searched, so an idprime.pc
# installed on the system cannot answer in its place.
export PKG_CONFIG_PATH=$LIB/pkgconfig PKG_CONFIG_LIBDIR=$LIB/pkgconfig

begin "pkg-config finds idprime $VERSION with its folders in the prefix"
run "$PKG_CONFIG" --modversion idprime
want_rc 0
want_out "$VERSION"
for v in "libdir $LIB" "includedir $PREFIX/$INCLUDEDIR" "plugindir $PLUGINS"; do
    got=$("$PKG_CONFIG" --variable="${v%% *}" idprime 2>&1)
    same_dir "$got" "${v#* }" || why "${v%% *} is '$got', not ${v#* }"
done
end

EXAMPLE=$PREFIX.example
begin "a program using only <idprime/idprime.h> builds with pkg-config's flags"
rm -f "$EXAMPLE"
flags=$("$PKG_CONFIG" --cflags --libs idprime)
# shellcheck disable=SC2086 # pkg-config's flags are meant to split
run "$CC" -std=c99 -Wall -Wextra -Wpedantic -Werror "${CFLAGS[@]}" \
    -o "$EXAMPLE" "$MAIN_C" $flags
want_rc 0
[ -x "$EXAMPLE" ] || why "no program $EXAMPLE"
end

begin "the program prints 1 2 3 through the installed library and mem plugin"
if [ -x "$EXAMPLE" ]; then
    run env LD_LIBRARY_PATH="$LIB" IDPRIME_PLUGIN_PATH="$PLUGINS" "$EXAMPLE"
    want_rc 0
    want_out "$ONE_TWO_THREE"
else
    why "the program did not build"
fi
end

CONFIG_EXAMPLE=$PREFIX.config_example
SCRIPT=$PREFIX.config.lua
printf 'return { uri = "mem://", defaults = { batch = 16 } }\n' > "$SCRIPT"

begin "pkg-config finds idprime-config $VERSION, and a program using <idprime/config.h> builds with its flags"
rm -f "$CONFIG_EXAMPLE"
run "$PKG_CONFIG" --modversion idprime-config
want_rc 0
want_out "$VERSION"
flags=$("$PKG_CONFIG" --cflags --libs idprime-config)
# shellcheck disable=SC2086 # pkg-config's flags are meant to split
run "$CC" -std=c99 -Wall -Wextra -Wpedantic -Werror "${CFLAGS[@]}" \
    -o "$CONFIG_EXAMPLE" "$(dirname "$MAIN_C")/config_main.c" $flags
want_rc 0
end

begin "the config program prints 1 2 3 from its script's store"
if [ -x "$CONFIG_EXAMPLE" ]; then
    run env LD_LIBRARY_PATH="$LIB" IDPRIME_PLUGIN_PATH="$PLUGINS" \
        "$CONFIG_EXAMPLE" "$SCRIPT"
    want_rc 0
    want_out "$ONE_TWO_THREE"
else
    why "the program did not build"
fi
end

# A downstream CMake project that knows only the prefix.
DOWN=$PREFIX.downstream
begin "find_package(idprime 0.2) gives idprime::idprime and idprime::config"
rm -rf "$DOWN"
run "$CMAKE" -S "$(dirname "$MAIN_C")/downstream" -B "$DOWN" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_C_FLAGS="${CFLAGS[*]}" \
    -DEXAMPLE_DIR="$(dirname "$MAIN_C")" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
want_rc 0
grep -q "idprime_DIR:PATH=$LIB/cmake/idprime" "$DOWN/CMakeCache.txt" ||
    why "idprime was not found in $LIB/cmake/idprime"
run "$CMAKE" --build "$DOWN"
want_rc 0
end

begin "the CMake-built programs print 1 2 3"
if [ -x "$DOWN/example" ] && [ -x "$DOWN/config_example" ]; then
    run env LD_LIBRARY_PATH="$LIB" IDPRIME_PLUGIN_PATH="$PLUGINS" "$DOWN/example"
    want_rc 0
    want_out "$ONE_TWO_THREE"
    run env LD_LIBRARY_PATH="$LIB" IDPRIME_PLUGIN_PATH="$PLUGINS" \
        "$DOWN/config_example" "$SCRIPT"
    want_rc 0
    want_out "$ONE_TWO_THREE"
else
    why "the downstream project did not build"
fi
end

begin "find_package(idprime 0.3) and (idprime 1.0) refuse this 0.2 install"
for v in 0.3 1.0; do
    d=$DOWN.v$v
    mkdir -p "$d"
    printf 'cmake_minimum_required(VERSION 3.18)\nproject(p LANGUAGES C)\nfind_package(idprime %s REQUIRED)\n' "$v" > "$d/CMakeLists.txt"
    run "$CMAKE" -S "$d" -B "$d/build" -DCMAKE_PREFIX_PATH="$PREFIX"
    [ "$rc" -ne 0 ] || why "find_package(idprime $v) accepted version $VERSION"
    grep -q "version: $VERSION" <<<"$err$out" || why "the refusal does not name version $VERSION"
done
end

begin "the installed command lists the installed mem plugin"
run env LD_LIBRARY_PATH="$LIB" IDPRIME_PLUGIN_PATH="$PLUGINS" \
    "$PREFIX/$BINDIR/idprime" plugins
want_rc 0
[ "$(grep '^mem ' <<<"$out" | tr -s ' ')" = "mem mem 2 $PLUGINS/idprime-mem.so" ] ||
    why "mem is not listed once, from $PLUGINS/idprime-mem.so"
end

begin "the installed library finds its plugins beside itself, never in the build tree"
# no IDPRIME_PLUGIN_PATH: only idprime/ beside the running libidprime.so
# (and the configured LIBDIR/idprime) are searched
run env -u IDPRIME_PLUGIN_PATH LD_LIBRARY_PATH="$LIB" "$PREFIX/$BINDIR/idprime" plugins
want_rc 0
[ "$(grep '^mem ' <<<"$out" | tr -s ' ')" = "mem mem 2 $PLUGINS/idprime-mem.so" ] ||
    why "mem is not listed from $PLUGINS/idprime-mem.so"
grep -q "$BUILD/lib" <<<"$out$err" && why "a plugin of the build tree ($BUILD/lib) was looked at"
grep -qF "$BUILD/lib" "$LIB/libidprime.so" && why "$LIB/libidprime.so holds the build tree's path $BUILD/lib"
end

begin "the installed command hands out IDs"
run env LD_LIBRARY_PATH="$LIB" IDPRIME_PLUGIN_PATH="$PLUGINS" \
    "$PREFIX/$BINDIR/idprime" next mem:// c -n 3
want_rc 0
want_out "$ONE_TWO_THREE"
end

summary
