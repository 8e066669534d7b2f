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

/// How record values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Bytes as they are (text when UTF-8, else hex).
    Raw,
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
    /// The format of record values; anything but raw needs --registry.
    #[arg(long, value_enum, default_value = "raw")]
    pub(crate) value_format: Format,
    /// The schema registry's URL (Confluent REST API; for Apicurio
    /// `http://host:8080/apis/ccompat/v7`).
    #[arg(long, env = "SLUICE_REGISTRY_URL", value_name = "URL")]
    pub(crate) registry: Option<String>,
}

impl SchemaArgs {
    fn registry(&self) -> anyhow::Result<Registry> {
        let url = self.registry.as_deref().with_context(|| {
            format!(
                "--value-format {:?} needs --registry URL",
                self.value_format
            )
        })?;
        Registry::new(url).with_context(|| format!("registry {url}"))
    }
}

/// Decodes values of one format to JSON text.
pub(crate) enum ValueDecoder {
    Raw,
    Avro(AvroDeserializer),
    Json(JsonDeserializer),
    Protobuf(ProtobufDeserializer),
}

impl ValueDecoder {
    pub(crate) fn new(args: &SchemaArgs) -> anyhow::Result<Self> {
        Ok(match args.value_format {
            Format::Raw => ValueDecoder::Raw,
            Format::Avro => ValueDecoder::Avro(AvroDeserializer::new(args.registry()?)),
            Format::JsonSchema => ValueDecoder::Json(JsonDeserializer::new(args.registry()?)),
            Format::Protobuf => ValueDecoder::Protobuf(ProtobufDeserializer::new(args.registry()?)),
        })
    }

    /// The value as one line of JSON, or `None` for raw values (printed as they are).
    pub(crate) async fn decode(
        &self,
        bytes: &[u8],
    ) -> Option<Result<String, sluice_schema::Error>> {
        let json = match self {
            ValueDecoder::Raw => return None,
            ValueDecoder::Avro(de) => de.deserialize(bytes).await.and_then(|v| {
                serde_json::Value::try_from(v)
                    .map_err(sluice_schema::Error::from)
                    .map(|j| j.to_string())
            }),
            ValueDecoder::Json(de) => de.deserialize(bytes).await.map(|v| v.to_string()),
            ValueDecoder::Protobuf(de) => de
                .deserialize(bytes)
                .await
                .and_then(|m| serde_json::to_string(&m).map_err(sluice_schema::Error::Json)),
        };
        Some(json)
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

/// Encodes JSON lines as framed values of one registered writer schema.
pub(crate) enum ValueEncoder {
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
        if format == Format::Raw {
            return Ok(None);
        }
        let path = args
            .schema_file
            .as_ref()
            .with_context(|| format!("--value-format {format:?} needs --schema-file FILE"))?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let not_a = |kind: &str| format!("{} is not {kind}", path.display());
        let registry = args.schema.registry()?;
        if format != Format::Avro && args.subject.is_some() {
            anyhow::bail!(
                "--subject is supported with avro only; {format:?} registers under {topic}-value"
            );
        }
        let encoder = match format {
            Format::Raw => return Ok(None),
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
        }
        .with_context(|| format!("registering {} under {topic}-value", path.display()))?;
        eprintln!("schema id {id} (subject {topic}-value)");
        Ok(Some(encoder))
    }

    /// One JSON line as framed bytes for `topic`.
    pub(crate) async fn encode(&self, topic: &str, line: &str) -> anyhow::Result<Vec<u8>> {
        let json: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        let misfit = || format!("does not fit the schema: {line}");
        match self {
            ValueEncoder::Avro { id, schema } => {
                let value = AvroValue::from(json).resolve(schema).with_context(misfit)?;
                let datum = sluice_schema::apache_avro::to_avro_datum(schema, value)?;
                let mut out = Vec::with_capacity(framing::HEADER_LEN + datum.len());
                framing::write_header(*id, &mut out);
                out.extend_from_slice(&datum);
                Ok(out)
            }
            ValueEncoder::Json(ser) => ser.serialize(topic, &json).await.with_context(misfit),
            ValueEncoder::Protobuf(ser) => {
                ser.serialize_json(topic, &json).await.with_context(misfit)
            }
        }
    }
}
