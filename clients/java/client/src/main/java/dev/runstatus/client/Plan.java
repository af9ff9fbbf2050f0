package dev.runstatus.client;

import dev.runstatus.v1.Edge;
import dev.runstatus.v1.EdgeCondition;
import dev.runstatus.v1.Run;
import dev.runstatus.v1.RunStatus;
import dev.runstatus.v1.Step;
import dev.runstatus.v1.StepRun;
import dev.runstatus.v1.Workflow;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

/**
 * How a run moves through its workflow's plan (docs/design.md, rule 2): the Python client's
 * runstatus/plan.py, which the server checks, in Java. Where a run starts and where it goes on
 * after a step.
 */
final class Plan {
  private Plan() {}

  /** Where a run starts: a step, and the step run that leads there (null: none). */
  record Start(String stepId, StepRun previous) {}

  /** Rule 2: after a FAILED step the run may go on along ON_FAILURE/ALWAYS edges. */
  static boolean edgeAllows(EdgeCondition condition, RunStatus upstream) {
    if (upstream != RunStatus.RUN_STATUS_SUCCESS && upstream != RunStatus.RUN_STATUS_FAILED) {
      return false;
    }
    if (condition == EdgeCondition.EDGE_CONDITION_ON_SUCCESS) {
      return upstream == RunStatus.RUN_STATUS_SUCCESS;
    }
    if (condition == EdgeCondition.EDGE_CONDITION_ON_FAILURE) {
      return upstream == RunStatus.RUN_STATUS_FAILED;
    }
    // ALWAYS, and EXPRESSION, which the worker evaluated: following it records that it held.
    return true;
  }

  /** The steps no edge leads to. */
  static Set<String> roots(Workflow workflow) {
    Set<String> targets = new HashSet<>();
    for (Edge edge : workflow.getEdgesList()) {
      targets.add(edge.getTargetStepId());
    }
    Set<String> roots = new HashSet<>();
    for (Step step : workflow.getStepsList()) {
      if (!targets.contains(step.getId())) {
        roots.add(step.getId());
      }
    }
    return roots;
  }

  /**
   * A first run starts at the roots, in the workflow's order, led to by nothing. A retry from a
   * step starts at that step, led to by the latest reused upstream step run whose edge to it
   * allows it; by nothing if there is none.
   */
  static List<Start> starts(Run run, Workflow workflow) {
    List<Start> starts = new ArrayList<>();
    if (run.getStartStepId().isEmpty()) {
      Set<String> first = roots(workflow);
      for (Step step : workflow.getStepsList()) {
        if (first.contains(step.getId())) {
          starts.add(new Start(step.getId(), null));
        }
      }
      return starts;
    }
    Map<String, EdgeCondition> conditions = new HashMap<>();
    for (Edge edge : workflow.getEdgesList()) {
      if (edge.getTargetStepId().equals(run.getStartStepId())) {
        conditions.put(edge.getSourceStepId(), edge.getCondition());
      }
    }
    StepRun latest = run.getStepRunsList().stream()
        .filter(s -> conditions.containsKey(s.getStepId()) && edgeAllows(conditions.get(s.getStepId()), s.getStatus()))
        .max(Comparator.<StepRun>comparingLong(s -> s.getEndTime().getSeconds() * 1_000_000L + s.getEndTime().getNanos() / 1000)
            .thenComparing(StepRun::getId))
        .orElse(null);
    starts.add(new Start(run.getStartStepId(), latest));
    return starts;
  }

  /** Whether a worker goes on along the edge after a step run that ended {@code upstream}. */
  static boolean follows(Edge edge, RunStatus upstream, Predicate<Edge> holds) {
    if (!edgeAllows(edge.getCondition(), upstream)) {
      return false;
    }
    return edge.getCondition() != EdgeCondition.EDGE_CONDITION_EXPRESSION || holds.test(edge);
  }

  /** The steps a worker goes on to after the step run ended, in the workflow's edge order. */
  static List<String> nextSteps(Workflow workflow, StepRun stepRun, Predicate<Edge> holds) {
    List<String> next = new ArrayList<>();
    for (Edge edge : workflow.getEdgesList()) {
      if (edge.getSourceStepId().equals(stepRun.getStepId()) && follows(edge, stepRun.getStatus(), holds)) {
        next.add(edge.getTargetStepId());
      }
    }
    return next;
  }
}
