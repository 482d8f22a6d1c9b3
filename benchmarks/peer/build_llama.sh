#!/usr/bin/env bash
# Builds llama.cpp (CPU only, llama-bench and llama-quantize) into /tmp/llama.cpp from a git
# directory of its public repository (a bare clone or mirror), at a given commit. Nothing of
# llama.cpp is kept in this repository. About 20 minutes on 2 cores; skipped when already built.
# Usage: bash build_llama.sh GIT_DIR [COMMIT]
set -euo pipefail
GIT_DIR="${1:?usage: build_llama.sh GIT_DIR [COMMIT]}"
COMMIT="${2:-0a50d9909a3478e82679f505bf8595d1eee4b0a8}"
DEST=/tmp/llama.cpp
if [ -x "$DEST/build/bin/llama-bench" ] && [ "$(cat "$DEST/COMMIT.txt" 2>/dev/null)" = "$COMMIT" ]; then
  echo "llama.cpp $COMMIT already built in $DEST"
  exit 0
fi
command -v cmake >/dev/null || { apt-get update && apt-get install -y cmake g++; }
/usr/bin/python3 -c 'import numpy' 2>/dev/null || { apt-get update && apt-get install -y python3-numpy; }
rm -rf "$DEST"; mkdir -p "$DEST"
# Large vocab test files may be missing from mirrors; they are not needed.
git --git-dir="$GIT_DIR" archive "$COMMIT" -- . ':(exclude,glob)models/ggml-vocab-*.gguf' | tar -x -C "$DEST"
echo "$COMMIT" > "$DEST/COMMIT.txt"
cd "$DEST"
cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF > /dev/null
cmake --build build -j"$(nproc)" --target llama-bench llama-quantize
grep -q -i mimo2 src/llama-arch.cpp || { echo "this llama.cpp has no mimo2 architecture" >&2; exit 1; }
