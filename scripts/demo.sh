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
    local straja="${REPO_ROOT}/target/release/straja"
    local token
    # A security-staff token for both demo cameras, signed with the key in ./straja-state (the
    # daemon uses the same key). It sits in the link's fragment, which browsers never send.
    token=$("${straja}" token issue --role security --camera demo-ball --camera demo-bars \
        --ttl 8h --subject demo)
    cat <<URLS

Straja demo (embedded configuration: two test-pattern cameras)
  open (signed in for 8 h, as security staff for both cameras):
    https://127.0.0.1:8443/#token=${token}
  (self-signed certificate: the browser will warn once)
  health  : https://127.0.0.1:8443/healthz
  metrics : http://127.0.0.1:9464/metrics
  more tokens: target/release/straja token issue --role ops|security [--camera ID]... [--ttl 8h]
State (self-signed certificate, token signing key) goes to ./straja-state. Stop with Ctrl-C.

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
