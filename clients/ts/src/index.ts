export * from "./client.js";
export * from "./errors.js";
export * from "./statusTable.js";
export { ErrorReason, ErrorReasonSchema } from "./gen/runstatus/v1/error_reason_pb.js";
