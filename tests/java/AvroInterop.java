import java.time.Duration;
import java.util.List;
import java.util.Properties;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Avro in the Confluent wire format, written and read by Apicurio's Java serdes
 * (io.apicurio:apicurio-registry-serdes-avro-serde) configured for Confluent framing: the
 * schema id in the payload (no headers), as 4 bytes, the content id (what the registry's
 * Confluent-compatible API calls the id).
 *
 * produce BOOTSTRAP TOPIC REGISTRY N   writes records id=i, amount=i/2 for i in 0..N
 * consume BOOTSTRAP TOPIC REGISTRY N   reads N records, prints VALUE\tid\tamount
 *
 * REGISTRY is Apicurio's native API base, e.g. http://127.0.0.1:18081/apis/registry/v2.
 */
public class AvroInterop {
    static final String SCHEMA = "{\"type\": \"record\", \"name\": \"Order\", \"namespace\": \"shop\","
        + " \"fields\": [{\"name\": \"id\", \"type\": \"long\"}, {\"name\": \"amount\", \"type\": \"double\"}]}";

    static void confluentFraming(Properties p, String registry) {
        p.put("apicurio.registry.url", registry);
        p.put("apicurio.registry.headers.enabled", "false");
        p.put("apicurio.registry.id-handler", "io.apicurio.registry.serde.Legacy4ByteIdHandler");
        p.put("apicurio.registry.use-id", "contentId");
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0], bootstrap = args[1], topic = args[2], registry = args[3];
        int n = Integer.parseInt(args[4]);
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        confluentFraming(p, registry);
        if (mode.equals("produce")) {
            p.put("key.serializer", StringSerializer.class.getName());
            p.put("value.serializer", "io.apicurio.registry.serde.avro.AvroKafkaSerializer");
            p.put("apicurio.registry.auto-register", "true");
            Schema schema = new Schema.Parser().parse(SCHEMA);
            try (KafkaProducer<String, Object> producer = new KafkaProducer<>(p)) {
                for (int i = 0; i < n; i++) {
                    GenericRecord r = new GenericData.Record(schema);
                    r.put("id", (long) i);
                    r.put("amount", i / 2.0);
                    producer.send(new ProducerRecord<>(topic, 0, "k" + i, r)).get();
                }
            }
            System.out.println("PRODUCED\t" + n);
        } else {
            p.put("key.deserializer", StringDeserializer.class.getName());
            p.put("value.deserializer", "io.apicurio.registry.serde.avro.AvroKafkaDeserializer");
            p.put("group.id", topic + "-java");
            p.put("auto.offset.reset", "earliest");
            try (KafkaConsumer<String, GenericRecord> consumer = new KafkaConsumer<>(p)) {
                consumer.subscribe(List.of(topic));
                int got = 0;
                long deadline = System.currentTimeMillis() + 60_000;
                while (got < n && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, GenericRecord> r : consumer.poll(Duration.ofMillis(200))) {
                        System.out.println("VALUE\t" + r.value().get("id") + "\t" + r.value().get("amount"));
                        got++;
                    }
                }
            }
        }
    }
}
