package dev.runstatus.client;

import dev.runstatus.v1.ErrorSeverity;
import java.util.Objects;

/**
 * An exception a step may throw to say what it wraps and how bad it is (see
 * {@link ReportedError}); it is reported with the name "StepError", its subtype and its severity.
 * Subclass it to report another name: the report names the exception's class; or give the name,
 * and the severity in the runtime's own words, as the Python and TypeScript helpers take them,
 * with {@link #of(String, String, String, String)}.
 *
 * <pre>{@code
 * throw new StepError("state too large", "OomError", ErrorSeverity.ERROR_SEVERITY_KILL);
 * // An uncaught error in OpenFn job code, as its engine reports it: CRASHED.
 * throw StepError.of("ExecutionError", "thrown from a timer", "", "crash");
 * }</pre>
 */
public class StepError extends Exception implements ReportedError {
  private static final long serialVersionUID = 1L;
  /** The wrapped error's class name; empty if none. */
  private final String subtype;
  /** The runtime's verdict; ERROR_SEVERITY_UNSPECIFIED if none. */
  private final ErrorSeverity severity;
  /** The name to report; empty: the class's simple name. */
  private final String name;

  /**
   * An error wrapping one of class {@code subtype}, with the runtime's verdict.
   *
   * @param message what went wrong
   * @param subtype the wrapped error's class name; empty if none
   * @param severity the verdict; {@code ERROR_SEVERITY_UNSPECIFIED} if none
   */
  public StepError(String message, String subtype, ErrorSeverity severity) {
    this(message, subtype, severity, null);
  }

  /**
   * An error wrapping {@code cause}, of class {@code subtype}, with the runtime's verdict.
   *
   * @param message what went wrong
   * @param subtype the wrapped error's class name; empty if none
   * @param severity the verdict; {@code ERROR_SEVERITY_UNSPECIFIED} if none
   * @param cause the wrapped exception, if any
   */
  public StepError(String message, String subtype, ErrorSeverity severity, Throwable cause) {
    this("", message, subtype, severity, cause);
  }

  private StepError(String name, String message, String subtype, ErrorSeverity severity, Throwable cause) {
    super(message, cause);
    this.name = Objects.requireNonNullElse(name, "");
    this.subtype = Objects.requireNonNullElse(subtype, "");
    this.severity = Objects.requireNonNullElse(severity, ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED);
  }

  /**
   * An error named {@code name} (the report's name, as thrown by a runtime: "ExecutionError",
   * "RuntimeError"), wrapping one of class {@code subtype}, with the runtime's verdict in its own
   * words: "fail", "crash", "kill" or "exception" (or "CRASH", "ERROR_SEVERITY_CRASH"; empty,
   * null or "-" for none; a word the server does not know is none, as the Python and TypeScript
   * workers read an error's severity).
   *
   * @param name the name to report; empty: "StepError"
   * @param message what went wrong
   * @param subtype the wrapped error's class name; empty if none
   * @param severity the verdict in words
   * @return the error
   */
  public static StepError of(String name, String message, String subtype, String severity) {
    return of(name, message, subtype, severity, null);
  }

  /**
   * As {@link #of(String, String, String, String)}, wrapping {@code cause}.
   *
   * @param name the name to report; empty: "StepError"
   * @param message what went wrong
   * @param subtype the wrapped error's class name; empty if none
   * @param severity the verdict in words
   * @param cause the wrapped exception, if any
   * @return the error
   */
  public static StepError of(String name, String message, String subtype, String severity, Throwable cause) {
    ErrorSeverity parsed;
    try {
      parsed = ErrorReports.parseSeverity(severity);
    } catch (IllegalArgumentException unknown) {
      parsed = ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED;
    }
    return new StepError(name, message, subtype, parsed, cause);
  }

  @Override
  public String reportedName() {
    return name;
  }

  @Override
  public String subtype() {
    return subtype;
  }

  @Override
  public ErrorSeverity severity() {
    return severity;
  }
}
