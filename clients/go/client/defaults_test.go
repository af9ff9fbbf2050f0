package client

import (
	"context"
	"net"
	"regexp"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// flakyWorkOrders refuses every other CreateWorkOrder with UNAVAILABLE, as a
// server restarting would, and records the request_id of every attempt.
type flakyWorkOrders struct {
	runstatusv1.UnimplementedWorkOrderServiceServer
	mu       sync.Mutex
	attempts []string
}

func (f *flakyWorkOrders) CreateWorkOrder(_ context.Context, req *runstatusv1.CreateWorkOrderRequest) (*runstatusv1.CreateWorkOrderResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, req.GetRequestId())
	if len(f.attempts)%2 == 1 {
		return nil, status.Error(codes.Unavailable, "restarting")
	}
	return &runstatusv1.CreateWorkOrderResponse{}, nil
}

func (f *flakyWorkOrders) taken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	attempts := f.attempts
	f.attempts = nil
	return attempts
}

// dialFlaky starts a flakyWorkOrders server in memory and dials it through Dial, with opts.
func dialFlaky(t *testing.T, opts ...grpc.DialOption) (*Client, *flakyWorkOrders) {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	fake := &flakyWorkOrders{}
	runstatusv1.RegisterWorkOrderServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)

	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })
	c, err := Dial(context.Background(), "passthrough:///bufnet", WithDialOptions(append([]grpc.DialOption{dialer}, opts...)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, fake
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRetryCarriesOneRequestID(t *testing.T) {
	c, fake := dialFlaky(t)
	ctx := context.Background()

	req := &runstatusv1.CreateWorkOrderRequest{WorkflowId: "w"}
	if _, err := c.WorkOrders.CreateWorkOrder(ctx, req); err != nil {
		t.Fatalf("UNAVAILABLE once was not retried: %v", err)
	}
	first := fake.taken()
	if len(first) != 2 || first[0] != first[1] || !uuidV4.MatchString(first[0]) {
		t.Fatalf("attempts' request ids %q, want one UUID twice", first)
	}
	if req.GetRequestId() != "" {
		t.Errorf("the caller's request was changed: request_id %q", req.GetRequestId())
	}

	// The same message sent again is a new call: a new id.
	if _, err := c.WorkOrders.CreateWorkOrder(ctx, req); err != nil {
		t.Fatal(err)
	}
	if second := fake.taken(); len(second) != 2 || second[0] == first[0] || second[0] != second[1] {
		t.Errorf("second call's request ids %q, first call's %q", second, first[0])
	}

	// A request id of the caller's own is kept.
	req.RequestId = "mine"
	if _, err := c.WorkOrders.CreateWorkOrder(ctx, req); err != nil {
		t.Fatal(err)
	}
	if kept := fake.taken(); len(kept) != 2 || kept[0] != "mine" || kept[1] != "mine" {
		t.Errorf("request ids %q, want the caller's own", kept)
	}
}

func TestRetriesDisabledByTheCaller(t *testing.T) {
	c, fake := dialFlaky(t, grpc.WithDisableRetry())
	ctx := context.Background()
	_, err := c.WorkOrders.CreateWorkOrder(ctx, &runstatusv1.CreateWorkOrderRequest{WorkflowId: "w"})
	if status.Code(err) != codes.Unavailable || len(fake.taken()) != 1 {
		t.Errorf("with grpc.WithDisableRetry: %v", err)
	}
}
