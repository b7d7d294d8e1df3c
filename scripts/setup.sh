#!/usr/bin/env bash
# Prepares a Debian 12 machine to build and run Straja; with --test, also to run its tests.
#
#   scripts/setup.sh          build and runtime packages (GStreamer), Rust toolchain check
#   scripts/setup.sh --test   the same, plus what the tests need (Chromium, ffmpeg, Prometheus, ...)
#
# Idempotent: installs only the Debian packages that are missing, and runs `apt-get update` only
# when there is something to install. Uses sudo only when not run as root. Rust toolchains cannot
# be installed from here: the script checks cargo/rustc and says how to get them when missing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# How long to wait for another apt/dpkg process (unattended-upgrades, a parallel install) to
# release its locks before giving up, in seconds.
APT_LOCK_WAIT="${APT_LOCK_WAIT:-600}"

# Build: the GStreamer headers for gstreamer-rs (no OpenSSL: TLS is rustls + ring).
# Not libgstreamer-plugins-bad1.0-dev: it drags in OpenCV (~590 MB) and we do not use gst-webrtc.
BUILD_PACKAGES=(
    pkg-config
    libgstreamer1.0-dev
    libgstreamer-plugins-base1.0-dev
    libgstrtspserver-1.0-dev
)

# Runtime: the GStreamer elements the pipelines use (rtspsrc, parsers, payloaders, x264enc, ...),
# and GLib's TLS backend for rtsps:// cameras.
# gstreamer1.0-libav: avdec_h264 decodes snapshots of every H.264 profile cameras send (the
# fallback, openh264dec from plugins-bad, cannot decode CABAC, i.e. most Main/High streams).
RUNTIME_PACKAGES=(
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-rtsp
    glib-networking
    gstreamer1.0-libav
)

# Tests: a real browser (WebRTC viewer), ffprobe (checking recordings and snapshots),
# promtool and a real Prometheus server (scraping /metrics), systemd-analyze (the unit file),
# openssl s_client (the TLS policy as a real client sees it), and for the Debian package
# (scripts/build-deb.sh, tests/debian_package.rs) dpkg-shlibdeps (dpkg-dev), strip and readelf
# (binutils), lintian and shellcheck (its maintainer scripts).
TEST_PACKAGES=(
    chromium
    ffmpeg
    prometheus
    systemd
    openssl
    dpkg-dev
    binutils
    lintian
    shellcheck
)

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'setup.sh: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<'EOF'
Usage: scripts/setup.sh [--test]

Installs the Debian 12 packages needed to build and run Straja and checks the Rust toolchain.
  --test    also install what the test suite needs (chromium, ffmpeg, prometheus, systemd,
            openssl, dpkg-dev, binutils, lintian, shellcheck)
Environment: APT_LOCK_WAIT=SECONDS (default 600) bounds the wait for another apt/dpkg process.
EOF
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ ${EUID} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -- "$@"
    else
        die "not running as root and sudo is not installed; run this script as root"
    fi
}

check_debian() {
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        die "dpkg-query/apt-get not found: this script supports Debian 12 (bookworm) only"
    fi
    if [[ -r /etc/os-release ]]; then
        local id version
        # shellcheck source=/dev/null
        id="$(. /etc/os-release && echo "${ID:-}")"
        # shellcheck source=/dev/null
        version="$(. /etc/os-release && echo "${VERSION_ID:-}")"
        if [[ ${id} != debian || ${version} != 12 ]]; then
            say "warning: this is ${id:-unknown} ${version:-?}, not Debian 12; package names may differ"
        fi
    fi
}

is_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# Prints, one a line, the packages of the arguments that are not installed.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        is_installed "${pkg}" || printf '%s\n' "${pkg}"
    done
}

# True when some process holds one of apt's or dpkg's locks (apt takes POSIX fcntl locks, which
# /proc/locks lists by inode; no need for fuser/lsof).
apt_lock_held() {
    local lock inode
    for lock in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock \
        /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
        [[ -e ${lock} ]] || continue
        inode="$(stat -c %i "${lock}")"
        if awk -v inode="${inode}" '{ n = split($6, f, ":"); if (f[n] == inode) found = 1 }
                END { exit !found }' /proc/locks; then
            return 0
        fi
    done
    return 1
}

# Waits, at most until SECONDS reaches the deadline given, for apt's and dpkg's locks to be free.
wait_for_apt_locks() {
    local deadline=$1
    if apt_lock_held; then
        say "another apt/dpkg process holds its lock; waiting (at most $((deadline - SECONDS)) s)"
        while apt_lock_held; do
            ((SECONDS < deadline)) || die "apt/dpkg is still locked after ${APT_LOCK_WAIT} s; try again later"
            sleep 2
        done
    fi
}

apt_get() {
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout="${APT_LOCK_WAIT}" "$@"
}

# apt-get update does not honour DPkg::Lock::Timeout for the lists lock: wait for it ourselves,
# and try again if another process took the lock between our check and our update.
apt_update() {
    local deadline=$((SECONDS + APT_LOCK_WAIT))
    wait_for_apt_locks "${deadline}"
    say "apt-get update"
    until apt_get update; do
        apt_lock_held || die "apt-get update failed (see above)"
        wait_for_apt_locks "${deadline}"
    done
}

install_packages() {
    local -a missing
    mapfile -t missing < <(missing_packages "$@")
    if ((${#missing[@]} == 0)); then
        say "Debian packages: all $# present"
        return
    fi
    say "Debian packages to install: ${missing[*]}"
    apt_update
    say "apt-get install ${missing[*]}"
    apt_get install -y "${missing[@]}" || die "apt-get install failed (see above)"
    local -a still_missing
    mapfile -t still_missing < <(missing_packages "${missing[@]}")
    ((${#still_missing[@]} == 0)) || die "still not installed after apt-get: ${still_missing[*]}"
}

rustup_help() {
    cat >&2 <<'EOF'
Straja needs a Rust toolchain (cargo and rustc) at least as new as the rust-version in Cargo.toml.
This script does not download toolchains. To get one, install rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
        --component rustfmt,clippy
    . "$HOME/.cargo/env"
or update an existing one with: rustup update stable
EOF
}

# The minimum Rust version, read from the workspace's rust-version (1.92 if not found).
min_rust_version() {
    local version
    version="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "${REPO_ROOT}/Cargo.toml" 2>/dev/null | head -n 1)"
    printf '%s\n' "${version:-1.92}"
}

# True when version $1 (x.y[.z]) is at least $2 (x.y[.z]).
version_at_least() {
    local -a have want
    IFS=. read -r -a have <<<"$1"
    IFS=. read -r -a want <<<"$2"
    local i
    for i in 0 1 2; do
        local h=${have[i]:-0} w=${want[i]:-0}
        ((10#${h} > 10#${w})) && return 0
        ((10#${h} < 10#${w})) && return 1
    done
    return 0
}

check_rust() {
    local want have
    want="$(min_rust_version)"
    if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
        if [[ -x ${HOME}/.cargo/bin/cargo ]]; then
            printf 'cargo is in %s but not on PATH; run: . "%s/.cargo/env"\n' "${HOME}/.cargo/bin" "${HOME}" >&2
        else
            rustup_help
        fi
        die "cargo/rustc not found"
    fi
    have="$(rustc --version | sed -n 's/^rustc \([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')"
    [[ -n ${have} ]] || die "cannot read the version from '$(rustc --version)'"
    if ! version_at_least "${have}" "${want}"; then
        rustup_help
        die "rustc ${have} is too old: Straja needs ${want} or newer"
    fi
    say "Rust: rustc ${have} (needs >= ${want}), $(cargo --version)"
}

# CI checks formatting and lints: make sure the components are there.
check_rust_components() {
    local component
    for component in fmt clippy; do
        if ! cargo "${component}" --version >/dev/null 2>&1; then
            printf 'Add it with: rustup component add %s\n' \
                "$([[ ${component} == fmt ]] && echo rustfmt || echo clippy)" >&2
            die "cargo ${component} is not available"
        fi
    done
    say "Rust components: rustfmt and clippy present"
}

main() {
    local with_tests=false
    while (($# > 0)); do
        case $1 in
        --test) with_tests=true ;;
        -h | --help)
            usage
            return 0
            ;;
        *)
            usage >&2
            die "unknown argument: $1"
            ;;
        esac
        shift
    done

    check_debian
    local -a packages=("${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}")
    if [[ ${with_tests} == true ]]; then
        packages+=("${TEST_PACKAGES[@]}")
    fi
    install_packages "${packages[@]}"

    check_rust
    if [[ ${with_tests} == true ]]; then
        check_rust_components
    fi
    say "setup done$([[ ${with_tests} == true ]] && echo ' (with test dependencies)')"
}

main "$@"
