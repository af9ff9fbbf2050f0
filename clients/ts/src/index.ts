export * from "./client";
export * from "./errors";
export * from "./statusTable";
export { ErrorReason, ErrorReasonSchema } from "./gen/runstatus/v1/error_reason_pb";
