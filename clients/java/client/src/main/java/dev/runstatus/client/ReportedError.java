package dev.runstatus.client;

import dev.runstatus.v1.ErrorSeverity;

/**
 * What an exception may say about itself beyond its class name, the way OpenFn's runtime errors
 * do: the class of the error it wraps ({@code subtype}, e.g. "TypeError" inside a "RuntimeError")
 * and the runtime's own verdict ({@code severity}). {@link ErrorReports#of} reads both from an
 * exception that implements this; the server classifies the subtype before the name, and the
 * severity after every name.
 */
public interface ReportedError {
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
