package dev.runstatus.contract;

import com.google.gson.Gson;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Message;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.protobuf.util.JsonFormat;
import com.google.rpc.ErrorInfo;
import dev.runstatus.client.ErrorDetails;
import dev.runstatus.client.Lease;
import dev.runstatus.client.RunstatusClient;
import dev.runstatus.client.StatusTable;
import dev.runstatus.v1.CancelRunRequest;
import dev.runstatus.v1.Classification;
import dev.runstatus.v1.ClassifyRequest;
import dev.runstatus.v1.CreateProjectRequest;
import dev.runstatus.v1.CreateWorkOrderRequest;
import dev.runstatus.v1.CreateWorkOrderResponse;
import dev.runstatus.v1.CreateWorkflowRequest;
import dev.runstatus.v1.Edge;
import dev.runstatus.v1.EdgeCondition;
import dev.runstatus.v1.ErrorReason;
import dev.runstatus.v1.ErrorReport;
import dev.runstatus.v1.ErrorType;
import dev.runstatus.v1.GetWorkOrderRequest;
import dev.runstatus.v1.GetWorkOrderResponse;
import dev.runstatus.v1.HeartbeatResponse;
import dev.runstatus.v1.Project;
import dev.runstatus.v1.RetryWorkOrderRequest;
import dev.runstatus.v1.RetryWorkOrderResponse;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.StatusInfo;
import dev.runstatus.v1.Step;
import dev.runstatus.v1.StepRun;
import dev.runstatus.v1.Workflow;
import io.grpc.StatusRuntimeException;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;

/**
 * The Java runner of the contract suite (tests/contract/README.md); it behaves as runner.py does.
 *
 * <pre>
 *   mvn -q -B compile exec:java -Dexec.args="ADDRESS [CASES_DIR]"
 * </pre>
 *
 * <p>Prints {@code ok   NAME} or {@code FAIL NAME: reason} per case, then {@code N passed, N failed},
 * and exits 1 if any case failed (2 if the cases could not be read).
 */
public final class ContractRunner {
  static final String LANGUAGE = "java";
  private static final Gson GSON = new Gson();
  private static final JsonFormat.Parser PROTO_JSON = JsonFormat.parser();

  private ContractRunner() {}

  /** A failed expectation; its message is the reason printed after {@code FAIL NAME:}. */
  static final class Failure extends RuntimeException {
    Failure(String message) {
      super(message, null, false, false);
    }
  }

  private static void check(boolean condition, String message) {
    if (!condition) {
      throw new Failure(message);
    }
  }

  @FunctionalInterface
  interface CaseBody {
    void run(RunstatusClient client) throws Exception;
  }

  record Case(String name, CaseBody body) {}

  // (a) The status table and the error reasons, from this language's own descriptors.

  static void checkStatus(JsonObject c) {
    String name = c.get("status").getAsString();
    RunStatus status = StatusTable.runStatus(name).orElseThrow(() -> new Failure("no RunStatus value " + name));
    check(StatusTable.hasStatusInfo(status), name + " has no status_info option");
    StatusInfo info = StatusTable.statusInfo(status);
    JsonObject got = new JsonObject();
    got.addProperty("status", status.getValueDescriptor().getName());
    got.addProperty("label", info.getLabel());
    got.addProperty("chip", info.getChip());
    got.addProperty("color", info.getColor());
    got.addProperty("terminal", StatusTable.isTerminal(status));
    got.add("aborts_run", StatusTable.abortsRunIfSet(status)
        .<JsonElement>map(JsonPrimitive::new).orElse(JsonNull.INSTANCE));
    got.addProperty("notifies_admin", StatusTable.notifiesAdmin(status));
    check(got.equals(c), "descriptor says " + got);
  }

  static void checkErrorType(JsonObject c) {
    String name = c.get("error_type").getAsString();
    ErrorType type = StatusTable.errorType(name).orElseThrow(() -> new Failure("no ErrorType value " + name));
    JsonObject got = new JsonObject();
    got.addProperty("error_type", type.getValueDescriptor().getName());
    got.addProperty("name", StatusTable.errorTypeName(type));
    got.addProperty("status", enumName(StatusTable.statusOf(type)));
    check(got.equals(c), "descriptor says " + got);
  }

  static void checkReason(JsonObject c) {
    String name = c.get("reason").getAsString();
    EnumValueDescriptor value = ErrorReason.getDescriptor().findValueByName(name);
    check(value != null, "no ErrorReason value " + name);
    int number = c.get("number").getAsInt();
    check(value.getNumber() == number, "number " + value.getNumber());
    ErrorReason reason = ErrorReason.valueOf(value);
    String wire = c.get("wire").getAsString();
    String gotWire = ErrorDetails.wireReason(reason);
    check(gotWire.equals(wire), "wire '" + gotWire + "'");
    ErrorReason parsed = ErrorDetails.parseReason(wire);
    check(parsed == reason, "parses '" + wire + "' as " + enumName(parsed));
  }

  static void checkAllReasons(JsonObject table) {
    Set<String> known = new TreeSet<>();
    for (EnumValueDescriptor v : ErrorReason.getDescriptor().getValues()) {
      if (v.getNumber() != 0) {
        known.add(v.getName());
      }
    }
    Set<String> expected = new TreeSet<>();
    for (JsonElement e : table.getAsJsonArray("reasons")) {
      expected.add(e.getAsJsonObject().get("reason").getAsString());
    }
    check(known.equals(expected), "the enum has " + known);
    for (JsonElement e : table.getAsJsonArray("unknown")) {
      String wire = e.getAsString();
      check(ErrorDetails.parseReason(wire) == ErrorReason.ERROR_REASON_UNSPECIFIED,
          "'" + wire + "' parsed as a known reason");
    }
  }

  // (b) Classification, by the server.

  static void checkClassification(RunstatusClient client, JsonObject c) throws IOException {
    ErrorReport report = parse(c.get("error"), ErrorReport.newBuilder()).build();
    Classification got = client.classifier()
        .classify(ClassifyRequest.newBuilder().setError(report).build())
        .getClassification();
    JsonObject expect = c.getAsJsonObject("expect");
    JsonObject actual = new JsonObject();
    actual.addProperty("status", enumName(got.getStatus()));
    actual.addProperty("error_type", enumName(got.getErrorType()));
    actual.addProperty("aborts_run", got.getAbortsRun());
    if (expect.has("rule")) {
      actual.addProperty("rule", got.getRule());
    }
    check(actual.equals(expect), "server said " + actual);
  }

  // (c) Lifecycle scenarios.

  /**
   * What the runner remembers of one work order. Its run's worker calls go through the client's
   * lease handle ({@link Lease}, the Worker's own), so the lifecycle scenarios exercise it: before
   * a claim, a lease with an empty token.
   */
  static final class Tracked {
    final String workOrderId;
    final String runId;
    Lease lease;
    final Map<String, String> stepRuns = new HashMap<>();

    Tracked(RunstatusClient client, String workOrderId, String runId) {
      this.workOrderId = workOrderId;
      this.runId = runId;
      this.lease = new Lease(client, runId, "");
    }
  }

  /** The status an action answered (null: none) and the extras to compare with expect_* keys. */
  record Outcome(RunStatus status, Map<String, JsonElement> extras) {
    static Outcome of(RunStatus status) {
      return new Outcome(status, Map.of());
    }
  }

  static void runScenario(RunstatusClient client, JsonObject scenario) throws IOException {
    String projectId = "contract-" + LANGUAGE + "-" + UUID.randomUUID().toString().replace("-", "").substring(0, 8);
    Project.Builder project = Project.newBuilder().setId(projectId);
    if (scenario.has("project")) {
      parse(scenario.get("project"), project);
    }
    client.projects().createProject(CreateProjectRequest.newBuilder().setProject(project).build());

    JsonObject wf = scenario.getAsJsonObject("workflow");
    Workflow.Builder workflow = Workflow.newBuilder().setId("contract").setProjectId(projectId);
    for (JsonElement step : wf.getAsJsonArray("steps")) {
      workflow.addSteps(Step.newBuilder().setId(step.getAsString()));
    }
    for (JsonElement edge : wf.getAsJsonArray("edges")) {
      JsonArray e = edge.getAsJsonArray();
      String condition = "EDGE_CONDITION_" + e.get(2).getAsString();
      var value = EdgeCondition.getDescriptor().findValueByName(condition);
      check(value != null, "no EdgeCondition value " + condition);
      workflow.addEdges(Edge.newBuilder()
          .setSourceStepId(e.get(0).getAsString())
          .setTargetStepId(e.get(1).getAsString())
          .setCondition(EdgeCondition.valueOf(value)));
    }
    client.workflows().createWorkflow(CreateWorkflowRequest.newBuilder().setWorkflow(workflow).build());

    Map<String, Tracked> orders = new HashMap<>();
    JsonArray actions = scenario.getAsJsonArray("actions");
    for (int i = 0; i < actions.size(); i++) {
      JsonObject action = actions.get(i).getAsJsonObject();
      try {
        step(client, projectId, orders, action);
      } catch (Failure | StatusRuntimeException e) {
        throw new Failure("action " + i + " (" + action.get("do").getAsString() + "): " + describe(e));
      }
    }
  }

  static void step(RunstatusClient client, String projectId, Map<String, Tracked> orders, JsonObject action)
      throws IOException {
    if (action.has("expect_error")) {
      JsonObject expected = action.getAsJsonObject("expect_error");
      String code = expected.get("code").getAsString();
      try {
        call(client, projectId, orders, action);
      } catch (StatusRuntimeException e) {
        String got = e.getStatus().getCode().name();
        check(got.equals(code), "got " + got + ": " + e.getStatus().getDescription());
        ErrorInfo info = ErrorDetails.errorInfo(e);
        if (expected.has("reason")) {
          String reason = expected.get("reason").getAsString();
          String gotReason = enumName(ErrorDetails.parseReason(info.getReason()));
          check(reason.equals(gotReason), "reason '" + info.getReason() + "' (" + gotReason + ")");
        }
        if (expected.has("current_status")) {
          String current = expected.get("current_status").getAsString();
          check(current.equals(info.getMetadataMap().get("current_status")), "metadata " + info.getMetadataMap());
        }
        return;
      }
      throw new Failure("expected " + code + ", the call succeeded");
    }
    Outcome outcome = call(client, projectId, orders, action);
    if (action.has("expect")) {
      String expect = action.get("expect").getAsString();
      String got = outcome.status() == null ? "None" : enumName(outcome.status());
      check(outcome.status() != null && expect.equals(got), "expected " + expect + ", got " + got);
    }
    for (Map.Entry<String, JsonElement> extra : outcome.extras().entrySet()) {
      if (action.has(extra.getKey())) {
        JsonElement want = action.get(extra.getKey());
        check(want.equals(extra.getValue()),
            extra.getKey() + ": expected " + want + ", got " + extra.getValue());
      }
    }
  }

  /** Performs an action; returns the status to compare with {@code expect}, and extras. */
  static Outcome call(RunstatusClient client, String projectId, Map<String, Tracked> orders, JsonObject action)
      throws IOException {
    String alias = action.get("work_order").getAsString();
    String act = action.get("do").getAsString();
    Tracked w = orders.get(alias);
    if (act.equals("create")) {
      CreateWorkOrderResponse answer = client.workOrders().createWorkOrder(CreateWorkOrderRequest.newBuilder()
          .setProjectId(projectId)
          .setWorkflowId("contract")
          .setInput(Struct.newBuilder().putFields("patient", Value.newBuilder().setNumberValue(123).build()))
          .build());
      orders.put(alias, new Tracked(client, answer.getWorkOrder().getId(), answer.getRun().getId()));
      return Outcome.of(answer.getWorkOrder().getStatus());
    }
    check(w != null, "no work order '" + alias + "' yet");
    switch (act) {
      case "claim": {
        for (int attempt = 0; attempt < 100; attempt++) {
          List<Lease> claimed = Lease.claim(client, projectId, "contract-" + LANGUAGE, 1);
          check(!claimed.isEmpty(), "run " + w.runId + " was never handed out");
          Lease lease = claimed.get(0);
          if (lease.runId().equals(w.runId)) {
            w.lease = lease;
            w.stepRuns.clear();
            for (StepRun s : lease.claimed().orElseThrow().getRun().getStepRunsList()) {
              w.stepRuns.put(s.getStepId(), s.getId());
            }
            return Outcome.of(null);
          }
        }
        throw new Failure("claim gave up");
      }
      case "start_run":
        return Outcome.of(w.lease.startRun().getRun().getStatus());
      case "start_step": {
        String previous = action.has("after") ? w.stepRuns.getOrDefault(action.get("after").getAsString(), "") : "";
        String stepId = action.get("step").getAsString();
        StepRun stepRun = w.lease.startStep(stepId, previous).getStepRun();
        w.stepRuns.put(stepId, stepRun.getId());
        return Outcome.of(stepRun.getStatus());
      }
      case "complete_step": {
        String stepId = action.get("step").getAsString();
        String stepRunId = w.stepRuns.get(stepId);
        check(stepRunId != null, "no step run of step '" + stepId + "'");
        ErrorReport error = action.has("error") ? parse(action.get("error"), ErrorReport.newBuilder()).build() : null;
        return Outcome.of(w.lease.completeStep(stepRunId, null, error).getRunStatus());
      }
      case "complete_run": {
        ErrorReport error = action.has("error") ? parse(action.get("error"), ErrorReport.newBuilder()).build() : null;
        return Outcome.of(w.lease.completeRun(error).getRun().getStatus());
      }
      case "retry": {
        RetryWorkOrderResponse answer = client.workOrders().retryWorkOrder(RetryWorkOrderRequest.newBuilder()
            .setWorkOrderId(w.workOrderId)
            .setStartStepId(action.has("start_step") ? action.get("start_step").getAsString() : "")
            .build());
        orders.put(alias, new Tracked(client, w.workOrderId, answer.getRun().getId()));
        return Outcome.of(answer.getRun().getStatus());
      }
      case "cancel":
        return Outcome.of(client.workOrders().cancelRun(CancelRunRequest.newBuilder()
            .setRunId(w.runId).build()).getRun().getStatus());
      case "heartbeat": {
        HeartbeatResponse answer = w.lease.heartbeat();
        return new Outcome(answer.getStatus(), Map.of("expect_stop", new JsonPrimitive(answer.getStop())));
      }
      case "get": {
        GetWorkOrderResponse answer = client.workOrders().getWorkOrder(GetWorkOrderRequest.newBuilder()
            .setWorkOrderId(w.workOrderId).build());
        return new Outcome(answer.getWorkOrder().getStatus(),
            Map.of("expect_run_number", new JsonPrimitive(answer.getLatestRun().getNumber())));
      }
      default:
        throw new Failure("unknown action '" + act + "'");
    }
  }

  // Helpers.

  /** Merges a case's JSON (proto JSON: field and enum names as in the .proto) into a message builder. */
  static <B extends Message.Builder> B parse(JsonElement json, B builder) throws IOException {
    PROTO_JSON.merge(GSON.toJson(json), builder);
    return builder;
  }

  static String enumName(RunStatus status) {
    return status == RunStatus.UNRECOGNIZED ? "UNRECOGNIZED" : status.getValueDescriptor().getName();
  }

  static String enumName(ErrorType type) {
    return type == ErrorType.UNRECOGNIZED ? "UNRECOGNIZED" : type.getValueDescriptor().getName();
  }

  static String enumName(ErrorReason reason) {
    return reason == ErrorReason.UNRECOGNIZED ? "UNRECOGNIZED" : reason.getValueDescriptor().getName();
  }

  static String describe(Throwable e) {
    if (e instanceof Failure) {
      return e.getMessage();
    }
    if (e instanceof StatusRuntimeException sre) {
      return "RPC " + sre.getStatus().getCode().name() + ": " + sre.getStatus().getDescription();
    }
    return e.getClass().getSimpleName() + ": " + e.getMessage();
  }

  static JsonObject load(Path casesDir, String name) throws IOException {
    return JsonParser.parseString(Files.readString(casesDir.resolve(name), StandardCharsets.UTF_8)).getAsJsonObject();
  }

  /** Every case of the suite, named, in the order runner.py runs them. */
  static List<Case> cases(Path casesDir) throws IOException {
    List<Case> cases = new ArrayList<>();
    JsonObject table = load(casesDir, "status_table.json");
    for (JsonElement e : table.getAsJsonArray("statuses")) {
      JsonObject c = e.getAsJsonObject();
      cases.add(new Case("status_table/" + c.get("status").getAsString(), client -> checkStatus(c)));
    }
    for (JsonElement e : table.getAsJsonArray("error_types")) {
      JsonObject c = e.getAsJsonObject();
      cases.add(new Case("status_table/" + c.get("error_type").getAsString(), client -> checkErrorType(c)));
    }
    JsonObject reasons = load(casesDir, "error_reasons.json");
    for (JsonElement e : reasons.getAsJsonArray("reasons")) {
      JsonObject c = e.getAsJsonObject();
      cases.add(new Case("error_reasons/" + c.get("reason").getAsString(), client -> checkReason(c)));
    }
    cases.add(new Case("error_reasons/all", client -> checkAllReasons(reasons)));
    JsonArray classification = load(casesDir, "classification.json").getAsJsonArray("cases");
    for (int i = 0; i < classification.size(); i++) {
      JsonObject c = classification.get(i).getAsJsonObject();
      JsonObject error = c.getAsJsonObject("error");
      String language = error.has("language") ? error.get("language").getAsString() : "";
      String name = "classification/" + i + ":" + error.get("name").getAsString() + "/" + language;
      cases.add(new Case(name, client -> checkClassification(client, c)));
    }
    for (JsonElement e : load(casesDir, "lifecycle.json").getAsJsonArray("scenarios")) {
      JsonObject scenario = e.getAsJsonObject();
      cases.add(new Case("lifecycle/" + scenario.get("name").getAsString(), client -> runScenario(client, scenario)));
    }
    return cases;
  }

  static int run(String address, Path casesDir, PrintStream out) {
    List<Case> cases;
    try {
      cases = cases(casesDir);
    } catch (IOException | RuntimeException e) {
      System.err.println("cannot read the cases in " + casesDir + ": " + e);
      return 2;
    }
    int passed = 0;
    int failed = 0;
    try (RunstatusClient client = RunstatusClient.builder(address).defaultDeadline(Duration.ofSeconds(30)).build()) {
      for (Case c : cases) {
        try {
          c.body().run(client);
          passed++;
          out.println("ok   " + c.name());
        } catch (Exception | AssertionError e) {
          failed++;
          out.println("FAIL " + c.name() + ": " + describe(e));
        }
      }
    }
    out.println(passed + " passed, " + failed + " failed");
    out.flush();
    return failed > 0 ? 1 : 0;
  }

  public static void main(String[] args) {
    if (args.length < 1 || args.length > 2) {
      System.err.println("usage: ContractRunner ADDRESS [CASES_DIR]   (default CASES_DIR: ../../tests/contract)");
      System.exit(2);
    }
    Path casesDir = Path.of(args.length > 1 ? args[1] : "../../tests/contract");
    PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
    int code = run(args[0], casesDir, out);
    out.flush();
    // Under exec:java this ends the Maven JVM too, so mvn exits with the runner's status.
    System.exit(code);
  }
}
