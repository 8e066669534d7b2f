//! Writing schemas that reference other registered schemas (an Avro named type from
//! another subject, a JSON Schema `$ref` to another subject), against a real registry:
//! the serializer registers the schema with its references, and a deserializer that
//! knows nothing resolves them from the registry and reads the data back. (Protobuf
//! imports are written and read in `serdes.rs`.)

mod common;

use common::{registry, unique};
use serde::{Deserialize, Serialize};
use sluice_schema::{framing, AvroDeserializer, AvroSerializer, Schema, SchemaReference, Version};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Money {
    units: i64,
    currency: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Invoice {
    number: i32,
    total: Money,
}

fn invoices() -> Vec<Invoice> {
    (0..20)
        .map(|i| Invoice {
            number: i,
            total: Money {
                units: 100 * i64::from(i),
                currency: if i % 2 == 0 { "EUR" } else { "USD" }.into(),
            },
        })
        .collect()
}

#[tokio::test]
async fn an_avro_schema_with_a_named_type_from_another_subject_is_written_and_read() {
    const MONEY: &str = r#"{"type":"record","name":"Money","namespace":"shop",
        "fields":[{"name":"units","type":"long"},{"name":"currency","type":"string"}]}"#;
    const INVOICE: &str = r#"{"type":"record","name":"Invoice","namespace":"shop",
        "fields":[{"name":"number","type":"int"},{"name":"total","type":"shop.Money"}]}"#;
    let r = registry();
    let money_subject = unique("avro-money");
    r.register(&money_subject, &Schema::avro(MONEY))
        .await
        .unwrap();
    let reference = SchemaReference {
        name: "shop.Money".into(),
        subject: money_subject.clone(),
        version: 1,
    };
    // Without the referenced type the schema does not parse.
    assert!(AvroSerializer::new(r.clone(), INVOICE).is_err());
    let ser =
        AvroSerializer::with_references(r.clone(), INVOICE, &[(reference.clone(), MONEY)]).unwrap();
    let topic = unique("avro-invoices");
    let mut framed = Vec::new();
    for inv in invoices() {
        framed.push(ser.serialize(&topic, &inv).await.unwrap());
    }
    // An Avro Value goes the same way.
    let value = sluice_schema::apache_avro::to_value(&invoices()[3]).unwrap();
    let from_value = ser.serialize_value(&topic, value).await.unwrap();
    assert_eq!(from_value, framed[3]);

    let registered = r
        .version(&format!("{topic}-value"), Version::Latest)
        .await
        .unwrap();
    assert_eq!(registered.schema.references, vec![reference]);
    assert_eq!(framing::read_header(&framed[0]).unwrap().0, registered.id);

    let consumer_side = registry();
    let de = AvroDeserializer::new(consumer_side.clone());
    for (bytes, inv) in framed.iter().zip(invoices()) {
        let got: Invoice = de.deserialize_into(bytes).await.unwrap();
        assert_eq!(got, inv);
    }
    // The schema by id, then the reference by subject and version.
    assert_eq!(consumer_side.http_requests(), 2);
}

#[cfg(feature = "json")]
#[tokio::test]
async fn a_json_schema_with_a_ref_to_another_subject_is_written_and_read() {
    use sluice_schema::{Error, JsonDeserializer, JsonSerializer, SchemaType};
    const MONEY: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
        "type":"object","properties":{"units":{"type":"integer","minimum":0},
        "currency":{"type":"string","enum":["EUR","USD"]}},
        "required":["units","currency"],"additionalProperties":false}"#;
    const INVOICE: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#",
        "title":"shop.Invoice","type":"object",
        "properties":{"number":{"type":"integer"},"total":{"$ref":"money.json"}},
        "required":["number","total"],"additionalProperties":false}"#;
    let r = registry();
    let money_subject = unique("json-money");
    r.register(&money_subject, &Schema::new(SchemaType::Json, MONEY))
        .await
        .unwrap();
    let reference = SchemaReference {
        name: "money.json".into(),
        subject: money_subject.clone(),
        version: 1,
    };
    // A $ref no reference serves does not compile.
    assert!(matches!(
        JsonSerializer::new(r.clone(), INVOICE),
        Err(Error::InvalidSchema { .. })
    ));
    let ser =
        JsonSerializer::with_references(r.clone(), INVOICE, &[(reference.clone(), MONEY)]).unwrap();
    let topic = unique("json-invoices");
    // The referenced schema validates: a currency it does not list is refused.
    let mut bad = invoices()[0].clone();
    bad.total.currency = "GBP".into();
    assert!(matches!(
        ser.serialize(&topic, &bad).await,
        Err(Error::Invalid(_))
    ));
    let mut framed = Vec::new();
    for inv in invoices() {
        framed.push(ser.serialize(&topic, &inv).await.unwrap());
    }
    let registered = r
        .version(&format!("{topic}-value"), Version::Latest)
        .await
        .unwrap();
    assert_eq!(registered.schema.references, vec![reference]);
    let id = registered.id;
    assert_eq!(framing::read_header(&framed[0]).unwrap().0, id);

    let consumer_side = registry();
    let de = JsonDeserializer::new(consumer_side.clone());
    for (bytes, inv) in framed.iter().zip(invoices()) {
        let got: Invoice = de.deserialize_into(bytes).await.unwrap();
        assert_eq!(got, inv);
    }
    assert_eq!(consumer_side.http_requests(), 2);
    // The reader validates with the referenced schema too.
    let mut rogue = Vec::new();
    framing::write_header(id, &mut rogue);
    rogue.extend_from_slice(br#"{"number":1,"total":{"units":5,"currency":"GBP"}}"#);
    assert!(matches!(
        de.deserialize(&rogue).await,
        Err(Error::Invalid(_))
    ));
}
