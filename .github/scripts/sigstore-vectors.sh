#!/usr/bin/env bash
# Assemble the sigstore test vectors (the directory SEALGATE_VECTORS names) from a checkout of
# sigstore/sigstore-python at the commit .github/sigstore-vectors.txt pins, and refuse any file
# whose sha256 is not the one listed there. The development machines have these files in
# ../shared/vectors/sigstore; a GitHub runner builds the same directory with this script.
#
#   .github/scripts/sigstore-vectors.sh <sigstore-python checkout> <output directory>
#
# SIGSTORE_VECTORS_LIST names another list (the tests use it; CI does not).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <sigstore-python checkout> <output directory>" >&2; exit 2; }
src=$1 out=$2
mkdir -p "$out"
manifest=${SIGSTORE_VECTORS_LIST:-"$(cd "$(dirname "$0")/.." && pwd)/sigstore-vectors.txt"}

want=$(awk '$1 == "commit" {print $2}' "$manifest")
have=$(git -C "$src" rev-parse HEAD)
[ "$have" = "$want" ] || { echo "sigstore-vectors: $src is at $have, not $want" >&2; exit 1; }

count=0
: > "$out.sums"
while read -r sha dest from; do
  case "$sha" in '#'* | commit | '') continue ;; esac
  mkdir -p "$(dirname "$out/$dest")"
  cp "$src/$from" "$out/$dest"
  echo "$sha  $out/$dest" | sha256sum --check --quiet --strict -
  echo "$sha  ./$dest" >> "$out.sums"
  count=$((count + 1))
done < "$manifest"
mv "$out.sums" "$out/SHA256SUMS" # the vectors' own list, as the tests read it
echo "sigstore-vectors: $count files in $out, each matching its listed sha256" >&2
