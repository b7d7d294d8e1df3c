#!/usr/bin/env bash
# Straja's demo: sets the machine up, builds the release binary and runs the embedded demo
# configuration (two test-pattern cameras, HTTPS with a self-signed certificate, metrics).
#
#   scripts/demo.sh            (no arguments; for your own configuration, build and run
#                               `target/release/straja run --config FILE`)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '==> %s\n' "$*"; }

build_release() {
    local -a locked=()
    if [[ -f Cargo.lock ]]; then
        locked=(--locked)
    fi
    say "cargo build --release ${locked[*]}"
    cargo build --release "${locked[@]}"
}

print_urls() {
    cat <<'URLS'

Straja demo (embedded configuration: two test-pattern cameras)
  web UI and API : https://127.0.0.1:8443/   (self-signed certificate: the browser will warn)
  health         : https://127.0.0.1:8443/healthz
  cameras        : https://127.0.0.1:8443/api/v1/cameras
  metrics        : http://127.0.0.1:9464/metrics
State (the self-signed certificate, ...) goes to ./straja-state. Stop with Ctrl-C.

URLS
}

main() {
    if (($# > 0)); then
        printf 'usage: scripts/demo.sh (no arguments; for your own configuration run\n' >&2
        printf '       target/release/straja run --config FILE after this has built it)\n' >&2
        exit 2
    fi
    cd "${REPO_ROOT}"
    "${REPO_ROOT}/scripts/setup.sh"
    build_release
    print_urls
    exec "${REPO_ROOT}/target/release/straja" run
}

main "$@"
