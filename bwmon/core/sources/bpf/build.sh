#!/bin/sh
# Rebuild socket_probe.bpf.o from socket_probe.bpf.c (CO-RE: the object loads on any kernel
# with BTF, so it is built once and shipped; ./dev test checks it matches its source).
# Needs clang and llvm (llvm-strip) and libbpf-dev (the bpf/*.h headers): see ./dev TEST_DEBS.
set -eu
cd "$(dirname "$0")"
clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -Wall -Werror -c socket_probe.bpf.c \
      -o socket_probe.bpf.o.tmp
llvm-strip -g socket_probe.bpf.o.tmp  # DWARF out, BTF (what CO-RE needs) kept
mv socket_probe.bpf.o.tmp socket_probe.bpf.o
sha256sum socket_probe.bpf.c > socket_probe.bpf.sha256
