/**
 * @runstatus/client: the TypeScript (Node) client of runstatus.
 *
 * - {@link createClients}: the seven services over one gRPC connection, with retries of
 *   UNAVAILABLE, request ids, a token, TLS with a private CA and client certificates.
 * - {@link Worker} and {@link Lease}: claim runs, execute steps, report, heartbeat honouring `stop`.
 * - {@link watchWorkOrders}: the event log as an AsyncIterable that resumes from its cursor.
 * - {@link fieldViolations}, {@link reasonOf}, {@link errorInfo}: what a refusal says.
 * - The status table from the generated descriptors: {@link chip}, {@link isTerminal}, ...
 *
 * The generated messages and services are at `@runstatus/client/gen/runstatus/v1/<file>_pb`.
 *
 * @packageDocumentation
 */
export * from "./client.js";
export * from "./defaults.js";
export * from "./errors.js";
export * from "./plan.js";
export * from "./statusTable.js";
export * from "./watch.js";
export * from "./worker.js";
export { ErrorReason, ErrorReasonSchema } from "./gen/runstatus/v1/error_reason_pb.js";
