//! What the CLI test files share: running the `sluice` binary against the test cluster.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `sluice args` against the test cluster with `stdin` (if any) on its standard
/// input. `SLUICE_REGISTRY_URL` (set by `cargo xtask test`) is removed, so values print
/// raw unless a test passes `--registry`.
pub fn sluice(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("SLUICE_BOOTSTRAP", sluice_testkit::bootstrap())
        .env_remove("SLUICE_REGISTRY_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluice");
    if let Some(mut input) = child.stdin.take() {
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

/// The standard output of a run that must have succeeded (else its stderr and stdout).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sluice failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}
