package dev.runstatus.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import com.google.rpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.Optional;

/**
 * The rich error details the server attaches to a failed call ({@code grpc-status-details-bin}):
 * a {@code google.rpc.ErrorInfo} with a reason such as "EDGE_CONDITION_NOT_MET" and metadata such as
 * {@code current_status}.
 */
public final class ErrorDetails {
  private ErrorDetails() {}

  /** The ErrorInfo of a failed call; the empty default if the call carried none. */
  public static ErrorInfo errorInfo(StatusRuntimeException e) {
    return findErrorInfo(e).orElse(ErrorInfo.getDefaultInstance());
  }

  /** The ErrorInfo of a failed call (any Throwable gRPC raised), if it carried one. */
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

  /** The ErrorInfo's reason, e.g. "EDGE_CONDITION_NOT_MET"; empty if none. */
  public static String reason(StatusRuntimeException e) {
    return errorInfo(e).getReason();
  }

  /** An ErrorInfo metadata value, e.g. {@code metadata(e, "current_status")}. */
  public static Optional<String> metadata(StatusRuntimeException e, String key) {
    return Optional.ofNullable(errorInfo(e).getMetadataMap().get(key));
  }
}
