#!/usr/bin/env bash
# Set up selfsup on a fresh Debian/Ubuntu machine: the system packages it uses, uv, and the locked
# environment (`uv sync --locked`, about 100 s and 4.6 GB of downloads from a cold cache).
set -euo pipefail
cd "$(dirname "$0")/.."

# libusb-1.0-0: open3d (ssl-pointcloud) fails to import without it.
# dataset-fashion-mnist: the embedded default images of ssl-vision.
# fortunes, fortunes-min, wordnet-base: the embedded default corpora of ssl-text.
# hmmer-examples: Pfam seed alignments (ssl-text's protein family probe); dict-freedict-eng-fra: the
# English-French lexicon of ssl-text's code-switching.
# espeak-ng: speaks ssl-audio's default keywords; klettres-data: spoken letters (ssl-audio's klettres data);
# sonic-pi-samples: instrument sounds (ssl-audio's few-shot probe).
# mricron-data: the Colin27 T1 scan and the AAL atlas (ssl-medical's default volumes and region probe);
# invesalius-examples: a head CT (ssl-medical's CT data).
APT_PACKAGES=(libusb-1.0-0 dataset-fashion-mnist fortunes fortunes-min wordnet-base hmmer-examples dict-freedict-eng-fra
    espeak-ng klettres-data sonic-pi-samples mricron-data invesalius-examples)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v uv >/dev/null 2>&1; then
    echo "setup: installing uv from PyPI"
    python3 -m pip install --quiet uv 2>/dev/null \
        || python3 -m pip install --quiet --user --break-system-packages uv
    export PATH="$HOME/.local/bin:$PATH"
    hash -r
fi

uv sync --locked
echo "setup: done; run commands with \`uv run ...\` (e.g. uv run selfsup list)"
