package client

import (
	runstatusv1 "github.com/runstatus/runstatus/clients/go/runstatus/v1"
)

// How a run moves through its workflow's plan (docs/design.md, rule 2): the
// rules the server checks, as the Python client's runstatus.plan states them,
// and what a worker does with them.

// edgeAllows is rule 2: after a FAILED step the run may go on along
// ON_FAILURE and ALWAYS edges.
func edgeAllows(condition runstatusv1.EdgeCondition, upstream runstatusv1.RunStatus) bool {
	switch {
	case upstream != runstatusv1.RunStatus_RUN_STATUS_SUCCESS && upstream != runstatusv1.RunStatus_RUN_STATUS_FAILED:
		return false
	case condition == runstatusv1.EdgeCondition_EDGE_CONDITION_ON_SUCCESS:
		return upstream == runstatusv1.RunStatus_RUN_STATUS_SUCCESS
	case condition == runstatusv1.EdgeCondition_EDGE_CONDITION_ON_FAILURE:
		return upstream == runstatusv1.RunStatus_RUN_STATUS_FAILED
	}
	// ALWAYS, and EXPRESSION, which the worker evaluates: following it records that it held.
	return true
}

// start is where a claimed run starts: a step, and the step run that leads
// there (nil for none).
type start struct {
	stepID   string
	previous *runstatusv1.StepRun
}

// starts is where a claimed run starts. A first run starts at the roots (the
// steps no edge leads to), in the workflow's order, led to by nothing. A retry
// from a step starts at that step, led to by the latest reused upstream step
// run whose edge to it edgeAllows; by nothing if there is none.
func starts(run *runstatusv1.Run, workflow *runstatusv1.Workflow) []start {
	if run.GetStartStepId() == "" {
		targets := map[string]bool{}
		for _, e := range workflow.GetEdges() {
			targets[e.GetTargetStepId()] = true
		}
		var roots []start
		for _, s := range workflow.GetSteps() {
			if !targets[s.GetId()] {
				roots = append(roots, start{stepID: s.GetId()})
			}
		}
		return roots
	}
	conditions := map[string]runstatusv1.EdgeCondition{}
	for _, e := range workflow.GetEdges() {
		if e.GetTargetStepId() == run.GetStartStepId() {
			conditions[e.GetSourceStepId()] = e.GetCondition()
		}
	}
	var latest *runstatusv1.StepRun
	for _, s := range run.GetStepRuns() {
		condition, ok := conditions[s.GetStepId()]
		if !ok || !edgeAllows(condition, s.GetStatus()) {
			continue
		}
		if latest == nil || later(s, latest) {
			latest = s
		}
	}
	return []start{{stepID: run.GetStartStepId(), previous: latest}}
}

// later orders step runs by end time, then id, as the Python client does.
func later(a, b *runstatusv1.StepRun) bool {
	ta, tb := a.GetEndTime().AsTime(), b.GetEndTime().AsTime()
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.GetId() > b.GetId()
}

// nextSteps is where a worker goes on after stepRun ended, in the workflow's
// edge order: along every edge from its step that edgeAllows and, for an
// EXPRESSION edge, whose expression holds (the worker evaluates it; the server
// only records that it was followed).
func nextSteps(workflow *runstatusv1.Workflow, stepRun *runstatusv1.StepRun, holds func(*runstatusv1.Edge) bool) []string {
	var next []string
	for _, e := range workflow.GetEdges() {
		if e.GetSourceStepId() != stepRun.GetStepId() || !edgeAllows(e.GetCondition(), stepRun.GetStatus()) {
			continue
		}
		if e.GetCondition() == runstatusv1.EdgeCondition_EDGE_CONDITION_EXPRESSION && !holds(e) {
			continue
		}
		next = append(next, e.GetTargetStepId())
	}
	return next
}
