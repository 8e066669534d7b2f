//! Client settings from the command line: `-F client.properties` (the Java / kcat
//! properties format) and `-X key=value`, in that order, later ones winning.

use std::path::Path;

use anyhow::{bail, Context};

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
