#!/usr/bin/env bash
# Benchmark `gitseal import sealed-secrets` against the peer's own decryption, Bitnami's
# `kubeseal --recovery-unseal` (v0.36.6, built by scripts/bitnami), on the same files.
#
#   bash benches/import_bitnami.sh [--files N] [--runs N] [--gitseal PATH]
#
# Makes a 4096-bit RSA key and certificate with openssl (the Bitnami controller's default
# size) and its key Secret as a `v1 List` (what `kubectl get secret -l
# sealedsecrets.bitnami.com/sealed-secrets-key -o yaml` prints), seals N (default 1,000) small
# Secrets with `kubeseal --cert` (untimed), then times, interleaved, N runs (default 3) of:
#   gitseal   one `gitseal import sealed-secrets DIR --keys keys.yaml -r AGE -w OUT`
#   kubeseal  N sequential `kubeseal --recovery-unseal --recovery-private-key keys.yaml < FILE`
#             (kubeseal opens one SealedSecret per call: there is no one-call form)
# and prints each run, the medians, the ratio and `uptime`. gitseal is built in release mode
# unless --gitseal PATH is given (e.g. target/debug/gitseal, whose dependencies, the crypto
# included, are optimised too: see Cargo.toml's profile.dev.package). Both outputs are checked to hold the same values.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
files=1000 runs=3 gitseal=""
while (($#)); do
	case $1 in
	--files) files=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--gitseal) gitseal=$2; shift 2 ;;
	*) echo "usage: $0 [--files N] [--runs N] [--gitseal PATH]" >&2; exit 2 ;;
	esac
done

kubeseal=$(bash "$repo/scripts/bitnami" path kubeseal)
if [[ -z $gitseal ]]; then
	(cd "$repo" && cargo build --release --bin gitseal)
	gitseal=${CARGO_TARGET_DIR:-$repo/target}/release/gitseal
fi
"$gitseal" --version
"$kubeseal" --version

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# ---- setup (untimed): key, key Secret List, age recipient, N kubeseal-made files
openssl req -x509 -newkey rsa:4096 -nodes -keyout key.pem -out cert.pem -days 3650 \
	-subj "/CN=sealed-secret/O=sealed-secret" 2>/dev/null
cat >keys.yaml <<EOF
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  type: kubernetes.io/tls
  metadata:
    name: sealed-secrets-keybench
    namespace: kube-system
    labels: {sealedsecrets.bitnami.com/sealed-secrets-key: active}
  data:
    tls.crt: $(base64 -w0 cert.pem)
    tls.key: $(openssl rsa -in key.pem -traditional 2>/dev/null | base64 -w0)
EOF
age=$("$gitseal" keygen -o age.key)
mkdir in
echo "sealing $files Secrets with kubeseal (untimed)"
for i in $(seq -w 1 "$files"); do
	printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: app-%s, namespace: bench, labels: {app: bench}}\nstringData: {username: user-%s, password: %s, url: "https://db-%s.example:5432"}\n' \
		"$i" "$i" "$(head -c 24 /dev/urandom | base64)" "$i" |
		"$kubeseal" --cert cert.pem -o yaml >"in/app-$i.yaml"
done

now() { date +%s.%N; }
gitseal_run() {
	rm -rf out
	local t0; t0=$(now)
	"$gitseal" import sealed-secrets in --keys keys.yaml -r "$age" -w out 2>/dev/null
	echo "$(now) - $t0" | bc
}
kubeseal_run() {
	rm -rf plain && mkdir plain
	local t0 f; t0=$(now)
	for f in in/*.yaml; do
		"$kubeseal" --recovery-unseal --recovery-private-key keys.yaml -o yaml <"$f" >"plain/${f#in/}"
	done
	echo "$(now) - $t0" | bc
}

# Untimed warm-ups (gitseal's whole run; kubeseal on 20 files), then interleaved runs.
gitseal_run >/dev/null
for f in $(ls in | head -20); do
	"$kubeseal" --recovery-unseal --recovery-private-key keys.yaml -o yaml <"in/$f" >/dev/null
done
g=() k=()
for r in $(seq 1 "$runs"); do
	g+=("$(gitseal_run)")
	k+=("$(kubeseal_run)")
	printf 'run %d: gitseal %.2f s, kubeseal loop %.2f s\n' "$r" "${g[-1]}" "${k[-1]}"
done

# Correctness: the same values on both sides (a sample of 5 files).
for f in $(ls in | head -5); do
	ours=$("$gitseal" unseal "out/$f" -i age.key -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(sorted(d["data"].items()))')
	theirs=$(python3 -c 'import json,sys,subprocess; d=subprocess.run([sys.argv[1],"--recovery-unseal","--recovery-private-key","keys.yaml","-o","json"],stdin=open(sys.argv[2]),capture_output=True,check=True).stdout; print(sorted(json.loads(d)["data"].items()))' "$kubeseal" "in/$f")
	[[ $ours == "$theirs" ]] || { echo "MISMATCH in $f" >&2; exit 2; }
done
echo "checked: gitseal's import and kubeseal's recovery-unseal give the same values"

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
gm=$(median "${g[@]}") km=$(median "${k[@]}")
printf '\n%d files, median of %d: gitseal import %.2f s (%.1f ms/file), kubeseal --recovery-unseal loop %.2f s (%.1f ms/file): kubeseal/gitseal %.2f\n' \
	"$files" "$runs" "$gm" "$(echo "$gm * 1000 / $files" | bc -l)" "$km" "$(echo "$km * 1000 / $files" | bc -l)" "$(echo "$km / $gm" | bc -l)"
echo "runs: gitseal ${g[*]}; kubeseal ${k[*]}"
date -u
uptime
nproc
