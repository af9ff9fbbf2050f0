// The error reason helpers, without a server: npm test.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";

import { parseReason, reasonOf, wireReason } from "../src/errors";
import { ErrorReason, ErrorReasonSchema } from "../src/gen/runstatus/v1/error_reason_pb";
import * as index from "../src/index";

/** A gRPC error from trailers whose status details hold one ErrorInfo with `reason`. */
function errorWithReason(reason: string): ConnectError {
  const info = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(reason)
    .tag(2, WireType.LengthDelimited)
    .string("runstatus.v1")
    .finish();
  const status = new BinaryWriter();
  status.tag(1, WireType.Varint).int32(Code.FailedPrecondition);
  status.tag(2, WireType.LengthDelimited).string("refused");
  status.tag(3, WireType.LengthDelimited).fork();
  status.tag(1, WireType.LengthDelimited).string("type.googleapis.com/google.rpc.ErrorInfo");
  status.tag(2, WireType.LengthDelimited).bytes(info);
  status.join();
  const trailer = new Headers({
    "grpc-status": "9",
    "grpc-message": "refused",
    "grpc-status-details-bin": Buffer.from(status.finish()).toString("base64"),
  });
  const err = findTrailerError(trailer);
  assert.ok(err instanceof ConnectError);
  return err;
}

describe("error reasons", () => {
  it("round-trips every value through its wire name", () => {
    assert.equal(ErrorReasonSchema.values.length, 41); // UNSPECIFIED and the 40 of error_reason.proto
    for (const v of ErrorReasonSchema.values.slice(1)) {
      const reason = v.number as ErrorReason;
      const wire = wireReason(reason);
      assert.equal(wire, v.name.replace(/^ERROR_REASON_/, ""), v.name);
      assert.equal(parseReason(wire), reason, v.name);
    }
  });

  it("spells reasons as ErrorInfo does", () => {
    assert.equal(wireReason(ErrorReason.RUN_ENDED), "RUN_ENDED");
    assert.equal(wireReason(ErrorReason.EDGE_CONDITION_NOT_MET), "EDGE_CONDITION_NOT_MET");
    assert.equal(wireReason(ErrorReason.INTERNAL), "INTERNAL");
    assert.equal(wireReason(ErrorReason.UNSPECIFIED), "UNSPECIFIED");
    assert.equal(parseReason("RUN_ENDED"), ErrorReason.RUN_ENDED);
    assert.equal(parseReason("INVALID_ARGUMENT"), ErrorReason.INVALID_ARGUMENT);
    assert.throws(() => wireReason(99 as ErrorReason), RangeError);
  });

  it("parses unknown reasons as UNSPECIFIED", () => {
    for (const wire of ["", "NOT_A_REASON", "run_ended", "ERROR_REASON_RUN_ENDED", "UNSPECIFIED", " RUN_ENDED", "ERROR_REASON_"]) {
      assert.equal(parseReason(wire), ErrorReason.UNSPECIFIED, JSON.stringify(wire));
    }
  });

  it("gives the reason of a thrown error", () => {
    assert.equal(reasonOf(errorWithReason("RUN_NOT_RUNNING")), ErrorReason.RUN_NOT_RUNNING);
    assert.equal(reasonOf(errorWithReason("SOMETHING_NEWER")), ErrorReason.UNSPECIFIED);
    assert.equal(reasonOf(new ConnectError("no details", Code.NotFound)), ErrorReason.UNSPECIFIED);
    assert.equal(reasonOf(new Error("not a ConnectError")), ErrorReason.UNSPECIFIED);
    assert.equal(reasonOf(undefined), ErrorReason.UNSPECIFIED);
  });

  it("is exported from the package index", () => {
    assert.equal(index.ErrorReason.RUN_ENDED, ErrorReason.RUN_ENDED);
    assert.equal(index.parseReason("RUN_ENDED"), ErrorReason.RUN_ENDED);
    assert.equal(index.wireReason(ErrorReason.RUN_ENDED), "RUN_ENDED");
    assert.equal(typeof index.reasonOf, "function");
  });
});
