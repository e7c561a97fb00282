#!/bin/sh
# bench_cache_hit.sh - builds and runs bench_cache_hit.c: an instrumented
# load that hits llview's page cache vs a plain load, side by side, as ns per
# load and a ratio (target: at most 5x, a few ns).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang-19 -O2 -Wall -Wextra -I"$here/../runtime/include" -I"$here/../runtime/src" \
	"$here/bench_cache_hit.c" "$here/bench_cache_hit_stubs.c" -o "$out/bench_cache_hit"
"$out/bench_cache_hit"
