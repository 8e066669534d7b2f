//! Client settings from the command line: `-F client.properties` (the Java / kcat
//! properties format) and `-X key=value`, in that order, later ones winning.

use std::path::Path;

use anyhow::{bail, Context};
use sluice_wire::consumer::ConsumerConfig;
use sluice_wire::producer::ProducerConfig;

/// Which client a command runs, so which settings it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `produce`, `perf produce`.
    Producer,
    /// `consume`, `perf consume`.
    Consumer,
    /// The admin commands: cluster settings only.
    Admin,
}

/// Whether a properties-file key that is not a cluster setting goes to `role`'s client:
/// it does unless it is a setting of the other client kind only (a consumer's
/// `group.id` for `produce`) or `role` has no producer or consumer at all. A key no
/// client knows goes on, so the command names it in its error.
pub(crate) fn fits(role: Role, key: &str, value: &str) -> bool {
    let producer = || ProducerConfig::default().set(key, value).is_ok();
    let consumer = || ConsumerConfig::new("probe").set(key, value).is_ok();
    match role {
        Role::Producer => producer() || !consumer(),
        Role::Consumer => consumer() || !producer(),
        Role::Admin => !(producer() || consumer()),
    }
}

/// Reads a Java properties file: `key=value`, `key: value` or `key value` per line; `#`
/// and `!` start comments; a line ending in `\` continues on the next.
pub(crate) fn read_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading properties file {}", path.display()))?;
    parse(&text).with_context(|| format!("in properties file {}", path.display()))
}

/// Parses the text of a properties file (see [`read_file`]).
pub(crate) fn parse(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            logical.push_str(head);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        let split = entry
            .find(['=', ':'])
            .or_else(|| entry.find(char::is_whitespace));
        let Some(at) = split else {
            bail!(
                "line {}: {entry:?} has no value (expected key=value)",
                n + 1
            );
        };
        let key = entry[..at].trim();
        let value = entry[at + 1..].trim();
        if key.is_empty() {
            bail!("line {}: no key before the separator", n + 1);
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Splits `-X KEY=VALUE` arguments.
pub(crate) fn from_args(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .with_context(|| format!("-X {kv:?} is not KEY=VALUE"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_file_gives_each_command_its_keys() {
        assert!(fits(Role::Producer, "linger.ms", "5"));
        assert!(!fits(Role::Producer, "group.id", "g"));
        assert!(fits(Role::Consumer, "group.id", "g"));
        assert!(!fits(Role::Consumer, "linger.ms", "5"));
        assert!(!fits(Role::Admin, "linger.ms", "5"));
        // A key nobody knows goes on, to fail with its name.
        assert!(fits(Role::Producer, "no.such.key", "1"));
        assert!(fits(Role::Admin, "no.such.key", "1"));
    }

    #[test]
    fn java_properties() {
        let text = "# a comment\n\
                    security.protocol=SASL_SSL\n\
                    sasl.mechanism : SCRAM-SHA-512\n\
                    sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n\
                    \x20   username=\"alice\" password=\"a=b\";\n\
                    ! another\n\
                    \n\
                    ssl.endpoint.identification.algorithm=\n";
        let props = parse(text).unwrap();
        assert_eq!(
            props,
            vec![
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.mechanism".into(), "SCRAM-SHA-512".into()),
                (
                    "sasl.jaas.config".into(),
                    "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"a=b\";".into()
                ),
                ("ssl.endpoint.identification.algorithm".into(), "".into()),
            ]
        );
        assert!(parse("novalue\n").is_err());
    }
}
