package client

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
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

// batchedWatch sends the events after the request's cursor in batches of two,
// breaking the first stream (UNAVAILABLE) after its first batch; it records
// each stream's cursor.
type batchedWatch struct {
	runstatusv1.UnimplementedWorkOrderServiceServer
	afters []string
}

func (b *batchedWatch) WatchWorkOrders(req *runstatusv1.WatchWorkOrdersRequest, stream grpc.ServerStreamingServer[runstatusv1.WatchWorkOrdersResponse]) error {
	b.afters = append(b.afters, req.GetAfterCursor())
	if req.GetBatching().GetMaxEvents() != 2 {
		return status.Error(codes.InvalidArgument, "batching not asked for")
	}
	after, _ := strconv.ParseInt(req.GetAfterCursor(), 10, 64)
	for first := after + 1; first <= 5; first += 2 {
		batch := &runstatusv1.WatchWorkOrdersResponse{}
		for seq := first; seq < first+2 && seq <= 5; seq++ {
			batch.Events = append(batch.Events, &runstatusv1.Event{Sequence: seq})
		}
		batch.Cursor = strconv.FormatInt(batch.Events[len(batch.Events)-1].GetSequence(), 10)
		if err := stream.Send(batch); err != nil {
			return err
		}
		if len(b.afters) == 1 {
			return status.Error(codes.Unavailable, "restarting")
		}
	}
	return nil
}

func TestWatchHandsOutABatchEventByEvent(t *testing.T) {
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	fake := &batchedWatch{}
	runstatusv1.RegisterWorkOrderServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()
	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })
	c, err := Dial(context.Background(), "passthrough:///bufnet", WithDialOptions(dialer))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var cursors []string
	for item, err := range c.Watch(context.Background(), &runstatusv1.WatchWorkOrdersRequest{Batching: Batching(2, 0)}) {
		if err != nil {
			t.Fatal(err)
		}
		if item.GetEvent() == nil || len(item.GetEvents()) != 0 {
			t.Fatalf("not one event: %v", item)
		}
		if want := strconv.FormatInt(item.GetEvent().GetSequence(), 10); item.GetCursor() != want {
			t.Errorf("event %s with cursor %q", want, item.GetCursor())
		}
		cursors = append(cursors, item.GetCursor())
	}
	if !slices.Equal(cursors, []string{"1", "2", "3", "4", "5"}) {
		t.Errorf("cursors %v", cursors)
	}
	// Reopened after the last event handed out, the batch's last.
	if !slices.Equal(fake.afters, []string{"", "2"}) {
		t.Errorf("streams opened after %q", fake.afters)
	}
}
