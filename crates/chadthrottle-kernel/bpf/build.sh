#!/usr/bin/env bash
# Rebuilds the committed BPF object, chadthrottle.bpf.o, from the *.bpf.c files here.
#
#   crates/chadthrottle-kernel/bpf/build.sh           rebuild it in place
#   crates/chadthrottle-kernel/bpf/build.sh --check   fail if the committed one differs
#
# Each *.bpf.c is its own unit, compiled to LLVM IR; the units are linked (llvm-link) and
# compiled to one object (llc), so maps are defined once (maps.bpf.c) and declared where
# they are used (include/maps.h). The object is committed so that `cargo build` needs no
# clang; CI runs --check. The compiler is pinned: another LLVM emits other bytes. Needs
# (Debian): clang-19 llvm-19 libbpf-dev linux-libc-dev.
set -euo pipefail

LLVM_VERSION=19.1.7
clang=${CLANG:-clang-19}
link=${LLVM_LINK:-llvm-link-19}
llc=${LLC:-llc-19}
strip=${LLVM_STRIP:-llvm-strip-19}
here=$(cd "$(dirname "$0")" && pwd)

for tool in "$clang" "$link" "$llc" "$strip"; do
    if ! command -v "$tool" >/dev/null; then
        echo "build.sh: $tool is needed: apt-get install clang-19 llvm-19 libbpf-dev" >&2
        exit 1
    fi
done
version=$("$clang" --version | sed -n 's/.*clang version \([0-9][0-9.]*\).*/\1/p' | head -n 1)
llc_version=$("$llc" --version | sed -n 's/.*LLVM version \([0-9][0-9.]*\).*/\1/p' | head -n 1)
if [ "$version" != "$LLVM_VERSION" ] || [ "$llc_version" != "$LLVM_VERSION" ]; then
    echo "build.sh: LLVM $LLVM_VERSION is pinned, $clang is $version and $llc is $llc_version" >&2
    exit 1
fi
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here"
# A fixed order (the C locale's), so that the object is the same on every machine.
units=()
while IFS= read -r unit; do
    units+=("$unit")
done < <(LC_ALL=C ls -1 -- *.bpf.c)
irs=()
for unit in "${units[@]}"; do
    "$clang" -O2 -g -target bpfel -mcpu=v3 -Wall -Werror \
        -I include -I "/usr/include/$multiarch" \
        -fdebug-prefix-map="$here"=. -fdebug-compilation-dir=. \
        -emit-llvm -c "$unit" -o "$tmp/${unit%.c}.bc"
    irs+=("$tmp/${unit%.c}.bc")
done
"$link" "${irs[@]}" -o "$tmp/chadthrottle.bc"
"$llc" -march=bpfel -mcpu=v3 -O2 -filetype=obj "$tmp/chadthrottle.bc" -o "$tmp/chadthrottle.bpf.o"
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
