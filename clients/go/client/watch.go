package client

import (
	"context"
	"errors"
	"io"
	"iter"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// ErrCursorExpired matches (errors.Is) the error a watch ends with when its
// cursor is older than the oldest event the server keeps: the events after your
// cursor were pruned by retention, so the watch cannot resume from it. Re-read
// what you need (ListWorkOrders), then watch with FromNow. errors.As gives the
// *CursorExpiredError, with the oldest cursor the server can still resume after.
var ErrCursorExpired = errors.New("runstatus: watch cursor expired")

// CursorExpiredError is how Client.Watch ends on OUT_OF_RANGE with reason
// CURSOR_EXPIRED: the events after your cursor were pruned by retention. Re-read
// what you need (ListWorkOrders), then watch with FromNow; never resume from
// OldestCursor to skip the gap unless losing those events is fine. It is
// ErrCursorExpired to errors.Is, and still the server's gRPC status to
// status.Code, ErrorInfo and ReasonOf.
type CursorExpiredError struct {
	// OldestCursor is the oldest cursor a watch can still resume after (the
	// ErrorInfo metadata "oldest_cursor").
	OldestCursor string
	// Err is the server's error as it came.
	Err error
}

func (e *CursorExpiredError) Error() string {
	return "watch cursor expired (the events after it were pruned by retention; list work orders again, then watch from now): " + e.Err.Error()
}

func (e *CursorExpiredError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCursorExpired) true.
func (e *CursorExpiredError) Is(target error) bool { return target == ErrCursorExpired }

// GRPCStatus keeps status.Code and status.FromError working on it.
func (e *CursorExpiredError) GRPCStatus() *status.Status { return status.Convert(e.Err) }

// cursorExpired is err as a *CursorExpiredError when the server says the
// cursor expired, else err.
func cursorExpired(err error) error {
	if ReasonOf(err) != runstatusv1.ErrorReason_ERROR_REASON_CURSOR_EXPIRED {
		return err
	}
	return &CursorExpiredError{OldestCursor: ErrorInfo(err).GetMetadata()["oldest_cursor"], Err: err}
}

// reconnectDelays are the waits before reopening a broken watch, the Python
// client's: the n-th failure in a row waits the n-th (the last, from then on).
var reconnectDelays = []time.Duration{
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
}

// Watch yields the events WatchWorkOrders streams for req (the log after
// req.AfterCursor, then live events), each with the cursor to resume after it.
// When the stream breaks (UNAVAILABLE: a server restart or a lost network;
// INTERNAL; CANCELLED not by ctx; or cut off as too slow, WATCH_TOO_SLOW) it is
// reopened after the last cursor yielded, so across a restart no event is
// missed and none is yielded twice. It retries for as long as ctx lasts: the
// watch has no deadline of its own (give ctx one to bound it).
//
// With req.Batching set (see Batching) the server sends up to MaxEvents events
// per message, holding one back at most MaxDelay for company: far cheaper for
// the server when many watch a busy project. Watch still yields the events one
// by one, each as a response of its own with Event and the cursor to resume
// after it (its sequence), so the loop below reads the same either way; a
// reopened stream resumes after the last event yielded.
//
// Any other error is yielded once, with a nil event, and ends the sequence, as
// does ctx being done (its error as a gRPC status) or the server ending the
// stream. A cursor older than the log the server keeps is one such error
// (OUT_OF_RANGE, ERROR_REASON_CURSOR_EXPIRED), yielded as a *CursorExpiredError
// (errors.Is(err, ErrCursorExpired)): the events after it were pruned by
// retention, so it is never resumed past silently; re-read what you need
// (ListWorkOrders), then watch with FromNow. Breaking out of the loop closes the
// stream.
//
//	for item, err := range rs.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: "p"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(item.GetEvent().GetWorkOrderId(), item.GetEvent().GetStatus(), item.GetCursor())
//	}
func (c *Client) Watch(ctx context.Context, req *runstatusv1.WatchWorkOrdersRequest) iter.Seq2[*runstatusv1.WatchWorkOrdersResponse, error] {
	return func(yield func(*runstatusv1.WatchWorkOrdersResponse, error) bool) {
		cursor := req.GetAfterCursor()
		failures := 0
		for {
			request := proto.Clone(req).(*runstatusv1.WatchWorkOrdersRequest)
			if cursor != "" {
				// Resuming: from the cursor, never "from now" (which would skip what came meanwhile).
				request.AfterCursor, request.FromNow = cursor, false
			}
			stopped, err := c.watchOnce(ctx, request, func(item *runstatusv1.WatchWorkOrdersResponse) bool {
				failures = 0
				if len(item.GetEvents()) == 0 {
					cursor = item.GetCursor()
					return yield(item, nil)
				}
				// A batch: each event on its own, the cursor moving as each is handed out.
				for _, event := range item.GetEvents() {
					cursor = strconv.FormatInt(event.GetSequence(), 10)
					if !yield(&runstatusv1.WatchWorkOrdersResponse{Event: event, Cursor: cursor}, nil) {
						return false
					}
				}
				return true
			})
			if stopped || errors.Is(err, io.EOF) {
				return
			}
			delay, resume := reconnectDelay(ctx, err, failures)
			if !resume {
				yield(nil, cursorExpired(err))
				return
			}
			failures++
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				yield(nil, status.FromContextError(ctx.Err()).Err())
				return
			case <-timer.C:
			}
		}
	}
}

// Batching is the WatchWorkOrdersRequest.Batching that asks for up to
// maxEvents events per message (1 to 1000), an event held back at most
// maxDelay (0 to 1 s) for company. Watch hands them out one by one all the same.
//
//	rs.Watch(ctx, &runstatusv1.WatchWorkOrdersRequest{ProjectId: "p", Batching: client.Batching(100, 100*time.Millisecond)})
func Batching(maxEvents int, maxDelay time.Duration) *runstatusv1.WatchBatching {
	return &runstatusv1.WatchBatching{MaxEvents: int32(maxEvents), MaxDelay: durationpb.New(maxDelay)}
}

// watchOnce opens one stream and hands each item to each until the stream
// breaks (its error) or each returns false (stopped).
func (c *Client) watchOnce(ctx context.Context, request *runstatusv1.WatchWorkOrdersRequest,
	each func(*runstatusv1.WatchWorkOrdersResponse) bool) (stopped bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the stream
	stream, err := c.WorkOrders.WatchWorkOrders(ctx, request)
	if err != nil {
		return false, err
	}
	for {
		item, err := stream.Recv()
		if err != nil {
			return false, err
		}
		if !each(item) {
			return true, nil
		}
	}
}

// reconnectDelay is how long to wait before reopening a watch that broke with
// err, and whether to reopen it at all.
func reconnectDelay(ctx context.Context, err error, failures int) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	// Cut off for reading too slowly: resume at once, the backlog comes from the log.
	if ReasonOf(err) == runstatusv1.ErrorReason_ERROR_REASON_WATCH_TOO_SLOW {
		return 0, true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.Internal:
		return reconnectDelays[min(failures, len(reconnectDelays)-1)], true
	}
	return 0, false
}
