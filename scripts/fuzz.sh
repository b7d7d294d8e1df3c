#!/usr/bin/env bash
# Coverage-guided fuzzing of the gateway's parsers (cargo-fuzz / libFuzzer): every target in
# gateway/fuzz/ runs for SECONDS_PER_TARGET (default 60), one process at a time, at low priority.
# Prints executions, executions per second and crashes per target; exits 1 when any target crashed
# (the inputs are in gateway/fuzz/artifacts/TARGET/). Not part of CI (CI runs the property tests in
# gateway/tests/hostile_input_never_panics.rs). See gateway/fuzz/README.md.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# Environment: FUZZ_TARGETS="config jwks" (default: all), FUZZ_SANITIZER=none (default: address).
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
cd "$(dirname "$0")/../gateway/fuzz"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz passes -Z flags (sanitizer, coverage instrumentation): stable rustc takes them with this.
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}
# Overflow checks and debug assertions on: an arithmetic overflow is a crash, not a wrap.
build_flags=(--debug-assertions --sanitizer "$sanitizer")
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}

nice -n 19 cargo fuzz build "${build_flags[@]}"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
printf '%-14s %12s %10s %8s\n' target executions exec/s crashes >"$logs/table"
failed=0
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    dict=()
    if [[ -f dict/$target.dict ]]; then
        dict=("-dict=dict/$target.dict")
    fi
    before=$(find "artifacts/$target" -type f | wc -l)
    echo "== $target: ${seconds}s" >&2
    # One process (no -jobs/-fork); an input running over 10 s is reported as a hang.
    status=0
    nice -n 19 cargo fuzz run "${build_flags[@]}" "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        "${dict[@]}" >"$logs/$target.log" 2>&1 || status=$?
    executions=$(awk '/stat::number_of_executed_units:/ {n = $2} END {print n + 0}' "$logs/$target.log")
    per_second=$(awk '/stat::average_exec_per_sec:/ {n = $2} END {print n + 0}' "$logs/$target.log")
    crashes=$(($(find "artifacts/$target" -type f | wc -l) - before))
    if ((status != 0 && crashes == 0)); then
        # Failed without leaving an input (a build or set-up problem): show why.
        tail -n 30 "$logs/$target.log" >&2
        crashes=1
    fi
    if ((crashes > 0)); then
        failed=1
        grep -m 5 -E '^(==[0-9]+==ERROR|thread .* panicked|.*panicked at)|SUMMARY' "$logs/$target.log" >&2 || true
        find "artifacts/$target" -type f -newer "$logs/table" >&2 || true
    fi
    printf '%-14s %12s %10s %8s\n' "$target" "$executions" "$per_second" "$crashes" >>"$logs/table"
done
cat "$logs/table"
exit "$failed"
