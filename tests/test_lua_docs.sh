#!/bin/sh
# test_lua_docs.sh — the Lua examples of the documentation run, and the Lua
# API's reference names the whole module:
#   1. every ```lua block of docs/LUA.md and README.md is written to a file of
#      its own and run as a script with `dcbench --results DIR BLOCK.lua` in an
#      empty temporary directory; a block that fails is reported with its file
#      and the line of its first line of code, and the test fails. A block whose
#      fence has the line `<!-- not run: reason -->` just before it is skipped
#      (and counted);
#   2. every name of the module's table (`for k in pairs(require "dcb")`,
#      enumerated at run time) is mentioned in docs/LUA.md as `dcb.<name>`, and
#      every `dcb.<name>` that a heading of docs/LUA.md names exists in the
#      module.
#   tests/test_lua_docs.sh [DCBENCH]   (default $DCBENCH, else build/dcbench;
#                                       make test runs it)
set -u
cd "$(dirname "$0")/.." || exit 1
DCB=${1:-${DCBENCH:-build/dcbench}}
case $DCB in /*) ;; *) DCB=$PWD/$DCB ;; esac
[ -x "$DCB" ] || { echo "test_lua_docs: no dcbench at $DCB (build it: make all)" >&2; exit 1; }
DOCS="docs/LUA.md README.md"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/blocks" "$T/work" "$T/res"
# the developer's calibration stays out: figures draw the same everywhere
DCB_CALIBRATION=$T/calibration.json
export DCB_CALIBRATION
TO=
command -v timeout >/dev/null 2>&1 && TO="timeout 300"

# 1. the blocks: "<file> <first line> run|skip <path>" per block in $T/list
for f in $DOCS; do
    [ -f "$f" ] || { echo "test_lua_docs: $f is missing" >&2; exit 1; }
    tag=$(basename "$f" .md)
    awk -v dir="$T/blocks" -v tag="$tag" -v file="$f" -v list="$T/list" '
        inb && /^```[ \t]*$/ { inb = 0; close(out); prev = $0; next }
        inb { print > out; prev = $0; next }
        /^```lua[ \t]*$/ {
            inb = 1; start = NR + 1; out = dir "/" tag "_" start ".lua"
            printf "" > out
            print file, start, (prev ~ /^<!-- not run:/ ? "skip" : "run"), out >> list
            prev = $0; next
        }
        { prev = $0 }
        END { if (inb) { print "test_lua_docs: " file ":" start ": a lua block without its closing fence" > "/dev/stderr"; exit 1 } }
    ' "$f" || exit 1
done
[ -s "$T/list" ] || { echo "test_lua_docs: no lua block in $DOCS" >&2; exit 1; }

ran=0 skipped=0 failed=0
while read -r file line what path; do
    if [ "$what" = skip ]; then
        skipped=$((skipped + 1))
        continue
    fi
    ran=$((ran + 1))
    (cd "$T/work" && $TO "$DCB" --results "$T/res" "$path") >"$T/log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then
        failed=$((failed + 1))
        echo "test_lua_docs: $file:$line: the lua block starting at line $line failed (exit $rc):" >&2
        tail -n 25 "$T/log" | sed 's/^/    /' >&2
    fi
done <"$T/list"

# 2. the module's names against docs/LUA.md
printf '%s\n' 'local t = {}' 'for k in pairs(require "dcb") do t[#t + 1] = k end' \
    'table.sort(t)' 'print(table.concat(t, "\n"))' >"$T/names.lua"
if ! (cd "$T/work" && "$DCB" --results "$T/res" "$T/names.lua") >"$T/names" 2>"$T/log"; then
    echo "test_lua_docs: cannot list the module's names:" >&2
    cat "$T/log" >&2
    exit 1
fi
[ -s "$T/names" ] || { echo "test_lua_docs: the module has no names" >&2; exit 1; }
missing=
for n in $(cat "$T/names"); do
    grep -Eq "dcb\\.$n([^A-Za-z0-9_]|\$)" docs/LUA.md || missing="$missing $n"
done
if [ -n "$missing" ]; then
    failed=$((failed + 1))
    echo "test_lua_docs: docs/LUA.md does not mention dcb.<name> for:$missing" >&2
fi
extra=
for n in $(grep -E '^#' docs/LUA.md | grep -oE 'dcb\.[A-Za-z_][A-Za-z0-9_]*' | sed 's/^dcb\.//' | sort -u); do
    grep -qx "$n" "$T/names" || extra="$extra $n"
done
if [ -n "$extra" ]; then
    failed=$((failed + 1))
    echo "test_lua_docs: docs/LUA.md has headings for names the module does not have:$extra" >&2
fi

nnames=$(wc -l <"$T/names" | tr -d ' ')
if [ "$failed" -ne 0 ]; then
    echo "test_lua_docs: FAILED: $failed problem(s); $ran block(s) run, $skipped skipped" >&2
    exit 1
fi
echo "test_lua_docs: $ran lua block(s) of $DOCS ran, $skipped skipped (marked <!-- not run -->); docs/LUA.md mentions all $nnames names of the dcb module"
