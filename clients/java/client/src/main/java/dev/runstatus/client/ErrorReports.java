package dev.runstatus.client;

import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.ErrorSeverity;
import dev.runstatus.v1.ErrorSource;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * An exception as the server classifies it (error.proto's {@code ErrorReport}): its class's simple
 * name ({@code NullPointerException}, which the alias table knows as a TypeError), its message and
 * stack, language "java", and, from an exception that implements {@link ReportedError}, the
 * name it gives instead ({@code reportedName}), the wrapped error's class ({@code subtype}) and
 * the runtime's verdict ({@code severity}; {@link #parseSeverity} reads one from words). As the
 * Python worker's reports; fields are cut to the server's limits in UTF-8 bytes.
 */
public final class ErrorReports {
  static final int NAME_BYTES = 256;
  static final int MESSAGE_BYTES = 60_000;
  static final int STACK_BYTES = 200_000;

  private ErrorReports() {}

  /**
   * The report of an exception thrown by job code ({@code ERROR_SOURCE_JOB}: a name the server
   * does not know is a JobError, FAILED).
   *
   * @param error the exception
   * @return its report
   */
  public static ErrorReport of(Throwable error) {
    return of(error, ErrorSource.ERROR_SOURCE_JOB);
  }

  /**
   * The report of an exception, from the given source ({@code ERROR_SOURCE_RUNTIME}: the worker or
   * runtime around the job, where an unknown name is an EXCEPTION).
   *
   * @param error the exception
   * @param source where it came from
   * @return its report
   */
  public static ErrorReport of(Throwable error, ErrorSource source) {
    String name = error.getClass().getSimpleName();
    if (name.isEmpty()) {
      name = error.getClass().getName(); // an anonymous class
    }
    String subtype = "";
    ErrorSeverity severity = ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED;
    if (error instanceof ReportedError reported) {
      if (reported.reportedName() != null && !reported.reportedName().isEmpty()) {
        name = reported.reportedName();
      }
      subtype = reported.subtype() == null ? "" : reported.subtype();
      severity = reported.severity() == null || reported.severity() == ErrorSeverity.UNRECOGNIZED
          ? ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED : reported.severity();
    }
    StringWriter stack = new StringWriter();
    error.printStackTrace(new PrintWriter(stack));
    return ErrorReport.newBuilder()
        .setName(utf8Head(name, NAME_BYTES))
        .setMessage(utf8Head(error.getMessage() == null ? "" : error.getMessage(), MESSAGE_BYTES))
        .setSource(source)
        .setLanguage("java")
        .setStack(utf8Tail(stack.toString(), STACK_BYTES))
        .setSubtype(utf8Head(subtype, NAME_BYTES))
        .setSeverity(severity)
        .build();
  }

  /**
   * A runtime's verdict as the Python and TypeScript clients take it: OpenFn's word ("crash"),
   * the short enum name ("CRASH") or the full one ("ERROR_SEVERITY_CRASH"), in any case and with
   * spaces around; null, empty and "-" (OpenFn's "none given") are none.
   *
   * @param severity the verdict in words
   * @return the verdict; {@code ERROR_SEVERITY_UNSPECIFIED} for none
   * @throws IllegalArgumentException for any other word
   */
  public static ErrorSeverity parseSeverity(String severity) {
    String name = severity == null ? "" : severity.strip().toUpperCase(Locale.ROOT);
    if (name.isEmpty() || name.equals("-")) {
      return ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED;
    }
    if (!name.startsWith("ERROR_SEVERITY_")) {
      name = "ERROR_SEVERITY_" + name;
    }
    for (ErrorSeverity value : ErrorSeverity.values()) {
      if (value != ErrorSeverity.UNRECOGNIZED && value != ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED
          && value.name().equals(name)) {
        return value;
      }
    }
    throw new IllegalArgumentException("severity '" + severity + "': want fail, crash, kill or exception");
  }

  /** The longest head of the text within this many UTF-8 bytes, never cut inside a character. */
  static String utf8Head(String text, int limit) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    if (bytes.length <= limit) {
      return text;
    }
    return decodeWhole(ByteBuffer.wrap(bytes, 0, limit));
  }

  /** The longest tail of the text within this many UTF-8 bytes, never cut inside a character. */
  static String utf8Tail(String text, int limit) {
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    if (bytes.length <= limit) {
      return text;
    }
    int start = bytes.length - limit;
    while (start < bytes.length && (bytes[start] & 0xC0) == 0x80) {
      start++; // skip the continuation bytes of a character cut at the front
    }
    return new String(bytes, start, bytes.length - start, StandardCharsets.UTF_8);
  }

  private static String decodeWhole(ByteBuffer bytes) {
    // A character cut at the end is dropped (IGNORE), as Python's decode(errors="ignore").
    CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder()
        .onMalformedInput(CodingErrorAction.IGNORE)
        .onUnmappableCharacter(CodingErrorAction.IGNORE);
    CharBuffer out = CharBuffer.allocate(bytes.remaining());
    decoder.decode(bytes, out, true);
    decoder.flush(out);
    return out.flip().toString();
  }
}
