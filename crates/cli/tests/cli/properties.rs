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
