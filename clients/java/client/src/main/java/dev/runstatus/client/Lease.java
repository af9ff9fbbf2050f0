package dev.runstatus.client;

import com.google.protobuf.Struct;
import dev.runstatus.v1.ClaimRunsRequest;
import dev.runstatus.v1.ClaimedRun;
import dev.runstatus.v1.CompleteRunRequest;
import dev.runstatus.v1.CompleteRunResponse;
import dev.runstatus.v1.CompleteStepRequest;
import dev.runstatus.v1.CompleteStepResponse;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.HeartbeatRequest;
import dev.runstatus.v1.HeartbeatResponse;
import dev.runstatus.v1.StartRunRequest;
import dev.runstatus.v1.StartRunResponse;
import dev.runstatus.v1.StartStepRequest;
import dev.runstatus.v1.StartStepResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * The low-level handle of one claimed run: each report on it ({@code StartRun},
 * {@code StartStep}, {@code CompleteStep}, {@code CompleteRun}) and {@code Heartbeat} carries the
 * run id, the lease token from the claim and, for the reports, a new request id, so a retry of
 * the call is done once. {@link Worker} is built on it; use it directly to drive a run from an
 * engine of your own.
 *
 * <pre>{@code
 * for (Lease lease : Lease.claim(client, "default", "worker-1", 1)) {
 *   lease.startRun();
 *   String stepRun = lease.startStep("fetch", "").getStepRun().getId();
 *   lease.completeStep(stepRun, output, null);            // or an ErrorReports.of(exception)
 *   RunStatus status = lease.completeRun(null).getRun().getStatus();
 * }
 * }</pre>
 *
 * <p>A refused report throws the StatusRuntimeException the server answered (FAILED_PRECONDITION
 * once the run has ended: cancelled, killed, lost).
 */
public final class Lease {
  private final RunstatusClient client;
  private final ClaimedRun claimed;
  private final String runId;
  private final String leaseToken;

  /**
   * The handle of a run this worker claimed.
   *
   * @param client the client to report through
   * @param claimed the run as ClaimRuns handed it out
   */
  public Lease(RunstatusClient client, ClaimedRun claimed) {
    this.client = Objects.requireNonNull(client, "client");
    this.claimed = Objects.requireNonNull(claimed, "claimed");
    this.runId = claimed.getRun().getId();
    this.leaseToken = claimed.getLeaseToken();
  }

  /**
   * The handle of a run known by its id and lease token (e.g. kept from an earlier claim).
   *
   * @param client the client to report through
   * @param runId the run's id
   * @param leaseToken the lease token of its claim
   */
  public Lease(RunstatusClient client, String runId, String leaseToken) {
    this.client = Objects.requireNonNull(client, "client");
    this.claimed = null;
    this.runId = Objects.requireNonNull(runId, "runId");
    this.leaseToken = Objects.requireNonNull(leaseToken, "leaseToken");
  }

  /**
   * Claims up to {@code maxRuns} pending runs (highest priority, then oldest first).
   *
   * @param client the client
   * @param projectId the project whose runs to claim; empty: any the caller may see
   * @param workerId who claims them
   * @param maxRuns at most this many (1 to 100)
   * @return a lease per run handed out; empty if none was pending
   */
  public static List<Lease> claim(RunstatusClient client, String projectId, String workerId, int maxRuns) {
    List<Lease> leases = new ArrayList<>();
    for (ClaimedRun run : client.worker().claimRuns(ClaimRunsRequest.newBuilder()
        .setProjectId(projectId)
        .setWorkerId(workerId)
        .setMaxRuns(maxRuns)
        .setRequestId(RunstatusClient.newRequestId())
        .build()).getRunsList()) {
      leases.add(new Lease(client, run));
    }
    return leases;
  }

  /**
   * The run as it was claimed: its workflow, input, step runs, heartbeat interval.
   *
   * @return the claimed run; empty for a lease made from an id and a token
   */
  public Optional<ClaimedRun> claimed() {
    return Optional.ofNullable(claimed);
  }

  /** @return the run's id */
  public String runId() {
    return runId;
  }

  /** @return the lease token every report carries */
  public String leaseToken() {
    return leaseToken;
  }

  /**
   * How often to heartbeat, as the claim said (at least 50 ms; 10 s without a claim).
   *
   * @return the interval
   */
  public Duration heartbeatInterval() {
    if (claimed == null || !claimed.hasHeartbeatInterval()) {
      return Duration.ofSeconds(10);
    }
    Duration interval = Duration.ofSeconds(
        claimed.getHeartbeatInterval().getSeconds(), claimed.getHeartbeatInterval().getNanos());
    return interval.compareTo(Duration.ofMillis(50)) < 0 ? Duration.ofMillis(50) : interval;
  }

  /**
   * PENDING to RUNNING.
   *
   * @return the server's answer, the run
   */
  public StartRunResponse startRun() {
    return client.worker().startRun(StartRunRequest.newBuilder()
        .setRunId(runId).setLeaseToken(leaseToken).setRequestId(RunstatusClient.newRequestId()).build());
  }

  /**
   * A step starts: at a root or a retry's start step ({@code previousStepRunId} empty), or along
   * the edge from the step of the executed step run {@code previousStepRunId}.
   *
   * @param stepId the step
   * @param previousStepRunId the step run that led here; empty (or null) if none
   * @return the server's answer, the new step run
   */
  public StartStepResponse startStep(String stepId, String previousStepRunId) {
    return client.worker().startStep(StartStepRequest.newBuilder()
        .setRunId(runId).setLeaseToken(leaseToken)
        .setStepId(stepId).setPreviousStepRunId(previousStepRunId == null ? "" : previousStepRunId)
        .setRequestId(RunstatusClient.newRequestId()).build());
  }

  /**
   * A step ends: with its output if it succeeded, with the error it hit if not.
   *
   * @param stepRunId the step run
   * @param output the step's output; null for none
   * @param error the error; null if the step succeeded
   * @return the server's answer: the step run, the error's classification, the run's status
   */
  public CompleteStepResponse completeStep(String stepRunId, Struct output, ErrorReport error) {
    CompleteStepRequest.Builder request = CompleteStepRequest.newBuilder()
        .setRunId(runId).setLeaseToken(leaseToken).setStepRunId(stepRunId)
        .setRequestId(RunstatusClient.newRequestId());
    if (output != null) {
      request.setOutput(output);
    }
    if (error != null) {
      request.setError(error);
    }
    return client.worker().completeStep(request.build());
  }

  /**
   * A step ends with this exception, reported as {@link ErrorReports#of} makes it.
   *
   * @param stepRunId the step run
   * @param error what the step threw
   * @return the server's answer
   */
  public CompleteStepResponse completeStep(String stepRunId, Throwable error) {
    return completeStep(stepRunId, null, ErrorReports.of(error));
  }

  /**
   * The run ends; its status follows from the leaf rule, or from a run-level error.
   *
   * @param error a run-level error (e.g. a TimeoutError the worker saw); null if none
   * @return the server's answer, the run with its final status
   */
  public CompleteRunResponse completeRun(ErrorReport error) {
    CompleteRunRequest.Builder request = CompleteRunRequest.newBuilder()
        .setRunId(runId).setLeaseToken(leaseToken).setRequestId(RunstatusClient.newRequestId());
    if (error != null) {
      request.setError(error);
    }
    return client.worker().completeRun(request.build());
  }

  /**
   * The run ends without a run-level error.
   *
   * @return the server's answer, the run with its final status
   */
  public CompleteRunResponse completeRun() {
    return completeRun(null);
  }

  /**
   * Extends the lease; the answer's {@code stop} says to stop work on the run (it was cancelled
   * or has otherwise ended).
   *
   * @return the server's answer
   */
  public HeartbeatResponse heartbeat() {
    return client.worker().heartbeat(HeartbeatRequest.newBuilder()
        .setRunId(runId).setLeaseToken(leaseToken).build());
  }
}
