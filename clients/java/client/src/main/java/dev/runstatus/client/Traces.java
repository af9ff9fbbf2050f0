package dev.runstatus.client;

import dev.runstatus.v1.Classification;
import dev.runstatus.v1.ClaimedRun;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.RunStatus;

/**
 * The Worker's spans, without OpenTelemetry's types: {@link Tracing} makes them when the client
 * was given an OpenTelemetry instance, {@link #NONE} (nothing) otherwise, so a worker without
 * OpenTelemetry on its classpath never loads a class of it.
 */
interface Traces {
  /** No spans. */
  Traces NONE = new Traces() {};

  /**
   * A run's span ("run WORKFLOW"), current until closed.
   *
   * @param claimed the run as claimed
   * @param workerId the worker executing it
   * @return the span
   */
  default Current run(ClaimedRun claimed, String workerId) {
    return Current.NONE;
  }

  /**
   * A step's span ("step STEP"), a child of the run's, current until closed.
   *
   * @param runId the run
   * @param stepId the step
   * @return the span
   */
  default Current step(String runId, String stepId) {
    return Current.NONE;
  }

  /** A span made current; closing it ends it and makes the one before current again. */
  interface Current extends AutoCloseable {
    /** No span. */
    Current NONE = new Current() {};

    /**
     * The step run the server started for the step.
     *
     * @param stepRunId its id
     */
    default void stepRun(String stepRunId) {}

    /**
     * The step's error (an exception event, status ERROR) and the server's classification of it.
     *
     * @param error what the step threw
     * @param report the error as reported
     * @param classification how the server classified it; null if it did not say
     */
    default void stepFailed(Throwable error, ErrorReport report, Classification classification) {}

    /**
     * The run's status at its end: ERROR unless it succeeded or was cancelled.
     *
     * @param status the run's status
     */
    default void runEnded(RunStatus status) {}

    @Override
    default void close() {}
  }
}
