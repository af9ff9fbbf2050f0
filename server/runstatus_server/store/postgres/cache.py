"""What nearly every write reads and hardly ever changes, kept by this server between writes
(issue 30): a project's row (with its row version, xmin), a workflow's latest version, and the
workflow versions themselves (a lifecycle write reads its run's version's steps). A
write that takes something from here does not read it; its last statement checks that it still
holds (PostgresTx.finish, migration 9), and a write that finds it changed by another server
fails as a serialization failure, which the engine tries again after dropping the cache. So a
write never acts on what another server changed before it committed, as if it had read it.

Workflow versions, once written, never change nor go (nothing deletes workflows or projects):
a pinned version seen once is known for good, and so is its data. Bounded: past MAX_ENTRIES of a kind it starts over.
"""

from __future__ import annotations

MAX_ENTRIES = 10_000


class WriteCache:
    def __init__(self) -> None:
        # dict operations are atomic under the GIL: the writer threads share these without a lock.
        self._projects: dict[str, tuple[bytes, str]] = {}  # id -> (data, xmin)
        self._latest: dict[tuple[str, str], int] = {}  # (project, workflow) -> latest version
        self._pinned: set[tuple[str, str, int]] = set()  # (project, workflow, version) known to exist
        self._workflows: dict[tuple[str, str, int], bytes] = {}  # (project, workflow, version) -> data

    def project(self, project_id: str) -> tuple[bytes, str] | None:
        return self._projects.get(project_id)

    def keep_project(self, project_id: str, data: bytes, version: str) -> None:
        if len(self._projects) >= MAX_ENTRIES:
            self._projects.clear()
        self._projects[project_id] = (data, version)

    def forget_project(self, project_id: str) -> None:
        self._projects.pop(project_id, None)

    def latest(self, project_id: str, workflow_id: str) -> int | None:
        return self._latest.get((project_id, workflow_id))

    def pinned(self, project_id: str, workflow_id: str, version: int) -> bool:
        return (project_id, workflow_id, version) in self._pinned

    def keep_version(self, project_id: str, workflow_id: str, version: int, *, latest: bool) -> None:
        if len(self._pinned) >= MAX_ENTRIES:
            self._pinned.clear()
        self._pinned.add((project_id, workflow_id, version))
        if latest:
            if len(self._latest) >= MAX_ENTRIES:
                self._latest.clear()
            self._latest[(project_id, workflow_id)] = version

    def workflow(self, project_id: str, workflow_id: str, version: int) -> bytes | None:
        return self._workflows.get((project_id, workflow_id, version))

    def keep_workflow(self, project_id: str, workflow_id: str, version: int, data: bytes) -> None:
        if len(self._workflows) >= MAX_ENTRIES:
            self._workflows.clear()
        self._workflows[(project_id, workflow_id, version)] = data

    def forget_latest(self, project_id: str, workflow_id: str) -> None:
        self._latest.pop((project_id, workflow_id), None)

    def clear(self) -> None:
        self._projects.clear()
        self._latest.clear()
        self._pinned.clear()
        self._workflows.clear()
