#!/usr/bin/env bash
# Line and branch coverage of the parser sources when the fuzz corpora are replayed (RELIABILITY.md
# B.1: >= 90% of lines and >= 80% of branches). Builds the replay executables with clang-14's
# source-based coverage in build/fuzz/cov, replays the committed corpus, the regression inputs
# and, when present, what fuzz/run.sh found (build/fuzz/work/TARGET), and prints llvm-cov's report
# for the parser files.
#
#   fuzz/coverage.sh [EXTRA_CORPUS_ROOT]
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-build/fuzz/work}
out=build/fuzz/cov
targets=(idx idx_gz csv safetensors_header model_load checkpoint_load cli)

cmake -S . -B "$out" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Debug \
  -DBACKPROP_TESTS=OFF -DBACKPROP_EXAMPLES=OFF \
  "-DCMAKE_CXX_FLAGS=-O1 -fprofile-instr-generate -fcoverage-mapping" >/dev/null
cmake --build "$out" -j "$(nproc)" --target "${targets[@]/#/fuzz_replay_}" >/dev/null

rm -rf "$out/profiles"
mkdir -p "$out/profiles"
objects=()
for t in "${targets[@]}"; do
  dirs=("fuzz/corpus/$t")
  [[ -d "tests/regress/$t" ]] && dirs+=("tests/regress/$t")
  [[ -d "$extra/$t" ]] && dirs+=("$extra/$t")
  LLVM_PROFILE_FILE="$out/profiles/$t.profraw" "$out/fuzz/fuzz_replay_$t" "${dirs[@]}" >/dev/null
  objects+=(-object "$out/fuzz/fuzz_replay_$t")
done
llvm-profdata-14 merge -sparse "$out"/profiles/*.profraw -o "$out/profiles/all.profdata"
llvm-cov-14 report -instr-profile="$out/profiles/all.profdata" "${objects[@]:1}" \
  src/data/idx.cpp src/data/gzip.cpp src/data/csv.cpp src/io/safetensors.cpp \
  src/io/model_file.cpp src/io/checkpoint.cpp cli/common.cpp
