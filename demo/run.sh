#!/usr/bin/env bash
# The dlfm demo. Part 1, one word: `dlfm run` in front of an unmodified
# program records on the first run and replays on the second; strace counts
# the lookups that reach the file system. Part 2, the manual's four steps
# underneath: builds the program against the wrapper, patches ld.so, runs the
# pilot, packs the cache, replays it, and reports what the cache served.
# Run from anywhere after `cargo build --release`; works in demo/out/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rel="${DLFM_BIN:-$here/../target/release}"
out="$here/out"
for f in dlfm dlpatch dlfm-pre libdlfm_wrap.a libdlfm_fm.so; do
    [ -e "$rel/$f" ] || { echo "demo: $rel/$f missing: run 'cargo build --release' first" >&2; exit 2; }
done
rm -rf "$out"; mkdir -p "$out"/{lib/a,lib/b,lib/c,lib/plugins}; cd "$out"
chmod -R u+w . 2>/dev/null || true

echo "== build: 4 libraries over 4 RUNPATH directories, one loaded by dlopen"
cc -shared -fPIC -DGREET  -o lib/c/libgreet.so  "$here/libs.c"
cc -shared -fPIC -DUNITS  -o lib/c/libunits.so  "$here/libs.c"
cc -shared -fPIC -DSHAPES -o lib/c/libshapes.so "$here/libs.c" -Llib/c -lunits -Wl,-rpath,"$out/lib/c"
cc -shared -fPIC -DPLUGIN -o lib/plugins/libplugin.so "$here/libs.c"
cc -c -o main.o "$here/main.c"
cc main.o "$rel/libdlfm_wrap.a" -Llib/c -lgreet -lshapes -lunits \
   -Wl,--enable-new-dtags,-rpath,"$out/lib/a:$out/lib/b:$out/lib/c:$out/lib/plugins" \
   -Wl,--dynamic-linker="$out/ld.so" -o demo

# The same program, unmodified (no wrapper, the system's loader).
cc main.o -Llib/c -lgreet -lshapes -lunits \
   -Wl,--enable-new-dtags,-rpath,"$out/lib/a:$out/lib/b:$out/lib/c:$out/lib/plugins" -o plain

# The DLFM interface names the tool `dlfm.pre`; cargo cannot (a dot in a
# binary name), so the name is a link.
ln -sf dlfm-pre "$rel/dlfm.pre"

echo
echo "== part 1: dlfm run ./plain (an unmodified program), twice"
export DLFM_CACHE_DIR="$out/store"
"$rel/dlfm" run ./plain
"$rel/dlfm" run ./plain
"$rel/dlfm" ls
if command -v strace >/dev/null; then
    # Lookups of the program's own process (the one that runs through the
    # store's loader copy), not dlfm's per-job check, nor node-local /dev/shm.
    strace -f -qq -e trace=openat,newfstatat,access -o plain.strace ./plain >/dev/null
    strace -f -qq -e trace=execve,openat,newfstatat,access -o run.strace "$rel/dlfm" run -q ./plain >/dev/null
    pid=$(awk '/execve\("[^"]*\/store\// && / = 0$/ {print $1; exit}' run.strace)
    program_lookups() { grep -E '^[0-9]+ +(openat|newfstatat|access)\(' "$1" | grep -v '"/dev/shm/' | grep -c "${2:-}" || true; }
    printf '   lookups reaching the file system: %d without dlfm (%d ENOENT), %d in the replaying run (%d ENOENT)\n' \
        "$(program_lookups plain.strace)" "$(grep -c ENOENT plain.strace || true)" \
        "$(grep -E "^$pid " run.strace | program_lookups /dev/stdin)" "$(grep -E "^$pid " run.strace | grep -c ENOENT || true)"
fi
unset DLFM_CACHE_DIR

echo
echo "== part 2: the manual's steps underneath, for a program linked with the wrapper"

echo "== dlpatch demo"
"$rel/dlpatch" demo

echo "== pilot (DLFM_OP=write-cache)"
export DLCACHE_DBG=1
DLFM_OP=write-cache "$rel/dlfm.pre" write-cache
DLFM_OP=write-cache ./demo

echo "== pack (dlfm.pre read-cache 4)"
DLFM_OP=read-cache "$rel/dlfm.pre" read-cache 4

echo "== large run (DLFM_OP=read-cache)"
DLFM_OP=read-cache ./demo
echo
echo "== what the wrapper reports (DLCACHE_DBG trace summary lines)"
grep -h "summary:" dlcache.dbg/* || true

if command -v strace >/dev/null; then
    calls='openat,newfstatat,statx,read,pread64,mmap,access,close'
    strace -f -qq -e trace=$calls -o base.strace ./demo >/dev/null
    DLFM_OP=read-cache strace -f -qq -e trace=$calls -o replay.strace ./demo >/dev/null
    # Lookups that reach the file system the program's files are on (not
    # node-local /dev/shm, where read-cache keeps its one copy per node of the cache: a file per library).
    lookups() { grep -E '^[0-9]+ +(openat|newfstatat|access)\(' "$1" | grep -vc '"/dev/shm/' || true; }
    local_lookups() { grep -E '^[0-9]+ +(openat|newfstatat|access)\(' "$1" | grep -c '"/dev/shm/' || true; }
    statxs() { grep -cE '^[0-9]+ +statx\(' "$1" || true; }
    enoent() { grep -c 'ENOENT' "$1" || true; }
    echo
    echo "== file-system lookups (openat/stat/access) before main and at dlopen, from strace"
    printf '   without dlfm:   %4d lookups, %4d of them ENOENT probes\n' "$(lookups base.strace)" "$(enoent base.strace)"
    printf '   with read-cache:%4d lookups, %4d of them ENOENT probes\n' "$(lookups replay.strace)" "$(enoent replay.strace)"
    printf "   and on node-local /dev/shm: %d (the node's copy: its metadata, each library's own file, its lock and pointers)\n" "$(local_lookups replay.strace)"
    echo "   (with read-cache the files opened are dlfm's own: dlcache.dat's header, its node-local copy, the trace files)"
    printf '   statx of dlfm'"'"'s own open files (identity checks: one per library, one per trace line):\n'
    printf '     without dlfm: %d, with read-cache: %d\n' "$(statxs base.strace)" "$(statxs replay.strace)"
    grep -E 'openat\(' replay.strace | sed 's/^/     /'
fi

echo
echo "== node-local copies (an epilog's step frees them)"
"$rel/dlfm.pre" clean
