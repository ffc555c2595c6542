#!/usr/bin/env bash
# Seeds the compile_text corpus with every .cnn of the repository (models/ and tests/).
# The corpus folders are gitignored; run this before the first `cargo fuzz run compile_text`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/fuzz/corpus/compile_text"
mkdir -p "$dest" "$root/fuzz/corpus/compile_structured"
n=0
while IFS= read -r -d '' f; do
    # One file per source, named after its path, so reseeding overwrites rather than adds.
    name="seed_$(echo "${f#"$root"/}" | tr '/' '_')"
    cp "$f" "$dest/$name"
    n=$((n + 1))
done < <(find "$root/models" "$root/tests" -name '*.cnn' -type f -print0)
echo "seeded $n files into $dest"
