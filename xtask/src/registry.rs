//! A real schema registry for the tests: Apicurio Registry from Maven Central.
//!
//! Apicurio serves the Confluent Schema Registry REST API under `/apis/ccompat/v7`, so
//! `sluice-schema` is tested against a real server speaking the protocol Confluent's, the
//! Java serializers' and Karapace's clients speak, with no mock in between.
//!
//! Layout (all under `<workspace>/target/registry/`):
//! ```text
//! <version>/apicurio-registry-app-<version>-all.tar.gz   `mvn dependency:copy` output
//! <version>/app/<version>-runner.jar, app/lib/*.jar      the unpacked Quarkus application
//! <version>/app/.complete                                marker: the cache is whole
//! run/registry.pid      the pid of the Java process `up` started (the only one `down` signals)
//! run/url               "http://127.0.0.1:<port>/apis/ccompat/v7" (the Confluent-compatible API)
//! run/tls-url           "https://127.0.0.1:<port+1>/apis/ccompat/v7": the same API over TLS
//! run/tls/              the certificates of `tls.rs` (fresh on every `up`): the registry
//!                       serves broker.pem (SANs 127.0.0.1, localhost); clients trust ca.pem
//! run/registry.out      its stdout and stderr
//! ```
//!
//! Storage is Apicurio 3's default: SQL on an in-memory H2 database, so every `up` starts
//! empty and `down` throws everything away. 3.0.x runs on Java 17; 3.3.x needs Java 21.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::kafka::{java, workspace_root, INTERRUPTED};

/// The Apicurio Registry release we test against (the newest 3.0.x: Java 17).
pub const DEFAULT_VERSION: &str = "3.0.9";
/// The HTTP port of `cargo xtask registry up` (Confluent's registry uses 8081).
pub const DEFAULT_PORT: u16 = 18081;
/// How long `up` waits for `/health/ready` (it takes ~5 s on an idle machine).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

fn registry_dir() -> PathBuf {
    workspace_root().join("target").join("registry")
}

fn run_dir() -> PathBuf {
    registry_dir().join("run")
}

fn app_dir(version: &str) -> PathBuf {
    registry_dir().join(version).join("app")
}

/// The CA, server and client certificates of the HTTPS port.
pub fn tls_dir() -> PathBuf {
    run_dir().join("tls")
}

fn runner_jar(version: &str) -> PathBuf {
    app_dir(version).join(format!("apicurio-registry-app-{version}-runner.jar"))
}

/// The URL of the Confluent-compatible API of a registry on `port`.
pub fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/apis/ccompat/v7")
}

/// The HTTPS URL of the same API: on the next port.
pub fn tls_url(port: u16) -> String {
    format!("https://127.0.0.1:{}/apis/ccompat/v7", port + 1)
}

/// Make sure `target/registry/<version>/app` holds the unpacked application.
fn fetch(version: &str) -> Result<PathBuf> {
    let app = app_dir(version);
    if app.join(".complete").exists() {
        return Ok(app);
    }
    let vdir = registry_dir().join(version);
    fs::create_dir_all(&vdir)?;
    eprintln!(
        "xtask: fetching Apicurio Registry {version} from Maven Central into {}",
        vdir.display()
    );
    let started = Instant::now();
    // `dependency:copy` needs no project: the artifact is named on the command line.
    let artifact = format!("io.apicurio:apicurio-registry-app:{version}:tar.gz:all");
    let out = Command::new("mvn")
        .args([
            "-q",
            "-B",
            "dependency:copy",
            &format!("-Dartifact={artifact}"),
            "-DoutputDirectory=.",
        ])
        .current_dir(&vdir)
        .stdin(Stdio::null())
        .output()
        .context("running mvn (is Maven installed?)")?;
    if !out.status.success() {
        bail!(
            "mvn could not fetch {artifact} ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tarball = vdir.join(format!("apicurio-registry-app-{version}-all.tar.gz"));
    let partial = vdir.join("app.partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&partial)
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar could not unpack {} ({status})", tarball.display());
    }
    if !partial
        .join(format!("apicurio-registry-app-{version}-runner.jar"))
        .exists()
    {
        bail!(
            "{} has no apicurio-registry-app-{version}-runner.jar at its top",
            tarball.display()
        );
    }
    let _ = fs::remove_dir_all(&app);
    fs::rename(&partial, &app)?;
    let _ = fs::remove_file(&tarball);
    fs::write(
        app.join(".complete"),
        format!("apicurio-registry {version}\n"),
    )?;
    eprintln!("xtask: fetched in {:.1}s", started.elapsed().as_secs_f64());
    Ok(app)
}

/// The command line of `up` (without `java`): the port is in it, so `is_ours` can tell our
/// registry from any other Java process, and `status` the port it serves.
fn command(version: &str, port: u16, tls: &Path) -> Vec<String> {
    vec![
        // A small heap and the C1 compiler only: the registry holds a few test schemas,
        // and starts faster on a busy machine with less JIT work.
        "-Xmx384m".into(),
        "-XX:TieredStopAtLevel=1".into(),
        format!("-Dquarkus.http.port={port}"),
        "-Dquarkus.http.host=127.0.0.1".into(),
        // HTTPS beside HTTP, with the test CA's server certificate (PEM, EC P-256).
        format!("-Dquarkus.http.ssl-port={}", port + 1),
        format!(
            "-Dquarkus.http.ssl.certificate.files={}",
            tls.join("broker.pem").display()
        ),
        format!(
            "-Dquarkus.http.ssl.certificate.key-files={}",
            tls.join("broker.key").display()
        ),
        // In-memory H2 (the default of 3.x, said here so that a changed default cannot
        // leave state behind between runs).
        "-Dapicurio.storage.kind=sql".into(),
        "-Dapicurio.storage.sql.kind=h2".into(),
        "-Dquarkus.datasource.jdbc.url=jdbc:h2:mem:registry_db".into(),
        "-jar".into(),
        runner_jar(version).display().to_string(),
    ]
}

fn read_pid() -> Option<i32> {
    fs::read_to_string(run_dir().join("registry.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// True when `pid` is alive and runs our runner jar (checked through `/proc`, so a recycled
/// pid is never mistaken for ours).
fn is_ours(pid: i32) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&raw);
    let ours = registry_dir().display().to_string();
    cmdline.contains("apicurio-registry-app") && cmdline.contains(&ours)
}

/// The environment the schema tests read: the registry's URLs and the CA of its HTTPS port.
pub fn test_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("SLUICE_REGISTRY_URL", url(port)),
        ("SLUICE_REGISTRY_TLS_URL", tls_url(port)),
        (
            "SLUICE_REGISTRY_CA",
            tls_dir().join("ca.pem").display().to_string(),
        ),
    ]
}

/// The pid and URL of our running registry, if there is one.
pub fn running() -> Option<(i32, String)> {
    let pid = read_pid().filter(|&pid| is_ours(pid))?;
    let url = fs::read_to_string(run_dir().join("url")).ok()?;
    Some((pid, url.trim().to_string()))
}

/// `GET /health/ready` answers 200 (a plain HTTP/1.0 exchange: xtask needs no HTTP crate).
fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /health/ready HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.starts_with("HTTP/1.")
        && line
            .get(8..)
            .is_some_and(|rest| rest.trim_start().starts_with("200"))
}

fn port_of(url: &str) -> Option<u16> {
    url.strip_prefix("http://127.0.0.1:")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Start a fresh registry on `port` (or reuse ours if it already serves that port); waits
/// for `/health/ready` and returns the URL of its Confluent-compatible API.
pub fn up(version: &str, port: u16) -> Result<String> {
    if let Some((pid, url)) = running() {
        if port_of(&url) == Some(port) && ready(port) {
            eprintln!("xtask: Apicurio Registry (pid {pid}) is already running");
            return Ok(url);
        }
        down()?;
    }
    if port == u16::MAX {
        bail!("--port {port}: the HTTPS port (port + 1) would not fit");
    }
    for p in [port, port + 1] {
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
            bail!("port {p} is in use by a process that is not our registry: pick another with --port");
        }
    }
    fetch(version)?;
    let run = run_dir();
    fs::create_dir_all(&run)?;
    crate::tls::generate(&tls_dir())?;
    let out = fs::File::create(run.join("registry.out"))?;
    let started = Instant::now();
    let mut child = Command::new(java())
        .args(command(version, port, &tls_dir()))
        .current_dir(&run)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting java (is a JDK 17+ installed?)")?;
    let pid = child.id() as i32;
    fs::write(run.join("registry.pid"), format!("{pid}\n"))?;
    let deadline = started + START_TIMEOUT;
    loop {
        if ready(port) && TcpStream::connect(("127.0.0.1", port + 1)).is_ok() {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "Apicurio Registry exited ({status}) before it was ready:\n{}",
                tail(&run.join("registry.out"), 30)
            );
        }
        if INTERRUPTED.load(Ordering::SeqCst) || Instant::now() > deadline {
            let why = if INTERRUPTED.load(Ordering::SeqCst) {
                "interrupted".to_string()
            } else {
                format!("not ready after {START_TIMEOUT:?}")
            };
            let _ = down();
            bail!(
                "Apicurio Registry {why}:\n{}",
                tail(&run.join("registry.out"), 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = url(port);
    fs::write(run.join("tls-url"), format!("{}\n", tls_url(port)))?;
    fs::write(run.join("url"), format!("{url}\n"))?;
    eprintln!(
        "xtask: Apicurio Registry {version} (pid {pid}) ready in {:.1}s; HTTPS at {} \
         (CA {})",
        started.elapsed().as_secs_f64(),
        tls_url(port),
        tls_dir().join("ca.pem").display()
    );
    Ok(url)
}

/// Stop the registry `up` started: SIGTERM, wait, SIGKILL; only the pid in our pid file,
/// and only while its command line runs our jar.
pub fn down() -> Result<()> {
    let Some(pid) = read_pid().filter(|&pid| is_ours(pid)) else {
        eprintln!("xtask: no Apicurio Registry of ours is running");
        let _ = fs::remove_file(run_dir().join("registry.pid"));
        let _ = fs::remove_file(run_dir().join("url"));
        return Ok(());
    };
    eprintln!("xtask: stopping Apicurio Registry (pid {pid})");
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while is_ours(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if is_ours(pid) {
        eprintln!("xtask: registry (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT:?}; SIGKILL");
        signal(pid, libc::SIGKILL);
    }
    let _ = fs::remove_file(run_dir().join("registry.pid"));
    let _ = fs::remove_file(run_dir().join("url"));
    let _ = fs::remove_file(run_dir().join("tls-url"));
    Ok(())
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_binds_loopback_on_the_port_with_in_memory_storage() {
        let cmd = command("3.0.9", 28080, Path::new("/t"));
        assert!(cmd.contains(&"-Dquarkus.http.port=28080".to_string()));
        assert!(cmd.contains(&"-Dquarkus.http.ssl-port=28081".to_string()));
        assert!(cmd.contains(&"-Dquarkus.http.ssl.certificate.files=/t/broker.pem".to_string()));
        assert!(cmd.contains(&"-Dquarkus.http.host=127.0.0.1".to_string()));
        assert!(cmd
            .iter()
            .any(|a| a.starts_with("-Dquarkus.datasource.jdbc.url=jdbc:h2:mem:")));
        assert!(cmd
            .last()
            .is_some_and(|jar| jar.ends_with("apicurio-registry-app-3.0.9-runner.jar")));
    }

    #[test]
    fn url_names_the_confluent_compatible_api() {
        assert_eq!(url(28080), "http://127.0.0.1:28080/apis/ccompat/v7");
        assert_eq!(port_of(&url(28080)), Some(28080));
        assert_eq!(tls_url(28080), "https://127.0.0.1:28081/apis/ccompat/v7");
        assert_eq!(port_of("http://example.com/"), None);
    }
}
