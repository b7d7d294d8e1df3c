#!/usr/bin/env bash
# Runs every test of Straja: unit, integration and browser tests, then the benchmarks in quick mode.
# Installs what the tests need first (scripts/setup.sh --test).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '==> %s\n' "$*"; }

main() {
    cd "${REPO_ROOT}"
    "${REPO_ROOT}/scripts/setup.sh" --test

    # One GStreamer plugin registry for all tests, so that the plugin scan is not redone by each.
    export GST_REGISTRY="${PWD}/target/gst-registry.bin"
    export GST_DEBUG="${GST_DEBUG:-1}"

    say "cargo test --workspace --all-features"
    cargo test --workspace --all-features

    # Benchmarks print figures; quick mode keeps CI short. They fail only if the path breaks.
    local bench
    for bench in hub_fanout srtp_protect rtcp_handling time_to_first_frame gateway_load relay_load recording_overhead metrics_cost consultation_load; do
        say "cargo bench --bench ${bench} -- --quick"
        cargo bench --bench "${bench}" -- --quick
    done
}

main "$@"
