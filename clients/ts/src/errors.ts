/**
 * gRPC errors from runstatus: the server sends `grpc-status-details-bin`, a
 * google.rpc.Status whose details are Any(google.rpc.ErrorInfo) and, for bad
 * input, Any(google.rpc.BadRequest). connect-es keeps them undecoded on
 * ConnectError.details as { type, value }; this decodes the ErrorInfo.
 *
 * ErrorInfo.reason is an ErrorReason (error_reason.proto) named without its
 * "ERROR_REASON_" prefix: "RUN_ENDED" for ErrorReason.RUN_ENDED. parseReason and
 * wireReason convert between the two; reasonOf gives the reason of a thrown error.
 * fieldViolations gives the BadRequest's field violations: every wrong field of a request.
 *
 * @module
 */

import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

import { ErrorReason, ErrorReasonSchema } from "./gen/runstatus/v1/error_reason_pb.js";

/** google.rpc.ErrorInfo (google/rpc/error_details.proto). */
export interface ErrorInfo {
  /** The reason, an ErrorReason's name without its prefix, e.g. "RUN_ENDED" (see {@link parseReason}). */
  reason: string;
  /** "runstatus.v1" for the server's own errors. */
  domain: string;
  /** Facts about the error, e.g. `current_status` for a refused transition. */
  metadata: Record<string, string>;
}

/** The type name of an ErrorInfo detail. */
export const ERROR_INFO_TYPE = "google.rpc.ErrorInfo";

/** The type name of a BadRequest detail. */
export const BAD_REQUEST_TYPE = "google.rpc.BadRequest";

/** One wrong field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  /** The field's path, e.g. "workflow.steps[1].id". */
  field: string;
  /** What is wrong with it. */
  description: string;
  /** A machine-readable reason, when the server gives one; "" otherwise. */
  reason: string;
}

/** The gRPC status code names, e.g. Code.FailedPrecondition → "FAILED_PRECONDITION". */
const GRPC_CODE_NAMES: Record<Code, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/** The gRPC name of a connect Code, as grpcio and the other clients spell it. */
export function grpcCodeName(code: Code): string {
  return GRPC_CODE_NAMES[code] ?? `CODE_${code as number}`;
}

/** Decodes a serialized google.rpc.ErrorInfo. */
export function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) {
      info.reason = reader.string();
    } else if (field === 2 && wireType === WireType.LengthDelimited) {
      info.domain = reader.string();
    } else if (field === 3 && wireType === WireType.LengthDelimited) {
      // map<string, string> metadata: each entry is a message { key = 1; value = 2; }.
      const entry = new BinaryReader(reader.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [n, w] = entry.tag();
        if (n === 1 && w === WireType.LengthDelimited) key = entry.string();
        else if (n === 2 && w === WireType.LengthDelimited) value = entry.string();
        else entry.skip(w, n);
      }
      info.metadata[key] = value;
    } else {
      reader.skip(wireType, field);
    }
  }
  return info;
}

/** Decodes a serialized google.rpc.BadRequest into its field violations. */
export function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const violations: FieldViolation[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field !== 1 || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, field);
      continue;
    }
    const violation: FieldViolation = { field: "", description: "", reason: "" };
    const entry = new BinaryReader(reader.bytes());
    while (entry.pos < entry.len) {
      const [n, w] = entry.tag();
      if (n === 1 && w === WireType.LengthDelimited) violation.field = entry.string();
      else if (n === 2 && w === WireType.LengthDelimited) violation.description = entry.string();
      else if (n === 3 && w === WireType.LengthDelimited) violation.reason = entry.string();
      else entry.skip(w, n);
    }
    violations.push(violation);
  }
  return violations;
}

/**
 * The field violations of the google.rpc.BadRequest in an error's status details: every wrong
 * field of the request the server refused (INVALID_ARGUMENT). [] if the error is not a
 * ConnectError or carries no BadRequest.
 *
 *     try { await rs.workflows.createWorkflow({ workflow: { id: "" } }); }
 *     catch (e) { for (const v of fieldViolations(e)) console.log(v.field, v.description); }
 */
export function fieldViolations(err: unknown): FieldViolation[] {
  if (!(err instanceof ConnectError)) return [];
  return err.details.flatMap((detail) =>
    "type" in detail && detail.type === BAD_REQUEST_TYPE ? decodeBadRequest(detail.value) : []);
}

/**
 * The google.rpc.ErrorInfo in an error's status details; undefined if the error is
 * not a ConnectError or carries none.
 */
export function errorInfo(err: unknown): ErrorInfo | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  for (const detail of err.details) {
    if ("type" in detail && detail.type === ERROR_INFO_TYPE) return decodeErrorInfo(detail.value);
  }
  return undefined;
}

/** The prefix of every ErrorReason value's proto name, which ErrorInfo.reason leaves off. */
export const REASON_PREFIX = "ERROR_REASON_";

/**
 * An ErrorInfo.reason ("RUN_ENDED") as its ErrorReason; ErrorReason.UNSPECIFIED for ""
 * or one this client does not know (a newer server's), and for a string that already
 * carries the prefix or is "UNSPECIFIED" itself.
 */
export function parseReason(wire: string): ErrorReason {
  if (!wire || wire.startsWith(REASON_PREFIX) || wire === "UNSPECIFIED") return ErrorReason.UNSPECIFIED;
  const value = ErrorReasonSchema.values.find((v) => v.name === REASON_PREFIX + wire);
  return value === undefined ? ErrorReason.UNSPECIFIED : (value.number as ErrorReason);
}

/**
 * What ErrorInfo.reason says for an ErrorReason: its proto name without the prefix,
 * e.g. "RUN_ENDED" ("UNSPECIFIED" for ErrorReason.UNSPECIFIED). Throws a RangeError for a
 * number the enum does not have.
 */
export function wireReason(reason: ErrorReason): string {
  const value = ErrorReasonSchema.value[reason];
  if (value === undefined) throw new RangeError(`${ErrorReasonSchema.typeName} has no value ${reason as number}`);
  return value.name.slice(REASON_PREFIX.length);
}

/**
 * The ErrorReason of an error a call threw, to branch on:
 * `reasonOf(e) === ErrorReason.RUN_ENDED`. ErrorReason.UNSPECIFIED if the error is not
 * a ConnectError, carries no ErrorInfo, or names a reason this client does not know.
 */
export function reasonOf(err: unknown): ErrorReason {
  return parseReason(errorInfo(err)?.reason ?? "");
}
