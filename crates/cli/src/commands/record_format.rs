//! How `sluice consume` prints a record: its own line (`partition:0 offset:7 key:...`),
//! a kcat `-f` format string, or kcat's `-J` JSON envelope.

use std::io::Write;

use bytes::Bytes;
use sluice_wire::cluster::Metadata;
use sluice_wire::consumer::ConsumerRecord;
use sluice_wire::records::TimestampType;

use super::schema::{plain, Decoded, Format};

/// The output chosen on the command line.
#[derive(Debug)]
pub(crate) struct Printer {
    style: Style,
    /// kcat's `-Z`: null keys and values print as `NULL` instead of nothing (`-f`).
    print_null: bool,
    /// How header values print (`--header-format`: raw or a plain format).
    header_format: Format,
}

#[derive(Debug)]
enum Style {
    Line,
    Format(Vec<Token>),
    Json,
}

/// A piece of a `-f` format string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    Topic,
    Partition,
    Offset,
    Key,
    KeyLen,
    Value,
    ValueLen,
    ValueLenBinary,
    Headers,
    Timestamp,
}

impl Printer {
    /// `format` is kcat's `-f`, `json` its `-J` (they exclude each other).
    pub(crate) fn new(format: Option<&str>, json: bool, print_null: bool) -> anyhow::Result<Self> {
        let style = match (format, json) {
            (Some(_), true) => anyhow::bail!("-f and -J exclude each other"),
            (Some(f), false) => Style::Format(parse_format(f)?),
            (None, true) => Style::Json,
            (None, false) => Style::Line,
        };
        Ok(Printer {
            style,
            print_null,
            header_format: Format::Raw,
        })
    }

    /// Header values print in `format`: raw, int32, int64 or hex (a registry format is
    /// refused: headers carry no schema id).
    pub(crate) fn with_header_format(mut self, format: Format) -> anyhow::Result<Self> {
        if !matches!(
            format,
            Format::Raw | Format::Int32 | Format::Int64 | Format::Hex
        ) {
            anyhow::bail!("--header-format {format:?}: header values are raw, int32, int64 or hex");
        }
        self.header_format = format;
        Ok(self)
    }

    /// A header value as printed (`None` when null); one that does not decode prints raw.
    fn header_value(&self, value: Option<&Bytes>) -> Option<Decoded> {
        let v = value?;
        match plain(self.header_format, v) {
            Some(Ok(d)) => Some(d),
            _ => Some(Decoded::Text(text(Some(v)))),
        }
    }

    /// Prints `record`; `key` and `value` are the key and value decoded (`None`:
    /// printed as they are); `metadata` is the client's last view of the cluster, where
    /// `-J` looks up the partition's leader to print as kcat's `broker` (-1 when unknown).
    pub(crate) fn print(
        &self,
        out: &mut impl Write,
        record: &ConsumerRecord,
        key: Option<&Decoded>,
        value: Option<&Decoded>,
        metadata: &Metadata,
    ) -> std::io::Result<()> {
        let shown =
            |decoded: Option<&Decoded>, raw: Option<&Bytes>, null: &str| match (decoded, raw) {
                (Some(d), _) => d.as_str().to_string(),
                (None, None) => null.to_string(),
                (None, raw) => text(raw),
            };
        let header_text = |h: &sluice_wire::Header, null: &str| {
            self.header_value(h.value_bytes())
                .map_or_else(|| null.to_string(), |d| d.as_str().to_string())
        };
        match &self.style {
            Style::Line => {
                let headers: Vec<String> = record
                    .headers()
                    .map(|h| format!("{}={}", h.key(), header_text(&h, "null")))
                    .collect();
                writeln!(
                    out,
                    "partition:{} offset:{} key:{} headers:{} value:{}",
                    record.partition(),
                    record.offset(),
                    shown(key, record.key(), "null"),
                    headers.join(","),
                    shown(value, record.value(), "null")
                )
            }
            Style::Format(tokens) => {
                let null = if self.print_null { "NULL" } else { "" };
                let len = |b: Option<&Bytes>| b.map_or(-1, |b| b.len() as i64);
                for token in tokens {
                    match token {
                        Token::Text(t) => out.write_all(t.as_bytes())?,
                        Token::Topic => out.write_all(record.topic().as_bytes())?,
                        Token::Partition => write!(out, "{}", record.partition())?,
                        Token::Offset => write!(out, "{}", record.offset())?,
                        Token::Timestamp => write!(out, "{}", record.timestamp())?,
                        Token::Key => out.write_all(shown(key, record.key(), null).as_bytes())?,
                        Token::KeyLen => write!(out, "{}", len(record.key()))?,
                        Token::Value => {
                            out.write_all(shown(value, record.value(), null).as_bytes())?
                        }
                        Token::ValueLen => write!(out, "{}", len(record.value()))?,
                        Token::ValueLenBinary => {
                            let n = i32::try_from(len(record.value())).unwrap_or(i32::MAX);
                            out.write_all(&n.to_be_bytes())?;
                        }
                        Token::Headers => {
                            let headers: Vec<String> = record
                                .headers()
                                .map(|h| format!("{}={}", h.key(), header_text(&h, null)))
                                .collect();
                            out.write_all(headers.join(",").as_bytes())?;
                        }
                    }
                }
                Ok(())
            }
            Style::Json => {
                // kcat's field order (serde_json's map would sort the keys).
                let headers: Vec<serde_json::Value> = record
                    .headers()
                    .flat_map(|h| {
                        let value = self
                            .header_value(h.value_bytes())
                            .map_or(serde_json::Value::Null, |d| d.to_json());
                        [h.key().into(), value]
                    })
                    .collect();
                let headers = if headers.is_empty() {
                    String::new()
                } else {
                    format!("\"headers\":{},", serde_json::Value::from(headers))
                };
                let json = |decoded: Option<&Decoded>, raw| {
                    decoded.map_or_else(|| json_text(raw), Decoded::to_json)
                };
                let broker = metadata
                    .leader(record.topic(), record.partition())
                    .map_or(-1, |b| b.node_id);
                let tstype = match record.timestamp_type() {
                    TimestampType::LogAppendTime => "logappend",
                    _ => "create",
                };
                writeln!(
                    out,
                    "{{\"topic\":{},\"partition\":{},\"offset\":{},\"tstype\":\"{tstype}\",\"ts\":{},\"broker\":{broker},{headers}\"key\":{},\"payload\":{}}}",
                    serde_json::Value::from(record.topic()),
                    record.partition(),
                    record.offset(),
                    record.timestamp(),
                    json(key, record.key()),
                    json(value, record.value()),
                )
            }
        }
    }
}

/// Parses kcat's `-f` tokens (`%t %p %o %k %K %s %S %R %h %T %%`) and escapes
/// (`\n \r \t \\`).
fn parse_format(format: &str) -> anyhow::Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        let token = match c {
            '%' => match chars.next() {
                Some('t') => Token::Topic,
                Some('p') => Token::Partition,
                Some('o') => Token::Offset,
                Some('k') => Token::Key,
                Some('K') => Token::KeyLen,
                Some('s') => Token::Value,
                Some('S') => Token::ValueLen,
                Some('R') => Token::ValueLenBinary,
                Some('h') => Token::Headers,
                Some('T') => Token::Timestamp,
                Some('%') => {
                    text.push('%');
                    continue;
                }
                Some(other) => anyhow::bail!(
                    "-f: unknown token %{other} (known: %t %p %o %k %K %s %S %R %h %T %%)"
                ),
                None => anyhow::bail!("-f: the format ends in a lone %"),
            },
            '\\' => {
                match chars.next() {
                    Some('n') => text.push('\n'),
                    Some('r') => text.push('\r'),
                    Some('t') => text.push('\t'),
                    Some(other) => text.push(other),
                    None => text.push('\\'),
                }
                continue;
            }
            other => {
                text.push(other);
                continue;
            }
        };
        if !text.is_empty() {
            tokens.push(Token::Text(std::mem::take(&mut text)));
        }
        tokens.push(token);
    }
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    Ok(tokens)
}

/// Shows bytes as text when they are UTF-8, else as hex; `null` for a missing field.
pub(crate) fn text(b: Option<&Bytes>) -> String {
    match b {
        None => "null".to_string(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => super::schema::hex(b),
        },
    }
}

/// A JSON string of the bytes as [`text`] shows them; JSON `null` for a missing field.
fn json_text(b: Option<&Bytes>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        some => text(some).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kcat_format_tokens_and_escapes() {
        let tokens = parse_format("%t/%p@%o %k=%s (%S)\\n%%").unwrap();
        assert_eq!(
            tokens,
            [
                Token::Topic,
                Token::Text("/".into()),
                Token::Partition,
                Token::Text("@".into()),
                Token::Offset,
                Token::Text(" ".into()),
                Token::Key,
                Token::Text("=".into()),
                Token::Value,
                Token::Text(" (".into()),
                Token::ValueLen,
                Token::Text(")\n%".into()),
            ]
        );
        assert!(parse_format("%x").is_err());
        assert!(parse_format("abc%").is_err());
    }
}
