//! The Prometheus server the exporter test scrapes with: Debian's `prometheus` package,
//! installed with apt when it is missing and we may (root on a Debian machine, as in
//! CI). The test starts and stops its own server; this only finds or installs the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian's package puts the server.
const DEBIAN_BINARY: &str = "/usr/bin/prometheus";

/// The `prometheus` binary: on the PATH, or installed now with
/// `apt-get install prometheus` when that is possible. `None` (with a warning) when it
/// is neither; the test then says so, and fails under `CI`.
pub fn ensure() -> Option<PathBuf> {
    if let Some(found) = on_path() {
        return Some(found);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!("xtask: warning: no prometheus binary and no apt-get as root to install it; the exporter's Prometheus test will be skipped");
        return None;
    }
    eprintln!("xtask: installing Debian's prometheus package (the exporter test scrapes with it)");
    // The package lists may be missing on a fresh machine: update once if the first
    // try fails.
    if !apt_install() {
        let _ = apt(&["update", "-q"]);
        if !apt_install() {
            eprintln!("xtask: warning: apt-get install prometheus failed");
            return None;
        }
    }
    Path::new(DEBIAN_BINARY)
        .exists()
        .then(|| PathBuf::from(DEBIAN_BINARY))
}

fn on_path() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

fn apt_install() -> bool {
    apt(&[
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "prometheus",
    ])
}

/// Runs apt-get quietly (its output only on failure); true on success.
fn apt(args: &[&str]) -> bool {
    match Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "xtask: apt-get {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("xtask: running apt-get: {e}");
            false
        }
    }
}
