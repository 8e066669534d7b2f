//! `--value-format` for `produce` and `consume`: values in the Confluent wire format
//! (magic byte, schema id, payload), encoded from and decoded to JSON through a schema
//! registry (`sluice-schema`).

use std::path::PathBuf;

use anyhow::Context;
use sluice_schema::apache_avro::types::Value as AvroValue;
use sluice_schema::apache_avro::Schema as AvroSchema;
use sluice_schema::{
    framing, AvroDeserializer, JsonDeserializer, JsonSerializer, ProtobufDeserializer,
    ProtobufSerializer, Registry, Schema,
};

/// How record keys, values or header values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Bytes as they are (text when UTF-8, else hex).
    Raw,
    /// A 4-byte big-endian integer (Java's IntegerSerializer, kcat's `-s i`).
    Int32,
    /// An 8-byte big-endian integer (Java's LongSerializer, kcat's `-s q`).
    Int64,
    /// Any bytes, as hex digits.
    Hex,
    /// Avro, framed with the schema id.
    Avro,
    /// JSON Schema, framed with the schema id.
    JsonSchema,
    /// Protobuf, framed with the schema id and message indexes.
    Protobuf,
}

/// The registry flags shared by `produce` and `consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {
    /// The format of record values; avro, json-schema and protobuf need --registry.
    #[arg(long, value_enum, default_value = "raw")]
    pub(crate) value_format: Format,
    /// The schema registry's URL (Confluent REST API; for Apicurio
    /// `http://host:8080/apis/ccompat/v7`).
    #[arg(long, env = "SLUICE_REGISTRY_URL", value_name = "URL")]
    pub(crate) registry: Option<String>,
}

impl SchemaArgs {
    fn registry(&self, flag: &str, format: Format) -> anyhow::Result<Registry> {
        let url = self
            .registry
            .as_deref()
            .with_context(|| format!("{flag} {format:?} needs --registry URL"))?;
        Registry::new(url).with_context(|| format!("registry {url}"))
    }
}

/// A key, value or header value decoded for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// JSON (a schema's value, or a number): `-J` embeds it as it is.
    Json(String),
    /// Text (hex digits): `-J` quotes it.
    Text(String),
}

impl Decoded {
    /// The text as printed outside `-J`.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Decoded::Json(s) | Decoded::Text(s) => s,
        }
    }

    /// The JSON value `-J` prints.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Decoded::Json(s) => {
                serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::from(s.as_str()))
            }
            Decoded::Text(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

/// Decodes keys or values of one format.
pub(crate) enum Decoder {
    /// Raw bytes, or a plain format (no registry).
    Plain(Format),
    Avro(AvroDeserializer),
    Json(JsonDeserializer),
    Protobuf(ProtobufDeserializer),
}

impl Decoder {
    /// A decoder of `format`, as given to `flag` (for the error when the registry is
    /// missing).
    pub(crate) fn new(format: Format, flag: &str, args: &SchemaArgs) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Raw | Format::Int32 | Format::Int64 | Format::Hex => Decoder::Plain(format),
            Format::Avro => Decoder::Avro(AvroDeserializer::new(args.registry(flag, format)?)),
            Format::JsonSchema => {
                Decoder::Json(JsonDeserializer::new(args.registry(flag, format)?))
            }
            Format::Protobuf => {
                Decoder::Protobuf(ProtobufDeserializer::new(args.registry(flag, format)?))
            }
        })
    }

    /// `bytes` decoded, or `None` for raw bytes (printed as they are).
    pub(crate) async fn decode(&self, bytes: &[u8]) -> Option<anyhow::Result<Decoded>> {
        let json = match self {
            Decoder::Plain(format) => return plain(*format, bytes),
            Decoder::Avro(de) => de.deserialize(bytes).await.and_then(|v| {
                serde_json::Value::try_from(v)
                    .map_err(sluice_schema::Error::from)
                    .map(|j| j.to_string())
            }),
            Decoder::Json(de) => de.deserialize(bytes).await.map(|v| v.to_string()),
            Decoder::Protobuf(de) => de
                .deserialize(bytes)
                .await
                .and_then(|m| serde_json::to_string(&m).map_err(sluice_schema::Error::Json)),
        };
        Some(json.map(Decoded::Json).map_err(anyhow::Error::from))
    }
}

/// `bytes` in a plain format (no registry); `None` for raw bytes and for the registry
/// formats, which [`Decoder`] decodes.
pub(crate) fn plain(format: Format, bytes: &[u8]) -> Option<anyhow::Result<Decoded>> {
    let int = |n: usize| {
        if bytes.len() == n {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "{format:?} needs {n} bytes, not {}",
                bytes.len()
            ))
        }
    };
    Some(match format {
        Format::Int32 => int(4).map(|()| {
            let mut b = [0; 4];
            b.copy_from_slice(bytes);
            Decoded::Json(i32::from_be_bytes(b).to_string())
        }),
        Format::Int64 => int(8).map(|()| {
            let mut b = [0; 8];
            b.copy_from_slice(bytes);
            Decoded::Json(i64::from_be_bytes(b).to_string())
        }),
        Format::Hex => Ok(Decoded::Text(hex(bytes))),
        Format::Raw | Format::Avro | Format::JsonSchema | Format::Protobuf => return None,
    })
}

/// Lower-case hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A line in a plain format as bytes: an integer for `int32`/`int64`, hex digits for
/// `hex` (the reverse of [`plain`]).
fn plain_bytes(format: Format, line: &str) -> anyhow::Result<Vec<u8>> {
    let line = line.trim();
    match format {
        Format::Int32 => Ok(line
            .parse::<i32>()
            .with_context(|| format!("not a 32-bit integer: {line}"))?
            .to_be_bytes()
            .to_vec()),
        Format::Int64 => Ok(line
            .parse::<i64>()
            .with_context(|| format!("not a 64-bit integer: {line}"))?
            .to_be_bytes()
            .to_vec()),
        _ => {
            let digits = line.as_bytes();
            if !digits.len().is_multiple_of(2) {
                anyhow::bail!("an odd number of hex digits: {line}");
            }
            digits
                .chunks(2)
                .map(|pair| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|p| u8::from_str_radix(p, 16).ok())
                        .with_context(|| format!("not hex: {line}"))
                })
                .collect()
        }
    }
}

/// The flags `produce` adds: the writer schema and its subject.
#[derive(Debug, clap::Args)]
pub(crate) struct ProduceSchemaArgs {
    #[command(flatten)]
    pub(crate) schema: SchemaArgs,
    /// The writer schema (Avro JSON, a JSON Schema, or `.proto` source), registered under
    /// the subject before the first record.
    #[arg(long, value_name = "FILE")]
    pub(crate) schema_file: Option<PathBuf>,
    /// The subject to register under (default `<topic>-value`, the topic strategy; avro
    /// only).
    #[arg(long)]
    pub(crate) subject: Option<String>,
    /// The Protobuf message each line is (its full name, e.g. `shop.Order`); needed with
    /// --value-format protobuf.
    #[arg(long, value_name = "NAME")]
    pub(crate) message: Option<String>,
}

/// Encodes lines as values: JSON lines as framed values of one registered writer
/// schema, or lines in a plain format.
pub(crate) enum ValueEncoder {
    /// `int32`, `int64` or `hex` lines.
    Plain(Format),
    /// Avro: the id of the schema registered under the subject, and the parsed schema.
    Avro { id: u32, schema: AvroSchema },
    /// JSON Schema: each line validated, then framed.
    Json(JsonSerializer),
    /// Protobuf: each line in Protobuf's JSON mapping, encoded as the message.
    Protobuf(ProtobufSerializer),
}

impl ValueEncoder {
    /// Registers the schema (or finds it registered), or `None` for raw values.
    pub(crate) async fn new(args: &ProduceSchemaArgs, topic: &str) -> anyhow::Result<Option<Self>> {
        let format = args.schema.value_format;
        match format {
            Format::Raw => return Ok(None),
            Format::Int32 | Format::Int64 | Format::Hex => {
                return Ok(Some(ValueEncoder::Plain(format)))
            }
            Format::Avro | Format::JsonSchema | Format::Protobuf => {}
        }
        let path = args
            .schema_file
            .as_ref()
            .with_context(|| format!("--value-format {format:?} needs --schema-file FILE"))?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let not_a = |kind: &str| format!("{} is not {kind}", path.display());
        let registry = args.schema.registry("--value-format", format)?;
        if format != Format::Avro && args.subject.is_some() {
            anyhow::bail!(
                "--subject is supported with avro only; {format:?} registers under {topic}-value"
            );
        }
        let encoder = match format {
            Format::Raw | Format::Int32 | Format::Int64 | Format::Hex => return Ok(None),
            Format::Avro => {
                let schema =
                    AvroSchema::parse_str(&text).with_context(|| not_a("an Avro schema"))?;
                let subject = args
                    .subject
                    .clone()
                    .unwrap_or_else(|| format!("{topic}-value"));
                let id = registry
                    .register(&subject, &Schema::avro(text))
                    .await
                    .with_context(|| format!("registering {} under {subject}", path.display()))?;
                eprintln!("schema id {id} (subject {subject})");
                return Ok(Some(ValueEncoder::Avro { id, schema }));
            }
            Format::JsonSchema => ValueEncoder::Json(
                JsonSerializer::new(registry, &text).with_context(|| not_a("a JSON Schema"))?,
            ),
            Format::Protobuf => {
                let message = args
                    .message
                    .as_deref()
                    .context("--value-format protobuf needs --message NAME (e.g. shop.Order)")?;
                ValueEncoder::Protobuf(
                    ProtobufSerializer::new(registry, &text, message, &[])
                        .with_context(|| not_a(&format!("a .proto with message {message}")))?,
                )
            }
        };
        let id = match &encoder {
            ValueEncoder::Json(ser) => ser.schema_id(topic).await,
            ValueEncoder::Protobuf(ser) => ser.schema_id(topic).await,
            ValueEncoder::Avro { id, .. } => Ok(*id),
            ValueEncoder::Plain(_) => return Ok(Some(encoder)),
        }
        .with_context(|| format!("registering {} under {topic}-value", path.display()))?;
        eprintln!("schema id {id} (subject {topic}-value)");
        Ok(Some(encoder))
    }

    /// One line as a value for `topic`: framed bytes of a JSON line, or the bytes of a
    /// plain line.
    pub(crate) async fn encode(&self, topic: &str, line: &str) -> anyhow::Result<Vec<u8>> {
        let json = || -> anyhow::Result<serde_json::Value> {
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))
        };
        let misfit = || format!("does not fit the schema: {line}");
        match self {
            ValueEncoder::Avro { id, schema } => {
                let value = AvroValue::from(json()?)
                    .resolve(schema)
                    .with_context(misfit)?;
                let datum = sluice_schema::apache_avro::to_avro_datum(schema, value)?;
                let mut out = Vec::with_capacity(framing::HEADER_LEN + datum.len());
                framing::write_header(*id, &mut out);
                out.extend_from_slice(&datum);
                Ok(out)
            }
            ValueEncoder::Json(ser) => ser.serialize(topic, &json()?).await.with_context(misfit),
            ValueEncoder::Protobuf(ser) => ser
                .serialize_json(topic, &json()?)
                .await
                .with_context(misfit),
            ValueEncoder::Plain(format) => plain_bytes(*format, line),
        }
    }
}
