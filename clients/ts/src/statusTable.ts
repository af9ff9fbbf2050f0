/**
 * The status table, read from this client's own generated descriptors: the
 * `runstatus.v1.status_info` option on each RunStatus value and the
 * `runstatus.v1.error_type_info` option on each ErrorType value (status.proto).
 * Nothing here is re-typed from the table.
 *
 * @module
 */

import { getOption, hasOption, isFieldSet, type DescEnum, type DescEnumValue } from "@bufbuild/protobuf";

import {
  ErrorTypeSchema,
  RunStatus,
  RunStatusSchema,
  StatusInfoSchema,
  error_type_info,
  status_info,
  type ErrorType,
  type ErrorTypeInfo,
  type StatusInfo,
} from "./gen/runstatus/v1/status_pb.js";

function valueOf(schema: DescEnum, n: number): DescEnumValue {
  const value = schema.value[n];
  if (value === undefined) throw new RangeError(`${schema.typeName} has no value ${n}`);
  return value;
}

/** The full proto name of an enum value, e.g. "RUN_STATUS_FAILED"; "<TypeName>(n)" if unknown. */
export function enumName(schema: DescEnum, n: number): string {
  return schema.value[n]?.name ?? `${schema.typeName}(${n})`;
}

/** An enum value by its full proto name, e.g. "RUN_STATUS_FAILED". */
export function enumValue(schema: DescEnum, name: string): number {
  const value = schema.values.find((v) => v.name === name);
  if (value === undefined) throw new RangeError(`${schema.typeName} has no value ${name}`);
  return value.number;
}

/** A RunStatus's proto name, e.g. "RUN_STATUS_FAILED". */
export const runStatusName = (status: RunStatus): string => enumName(RunStatusSchema, status);
/** The RunStatus of a proto name ("RUN_STATUS_FAILED"); throws a RangeError for an unknown one. */
export const runStatusFromName = (name: string): RunStatus => enumValue(RunStatusSchema, name) as RunStatus;
/** An ErrorType's proto name, e.g. "ERROR_TYPE_TYPE_ERROR" ({@link errorTypeName} gives the seed's "TypeError"). */
export const errorTypeEnumName = (errorType: ErrorType): string => enumName(ErrorTypeSchema, errorType);
/** The ErrorType of a proto name ("ERROR_TYPE_TYPE_ERROR"); throws a RangeError for an unknown one. */
export const errorTypeFromName = (name: string): ErrorType => enumValue(ErrorTypeSchema, name) as ErrorType;

/** The StatusInfo of a run status; undefined for a value without one (UNSPECIFIED). */
export function statusInfo(status: RunStatus): StatusInfo | undefined {
  const value = valueOf(RunStatusSchema, status);
  return hasOption(value, status_info) ? getOption(value, status_info) : undefined;
}

/** The seed's chip, e.g. "🔴"; "" for a status without one. */
export function chip(status: RunStatus): string {
  return statusInfo(status)?.chip ?? "";
}

/** The seed's spelling, e.g. "Failed"; "" for a status without one. */
export function label(status: RunStatus): string {
  return statusInfo(status)?.label ?? "";
}

/** A terminal status never changes again (a LOST run may be corrected once). */
export function isTerminal(status: RunStatus): boolean {
  return statusInfo(status)?.terminal ?? false;
}

/** Whether the seed's "Abort Run?" column applies to this status (false for its "-"). */
export function hasAbortsRun(status: RunStatus): boolean {
  const info = statusInfo(status);
  return info !== undefined && isFieldSet(info, StatusInfoSchema.field.abortsRun);
}

/**
 * The seed's "Abort Run?" column: true for "Yes", false for "No", and undefined
 * for "-" (the column does not apply, e.g. PENDING or SUCCESS).
 */
export function abortsRun(status: RunStatus): boolean | undefined {
  return hasAbortsRun(status) ? statusInfo(status)?.abortsRun : undefined;
}

/** The instance admin is notified when a run ends in this status. */
export function notifiesAdmin(status: RunStatus): boolean {
  return statusInfo(status)?.notifiesAdmin ?? false;
}

/** The ErrorTypeInfo of an error type; undefined for a value without one (UNSPECIFIED). */
export function errorTypeInfo(errorType: ErrorType): ErrorTypeInfo | undefined {
  const value = valueOf(ErrorTypeSchema, errorType);
  return hasOption(value, error_type_info) ? getOption(value, error_type_info) : undefined;
}

/** The run status an error type leads to; UNSPECIFIED for a value without one. */
export function statusOf(errorType: ErrorType): RunStatus {
  return errorTypeInfo(errorType)?.status ?? RunStatus.UNSPECIFIED;
}

/** The seed's spelling of an error type, e.g. "OomError"; "" for a value without one. */
export function errorTypeName(errorType: ErrorType): string {
  return errorTypeInfo(errorType)?.name ?? "";
}
