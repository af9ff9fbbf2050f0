package dev.runstatus.client;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.runstatus.v1.ClaimedRun;
import dev.runstatus.v1.Classification;
import dev.runstatus.v1.CompleteStepResponse;
import dev.runstatus.v1.Edge;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.ErrorSource;
import dev.runstatus.v1.GetRunRequest;
import dev.runstatus.v1.HeartbeatResponse;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.StepRun;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A worker, engine-agnostic, with the Python client's {@code Worker} behaviour: it claims runs,
 * executes a registered function per step, follows the workflow's edges, heartbeats each run in
 * the background at the interval its claim says, and reports every exception for the server to
 * classify. Every report goes through a {@link Lease}, so it carries the lease token and a request
 * id.
 *
 * <pre>{@code
 * Worker worker = new Worker(client, "java-1", "default")
 *     .step("fetch", ctx -> ctx.state().toBuilder().putFields("patient", lookup(ctx.state())).build())
 *     .step("notify", ctx -> { send(ctx.state()); return null; });
 * worker.runUntilIdle();           // or worker.run(Duration.ofSeconds(1)) until worker.stop()
 * }</pre>
 *
 * <p>A step receives the state its upstream step passed on (the work order's input for a root)
 * and returns the state to pass downstream (null: its input, unchanged). A step that throws is
 * reported with the exception's class name (see {@link ErrorReports}), so a
 * NullPointerException is a TypeError (FAILED, the run goes on along ON_FAILURE/ALWAYS edges) and
 * a {@link StepError} with severity crash a CRASHED run (ended at once). A failing step's
 * downstream steps receive its input state with an "error" entry (name, message).
 *
 * <p>When a heartbeat answers {@code stop} (the run was cancelled, or ended otherwise), the thread
 * running the step is interrupted and {@link StepContext#stopRequested} turns true; the worker
 * starts no further step, and the run's outcome is its status on the server.
 *
 * <p>When its client traces ({@link RunstatusClient.Builder#openTelemetry}), the worker makes a
 * span per run ("run WORKFLOW") and per step ("step STEP", a child of the run's), as the Python
 * client's Worker does; each is current while its calls are made (and while the step function
 * runs), so the server's spans of those calls are beneath it. A step's error is recorded on its
 * span (the exception, status ERROR, and the server's classification as
 * {@code runstatus.classification.*}); a run's span ends with {@code runstatus.run_status}, in
 * error unless the run succeeded or was cancelled.
 *
 * <p>A Worker runs one run at a time on the calling thread; use one Worker per thread for more.
 */
public final class Worker {
  private static final Logger LOG = Logger.getLogger(Worker.class.getName());

  /** What executes a step. */
  @FunctionalInterface
  public interface StepFunction {
    /**
     * Executes the step.
     *
     * @param context the step, its run and its input state
     * @return the state to pass downstream (also reported as the step's output); null: the input
     * @throws Exception any failure, reported for the server to classify
     */
    Struct apply(StepContext context) throws Exception;
  }

  /** How an EXPRESSION edge's text is evaluated on a state. */
  @FunctionalInterface
  public interface Condition {
    /**
     * Whether the expression holds.
     *
     * @param state the state the upstream step passed on
     * @return true to follow the edge
     */
    boolean test(Struct state);
  }

  /**
   * What became of a run this worker executed.
   *
   * @param runId the run
   * @param status its status at the end (on the server)
   * @param executed the step ids it started, in order
   */
  public record RunOutcome(String runId, RunStatus status, List<String> executed) {}

  /** What a step function is given. */
  public static final class StepContext {
    private final Lease lease;
    private final String stepId;
    private final String stepRunId;
    private final Struct state;
    private final Gate gate;

    StepContext(Lease lease, String stepId, String stepRunId, Struct state, Gate gate) {
      this.lease = lease;
      this.stepId = stepId;
      this.stepRunId = stepRunId;
      this.state = state;
      this.gate = gate;
    }

    /** @return the step's id */
    public String stepId() {
      return stepId;
    }

    /** @return the id of this step run */
    public String stepRunId() {
      return stepRunId;
    }

    /** @return the run's id */
    public String runId() {
      return lease.runId();
    }

    /** @return the run's lease, e.g. for its claim (workflow, work order) */
    public Lease lease() {
      return lease;
    }

    /** @return the state the upstream step passed on; the work order's input for a root */
    public Struct state() {
      return state;
    }

    /**
     * Whether the server asked to stop work on the run (a heartbeat answered {@code stop}). The
     * step's thread is interrupted too; a step that does not block can poll this instead.
     *
     * @return true once a stop was asked
     */
    public boolean stopRequested() {
      return gate.stopAsked();
    }
  }

  private final RunstatusClient client;
  private final String workerId;
  private final String projectId;
  private final Map<String, StepFunction> steps = new ConcurrentHashMap<>();
  private final Map<String, Condition> conditions = new ConcurrentHashMap<>();
  private final CountDownLatch stopped = new CountDownLatch(1);
  private final Traces traces;

  /**
   * A worker named "java-worker" claiming runs of any project the caller may see.
   *
   * @param client the client to work through
   */
  public Worker(RunstatusClient client) {
    this(client, "java-worker", "");
  }

  /**
   * A worker.
   *
   * @param client the client to work through
   * @param workerId how the worker names itself in claims
   * @param projectId the project whose runs it claims; empty: any the caller may see
   */
  public Worker(RunstatusClient client, String workerId, String projectId) {
    this.client = Objects.requireNonNull(client, "client");
    this.workerId = Objects.requireNonNull(workerId, "workerId");
    this.projectId = Objects.requireNonNull(projectId, "projectId");
    // Tracing (an OpenTelemetry class) is loaded only when the client traces.
    this.traces = client.openTelemetry() == null ? Traces.NONE : new Tracing(client.openTelemetry());
  }

  /**
   * Registers the function that executes a step.
   *
   * @param stepId the step's id in the workflow
   * @param function what executes it
   * @return this worker
   */
  public Worker step(String stepId, StepFunction function) {
    steps.put(Objects.requireNonNull(stepId, "stepId"), Objects.requireNonNull(function, "function"));
    return this;
  }

  /**
   * Registers how an EXPRESSION edge's text is evaluated; an edge whose expression has none is
   * not followed.
   *
   * @param expression the edge's expression, as written in the workflow
   * @param condition how to evaluate it
   * @return this worker
   */
  public Worker condition(String expression, Condition condition) {
    conditions.put(Objects.requireNonNull(expression, "expression"), Objects.requireNonNull(condition, "condition"));
    return this;
  }

  /**
   * Claims one pending run and executes it.
   *
   * @return its outcome; empty if there was none
   */
  public List<RunOutcome> runOnce() {
    return runOnce(1);
  }

  /**
   * Claims up to {@code maxRuns} pending runs and executes them, one after another.
   *
   * @param maxRuns at most this many
   * @return their outcomes; empty if there was none
   */
  public List<RunOutcome> runOnce(int maxRuns) {
    List<RunOutcome> outcomes = new ArrayList<>();
    for (Lease lease : Lease.claim(client, projectId, workerId, maxRuns)) {
      outcomes.add(execute(lease));
    }
    return outcomes;
  }

  /**
   * Claims and executes runs until none is pending.
   *
   * @return the outcomes, in order
   */
  public List<RunOutcome> runUntilIdle() {
    List<RunOutcome> outcomes = new ArrayList<>();
    List<RunOutcome> batch;
    while (!(batch = runOnce()).isEmpty()) {
      outcomes.addAll(batch);
    }
    return outcomes;
  }

  /**
   * Claims and executes runs until {@link #stop} is called, waiting {@code poll} whenever none is
   * pending. A run in progress is finished first.
   *
   * @param poll how long to wait when there is no run
   * @throws InterruptedException if the thread is interrupted while waiting
   */
  public void run(Duration poll) throws InterruptedException {
    while (stopped.getCount() > 0) {
      if (runOnce().isEmpty()) {
        stopped.await(poll.toMillis(), TimeUnit.MILLISECONDS);
      }
    }
  }

  /** Makes {@link #run} return once the run in progress, if any, is done. */
  public void stop() {
    stopped.countDown();
  }

  /**
   * Executes one claimed run: starts it, runs the plan, completes it. A refusal (the run was
   * cancelled, killed by a timeout, or otherwise ended by the server) ends it early; the outcome
   * is then the run's status on the server. Other failures of the calls are thrown.
   *
   * @param lease a lease from a claim ({@link Lease#claim})
   * @return the outcome
   */
  public RunOutcome execute(Lease lease) {
    ClaimedRun claimed = lease.claimed()
        .orElseThrow(() -> new IllegalArgumentException("execute needs the lease of a claim"));
    List<String> executed = new ArrayList<>();
    RunStatus status;
    Gate gate = new Gate(Thread.currentThread());
    Heartbeat heartbeat = new Heartbeat(lease, gate);
    Thread beats = new Thread(heartbeat, "heartbeat-" + lease.runId().substring(0, Math.min(8, lease.runId().length())));
    beats.setDaemon(true);
    beats.start();
    try (Traces.Current span = traces.run(claimed, workerId)) {
      try {
        lease.startRun();
        status = executeSteps(lease, claimed, gate, executed);
        if (status == null) {
          status = lease.completeRun().getRun().getStatus();
        }
      } catch (StopAsked e) {
        status = endedByServer(lease, e.getMessage());
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.FAILED_PRECONDITION) {
          throw e;
        }
        status = endedByServer(lease, e.getStatus().getDescription());
      }
      span.runEnded(status);
    } finally {
      heartbeat.stop();
    }
    return new RunOutcome(lease.runId(), status, List.copyOf(executed));
  }

  private RunStatus endedByServer(Lease lease, String why) {
    LOG.info(() -> "run " + lease.runId() + " ended by the server: " + why);
    return client.workOrders().getRun(GetRunRequest.newBuilder().setRunId(lease.runId()).build())
        .getRun().getStatus();
  }

  /** Where the run is going: a step, the step run that led there, the state it receives. */
  private record Branch(String stepId, String previousStepRunId, Struct state) {}

  /** Runs the plan; returns the run's status if a step aborted it, else null. */
  private RunStatus executeSteps(Lease lease, ClaimedRun claimed, Gate gate, List<String> executed) {
    Deque<Branch> queue = new ArrayDeque<>(starts(claimed));
    while (!queue.isEmpty()) {
      if (gate.stopAsked()) {
        throw new StopAsked();
      }
      Branch branch = queue.removeFirst();
      String stepRunId;
      Struct state;
      CompleteStepResponse answer;
      try (Traces.Current span = traces.step(lease.runId(), branch.stepId())) {
        stepRunId = lease.startStep(branch.stepId(), branch.previousStepRunId()).getStepRun().getId();
        span.stepRun(stepRunId);
        executed.add(branch.stepId());
        Struct output = null;
        ErrorReport error = null;
        Throwable thrown = null;
        try {
          StepFunction function = steps.get(branch.stepId());
          if (function == null) {
            throw new UnregisteredStepException("no function is registered for step '" + branch.stepId() + "'");
          }
          Struct result = invoke(function, new StepContext(lease, branch.stepId(), stepRunId, branch.state(), gate), gate);
          state = output = result != null ? result : branch.state();
        } catch (Throwable e) { // the server classifies every error, OutOfMemoryError among them
          error = ErrorReports.of(e, e instanceof UnregisteredStepException
              ? ErrorSource.ERROR_SOURCE_RUNTIME : ErrorSource.ERROR_SOURCE_JOB);
          state = withError(branch.state(), error);
          thrown = e;
        }
        answer = lease.completeStep(stepRunId, output, error);
        if (thrown != null) {
          Classification classification = answer.hasClassification() ? answer.getClassification() : null;
          span.stepFailed(thrown, error, classification);
        }
      }
      if (answer.getRunStatus() != RunStatus.RUN_STATUS_RUNNING) {
        return answer.getRunStatus(); // an abort ended the run at once
      }
      Struct passed = state;
      for (String target : Plan.nextSteps(claimed.getWorkflow(), answer.getStepRun(), edge -> holds(edge, passed))) {
        queue.addLast(new Branch(target, stepRunId, passed));
      }
    }
    return null;
  }

  private static Struct invoke(StepFunction function, StepContext context, Gate gate) throws Exception {
    gate.enter();
    try {
      return function.apply(context);
    } finally {
      gate.leave();
    }
  }

  /**
   * Where the plan starts, with the work order's input; a retry's start step led to by a reused
   * step run gets that step run's output (the input if it had none).
   */
  private static List<Branch> starts(ClaimedRun claimed) {
    Struct input = claimed.getInput();
    List<Branch> branches = new ArrayList<>();
    for (Plan.Start start : Plan.starts(claimed.getRun(), claimed.getWorkflow())) {
      StepRun previous = start.previous();
      if (previous == null) {
        branches.add(new Branch(start.stepId(), "", input));
      } else {
        Struct state = previous.getOutput().getFieldsCount() > 0 ? previous.getOutput() : input;
        branches.add(new Branch(start.stepId(), previous.getId(), state));
      }
    }
    return branches;
  }

  private static Struct withError(Struct state, ErrorReport error) {
    Struct described = Struct.newBuilder()
        .putFields("name", Value.newBuilder().setStringValue(error.getName()).build())
        .putFields("message", Value.newBuilder().setStringValue(error.getMessage()).build())
        .build();
    return state.toBuilder().putFields("error", Value.newBuilder().setStructValue(described).build()).build();
  }

  private boolean holds(Edge edge, Struct state) {
    Condition condition = conditions.get(edge.getExpression());
    if (condition == null) {
      LOG.warning(() -> "no condition registered for expression '" + edge.getExpression() + "'; edge not followed");
      return false;
    }
    return condition.test(state);
  }

  /** The server asked to stop work on the run. */
  private static final class StopAsked extends RuntimeException {
    private static final long serialVersionUID = 1L;

    StopAsked() {
      super("the server asked this worker to stop", null, false, false);
    }
  }

  /**
   * A step the worker cannot run (no function registered): the runtime's fault, not the job's,
   * so it is reported with source RUNTIME (an EXCEPTION run).
   */
  public static final class UnregisteredStepException extends Exception {
    private static final long serialVersionUID = 1L;

    UnregisteredStepException(String message) {
      super(message);
    }
  }

  /**
   * Whether a stop was asked, and the interruption of the worker's thread while (and only while)
   * a step function runs on it, so a stop never interrupts the worker's own calls.
   */
  static final class Gate {
    private final Thread worker;
    private volatile boolean stopAsked;
    private boolean inStep;
    private boolean interrupted;

    Gate(Thread worker) {
      this.worker = worker;
    }

    boolean stopAsked() {
      return stopAsked;
    }

    synchronized void enter() {
      inStep = true;
      if (stopAsked) {
        interrupt();
      }
    }

    synchronized void leave() {
      inStep = false;
      // Clear the interruption meant for the step; keep one that came from anyone else.
      if (Thread.interrupted() && !interrupted) {
        worker.interrupt();
      }
      interrupted = false;
    }

    synchronized void askStop() {
      stopAsked = true;
      if (inStep) {
        interrupt();
      }
    }

    private void interrupt() {
      if (!interrupted) {
        interrupted = true;
        worker.interrupt();
      }
    }
  }

  /** Heartbeats a run until stopped; a {@code stop} answer asks the gate to stop the step. */
  static final class Heartbeat implements Runnable {
    private final Lease lease;
    private final Gate gate;
    private final long intervalNanos;
    private final CountDownLatch done = new CountDownLatch(1);

    Heartbeat(Lease lease, Gate gate) {
      this.lease = lease;
      this.gate = gate;
      this.intervalNanos = lease.heartbeatInterval().toNanos();
    }

    @Override
    public void run() {
      try {
        while (!done.await(intervalNanos, TimeUnit.NANOSECONDS)) {
          HeartbeatResponse answer;
          try {
            answer = lease.heartbeat();
          } catch (RuntimeException e) { // a missed heartbeat is retried at the next beat
            LOG.log(Level.WARNING, "heartbeat for run " + lease.runId() + " failed: " + e);
            continue;
          }
          if (answer.getStop()) {
            gate.askStop();
            return;
          }
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }

    void stop() {
      done.countDown();
    }
  }
}
