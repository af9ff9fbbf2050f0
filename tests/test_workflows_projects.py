"""Workflows (validated DAGs, versioned, immutable) and projects."""

from __future__ import annotations

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from harness import ALWAYS, EXPRESSION, ON_SUCCESS, Client, details, fields, rpc_error
from runstatus.v1 import project_service_pb2 as project_pb
from runstatus.v1 import workflow_service_pb2 as wf_pb
from runstatus.v1.project_pb2 import Project, RunLimit
from runstatus.v1.workflow_pb2 import Edge, Step, Workflow


def create(client: Client, workflow: Workflow) -> Workflow:
    workflow.project_id = workflow.project_id or client.project_id
    return client.workflows.CreateWorkflow(wf_pb.CreateWorkflowRequest(workflow=workflow)).workflow


def bad(client: Client, workflow: Workflow) -> list[str]:
    workflow.project_id = workflow.project_id or client.project_id
    return fields(rpc_error(client.workflows.CreateWorkflow, wf_pb.CreateWorkflowRequest(workflow=workflow)))


def steps(*ids: str) -> list[Step]:
    return [Step(id=i) for i in ids]


def edge(a: str, b: str, condition: int = ALWAYS, expression: str = "") -> Edge:
    return Edge(source_step_id=a, target_step_id=b, condition=condition, expression=expression)


def test_versions(client: Client) -> None:
    v1 = create(client, Workflow(id="referral", steps=steps("a")))
    v2 = create(client, Workflow(id="referral", steps=steps("a", "b"), edges=[edge("a", "b")]))
    assert (v1.version, v2.version) == (1, 2)
    get = client.workflows.GetWorkflow
    assert get(wf_pb.GetWorkflowRequest(project_id=client.project_id, workflow_id="referral")).workflow == v2
    assert get(wf_pb.GetWorkflowRequest(project_id=client.project_id, workflow_id="referral", version=1)).workflow == v1
    e = rpc_error(get, wf_pb.GetWorkflowRequest(project_id=client.project_id, workflow_id="referral", version=3))
    assert e.code() == grpc.StatusCode.NOT_FOUND


def test_a_work_order_pins_its_workflow_version(client: Client) -> None:
    v1 = create(client, Workflow(id="pinned", steps=steps("a")))
    created = client.work_order(v1)
    create(client, Workflow(id="pinned", steps=steps("x")))
    assert created.work_order.workflow_version == 1
    lease = client.claim_run(created.run.id)
    assert [s.id for s in lease.claimed.workflow.steps] == ["a"]


def test_list_latest_versions_with_pages(client: Client) -> None:
    for i in range(5):
        create(client, Workflow(id=f"w{i}", steps=steps("a")))
    create(client, Workflow(id="w0", steps=steps("a", "b")))
    seen, token = [], ""
    while True:
        page = client.workflows.ListWorkflows(
            wf_pb.ListWorkflowsRequest(project_id=client.project_id, page_size=2, page_token=token))
        seen += [(w.id, w.version) for w in page.workflows]
        token = page.next_page_token
        if not token:
            break
    assert seen == [("w0", 2), ("w1", 1), ("w2", 1), ("w3", 1), ("w4", 1)]


def test_cycles_are_refused(client: Client) -> None:
    wf = Workflow(id="loop", steps=steps("a", "b", "c"), edges=[edge("a", "b"), edge("b", "c"), edge("c", "a")])
    e = rpc_error(client.workflows.CreateWorkflow, wf_pb.CreateWorkflowRequest(
        workflow=Workflow(project_id=client.project_id, **{f.name: v for f, v in wf.ListFields()})))
    _, violations = details(e)
    assert violations[0][0] == "workflow.edges"
    assert "cycle" in violations[0][1]


def test_bad_workflows_name_the_field(client: Client) -> None:
    assert bad(client, Workflow(steps=steps("a"))) == ["workflow.id"]
    assert bad(client, Workflow(id="x")) == ["workflow.steps"]
    assert bad(client, Workflow(id="x", steps=steps("a", "a"))) == ["workflow.steps[1].id"]
    assert bad(client, Workflow(id="x", steps=steps("a", "bad id!"))) == ["workflow.steps[1].id"]
    assert bad(client, Workflow(id="x", steps=steps("a"), edges=[edge("a", "ghost")])) == ["workflow.edges[0].target_step_id"]
    assert bad(client, Workflow(id="x", steps=steps("a"), edges=[edge("a", "a")])) == ["workflow.edges[0]"]
    assert bad(client, Workflow(id="x", steps=steps("a", "b"), edges=[edge("a", "b"), edge("a", "b", ON_SUCCESS)])) == ["workflow.edges[1]"]
    assert bad(client, Workflow(id="x", steps=steps("a", "b"), edges=[edge("a", "b", 0)])) == ["workflow.edges[0].condition"]
    assert bad(client, Workflow(id="x", steps=steps("a", "b"), edges=[edge("a", "b", 99)])) == ["workflow.edges[0].condition"]
    assert bad(client, Workflow(id="x", steps=steps("a", "b"), edges=[edge("a", "b", EXPRESSION)])) == ["workflow.edges[0].expression"]
    assert bad(client, Workflow(id="x", steps=steps("a", "b"), edges=[edge("a", "b", ALWAYS, "x > 1")])) == ["workflow.edges[0].expression"]
    e = rpc_error(client.workflows.CreateWorkflow, wf_pb.CreateWorkflowRequest(
        workflow=Workflow(id="x", project_id="no-such-project", steps=steps("a"))))
    assert e.code() == grpc.StatusCode.NOT_FOUND


def test_expression_edges_are_recorded(client: Client) -> None:
    wf = create(client, Workflow(id="expr", steps=steps("a", "b"), edges=[edge("a", "b", EXPRESSION, "state.ok")]))
    assert wf.edges[0].expression == "state.ok"


def test_projects(client: Client) -> None:
    p = client.projects.CreateProject(project_pb.CreateProjectRequest(project=Project(
        id="clinic", name="Clinic", run_limit=RunLimit(max_in_flight=3), max_runtime=Duration(seconds=60)))).project
    assert p.create_time.seconds > 0
    e = rpc_error(client.projects.CreateProject, project_pb.CreateProjectRequest(project=Project(id="clinic")))
    assert e.code() == grpc.StatusCode.ALREADY_EXISTS
    updated = client.projects.UpdateProject(project_pb.UpdateProjectRequest(
        project=Project(id="clinic", run_limit=RunLimit(max_in_flight=5)), update_mask=FieldMask(paths=["run_limit"]))).project
    assert updated.run_limit.max_in_flight == 5
    assert updated.name == "Clinic" and updated.max_runtime.seconds == 60
    got = client.projects.GetProject(project_pb.GetProjectRequest(project_id="clinic")).project
    assert got == updated
    default = client.projects.GetProject(project_pb.GetProjectRequest(project_id="default")).project
    assert default.id == "default"
    e = rpc_error(client.projects.UpdateProject, project_pb.UpdateProjectRequest(
        project=Project(id="clinic"), update_mask=FieldMask(paths=["create_time"])))
    assert fields(e) == ["update_mask"]
    e = rpc_error(client.projects.CreateProject, project_pb.CreateProjectRequest(
        project=Project(id="neg", run_limit=RunLimit(max_in_flight=-1, max_per_window=2))))
    assert sorted(fields(e)) == ["project.run_limit.max_in_flight", "project.run_limit.window"]
    e = rpc_error(client.projects.GetProject, project_pb.GetProjectRequest(project_id="nope"))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    assert details(e)[0].reason == "PROJECT_NOT_FOUND"
    listed = client.projects.ListProjects(project_pb.ListProjectsRequest(page_size=1000)).projects
    assert {"clinic", "default"} <= {p.id for p in listed}
