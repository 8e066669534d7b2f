// franz-go beside the Rust clients of `compare`: the same produce and consume workloads,
// the same arguments and the same JSON result line on stdout, so `cargo xtask bench` can
// run it as one more client (one process per run, CPU and peak RSS from wait4).
//
//	franz-go produce --bootstrap B --topic T --records N --size S --acks all|1
//	                 --compression lz4|none --idempotence true|false [--rate R] [--keys K]
//	                 [--scenario L]
//	franz-go consume --bootstrap B --topic T --records N [--partitions 6] [--scenario L]
//	franz-go stall --bootstrap B --topic T [--size 1024] [--seconds 4] [--scenario L]
//
// Producer: kgo with linger 5 ms, ProducerBatchMaxBytes 64 KiB (the batch.size of the
// others), MaxBufferedRecords 100,000 (Produce blocks when that many are buffered, as
// the harness allows the Rust clients 100,000 pending deliveries), acks and idempotence
// and lz4 per scenario, MetadataMinAge 100 ms (see produce); everything else at kgo's
// defaults. Every record's latency is
// measured from just before Produce to its promise. Consumer: direct partition
// consumption from the start of every partition (no group), kgo's fetch defaults.
// Stall: the stalled-broker scenario of the Rust clients (their `stall.rs`: the same
// handshake on stdin / stdout), with MaxBufferedBytes 32 MiB as the bound.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type result struct {
	Client   string   `json:"client"`
	Scenario string   `json:"scenario"`
	Records  uint64   `json:"records"`
	Bytes    uint64   `json:"bytes"`
	Secs     float64  `json:"secs"`
	P50Ms    *float64 `json:"p50_ms"`
	P99Ms    *float64 `json:"p99_ms"`
	P999Ms   *float64 `json:"p999_ms"`
}

type opts struct {
	bootstrap, topic, acks, compression, idempotence, scenario, client, security string
	records, rate, keys, seconds                                                 uint64
	size, partitions                                                             int
}

func parse(cmd string, args []string) opts {
	var o opts
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	fs.StringVar(&o.client, "client", "franz-go", "ignored (always franz-go)")
	fs.StringVar(&o.bootstrap, "bootstrap", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	fs.StringVar(&o.topic, "topic", "", "topic")
	fs.Uint64Var(&o.records, "records", 0, "records to produce or consume")
	fs.IntVar(&o.size, "size", 100, "value size in bytes")
	fs.StringVar(&o.acks, "acks", "all", "all or 1")
	fs.StringVar(&o.compression, "compression", "none", "lz4 or none")
	// A string, not a bool: the harness passes `--idempotence true` as two arguments.
	fs.StringVar(&o.idempotence, "idempotence", "true", "true or false")
	fs.Uint64Var(&o.rate, "rate", 0, "records per second (0: flat out)")
	fs.Uint64Var(&o.keys, "keys", 0, "record i gets key i%K of K distinct keys (0: no keys)")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions to consume")
	fs.StringVar(&o.scenario, "scenario", "", "label of the result line")
	fs.StringVar(&o.security, "security-protocol", "PLAINTEXT", "only PLAINTEXT")
	fs.Uint64Var(&o.seconds, "seconds", 4, "stall: how long to send with the broker stopped")
	_ = fs.Parse(args)
	if cmd == "stall" {
		o.records = 1
	}
	if o.topic == "" || o.records == 0 {
		die("--topic and --records are required")
	}
	if o.security != "PLAINTEXT" {
		die("the franz-go client of this harness has no TLS")
	}
	return o
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "franz-go: "+format+"\n", a...)
	os.Exit(1)
}

// The same printable payload as the Rust clients.
func payload(size int) []byte {
	v := make([]byte, size)
	for i := range v {
		v[i] = byte('A' + (i*7919)%26)
	}
	return v
}

// The Rust clients' keys: K distinct 10-byte keys k000000000, k000000001, ...; record
// i gets keys[i%K]. kgo's default partitioner hashes keys with murmur2, as Java does.
func keys(k uint64) [][]byte {
	out := make([][]byte, k)
	for j := range out {
		out[j] = []byte(fmt.Sprintf("k%09d", j))
	}
	return out
}

// p50, p99 and p99.9 as the Rust clients take them: the value at index floor(p*n).
// slices.Sort (pdqsort, no comparison closure), not sort.Slice: the harness's own CPU
// should stay small beside the client's.
func percentiles(lat []float32) (*float64, *float64, *float64) {
	if len(lat) == 0 {
		return nil, nil, nil
	}
	slices.Sort(lat)
	n := len(lat)
	at := func(p float64) *float64 {
		i := int(p * float64(n))
		if i > n-1 {
			i = n - 1
		}
		v := float64(lat[i])
		return &v
	}
	return at(0.5), at(0.99), at(0.999)
}

// seedBrokers is kgo's seed list from --bootstrap: one address per comma-separated entry
// (kgo takes the whole string as one address otherwise).
func (o opts) seedBrokers() kgo.Opt {
	return kgo.SeedBrokers(strings.Split(o.bootstrap, ",")...)
}

func produce(o opts) result {
	started := time.Now()
	kopts := []kgo.Opt{
		o.seedBrokers(),
		kgo.DefaultProduceTopic(o.topic),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(64 * 1024),
		kgo.MaxBufferedRecords(100_000),
		// A topic created just before the run (every run here) is sometimes not
		// yet complete in the first metadata response; kgo then waits for its next
		// refresh, which MetadataMinAge (default 5 s) holds back: 5 s stalls on
		// ~1% of the records. 100 ms, like the others' metadata retry backoff.
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	switch o.acks {
	case "all":
		kopts = append(kopts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		kopts = append(kopts, kgo.RequiredAcks(kgo.LeaderAck()))
	default:
		die("--acks must be all or 1")
	}
	switch o.idempotence {
	case "true":
	case "false":
		kopts = append(kopts, kgo.DisableIdempotentWrite())
	default:
		die("--idempotence must be true or false")
	}
	switch o.compression {
	case "lz4":
		kopts = append(kopts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "none":
		kopts = append(kopts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	default:
		die("--compression must be lz4 or none")
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		die("creating the client: %v", err)
	}
	defer cl.Close()
	ctx := context.Background()
	value := payload(o.size)
	ks := keys(o.keys)
	keyOf := func(i uint64) []byte {
		if len(ks) == 0 {
			return nil
		}
		return ks[i%uint64(len(ks))]
	}
	if o.rate > 0 {
		// Warm-up (connection, metadata, producer id), not counted; the clock restarts.
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			die("warm-up record: %v", err)
		}
		started = time.Now()
	}
	var (
		mu       sync.Mutex
		lat      = make([]float32, 0, o.records)
		errs     uint64
		firstErr error
		wg       sync.WaitGroup
	)
	wg.Add(int(o.records))
	var pace time.Time
	for i := uint64(0); i < o.records; i++ {
		if o.rate > 0 {
			if i == 0 {
				pace = time.Now()
			}
			due := pace.Add(time.Duration(float64(i) / float64(o.rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Key: keyOf(i), Value: value}, func(_ *kgo.Record, err error) {
			ms := float32(time.Since(sent).Seconds() * 1000)
			mu.Lock()
			if err != nil {
				errs++
				if firstErr == nil {
					firstErr = err
				}
			} else {
				lat = append(lat, ms)
			}
			mu.Unlock()
			wg.Done()
		})
	}
	if err := cl.Flush(ctx); err != nil {
		die("flush: %v", err)
	}
	wg.Wait()
	secs := time.Since(started).Seconds()
	if errs > 0 {
		die("%d records failed; first error: %v", errs, firstErr)
	}
	p50, p99, p999 := percentiles(lat)
	n := uint64(len(lat))
	return result{Records: n, Bytes: n * uint64(o.size), Secs: secs, P50Ms: p50, P99Ms: p99, P999Ms: p999}
}

func consume(o opts) result {
	started := time.Now()
	parts := make(map[int32]kgo.Offset, o.partitions)
	for p := 0; p < o.partitions; p++ {
		parts[int32(p)] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(
		o.seedBrokers(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.topic: parts}),
	)
	if err != nil {
		die("creating the client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	var n, bytes uint64
	for n < o.records {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			die("consume: timed out after %d records", n)
		}
		fetches.EachError(func(t string, p int32, err error) {
			die("fetching %s-%d: %v", t, p, err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			bytes += uint64(len(r.Value))
			n++
		})
	}
	secs := time.Since(started).Seconds()
	return result{Records: n, Bytes: bytes, Secs: secs}
}

// The stalled-broker scenario (see the Rust clients' stall.rs): one acknowledged record,
// `ready` on stdout, then, once the harness has stopped the broker and written a line
// to stdin, acks=all idempotent uncompressed records for --seconds. Produce blocks while
// MaxBufferedBytes are buffered; a call still blocked at the end is not counted. main
// returns without closing the client (that would wait for the stopped broker).
func stall(o opts) result {
	const bound = 32 * 1024 * 1024
	cl, err := kgo.NewClient(
		o.seedBrokers(),
		kgo.DefaultProduceTopic(o.topic),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(64*1024),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedBytes(bound),
		// The count bound (default 10,000) raised so the bytes bind, as for the others.
		kgo.MaxBufferedRecords(1<<30),
	)
	if err != nil {
		die("creating the client: %v", err)
	}
	// A value of its own for every record, as the Rust clients' stall runs give theirs.
	value := func() []byte {
		v := make([]byte, o.size)
		for i := range v {
			v[i] = 'v'
		}
		return v
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: value()}).FirstErr(); err != nil {
		die("first record: %v", err)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		die("waiting for the harness on stdin: %v", err)
	}
	end := time.Now().Add(time.Duration(o.seconds) * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var n uint64
	for time.Now().Before(end) {
		cl.Produce(ctx, &kgo.Record{Value: value()}, func(*kgo.Record, error) {})
		if time.Now().Before(end) {
			n++
		}
	}
	return result{Records: n, Bytes: n * uint64(o.size), Secs: float64(o.seconds)}
}

func main() {
	if len(os.Args) < 2 {
		die("usage: franz-go produce|consume --bootstrap B --topic T --records N ...")
	}
	var r result
	var o opts
	switch os.Args[1] {
	case "produce":
		o = parse("produce", os.Args[2:])
		r = produce(o)
	case "consume":
		o = parse("consume", os.Args[2:])
		r = consume(o)
	case "stall":
		o = parse("stall", os.Args[2:])
		r = stall(o)
	default:
		die("unknown command %q (produce, consume or stall)", os.Args[1])
	}
	r.Client = "franz-go"
	r.Scenario = o.scenario
	if r.Scenario == "" {
		r.Scenario = os.Args[1]
	}
	line, err := json.Marshal(r)
	if err != nil {
		die("encoding the result: %v", err)
	}
	fmt.Println(string(line))
}
