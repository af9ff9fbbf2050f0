// The safe defaults and the helpers that need no server: npm test.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";

import { createClientsFromTransport } from "../src/client";
import { fillRequestId, retryUnavailable } from "../src/defaults";
import { fieldViolations } from "../src/errors";
import { ErrorSeverity, ErrorSource } from "../src/gen/runstatus/v1/error_pb";
import { ProjectService } from "../src/gen/runstatus/v1/project_service_pb";
import { RunStatus } from "../src/gen/runstatus/v1/status_pb";
import { EdgeCondition, WorkflowSchema } from "../src/gen/runstatus/v1/workflow_pb";
import { RunSchema } from "../src/gen/runstatus/v1/work_order_pb";
import { nextSteps, starts } from "../src/plan";
import { errorReport, UnregisteredStepError } from "../src/worker";

/** A project service that fails UNAVAILABLE `failures` times, noting each attempt's request id. */
function flaky(failures: number, seen: string[], policy = { initialBackoffMs: 1, maxBackoffMs: 2 }) {
  const transport = createRouterTransport(
    ({ service }) => {
      service(ProjectService, {
        createProject: (req) => {
          seen.push(req.requestId);
          if (seen.length <= failures) throw new ConnectError("restarting", Code.Unavailable);
          return { project: req.project };
        },
        getProject: () => {
          seen.push("get");
          throw new ConnectError("no such project", Code.NotFound);
        },
      });
    },
    { transport: { interceptors: [fillRequestId, retryUnavailable(policy)] } },
  );
  return createClientsFromTransport(transport);
}

describe("defaults", () => {
  it("retries UNAVAILABLE with one request id over every attempt", async () => {
    const seen: string[] = [];
    const answer = await flaky(2, seen).projects.createProject({ project: { id: "p" } });
    assert.equal(answer.project?.id, "p");
    assert.equal(seen.length, 3);
    assert.equal(new Set(seen).size, 1);
    assert.match(seen[0]!, /^[0-9a-f-]{36}$/);
  });

  it("keeps the caller's own request id, and gives a reused message a new one", async () => {
    const seen: string[] = [];
    const rs = flaky(0, seen);
    await rs.projects.createProject({ project: { id: "p" }, requestId: "mine" });
    const request = { project: { id: "q" } };
    await rs.projects.createProject(request);
    await rs.projects.createProject(request);
    assert.equal(seen[0], "mine");
    assert.notEqual(seen[1], seen[2]);
    assert.equal((request as { requestId?: string }).requestId, undefined);
  });

  it("gives up after the attempts it may make, and never retries other codes", async () => {
    const seen: string[] = [];
    await assert.rejects(flaky(10, seen).projects.createProject({}), (e: ConnectError) => e.code === Code.Unavailable);
    assert.equal(seen.length, 5);
    const gets: string[] = [];
    await assert.rejects(flaky(0, gets).projects.getProject({ projectId: "x" }), (e: ConnectError) => e.code === Code.NotFound);
    assert.equal(gets.length, 1);
  });
});

describe("fieldViolations", () => {
  it("decodes the BadRequest in a ConnectError's details", () => {
    const violation = new BinaryWriter().uint32(10).string("workflow.id").uint32(18).string("must not be empty").finish();
    const badRequest = new BinaryWriter().uint32(10).bytes(violation).finish();
    const err = new ConnectError("bad", Code.InvalidArgument);
    err.details.push({ type: "google.rpc.BadRequest", value: badRequest }); // as parsed from the wire
    assert.deepEqual(fieldViolations(err), [{ field: "workflow.id", description: "must not be empty", reason: "" }]);
    assert.deepEqual(fieldViolations(new Error("x")), []);
  });
});

describe("errorReport", () => {
  it("names an error by its name, or its class for a plain Error subclass, with subtype and severity", () => {
    class JobError extends Error {}
    const wrapped = Object.assign(new Error("x is undefined"), { name: "RuntimeError", subtype: "TypeError", severity: "crash" });
    assert.equal(errorReport(new TypeError("t")).name, "TypeError");
    assert.equal(errorReport(new JobError("j")).name, "JobError");
    const report = errorReport(wrapped);
    assert.deepEqual([report.name, report.subtype, report.severity, report.source], ["RuntimeError", "TypeError", ErrorSeverity.CRASH, ErrorSource.JOB]);
    assert.equal(errorReport(new UnregisteredStepError("s")).source, ErrorSource.RUNTIME);
    assert.equal(errorReport("a string").message, "a string");
    assert.equal(errorReport(Object.assign(new Error(), { severity: "loud" })).severity, ErrorSeverity.UNSPECIFIED);
    assert.equal(Buffer.byteLength(errorReport(new Error("é".repeat(40_000))).message as string), 60_000);
  });
});

describe("plan", () => {
  const workflow = create(WorkflowSchema, {
    steps: [{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }],
    edges: [
      { sourceStepId: "a", targetStepId: "b", condition: EdgeCondition.ON_SUCCESS },
      { sourceStepId: "a", targetStepId: "c", condition: EdgeCondition.ON_FAILURE },
      { sourceStepId: "a", targetStepId: "d", condition: EdgeCondition.EXPRESSION, expression: "x" },
    ],
  });

  it("starts at the roots, or at a retry's start step after its latest reused upstream step run", () => {
    assert.deepEqual(starts(create(RunSchema), workflow), [{ stepId: "a", previous: undefined }]);
    const retry = create(RunSchema, {
      startStepId: "b",
      stepRuns: [
        { id: "s1", stepId: "a", status: RunStatus.SUCCESS, endTime: { seconds: 1n } },
        { id: "s2", stepId: "a", status: RunStatus.SUCCESS, endTime: { seconds: 2n } },
      ],
    });
    assert.equal(starts(retry, workflow)[0]?.previous?.id, "s2");
  });

  it("follows the edges the upstream status allows, and expressions that hold", () => {
    const ok = { stepId: "a", status: RunStatus.SUCCESS } as Parameters<typeof nextSteps>[1];
    assert.deepEqual(nextSteps(workflow, ok, () => true), ["b", "d"]);
    assert.deepEqual(nextSteps(workflow, { ...ok, status: RunStatus.FAILED }, () => false), ["c"]);
  });
});

