// The helpers, without a server: npm test.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";

import { baseUrl, bearerAuth, createClientsFromTransport } from "../src/client";
import { decodeErrorInfo, errorInfo, grpcCodeName } from "../src/errors";
import { ClassifierService } from "../src/gen/runstatus/v1/classifier_service_pb";
import { ErrorType, ErrorTypeSchema, RunStatus, RunStatusSchema } from "../src/gen/runstatus/v1/status_pb";
import {
  abortsRun,
  chip,
  errorTypeFromName,
  errorTypeInfo,
  errorTypeName,
  hasAbortsRun,
  isTerminal,
  label,
  notifiesAdmin,
  runStatusFromName,
  runStatusName,
  statusInfo,
  statusOf,
} from "../src/statusTable";

describe("status table", () => {
  it("reads chips, labels and colors from the status_info options", () => {
    assert.equal(chip(RunStatus.FAILED), "🔴");
    assert.equal(chip(RunStatus.SUCCESS), "🟢");
    assert.equal(chip(RunStatus.KILLED), "🟡");
    assert.equal(label(RunStatus.CANCELLED), "Cancelled");
    assert.equal(statusInfo(RunStatus.CRASHED)?.color, "orange");
  });

  it("knows which statuses are terminal", () => {
    assert.equal(isTerminal(RunStatus.PENDING), false);
    assert.equal(isTerminal(RunStatus.RUNNING), false);
    for (const s of [RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.LOST, RunStatus.REJECTED]) {
      assert.equal(isTerminal(s), true, runStatusName(s));
    }
  });

  it("tells an unset abort flag (the seed's '-') from false", () => {
    assert.equal(hasAbortsRun(RunStatus.PENDING), false);
    assert.equal(abortsRun(RunStatus.PENDING), undefined);
    assert.equal(abortsRun(RunStatus.SUCCESS), undefined);
    assert.equal(abortsRun(RunStatus.REJECTED), undefined);
    assert.equal(hasAbortsRun(RunStatus.FAILED), true);
    assert.equal(abortsRun(RunStatus.FAILED), false);
    assert.equal(abortsRun(RunStatus.CRASHED), true);
    assert.equal(abortsRun(RunStatus.EXCEPTION), true);
  });

  it("notifies the admin of EXCEPTION and LOST only", () => {
    const notified = RunStatusSchema.values.filter((v) => notifiesAdmin(v.number as RunStatus)).map((v) => v.name);
    assert.deepEqual(notified, ["RUN_STATUS_EXCEPTION", "RUN_STATUS_LOST"]);
  });

  it("has a StatusInfo on every RunStatus but UNSPECIFIED", () => {
    assert.equal(statusInfo(RunStatus.UNSPECIFIED), undefined);
    assert.equal(chip(RunStatus.UNSPECIFIED), "");
    assert.equal(RunStatusSchema.values.length, 11);
    for (const v of RunStatusSchema.values.slice(1)) assert.ok(statusInfo(v.number as RunStatus), v.name);
    assert.throws(() => statusInfo(99 as RunStatus), RangeError);
  });

  it("maps error types to their seed names and statuses", () => {
    assert.equal(errorTypeName(ErrorType.OOM_ERROR), "OomError");
    assert.equal(statusOf(ErrorType.OOM_ERROR), RunStatus.KILLED);
    assert.equal(statusOf(ErrorType.JOB_ERROR), RunStatus.FAILED);
    assert.equal(statusOf(ErrorType.SYNTAX_ERROR), RunStatus.CRASHED);
    assert.equal(statusOf(ErrorType.UNSPECIFIED), RunStatus.UNSPECIFIED);
    assert.equal(errorTypeName(ErrorType.UNSPECIFIED), "");
    assert.equal(errorTypeInfo(ErrorType.UNSPECIFIED), undefined);
    // Every error type leads to a terminal status.
    for (const v of ErrorTypeSchema.values.slice(1)) assert.ok(isTerminal(statusOf(v.number as ErrorType)), v.name);
  });

  it("converts enum values to and from their proto names", () => {
    assert.equal(runStatusName(RunStatus.CRASHED), "RUN_STATUS_CRASHED");
    assert.equal(runStatusName(42 as RunStatus), "runstatus.v1.RunStatus(42)");
    assert.equal(runStatusFromName("RUN_STATUS_LOST"), RunStatus.LOST);
    assert.equal(errorTypeFromName("ERROR_TYPE_TIMEOUT_ERROR"), ErrorType.TIMEOUT_ERROR);
    assert.throws(() => runStatusFromName("LOST"), RangeError);
  });
});

/** google.rpc.ErrorInfo, encoded by hand, with an unknown field 9 to skip. */
function encodeErrorInfo(reason: string, domain: string, metadata: Record<string, string>): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string(reason);
  w.tag(9, WireType.Varint).int32(7);
  w.tag(2, WireType.LengthDelimited).string(domain);
  for (const [k, v] of Object.entries(metadata)) {
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(k);
    w.tag(2, WireType.LengthDelimited).string(v);
    w.join();
  }
  return w.finish();
}

/** google.rpc.Status { code, message, details: [Any] }, as grpc-status-details-bin carries it. */
function encodeStatus(code: number, message: string, details: [string, Uint8Array][]): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.Varint).int32(code);
  w.tag(2, WireType.LengthDelimited).string(message);
  for (const [typeUrl, value] of details) {
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(typeUrl);
    w.tag(2, WireType.LengthDelimited).bytes(value);
    w.join();
  }
  return w.finish();
}

describe("errors", () => {
  const info = encodeErrorInfo("RUN_NOT_RUNNING", "runstatus.dev", {
    current_status: "RUN_STATUS_CRASHED",
    run_id: "r-1",
  });

  it("decodes an ErrorInfo, skipping unknown fields", () => {
    assert.deepEqual(decodeErrorInfo(info), {
      reason: "RUN_NOT_RUNNING",
      domain: "runstatus.dev",
      metadata: { current_status: "RUN_STATUS_CRASHED", run_id: "r-1" },
    });
    assert.deepEqual(decodeErrorInfo(new Uint8Array()), { reason: "", domain: "", metadata: {} });
  });

  it("finds the ErrorInfo in the details of a gRPC error from the trailers", () => {
    const badRequest = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(new Uint8Array([10, 1, 120])).finish();
    const status = encodeStatus(Code.FailedPrecondition, "run is CRASHED", [
      ["type.googleapis.com/google.rpc.BadRequest", badRequest],
      ["type.googleapis.com/google.rpc.ErrorInfo", info],
    ]);
    const trailer = new Headers({
      "grpc-status": "9",
      "grpc-message": "run%20is%20CRASHED",
      "grpc-status-details-bin": Buffer.from(status).toString("base64"),
    });
    const err = findTrailerError(trailer);
    assert.ok(err instanceof ConnectError);
    assert.equal(grpcCodeName(err.code), "FAILED_PRECONDITION");
    assert.equal(err.rawMessage, "run is CRASHED");
    const got = errorInfo(err);
    assert.equal(got?.reason, "RUN_NOT_RUNNING");
    assert.equal(got?.metadata["current_status"], "RUN_STATUS_CRASHED");
  });

  it("gives undefined without an ErrorInfo", () => {
    assert.equal(errorInfo(new ConnectError("no details", Code.NotFound)), undefined);
    assert.equal(errorInfo(new Error("not a ConnectError")), undefined);
    assert.equal(errorInfo(undefined), undefined);
  });

  it("spells codes as gRPC does", () => {
    assert.equal(grpcCodeName(Code.Canceled), "CANCELLED");
    assert.equal(grpcCodeName(Code.InvalidArgument), "INVALID_ARGUMENT");
    assert.equal(grpcCodeName(Code.NotFound), "NOT_FOUND");
    assert.equal(grpcCodeName(Code.Unauthenticated), "UNAUTHENTICATED");
  });
});

describe("client", () => {
  it("sends the token as a bearer authorization header", async () => {
    const transport = createRouterTransport(
      ({ service }) => {
        service(ClassifierService, {
          classify: (req, ctx) => ({
            classification: { rule: `${ctx.requestHeader.get("authorization")} ${req.error?.name}` },
          }),
        });
      },
      { transport: { interceptors: [bearerAuth("s3cret")] } },
    );
    const clients = createClientsFromTransport(transport);
    const answer = await clients.classifier.classify({ error: { name: "TypeError" } });
    assert.equal(answer.classification?.rule, "Bearer s3cret TypeError");
  });

  it("makes base URLs from addresses", () => {
    assert.equal(baseUrl("127.0.0.1:50051"), "http://127.0.0.1:50051");
    assert.equal(baseUrl("runstatus.example:443", true), "https://runstatus.example:443");
    assert.equal(baseUrl("https://runstatus.example"), "https://runstatus.example");
  });
});
