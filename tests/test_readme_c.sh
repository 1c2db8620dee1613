#!/bin/sh
# test_readme_c.sh — every ```c block of README.md, verbatim: installed
# with `make install` into a temporary prefix, compiled with the command the
# README gives (cc demo.c $(pkg-config --cflags --libs dcb)), run with no
# LD_LIBRARY_PATH (the rpath of dcb.pc finds the library), exit status 0,
# and the shared library found is the installed one, by its SONAME; then
# the same block linked with `pkg-config --static --libs dcb-static`, which
# must load no libdcb at all.
#   tests/test_readme_c.sh [BUILD]   (default build; make test runs it)
set -e
BUILD=${1:-build}
cd "$(dirname "$0")/.."
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
make --no-print-directory -s BUILD="$BUILD" install PREFIX="$T/p" >/dev/null
for l in libdcb.so libdcb.so.0; do
    [ -e "$T/p/lib/$l" ] || { echo "test_readme_c: make install made no $l" >&2; exit 1; }
done
n=0
awk -v dir="$T" '/^```c$/ { f = 1; n++; out = dir "/demo" n ".c"; next } /^```$/ { f = 0 } f { print > out }' README.md
for src in "$T"/demo*.c; do
    [ -f "$src" ] || continue
    n=$((n + 1))
    exe=${src%.c}
    # shellcheck disable=SC2046
    cc -o "$exe" "$src" $(PKG_CONFIG_PATH="$T/p/lib/pkgconfig" pkg-config --cflags --libs dcb)
    ldd "$exe" | grep -q "libdcb.so.0 => $T/p/lib/" ||
        { echo "test_readme_c: $exe does not load the installed libdcb.so.0:" >&2; ldd "$exe" >&2; exit 1; }
    (cd "$T" && env -u LD_LIBRARY_PATH "$exe") ||
        { echo "test_readme_c: $(basename "$src") (README's C block $n) failed" >&2; exit 1; }
    # the static library, as the README gives it: no libdcb.so at run time
    # shellcheck disable=SC2046
    cc -o "$exe-static" "$src" $(PKG_CONFIG_PATH="$T/p/lib/pkgconfig" pkg-config --static --cflags --libs dcb-static)
    if ldd "$exe-static" | grep -q libdcb; then
        echo "test_readme_c: $exe-static, linked with pkg-config --static dcb-static, loads libdcb:" >&2
        ldd "$exe-static" >&2; exit 1
    fi
    (cd "$T" && env -u LD_LIBRARY_PATH "$exe-static") ||
        { echo "test_readme_c: $(basename "$src") (README's C block $n), linked statically, failed" >&2; exit 1; }
done
[ "$n" -ge 1 ] || { echo "test_readme_c: README.md has no C block" >&2; exit 1; }
echo "test_readme_c: $n C block(s) of README.md compiled with pkg-config against a temporary install (shared and static) and ran"
