"""The edges between the parts hold: SQLite is known only inside store/, the client package
never imports the server, and driver errors never reach the RPC layer. (Read as source, so
that a new import across an edge fails here, before anyone relies on it.)"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVER = ROOT / "server" / "runstatus_server"
CLIENT = ROOT / "clients" / "python" / "runstatus"


def _imports(path: pathlib.Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _server_imports(path: pathlib.Path) -> set[str]:
    """The server's modules a server file imports, relative imports by their full names
    (`from .. import x` as `package.x`, which may be a module)."""
    package = ["runstatus_server", *path.relative_to(SERVER).parent.parts]
    found = {m for m in _imports(path) if m.split(".")[0] == "runstatus_server"}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def _sources(folder: pathlib.Path) -> list[pathlib.Path]:
    return [p for p in folder.rglob("*.py") if "v1" not in p.relative_to(folder).parts]


def test_sqlite_is_known_only_inside_store() -> None:
    store = SERVER / "store"
    outside = [p for p in _sources(SERVER) + _sources(CLIENT) if store not in p.parents]
    offenders = [str(p.relative_to(ROOT)) for p in outside
                 if "sqlite3" in p.read_text() or any(m.startswith("runstatus_server.store.sqlite") for m in _imports(p))]
    assert offenders == []
    relative = [str(p.relative_to(ROOT)) for p in outside if "from .store.sqlite" in p.read_text()
                or "from ..store.sqlite" in p.read_text()]
    assert relative == []


def test_the_client_package_never_imports_the_server() -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] == "runstatus_server")
                 for p in _sources(CLIENT)}
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_the_store_knows_nothing_of_the_rpc_layer() -> None:
    """The store raises its own StorageErrors; it neither imports the API's errors nor grpc."""
    for path in _sources(SERVER / "store"):
        text = path.read_text()
        assert "from ..errors" not in text and "import grpc" not in text, path.name


def test_the_database_packages_never_import_each_other() -> None:
    """store/sqlite/ and store/postgres/ share only what store/ holds (base.py, rows.py)."""
    for this, other in (("sqlite", "postgres"), ("postgres", "sqlite")):
        for path in _sources(SERVER / "store" / this):
            crossing = sorted(m for m in _server_imports(path) if m.startswith(f"runstatus_server.store.{other}"))
            assert crossing == [], f"store/{this}/{path.name} imports {crossing}"


def test_the_store_imports_nothing_else_of_the_server() -> None:
    """The store is the bottom layer: what it must tell (commit sizes, faults) it tells through
    listeners (Store.add_*_listener), never by reaching up (metrics, the domain)."""
    for path in _sources(SERVER / "store"):
        outside = sorted(m for m in _server_imports(path) if not m.startswith("runstatus_server.store"))
        assert outside == [], f"{path.relative_to(SERVER)} imports {outside}"


def test_the_domain_modules_make_no_answers() -> None:
    """The services make every answer from the domain's values (services/__init__.py): the
    domain modules import no service and no response, but for the event feed, which encodes
    each event's WatchWorkOrdersResponse once for all its watchers."""
    for path in SERVER.glob("*.py"):
        if path.name == "server.py":  # it starts the services
            continue
        tree = ast.parse(path.read_text(), str(path))
        names = {(node.module or "", alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 for alias in node.names}
        # runstatus's answers (OTLP's ExportTraceServiceResponse, which tracing_export reads, is not one)
        answers = {name for module, name in names if name.endswith("Response") and module.startswith("runstatus.")}
        answers -= {"WatchWorkOrdersResponse"}
        services = {module for module, _ in names if module.startswith("services")}
        assert (answers, services) == (set(), set()), path.name
