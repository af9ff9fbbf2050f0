package dev.runstatus.client;

import com.google.protobuf.Any;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.Status;
import dev.runstatus.v1.ErrorReason;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.List;
import java.util.Optional;

/**
 * The rich error details the server attaches to a failed call ({@code grpc-status-details-bin}):
 * a {@code google.rpc.ErrorInfo} with a reason such as "EDGE_CONDITION_NOT_MET" and metadata such as
 * {@code current_status}.
 *
 * <p>The reason is one of the contract's {@link ErrorReason} values (error_reason.proto), sent as
 * the value's name without the {@code ERROR_REASON_} prefix; {@link #parseReason} and
 * {@link #wireReason} convert between the two, and {@link #reasonOf} gives the reason of a failed
 * call to branch on: {@code if (ErrorDetails.reasonOf(e) == ErrorReason.ERROR_REASON_RUN_ENDED)}.
 *
 * <p>Bad input (INVALID_ARGUMENT) also carries a {@code google.rpc.BadRequest} naming every wrong
 * field: {@link #fieldViolations} lists them ({@code field} is the field's path, e.g.
 * "work_order.input", {@code description} what is wrong with it).
 */
public final class ErrorDetails {
  /** What every ErrorReason name starts with, and its wire form does not. */
  static final String REASON_PREFIX = "ERROR_REASON_";

  private ErrorDetails() {}

  /**
   * An ErrorInfo.reason ("RUN_ENDED") as its ErrorReason ({@code ERROR_REASON_RUN_ENDED}).
   * {@code ERROR_REASON_UNSPECIFIED} for null, "", "UNSPECIFIED", a string that already starts
   * with "ERROR_REASON_", or a reason this client does not know (a newer server's); never
   * {@code UNRECOGNIZED}. The match is exact (case-sensitive).
   *
   * @param wire the reason as ErrorInfo says it, e.g. "RUN_ENDED"
   * @return the ErrorReason
   */
  public static ErrorReason parseReason(String wire) {
    if (wire == null || wire.isEmpty() || wire.startsWith(REASON_PREFIX) || wire.equals("UNSPECIFIED")) {
      return ErrorReason.ERROR_REASON_UNSPECIFIED;
    }
    EnumValueDescriptor value = ErrorReason.getDescriptor().findValueByName(REASON_PREFIX + wire);
    return value == null ? ErrorReason.ERROR_REASON_UNSPECIFIED : ErrorReason.valueOf(value);
  }

  /**
   * What ErrorInfo.reason says for an ErrorReason: its name without the prefix, e.g. "RUN_ENDED"
   * for {@code ERROR_REASON_RUN_ENDED} ("UNSPECIFIED" for {@code ERROR_REASON_UNSPECIFIED}, as the
   * other clients say); "" for {@code UNRECOGNIZED} (a number this build's enum does not have).
   *
   * @param reason the reason
   * @return the wire form
   */
  public static String wireReason(ErrorReason reason) {
    if (reason == null || reason == ErrorReason.UNRECOGNIZED) {
      return "";
    }
    String name = reason.getValueDescriptor().getName();
    return name.startsWith(REASON_PREFIX) ? name.substring(REASON_PREFIX.length()) : name;
  }

  /**
   * The ErrorReason of a failed call (any Throwable gRPC raised), parsed from its ErrorInfo with
   * {@link #parseReason}; {@code ERROR_REASON_UNSPECIFIED} if it carried no ErrorInfo or names a
   * reason this client does not know.
   *
   * @param error the failed call
   * @return the ErrorReason
   */
  public static ErrorReason reasonOf(Throwable error) {
    if (error == null) {
      return ErrorReason.ERROR_REASON_UNSPECIFIED;
    }
    return parseReason(findErrorInfo(error).map(ErrorInfo::getReason).orElse(""));
  }

  /**
   * The ErrorInfo of a failed call; the empty default if the call carried none.
   *
   * @param e the failed call
   * @return the ErrorInfo
   */
  public static ErrorInfo errorInfo(StatusRuntimeException e) {
    return findErrorInfo(e).orElse(ErrorInfo.getDefaultInstance());
  }

  /**
   * The ErrorInfo of a failed call (any Throwable gRPC raised), if it carried one.
   *
   * @param e the failed call
   * @return the ErrorInfo, if any
   */
  public static Optional<ErrorInfo> findErrorInfo(Throwable e) {
    Status status = StatusProto.fromThrowable(e);
    if (status == null) {
      return Optional.empty();
    }
    for (Any detail : status.getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        try {
          return Optional.of(detail.unpack(ErrorInfo.class));
        } catch (InvalidProtocolBufferException malformed) {
          return Optional.empty();
        }
      }
    }
    return Optional.empty();
  }

  /**
   * The ErrorInfo's reason, e.g. "EDGE_CONDITION_NOT_MET"; empty if none.
   *
   * @param e the failed call
   * @return the reason
   */
  public static String reason(StatusRuntimeException e) {
    return errorInfo(e).getReason();
  }

  /**
   * An ErrorInfo metadata value, e.g. {@code metadata(e, "current_status")}.
   *
   * @param e the failed call
   * @param key the metadata key, e.g. "current_status"
   * @return the value, if any
   */
  public static Optional<String> metadata(StatusRuntimeException e, String key) {
    return Optional.ofNullable(errorInfo(e).getMetadataMap().get(key));
  }

  /**
   * The {@code google.rpc.BadRequest} of a failed call (any Throwable gRPC raised), if it carried
   * one.
   *
   * @param e the failure
   * @return its BadRequest, or empty
   */
  public static Optional<BadRequest> badRequest(Throwable e) {
    Status status = e == null ? null : StatusProto.fromThrowable(e);
    if (status == null) {
      return Optional.empty();
    }
    for (Any detail : status.getDetailsList()) {
      if (detail.is(BadRequest.class)) {
        try {
          return Optional.of(detail.unpack(BadRequest.class));
        } catch (InvalidProtocolBufferException malformed) {
          return Optional.empty();
        }
      }
    }
    return Optional.empty();
  }

  /**
   * Every wrong field a refused request named (its BadRequest's field violations), in the
   * server's order; empty if the call carried no BadRequest.
   *
   * @param e the failure, usually INVALID_ARGUMENT
   * @return the field violations
   */
  public static List<BadRequest.FieldViolation> fieldViolations(Throwable e) {
    return badRequest(e).map(BadRequest::getFieldViolationsList).orElse(List.of());
  }
}
