// Command loadgen is the load generator of the runstatus benchmark (scripts/bench.py).
//
// N goroutines (-c) each loop one workload (-mode) over -connections gRPC
// connections for a duration (-z), after an untimed warm-up (-warmup). Every
// RPC is counted and timed; at the end one JSON object goes to stdout: RPCs,
// RPC/s, p50/p90/p99/max latency in ms, errors by code, and the same per method.
//
//	go run ./cmd/loadgen -addr 127.0.0.1:50051 -mode lifecycle -c 16 -z 5s
//
// Modes:
//
//	health     grpc.health.v1.Health/Check (the bare framework's bar)
//	classify   ClassifierService/Classify, a rotating set of error reports
//	create     WorkOrderService/CreateWorkOrder (one workflow in the default project)
//	get        WorkOrderService/GetWorkOrder, ids from -ids (one per line)
//	list       WorkOrderService/ListWorkOrders, status FAILED, one page of 50
//	count      WorkOrderService/CountWorkOrders, no filter
//	lifecycle  a work order's whole life, as a worker lives it: CreateWorkOrder,
//	           ClaimRuns (max_runs 1), StartRun, StartStep, CompleteStep, CompleteRun
//	mixed      lifecycle plus Heartbeat, Classify and GetWorkOrder each time, and
//	           every 4th step failing with a TypeError (for the memory soak)
//
// In lifecycle and mixed each goroutine works in a project of its own, so it
// claims only the runs it created. If a claim hands out another run (one left
// PENDING by an iteration that failed half-way) the goroutine carries that run
// through instead; an empty claim is counted and the loop goes on.
//
// With -every, a progress line ({"t": seconds, "rps": ...}) goes to stderr at
// that interval, for long runs.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/runstatus/runstatus/clients/go/client"
	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

type config struct {
	addr        string
	mode        string
	concurrency int
	connections int
	duration    time.Duration
	warmup      time.Duration
	every       time.Duration
	idsFile     string
	prefix      string
	token       string
	timeout     time.Duration
}

// recorder counts and times the RPCs of one goroutine (no locking needed).
type recorder struct {
	from, to  time.Time // only RPCs that start and end inside [from, to] count
	latencies map[string][]time.Duration
	errors    map[string]map[string]int // method -> code -> count
	done      *atomic.Int64             // all goroutines' RPCs, for progress lines
}

// call runs one RPC with its own timeout (and the run's deadline), timing it,
// and returns its error.
func (r *recorder) call(ctx context.Context, timeout time.Duration, method string, rpc func(context.Context) error) error {
	rpcCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	began := time.Now()
	err := rpc(rpcCtx)
	ended := time.Now()
	if err != nil && ended.Before(r.to) { // not an RPC cut off by the end of the run
		logError(method, err)
	}
	if began.Before(r.from) || ended.After(r.to) {
		return err // warm-up, or cut off by the end of the run
	}
	r.done.Add(1)
	if err != nil {
		code := status.Code(err).String()
		if r.errors[method] == nil {
			r.errors[method] = map[string]int{}
		}
		r.errors[method][code]++
		return err
	}
	r.latencies[method] = append(r.latencies[method], ended.Sub(began))
	return nil
}

// counted reports whether a span of time lies inside the measured window.
func (r *recorder) counted(began time.Time) bool {
	return !began.Before(r.from) && !time.Now().After(r.to)
}

var (
	errorLogMu sync.Mutex
	errorsSeen = map[string]bool{}
)

// logError prints the first error of each method and code to stderr, so a
// broken workload shows why.
func logError(method string, err error) {
	key := method + " " + status.Code(err).String()
	errorLogMu.Lock()
	defer errorLogMu.Unlock()
	if !errorsSeen[key] {
		errorsSeen[key] = true
		fmt.Fprintf(os.Stderr, "loadgen: %s: %v\n", method, err)
	}
}

// worker is one goroutine's state.
type worker struct {
	index   int
	rs      *client.Client
	health  healthpb.HealthClient
	rec     *recorder
	cfg     *config
	project string // lifecycle and mixed: the goroutine's own project
	ids     []string
	next    int // position in ids, or iteration number

	lifecycles  int
	emptyClaims int
	abandoned   int
}

// errorReports rotate in classify and mixed: seed names, aliases, an unknown name.
var errorReports = []*runstatusv1.ErrorReport{
	{Name: "TypeError", Message: "Cannot read properties of undefined (reading 'id')", Language: "javascript",
		Source: runstatusv1.ErrorSource_ERROR_SOURCE_JOB},
	{Name: "KeyError", Message: "'email'", Language: "python", Source: runstatusv1.ErrorSource_ERROR_SOURCE_JOB},
	{Name: "java.lang.NullPointerException", Message: "patient is null", Language: "java",
		Source: runstatusv1.ErrorSource_ERROR_SOURCE_JOB},
	{Name: "runtime.Error", Message: "runtime error: index out of range [5] with length 2", Language: "go",
		Source: runstatusv1.ErrorSource_ERROR_SOURCE_JOB},
	{Name: "SomethingNobodyHeardOf", Message: "?", Source: runstatusv1.ErrorSource_ERROR_SOURCE_RUNTIME},
}

const lifecycleWorkflow = "loadgen-lifecycle"

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:50051", "server address")
	flag.StringVar(&cfg.mode, "mode", "lifecycle", "health, classify, create, get, list, count, lifecycle or mixed")
	flag.IntVar(&cfg.concurrency, "c", 1, "concurrent goroutines, each doing one RPC at a time")
	flag.IntVar(&cfg.connections, "connections", 0, "gRPC connections shared by the goroutines (0: one each)")
	flag.DurationVar(&cfg.duration, "z", 5*time.Second, "measured duration")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "untimed warm-up before the measured duration")
	flag.DurationVar(&cfg.every, "every", 0, "print a progress line to stderr at this interval (0: never)")
	flag.StringVar(&cfg.idsFile, "ids", "", "get: a file of work order ids, one per line")
	flag.StringVar(&cfg.prefix, "prefix", "", "lifecycle and mixed: prefix of the projects made (default: random)")
	flag.StringVar(&cfg.token, "token", "", "API token, if the server requires one")
	flag.DurationVar(&cfg.timeout, "timeout", 20*time.Second, "timeout of each RPC")
	flag.Parse()
	if err := run(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(cfg *config) error {
	if cfg.concurrency < 1 {
		return errors.New("-c must be at least 1")
	}
	if cfg.connections <= 0 || cfg.connections > cfg.concurrency {
		cfg.connections = cfg.concurrency
	}
	if cfg.prefix == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.prefix = "loadgen-" + hex.EncodeToString(b)
	}
	var ids []string
	if cfg.mode == "get" {
		var err error
		if ids, err = readLines(cfg.idsFile); err != nil {
			return err
		}
		if len(ids) == 0 {
			return errors.New("get: -ids names no work order ids")
		}
	}

	var opts []client.Option
	if cfg.token != "" {
		opts = append(opts, client.WithToken(cfg.token))
	}
	conns := make([]*client.Client, cfg.connections)
	for i := range conns {
		c, err := client.Dial(context.Background(), cfg.addr, opts...)
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}

	var done atomic.Int64
	workers := make([]*worker, cfg.concurrency)
	for i := range workers {
		rs := conns[i%len(conns)]
		workers[i] = &worker{
			index: i, rs: rs, health: healthpb.NewHealthClient(rs.Conn()), cfg: cfg, ids: ids,
			next: i * 7919, // spread the goroutines over the ids
			rec:  &recorder{latencies: map[string][]time.Duration{}, errors: map[string]map[string]int{}, done: &done},
		}
	}
	if err := setup(cfg, workers); err != nil {
		return fmt.Errorf("setup: %w", err)
	}

	step, err := stepFor(cfg.mode)
	if err != nil {
		return err
	}
	began := time.Now()
	from, to := began.Add(cfg.warmup), began.Add(cfg.warmup+cfg.duration)
	ctx, cancel := context.WithDeadline(context.Background(), to)
	defer cancel()
	stopProgress := progress(cfg.every, from, &done)
	var wg sync.WaitGroup
	for _, w := range workers {
		w.rec.from, w.rec.to = from, to
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for ctx.Err() == nil {
				step(ctx, w)
				w.next++
			}
		}(w)
	}
	wg.Wait()
	stopProgress()
	return report(cfg, workers)
}

// setup makes what the mode needs: a workflow in the default project for create,
// a project and a workflow per goroutine for lifecycle and mixed.
func setup(cfg *config, workers []*worker) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs := workers[0].rs
	switch cfg.mode {
	case "create":
		return createWorkflow(ctx, rs, "", cfg.prefix+"-create")
	case "lifecycle", "mixed":
		for _, w := range workers {
			w.project = fmt.Sprintf("%s-%d", cfg.prefix, w.index)
			_, err := rs.Projects.CreateProject(ctx, &runstatusv1.CreateProjectRequest{
				Project: &runstatusv1.Project{Id: w.project, Name: "loadgen worker " + fmt.Sprint(w.index)},
			})
			if err != nil && status.Code(err) != codes.AlreadyExists {
				return err
			}
			if err := createWorkflow(ctx, rs, w.project, lifecycleWorkflow); err != nil {
				return err
			}
		}
	}
	return nil
}

func createWorkflow(ctx context.Context, rs *client.Client, project, id string) error {
	_, err := rs.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: &runstatusv1.Workflow{
		Id: id, ProjectId: project, Name: id,
		Steps: []*runstatusv1.Step{{Id: "main", Name: "Main", Adaptor: "@openfn/language-http@6.0.0"}},
	}})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return err
	}
	return nil
}

var input = func() *structpb.Struct {
	s, _ := structpb.NewStruct(map[string]any{"patient": 123, "source": "loadgen"})
	return s
}()

// stepFor is one iteration of a mode.
func stepFor(mode string) (func(context.Context, *worker), error) {
	switch mode {
	case "health":
		return func(ctx context.Context, w *worker) {
			_ = w.do(ctx, "Health/Check", func(ctx context.Context) error {
				_, err := w.health.Check(ctx, &healthpb.HealthCheckRequest{})
				return err
			})
		}, nil
	case "classify":
		return func(ctx context.Context, w *worker) { w.classify(ctx) }, nil
	case "create":
		return func(ctx context.Context, w *worker) {
			_ = w.do(ctx, "CreateWorkOrder", func(ctx context.Context) error {
				_, err := w.rs.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{
					WorkflowId: w.cfg.prefix + "-create", Input: input,
				})
				return err
			})
		}, nil
	case "get":
		return func(ctx context.Context, w *worker) { w.get(ctx, w.ids[w.next%len(w.ids)]) }, nil
	case "list":
		return func(ctx context.Context, w *worker) {
			_ = w.do(ctx, "ListWorkOrders", func(ctx context.Context) error {
				_, err := w.rs.WorkOrders.ListWorkOrders(ctx, &runstatusv1.ListWorkOrdersRequest{
					Filter:   &runstatusv1.WorkOrderFilter{Statuses: []runstatusv1.RunStatus{runstatusv1.RunStatus_RUN_STATUS_FAILED}},
					PageSize: 50,
				})
				return err
			})
		}, nil
	case "count":
		return func(ctx context.Context, w *worker) {
			_ = w.do(ctx, "CountWorkOrders", func(ctx context.Context) error {
				_, err := w.rs.WorkOrders.CountWorkOrders(ctx, &runstatusv1.CountWorkOrdersRequest{})
				return err
			})
		}, nil
	case "lifecycle":
		return func(ctx context.Context, w *worker) { w.lifecycle(ctx, false) }, nil
	case "mixed":
		return func(ctx context.Context, w *worker) { w.lifecycle(ctx, true) }, nil
	}
	return nil, fmt.Errorf("unknown -mode %q", mode)
}

// do runs one RPC of the goroutine. The run's deadline cuts RPCs in flight at
// the end; they are not counted.
func (w *worker) do(ctx context.Context, method string, rpc func(context.Context) error) error {
	return w.rec.call(ctx, w.cfg.timeout, method, rpc)
}

func (w *worker) classify(ctx context.Context) {
	report := errorReports[w.next%len(errorReports)]
	_ = w.do(ctx, "Classify", func(ctx context.Context) error {
		_, err := w.rs.Classifier.Classify(ctx, &runstatusv1.ClassifyRequest{Error: report})
		return err
	})
}

func (w *worker) get(ctx context.Context, id string) {
	_ = w.do(ctx, "GetWorkOrder", func(ctx context.Context) error {
		_, err := w.rs.WorkOrders.GetWorkOrder(ctx, &runstatusv1.GetWorkOrderRequest{WorkOrderId: id})
		return err
	})
}

// lifecycle creates a work order in the goroutine's project and carries the
// run it claims through to the end. A failed RPC abandons the iteration (its
// run, if claimed, is left to the lease sweeper); the next one starts afresh.
func (w *worker) lifecycle(ctx context.Context, mixed bool) {
	began := time.Now()
	var created *runstatusv1.CreateWorkOrderResponse
	err := w.do(ctx, "CreateWorkOrder", func(ctx context.Context) (err error) {
		created, err = w.rs.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{
			ProjectId: w.project, WorkflowId: lifecycleWorkflow, Input: input,
		})
		return err
	})
	if err != nil {
		w.abandon(began)
		return
	}
	var claimed *runstatusv1.ClaimRunsResponse
	err = w.do(ctx, "ClaimRuns", func(ctx context.Context) (err error) {
		claimed, err = w.rs.Worker.ClaimRuns(ctx, &runstatusv1.ClaimRunsRequest{
			ProjectId: w.project, WorkerId: fmt.Sprintf("loadgen-%d", w.index), MaxRuns: 1,
		})
		return err
	})
	if err != nil {
		w.abandon(began)
		return
	}
	if len(claimed.GetRuns()) == 0 {
		if w.rec.counted(began) {
			w.emptyClaims++
		}
		return
	}
	// Usually the run just created; possibly an older one this goroutine left behind.
	run := claimed.GetRuns()[0]
	runID, token := run.GetRun().GetId(), run.GetLeaseToken()

	err = w.do(ctx, "StartRun", func(ctx context.Context) error {
		_, err := w.rs.Worker.StartRun(ctx, &runstatusv1.StartRunRequest{RunId: runID, LeaseToken: token})
		return err
	})
	if err == nil && mixed {
		err = w.do(ctx, "Heartbeat", func(ctx context.Context) error {
			_, err := w.rs.Worker.Heartbeat(ctx, &runstatusv1.HeartbeatRequest{RunId: runID, LeaseToken: token})
			return err
		})
	}
	if err != nil {
		w.abandon(began)
		return
	}
	var stepRun *runstatusv1.StartStepResponse
	err = w.do(ctx, "StartStep", func(ctx context.Context) (err error) {
		stepRun, err = w.rs.Worker.StartStep(ctx, &runstatusv1.StartStepRequest{
			RunId: runID, LeaseToken: token, StepId: "main",
		})
		return err
	})
	if err != nil {
		w.abandon(began)
		return
	}
	var stepError *runstatusv1.ErrorReport
	if mixed && w.next%4 == 3 {
		stepError = errorReports[0] // a TypeError: the step and the run end FAILED
	}
	err = w.do(ctx, "CompleteStep", func(ctx context.Context) error {
		_, err := w.rs.Worker.CompleteStep(ctx, &runstatusv1.CompleteStepRequest{
			RunId: runID, LeaseToken: token, StepRunId: stepRun.GetStepRun().GetId(), Error: stepError,
		})
		return err
	})
	if err != nil {
		w.abandon(began)
		return
	}
	err = w.do(ctx, "CompleteRun", func(ctx context.Context) error {
		_, err := w.rs.Worker.CompleteRun(ctx, &runstatusv1.CompleteRunRequest{RunId: runID, LeaseToken: token})
		return err
	})
	if err != nil {
		w.abandon(began)
		return
	}
	if w.rec.counted(began) {
		w.lifecycles++
	}
	if mixed {
		w.classify(ctx)
		w.get(ctx, created.GetWorkOrder().GetId())
	}
}

func (w *worker) abandon(began time.Time) {
	if w.rec.counted(began) {
		w.abandoned++
	}
}

// progress prints the RPC rate of each interval to stderr until stopped.
func progress(every time.Duration, from time.Time, done *atomic.Int64) func() {
	if every <= 0 {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		last, lastTime := int64(0), time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-ticker.C:
				n := done.Load()
				line, _ := json.Marshal(map[string]any{
					"t":   math.Round(now.Sub(from).Seconds()*10) / 10,
					"rps": math.Round(float64(n-last) / now.Sub(lastTime).Seconds()),
				})
				fmt.Fprintln(os.Stderr, string(line))
				last, lastTime = n, now
			}
		}
	}()
	return func() { close(stop); <-finished }
}

type stats struct {
	Count int            `json:"count"`
	RPS   float64        `json:"rps"`
	P50   float64        `json:"p50_ms"`
	P90   float64        `json:"p90_ms"`
	P99   float64        `json:"p99_ms"`
	Max   float64        `json:"max_ms"`
	Errs  map[string]int `json:"errors,omitempty"`
}

func summarise(latencies []time.Duration, seconds float64) stats {
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	s := stats{Count: len(latencies), RPS: round(float64(len(latencies))/seconds, 1)}
	if len(latencies) > 0 {
		s.P50, s.P90, s.P99 = percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99)
		s.Max = ms(latencies[len(latencies)-1])
	}
	return s
}

// percentile is the nearest-rank percentile of sorted values, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return ms(sorted[max(i, 0)])
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(x float64, digits int) float64 {
	f := math.Pow(10, float64(digits))
	return math.Round(x*f) / f
}

// report prints the totals and each method's figures as one JSON object.
func report(cfg *config, workers []*worker) error {
	seconds := cfg.duration.Seconds()
	all := []time.Duration{}
	byMethod := map[string][]time.Duration{}
	errs := map[string]map[string]int{}
	lifecycles, empty, abandoned := 0, 0, 0
	for _, w := range workers {
		for m, l := range w.rec.latencies {
			byMethod[m] = append(byMethod[m], l...)
			all = append(all, l...)
		}
		for m, codes := range w.rec.errors {
			if errs[m] == nil {
				errs[m] = map[string]int{}
			}
			for c, n := range codes {
				errs[m][c] += n
			}
		}
		lifecycles += w.lifecycles
		empty += w.emptyClaims
		abandoned += w.abandoned
	}
	errorTotal := map[string]int{}
	methods := map[string]stats{}
	for m, l := range byMethod {
		methods[m] = summarise(l, seconds)
	}
	for m, codes := range errs {
		s := methods[m]
		s.Errs = codes
		methods[m] = s
		for c, n := range codes {
			errorTotal[c] += n
		}
	}
	total := summarise(all, seconds)
	total.Errs = errorTotal
	out := map[string]any{
		"mode": cfg.mode, "concurrency": cfg.concurrency, "connections": cfg.connections, "seconds": seconds,
		"rpcs": total.Count, "rps": total.RPS, "p50_ms": total.P50, "p90_ms": total.P90, "p99_ms": total.P99,
		"max_ms": total.Max, "errors": errorTotal, "methods": methods,
	}
	if cfg.mode == "lifecycle" || cfg.mode == "mixed" {
		out["lifecycles"] = lifecycles
		out["lifecycles_per_second"] = round(float64(lifecycles)/seconds, 1)
		out["empty_claims"] = empty
		out["abandoned"] = abandoned
	}
	enc := json.NewEncoder(os.Stdout)
	return enc.Encode(out)
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if line := strings.TrimSpace(scanner.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	return lines, scanner.Err()
}
