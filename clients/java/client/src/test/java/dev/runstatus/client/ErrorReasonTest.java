package dev.runstatus.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Any;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.rpc.Code;
import com.google.rpc.ErrorInfo;
import dev.runstatus.v1.ErrorReason;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import org.junit.jupiter.api.Test;

/** ErrorDetails.parseReason / wireReason / reasonOf against the generated ErrorReason enum. */
class ErrorReasonTest {
  private static StatusRuntimeException refusal(String reason) {
    return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
        .setCode(Code.FAILED_PRECONDITION_VALUE)
        .setMessage("refused")
        .addDetails(Any.pack(ErrorInfo.newBuilder().setReason(reason).setDomain("runstatus.v1").build()))
        .build());
  }

  @Test
  void everyValueRoundTripsThroughItsWireName() {
    int known = 0;
    for (EnumValueDescriptor value : ErrorReason.getDescriptor().getValues()) {
      if (value.getNumber() == 0) {
        continue;
      }
      ErrorReason reason = ErrorReason.valueOf(value);
      String wire = ErrorDetails.wireReason(reason);
      assertEquals(value.getName(), "ERROR_REASON_" + wire);
      assertFalse(wire.startsWith("ERROR_REASON_"), wire);
      assertEquals(reason, ErrorDetails.parseReason(wire), wire);
      known++;
    }
    assertTrue(known >= 34, "only " + known + " reasons");
  }

  @Test
  void knownWireNames() {
    assertEquals(ErrorReason.ERROR_REASON_RUN_ENDED, ErrorDetails.parseReason("RUN_ENDED"));
    assertEquals("RUN_ENDED", ErrorDetails.wireReason(ErrorReason.ERROR_REASON_RUN_ENDED));
    assertEquals(ErrorReason.ERROR_REASON_INVALID_ARGUMENT, ErrorDetails.parseReason("INVALID_ARGUMENT"));
    assertEquals(ErrorReason.ERROR_REASON_INTERNAL, ErrorDetails.parseReason("INTERNAL"));
  }

  @Test
  void unknownsParseAsUnspecified() {
    for (String wire : new String[] {
        null, "", "NOT_A_REASON", "run_ended", "ERROR_REASON_RUN_ENDED", "UNSPECIFIED",
        "ERROR_REASON_UNSPECIFIED", "UNRECOGNIZED", " RUN_ENDED", "RUN_ENDED "}) {
      assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, ErrorDetails.parseReason(wire), "'" + wire + "'");
    }
  }

  @Test
  void wireOfUnspecifiedAndUnrecognized() {
    assertEquals("UNSPECIFIED", ErrorDetails.wireReason(ErrorReason.ERROR_REASON_UNSPECIFIED));
    assertEquals("", ErrorDetails.wireReason(ErrorReason.UNRECOGNIZED));
  }

  @Test
  void reasonOfAFailedCall() {
    assertEquals(ErrorReason.ERROR_REASON_EDGE_CONDITION_NOT_MET,
        ErrorDetails.reasonOf(refusal("EDGE_CONDITION_NOT_MET")));
    assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, ErrorDetails.reasonOf(refusal("FROM_A_NEWER_SERVER")));
    assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED,
        ErrorDetails.reasonOf(Status.NOT_FOUND.withDescription("no such run").asRuntimeException()));
    assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, ErrorDetails.reasonOf(new IllegalStateException("not gRPC")));
    assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, ErrorDetails.reasonOf(null));
  }
}
