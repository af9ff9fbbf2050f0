package client

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// Lease is one claimed run and the lease token that lets its holder report on
// it: the low-level layer of the worker protocol, for a worker that drives its
// own engine. Each report fills in the run id, the lease token and a new
// request id, made once per report, so the channel's retries of a report are
// applied once. Worker is the layer above, which runs a workflow's steps.
//
// A Lease's methods may be called from several goroutines (a heartbeat beside
// the reports).
type Lease struct {
	client  *Client
	claimed *runstatusv1.ClaimedRun
}

// Claim asks for up to maxRuns pending runs (0 means 1; at most 100) of the
// project (empty: of any project) for the worker named workerID, and returns a
// Lease for each run handed out; none if nothing is pending.
func (c *Client) Claim(ctx context.Context, projectID, workerID string, maxRuns int) ([]*Lease, error) {
	if maxRuns <= 0 {
		maxRuns = 1
	}
	answer, err := c.Worker.ClaimRuns(ctx, &runstatusv1.ClaimRunsRequest{
		ProjectId: projectID, WorkerId: workerID, MaxRuns: int32(min(maxRuns, 100)), RequestId: newRequestID(),
	})
	if err != nil {
		return nil, err
	}
	leases := make([]*Lease, 0, len(answer.GetRuns()))
	for _, claimed := range answer.GetRuns() {
		leases = append(leases, c.Lease(claimed))
	}
	return leases, nil
}

// Lease wraps a run claimed elsewhere (a ClaimRuns answer of your own, or a
// ClaimedRun kept across a restart of the worker) so its reports go through
// this client.
func (c *Client) Lease(claimed *runstatusv1.ClaimedRun) *Lease {
	return &Lease{client: c, claimed: claimed}
}

// Claimed is the run as the claim handed it out: the run (with the step runs a
// retry from a step reuses), its workflow, the work order's input, the lease.
func (l *Lease) Claimed() *runstatusv1.ClaimedRun { return l.claimed }

// RunID is the claimed run's id.
func (l *Lease) RunID() string { return l.claimed.GetRun().GetId() }

// Token is the lease token every report on the run carries.
func (l *Lease) Token() string { return l.claimed.GetLeaseToken() }

// HeartbeatInterval is how often the server asks to hear from the holder, at
// least; never under 50 ms, so a zero or missing interval cannot spin.
func (l *Lease) HeartbeatInterval() time.Duration {
	return max(l.claimed.GetHeartbeatInterval().AsDuration(), 50*time.Millisecond)
}

// StartRun moves the run from PENDING to RUNNING.
func (l *Lease) StartRun(ctx context.Context) (*runstatusv1.StartRunResponse, error) {
	return l.client.Worker.StartRun(ctx, &runstatusv1.StartRunRequest{
		RunId: l.RunID(), LeaseToken: l.Token(), RequestId: newRequestID(),
	})
}

// StartStep starts step stepID, at a root (previousStepRunID empty) or along
// the edge from the executed step run previousStepRunID.
func (l *Lease) StartStep(ctx context.Context, stepID, previousStepRunID string) (*runstatusv1.StartStepResponse, error) {
	return l.client.Worker.StartStep(ctx, &runstatusv1.StartStepRequest{
		RunId: l.RunID(), LeaseToken: l.Token(), StepId: stepID, PreviousStepRunId: previousStepRunID,
		RequestId: newRequestID(),
	})
}

// CompleteStep ends the step run stepRunID with the state it passes on
// (output, may be nil) and, if it failed, its error (nil: it succeeded; see
// ReportOf). The answer carries the server's classification and the run's
// status after it: RUNNING, or the status an abort ended the run with.
func (l *Lease) CompleteStep(ctx context.Context, stepRunID string, output *structpb.Struct,
	failure *runstatusv1.ErrorReport) (*runstatusv1.CompleteStepResponse, error) {
	return l.client.Worker.CompleteStep(ctx, &runstatusv1.CompleteStepRequest{
		RunId: l.RunID(), LeaseToken: l.Token(), StepRunId: stepRunID, Output: output, Error: failure,
		RequestId: newRequestID(),
	})
}

// CompleteRun ends the run: its status follows from the leaf rule, or from a
// run-level error (failure, nil if none) such as a worker's TimeoutError.
func (l *Lease) CompleteRun(ctx context.Context, failure *runstatusv1.ErrorReport) (*runstatusv1.CompleteRunResponse, error) {
	return l.client.Worker.CompleteRun(ctx, &runstatusv1.CompleteRunRequest{
		RunId: l.RunID(), LeaseToken: l.Token(), Error: failure, RequestId: newRequestID(),
	})
}

// Heartbeat extends the lease. Its answer's Stop says to stop work on the run:
// it was cancelled or has otherwise ended, and no report will be accepted.
func (l *Lease) Heartbeat(ctx context.Context) (*runstatusv1.HeartbeatResponse, error) {
	return l.client.Worker.Heartbeat(ctx, &runstatusv1.HeartbeatRequest{RunId: l.RunID(), LeaseToken: l.Token()})
}
