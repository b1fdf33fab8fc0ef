#!/usr/bin/env bash
# Tries the README's two commands (scripts/main.sh, then scripts/test.sh) on
# a throwaway Debian bookworm root (debootstrap --variant=minbase), the way
# a fresh machine would run them: as root, from the top folder of a clone of
# this repository's HEAD (committed files only), with ../shared beside it
# when there is one here (CI has it beside its clone). Reports each
# command's exit code and wall time; their logs stay in the folder it prints
# (build-fresh/<date>/, git-ignored). Not part of CI; needs root, apt (for
# debootstrap) and the network to this machine's Debian mirror.
#
#   scripts/check-fresh.sh                  both commands
#   scripts/check-fresh.sh --only main      only scripts/main.sh (or: test)
#   scripts/check-fresh.sh --keep           keep the root (its path is printed)
#
# Environment: FRESH_MIRROR (default: the first Debian mirror of this
# machine's apt sources), FRESH_TMP (where the root goes, default /var/tmp).
#
# Everything that mounts or runs inside the root runs in its own mount and
# PID namespace (unshare), so no mount is ever made in this machine's
# namespace and every process it started dies with it, Ctrl-C or not; the
# EXIT trap still kills whatever has the root as its root, unmounts
# whatever is mounted under it, and removes it only when nothing is.
set -euo pipefail

usage() { sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "$0"; }

# --- the inner part: runs as PID 1 of a new PID + mount namespace --------
if [ "${1:-}" = --inner ]; then
  shift
  root=$1 logs=$2 mirror=$3 security=$4 name=$5; shift 5
  trap 'exit 130' INT TERM   # as PID 1, a signal without a handler is ignored

  if [ ! -x "$root/usr/bin/apt-get" ]; then
    echo "== debootstrap bookworm (minbase) from $mirror into $root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" \
      >"$logs/debootstrap.log" 2>&1 || {
        tail -30 "$logs/debootstrap.log" >&2
        echo "debootstrap failed (log $logs/debootstrap.log)" >&2
        exit 1
      }
  fi
  # the same suites this machine uses (updates, security), nothing else
  {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -z "$security" ] || echo "deb $security bookworm-security main"
  } >"$root/etc/apt/sources.list"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # a real install has these; debootstrap leaves /etc/hosts out
  [ -s "$root/etc/hosts" ] ||
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

  mount -t proc proc "$root/proc"          # this namespace's processes
  mount --bind /sys "$root/sys"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
  mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"

  status=0
  for cmd in "$@"; do
    log=$logs/$cmd.log
    echo "== scripts/$cmd.sh (log $log)"
    start=$(date +%s)
    rc=0
    chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      /bin/bash -c "cd /work/$name && scripts/$cmd.sh" </dev/null >"$log" 2>&1 || rc=$?
    secs=$(( $(date +%s) - start ))
    printf '%s\t%s\t%dm%02ds\n' "scripts/$cmd.sh" "$rc" $((secs / 60)) $((secs % 60)) >>"$logs/summary"
    echo "   exit $rc after $((secs / 60))m$((secs % 60))s; its last lines:"
    tail -15 "$log" | sed 's/^/   | /'
    [ "$rc" = 0 ] || status=1
  done
  exit "$status"
fi

# --- the outer part --------------------------------------------------------
# (one block, read whole before it runs: editing this file during a run,
# which takes a while, cannot derail it)
{
keep=0
only=(main test)
while [ $# -gt 0 ]; do
  case $1 in
    --keep) keep=1 ;;
    --only)
      case ${2:-} in main|test) only=("$2") ;; *) usage >&2; exit 2 ;; esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

self=$(readlink -f "$0")
[ "$(id -u)" -eq 0 ] || { echo "check-fresh.sh: needs root (debootstrap, mount, chroot)" >&2; exit 2; }
top=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
name=$(basename "$top")
head=$(git -C "$top" rev-parse HEAD)

# this machine's Debian mirror (deb822 .sources or one-line .list), and
# its security mirror if it has one
apt_uris() {
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]\+\).*/\2/p'
  } | grep -v '^$' || true
}
mirror=${FRESH_MIRROR:-$(apt_uris | grep -v -- '-security' | grep -m1 '/debian/\{0,1\}$' || true)}
mirror=${mirror:-http://deb.debian.org/debian}
security=$(apt_uris | grep -m1 -- 'debian-security/\{0,1\}$' || true)

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "== installing debootstrap"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
fi

logs=$top/build-fresh/$(date +%Y%m%d-%H%M%S)
mkdir -p "$logs"
root=$(mktemp -d "${FRESH_TMP:-/var/tmp}/idprime-fresh.XXXXXX")
chmod 755 "$root"
inner=

# kill whatever runs with $root as its root (there should be nothing left
# once the namespace is gone; this is the belt to its braces)
kill_in_root() {
  local sig p r any=0
  for sig in TERM KILL; do
    any=0
    for p in /proc/[0-9]*; do
      r=$(readlink "$p/root" 2>/dev/null) || continue
      case $r in "$root"|"$root"/*) kill -"$sig" "${p#/proc/}" 2>/dev/null && any=1 ;; esac
    done
    [ "$any" = 1 ] || return 0
    sleep 2
  done
}
mounts_under_root() {
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts
}
cleanup() {
  local rc=$? m
  trap - EXIT INT TERM
  if [ -n "$inner" ] && kill -0 "$inner" 2>/dev/null; then
    kill -TERM "$inner" 2>/dev/null || true
    sleep 1
    kill -KILL "$inner" 2>/dev/null || true
    wait "$inner" 2>/dev/null || true
  fi
  kill_in_root
  # nothing should be mounted here (the mounts lived in the namespace);
  # if something is, unmount it, deepest first, lazily as a last resort
  for m in $(mounts_under_root | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if [ -n "$(mounts_under_root)" ]; then
    echo "check-fresh.sh: still mounted under $root, NOT removing it:" >&2
    mounts_under_root >&2
    rc=1
  elif [ "$keep" = 1 ]; then
    echo "== kept the root: $root (nothing mounted; remove it with rm -rf --one-file-system)"
  else
    rm -rf --one-file-system "$root"
  fi
  echo "== logs: $logs"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== fresh root $root; clone of $top at ${head:0:12}; logs $logs"
mkdir -p "$root/work"
git clone -q --no-hardlinks "$top" "$root/work/$name"
git -C "$root/work/$name" checkout -q --detach "$head"
if [ -d "$top/../shared" ]; then
  cp -a "$top/../shared" "$root/work/shared"
fi

{
  echo "head $head"
  echo "mirror $mirror"
  echo "security ${security:-none}"
  echo "started $(date -u +%FT%TZ)"
} >"$logs/info"
: >"$logs/summary"

# --pdeathsig: if this script dies, even of SIGKILL, unshare gets SIGKILL;
# --kill-child: if unshare dies, its child (PID 1 of the namespace) gets
# SIGKILL, and with it every process of the namespace
rc=0
setpriv --pdeathsig KILL \
  unshare --mount --pid --fork --kill-child --propagation private \
  bash "$self" --inner "$root" "$logs" "$mirror" "$security" "$name" "${only[@]}" &
inner=$!
wait "$inner" || rc=$?
inner=

echo "== results (exit code, wall time):"
column -t -s $'\t' "$logs/summary" 2>/dev/null || cat "$logs/summary"
exit "$rc"
}
