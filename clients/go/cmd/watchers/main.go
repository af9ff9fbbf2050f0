// Command watchers holds many WatchWorkOrders streams open at once, for the benchmark's
// "CreateWorkOrder with W watchers" workload (scripts/bench.py).
//
// It opens -n streams over -connections gRPC connections, each from -after (default: the
// start of the log) and, with -workflow, only for that workflow (a workflow that never gets
// work orders makes idle watchers), and with -batch N batched (up to N events per message, an
// event held back at most -batch-delay). It receives until SIGINT or SIGTERM, then prints one JSON
// object to stdout: the streams opened, events received, stream errors, and the delivery
// latency of each event (receipt time minus the event's own time, set by the server as it
// wrote the change) as p50/p99/max in ms, and the messages received.
//
//	go run ./cmd/watchers -addr 127.0.0.1:50051 -n 500
//	go run ./cmd/watchers -addr 127.0.0.1:50051 -n 500 -batch 100 -batch-delay 100ms
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "server address")
	n := flag.Int("n", 100, "watch streams to open")
	connections := flag.Int("connections", 0, "gRPC connections the streams share (0: one per 50 streams)")
	workflow := flag.String("workflow", "", "watch only this workflow's work orders (empty: all)")
	after := flag.String("after", "", "the cursor to start after (empty: the start of the log)")
	batch := flag.Int("batch", 0, "batched watches: up to this many events per message, 1 to 1000 (0: one event per message)")
	batchDelay := flag.Duration("batch-delay", 100*time.Millisecond, "with -batch: the longest an event is held back for company (0 to 1s)")
	flag.Parse()
	if *connections <= 0 {
		*connections = (*n + 49) / 50
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "watchers:", err)
			os.Exit(1)
		}
		defer conn.Close()
		conns[i] = conn
	}
	var events, messages, failures, opened atomic.Int64
	var mu sync.Mutex
	var latencies []float64 // ms
	var wg sync.WaitGroup
	request := &runstatusv1.WatchWorkOrdersRequest{
		Filter: &runstatusv1.WorkOrderFilter{WorkflowId: *workflow}, AfterCursor: *after,
	}
	if *batch > 0 {
		request.Batching = &runstatusv1.WatchBatching{MaxEvents: int32(*batch), MaxDelay: durationpb.New(*batchDelay)}
	}
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func(conn *grpc.ClientConn) {
			defer wg.Done()
			stream, err := runstatusv1.NewWorkOrderServiceClient(conn).WatchWorkOrders(ctx, request)
			if err != nil {
				failures.Add(1)
				return
			}
			opened.Add(1)
			mine := make([]float64, 0, 1024)
			for {
				item, err := stream.Recv()
				if err != nil {
					if ctx.Err() == nil {
						failures.Add(1)
					}
					break
				}
				messages.Add(1)
				received := item.GetEvents()
				if len(received) == 0 {
					received = []*runstatusv1.Event{item.GetEvent()}
				}
				now := time.Now()
				events.Add(int64(len(received)))
				for _, event := range received {
					mine = append(mine, float64(now.Sub(event.GetTime().AsTime()).Microseconds())/1000)
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}(conns[i%len(conns)])
	}
	wg.Wait()
	sort.Float64s(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	out := map[string]any{
		"streams": opened.Load(), "events": events.Load(), "messages": messages.Load(), "failures": failures.Load(),
		"batch": *batch, "batch_delay_ms": float64(batchDelay.Microseconds()) / 1000,
		"latency_ms": map[string]float64{"p50": pct(0.5), "p99": pct(0.99), "max": pct(1)},
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}
