#!/usr/bin/env bash
# Accuracy reference runs on Fashion-MNIST (README, "Accuracy reference"). Not part of `make test`:
# a few minutes on 2 cores. Prints a markdown table; pass --threads N through BACKPROP_THREADS.
#   (a) the derivation's network: 784-30-10, sigmoid hidden and output, quadratic loss,
#       SGD η = 3.0, batch 10, 10 epochs
#   (b) 784-100-10, sigmoid hidden, softmax output, cross-entropy, SGD η = 0.5, batch 32,
#       10 epochs (the best η and batch of a small sweep, see the README)
#   (c) the `make run` default: 784-100-10 sigmoid/softmax cross-entropy, η = 0.1, batch 16,
#       20 epochs
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/release/backprop
[[ -x $bin ]] || { echo "bench/accuracy.sh: build first (make build)" >&2; exit 1; }
threads=${BACKPROP_THREADS:-0}

run() {
  local name=$1 desc=$2
  shift 2
  local out
  out=$("$bin" train --no-save --seed 1 --threads "$threads" "$@")
  local acc secs
  acc=$(sed -n 's/^test accuracy \([0-9.]*%\).*/\1/p' <<<"$out")
  secs=$(sed -n 's/.*training took \([0-9.]*\) s.*/\1/p' <<<"$out")
  printf '| %s | %s | %s | %s |\n' "$name" "$desc" "$acc" "$secs"
}

echo "Fashion-MNIST test accuracy, $(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
echo
echo "| run | network and training | test accuracy | training seconds |"
echo "|---|---|---|---|"
run a "784-30-10 sigmoid/sigmoid, quadratic, SGD η=3.0, batch 10, 10 epochs" \
  --layers 784,30,10 --activation sigmoid --output sigmoid --loss quadratic \
  --lr 3.0 --batch-size 10 --epochs 10
run b "784-100-10 sigmoid/softmax, cross-entropy, SGD η=0.5, batch 32, 10 epochs" \
  --layers 784,100,10 --activation sigmoid --output softmax --loss cross-entropy \
  --lr 0.5 --batch-size 32 --epochs 10
run c "make run default: 784-100-10 sigmoid/softmax, cross-entropy, SGD η=0.1, batch 16, 20 epochs" \
  --hidden 100 --lr 0.1 --batch-size 16 --epochs 20
