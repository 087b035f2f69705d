#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan, -fno-sanitize-recover=all; the `fuzz`
# CMake preset, build/fuzz) and runs each from its committed corpus (RELIABILITY.md B.1).
#
#   fuzz/run.sh [--seconds N] [--jobs J] [--merge] [--if-available] [TARGET...]
#
#   --seconds N      run each target N seconds (default 60, what make test runs)
#   --jobs J         targets run J at a time (default: the number of cores)
#   --merge          afterwards, merge what each run found into fuzz/corpus/TARGET (only inputs
#                    that add coverage; libFuzzer -merge=1)
#   --if-available   without clang++-14, say so and exit 0 instead of failing
#   TARGET           idx idx_gz csv safetensors_header model_load checkpoint_load cli
#                    (default: all)
#
# Runtime flags: -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=5, the target's dictionary and
# max_len. New inputs go to build/fuzz/work/TARGET (the committed corpus is only read), logs to
# build/fuzz/logs/TARGET.log, crashes to build/fuzz/findings/TARGET/. Exit status 1 when any
# target found something: minimise it (fuzz_TARGET -minimize_crash=1 -runs=10000 FILE), fix the
# bug, and commit the input to tests/regress/TARGET/, which make test replays.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
jobs=$(nproc)
merge=0
if_available=0
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --if-available) if_available=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] ||
  targets=(idx idx_gz csv safetensors_header model_load checkpoint_load cli)

if ! command -v clang++-14 >/dev/null; then
  if [[ $if_available -eq 1 ]]; then
    echo "fuzz/run.sh: clang++-14 not found, fuzz runs skipped (scripts/setup installs clang-14)"
    exit 0
  fi
  echo "fuzz/run.sh: clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi

declare -A max_len=([idx]=1048576 [idx_gz]=262144 [csv]=1048576 [safetensors_header]=1048576
                    [model_load]=4194304 [checkpoint_load]=4194304 [cli]=4096)
declare -A dict=([idx]=idx [idx_gz]=idx [csv]=csv [safetensors_header]=safetensors
                 [model_load]=safetensors [checkpoint_load]=checkpoint
                 [cli]=cli)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs" --target "${targets[@]/#/fuzz_}"

out=build/fuzz
mkdir -p "$out/logs"
run_one() {
  local t=$1
  rm -rf "$out/work/$t" "$out/findings/$t"
  mkdir -p "$out/work/$t" "$out/findings/$t"
  UBSAN_OPTIONS=print_stacktrace=1 "$out/fuzz/fuzz_$t" -max_total_time="$seconds" \
    -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=5 -max_len="${max_len[$t]}" \
    -dict="fuzz/${dict[$t]}.dict" -artifact_prefix="$out/findings/$t/" -print_final_stats=1 \
    "$out/work/$t" "fuzz/corpus/$t" >"$out/logs/$t.log" 2>&1
}

pids=()
names=()
status=0
for t in "${targets[@]}"; do
  while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do sleep 1; done
  run_one "$t" &
  pids+=($!)
  names+=("$t")
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || true
done

printf '%-20s %12s %8s %8s %9s  %s\n' target executions exec/s cov corpus findings
for t in "${targets[@]}"; do
  log="$out/logs/$t.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  corpus=$(ls "$out/work/$t" | wc -l)
  found=$(ls "$out/findings/$t" | wc -l)
  printf '%-20s %12s %8s %8s %9s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corpus" \
    "$found"
  if [[ $found -gt 0 || -z "$execs" ]]; then
    status=1
    echo "  $t: see $log and $out/findings/$t/" >&2
    grep -m3 -E 'ERROR|FUZZ FINDING|runtime error|==[0-9]+==' "$log" | sed 's/^/    /' >&2 || true
  fi
  if [[ $merge -eq 1 ]]; then
    "$out/fuzz/fuzz_$t" -merge=1 -max_len="${max_len[$t]}" -rss_limit_mb=512 \
      -malloc_limit_mb=256 -timeout=5 "fuzz/corpus/$t" "$out/work/$t" >"$out/logs/$t.merge.log" 2>&1
  fi
done
exit $status
