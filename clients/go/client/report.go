package client

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf8"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// StepError is an error that says how the server should classify it, the way
// a runtime's wrapper errors do (OpenFn's RuntimeError wraps a TypeError with
// severity "fail"). Return one, or wrap one, from a step function:
//
//	return nil, &client.StepError{Name: "RuntimeError", Subtype: "TypeError",
//		Severity: runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL, Err: err}
//
// or, with the runtime's own words (as Python's and TypeScript's helpers take
// them), NewStepError("ExecutionError", "", "crash", err).
//
// The server tries the seed's names first (on Subtype, then Name), then its
// alias table, then Severity; for one of OpenFn's own classes (ExecutionError,
// RuntimeCrash, ...) a Severity other than the class's default decides before
// the alias table; see the README's "Run statuses".
type StepError struct {
	// Name is the error's class as thrown, e.g. "TypeError"; empty: the Go
	// type of Err, as ReportOf names any error.
	Name string
	// Subtype is the wrapped error's class when Name is a wrapper.
	Subtype string
	// Severity is the runtime's own verdict, if it has one.
	Severity runstatusv1.ErrorSeverity
	// HTTPStatus is the status of a failed HTTP request the error came from; 0 if none.
	HTTPStatus int32
	// Err is the error itself; its message is the report's message.
	Err error
}

// NewStepError is a StepError from a runtime's words: its class name, the
// wrapped class (subtype, "" if none) and its severity as ParseSeverity reads
// it ("fail", "crash", "kill", "exception"; "CRASH" or "ERROR_SEVERITY_CRASH";
// "" or "-" for none). A severity the server does not know is reported as none,
// as the Python and TypeScript workers do with an error's own severity.
func NewStepError(name, subtype, severity string, err error) *StepError {
	s, _ := ParseSeverity(severity)
	return &StepError{Name: name, Subtype: subtype, Severity: s, Err: err}
}

// ParseSeverity reads a runtime's verdict the way the Python and TypeScript
// clients take it: OpenFn's word ("crash"), the short enum name ("CRASH") or
// the full one ("ERROR_SEVERITY_CRASH"), in any case and with spaces around;
// "" and "-" (OpenFn's "none given") are ERROR_SEVERITY_UNSPECIFIED. Anything
// else is an error, with ERROR_SEVERITY_UNSPECIFIED.
func ParseSeverity(s string) (runstatusv1.ErrorSeverity, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if name == "" || name == "-" {
		return runstatusv1.ErrorSeverity_ERROR_SEVERITY_UNSPECIFIED, nil
	}
	if !strings.HasPrefix(name, "ERROR_SEVERITY_") {
		name = "ERROR_SEVERITY_" + name
	}
	value, ok := runstatusv1.ErrorSeverity_value[name]
	if !ok || value == int32(runstatusv1.ErrorSeverity_ERROR_SEVERITY_UNSPECIFIED) {
		return runstatusv1.ErrorSeverity_ERROR_SEVERITY_UNSPECIFIED,
			fmt.Errorf("severity %q: want fail, crash, kill or exception", s)
	}
	return runstatusv1.ErrorSeverity(value), nil
}

// Error is Err's message; without Err, the name (and subtype).
func (e *StepError) Error() string {
	switch {
	case e.Err != nil:
		return e.Err.Error()
	case e.Subtype != "":
		return e.Name + ": " + e.Subtype
	}
	return e.Name
}

// Unwrap is Err, for errors.Is and errors.As.
func (e *StepError) Unwrap() error { return e.Err }

// The server limits the error fields in UTF-8 bytes.
const (
	maxNameBytes    = 256
	maxMessageBytes = 60_000
	maxStackBytes   = 200_000
)

// ReportOf is err as a step's ErrorReport for the server to classify (nil for
// nil): language "go", source JOB, the message err.Error(). The name is the
// Name of a *StepError found in err's chain (with its Subtype, Severity and
// HTTPStatus), else "context.DeadlineExceeded" for that error, else err's Go
// type ("*fs.PathError"; the server matches such names by their last dotted
// part too). Fields are cut to the server's byte limits on UTF-8 boundaries.
func ReportOf(err error) *runstatusv1.ErrorReport {
	if err == nil {
		return nil
	}
	report := &runstatusv1.ErrorReport{
		Name: typeName(err), Message: err.Error(), Language: "go", Source: runstatusv1.ErrorSource_ERROR_SOURCE_JOB,
	}
	var stepError *StepError
	if errors.As(err, &stepError) {
		if stepError.Name != "" {
			report.Name = stepError.Name
		} else if stepError.Err != nil {
			report.Name = typeName(stepError.Err)
		}
		report.Subtype = stepError.Subtype
		report.Severity = stepError.Severity
		report.HttpStatus = stepError.HTTPStatus
	}
	var p *panicError
	if errors.As(err, &p) {
		report.Stack = p.stack
	}
	var u *unregisteredError
	if errors.As(err, &u) {
		report.Source = runstatusv1.ErrorSource_ERROR_SOURCE_RUNTIME
	}
	report.Name = utf8Head(report.Name, maxNameBytes)
	report.Subtype = utf8Head(report.Subtype, maxNameBytes)
	report.Message = utf8Head(report.Message, maxMessageBytes)
	report.Stack = utf8Tail(report.Stack, maxStackBytes)
	return report
}

// typeName is how an error is named when nothing says otherwise.
func typeName(err error) string {
	switch e := err.(type) {
	case *panicError:
		return e.name
	case *unregisteredError:
		return "UnregisteredStep"
	}
	if err == context.DeadlineExceeded { // the alias table's name for it: a TimeoutError
		return "context.DeadlineExceeded"
	}
	return fmt.Sprintf("%T", err)
}

// panicError is a step function's panic. It is named as the alias table
// expects a Go panic: "runtime.Error" for the runtime's own (the server then
// reads the message: "nil pointer dereference" is a TypeError), the type of a
// *runtime.TypeAssertionError or of another error, else "panic".
type panicError struct {
	name  string
	value any
	stack string
}

func newPanicError(value any, stack []byte) *panicError {
	name := "panic"
	if err, ok := value.(error); ok {
		name = fmt.Sprintf("%T", err)
		var assertion *runtime.TypeAssertionError
		var runtimeError runtime.Error
		if !errors.As(err, &assertion) && errors.As(err, &runtimeError) {
			name = "runtime.Error"
		}
	}
	return &panicError{name: name, value: value, stack: string(stack)}
}

// Error is the panic's value, printed.
func (p *panicError) Error() string { return fmt.Sprint(p.value) }

// Unwrap lets a panic with a *StepError (or any error) be matched like a return.
func (p *panicError) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

// unregisteredError is a step the worker has no function for: the runtime's
// fault, not the job's, so the server makes it an EXCEPTION.
type unregisteredError struct{ stepID string }

// Error names the step.
func (u *unregisteredError) Error() string {
	return fmt.Sprintf("no function is registered for step %q", u.stepID)
}

// utf8Head is at most limit bytes of the start of s, never cutting a character.
func utf8Head(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// utf8Tail is at most limit bytes of the end of s, never cutting a character.
func utf8Tail(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := len(s) - limit
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return s[cut:]
}
