package dev.runstatus.client;

import dev.runstatus.v1.ErrorSeverity;
import java.util.Objects;

/**
 * An exception a step may throw to say what it wraps and how bad it is (see
 * {@link ReportedError}); it is reported with the name "StepError", its subtype and its severity.
 * Subclass it to report another name: the report names the exception's class.
 *
 * <pre>{@code
 * throw new StepError("state too large", "OomError", ErrorSeverity.ERROR_SEVERITY_KILL);
 * }</pre>
 */
public class StepError extends Exception implements ReportedError {
  private static final long serialVersionUID = 1L;
  /** The wrapped error's class name; empty if none. */
  private final String subtype;
  /** The runtime's verdict; ERROR_SEVERITY_UNSPECIFIED if none. */
  private final ErrorSeverity severity;

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
    super(message, cause);
    this.subtype = Objects.requireNonNullElse(subtype, "");
    this.severity = Objects.requireNonNullElse(severity, ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED);
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
