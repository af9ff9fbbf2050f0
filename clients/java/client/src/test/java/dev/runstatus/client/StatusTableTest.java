package dev.runstatus.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.runstatus.v1.ErrorType;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.StatusInfo;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The status table as the generated descriptors carry it; no server needed. */
class StatusTableTest {
  @Test
  void chipsColorsAndLabels() {
    assertEquals("🔴", StatusTable.chip(RunStatus.RUN_STATUS_FAILED));
    assertEquals("🟢", StatusTable.chip(RunStatus.RUN_STATUS_SUCCESS));
    assertEquals("🟠", StatusTable.chip(RunStatus.RUN_STATUS_CRASHED));
    assertEquals("🟡", StatusTable.chip(RunStatus.RUN_STATUS_KILLED));
    assertEquals("⚫", StatusTable.chip(RunStatus.RUN_STATUS_LOST));
    assertEquals("red", StatusTable.color(RunStatus.RUN_STATUS_FAILED));
    assertEquals("Cancelled", StatusTable.label(RunStatus.RUN_STATUS_CANCELLED));
    assertTrue(StatusTable.description(RunStatus.RUN_STATUS_REJECTED).contains("run limit"));
  }

  @Test
  void terminalAndAdmin() {
    assertFalse(StatusTable.isTerminal(RunStatus.RUN_STATUS_PENDING));
    assertFalse(StatusTable.isTerminal(RunStatus.RUN_STATUS_RUNNING));
    assertTrue(StatusTable.isTerminal(RunStatus.RUN_STATUS_SUCCESS));
    assertTrue(StatusTable.isTerminal(RunStatus.RUN_STATUS_REJECTED));
    assertTrue(StatusTable.notifiesAdmin(RunStatus.RUN_STATUS_EXCEPTION));
    assertTrue(StatusTable.notifiesAdmin(RunStatus.RUN_STATUS_LOST));
    assertFalse(StatusTable.notifiesAdmin(RunStatus.RUN_STATUS_FAILED));
  }

  @Test
  void abortsRunTellsUnsetFromFalse() {
    assertTrue(StatusTable.abortsRun(RunStatus.RUN_STATUS_CRASHED));
    assertEquals(Optional.of(true), StatusTable.abortsRunIfSet(RunStatus.RUN_STATUS_CRASHED));
    assertEquals("Yes", StatusTable.abortsRunCell(RunStatus.RUN_STATUS_KILLED));

    assertFalse(StatusTable.abortsRun(RunStatus.RUN_STATUS_FAILED));
    assertEquals(Optional.of(false), StatusTable.abortsRunIfSet(RunStatus.RUN_STATUS_FAILED));
    assertEquals("No", StatusTable.abortsRunCell(RunStatus.RUN_STATUS_FAILED));

    // The seed's "-": the column does not apply.
    assertFalse(StatusTable.abortsRun(RunStatus.RUN_STATUS_SUCCESS));
    assertEquals(Optional.empty(), StatusTable.abortsRunIfSet(RunStatus.RUN_STATUS_SUCCESS));
    assertEquals("-", StatusTable.abortsRunCell(RunStatus.RUN_STATUS_PENDING));
  }

  @Test
  void errorTypes() {
    assertEquals(RunStatus.RUN_STATUS_KILLED, StatusTable.statusOf(ErrorType.ERROR_TYPE_IMPORT_ERROR));
    assertEquals(RunStatus.RUN_STATUS_FAILED, StatusTable.statusOf(ErrorType.ERROR_TYPE_TYPE_ERROR));
    assertEquals(RunStatus.RUN_STATUS_CRASHED, StatusTable.statusOf(ErrorType.ERROR_TYPE_SYNTAX_ERROR));
    assertEquals("OomError", StatusTable.errorTypeName(ErrorType.ERROR_TYPE_OOM_ERROR));
    assertEquals("JobError", StatusTable.errorTypeName(ErrorType.ERROR_TYPE_JOB_ERROR));
    assertTrue(StatusTable.errorTypeExample(ErrorType.ERROR_TYPE_RANGE_ERROR).contains("state.patients[5]"));
  }

  @Test
  void everyValueHasARowAndEveryErrorTypeATerminalStatus() {
    for (RunStatus status : RunStatus.values()) {
      if (status == RunStatus.UNRECOGNIZED) {
        continue;
      }
      boolean specified = status != RunStatus.RUN_STATUS_UNSPECIFIED;
      assertEquals(specified, StatusTable.hasStatusInfo(status), status.name());
      assertEquals(specified, !StatusTable.chip(status).isEmpty(), status.name());
    }
    for (ErrorType type : ErrorType.values()) {
      if (type == ErrorType.UNRECOGNIZED || type == ErrorType.ERROR_TYPE_UNSPECIFIED) {
        continue;
      }
      RunStatus status = StatusTable.statusOf(type);
      assertTrue(StatusTable.isTerminal(status), type + " -> " + status);
      assertTrue(StatusTable.abortsRunIfSet(status).isPresent(), type + " -> " + status);
    }
  }

  @Test
  void unspecifiedAndUnrecognizedGetTheEmptyDefault() {
    assertEquals(StatusInfo.getDefaultInstance(), StatusTable.statusInfo(RunStatus.RUN_STATUS_UNSPECIFIED));
    assertEquals(StatusInfo.getDefaultInstance(), StatusTable.statusInfo(RunStatus.UNRECOGNIZED));
    assertEquals("", StatusTable.chip(RunStatus.UNRECOGNIZED));
    assertEquals(RunStatus.RUN_STATUS_UNSPECIFIED, StatusTable.statusOf(ErrorType.ERROR_TYPE_UNSPECIFIED));
    assertEquals(RunStatus.RUN_STATUS_UNSPECIFIED, StatusTable.statusOf(ErrorType.UNRECOGNIZED));
  }

  @Test
  void lookUpByProtoName() {
    assertEquals(Optional.of(RunStatus.RUN_STATUS_LOST), StatusTable.runStatus("RUN_STATUS_LOST"));
    assertEquals(Optional.empty(), StatusTable.runStatus("UNRECOGNIZED"));
    assertEquals(Optional.empty(), StatusTable.runStatus("LOST"));
    assertEquals(Optional.of(ErrorType.ERROR_TYPE_OOM_ERROR), StatusTable.errorType("ERROR_TYPE_OOM_ERROR"));
  }
}
