package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// serviceConfig retries every call on UNAVAILABLE (safe: the interceptor gives
// every mutating call a request_id, so the server answers a repeat as it did
// the first), and spreads calls over every address the target names
// (round_robin; gRPC's default pick_first pins the client to one server).
// The same policy as the Python client's.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [
      {"service": "runstatus.v1.ClassifierService"},
      {"service": "runstatus.v1.WorkflowService"},
      {"service": "runstatus.v1.ProjectService"},
      {"service": "runstatus.v1.WorkOrderService"},
      {"service": "runstatus.v1.WorkerService"},
      {"service": "runstatus.v1.TokenService"},
      {"service": "runstatus.v1.NotificationService"},
      {"service": "runstatus.v1.StatsService"}
    ],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.1s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// defaultDialOptions are the safe defaults Dial applies before the caller's
// own dial options (grpc.WithDisableRetry or another service config override
// them).
func defaultDialOptions() []grpc.DialOption {
	reconnect := backoff.DefaultConfig
	// After a server restart, reconnect within seconds rather than gRPC's
	// default of up to two minutes, so the retries above find it.
	reconnect.MaxDelay = 5 * time.Second
	return []grpc.DialOption{
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: 20 * time.Second}),
		grpc.WithChainUnaryInterceptor(FillRequestID),
	}
}

// FillRequestID is a unary client interceptor that gives a request with an
// empty request_id field (every mutating request has one) a new random id, so
// that gRPC's retries of it, which resend the same bytes, are done once by the
// server. The caller's message is left as it was: a message reused for a new
// call gets a new id. Dial installs it; use it with grpc.NewClient and New.
func FillRequestID(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if m, ok := req.(proto.Message); ok {
		if field := emptyRequestID(m.ProtoReflect()); field != nil {
			filled := proto.Clone(m)
			filled.ProtoReflect().Set(field, protoreflect.ValueOfString(newRequestID()))
			req = filled
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// emptyRequestID is the message's string request_id field if it is empty.
func emptyRequestID(m protoreflect.Message) protoreflect.FieldDescriptor {
	field := m.Descriptor().Fields().ByName("request_id")
	if field == nil || field.Kind() != protoreflect.StringKind || field.IsList() || m.Has(field) {
		return nil
	}
	return field
}

// newRequestID is a random (version 4) UUID.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
