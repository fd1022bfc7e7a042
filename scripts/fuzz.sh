#!/usr/bin/env bash
# Fuzz the .params reader: scripts/fuzz.sh [SECONDS] [TARGET]
# Seeds the corpus from tests/data/*.params (and the .npz files), then runs
# cargo-fuzz (nightly) for SECONDS (default 60) on TARGET (default parse).
set -euo pipefail
secs="${1:-60}"
target="${2:-parse}"
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
for f in "$root"/tests/data/*.params "$root"/tests/data/*.npz; do
    cp -n "$f" "$corpus/" 2>/dev/null || true
done
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: cargo install cargo-fuzz (needs a nightly toolchain)" >&2
    exit 1
fi
cd "$root"
exec cargo +nightly fuzz run "$target" "$corpus" -- \
    -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=2048
