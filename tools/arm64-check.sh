#!/usr/bin/env bash
# ARM64 correctness check of the kernels, on an x86 machine: publishes tools/arm64-check (which runs every
# test of MimoSharp.Tensors.Tests: each kernel path against its float64 twin) for linux-arm64, self-contained,
# and runs it under qemu-user. Under emulation this checks correctness (the NEON Vector128 path, sdot,
# the scalar path), not speed. Installs qemu-user-static with apt-get when qemu-aarch64 is missing.
# Not part of CI (a few minutes under emulation). On a real ARM64 machine, just run `dotnet test`.
# Usage: bash tools/arm64-check.sh [TEST-NAME-FILTER]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT=/tmp/mimosharp-arm64-check
if ! command -v qemu-aarch64 > /dev/null && ! command -v qemu-aarch64-static > /dev/null; then
  apt-get update > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-user-static > /dev/null
fi
QEMU="$(command -v qemu-aarch64 || command -v qemu-aarch64-static)"
dotnet publish "$REPO/tools/arm64-check/Arm64Check.csproj" -c Release -r linux-arm64 --self-contained -o "$OUT" > "$OUT.publish.log" 2>&1 \
  || { tail -20 "$OUT.publish.log" >&2; exit 1; }
# A self-contained publish carries its own runtime; the program only needs the ARM64 libc from the sysroot
# (Debian's qemu-user-static uses /usr/aarch64-linux-gnu when present; binfmt may not be registered in a container).
SYSROOT=/usr/aarch64-linux-gnu
if [ ! -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]; then
  apt-get update > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y libc6-arm64-cross libstdc++6-arm64-cross > /dev/null
fi
# W^X double mapping does not work under qemu-user; neither does the JIT's guess of the page size.
DOTNET_EnableWriteXorExecute=0 "$QEMU" -L "$SYSROOT" "$OUT/Arm64Check" "$@"
