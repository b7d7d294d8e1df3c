#!/usr/bin/env bash
# Builds Straja's Debian package (Debian 12): the binary, its systemd unit, sysusers.d and
# tmpfiles.d entries, the example configuration as the conffile /etc/straja/straja.toml, and the
# maintainer scripts and metadata from systemd/debian/.
#
#   scripts/build-deb.sh                   cargo build --release --bin straja, then the package
#   scripts/build-deb.sh --binary PATH     package that binary instead (the tests pass their own)
#   scripts/build-deb.sh --out DIR         write the .deb into DIR (default: target/debian)
#
# Prints the path of the .deb it wrote: DIR/straja_<version>-1_<arch>.deb.
#
# Why dpkg-deb and not cargo-deb: the package is a staged tree handed to `dpkg-deb --build
# --root-owner-group`, with dpkg-shlibdeps for the shared-library dependencies, all from dpkg and
# dpkg-dev, which a Debian build machine has anyway. cargo-deb would have to be compiled from
# source in CI (no binary packages for it in Debian 12) on every fresh machine, for a job of a
# few dozen lines; and it would still need the maintainer scripts and the conffile's ownership
# written by hand, since the group `straja` exists only once postinst has run.
#
# Needs: dpkg-deb, dpkg-shlibdeps (dpkg-dev), strip (binutils), gzip, and cargo ($CARGO, else the
# one on PATH) for the version and description in Cargo.toml (`cargo metadata`).
# SOURCE_DATE_EPOCH, when set, dates the changelog and every file (default: the last commit's
# date), so that builds of one commit give the same files.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEBIAN_DIR="${REPO_ROOT}/systemd/debian"
SYSTEMD_DIR="${REPO_ROOT}/systemd"

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'build-deb.sh: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat <<'EOF'
Usage: scripts/build-deb.sh [--binary PATH] [--out DIR]

Builds target/debian/straja_<version>-1_<arch>.deb (or DIR/...) and prints its path.
  --binary PATH   package this straja binary (stripped in the package) instead of building
                  `cargo build --release --bin straja`
  --out DIR       directory for the .deb (created if missing; default: target/debian)
EOF
}

need() {
    local tool
    for tool in "$@"; do
        command -v "${tool}" >/dev/null 2>&1 ||
            die "${tool} not found (scripts/setup.sh --test installs dpkg-dev and binutils)"
    done
}

# The straja package's record from `cargo metadata`, on one line, from which version,
# description and repository are read: the JSON is cut before each `{"name":`, and the lines
# from straja's package object (`{"name":"straja","version":...`) up to the next package object
# (dependency objects go on with "source", not "version") are joined again.
cargo_record() {
    "${CARGO:-cargo}" metadata --no-deps --format-version 1 --offline \
        --manifest-path "${REPO_ROOT}/Cargo.toml" |
        sed 's/{"name":/\n{"name":/g' |
        awk '/^\{"name":"[^"]*","version":/ { inside = /^\{"name":"straja","version":/ } inside' |
        tr -d '\n'
}

# The field $1 (a plain JSON string without escapes) of the record on stdin.
json_field() {
    sed -n "s/.*\"$1\":\"\\([^\"\\\\]*\\)\".*/\\1/p"
}

# $1 made safe as the replacement of a sed s|...|...| command (dependency alternatives carry
# a |, and & stands for the match).
sed_escape() {
    printf '%s' "$1" | sed 's/[|&\\]/\\&/g'
}

# Debian's version of a Cargo version: a pre-release sorts before its release (1.0.0-rc.1 →
# 1.0.0~rc.1), then the Debian revision -1.
debian_version() {
    printf '%s-1\n' "${1/-/\~}"
}

main() {
    local binary="" out=""
    while (($# > 0)); do
        case $1 in
        --binary)
            (($# >= 2)) || die "--binary needs a path"
            binary=$2
            shift
            ;;
        --out)
            (($# >= 2)) || die "--out needs a directory"
            out=$2
            shift
            ;;
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
    need "${CARGO:-cargo}" dpkg dpkg-deb dpkg-shlibdeps strip gzip
    umask 022

    local target_dir="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}"
    if [[ -z ${binary} ]]; then
        say "cargo build --release --bin straja"
        "${CARGO:-cargo}" build --release --bin straja --manifest-path "${REPO_ROOT}/Cargo.toml"
        binary="${target_dir}/release/straja"
    fi
    [[ -f ${binary} && -x ${binary} ]] || die "not an executable file: ${binary}"
    out="${out:-${target_dir}/debian}"
    mkdir -p "${out}"
    out="$(cd "${out}" && pwd)"

    local record version description homepage arch
    record="$(cargo_record)" || die "cargo metadata has no package straja"
    version="$(json_field version <<<"${record}")"
    description="$(json_field description <<<"${record}")"
    homepage="$(json_field repository <<<"${record}")"
    [[ -n ${version} && -n ${description} && -n ${homepage} ]] ||
        die "no version, description or repository for straja in Cargo.toml"
    version="$(debian_version "${version}")"
    arch="$(dpkg --print-architecture)"

    local epoch="${SOURCE_DATE_EPOCH:-}"
    if [[ -z ${epoch} ]]; then
        epoch="$(git -C "${REPO_ROOT}" log -1 --format=%ct 2>/dev/null || date +%s)"
    fi
    export SOURCE_DATE_EPOCH="${epoch}"

    local work
    work="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: work is local
    trap "rm -rf '${work}'" EXIT
    # debian/straja/ under a directory holding debian/control: where dpkg-shlibdeps expects them.
    local stage="${work}/debian/straja"

    say "staging straja ${version} (${arch}) from ${binary}"
    install -D -m 0755 "${binary}" "${stage}/usr/bin/straja"
    # As dh_strip does for executables.
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "${stage}/usr/bin/straja"
    # Where Debian 12's systemd.pc puts them (and debhelper with it): units in /lib/systemd/system
    # (lintian 2.116 takes /usr/lib too, but bookworm does not move files from / to /usr),
    # sysusers.d and tmpfiles.d entries in /usr/lib.
    install -D -m 0644 "${SYSTEMD_DIR}/straja.service" "${stage}/lib/systemd/system/straja.service"
    install -D -m 0644 "${SYSTEMD_DIR}/straja.sysusers" "${stage}/usr/lib/sysusers.d/straja.conf"
    install -D -m 0644 "${SYSTEMD_DIR}/straja.tmpfiles" "${stage}/usr/lib/tmpfiles.d/straja.conf"
    # The media port's receive buffer cap (applied by postinst and at every boot).
    install -D -m 0644 "${SYSTEMD_DIR}/straja.sysctl" "${stage}/usr/lib/sysctl.d/50-straja.conf"
    # The conffile, 0640 from the start (it will hold camera passwords); postinst gives it to
    # group straja. The pristine copy in /usr/share lets postinst tell whether it was edited.
    install -D -m 0640 "${SYSTEMD_DIR}/straja.example.toml" "${stage}/etc/straja/straja.toml"
    install -D -m 0644 "${SYSTEMD_DIR}/straja.example.toml" "${stage}/usr/share/straja/straja.example.toml"

    local doc="${stage}/usr/share/doc/straja"
    install -D -m 0644 "${DEBIAN_DIR}/copyright" "${doc}/copyright"
    install -D -m 0644 "${DEBIAN_DIR}/README.Debian" "${doc}/README.Debian"
    {
        printf 'straja (%s) unstable; urgency=medium\n\n' "${version}"
        printf '  * Built from the upstream sources with scripts/build-deb.sh.\n\n'
        printf ' -- Straja maintainers <straja@example.invalid>  %s\n' \
            "$(LC_ALL=C date -u -R -d "@${epoch}")"
    } | gzip -9n >"${doc}/changelog.Debian.gz"
    chmod 0644 "${doc}/changelog.Debian.gz"
    install -D -m 0644 "${DEBIAN_DIR}/straja.1" "${stage}/usr/share/man/man1/straja.1"
    gzip -9n "${stage}/usr/share/man/man1/straja.1"
    install -D -m 0644 "${DEBIAN_DIR}/lintian-overrides" "${stage}/usr/share/lintian/overrides/straja"

    local control="${stage}/DEBIAN"
    install -d -m 0755 "${control}"
    local script
    for script in postinst prerm postrm; do
        install -m 0755 "${DEBIAN_DIR}/${script}" "${control}/${script}"
    done
    printf '/etc/straja/straja.toml\n' >"${control}/conffiles"
    chmod 0644 "${control}/conffiles"
    # md5sums of every file but the conffile (as dh_md5sums: dpkg records conffiles' own sums).
    (cd "${stage}" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' |
        LC_ALL=C sort -z | xargs -0 md5sum) >"${control}/md5sums"
    chmod 0644 "${control}/md5sums"

    # The libraries the binary links, as Depends: dpkg-shlibdeps reads debian/control's package
    # names (a stub suffices) and the dpkg database's symbols and shlibs files.
    printf 'Source: straja\n\nPackage: straja\nArchitecture: any\n' >"${work}/debian/control"
    local shlibs
    shlibs="$(cd "${work}" && dpkg-shlibdeps -O -edebian/straja/usr/bin/straja)"
    shlibs="${shlibs#shlibs:Depends=}"
    [[ -n ${shlibs} ]] || die "dpkg-shlibdeps found no library dependencies"

    local installed_size
    installed_size="$(du -sk --apparent-size --exclude=DEBIAN "${stage}" | cut -f1)"
    grep -v '^#' "${DEBIAN_DIR}/control.in" |
        sed -e "s|@VERSION@|$(sed_escape "${version}")|" \
            -e "s|@ARCH@|$(sed_escape "${arch}")|" \
            -e "s|@INSTALLED_SIZE@|${installed_size}|" \
            -e "s|@SHLIBS_DEPENDS@|$(sed_escape "${shlibs}")|" \
            -e "s|@DESCRIPTION@|$(sed_escape "${description}")|" \
            -e "s|@HOMEPAGE@|$(sed_escape "${homepage}")|" \
            >"${control}/control"
    chmod 0644 "${control}/control"
    if grep -q '@[A-Z_]*@' "${control}/control"; then
        die "unfilled field in control: $(grep '@[A-Z_]*@' "${control}/control")"
    fi

    find "${stage}" -exec touch --no-dereference --date="@${epoch}" {} +
    local deb="${out}/straja_${version}_${arch}.deb"
    say "dpkg-deb --build ${deb}"
    dpkg-deb --root-owner-group -Zxz --build "${stage}" "${deb}" >&2
    printf '%s\n' "${deb}"
}

main "$@"
