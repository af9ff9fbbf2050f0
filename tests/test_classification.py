"""Rule 1 over the Classify RPC: the seed's names, the alias table, unknown names."""

from __future__ import annotations

import pathlib

import pytest

from harness import JOB, RUNTIME, Client, ServerProcess, error, fields, rpc_error, running_server
from runstatus import status_table
from runstatus.v1 import classifier_service_pb2 as pb
from runstatus.v1.error_pb2 import ErrorReport, ErrorSeverity
from runstatus.v1.status_pb2 import ErrorType, RunStatus

T = ErrorType
S = RunStatus


def classify(client: Client, report: ErrorReport) -> pb.Classification:  # type: ignore[name-defined]
    return client.classifier.Classify(pb.ClassifyRequest(error=report)).classification


@pytest.mark.parametrize("row", list(status_table.error_types().values()), ids=lambda r: r.name)
@pytest.mark.parametrize("source", [JOB, RUNTIME])
def test_every_seed_name_classifies_as_the_table_says(client: Client, row: status_table.ErrorTypeRow, source: int) -> None:
    c = classify(client, error(row.name, source))
    assert (c.error_type, c.status) == (row.error_type, row.status)
    assert c.aborts_run == status_table.aborts_run(row.status)
    assert c.rule == f"seed:{row.name}"


@pytest.mark.parametrize(
    "name, language, message, expected_type, expected_status",
    [
        # OpenFn's own names
        ("AdaptorError", "javascript", "", T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED),
        ("OOMError", "javascript", "", T.ERROR_TYPE_OOM_ERROR, S.RUN_STATUS_KILLED),
        ("CompileError", "javascript", "", T.ERROR_TYPE_SYNTAX_ERROR, S.RUN_STATUS_CRASHED),
        ("RuntimeCrash", "javascript", "", T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
        # Python
        ("NameError", "python", "name 'x' is not defined", T.ERROR_TYPE_REFERENCE_ERROR, S.RUN_STATUS_CRASHED),
        ("KeyError", "python", "'age'", T.ERROR_TYPE_RANGE_ERROR, S.RUN_STATUS_FAILED),
        ("IndexError", "python", "list index out of range", T.ERROR_TYPE_RANGE_ERROR, S.RUN_STATUS_FAILED),
        ("AttributeError", "python", "'NoneType' object has no attribute 'age'", T.ERROR_TYPE_TYPE_ERROR, S.RUN_STATUS_FAILED),
        ("MemoryError", "python", "", T.ERROR_TYPE_OOM_ERROR, S.RUN_STATUS_KILLED),
        ("ModuleNotFoundError", "py", "", T.ERROR_TYPE_IMPORT_ERROR, S.RUN_STATUS_KILLED),
        ("builtins.KeyError", "python", "", T.ERROR_TYPE_RANGE_ERROR, S.RUN_STATUS_FAILED),
        # Java
        ("java.lang.NullPointerException", "java", "", T.ERROR_TYPE_TYPE_ERROR, S.RUN_STATUS_FAILED),
        ("java.lang.ArrayIndexOutOfBoundsException", "java", "", T.ERROR_TYPE_RANGE_ERROR, S.RUN_STATUS_FAILED),
        ("java.lang.OutOfMemoryError", "java", "", T.ERROR_TYPE_OOM_ERROR, S.RUN_STATUS_KILLED),
        # Go panics: the message decides
        ("panic", "go", "runtime error: invalid memory address or nil pointer dereference", T.ERROR_TYPE_TYPE_ERROR, S.RUN_STATUS_FAILED),
        ("runtime.Error", "go", "runtime error: index out of range [5] with length 2", T.ERROR_TYPE_RANGE_ERROR, S.RUN_STATUS_FAILED),
        ("panic", "golang", "fatal error: runtime: out of memory", T.ERROR_TYPE_OOM_ERROR, S.RUN_STATUS_KILLED),
        # A language's alias applies without a language too
        ("NullPointerException", "", "", T.ERROR_TYPE_TYPE_ERROR, S.RUN_STATUS_FAILED),
    ],
)
def test_aliases(client: Client, name: str, language: str, message: str, expected_type: int, expected_status: int) -> None:
    c = classify(client, error(name, JOB, language=language, message=message))
    assert (c.error_type, c.status) == (expected_type, expected_status), c.rule
    assert c.aborts_run == status_table.aborts_run(expected_status)
    assert c.rule.startswith(("alias:", "message:"))


def test_unknown_names(client: Client) -> None:
    job = classify(client, error("ValueError", JOB, language="python"))
    assert (job.error_type, job.status, job.rule) == (T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED, "unknown:job")
    runtime = classify(client, error("WorkerPanic", RUNTIME))
    assert (runtime.status, runtime.aborts_run, runtime.rule) == (S.RUN_STATUS_EXCEPTION, True, "unknown:runtime")
    # A failed request is a job error whatever its name, as the seed's JobError example says.
    http = classify(client, error("HTTPError", RUNTIME, http_status=503))
    assert (http.error_type, http.status, http.rule) == (T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED, "http:503")


def test_a_python_name_does_not_leak_into_java(client: Client) -> None:
    c = classify(client, error("KeyError", JOB, language="java"))
    assert c.rule == "unknown:job"


def test_bad_reports_name_the_field(client: Client) -> None:
    assert fields(rpc_error(client.classifier.Classify, pb.ClassifyRequest())) == ["error"]
    assert fields(rpc_error(client.classifier.Classify, pb.ClassifyRequest(error=error("")))) == ["error.name"]
    e = rpc_error(client.classifier.Classify, pb.ClassifyRequest(error=error("X", source=7, http_status=42)))
    assert sorted(fields(e)) == ["error.http_status", "error.source"]
    e = rpc_error(client.classifier.Classify, pb.ClassifyRequest(error=error("X" * 10_000)))
    assert fields(e) == ["error.name"]


def test_subtype_and_severity_are_checked_like_name_and_source(client: Client) -> None:
    # subtype: optional, at most as long as a name (256 UTF-8 bytes); severity: a known value.
    assert classify(client, error("Oops", subtype="T" * 256)).rule == "unknown:job"
    e = rpc_error(client.classifier.Classify, pb.ClassifyRequest(error=error("RuntimeError", subtype="é" * 129)))
    assert fields(e) == ["error.subtype"]
    e = rpc_error(client.classifier.Classify, pb.ClassifyRequest(error=error("X", severity=9, subtype="Y" * 300)))
    assert sorted(fields(e)) == ["error.severity", "error.subtype"]


def test_operator_extends_the_alias_table_from_a_file(tmp: pathlib.Path) -> None:
    aliases = tmp / "aliases.yaml"
    aliases.write_text(
        "names:\n  QuotaExceeded: KILLED\n"
        "languages:\n  python:\n    ValueError: TYPE_ERROR\n"
        "messages:\n  - {pattern: 'certificate verify failed', to: SECURITY_ERROR}\n"
    )
    with running_server(tmp, "--aliases", str(aliases)) as (_, client):
        assert classify(client, error("QuotaExceeded")).status == S.RUN_STATUS_KILLED
        assert classify(client, error("ValueError", language="python")).error_type == T.ERROR_TYPE_TYPE_ERROR
        c = classify(client, error("SSLError", message="certificate verify failed"))
        assert c.error_type == T.ERROR_TYPE_SECURITY_ERROR
        # The built-in table is still there.
        assert classify(client, error("KeyError", language="python")).error_type == T.ERROR_TYPE_RANGE_ERROR


def test_a_bad_alias_file_stops_the_server_with_a_clear_message(tmp: pathlib.Path) -> None:
    aliases = tmp / "aliases.yaml"
    aliases.write_text("names:\n  Oops: NOT_A_TYPE\n")
    server = ServerProcess(tmp / "x.db", "--aliases", str(aliases))
    with pytest.raises(RuntimeError, match="NOT_A_TYPE"):
        server.start()


def test_an_operator_entry_may_declare_its_class_severity(tmp: pathlib.Path) -> None:
    # {to, severity}: the target is the class's default; a report with another severity is decided by it.
    aliases = tmp / "aliases.yaml"
    aliases.write_text("names:\n  WorkerGone: {to: KILLED, severity: kill}\n")
    with running_server(tmp, "--aliases", str(aliases)) as (_, client):
        c = classify(client, error("WorkerGone", RUNTIME, severity=ErrorSeverity.ERROR_SEVERITY_KILL))
        assert (c.status, c.rule) == (S.RUN_STATUS_KILLED, "alias:WorkerGone")
        c = classify(client, error("WorkerGone", RUNTIME))
        assert (c.status, c.rule) == (S.RUN_STATUS_KILLED, "alias:WorkerGone")
        c = classify(client, error("WorkerGone", RUNTIME, severity=ErrorSeverity.ERROR_SEVERITY_FAIL))
        assert (c.status, c.error_type, c.rule) == (S.RUN_STATUS_FAILED, T.ERROR_TYPE_JOB_ERROR,
                                                     "severity:fail;over:alias:WorkerGone")


@pytest.mark.parametrize("entry, match", [
    ("{to: KILLED, severity: fatal}", "severity 'fatal' is not one of fail, crash, kill, exception"),
    ("{to: KILLED}", "severity None is not one of"),
    ("{to: KILLED, severity: kill, why: x}", r"unknown keys \['why'\]"),
    ("{to: NOT_A_TYPE, severity: kill}", "NOT_A_TYPE"),
])
def test_a_bad_entry_with_a_severity_stops_the_server(tmp: pathlib.Path, entry: str, match: str) -> None:
    aliases = tmp / "aliases.yaml"
    aliases.write_text(f"names:\n  Oops: {entry}\n")
    server = ServerProcess(tmp / "x.db", "--aliases", str(aliases))
    with pytest.raises(RuntimeError, match=match):
        server.start()



# Issue 17: what OpenFn's own runtime (@openfn/runtime 1.9.5, @openfn/engine-multi 1.13.0)
# throws. A wrapper's `subtype` is the wrapped error's class; `severity` is the runtime's verdict.
FAIL, CRASH, KILL, EXCEPTION = (ErrorSeverity.ERROR_SEVERITY_FAIL, ErrorSeverity.ERROR_SEVERITY_CRASH,
                                ErrorSeverity.ERROR_SEVERITY_KILL, ErrorSeverity.ERROR_SEVERITY_EXCEPTION)


@pytest.mark.parametrize(
    "name, subtype, severity, source, expected_type, expected_status, rule",
    [
        # The table, row by row.
        ("StateTooLargeError", "", KILL, RUNTIME, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_KILLED,
         "alias:StateTooLargeError"),
        # ws-worker sends `subtype || type || name`: the wrapped class arrives as the name.
        ("InvalidExportsError", "", CRASH, RUNTIME, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED,
         "alias:InvalidExportsError"),
        ("RuntimeCrash", "InvalidExportsError", CRASH, RUNTIME, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED,
         "alias:InvalidExportsError(subtype)"),
        ("RuntimeError", "TypeError", FAIL, RUNTIME, T.ERROR_TYPE_TYPE_ERROR, S.RUN_STATUS_FAILED,
         "seed:TypeError(subtype)"),
        ("RuntimeError", "RangeError", FAIL, RUNTIME, T.ERROR_TYPE_RANGE_ERROR, S.RUN_STATUS_FAILED,
         "seed:RangeError(subtype)"),
        ("RuntimeCrash", "ReferenceError", CRASH, RUNTIME, T.ERROR_TYPE_REFERENCE_ERROR, S.RUN_STATUS_CRASHED,
         "seed:ReferenceError(subtype)"),
        ("RuntimeCrash", "SyntaxError", CRASH, RUNTIME, T.ERROR_TYPE_SYNTAX_ERROR, S.RUN_STATUS_CRASHED,
         "seed:SyntaxError(subtype)"),
        # RuntimeCrash alone still crashes; a subtype nobody knows leaves it to the wrapper.
        ("RuntimeCrash", "", CRASH, RUNTIME, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED, "alias:RuntimeCrash"),
        ("RuntimeCrash", "WeirdThing", CRASH, RUNTIME, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED,
         "alias:RuntimeCrash"),
        # The seed wins over the runtime's severity, and says so.
        ("ImportError", "", CRASH, RUNTIME, T.ERROR_TYPE_IMPORT_ERROR, S.RUN_STATUS_KILLED,
         "seed:ImportError;over:severity:crash"),
        ("JobError", "", FAIL, JOB, T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED, "seed:JobError"),
        ("SecurityError", "", KILL, RUNTIME, T.ERROR_TYPE_SECURITY_ERROR, S.RUN_STATUS_KILLED, "seed:SecurityError"),
        ("TimeoutError", "", KILL, RUNTIME, T.ERROR_TYPE_TIMEOUT_ERROR, S.RUN_STATUS_KILLED, "seed:TimeoutError"),
        # The seed on the subtype beats an alias on the name.
        ("RuntimeCrash", "TypeError", CRASH, RUNTIME, T.ERROR_TYPE_TYPE_ERROR, S.RUN_STATUS_FAILED,
         "seed:TypeError(subtype);over:severity:crash"),
        # An unknown name: the severity decides, before the HTTP status and the source.
        ("Mystery", "", FAIL, RUNTIME, T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED, "severity:fail"),
        ("Mystery", "", CRASH, JOB, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED, "severity:crash"),
        ("Mystery", "Enigma", KILL, JOB, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_KILLED, "severity:kill"),
        ("Mystery", "", EXCEPTION, JOB, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_EXCEPTION, "severity:exception"),
        # No severity: as before.
        ("Mystery", "Enigma", 0, RUNTIME, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_EXCEPTION, "unknown:runtime"),
    ],
)
def test_wrapped_errors_and_severity(client: Client, name: str, subtype: str, severity: int, source: int,
                                     expected_type: int, expected_status: int, rule: str) -> None:
    c = classify(client, error(name, source, subtype=subtype, severity=severity, language="javascript"))
    assert (c.error_type, c.status, c.rule) == (expected_type, expected_status, rule)
    assert c.aborts_run == status_table.aborts_run(expected_status)


def test_severity_comes_before_the_http_status(client: Client) -> None:
    c = classify(client, error("Mystery", RUNTIME, severity=CRASH, http_status=500))
    assert (c.status, c.rule) == (S.RUN_STATUS_CRASHED, "severity:crash")


# Every class OpenFn's runtime and engine define, with the status its severity gives.
OPENFN = [
    # @openfn/runtime 1.9.5
    ("StateTooLargeError", KILL, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_KILLED),
    ("ValidationError", CRASH, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
    ("InvalidExportsError", CRASH, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
    ("InvalidOperationError", CRASH, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
    ("RuntimeError", FAIL, T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED),
    ("RuntimeCrash", CRASH, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
    ("EdgeConditionError", CRASH, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
    ("InputError", CRASH, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
    ("AdaptorError", FAIL, T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED),
    # @openfn/engine-multi 1.13.0
    ("ExecutionError", EXCEPTION, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_EXCEPTION),
    ("CompileError", CRASH, T.ERROR_TYPE_SYNTAX_ERROR, S.RUN_STATUS_CRASHED),
    ("AutoinstallError", EXCEPTION, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_EXCEPTION),
    ("OOMError", KILL, T.ERROR_TYPE_OOM_ERROR, S.RUN_STATUS_KILLED),
    ("ExitError", CRASH, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
    ("CredentialLoadError", EXCEPTION, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_EXCEPTION),
    ("WorkerValidationError", 0, T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_EXCEPTION),
]


@pytest.mark.parametrize("name, severity, expected_type, expected_status", OPENFN, ids=[row[0] for row in OPENFN])
@pytest.mark.parametrize("source", [JOB, RUNTIME])
@pytest.mark.parametrize("with_severity", [False, True])
def test_every_openfn_class_is_an_alias(client: Client, name: str, severity: int, expected_type: int,
                                        expected_status: int, source: int, with_severity: bool) -> None:
    # The alias alone decides (an adaptor worker may not pass the severity on), and agrees with it.
    c = classify(client, error(name, source, language="javascript", severity=severity if with_severity else 0))
    assert (c.error_type, c.status) == (expected_type, expected_status)
    assert c.rule in (f"alias:{name}", f"alias:javascript:{name}")
    # As a wrapper's subtype too.
    c = classify(client, error("RuntimeCrash", RUNTIME, subtype=name, language="javascript"))
    assert (c.error_type, c.status) == (expected_type, expected_status)
    assert c.rule.endswith(f":{name}(subtype)")


# Issue 33: OpenFn decides by an instance's severity, and its engine re-tags some instances
# (an uncaught error in job code is an ExecutionError with severity crash). The alias table's
# entry for an OpenFn class is the class's declared default: an explicit, different severity
# wins over it. The seed's names still win over any severity; other aliases too.
SEVERITIES = {FAIL: ("fail", T.ERROR_TYPE_JOB_ERROR, S.RUN_STATUS_FAILED),
              CRASH: ("crash", T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_CRASHED),
              KILL: ("kill", T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_KILLED),
              EXCEPTION: ("exception", T.ERROR_TYPE_UNSPECIFIED, S.RUN_STATUS_EXCEPTION)}
RETAGGED = [(name, declared, other) for name, declared, *_ in OPENFN if declared for other in SEVERITIES
            if other != declared]


def test_the_engines_uncaught_error_is_a_crash(client: Client) -> None:
    # engine-multi's worker/thread/helpers.ts: new ExecutionError(err), then e.severity = 'crash'.
    c = classify(client, error("ExecutionError", RUNTIME, severity=CRASH, language="javascript"))
    assert (c.status, c.error_type, c.aborts_run, c.rule) == (
        S.RUN_STATUS_CRASHED, T.ERROR_TYPE_UNSPECIFIED, True, "severity:crash;over:alias:ExecutionError")
    # Its declared severity, or none: the alias's default.
    for severity in (EXCEPTION, 0):
        c = classify(client, error("ExecutionError", RUNTIME, severity=severity, language="javascript"))
        assert (c.status, c.rule) == (S.RUN_STATUS_EXCEPTION, "alias:ExecutionError")


@pytest.mark.parametrize("name, declared, severity", RETAGGED, ids=[f"{n}-{SEVERITIES[s][0]}" for n, _, s in RETAGGED])
def test_an_explicit_severity_beats_an_openfn_classs_default(client: Client, name: str, declared: int,
                                                             severity: int) -> None:
    word, expected_type, expected_status = SEVERITIES[severity]
    c = classify(client, error(name, RUNTIME, severity=severity, language="javascript"))
    assert (c.error_type, c.status) == (expected_type, expected_status)
    assert c.rule in (f"severity:{word};over:alias:{name}", f"severity:{word};over:alias:javascript:{name}")
    # As a wrapper's subtype too.
    c = classify(client, error("RuntimeCrash", RUNTIME, subtype=name, severity=severity, language="javascript"))
    assert (c.status, c.rule.split(";")[0]) == (expected_status, f"severity:{word}")
    assert c.rule.endswith(f":{name}(subtype)")


@pytest.mark.parametrize("row", list(status_table.error_types().values()), ids=lambda r: r.name)
@pytest.mark.parametrize("severity", list(SEVERITIES))
def test_a_seed_name_beats_any_severity(client: Client, row: status_table.ErrorTypeRow, severity: int) -> None:
    word, _, hinted = SEVERITIES[severity]
    over = "" if hinted == row.status else f";over:severity:{word}"
    c = classify(client, error(row.name, RUNTIME, severity=severity, language="javascript"))
    assert (c.error_type, c.status, c.rule) == (row.error_type, row.status, f"seed:{row.name}{over}")
    # On the subtype, under an OpenFn wrapper whose own default would say otherwise.
    c = classify(client, error("RuntimeCrash", RUNTIME, subtype=row.name, severity=severity, language="javascript"))
    assert (c.error_type, c.status, c.rule) == (row.error_type, row.status, f"seed:{row.name}(subtype){over}")


def test_other_aliases_still_beat_the_severity(client: Client) -> None:
    # A name that is no OpenFn class has no default to override: the alias decides, and says so.
    c = classify(client, error("KeyError", JOB, severity=CRASH, language="python"))
    assert (c.status, c.rule) == (S.RUN_STATUS_FAILED, "alias:python:KeyError;over:severity:crash")
    c = classify(client, error("WorkerValidationError", RUNTIME, severity=FAIL, language="javascript"))
    assert (c.status, c.rule) == (S.RUN_STATUS_EXCEPTION, "alias:WorkerValidationError;over:severity:fail")
    c = classify(client, error("EvalError", RUNTIME, severity=CRASH, language="javascript"))
    assert (c.status, c.rule) == (S.RUN_STATUS_KILLED, "alias:EvalError;over:severity:crash")


def test_javascript_only_names_stay_javascript(client: Client) -> None:
    # Python's RuntimeError and pydantic's ValidationError are not OpenFn's.
    assert classify(client, error("ValidationError", JOB, language="python")).rule == "unknown:job"
    assert classify(client, error("RuntimeError", RUNTIME, language="python")).rule == "unknown:runtime"
