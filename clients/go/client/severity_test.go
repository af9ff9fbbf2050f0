package client

import (
	"errors"
	"fmt"
	"testing"

	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

func TestParseSeverity(t *testing.T) {
	for in, want := range map[string]runstatusv1.ErrorSeverity{
		"crash":                    runstatusv1.ErrorSeverity_ERROR_SEVERITY_CRASH,
		" Kill ":                   runstatusv1.ErrorSeverity_ERROR_SEVERITY_KILL,
		"FAIL":                     runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL,
		"error_severity_exception": runstatusv1.ErrorSeverity_ERROR_SEVERITY_EXCEPTION,
		"":                         runstatusv1.ErrorSeverity_ERROR_SEVERITY_UNSPECIFIED,
		"-":                        runstatusv1.ErrorSeverity_ERROR_SEVERITY_UNSPECIFIED,
	} {
		got, err := ParseSeverity(in)
		if err != nil || got != want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"fatal", "unspecified", "ERROR_SEVERITY_UNSPECIFIED", "2"} {
		got, err := ParseSeverity(in)
		if err == nil || got != runstatusv1.ErrorSeverity_ERROR_SEVERITY_UNSPECIFIED {
			t.Errorf("ParseSeverity(%q) = %v, %v; want an error", in, got, err)
		}
	}
}

func TestNewStepErrorIsReportedWithItsWords(t *testing.T) {
	// OpenFn's engine: an uncaught error in job code, an ExecutionError re-tagged crash.
	err := fmt.Errorf("step fetch: %w", NewStepError("ExecutionError", "", "crash", errors.New("thrown from a timer")))
	r := ReportOf(err)
	if r.GetName() != "ExecutionError" || r.GetSubtype() != "" ||
		r.GetSeverity() != runstatusv1.ErrorSeverity_ERROR_SEVERITY_CRASH || r.GetMessage() != "step fetch: thrown from a timer" {
		t.Fatalf("ReportOf = %v", r)
	}
	r = ReportOf(NewStepError("RuntimeError", "TypeError", "fail", errors.New("x is not a function")))
	if r.GetName() != "RuntimeError" || r.GetSubtype() != "TypeError" || r.GetSeverity() != runstatusv1.ErrorSeverity_ERROR_SEVERITY_FAIL {
		t.Fatalf("ReportOf = %v", r)
	}
	// A word the server does not know is no severity, as the Python and TypeScript workers read one.
	if r := ReportOf(NewStepError("Odd", "", "fatal", errors.New("x"))); r.GetSeverity() != runstatusv1.ErrorSeverity_ERROR_SEVERITY_UNSPECIFIED {
		t.Fatalf("ReportOf = %v", r)
	}
}
