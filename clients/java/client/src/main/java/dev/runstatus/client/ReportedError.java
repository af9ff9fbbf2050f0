package dev.runstatus.client;

import dev.runstatus.v1.ErrorSeverity;

/**
 * What an exception may say about itself beyond its class name, the way OpenFn's runtime errors
 * do: the class of the error it wraps ({@code subtype}, e.g. "TypeError" inside a "RuntimeError")
 * and the runtime's own verdict ({@code severity}). {@link ErrorReports#of} reads both from an
 * exception that implements this; the server classifies the subtype before the name, and the
 * severity after every name but an OpenFn class's alias, whose default an explicit, different
 * severity overrides (an ExecutionError with severity crash is CRASHED).
 */
public interface ReportedError {
  /**
   * The name to report the error by, when it is not the exception's class's simple name: an
   * engine's class carried as data (OpenFn's "ExecutionError", "RuntimeError"), as the Go
   * client's {@code StepError.Name} and a TypeScript error's {@code name}.
   *
   * @return the name; empty: the class's simple name
   */
  default String reportedName() {
    return "";
  }

  /**
   * The wrapped error's class name.
   *
   * @return the subtype; empty if none
   */
  default String subtype() {
    return "";
  }

  /**
   * The runtime's verdict on the error.
   *
   * @return the severity; {@code ERROR_SEVERITY_UNSPECIFIED} if none
   */
  default ErrorSeverity severity() {
    return ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED;
  }
}
