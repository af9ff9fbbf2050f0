// Command contract is the Go runner of the contract suite (tests/contract/README.md):
// it runs every case of status_table.json, error_reasons.json, classification.json
// and lifecycle.json against a live server, the same way tests/contract/runner.py does.
// The lifecycle actions of a worker (claim, start_run, start_step, complete_step,
// complete_run, heartbeat) go through the client's worker helper, client.Claim
// and client.Lease, so the scenarios check the helper as well as the server.
//
//	go run ./cmd/contract -addr 127.0.0.1:50051 -cases ../../tests/contract
//
// It prints "ok   NAME" or "FAIL NAME: reason" per case, then "N passed, N failed",
// and exits 1 if any case failed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/runstatus/runstatus/clients/go/client"
	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

const language = "go"

// caseTimeout bounds one case, so a server that hangs fails the case instead of the run.
const caseTimeout = 60 * time.Second

type testCase struct {
	name string
	run  func(ctx context.Context, c *client.Client) error
}

func main() { os.Exit(run()) }

func run() int {
	addr := flag.String("addr", "", "the server's address, e.g. 127.0.0.1:50051")
	casesDir := flag.String("cases", filepath.Join("..", "..", "tests", "contract"), "the directory of the case files")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: contract -addr ADDRESS [-cases CASES_DIR]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *addr == "" && flag.NArg() > 0 { // also: contract ADDRESS [CASES_DIR], like the other runners
		*addr = flag.Arg(0)
		if flag.NArg() > 1 {
			*casesDir = flag.Arg(1)
		}
	}
	if *addr == "" {
		flag.Usage()
		return 2
	}
	c, err := client.Dial(context.Background(), *addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "contract: %v\n", err)
		return 2
	}
	defer c.Close()

	passed, failed := 0, 0
	for _, tc := range cases(*casesDir) {
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		err := tc.run(ctx, c)
		cancel()
		if err != nil {
			failed++
			fmt.Printf("FAIL %s: %s\n", tc.name, strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			passed++
			fmt.Printf("ok   %s\n", tc.name)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// cases is every case of the suite, named as runner.py names them. A case file
// that cannot be read or parsed is one failing case named after the file.
func cases(dir string) []testCase {
	var all []testCase
	broken := func(file string, err error) {
		all = append(all, testCase{name: file, run: func(context.Context, *client.Client) error { return err }})
	}

	var table struct {
		Statuses   []map[string]any `json:"statuses"`
		ErrorTypes []map[string]any `json:"error_types"`
	}
	if err := load(dir, "status_table.json", &table); err != nil {
		broken("status_table.json", err)
	} else {
		for _, c := range table.Statuses {
			all = append(all, testCase{"status_table/" + fmt.Sprint(c["status"]), func(context.Context, *client.Client) error { return checkStatus(c) }})
		}
		for _, c := range table.ErrorTypes {
			all = append(all, testCase{"status_table/" + fmt.Sprint(c["error_type"]), func(context.Context, *client.Client) error { return checkErrorType(c) }})
		}
	}

	var reasons reasonTable
	if err := load(dir, "error_reasons.json", &reasons); err != nil {
		broken("error_reasons.json", err)
	} else {
		for _, c := range reasons.Reasons {
			all = append(all, testCase{"error_reasons/" + c.Reason, func(context.Context, *client.Client) error { return checkReason(c) }})
		}
		all = append(all, testCase{"error_reasons/all", func(context.Context, *client.Client) error { return checkAllReasons(reasons) }})
	}

	var classification struct {
		Cases []classificationCase `json:"cases"`
	}
	if err := load(dir, "classification.json", &classification); err != nil {
		broken("classification.json", err)
	} else {
		for i, c := range classification.Cases {
			var head struct {
				Name     string `json:"name"`
				Language string `json:"language"`
			}
			_ = json.Unmarshal(c.Error, &head)
			name := fmt.Sprintf("classification/%d:%s/%s", i, head.Name, head.Language)
			all = append(all, testCase{name, func(ctx context.Context, cl *client.Client) error { return checkClassification(ctx, cl, c) }})
		}
	}

	var lifecycle struct {
		Scenarios []json.RawMessage `json:"scenarios"`
	}
	if err := load(dir, "lifecycle.json", &lifecycle); err != nil {
		broken("lifecycle.json", err)
	} else {
		for _, raw := range lifecycle.Scenarios {
			var head struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(raw, &head)
			all = append(all, testCase{"lifecycle/" + head.Name, func(ctx context.Context, cl *client.Client) error { return runScenario(ctx, cl, raw) }})
		}
	}
	return all
}

func load(dir, name string, into any) error {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// show renders a value for a failure message.
func show(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

// (a) The status table, from Go's own generated descriptors.

func checkStatus(c map[string]any) error {
	name, _ := c["status"].(string)
	n, ok := runstatusv1.RunStatus_value[name]
	if !ok {
		return fmt.Errorf("no RunStatus value %s", show(c["status"]))
	}
	s := runstatusv1.RunStatus(n)
	info := client.StatusInfo(s)
	var abortsRun any // null where the table says "-"
	if info != nil && info.AbortsRun != nil {
		abortsRun = client.AbortsRun(s)
	}
	got := map[string]any{
		"status":         s.String(),
		"label":          info.GetLabel(),
		"chip":           client.Chip(s),
		"color":          info.GetColor(),
		"terminal":       client.IsTerminal(s),
		"aborts_run":     abortsRun,
		"notifies_admin": info.GetNotifiesAdmin(),
	}
	if !reflect.DeepEqual(got, c) {
		return fmt.Errorf("descriptor says %s", show(got))
	}
	return nil
}

func checkErrorType(c map[string]any) error {
	name, _ := c["error_type"].(string)
	n, ok := runstatusv1.ErrorType_value[name]
	if !ok {
		return fmt.Errorf("no ErrorType value %s", show(c["error_type"]))
	}
	t := runstatusv1.ErrorType(n)
	got := map[string]any{
		"error_type": t.String(),
		"name":       client.ErrorTypeName(t),
		"status":     client.StatusOf(t).String(),
	}
	if !reflect.DeepEqual(got, c) {
		return fmt.Errorf("descriptor says %s", show(got))
	}
	return nil
}

// The error reasons, from Go's own generated enum and the client's ParseReason
// and WireReason.

type reasonCase struct {
	Reason string `json:"reason"`
	Number int32  `json:"number"`
	Wire   string `json:"wire"`
}

type reasonTable struct {
	Reasons []reasonCase `json:"reasons"`
	Unknown []string     `json:"unknown"`
}

func checkReason(c reasonCase) error {
	n, ok := runstatusv1.ErrorReason_value[c.Reason]
	if !ok {
		return fmt.Errorf("no ErrorReason value %s", show(c.Reason))
	}
	if n != c.Number {
		return fmt.Errorf("number %d", n)
	}
	r := runstatusv1.ErrorReason(n)
	if got := client.WireReason(r); got != c.Wire {
		return fmt.Errorf("wire %q", got)
	}
	if got := client.ParseReason(c.Wire); got != r {
		return fmt.Errorf("parses %q as %s", c.Wire, got)
	}
	return nil
}

func checkAllReasons(table reasonTable) error {
	var known, listed []string
	for name, n := range runstatusv1.ErrorReason_value {
		if n != 0 {
			known = append(known, name)
		}
	}
	for _, c := range table.Reasons {
		listed = append(listed, c.Reason)
	}
	slices.Sort(known)
	slices.Sort(listed)
	listed = slices.Compact(listed)
	if !slices.Equal(known, listed) {
		return fmt.Errorf("the enum has %s", show(known))
	}
	for _, wire := range table.Unknown {
		if got := client.ParseReason(wire); got != runstatusv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			return fmt.Errorf("%q parsed as a known reason (%s)", wire, got)
		}
	}
	return nil
}

// (b) Classification, by the server.

type classificationCase struct {
	Error  json.RawMessage `json:"error"`
	Expect map[string]any  `json:"expect"`
}

func checkClassification(ctx context.Context, cl *client.Client, c classificationCase) error {
	report := &runstatusv1.ErrorReport{}
	if err := protojson.Unmarshal(c.Error, report); err != nil {
		return fmt.Errorf("error report: %w", err)
	}
	answer, err := cl.Classifier.Classify(ctx, &runstatusv1.ClassifyRequest{Error: report})
	if err != nil {
		return rpcFailure(err)
	}
	got := answer.GetClassification()
	actual := map[string]any{
		"status":     got.GetStatus().String(),
		"error_type": got.GetErrorType().String(),
		"aborts_run": got.GetAbortsRun(),
	}
	if _, ok := c.Expect["rule"]; ok {
		actual["rule"] = got.GetRule()
	}
	if !reflect.DeepEqual(actual, c.Expect) {
		return fmt.Errorf("server said %s", show(actual))
	}
	return nil
}

// (c) Lifecycle scenarios.

type scenario struct {
	Name     string          `json:"name"`
	Project  json.RawMessage `json:"project"`
	Workflow struct {
		Steps []string   `json:"steps"`
		Edges [][]string `json:"edges"`
	} `json:"workflow"`
	Actions []action `json:"actions"`
}

type action struct {
	Do              string          `json:"do"`
	WorkOrder       *string         `json:"work_order"`
	Step            *string         `json:"step"`
	After           *string         `json:"after"`
	StartStep       *string         `json:"start_step"`
	Error           json.RawMessage `json:"error"`
	Expect          *string         `json:"expect"`
	ExpectStop      *bool           `json:"expect_stop"`
	ExpectRunNumber *int32          `json:"expect_run_number"`
	ExpectError     *struct {
		Code          string  `json:"code"`
		Reason        *string `json:"reason"`
		CurrentStatus *string `json:"current_status"`
	} `json:"expect_error"`
}

// tracked is what the runner remembers about one work order. Its worker calls
// go through the client's worker helper: a client.Lease on the latest run,
// holding the token from the last claim (none before a claim).
type tracked struct {
	workOrderID string
	lease       *client.Lease
	stepRuns    map[string]string // step id -> step run id in the current run
}

// unclaimed is a lease handle on a run not claimed (yet): its reports carry no token.
func unclaimed(cl *client.Client, runID string) *client.Lease {
	return cl.Lease(&runstatusv1.ClaimedRun{Run: &runstatusv1.Run{Id: runID}})
}

func runScenario(ctx context.Context, cl *client.Client, raw json.RawMessage) error {
	var sc scenario
	if err := json.Unmarshal(raw, &sc); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	projectID := fmt.Sprintf("contract-%s-%s", language, randomHex(4))
	project := &runstatusv1.Project{Id: projectID}
	if len(sc.Project) > 0 {
		given := &runstatusv1.Project{}
		if err := protojson.Unmarshal(sc.Project, given); err != nil {
			return fmt.Errorf("project: %w", err)
		}
		proto.Merge(project, given)
	}
	if _, err := cl.Projects.CreateProject(ctx, &runstatusv1.CreateProjectRequest{Project: project}); err != nil {
		return fmt.Errorf("create project: %w", rpcFailure(err))
	}
	workflow := &runstatusv1.Workflow{Id: "contract", ProjectId: projectID}
	for _, s := range sc.Workflow.Steps {
		workflow.Steps = append(workflow.Steps, &runstatusv1.Step{Id: s})
	}
	for _, e := range sc.Workflow.Edges {
		if len(e) != 3 {
			return fmt.Errorf("edge %s: want [source, target, CONDITION]", show(e))
		}
		condition, ok := runstatusv1.EdgeCondition_value["EDGE_CONDITION_"+e[2]]
		if !ok {
			return fmt.Errorf("edge %s: no condition EDGE_CONDITION_%s", show(e), e[2])
		}
		workflow.Edges = append(workflow.Edges, &runstatusv1.Edge{
			SourceStepId: e[0], TargetStepId: e[1], Condition: runstatusv1.EdgeCondition(condition),
		})
	}
	if _, err := cl.Workflows.CreateWorkflow(ctx, &runstatusv1.CreateWorkflowRequest{Workflow: workflow}); err != nil {
		return fmt.Errorf("create workflow: %w", rpcFailure(err))
	}
	orders := map[string]*tracked{}
	for i, a := range sc.Actions {
		if err := step(ctx, cl, projectID, orders, a); err != nil {
			return fmt.Errorf("action %d (%s): %w", i, a.Do, err)
		}
	}
	return nil
}

// rpcError is an RPC that failed, as opposed to a check that failed.
type rpcError struct{ err error }

func (e rpcError) Error() string {
	st := status.Convert(e.err)
	return fmt.Sprintf("%s: %s", codeName(st), st.Message())
}

func (e rpcError) Unwrap() error { return e.err }

func rpcFailure(err error) error { return rpcError{err} }

// codeName is the canonical name of a status's code, e.g. "FAILED_PRECONDITION".
func codeName(st *status.Status) string { return code.Code(st.Code()).String() }

func step(ctx context.Context, cl *client.Client, projectID string, orders map[string]*tracked, a action) error {
	if a.WorkOrder == nil {
		return errors.New(`no "work_order"`)
	}
	alias := *a.WorkOrder
	w := orders[alias]

	// call performs the action; it returns the status to compare with "expect"
	// (nil if the action has none) and the extras to compare where the action names them.
	call := func() (*runstatusv1.RunStatus, map[string]any, error) {
		some := func(s runstatusv1.RunStatus) *runstatusv1.RunStatus { return &s }
		if a.Do == "create" {
			input, err := structpb.NewStruct(map[string]any{"patient": 123})
			if err != nil {
				return nil, nil, err
			}
			answer, err := cl.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{
				ProjectId: projectID, WorkflowId: "contract", Input: input,
			})
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			orders[alias] = &tracked{workOrderID: answer.GetWorkOrder().GetId(), lease: unclaimed(cl, answer.GetRun().GetId()), stepRuns: map[string]string{}}
			return some(answer.GetWorkOrder().GetStatus()), nil, nil
		}
		if w == nil {
			return nil, nil, fmt.Errorf("no work order %q yet", alias)
		}
		switch a.Do {
		case "claim":
			for range 100 {
				leases, err := cl.Claim(ctx, projectID, "contract-"+language, 1)
				if err != nil {
					return nil, nil, rpcFailure(err)
				}
				if len(leases) == 0 {
					return nil, nil, fmt.Errorf("run %s was never handed out", w.lease.RunID())
				}
				if leases[0].RunID() == w.lease.RunID() {
					w.lease = leases[0]
					w.stepRuns = map[string]string{}
					for _, s := range leases[0].Claimed().GetRun().GetStepRuns() {
						w.stepRuns[s.GetStepId()] = s.GetId()
					}
					return nil, nil, nil
				}
			}
			return nil, nil, errors.New("claim gave up")
		case "start_run":
			answer, err := w.lease.StartRun(ctx)
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			return some(answer.GetRun().GetStatus()), nil, nil
		case "start_step":
			if a.Step == nil {
				return nil, nil, errors.New(`no "step"`)
			}
			previous := ""
			if a.After != nil {
				previous = w.stepRuns[*a.After]
			}
			answer, err := w.lease.StartStep(ctx, *a.Step, previous)
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			w.stepRuns[*a.Step] = answer.GetStepRun().GetId()
			return some(answer.GetStepRun().GetStatus()), nil, nil
		case "complete_step":
			if a.Step == nil {
				return nil, nil, errors.New(`no "step"`)
			}
			stepRunID, ok := w.stepRuns[*a.Step]
			if !ok {
				return nil, nil, fmt.Errorf("no step run of step %q", *a.Step)
			}
			report, err := errorReport(a.Error)
			if err != nil {
				return nil, nil, err
			}
			answer, err := w.lease.CompleteStep(ctx, stepRunID, nil, report)
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			return some(answer.GetRunStatus()), nil, nil
		case "complete_run":
			report, err := errorReport(a.Error)
			if err != nil {
				return nil, nil, err
			}
			answer, err := w.lease.CompleteRun(ctx, report)
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			return some(answer.GetRun().GetStatus()), nil, nil
		case "retry":
			request := &runstatusv1.RetryWorkOrderRequest{WorkOrderId: w.workOrderID}
			if a.StartStep != nil {
				request.StartStepId = *a.StartStep
			}
			answer, err := cl.WorkOrders.RetryWorkOrder(ctx, request)
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			orders[alias] = &tracked{workOrderID: w.workOrderID, lease: unclaimed(cl, answer.GetRun().GetId()), stepRuns: map[string]string{}}
			return some(answer.GetRun().GetStatus()), nil, nil
		case "cancel":
			answer, err := cl.WorkOrders.CancelRun(ctx, &runstatusv1.CancelRunRequest{RunId: w.lease.RunID()})
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			return some(answer.GetRun().GetStatus()), nil, nil
		case "heartbeat":
			answer, err := w.lease.Heartbeat(ctx)
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			return some(answer.GetStatus()), map[string]any{"expect_stop": answer.GetStop()}, nil
		case "get":
			answer, err := cl.WorkOrders.GetWorkOrder(ctx, &runstatusv1.GetWorkOrderRequest{WorkOrderId: w.workOrderID})
			if err != nil {
				return nil, nil, rpcFailure(err)
			}
			return some(answer.GetWorkOrder().GetStatus()), map[string]any{"expect_run_number": answer.GetLatestRun().GetNumber()}, nil
		}
		return nil, nil, fmt.Errorf("unknown action %q", a.Do)
	}

	if expected := a.ExpectError; expected != nil {
		_, _, err := call()
		if err == nil {
			return fmt.Errorf("expected %s, the call succeeded", expected.Code)
		}
		var failure rpcError
		if !errors.As(err, &failure) {
			return err
		}
		st := status.Convert(failure.err)
		if got := codeName(st); got != expected.Code {
			return fmt.Errorf("got %s: %s", got, st.Message())
		}
		info := client.ErrorInfo(failure.err)
		if expected.Reason != nil {
			if got := client.ParseReason(info.GetReason()).String(); got != *expected.Reason {
				return fmt.Errorf("reason %q (%s), expected %s", info.GetReason(), got, *expected.Reason)
			}
		}
		if expected.CurrentStatus != nil {
			if got, ok := info.GetMetadata()["current_status"]; !ok || got != *expected.CurrentStatus {
				return fmt.Errorf("current_status: expected %s, ErrorInfo metadata %s", *expected.CurrentStatus, show(info.GetMetadata()))
			}
		}
		return nil
	}

	got, extras, err := call()
	if err != nil {
		return err
	}
	if a.Expect != nil {
		if got == nil {
			return fmt.Errorf("expected %s, got None", *a.Expect)
		}
		if got.String() != *a.Expect {
			return fmt.Errorf("expected %s, got %s", *a.Expect, got.String())
		}
	}
	if a.ExpectStop != nil {
		if v, ok := extras["expect_stop"]; ok && v != *a.ExpectStop {
			return fmt.Errorf("expect_stop: expected %v, got %v", *a.ExpectStop, v)
		}
	}
	if a.ExpectRunNumber != nil {
		if v, ok := extras["expect_run_number"]; ok && v != *a.ExpectRunNumber {
			return fmt.Errorf("expect_run_number: expected %v, got %v", *a.ExpectRunNumber, v)
		}
	}
	return nil
}

// errorReport is an action's "error" (nil if none) as an ErrorReport.
func errorReport(raw json.RawMessage) (*runstatusv1.ErrorReport, error) {
	if raw == nil {
		return nil, nil
	}
	report := &runstatusv1.ErrorReport{}
	if err := protojson.Unmarshal(raw, report); err != nil {
		return nil, fmt.Errorf("error report: %w", err)
	}
	return report, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
