//! `sasl.jaas.config`: the one-line JAAS entries Java users paste
//! (`org.apache.kafka.common.security.scram.ScramLoginModule required username="alice"
//! password="...";`), and librdkafka's `sasl.oauthbearer.config`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::oauthbearer::UnsecuredToken;
use super::Secret;
use crate::error::{Error, Result};

/// What a JAAS entry configures.
#[derive(Debug)]
pub(super) enum Login {
    /// PLAIN and SCRAM.
    Password { username: String, password: Secret },
    /// OAUTHBEARER: Java's unsecured-token options, if any, and extensions.
    OAuthBearer {
        unsecured: Option<UnsecuredToken>,
        extensions: BTreeMap<String, String>,
    },
}

const PLAIN: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const OAUTH: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

/// Parses one JAAS entry. Errors never quote the entry (it holds a password).
pub(super) fn parse(entry: &str) -> Result<Login> {
    let tokens = tokenize(entry)?;
    let mut it = tokens.into_iter();
    let module = it.next().ok_or_else(|| bad("it is empty"))?;
    let flag = it
        .next()
        .ok_or_else(|| bad("no control flag after the module"))?;
    if !matches!(
        flag.as_str(),
        "required" | "requisite" | "sufficient" | "optional"
    ) {
        return Err(bad(
            "the control flag must be required, requisite, sufficient or optional",
        ));
    }
    let mut options = BTreeMap::new();
    for token in it {
        if token == ";" {
            break;
        }
        let (k, v) = token
            .split_once('=')
            .ok_or_else(|| bad("options must be key=value"))?;
        options.insert(k.to_string(), v.to_string());
    }
    match module.as_str() {
        PLAIN | SCRAM => {
            let username = options
                .remove("username")
                .ok_or_else(|| bad("no username option"))?;
            let password = options
                .remove("password")
                .ok_or_else(|| bad("no password option"))?;
            Ok(Login::Password {
                username,
                password: Secret::new(password),
            })
        }
        OAUTH => {
            let mut extensions = BTreeMap::new();
            let mut sub = None;
            let mut lifetime = None;
            let mut scope = None;
            for (k, v) in options {
                if let Some(name) = k.strip_prefix("unsecuredLoginExtension_") {
                    extensions.insert(name.to_string(), v);
                } else if k == "unsecuredLoginStringClaim_sub" {
                    sub = Some(v);
                } else if k == "unsecuredLoginLifetimeSeconds" {
                    lifetime = Some(seconds(&v)?);
                } else if k == "unsecuredLoginListClaim_scope" {
                    scope = Some(v);
                }
            }
            let unsecured = sub.map(|principal| {
                let mut t = UnsecuredToken::new(principal);
                if let Some(l) = lifetime {
                    t = t.lifetime(l);
                }
                if let Some(s) = scope {
                    t = t.scope(s);
                }
                t
            });
            Ok(Login::OAuthBearer {
                unsecured,
                extensions,
            })
        }
        "com.sun.security.auth.module.Krb5LoginModule" => Err(Error::config(
            "sasl.jaas.config: Krb5LoginModule (GSSAPI) is not supported; use PLAIN, \
             SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
        )),
        other => Err(Error::config(format!(
            "sasl.jaas.config: login module {other} is not supported (supported: \
             PlainLoginModule, ScramLoginModule, OAuthBearerLoginModule)"
        ))),
    }
}

/// librdkafka's `sasl.oauthbearer.config` for its unsecured tokens:
/// `principal=admin [scope=a,b] [lifeSeconds=3600] [extension_K=V ...]`.
pub(super) fn parse_librdkafka_oauthbearer(
    value: &str,
) -> Result<(UnsecuredToken, BTreeMap<String, String>)> {
    let mut principal = None;
    let mut lifetime = None;
    let mut scope = None;
    let mut extensions = BTreeMap::new();
    for part in value.split_whitespace() {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            Error::config("sasl.oauthbearer.config: expected space-separated key=value pairs")
        })?;
        match k {
            "principal" => principal = Some(v.to_string()),
            "lifeSeconds" => lifetime = Some(seconds(v)?),
            "scope" => scope = Some(v.to_string()),
            _ => match k.strip_prefix("extension_") {
                Some(name) => {
                    extensions.insert(name.to_string(), v.to_string());
                }
                None => {
                    return Err(Error::config(format!(
                        "sasl.oauthbearer.config: unknown key {k:?} (principal, scope, \
                         lifeSeconds, extension_NAME)"
                    )))
                }
            },
        }
    }
    let principal = principal
        .ok_or_else(|| Error::config("sasl.oauthbearer.config: principal=NAME is required"))?;
    let mut token = UnsecuredToken::new(principal);
    if let Some(l) = lifetime {
        token = token.lifetime(l);
    }
    if let Some(s) = scope {
        token = token.scope(s);
    }
    Ok((token, extensions))
}

fn seconds(v: &str) -> Result<Duration> {
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| Error::config("sasl oauthbearer lifetime: expected whole seconds"))
}

fn bad(why: &str) -> Error {
    Error::config(format!("sasl.jaas.config is not a valid JAAS entry: {why}"))
}

/// Splits an entry into words, `key=value` options (values unquoted, with `\"` and
/// `\\` escapes inside quotes) and a final `;`.
fn tokenize(entry: &str) -> Result<Vec<String>> {
    let mut tokens = Vec::new();
    let mut chars = entry.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        if c == ';' {
            chars.next();
            tokens.push(";".to_string());
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == ';' {
                break;
            }
            chars.next();
            if c == '"' {
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => word.push(escaped),
                            None => return Err(bad("a quoted value is not closed")),
                        },
                        Some(other) => word.push(other),
                        None => return Err(bad("a quoted value is not closed")),
                    }
                }
            } else {
                word.push(c);
            }
        }
        tokens.push(word);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_and_plain_entries() {
        let login = parse(
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="p;w \"x\"";"#,
        )
        .unwrap();
        match login {
            Login::Password { username, password } => {
                assert_eq!(username, "alice");
                assert_eq!(password.expose(), "p;w \"x\"");
            }
            other => panic!("{other:?}"),
        }
        let login =
            parse("org.apache.kafka.common.security.plain.PlainLoginModule required username=bob password=pw;")
                .unwrap();
        assert!(matches!(login, Login::Password { username, .. } if username == "bob"));
    }

    #[test]
    fn oauthbearer_unsecured_options_and_extensions() {
        let login = parse(
            r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin" unsecuredLoginExtension_traceId="42";"#,
        )
        .unwrap();
        match login {
            Login::OAuthBearer {
                unsecured,
                extensions,
            } => {
                assert_eq!(unsecured.unwrap().principal(), "admin");
                assert_eq!(extensions.get("traceId").map(String::as_str), Some("42"));
            }
            other => panic!("{other:?}"),
        }
        let (t, ext) =
            parse_librdkafka_oauthbearer("principal=bob lifeSeconds=60 extension_a=b").unwrap();
        assert_eq!(t.principal(), "bob");
        assert_eq!(ext.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn errors_never_quote_the_password() {
        for entry in [
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="hunter2"#,
            r#"org.apache.kafka.common.security.plain.PlainLoginModule maybe password="hunter2";"#,
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required password="hunter2";"#,
            r#"com.example.Custom required password="hunter2";"#,
        ] {
            let e = parse(entry).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Config);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        assert!(
            parse(r#"com.sun.security.auth.module.Krb5LoginModule required;"#)
                .unwrap_err()
                .to_string()
                .contains("GSSAPI")
        );
    }
}
