package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

func TestChip(t *testing.T) {
	cases := map[runstatusv1.RunStatus]string{
		runstatusv1.RunStatus_RUN_STATUS_FAILED:      "🔴",
		runstatusv1.RunStatus_RUN_STATUS_SUCCESS:     "🟢",
		runstatusv1.RunStatus_RUN_STATUS_CRASHED:     "🟠",
		runstatusv1.RunStatus_RUN_STATUS_KILLED:      "🟡",
		runstatusv1.RunStatus_RUN_STATUS_LOST:        "⚫",
		runstatusv1.RunStatus_RUN_STATUS_UNSPECIFIED: "",
		runstatusv1.RunStatus(99):                    "",
	}
	for s, want := range cases {
		if got := Chip(s); got != want {
			t.Errorf("Chip(%v) = %q, want %q", s, got, want)
		}
	}
	if got := Label(runstatusv1.RunStatus_RUN_STATUS_EXCEPTION); got != "Exception" {
		t.Errorf("Label(EXCEPTION) = %q", got)
	}
}

func TestIsTerminal(t *testing.T) {
	for s, want := range map[runstatusv1.RunStatus]bool{
		runstatusv1.RunStatus_RUN_STATUS_PENDING:   false,
		runstatusv1.RunStatus_RUN_STATUS_RUNNING:   false,
		runstatusv1.RunStatus_RUN_STATUS_SUCCESS:   true,
		runstatusv1.RunStatus_RUN_STATUS_FAILED:    true,
		runstatusv1.RunStatus_RUN_STATUS_LOST:      true,
		runstatusv1.RunStatus_RUN_STATUS_REJECTED:  true,
		runstatusv1.RunStatus_RUN_STATUS_CANCELLED: true,
	} {
		if got := IsTerminal(s); got != want {
			t.Errorf("IsTerminal(%v) = %v, want %v", s, got, want)
		}
	}
}

func TestAbortsRun(t *testing.T) {
	for s, want := range map[runstatusv1.RunStatus]bool{
		runstatusv1.RunStatus_RUN_STATUS_CRASHED:   true,
		runstatusv1.RunStatus_RUN_STATUS_KILLED:    true,
		runstatusv1.RunStatus_RUN_STATUS_EXCEPTION: true,
		runstatusv1.RunStatus_RUN_STATUS_FAILED:    false,
		runstatusv1.RunStatus_RUN_STATUS_SUCCESS:   false,
	} {
		if got := AbortsRun(s); got != want {
			t.Errorf("AbortsRun(%v) = %v, want %v", s, got, want)
		}
	}
	// "No" and "-" differ in the table: FAILED says no, SUCCESS says nothing.
	if info := StatusInfo(runstatusv1.RunStatus_RUN_STATUS_FAILED); info.AbortsRun == nil || *info.AbortsRun {
		t.Errorf("FAILED aborts_run = %v, want set to false", info.AbortsRun)
	}
	if info := StatusInfo(runstatusv1.RunStatus_RUN_STATUS_SUCCESS); info.AbortsRun != nil {
		t.Errorf("SUCCESS aborts_run = %v, want unset", *info.AbortsRun)
	}
}

func TestEveryValueHasItsRow(t *testing.T) {
	for n, name := range runstatusv1.RunStatus_name {
		info := StatusInfo(runstatusv1.RunStatus(n))
		if (info == nil) != (n == 0) {
			t.Errorf("StatusInfo(%s) = %v", name, info)
		}
	}
	for n, name := range runstatusv1.ErrorType_name {
		info := ErrorTypeInfo(runstatusv1.ErrorType(n))
		if (info == nil) != (n == 0) || (n != 0 && (info.Name == "" || info.Status == 0)) {
			t.Errorf("ErrorTypeInfo(%s) = %v", name, info)
		}
	}
}

func TestStatusOf(t *testing.T) {
	for e, want := range map[runstatusv1.ErrorType]runstatusv1.RunStatus{
		runstatusv1.ErrorType_ERROR_TYPE_IMPORT_ERROR:    runstatusv1.RunStatus_RUN_STATUS_KILLED,
		runstatusv1.ErrorType_ERROR_TYPE_OOM_ERROR:       runstatusv1.RunStatus_RUN_STATUS_KILLED,
		runstatusv1.ErrorType_ERROR_TYPE_SYNTAX_ERROR:    runstatusv1.RunStatus_RUN_STATUS_CRASHED,
		runstatusv1.ErrorType_ERROR_TYPE_REFERENCE_ERROR: runstatusv1.RunStatus_RUN_STATUS_CRASHED,
		runstatusv1.ErrorType_ERROR_TYPE_JOB_ERROR:       runstatusv1.RunStatus_RUN_STATUS_FAILED,
		runstatusv1.ErrorType_ERROR_TYPE_UNSPECIFIED:     runstatusv1.RunStatus_RUN_STATUS_UNSPECIFIED,
	} {
		if got := StatusOf(e); got != want {
			t.Errorf("StatusOf(%v) = %v, want %v", e, got, want)
		}
	}
	if got := ErrorTypeName(runstatusv1.ErrorType_ERROR_TYPE_OOM_ERROR); got != "OomError" {
		t.Errorf("ErrorTypeName(OOM_ERROR) = %q", got)
	}
}

func TestErrorInfo(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "run is CRASHED").WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "run_id"}}},
		&errdetails.ErrorInfo{Reason: "RUN_NOT_RUNNING", Domain: "runstatus", Metadata: map[string]string{"current_status": "RUN_STATUS_CRASHED"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	info := ErrorInfo(st.Err())
	if info == nil || info.Reason != "RUN_NOT_RUNNING" || info.Metadata["current_status"] != "RUN_STATUS_CRASHED" {
		t.Errorf("ErrorInfo = %v", info)
	}
	if info := ErrorInfo(status.Error(codes.NotFound, "no details")); info != nil {
		t.Errorf("ErrorInfo without details = %v", info)
	}
	if info := ErrorInfo(errors.New("not grpc")); info != nil {
		t.Errorf("ErrorInfo of a plain error = %v", info)
	}
	if info := ErrorInfo(nil); info != nil {
		t.Errorf("ErrorInfo(nil) = %v", info)
	}
}

func TestReasonRoundTrip(t *testing.T) {
	values := runstatusv1.ErrorReason(0).Descriptor().Values()
	if values.Len() < 2 {
		t.Fatalf("ErrorReason has %d values", values.Len())
	}
	for i := range values.Len() {
		value := values.Get(i)
		r := runstatusv1.ErrorReason(value.Number())
		wire := WireReason(r)
		if want := strings.TrimPrefix(string(value.Name()), "ERROR_REASON_"); wire != want {
			t.Errorf("WireReason(%s) = %q, want %q", value.Name(), wire, want)
		}
		if got := ParseReason(wire); got != r {
			t.Errorf("ParseReason(%q) = %v, want %v", wire, got, r)
		}
	}
	if got := WireReason(runstatusv1.ErrorReason_ERROR_REASON_RUN_ENDED); got != "RUN_ENDED" {
		t.Errorf("WireReason(RUN_ENDED) = %q", got)
	}
	if got := ParseReason("EDGE_CONDITION_NOT_MET"); got != runstatusv1.ErrorReason_ERROR_REASON_EDGE_CONDITION_NOT_MET {
		t.Errorf("ParseReason(EDGE_CONDITION_NOT_MET) = %v", got)
	}
	if got := WireReason(runstatusv1.ErrorReason(9999)); got != "" {
		t.Errorf("WireReason(9999) = %q, want \"\"", got)
	}
}

func TestParseReasonUnknown(t *testing.T) {
	for _, wire := range []string{"", "UNSPECIFIED", "NOT_A_REASON", "run_ended", "ERROR_REASON_RUN_ENDED", "ERROR_REASON_UNSPECIFIED", " RUN_ENDED", "11"} {
		if got := ParseReason(wire); got != runstatusv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			t.Errorf("ParseReason(%q) = %v, want ERROR_REASON_UNSPECIFIED", wire, got)
		}
	}
}

func TestReasonOf(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "run has ended").WithDetails(
		&errdetails.ErrorInfo{Reason: "RUN_ENDED", Domain: "runstatus.v1", Metadata: map[string]string{"current_status": "RUN_STATUS_SUCCESS"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := ReasonOf(st.Err()); got != runstatusv1.ErrorReason_ERROR_REASON_RUN_ENDED {
		t.Errorf("ReasonOf = %v, want ERROR_REASON_RUN_ENDED", got)
	}
	if got := ReasonOf(fmt.Errorf("wrapped: %w", st.Err())); got != runstatusv1.ErrorReason_ERROR_REASON_RUN_ENDED {
		t.Errorf("ReasonOf(wrapped) = %v, want ERROR_REASON_RUN_ENDED", got)
	}
	newer, err := status.New(codes.FailedPrecondition, "newer").WithDetails(&errdetails.ErrorInfo{Reason: "FROM_THE_FUTURE"})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"no details":     status.Error(codes.NotFound, "no details"),
		"unknown reason": newer.Err(),
		"plain error":    errors.New("not grpc"),
		"nil":            nil,
	} {
		if got := ReasonOf(err); got != runstatusv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
			t.Errorf("ReasonOf(%s) = %v, want ERROR_REASON_UNSPECIFIED", name, got)
		}
	}
}

// classifier answers with the authorization metadata it was sent as the rule.
type classifier struct {
	runstatusv1.UnimplementedClassifierServiceServer
}

func (classifier) Classify(ctx context.Context, _ *runstatusv1.ClassifyRequest) (*runstatusv1.ClassifyResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	rule := ""
	if v := md.Get("authorization"); len(v) == 1 {
		rule = v[0]
	}
	return &runstatusv1.ClassifyResponse{Classification: &runstatusv1.Classification{Rule: rule}}, nil
}

// TestDialWithToken dials an in-process gRPC server over an in-memory pipe.
func TestDialWithToken(t *testing.T) {
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	runstatusv1.RegisterClassifierServiceServer(server, classifier{})
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()

	ctx := context.Background()
	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })
	for token, want := range map[string]string{"s3cret": "Bearer s3cret", "": ""} {
		c, err := Dial(ctx, "passthrough:///bufnet", WithToken(token), WithDialOptions(dialer))
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Classifier.Classify(ctx, &runstatusv1.ClassifyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetClassification().GetRule() != want {
			t.Errorf("token %q: server saw authorization %q, want %q", token, got.GetClassification().GetRule(), want)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Dial(cancelled, "127.0.0.1:1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context: %v", err)
	}
}
