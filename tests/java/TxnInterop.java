// Kafka's own Java client on the other side of the transaction interop tests
// (tests/transactions.rs), run as a single-file program:
//   java -cp '<kafka libs>/*' tests/java/TxnInterop.java produce <bootstrap> <topic> <transactional-id>
//     aborts a transaction of 5 records "java-aborted-<i>", then commits 5 "java-committed-<i>"
//   java -cp '<kafka libs>/*' tests/java/TxnInterop.java consume <bootstrap> <topic>
//     reads every partition from the beginning with isolation.level=read_committed until
//     nothing arrives for 2 s; prints "VALUE\t<value>" per record (log lines never start so)
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnInterop {
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        String bootstrap = args[1];
        String topic = args[2];
        if (mode.equals("produce")) {
            produce(bootstrap, topic, args[3]);
        } else if (mode.equals("consume")) {
            consume(bootstrap, topic);
        } else {
            throw new IllegalArgumentException("mode must be produce or consume: " + mode);
        }
    }

    static void produce(String bootstrap, String topic, String transactionalId) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("transactional.id", transactionalId);
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < 5; i++) {
                producer.send(new ProducerRecord<>(topic, "java-aborted-" + i));
            }
            producer.flush();
            producer.abortTransaction();
            producer.beginTransaction();
            for (int i = 0; i < 5; i++) {
                producer.send(new ProducerRecord<>(topic, "java-committed-" + i));
            }
            producer.commitTransaction();
        }
    }

    static void consume(String bootstrap, String topic) {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("isolation.level", "read_committed");
        props.put("enable.auto.commit", "false");
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic)) {
                partitions.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long idleSince = System.currentTimeMillis();
            while (System.currentTimeMillis() - idleSince < 2000) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    System.out.println("VALUE\t" + r.value());
                    idleSince = System.currentTimeMillis();
                }
            }
        }
    }
}
