package client

import (
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// enumValueOption is the value of ext on the enum value number n of enum, or
// nil if the value or the option is not there.
func enumValueOption(enum protoreflect.EnumDescriptor, n protoreflect.EnumNumber, ext protoreflect.ExtensionType) any {
	value := enum.Values().ByNumber(n)
	if value == nil {
		return nil
	}
	opts, ok := value.Options().(*descriptorpb.EnumValueOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, ext) {
		return nil
	}
	return proto.GetExtension(opts, ext)
}

// StatusInfo is what the status table says about a run status, read from its
// runstatus.v1.status_info option; nil for RUN_STATUS_UNSPECIFIED or an
// unknown value.
func StatusInfo(s runstatusv1.RunStatus) *runstatusv1.StatusInfo {
	info, _ := enumValueOption(s.Descriptor(), s.Number(), runstatusv1.E_StatusInfo).(*runstatusv1.StatusInfo)
	return info
}

// ErrorTypeInfo is what the status table says about an error type, read from
// its runstatus.v1.error_type_info option; nil for ERROR_TYPE_UNSPECIFIED or
// an unknown value.
func ErrorTypeInfo(t runstatusv1.ErrorType) *runstatusv1.ErrorTypeInfo {
	info, _ := enumValueOption(t.Descriptor(), t.Number(), runstatusv1.E_ErrorTypeInfo).(*runstatusv1.ErrorTypeInfo)
	return info
}

// Chip is the status's emoji chip, e.g. "🔴" for RUN_STATUS_FAILED; "" if none.
func Chip(s runstatusv1.RunStatus) string { return StatusInfo(s).GetChip() }

// Label is the seed's spelling of the status, e.g. "Failed"; "" if none.
func Label(s runstatusv1.RunStatus) string { return StatusInfo(s).GetLabel() }

// IsTerminal tells whether a run in this status never changes again (a LOST
// run may still be corrected once).
func IsTerminal(s runstatusv1.RunStatus) bool { return StatusInfo(s).GetTerminal() }

// AbortsRun is the seed's "Abort Run?" column: false where it says "No" and
// where it does not apply ("-"); see StatusInfo(s).AbortsRun to tell them apart.
func AbortsRun(s runstatusv1.RunStatus) bool { return StatusInfo(s).GetAbortsRun() }

// StatusOf is the run status an error type leads to, e.g. RUN_STATUS_KILLED
// for ERROR_TYPE_IMPORT_ERROR; RUN_STATUS_UNSPECIFIED if none.
func StatusOf(t runstatusv1.ErrorType) runstatusv1.RunStatus { return ErrorTypeInfo(t).GetStatus() }

// ErrorTypeName is the seed's spelling of the error type, e.g. "OomError"; "" if none.
func ErrorTypeName(t runstatusv1.ErrorType) string { return ErrorTypeInfo(t).GetName() }

// ErrorInfo is the google.rpc.ErrorInfo among the details of a gRPC error's
// status (e.g. reason "EDGE_CONDITION_NOT_MET", metadata "current_status"),
// or nil if err is not a gRPC status error or has none.
func ErrorInfo(err error) *errdetails.ErrorInfo {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, detail := range st.Proto().GetDetails() {
		info := &errdetails.ErrorInfo{}
		if detail.MessageIs(info) && detail.UnmarshalTo(info) == nil {
			return info
		}
	}
	return nil
}

// FieldViolations are the wrong fields an INVALID_ARGUMENT names: the
// google.rpc.BadRequest among the details of a gRPC error's status, one
// violation per field (Field is its path, e.g. "workflow.edges[0].target_step_id";
// Description says what is wrong). Nil if err is not a gRPC status error or has
// no BadRequest.
//
//	for _, v := range client.FieldViolations(err) {
//		fmt.Printf("%s: %s\n", v.GetField(), v.GetDescription())
//	}
func FieldViolations(err error) []*errdetails.BadRequest_FieldViolation {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var violations []*errdetails.BadRequest_FieldViolation
	for _, detail := range st.Proto().GetDetails() {
		bad := &errdetails.BadRequest{}
		if detail.MessageIs(bad) && detail.UnmarshalTo(bad) == nil {
			violations = append(violations, bad.GetFieldViolations()...)
		}
	}
	return violations
}

// reasonPrefix is what an ErrorReason value's name has and ErrorInfo.reason lacks.
const reasonPrefix = "ERROR_REASON_"

// ParseReason is the ErrorReason that an ErrorInfo.reason names: "RUN_ENDED" is
// ERROR_REASON_RUN_ENDED. It is ERROR_REASON_UNSPECIFIED for "", for
// "UNSPECIFIED", for a string that already starts with "ERROR_REASON_", and for
// a reason this client does not know (a newer server's); names are
// case-sensitive.
func ParseReason(wire string) runstatusv1.ErrorReason {
	if wire == "" || wire == "UNSPECIFIED" || strings.HasPrefix(wire, reasonPrefix) {
		return runstatusv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	if n, ok := runstatusv1.ErrorReason_value[reasonPrefix+wire]; ok {
		return runstatusv1.ErrorReason(n)
	}
	return runstatusv1.ErrorReason_ERROR_REASON_UNSPECIFIED
}

// WireReason is what ErrorInfo.reason says for an ErrorReason: its name without
// the "ERROR_REASON_" prefix, e.g. "RUN_ENDED" for ERROR_REASON_RUN_ENDED
// ("UNSPECIFIED" for ERROR_REASON_UNSPECIFIED); "" for a number the enum does
// not have.
func WireReason(r runstatusv1.ErrorReason) string {
	value := r.Descriptor().Values().ByNumber(r.Number())
	if value == nil {
		return ""
	}
	return strings.TrimPrefix(string(value.Name()), reasonPrefix)
}

// ReasonOf is the ErrorReason of an error returned by a call, parsed from its
// ErrorInfo with ParseReason, to branch on:
//
//	if client.ReasonOf(err) == runstatusv1.ErrorReason_ERROR_REASON_RUN_ENDED { ... }
//
// It is ERROR_REASON_UNSPECIFIED if err carries no ErrorInfo (or is nil) or
// names a reason this client does not know.
func ReasonOf(err error) runstatusv1.ErrorReason {
	return ParseReason(ErrorInfo(err).GetReason())
}
