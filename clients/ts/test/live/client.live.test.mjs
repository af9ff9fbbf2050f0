// The built client (dist/, as a user imports it) against real runstatus servers that
// tests/test_client_ts.py starts and names in the environment:
//   RUNSTATUS_ADDRESS          a plain server (short leases), restartable on the same db and port
//   RUNSTATUS_CONTROL          http://host:port of the test's control: POST /restart restarts it
//   RUNSTATUS_TLS_ADDRESS      a TLS server; RUNSTATUS_MTLS_ADDRESS one requiring client certificates
//   RUNSTATUS_CA, RUNSTATUS_CLIENT_CERT, RUNSTATUS_CLIENT_KEY  PEM files (a private CA, a client's)
//   RUNSTATUS_AUTH_ADDRESS, RUNSTATUS_ADMIN_TOKEN              a server with --auth and its admin
//   RUNSTATUS_PRUNING_ADDRESS  a server with --request-id-seconds 1: a project may keep work orders a second
//
//   node --test test/live/client.live.test.mjs
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";

import { Code, ConnectError } from "@connectrpc/connect";

import { createClients, CursorExpiredError, fieldViolations, reasonOf, ErrorReason, Worker } from "../../dist/index.js";
import { ErrorSeverity } from "../../dist/gen/runstatus/v1/error_pb.js";
import { RunStatus } from "../../dist/gen/runstatus/v1/status_pb.js";
import { Role } from "../../dist/gen/runstatus/v1/token_pb.js";
import { EdgeCondition } from "../../dist/gen/runstatus/v1/workflow_pb.js";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run this through tests/test_client_ts.py`);
  return value;
};
const ADDRESS = env("RUNSTATUS_ADDRESS");
const { ON_SUCCESS, ON_FAILURE, EXPRESSION } = EdgeCondition;

let rs;
before(() => {
  rs = createClients(ADDRESS, { timeoutMs: 20_000 });
});
after(() => rs.close());

/** A project of its own, with one workflow of `steps` and `edges` ([source, target, condition, expression?]). */
async function project(steps, edges = []) {
  const projectId = `ts-live-${randomBytes(4).toString("hex")}`;
  await rs.projects.createProject({ project: { id: projectId } });
  await rs.workflows.createWorkflow({
    workflow: {
      id: "wf",
      projectId,
      steps: steps.map((id) => ({ id })),
      edges: edges.map(([sourceStepId, targetStepId, condition, expression = ""]) => ({
        sourceStepId, targetStepId, condition, expression,
      })),
    },
  });
  return projectId;
}

async function workOrder(projectId, input = {}) {
  const { workOrder } = await rs.workOrders.createWorkOrder({ projectId, workflowId: "wf", input });
  return workOrder;
}

/** A promise with its resolve. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

describe("worker", () => {
  it("runs a workflow to SUCCESS, each step on its upstream's state, an EXPRESSION edge by its condition", async () => {
    const projectId = await project(["fetch", "enrich", "big", "small"], [
      ["fetch", "enrich", ON_SUCCESS],
      ["enrich", "big", EXPRESSION, "size > 10"],
      ["enrich", "small", EXPRESSION, "size <= 10"],
    ]);
    const order = await workOrder(projectId, { patient: 7 });
    const worker = new Worker(rs, { projectId, workerId: "ts-live" })
      .step("fetch", (state) => ({ ...state, size: 42 }))
      .step("enrich", async (state) => ({ ...state, enriched: true }))
      .step("big", (state) => ({ ...state, big: true }))
      .step("small", () => { throw new Error("not this way"); })
      .condition("size > 10", (state) => state.size > 10)
      .condition("size <= 10", (state) => state.size <= 10);
    const outcomes = await worker.runUntilIdle();
    assert.equal(outcomes.length, 1);
    assert.equal(outcomes[0].runId, order.latestRunId);
    assert.equal(outcomes[0].status, RunStatus.SUCCESS);
    assert.deepEqual(outcomes[0].executed, ["fetch", "enrich", "big"]);
    const { run } = await rs.workOrders.getRun({ runId: order.latestRunId });
    assert.equal(run.status, RunStatus.SUCCESS);
    const big = run.stepRuns.find((s) => s.stepId === "big");
    assert.deepEqual(big.output, { patient: 7, size: 42, enriched: true, big: true });
  });

  it("reports a thrown error with its name, subtype and severity; the run ends as the server classifies it", async () => {
    const projectId = await project(["fetch", "handle", "never"], [
      ["fetch", "handle", ON_FAILURE],
      ["fetch", "never", ON_SUCCESS],
    ]);
    const failed = await workOrder(projectId, { which: "fail" });
    const crashed = await workOrder(projectId, { which: "crash" });
    const worker = new Worker(rs, { projectId })
      .step("fetch", (state) => {
        const e = new Error(state.which === "fail" ? "x is undefined" : "y is not defined");
        // An engine's wrapper error, as OpenFn's runtime throws them.
        throw Object.assign(e, state.which === "fail"
          ? { name: "RuntimeError", subtype: "TypeError", severity: "fail" }
          : { name: "RuntimeCrash", subtype: "ReferenceError", severity: "crash" });
      })
      .step("handle", (state) => {
        assert.equal(state.error.name, "RuntimeError");
        throw new RangeError("the handler fails too"); // a failing leaf: the run is FAILED
      });
    const outcomes = await worker.runUntilIdle();
    const byRun = new Map(outcomes.map((o) => [o.runId, o]));
    assert.equal(byRun.get(failed.latestRunId).status, RunStatus.FAILED);
    assert.deepEqual(byRun.get(failed.latestRunId).executed, ["fetch", "handle"]);
    assert.equal(byRun.get(crashed.latestRunId).status, RunStatus.CRASHED);
    assert.deepEqual(byRun.get(crashed.latestRunId).executed, ["fetch"]); // an abort ends the run at once

    const { run } = await rs.workOrders.getRun({ runId: crashed.latestRunId });
    assert.equal(run.status, RunStatus.CRASHED);
    const error = run.stepRuns[0].error;
    assert.equal(error.report.name, "RuntimeCrash");
    assert.equal(error.report.subtype, "ReferenceError");
    assert.equal(error.report.severity, ErrorSeverity.CRASH);
    assert.equal(error.report.language, "javascript");
    assert.equal(error.classification.rule, "seed:ReferenceError(subtype)");
    const { run: failedRun } = await rs.workOrders.getRun({ runId: failed.latestRunId });
    const fetch = failedRun.stepRuns.find((s) => s.stepId === "fetch");
    assert.equal(fetch.error.report.severity, ErrorSeverity.FAIL);
    assert.equal(fetch.error.classification.rule, "seed:TypeError(subtype)");
    assert.equal(failedRun.error.report.name, "RangeError"); // the failing leaf decided the run
  });

  it("a CancelRun makes the next heartbeat answer stop, which fires the running step's AbortSignal", async () => {
    const projectId = await project(["slow", "after"], [["slow", "after", ON_SUCCESS]]);
    const order = await workOrder(projectId);
    const started = deferred();
    let abortedWith;
    const worker = new Worker(rs, { projectId })
      .step("slow", (state, { signal }) => new Promise((resolve, reject) => {
        started.resolve();
        signal.addEventListener("abort", () => {
          abortedWith = signal.reason;
          reject(signal.reason);
        });
      }))
      .step("after", () => assert.fail("a cancelled run goes no further"));
    const running = worker.runOnce();
    await started.promise;
    const cancelled = await rs.workOrders.cancelRun({ runId: order.latestRunId, reason: "live test" });
    assert.equal(cancelled.run.cancelRequested, true);
    const [outcome] = await running;
    assert.ok(abortedWith instanceof Error, "the step's signal fired");
    assert.match(abortedWith.message, /stop/);
    assert.equal(outcome.status, RunStatus.CANCELLED);
    assert.deepEqual(outcome.executed, ["slow"]);
    const { run } = await rs.workOrders.getRun({ runId: order.latestRunId });
    assert.equal(run.status, RunStatus.CANCELLED);
  });
});

/** An HTTP/2 proxy to `upstream` that, for the first call of `method`, lets the server do it
 * and then answers the client UNAVAILABLE instead, as a connection lost after the server's
 * commit would look; it counts the calls of `method` it forwarded. */
function dropFirstAnswerProxy(upstream, method) {
  const session = http2.connect(`http://${upstream}`);
  const proxy = { forwarded: 0, server: http2.createServer() };
  proxy.server.on("stream", (stream, headers) => {
    const out = Object.fromEntries(Object.entries(headers).filter(([k]) => !k.startsWith(":") || k === ":method" || k === ":path"));
    const drop = headers[":path"].endsWith(`/${method}`) && proxy.forwarded++ === 0;
    const up = session.request(out);
    stream.pipe(up);
    let trailers = {};
    up.on("response", (h) => {
      if (drop) return;
      const answer = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(":") || k === ":status"));
      if ("grpc-status" in h) stream.respond(answer, { endStream: true }); // trailers-only
      else stream.respond(answer, { waitForTrailers: true });
    });
    up.on("trailers", (t) => { trailers = t; });
    stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    up.on("data", (chunk) => { if (!drop && !stream.destroyed && !stream.closed) stream.write(chunk); });
    up.on("end", () => {
      if (drop) {
        stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "14", "grpc-message": "answer lost" }, { endStream: true });
      } else if (!stream.closed) {
        stream.end();
      }
    });
  });
  return new Promise((resolve) => proxy.server.listen(0, "127.0.0.1", () => {
    proxy.address = `127.0.0.1:${proxy.server.address().port}`;
    proxy.close = () => { session.close(); proxy.server.close(); };
    resolve(proxy);
  }));
}

describe("safe defaults", () => {
  it("retries a mutating call after UNAVAILABLE with its request id: the server does it once", async () => {
    const projectId = await project(["a"]);
    const proxy = await dropFirstAnswerProxy(ADDRESS, "CreateWorkOrder");
    const viaProxy = createClients(proxy.address, { timeoutMs: 20_000 });
    try {
      const { workOrder: created } = await viaProxy.workOrders.createWorkOrder({ projectId, workflowId: "wf" });
      assert.equal(proxy.forwarded, 2, "the first answer was dropped and the call retried");
      const { workOrders } = await rs.workOrders.listWorkOrders({ projectId });
      assert.deepEqual(workOrders.map((w) => w.id), [created.id], "one work order, the one answered");
      // Without retries the lost answer is the caller's error.
      const noRetry = createClients(proxy.address, { retry: false });
      proxy.forwarded = 0;
      await assert.rejects(noRetry.workOrders.createWorkOrder({ projectId, workflowId: "wf" }),
        (e) => e instanceof ConnectError && e.code === Code.Unavailable);
      noRetry.close();
    } finally {
      viaProxy.close();
      proxy.close();
    }
  });

  it("fieldViolations names every wrong field of a refused request", async () => {
    const projectId = await project(["a"]);
    const err = await rs.workflows.createWorkflow({
      workflow: { id: "dup", projectId, steps: [{ id: "a" }, { id: "a" }], edges: [{ sourceStepId: "a", targetStepId: "nowhere" }] },
    }).then(() => assert.fail("a bad workflow was accepted"), (e) => e);
    assert.equal(err.code, Code.InvalidArgument);
    const violations = fieldViolations(err);
    assert.deepEqual(violations.map((v) => v.field),
      ["workflow.steps[1].id", "workflow.edges[0].target_step_id", "workflow.edges[0].condition"]);
    assert.match(violations[0].description, /duplicate step id/);
    assert.deepEqual(fieldViolations(new Error("not a call's")), []);
  });
});

describe("watch", () => {
  it("resumes from its cursor across a server restart: no event lost or repeated", async () => {
    const projectId = await project(["a"]);
    const before = [];
    for (let i = 0; i < 5; i++) before.push((await workOrder(projectId, { i })).id);
    const stop = new AbortController();
    const seen = [];
    let restarted = false;
    const afterRestart = [];
    for await (const { event, cursor } of rs.watch({ projectId }, { signal: stop.signal })) {
      assert.ok(cursor);
      seen.push(event);
      if (seen.length === 3 && !restarted) {
        // Stopped and started again on the same database and port, while the watch is open.
        const answer = await fetch(`${env("RUNSTATUS_CONTROL")}/restart`, { method: "POST" });
        assert.equal(answer.status, 200, await answer.text());
        restarted = true;
        for (let i = 0; i < 3; i++) afterRestart.push((await workOrder(projectId, { i, after: true })).id);
      }
      if (seen.length === before.length + afterRestart.length && restarted) stop.abort();
    }
    assert.ok(restarted);
    const sequences = seen.map((e) => e.sequence);
    assert.deepEqual(sequences, [...sequences].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    assert.equal(new Set(sequences).size, sequences.length, "an event repeated");
    assert.deepEqual(seen.map((e) => e.workOrderId), [...before, ...afterRestart], "an event lost");
  });

  it("a watch is exempt from the client's deadline and ends when its signal aborts", async () => {
    const quick = createClients(ADDRESS, { timeoutMs: 300 });
    const projectId = await project(["a"]);
    const stop = new AbortController();
    setTimeout(() => void workOrder(projectId), 800); // after the deadline would have cut it
    const events = [];
    for await (const { event } of quick.watch({ projectId, fromNow: true }, { signal: stop.signal })) {
      events.push(event);
      stop.abort();
    }
    assert.equal(events.length, 1);
    assert.equal(events[0].status, RunStatus.PENDING);
    quick.close();
  });
});

describe("batched watch", () => {
  /** The first `n` events of a watch (then it stops). */
  async function take(request, n, options = {}) {
    const got = [];
    for await (const item of rs.watch(request, options)) {
      got.push(item);
      if (got.length === n) break;
    }
    return got;
  }
  const plain = (items) => items.map(({ event, cursor }) => ({ cursor, sequence: event.sequence, workOrderId: event.workOrderId, status: event.status }));

  it("yields the same events, in order, with the same cursors as an unbatched watch, and resumes mid-batch", async () => {
    const projectId = await project(["a"]);
    for (let i = 0; i < 7; i++) await workOrder(projectId, { i });
    const want = await take({ projectId }, 7);
    assert.deepEqual(want.map(({ cursor, event }) => cursor === String(event.sequence)), Array(7).fill(true));
    const batching = { batch: 3, maxDelayMs: 50 };
    assert.deepEqual(plain(await take({ projectId }, 7, batching)), plain(want));

    // The server did send them three to a message.
    const stop = new AbortController();
    for await (const raw of rs.workOrders.watchWorkOrders(
      { projectId, batching: { maxEvents: 3, maxDelay: { nanos: 50_000_000 } } }, { signal: stop.signal, timeoutMs: 0 })) {
      assert.equal(raw.events.length, 3);
      assert.equal(raw.event, undefined);
      assert.equal(raw.cursor, want[2].cursor);
      stop.abort();
      break;
    }

    // Stopped after the second batch's middle event: its cursor resumes with the rest.
    const stopped = await take({ projectId }, 5, batching);
    assert.deepEqual(plain(stopped), plain(want.slice(0, 5)));
    const resumed = await take({ projectId, afterCursor: stopped[4].cursor }, 2, batching);
    assert.deepEqual(plain(resumed), plain(want.slice(5)));
  });
});

describe("watch after pruning", () => {
  it("ends with a CursorExpiredError when the events after its cursor were pruned", async () => {
    const pruning = createClients(env("RUNSTATUS_PRUNING_ADDRESS"), { timeoutMs: 20_000 });
    const projectId = `ts-live-${randomBytes(4).toString("hex")}`;
    await pruning.projects.createProject({ project: { id: projectId } });
    await pruning.projects.updateProject({
      project: { id: projectId, retention: { statuses: [{ status: RunStatus.CANCELLED, keep: { seconds: 1n } }] } },
      updateMask: { paths: ["retention"] },
    });
    await pruning.workflows.createWorkflow({ workflow: { id: "wf", projectId, steps: [{ id: "a" }] } });
    const { workOrder, run } = await pruning.workOrders.createWorkOrder({ projectId, workflowId: "wf" });
    await pruning.workOrders.cancelRun({ runId: run.id, reason: "to be pruned" });
    let old = "";
    for await (const { cursor } of pruning.watch({ projectId })) {
      old = cursor;
      break;
    }
    for (let gone = false; !gone;) {
      try {
        await pruning.workOrders.getWorkOrder({ workOrderId: workOrder.id });
        await new Promise((r) => setTimeout(r, 100));
      } catch (e) {
        assert.ok(e instanceof ConnectError && e.code === Code.NotFound, String(e));
        gone = true;
      }
    }
    await assert.rejects(async () => {
      for await (const _ of pruning.watch({ projectId, afterCursor: old })) assert.fail("no event after a pruned cursor");
    }, (e) => e instanceof CursorExpiredError && e.oldestCursor !== "" && e.code === Code.OutOfRange);
    pruning.close();
  });
});

describe("tls", () => {
  const pem = (name) => readFileSync(env(name));

  it("verifies the server against a private CA", async () => {
    const secure = createClients(`localhost:${env("RUNSTATUS_TLS_ADDRESS").split(":").pop()}`, { ca: pem("RUNSTATUS_CA") });
    try {
      const { classification } = await secure.classifier.classify({ error: { name: "TypeError" } });
      assert.equal(classification.rule, "seed:TypeError");
    } finally {
      secure.close();
    }
    // Without the CA the server's certificate is not trusted.
    const untrusting = createClients(`localhost:${env("RUNSTATUS_TLS_ADDRESS").split(":").pop()}`, { tls: true, retry: false });
    await assert.rejects(untrusting.classifier.classify({ error: { name: "TypeError" } }), ConnectError);
    untrusting.close();
  });

  it("presents a client certificate to a server that requires one (mTLS)", async () => {
    const address = `localhost:${env("RUNSTATUS_MTLS_ADDRESS").split(":").pop()}`;
    const mine = createClients(address, { ca: pem("RUNSTATUS_CA"), cert: pem("RUNSTATUS_CLIENT_CERT"), key: pem("RUNSTATUS_CLIENT_KEY") });
    try {
      const { classification } = await mine.classifier.classify({ error: { name: "OomError" } });
      assert.equal(classification.abortsRun, true);
    } finally {
      mine.close();
    }
    const anonymous = createClients(address, { ca: pem("RUNSTATUS_CA"), retry: false, timeoutMs: 5000 });
    await assert.rejects(anonymous.classifier.classify({ error: { name: "OomError" } }), ConnectError);
    anonymous.close();
  });
});

describe("tokens and notifications", () => {
  it("TokenService: who the caller is, a token made, used, listed and revoked", async () => {
    const address = env("RUNSTATUS_AUTH_ADDRESS");
    const admin = createClients(address, { token: env("RUNSTATUS_ADMIN_TOKEN") });
    const nobody = createClients(address, { retry: false });
    try {
      const me = await admin.tokens.getCallerToken({});
      assert.equal(me.token.role, Role.ADMIN);
      assert.ok(me.allowedMethods.some((m) => m.endsWith("CreateToken")), me.allowedMethods.join());
      const { token, secret } = await admin.tokens.createToken({ projectId: "default", role: Role.WORKER, name: "ts-live" });
      const worker = createClients(address, { token: secret });
      assert.equal((await worker.tokens.getCallerToken({})).token.id, token.id);
      worker.close();
      const { tokens } = await admin.tokens.listTokens({ projectId: "default" });
      assert.ok(tokens.some((t) => t.id === token.id));
      await admin.tokens.revokeToken({ tokenId: token.id });
      await assert.rejects(nobody.classifier.classify({ error: { name: "TypeError" } }),
        (e) => e instanceof ConnectError && e.code === Code.Unauthenticated);
    } finally {
      admin.close();
      nobody.close();
    }
  });

  it("NotificationService: the server answers its calls, and its refusals carry their reasons", async () => {
    const { subscriptions } = await rs.notifications.listNotificationSubscriptions({});
    assert.ok(Array.isArray(subscriptions));
    const missing = await rs.notifications.getNotificationSubscription({ subscriptionId: "nope" })
      .then(() => assert.fail("an unknown subscription was found"), (e) => e);
    assert.equal(missing.code, Code.NotFound);
    assert.equal(reasonOf(missing), ErrorReason.NOTIFICATION_SUBSCRIPTION_NOT_FOUND);
    assert.equal(reasonOf(new Error("x")), ErrorReason.UNSPECIFIED);
  });
});
