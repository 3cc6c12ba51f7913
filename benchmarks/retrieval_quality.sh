#!/usr/bin/env bash
# Retrieval quality of the similar-items table on the real shop sample (issue: similar items by
# kind and colour): refresh ../shared/data/fashion-product-images-dev through a shop.toml whose
# groups follow the export's subCategory (tops, bottoms, shoes, bags: 3,000 items), then
# precision@10 of the same articleType and of the same baseColour with `fashionrec
# evaluate-similar`, on each half of the items (settings were tuned on half a; report half b).
#
#   benchmarks/retrieval_quality.sh [WORKDIR] [extra refresh args, e.g. --colour-weight 0]
#   SHOP_TOML=benchmarks/dev_shop_titles.toml benchmarks/retrieval_quality.sh   # articleType + titles
#   BACKBONE=efficientnet_lite1 benchmarks/retrieval_quality.sh                  # another CNN
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLE="${FASHIONREC_SHOP_SAMPLE:-../shared/data/fashion-product-images-dev}"
WORK="${1:-$(mktemp -d)}"; shift || true
PY="${PYTHON:-.venv/bin/python}"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120 PYTHONPATH="$PWD"
[ -f "$SAMPLE/styles.csv" ] || { echo "no shop sample at $SAMPLE (see ../shared/data/README.md)"; exit 2; }
mkdir -p "$WORK/shop"
cp -r "$SAMPLE/styles.csv" "$SAMPLE/images" "$WORK/shop/"
cp "${SHOP_TOML:-benchmarks/dev_shop.toml}" "$WORK/shop/shop.toml"
# a shop has no outfits: the compatible table needs a champion trained elsewhere (the sample)
"$PY" -m app.cli sample-catalog "$WORK/sample" --items 400 >/dev/null
"$PY" -m app.cli train --catalog "$WORK/sample" --backbone "${BACKBONE:-efficientnet_lite0}" --model type_aware --epochs 5 --data "$WORK/data" >/dev/null
start=$(date +%s)
"$PY" -m app.cli refresh --catalog "$WORK/shop/shop.toml" --data "$WORK/data" "$@" >/dev/null
echo "refresh of the shop sample: $(( $(date +%s) - start )) s"
for half in a b; do
  echo "\$ fashionrec evaluate-similar --catalog shop.toml --label-column articleType --label-column baseColour --half $half"
  "$PY" -m app.cli evaluate-similar --catalog "$WORK/shop/shop.toml" --data "$WORK/data" \
    --label-column articleType --label-column baseColour --half "$half"
done
