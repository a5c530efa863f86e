#!/usr/bin/env bash
# Rebuilds the committed BPF object, chadthrottle.bpf.o, from chadthrottle.bpf.c.
#
#   crates/chadthrottle-kernel/bpf/build.sh           rebuild it in place
#   crates/chadthrottle-kernel/bpf/build.sh --check   fail if the committed one differs
#
# The object is committed so that `cargo build` needs no clang; CI runs --check. The
# compiler is pinned: another clang emits other bytes. Needs (Debian): clang-19 llvm-19
# libbpf-dev linux-libc-dev.
set -euo pipefail

CLANG_VERSION=19.1.7
clang=${CLANG:-clang-19}
strip=${LLVM_STRIP:-llvm-strip-19}
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v "$clang" >/dev/null || ! command -v "$strip" >/dev/null; then
    echo "build.sh: $clang and $strip are needed: apt-get install clang-19 llvm-19 libbpf-dev" >&2
    exit 1
fi
version=$("$clang" --version | sed -n 's/.*clang version \([0-9][0-9.]*\).*/\1/p' | head -n 1)
if [ "$version" != "$CLANG_VERSION" ]; then
    echo "build.sh: clang $CLANG_VERSION is pinned, $clang is $version" >&2
    exit 1
fi
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here"
"$clang" -O2 -g -target bpfel -mcpu=v3 -Wall -Werror \
    -I include -I "/usr/include/$multiarch" \
    -fdebug-prefix-map="$here"=. -fdebug-compilation-dir=. \
    -c chadthrottle.bpf.c -o "$tmp/chadthrottle.bpf.o"
# DWARF is not needed at load time; BTF and BTF.ext (maps, CO-RE) stay.
"$strip" -g "$tmp/chadthrottle.bpf.o"

if [ "${1:-}" = "--check" ]; then
    if ! cmp -s "$tmp/chadthrottle.bpf.o" chadthrottle.bpf.o; then
        echo "build.sh: chadthrottle.bpf.o is stale: run crates/chadthrottle-kernel/bpf/build.sh and commit it" >&2
        exit 1
    fi
    echo "build.sh: chadthrottle.bpf.o is up to date"
else
    cp "$tmp/chadthrottle.bpf.o" chadthrottle.bpf.o
    echo "build.sh: wrote $here/chadthrottle.bpf.o ($(stat -c %s chadthrottle.bpf.o) bytes)"
fi
