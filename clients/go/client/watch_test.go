package client

import (
	"context"
	"errors"
	"net"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// prunedWatch refuses every cursor as the server does one older than its pruned
// event log, counting the streams opened.
type prunedWatch struct {
	runstatusv1.UnimplementedWorkOrderServiceServer
	opened int
}

func (p *prunedWatch) WatchWorkOrders(_ *runstatusv1.WatchWorkOrdersRequest, _ grpc.ServerStreamingServer[runstatusv1.WatchWorkOrdersResponse]) error {
	p.opened++
	st, _ := status.New(codes.OutOfRange, "cursor 3 is older than the oldest event kept").WithDetails(
		&errdetails.ErrorInfo{Reason: "CURSOR_EXPIRED", Domain: "runstatus.v1", Metadata: map[string]string{"oldest_cursor": "41"}})
	return st.Err()
}

func TestWatchEndsWithCursorExpired(t *testing.T) {
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	fake := &prunedWatch{}
	runstatusv1.RegisterWorkOrderServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })
	c, err := Dial(context.Background(), "passthrough:///bufnet", WithDialOptions(dialer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var last error
	for item, err := range c.Watch(context.Background(), &runstatusv1.WatchWorkOrdersRequest{AfterCursor: "3"}) {
		if item != nil {
			t.Errorf("an event from a refused watch: %v", item)
		}
		last = err
	}
	if !errors.Is(last, ErrCursorExpired) {
		t.Fatalf("the watch ended with %v, want ErrCursorExpired", last)
	}
	var expired *CursorExpiredError
	if !errors.As(last, &expired) || expired.OldestCursor != "41" {
		t.Errorf("errors.As: %#v", expired)
	}
	if status.Code(last) != codes.OutOfRange || ReasonOf(last) != runstatusv1.ErrorReason_ERROR_REASON_CURSOR_EXPIRED {
		t.Errorf("still the server's status: %v %v", status.Code(last), ReasonOf(last))
	}
	if fake.opened != 1 {
		t.Errorf("opened %d streams: an expired cursor is never retried", fake.opened)
	}
	if errors.Is(status.Error(codes.OutOfRange, "other"), ErrCursorExpired) || cursorExpired(nil) != nil {
		t.Error("only CURSOR_EXPIRED is ErrCursorExpired")
	}
}
