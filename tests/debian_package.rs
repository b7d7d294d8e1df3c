//! The Debian package, as `scripts/build-deb.sh` builds it from the binary under test, checked
//! the way an installation would see it, without installing it (nothing here changes the system):
//!
//! - `dpkg-deb -c`: exactly the expected files, all owned by root, with their modes;
//! - `dpkg-deb -f`: name, version (Cargo's, plus the Debian revision), architecture, description
//!   and homepage as in Cargo.toml, dependencies on the GStreamer plugin packages, the linked
//!   libraries and systemd;
//! - the example configuration is the one conffile, the shipped unit, sysusers.d and tmpfiles.d
//!   entries and example are the repository's files, the binary is stripped, md5sums hold;
//! - the maintainer scripts are POSIX sh (`sh -n`, and shellcheck when it is installed), and run
//!   against the extracted tree as `dpkg --root` runs them (`DPKG_ROOT`), with the commands that
//!   would reach the running system (`deb-systemd-helper`, `systemctl`, ...) replaced by stubs that
//!   log their arguments: postinst makes the user, the directories and the configuration's
//!   ownership, enables the unit only once the configuration is no longer the example, and
//!   starts nothing; postrm purge keeps the recordings;
//! - lintian reports no error.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs a command; its success and its stdout followed by its stderr.
fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs a command that must succeed; its stdout.
fn stdout_of(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The package, built once for all the tests of this file into a directory under Cargo's
/// target-tmpdir that each run replaces.
fn package() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian_package");
        if out.exists() {
            std::fs::remove_dir_all(&out).expect("remove the previous package");
        }
        let started = Instant::now();
        let output = Command::new(repo_file("scripts/build-deb.sh"))
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_straja"))
            .arg("--out")
            .arg(&out)
            .output()
            .expect("scripts/build-deb.sh runs");
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "build-deb.sh failed:\n{log}");
        let deb = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        assert!(
            deb.is_file(),
            "build-deb.sh printed no .deb: {deb:?}\n{log}"
        );
        println!(
            "built {} in {:.1?} ({} bytes)",
            deb.display(),
            started.elapsed(),
            std::fs::metadata(&deb).expect("the .deb").len()
        );
        deb
    })
}

/// The package's files extracted into a temp dir (`dpkg-deb -x`), and its control files
/// (`dpkg-deb -e`) in `DEBIAN/` beside them.
fn extracted() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    stdout_of(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(package())
            .arg(dir.path()),
    );
    stdout_of(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(package())
            .arg(dir.path().join("DEBIAN")),
    );
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// One entry of `dpkg-deb -c`: permissions as `ls` shows them, owner/group, path (without the
/// leading `.`).
#[derive(Debug)]
struct Entry {
    permissions: String,
    owner: String,
    path: String,
}

fn listing() -> (String, Vec<Entry>) {
    let text = stdout_of(Command::new("dpkg-deb").arg("-c").arg(package()));
    let entries = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 6, "unexpected dpkg-deb -c line: {line}");
            Entry {
                permissions: fields[0].to_owned(),
                owner: fields[1].to_owned(),
                path: fields[5].trim_start_matches('.').to_owned(),
            }
        })
        .collect();
    (text, entries)
}

#[test]
fn the_package_holds_binary_unit_sysusers_tmpfiles_config_and_docs_owned_by_root() {
    let (text, entries) = listing();
    println!("dpkg-deb -c:\n{text}");
    let expected: BTreeMap<&str, &str> = [
        ("/usr/bin/straja", "-rwxr-xr-x"),
        ("/lib/systemd/system/straja.service", "-rw-r--r--"),
        ("/usr/lib/sysusers.d/straja.conf", "-rw-r--r--"),
        ("/usr/lib/tmpfiles.d/straja.conf", "-rw-r--r--"),
        ("/usr/lib/sysctl.d/50-straja.conf", "-rw-r--r--"),
        // Never world-readable: camera passwords go there.
        ("/etc/straja/straja.toml", "-rw-r-----"),
        ("/usr/share/straja/straja.example.toml", "-rw-r--r--"),
        ("/usr/share/doc/straja/copyright", "-rw-r--r--"),
        ("/usr/share/doc/straja/changelog.Debian.gz", "-rw-r--r--"),
        ("/usr/share/doc/straja/README.Debian", "-rw-r--r--"),
        ("/usr/share/man/man1/straja.1.gz", "-rw-r--r--"),
        ("/usr/share/lintian/overrides/straja", "-rw-r--r--"),
    ]
    .into_iter()
    .collect();
    for entry in &entries {
        assert_eq!(entry.owner, "root/root", "{entry:?}");
        if entry.permissions.starts_with('d') {
            assert_eq!(entry.permissions, "drwxr-xr-x", "{entry:?}");
        }
    }
    let files: BTreeMap<&str, &str> = entries
        .iter()
        .filter(|e| !e.permissions.starts_with('d'))
        .map(|e| (e.path.as_str(), e.permissions.as_str()))
        .collect();
    assert_eq!(files, expected, "the package's files");
}

/// The fields of a control file (continuation lines joined with `\n`).
fn control_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(' ') {
            let name = last.as_ref().expect("a continuation line after a field");
            let value: &mut String = fields.get_mut(name).expect("the field");
            value.push('\n');
            value.push_str(line);
        } else {
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("not a field: {line}"));
            fields.insert(name.to_owned(), value.trim().to_owned());
            last = Some(name.to_owned());
        }
    }
    fields
}

/// The package names a Depends field names, alternatives included.
fn depended_on(depends: &str) -> BTreeSet<String> {
    depends
        .split([',', '|'])
        .map(|d| {
            d.split_whitespace()
                .next()
                .unwrap_or_else(|| panic!("empty dependency in {depends}"))
                .to_owned()
        })
        .collect()
}

#[test]
fn the_control_fields_follow_cargo_and_depend_on_gstreamer_and_systemd() {
    let text = stdout_of(Command::new("dpkg-deb").arg("-f").arg(package()));
    println!("dpkg-deb -f:\n{text}");
    let fields = control_fields(&text);
    let field = |name: &str| {
        fields
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .as_str()
    };
    assert_eq!(field("Package"), "straja");
    let cargo_version = env!("CARGO_PKG_VERSION").replacen('-', "~", 1);
    assert_eq!(field("Version"), format!("{cargo_version}-1"));
    let arch = stdout_of(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Architecture"), arch.trim());
    assert_eq!(field("Section"), "video");
    assert_eq!(field("Priority"), "optional");
    assert_eq!(field("Homepage"), env!("CARGO_PKG_REPOSITORY"));
    let maintainer = field("Maintainer");
    assert!(
        maintainer.contains('<') && maintainer.ends_with('>') && maintainer.contains('@'),
        "{maintainer}"
    );
    let description = field("Description");
    assert_eq!(
        description.lines().next(),
        Some(env!("CARGO_PKG_DESCRIPTION"))
    );
    assert!(description.lines().count() > 3, "no long description");
    let size: u64 = field("Installed-Size")
        .parse()
        .expect("Installed-Size in KiB");
    assert!(size > 1000, "Installed-Size {size} KiB");

    let depends = depended_on(field("Depends"));
    for package in [
        // The elements the pipelines use.
        "gstreamer1.0-plugins-base",
        "gstreamer1.0-plugins-good",
        "gstreamer1.0-plugins-bad",
        "gstreamer1.0-plugins-ugly",
        "gstreamer1.0-libav",
        "glib-networking",
        // systemd-sysusers and systemd-tmpfiles for postinst.
        "systemd",
        // The libraries the binary links (dpkg-shlibdeps).
        "libc6",
        "libglib2.0-0",
        "libgstreamer1.0-0",
        "libgstreamer-plugins-base1.0-0",
    ] {
        assert!(
            depends.contains(package),
            "Depends lacks {package}: {depends:?}"
        );
    }
    // The RTSP server is the tests' fake camera only.
    assert!(!depends.contains("gstreamer1.0-rtsp"), "{depends:?}");
}

#[test]
fn the_config_is_the_one_conffile_and_the_shipped_files_are_the_repositorys() {
    let root = extracted();
    let root = root.path();
    let conffiles = std::fs::read_to_string(root.join("DEBIAN/conffiles")).expect("conffiles");
    assert_eq!(conffiles, "/etc/straja/straja.toml\n");

    for (shipped, source) in [
        (
            "lib/systemd/system/straja.service",
            "systemd/straja.service",
        ),
        ("usr/lib/sysusers.d/straja.conf", "systemd/straja.sysusers"),
        ("usr/lib/tmpfiles.d/straja.conf", "systemd/straja.tmpfiles"),
        ("usr/lib/sysctl.d/50-straja.conf", "systemd/straja.sysctl"),
        ("etc/straja/straja.toml", "systemd/straja.example.toml"),
        (
            "usr/share/straja/straja.example.toml",
            "systemd/straja.example.toml",
        ),
        ("usr/share/doc/straja/copyright", "systemd/debian/copyright"),
    ] {
        let shipped_bytes = std::fs::read(root.join(shipped)).expect(shipped);
        let source_bytes = std::fs::read(repo_file(source)).expect(source);
        assert!(
            shipped_bytes == source_bytes,
            "{shipped} differs from {source}"
        );
    }
    let copyright = std::fs::read_to_string(root.join("usr/share/doc/straja/copyright")).unwrap();
    assert!(
        copyright.starts_with(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        ) && copyright.contains(&format!("License: {}\n", env!("CARGO_PKG_LICENSE"))),
        "{copyright}"
    );

    // Stripped: no symbol table, no debug information.
    let sections = stdout_of(
        Command::new("readelf")
            .args(["--section-headers", "--wide"])
            .arg(root.join("usr/bin/straja")),
    );
    for section in [".symtab", ".debug_info"] {
        assert!(
            !sections.contains(section),
            "the binary keeps {section}:\n{sections}"
        );
    }

    // md5sums covers every file but the conffile, and holds.
    let (ok, text) = run(Command::new("md5sum")
        .args(["--check", "--strict", "DEBIAN/md5sums"])
        .current_dir(root));
    assert!(ok, "md5sum --check:\n{text}");
    let summed: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_suffix(": OK"))
        .collect();
    assert!(summed.contains("usr/bin/straja"), "{text}");
    assert!(!summed.iter().any(|p| p.starts_with("etc/")), "{text}");
    assert_eq!(summed.len(), 11, "{text}");
}

const MAINTAINER_SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];

#[test]
fn the_maintainer_scripts_are_the_repositorys_posix_sh_with_set_e() {
    let root = extracted();
    let control = root.path().join("DEBIAN");
    let shellcheck = run(Command::new("shellcheck").arg("--version")).0;
    for name in MAINTAINER_SCRIPTS {
        let path = control.join(name);
        assert_eq!(mode(&path), 0o755, "{name}");
        let text = std::fs::read_to_string(&path).expect(name);
        assert_eq!(
            text,
            std::fs::read_to_string(repo_file(&format!("systemd/debian/{name}"))).unwrap(),
            "{name} is not systemd/debian/{name}"
        );
        assert!(text.starts_with("#!/bin/sh\n"), "{name}");
        assert!(text.contains("\nset -e\n"), "{name} does not set -e");
        let (ok, out) = run(Command::new("sh").arg("-n").arg(&path));
        assert!(ok, "sh -n {name}:\n{out}");
        if shellcheck {
            let (ok, out) = run(Command::new("shellcheck").args(["-s", "sh"]).arg(&path));
            assert!(ok, "shellcheck {name}:\n{out}");
        }
    }
    if !shellcheck {
        println!("shellcheck is not installed: only sh -n checked the scripts");
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    for call in [
        "systemd-sysusers ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} straja.conf",
        "systemd-tmpfiles ${DPKG_ROOT:+--root=\"$DPKG_ROOT\"} --create straja.conf",
        "deb-systemd-helper enable \"$unit\"",
        "sysctl -q -p /usr/lib/sysctl.d/50-straja.conf",
    ] {
        assert!(postinst.contains(call), "postinst does not run {call}");
    }
}

/// Commands that would act on the running system (or on the host's user database), replaced for
/// the maintainer scripts by stubs that log their arguments to `STUB_LOG` and exit with the
/// given status.
const STUBS: [(&str, u8); 5] = [
    ("deb-systemd-helper", 0),
    ("deb-systemd-invoke", 0),
    ("systemctl", 0),
    // No override.
    ("dpkg-statoverride", 1),
    // The group `straja` is the extracted root's; ownership is checked from the log.
    ("chown", 0),
];

/// Runs a maintainer script of the extracted package as `dpkg --root=ROOT` would (`DPKG_ROOT`),
/// with the stubs first on PATH; its output, and the stubs' log lines of this run.
fn run_script(root: &Path, script: &str, args: &[&str]) -> (String, Vec<String>) {
    let stubs = root.join("stubs");
    let log = root.join("stubs.log");
    if !stubs.exists() {
        std::fs::create_dir(&stubs).expect("stubs dir");
        for (name, status) in STUBS {
            let path = stubs.join(name);
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho \"${{0##*/}} $*\" >>\"$STUB_LOG\"\nexit {status}\n"),
            )
            .expect("stub");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    std::fs::write(&log, "").expect("stub log");
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".to_owned())
    );
    let (ok, output) = run(Command::new("/bin/sh")
        .arg(root.join("DEBIAN").join(script))
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("LC_ALL", "C")
        .env("DPKG_ROOT", root)
        .env("STUB_LOG", &log));
    assert!(ok, "{script} {args:?} failed:\n{output}");
    let calls = std::fs::read_to_string(&log)
        .expect("stub log")
        .lines()
        .map(str::to_owned)
        .collect();
    println!("{script} {args:?}: output:\n{output}stub calls: {calls:#?}");
    (output, calls)
}

/// The numeric id of a group in the extracted root's /etc/group.
fn group_id(root: &Path, name: &str) -> u32 {
    let group = std::fs::read_to_string(root.join("etc/group")).expect("etc/group");
    group
        .lines()
        .find_map(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            (fields[0] == name).then(|| fields[2].parse().expect("gid"))
        })
        .unwrap_or_else(|| panic!("no group {name} in:\n{group}"))
}

fn assert_nothing_started(calls: &[String]) {
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("systemctl") || c.starts_with("deb-systemd-invoke")),
        "a service was acted on outside the running system: {calls:?}"
    );
}

#[test]
fn postinst_makes_user_directories_and_config_ownership_and_enables_the_unit_once_configured() {
    let root = extracted();
    let root = root.path();
    let config = root.join("etc/straja/straja.toml");
    // So that postinst's chmod shows.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (output, calls) = run_script(root, "postinst", &["configure"]);
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("straja:") && l.contains(":/var/lib/straja:")),
        "{passwd}"
    );
    let straja = group_id(root, "straja");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group
            .lines()
            .any(|l| l.starts_with("video:") && l.ends_with("straja")),
        "{group}"
    );
    for (dir, dir_mode, gid) in [
        ("etc/straja", 0o750, straja),
        ("etc/straja/tls", 0o750, straja),
        ("etc/straja/credentials", 0o700, 0),
    ] {
        let path = root.join(dir);
        assert_eq!(mode(&path), dir_mode, "{dir}");
        assert_eq!(
            std::fs::metadata(&path).unwrap().gid(),
            gid,
            "{dir}'s group"
        );
    }
    assert_eq!(mode(&config), 0o640, "straja.toml");
    assert!(
        calls.contains(&format!("chown 0:{straja} {}", config.display())),
        "{calls:?}"
    );
    assert!(
        !calls.contains(&"deb-systemd-helper enable straja.service".to_owned()),
        "the example configuration would fail at boot, yet the unit was enabled: {calls:?}"
    );
    assert_nothing_started(&calls);
    assert!(
        output.contains("not enabled or started") && output.contains("is still the example"),
        "no note on the unconfigured service:\n{output}"
    );

    // Configured, then upgraded: the same steps again (idempotent), the unit enabled, no note.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n# edited by the administrator\n");
    std::fs::write(&config, text).unwrap();
    let (output, calls) = run_script(root, "postinst", &["configure", "0.0.9-1"]);
    assert!(!output.contains("not started"), "{output}");
    assert!(
        calls.contains(&"deb-systemd-helper enable straja.service".to_owned()),
        "{calls:?}"
    );
    assert_eq!(
        passwd,
        std::fs::read_to_string(root.join("etc/passwd")).unwrap(),
        "a second run changed the users"
    );
    assert_nothing_started(&calls);
}

#[test]
fn purge_removes_config_dirs_and_cache_but_keeps_recordings_and_audit_log() {
    let root = extracted();
    let root = root.path();
    run_script(root, "postinst", &["configure"]);
    let kept = [
        "var/lib/straja/recordings/north-gate/20261201T180000Z.mp4.enc",
        "var/lib/straja/audit/audit.log",
        "var/lib/straja/keys/recording.key",
        "etc/straja/tls/server.key",
    ];
    for file in kept {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "evidence").unwrap();
    }
    let cache = root.join("var/cache/straja");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("gst-registry.bin"), "cache").unwrap();

    let (_, calls) = run_script(root, "prerm", &["remove"]);
    assert_nothing_started(&calls);
    let (_, calls) = run_script(root, "postrm", &["remove"]);
    assert_eq!(calls, ["deb-systemd-helper mask straja.service"]);
    assert!(cache.exists(), "remove took the cache");

    // dpkg removes the conffile before it runs postrm purge.
    std::fs::remove_file(root.join("etc/straja/straja.toml")).unwrap();
    let (output, calls) = run_script(root, "postrm", &["purge"]);
    assert_eq!(
        calls,
        [
            "deb-systemd-helper purge straja.service",
            "deb-systemd-helper unmask straja.service"
        ]
    );
    assert!(!cache.exists(), "purge kept /var/cache/straja");
    assert!(
        !root.join("etc/straja/credentials").exists(),
        "purge kept the empty /etc/straja/credentials"
    );
    for file in kept {
        assert!(root.join(file).is_file(), "purge removed {file}");
    }
    assert!(
        output.contains("purge kept /var/lib/straja") && output.contains("rm -rf /var/lib/straja"),
        "no note on what purge kept:\n{output}"
    );
    assert!(output.contains("purge kept /etc/straja"), "{output}");
}

#[test]
fn lintian_reports_no_errors() {
    let started = Instant::now();
    let (ok, text) = run(Command::new("lintian")
        .args(["--display-info", "--show-overrides"])
        .arg(package()));
    println!(
        "lintian --display-info --show-overrides ({:.1?}):\n{text}",
        started.elapsed()
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors: {errors:#?}");
    assert!(ok, "lintian failed:\n{text}");
}
