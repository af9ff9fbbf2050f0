// Example: create a workflow and a work order, classify an error, read the status table.
//
//   mvn -q compile exec:java -Dexec.mainClass=dev.runstatus.example.Example -Dexec.args=127.0.0.1:50051
package dev.runstatus.example;

import dev.runstatus.client.RunstatusClient;
import dev.runstatus.client.StatusTable;
import dev.runstatus.v1.ClassifyRequest;
import dev.runstatus.v1.Classification;
import dev.runstatus.v1.CreateWorkOrderRequest;
import dev.runstatus.v1.CreateWorkflowRequest;
import dev.runstatus.v1.Edge;
import dev.runstatus.v1.EdgeCondition;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.Step;
import dev.runstatus.v1.Workflow;

public final class Example {
  public static void main(String[] args) {
    try (RunstatusClient rs = RunstatusClient.connect(args.length > 0 ? args[0] : "127.0.0.1:50051")) {
      rs.workflows().createWorkflow(CreateWorkflowRequest.newBuilder()
          .setWorkflow(Workflow.newBuilder()
              .setId("java-example")
              .addSteps(Step.newBuilder().setId("fetch"))
              .addSteps(Step.newBuilder().setId("notify"))
              .addEdges(Edge.newBuilder().setSourceStepId("fetch").setTargetStepId("notify")
                  .setCondition(EdgeCondition.EDGE_CONDITION_ON_SUCCESS)))
          .build());
      RunStatus status = rs.workOrders()
          .createWorkOrder(CreateWorkOrderRequest.newBuilder().setWorkflowId("java-example").build())
          .getWorkOrder().getStatus();
      System.out.println(StatusTable.chip(status) + " " + status); // ⚪ RUN_STATUS_PENDING

      Classification c = rs.classifier().classify(ClassifyRequest.newBuilder()
          .setError(ErrorReport.newBuilder().setName("java.lang.NullPointerException").setLanguage("java"))
          .build()).getClassification();
      System.out.println(StatusTable.chip(c.getStatus()) + " " + c.getErrorType()
          + " aborts: " + StatusTable.abortsRun(c.getStatus()));
    }
  }
}
