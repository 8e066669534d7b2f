//! `-F client.properties` for every command, against the broker.

use crate::common::{ok, sluice};

/// One client.properties with producer and consumer keys serves every command: each
/// takes its keys; a key no client knows is an error naming it.
#[test]
fn one_properties_file_for_every_command() {
    let topic = sluice_testkit::unique_topic("cli-props");
    let dir = std::env::temp_dir().join(format!("sluice-{topic}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.properties");
    std::fs::write(
        &file,
        "client.id=props-test\nlinger.ms=1\nacks=all\nauto.offset.reset=earliest\nfetch.min.bytes=1\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    ok(&sluice(
        &["-F", f, "topic", "create", &topic, "--partitions", "1"],
        None,
    ));
    ok(&sluice(&["-F", f, "produce", &topic], Some("a\nb\n")));
    let out = ok(&sluice(
        &["-F", f, "consume", &topic, "-e", "-f", "%s "],
        None,
    ));
    assert_eq!(out, "a b ");
    ok(&sluice(&["-F", f, "metadata", &topic], None));
    ok(&sluice(&["-F", f, "groups", "list"], None));
    ok(&sluice(
        &["-F", f, "configs", "describe", "--topic", &topic],
        None,
    ));

    std::fs::write(&file, "no.such.setting=1\n").unwrap();
    let out = sluice(&["-F", f, "metadata"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no.such.setting"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    ok(&sluice(&["topic", "delete", &topic], None));
}

/// Without -b and SLUICE_BOOTSTRAP, inside the repository, the CLI talks to the cluster
/// `cargo xtask kafka up` started, so the README's commands work as pasted.
#[test]
fn inside_the_repository_the_local_cluster_needs_no_bootstrap() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap();
    let written = std::fs::read_to_string(workspace.join("target/kafka/run/bootstrap"))
        .expect("`cargo xtask kafka up` writes target/kafka/run/bootstrap");
    let first = written.trim().split(',').next().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["metadata"])
        .env_remove("SLUICE_BOOTSTRAP")
        .current_dir(workspace.join("crates"))
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains(&format!(" at {first}")), "{stdout}");
}
