package dev.runstatus.client;

import com.google.protobuf.Descriptors.EnumValueDescriptor;
import dev.runstatus.v1.ErrorType;
import dev.runstatus.v1.ErrorTypeInfo;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.StatusInfo;
import dev.runstatus.v1.StatusProto;
import java.util.Optional;

/**
 * The status table, read from the generated descriptors: every {@link RunStatus} value carries a
 * {@link StatusInfo} in its {@code runstatus.v1.status_info} option, every {@link ErrorType} value an
 * {@link ErrorTypeInfo} in its {@code runstatus.v1.error_type_info} option (see status.proto). Nothing
 * here is typed in again; a value without the option (the UNSPECIFIED ones, or a value this build does
 * not know) gets the empty default.
 */
public final class StatusTable {
  private StatusTable() {}

  /**
   * The table's row for a run status; the default (empty) StatusInfo for UNSPECIFIED or UNRECOGNIZED.
   *
   * @param status the run status
   * @return its StatusInfo
   */
  public static StatusInfo statusInfo(RunStatus status) {
    if (status == null || status == RunStatus.UNRECOGNIZED) {
      return StatusInfo.getDefaultInstance();
    }
    return status.getValueDescriptor().getOptions().getExtension(StatusProto.statusInfo);
  }

  /**
   * Whether the status carries a row of the table at all (false for UNSPECIFIED).
   *
   * @param status the run status
   * @return whether it has a row
   */
  public static boolean hasStatusInfo(RunStatus status) {
    return status != null
        && status != RunStatus.UNRECOGNIZED
        && status.getValueDescriptor().getOptions().hasExtension(StatusProto.statusInfo);
  }

  /**
   * The seed's chip, an emoji such as "🔴"; empty if the status has no row.
   *
   * @param status the run status
   * @return the chip
   */
  public static String chip(RunStatus status) {
    return statusInfo(status).getChip();
  }

  /**
   * The chip's color as a word, e.g. "red".
   *
   * @param status the run status
   * @return the color
   */
  public static String color(RunStatus status) {
    return statusInfo(status).getColor();
  }

  /**
   * The seed's spelling of the status, e.g. "Failed".
   *
   * @param status the run status
   * @return the label
   */
  public static String label(RunStatus status) {
    return statusInfo(status).getLabel();
  }

  /**
   * The seed's description of the status.
   *
   * @param status the run status
   * @return the description
   */
  public static String description(RunStatus status) {
    return statusInfo(status).getDescription();
  }

  /**
   * A terminal status never changes again (a LOST run may be corrected once).
   *
   * @param status the run status
   * @return whether it is terminal
   */
  public static boolean isTerminal(RunStatus status) {
    return statusInfo(status).getTerminal();
  }

  /**
   * The instance admin is notified when a run ends in this status.
   *
   * @param status the run status
   * @return whether the admin is notified
   */
  public static boolean notifiesAdmin(RunStatus status) {
    return statusInfo(status).getNotifiesAdmin();
  }

  /**
   * The seed's "Abort Run?" column as a boolean: true for "Yes"; false for "No" and for "-" (the
   * column does not apply). Use {@link #abortsRunIfSet} to tell "-" from "No".
   *
   * @param status the run status
   * @return the column as a boolean
   */
  public static boolean abortsRun(RunStatus status) {
    return statusInfo(status).getAbortsRun();
  }

  /**
   * The seed's "Abort Run?" column: true for "Yes", false for "No", empty for "-".
   *
   * @param status the run status
   * @return the column, empty for "-"
   */
  public static Optional<Boolean> abortsRunIfSet(RunStatus status) {
    StatusInfo info = statusInfo(status);
    return info.hasAbortsRun() ? Optional.of(info.getAbortsRun()) : Optional.empty();
  }

  /**
   * The "Abort Run?" cell as the seed writes it: "Yes", "No" or "-".
   *
   * @param status the run status
   * @return "Yes", "No" or "-"
   */
  public static String abortsRunCell(RunStatus status) {
    return abortsRunIfSet(status).map(aborts -> aborts ? "Yes" : "No").orElse("-");
  }

  /**
   * The table's row for an error type; the default (empty) ErrorTypeInfo for UNSPECIFIED or UNRECOGNIZED.
   *
   * @param errorType the error type
   * @return its ErrorTypeInfo
   */
  public static ErrorTypeInfo errorTypeInfo(ErrorType errorType) {
    if (errorType == null || errorType == ErrorType.UNRECOGNIZED) {
      return ErrorTypeInfo.getDefaultInstance();
    }
    return errorType.getValueDescriptor().getOptions().getExtension(StatusProto.errorTypeInfo);
  }

  /**
   * The run status an error type leads to, e.g. KILLED for IMPORT_ERROR; UNSPECIFIED if none.
   *
   * @param errorType the error type
   * @return the run status
   */
  public static RunStatus statusOf(ErrorType errorType) {
    return errorTypeInfo(errorType).getStatus();
  }

  /**
   * The seed's spelling of an error type, e.g. "OomError"; empty if none.
   *
   * @param errorType the error type
   * @return the name
   */
  public static String errorTypeName(ErrorType errorType) {
    return errorTypeInfo(errorType).getName();
  }

  /**
   * The seed's example of an error type.
   *
   * @param errorType the error type
   * @return the example
   */
  public static String errorTypeExample(ErrorType errorType) {
    return errorTypeInfo(errorType).getExample();
  }

  /**
   * The run status with this full proto name (e.g. "RUN_STATUS_FAILED"), if there is one.
   *
   * @param protoName the value's full proto name
   * @return the value, if there is one
   */
  public static Optional<RunStatus> runStatus(String protoName) {
    EnumValueDescriptor value = RunStatus.getDescriptor().findValueByName(protoName);
    return value == null ? Optional.empty() : Optional.of(RunStatus.valueOf(value));
  }

  /**
   * The error type with this full proto name (e.g. "ERROR_TYPE_OOM_ERROR"), if there is one.
   *
   * @param protoName the value's full proto name
   * @return the value, if there is one
   */
  public static Optional<ErrorType> errorType(String protoName) {
    EnumValueDescriptor value = ErrorType.getDescriptor().findValueByName(protoName);
    return value == null ? Optional.empty() : Optional.of(ErrorType.valueOf(value));
  }
}
