package client

import (
	"context"
	"crypto/tls"
	"errors"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// Client is a connection to a runstatus server with a client for each service.
// It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// tracerProvider is WithTracerProvider's, for Workers' spans; nil: the global one.
	tracerProvider trace.TracerProvider

	// Classifier classifies an error report as the server would (Classify).
	Classifier runstatusv1.ClassifierServiceClient
	// Workflows creates and reads workflows (steps and edges), versioned.
	Workflows runstatusv1.WorkflowServiceClient
	// Projects creates, reads and updates projects (run limits, max runtime).
	Projects runstatusv1.ProjectServiceClient
	// WorkOrders creates, lists, counts, retries, cancels and watches work
	// orders and their runs. See Watch for a watch that resumes.
	WorkOrders runstatusv1.WorkOrderServiceClient
	// Worker is the worker protocol's raw calls; Claim, Lease and Worker
	// wrap them.
	Worker runstatusv1.WorkerServiceClient
	// Tokens creates, revokes and lists API tokens, and says who the caller is.
	Tokens runstatusv1.TokenServiceClient
	// Notifications manages webhook, Slack and email subscriptions to run
	// events and their deliveries.
	Notifications runstatusv1.NotificationServiceClient
	// Stats answers a project's work orders over a window of time: by status
	// per bucket, per workflow, and the commonest errors (a dashboard's data).
	Stats runstatusv1.StatsServiceClient
}

type options struct {
	tls         *tls.Config
	token       string
	dialOptions []grpc.DialOption

	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
}

// Option configures Dial.
type Option func(*options)

// WithTLS connects over TLS with the given configuration. Without it the
// connection is plaintext, which is meant for a server on loopback.
func WithTLS(config *tls.Config) Option {
	return func(o *options) { o.tls = config }
}

// WithToken sends the token on every RPC as "authorization: Bearer TOKEN".
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithDialOptions adds gRPC dial options, applied after the client's own.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOptions = append(o.dialOptions, opts...) }
}

// Dial makes a client for the server at address (e.g. "127.0.0.1:50051").
// Its calls retry UNAVAILABLE (up to 5 attempts) and its mutating requests
// without a request_id get one (FillRequestID), so a retry is done once.
// Each call carries the current span's W3C trace context, as a CLIENT span's
// (OpenTelemetry's otelgrpc; see WithTracerProvider): with no tracer provider
// set and no span current, the spans are no-ops and nothing is sent.
// No I/O happens yet: the connection is made on the first RPC, and an RPC on
// an unreachable server fails with codes.Unavailable. ctx is checked for
// cancellation before the client is made.
func Dial(ctx context.Context, address string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if address == "" {
		return nil, errors.New("runstatus client: empty address")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dialOptions := defaultDialOptions()
	if o.tls != nil {
		dialOptions = append(dialOptions, grpc.WithTransportCredentials(credentials.NewTLS(o.tls)))
	} else {
		dialOptions = append(dialOptions, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.token != "" {
		dialOptions = append(dialOptions, grpc.WithPerRPCCredentials(bearerToken{token: o.token, secure: o.tls != nil}))
	}
	dialOptions = append(dialOptions, o.tracingDialOption())
	dialOptions = append(dialOptions, o.dialOptions...)
	conn, err := grpc.NewClient(address, dialOptions...)
	if err != nil {
		return nil, err
	}
	c := New(conn)
	c.tracerProvider = o.tracerProvider
	return c, nil
}

// New wraps a connection made elsewhere. Close closes it. Its calls carry
// trace context only if the connection was made with otelgrpc's client stats
// handler; its Workers' spans are the global tracer provider's.
func New(conn *grpc.ClientConn) *Client {
	return &Client{
		conn:       conn,
		Classifier: runstatusv1.NewClassifierServiceClient(conn),
		Workflows:  runstatusv1.NewWorkflowServiceClient(conn),
		Projects:   runstatusv1.NewProjectServiceClient(conn),
		WorkOrders: runstatusv1.NewWorkOrderServiceClient(conn),
		Worker:     runstatusv1.NewWorkerServiceClient(conn),
		Tokens:     runstatusv1.NewTokenServiceClient(conn),

		Notifications: runstatusv1.NewNotificationServiceClient(conn),
		Stats:         runstatusv1.NewStatsServiceClient(conn),
	}
}

// Conn is the underlying gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// bearerToken is a per-RPC credential. It requires transport security only
// when the client was given TLS, so a token also works on plaintext loopback.
type bearerToken struct {
	token  string
	secure bool
}

// GetRequestMetadata sends the token as "authorization: Bearer TOKEN".
func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is true when the client was given TLS.
func (b bearerToken) RequireTransportSecurity() bool { return b.secure }
