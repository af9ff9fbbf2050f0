// Example: create a workflow and a work order, classify an error, read the status table.
//
//   npx tsx examples/example.ts 127.0.0.1:50051
import { createClients, chip, abortsRun, runStatusName, errorTypeEnumName } from "../src/index";
import { EdgeCondition } from "../src/gen/runstatus/v1/workflow_pb";

const rs = createClients(process.argv[2] ?? "127.0.0.1:50051", { timeoutMs: 10_000 });
try {
  await rs.workflows.createWorkflow({
    workflow: {
      id: "ts-example",
      steps: [{ id: "fetch" }, { id: "notify" }],
      edges: [{ sourceStepId: "fetch", targetStepId: "notify", condition: EdgeCondition.ON_SUCCESS }],
    },
  });
  const { workOrder } = await rs.workOrders.createWorkOrder({ workflowId: "ts-example", input: { patient: 123 } });
  console.log(chip(workOrder!.status), runStatusName(workOrder!.status)); // ⚪ RUN_STATUS_PENDING

  const { classification } = await rs.classifier.classify({
    error: { name: "TypeError", message: "Cannot read properties of undefined (reading 'age')", language: "javascript" },
  });
  const c = classification!;
  console.log(chip(c.status), errorTypeEnumName(c.errorType), "aborts:", abortsRun(c.status));
} finally {
  rs.close();
}
