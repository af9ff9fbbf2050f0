"""Rule 1, classification: an error as a worker saw it -> an error type and a run status.

A report names the error as thrown (`name`) and, when that is a wrapper, the wrapped
error's class (`subtype`: "TypeError" inside OpenFn's "RuntimeError"); it may carry the
runtime's own verdict (`severity`). Read top to bottom, the first rule that matches decides:

1. seed:NAME(subtype)  the seed's own spelling (JobError ... TimeoutError), read from
                  the proto options, on the subtype;
2. seed:NAME      the same on the name;
3. alias:LANG:NAME / alias:NAME, with "(subtype)" when the subtype matched: the alias
                  table's names for the error's language, then for any language (and,
                  when the report names no language, every language's names); on the
                  subtype first, then the name. An entry for one of OpenFn's own classes
                  records the severity the class declares (`{to: EXCEPTION, severity:
                  exception}`): that is the class's default, and a report whose explicit
                  severity differs from it is an instance OpenFn re-tagged, whose severity
                  decides (rule 5), saying so:
                  "severity:crash;over:alias:ExecutionError";
4. message:LANG   a message pattern, for errors whose name says little (Go panics);
5. severity:SEVERITY  the runtime's own verdict: fail is a job error (FAILED), crash
                  CRASHED, kill KILLED, exception EXCEPTION;
6. http:CODE      an unknown name with an HTTP error status: a failed request is a job
                  error, as in the seed's JobError example;
7. unknown:runtime  an unknown name from the runtime: EXCEPTION;
8. unknown:job    any other unknown name: a job error, FAILED.

So, for a report that carries a severity: the seed's names > OpenFn's severity > the alias
table's default for an OpenFn class; any other alias (Python's KeyError, Java's
NullPointerException, a Go name, an operator's plain entry) still beats the severity.

Why this order, from OpenFn's source (@openfn/runtime 1.9.5, @openfn/engine-multi 1.13.0,
@openfn/ws-worker): OpenFn decides by the instance's `severity`, never by its class. Each
class declares a default (`severity = 'exception'` on ExecutionError, engine-multi
src/errors.ts; `'crash'` on RuntimeCrash, runtime src/errors.ts), and the engine overrides
it per instance: an uncaught exception or unhandled rejection in job code (a timer, a
promise left rejected) becomes `new ExecutionError(err)` with `e.severity = 'crash'`
("likely not our fault", engine-multi worker/thread/helpers.ts); an error that crosses
the child process is rebuilt with its name and severity copied (worker/pool.ts). ws-worker
then reports `reason = error.severity ?? 'crash'` and `error_type = subtype || type ||
name` (api/reasons.ts): the severity is the verdict, the name only a label. The alias
table's OpenFn entries restate the declared defaults, so they must yield to an explicit,
different severity. The seed is this project's own specification and names its statuses
itself (ImportError is KILLED where OpenFn's runtime says crash), so its names still win
over everything.

A name that decides against a severity the report gave says so: the seed puts ImportError
under KILLED where OpenFn's runtime marks it crash, and the seed wins:
"seed:ImportError;over:severity:crash".

Names match exactly, then by their last dotted part ("java.lang.NullPointerException").
What a classification does to a step and its run (a failure goes on, an abort ends the run)
is verdicts.py's to say.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from runstatus import status_table
from runstatus.v1.error_pb2 import Classification, ErrorReport, ErrorSeverity, ErrorSource
from runstatus.v1.status_pb2 import ErrorType, RunStatus

DEFAULT_ALIASES = pathlib.Path(__file__).with_name("aliases.yaml")

# Spellings a worker may use for a language, and the one the table uses.
LANGUAGES = {
    "js": "javascript", "node": "javascript", "nodejs": "javascript", "typescript": "javascript",
    "ts": "javascript", "py": "python", "python3": "python", "golang": "go", "kotlin": "java",
    "jvm": "java",
}


@dataclass(frozen=True)
class Target:
    """What an alias leads to: an error type (and so its status), or a bare status. `severity`:
    the severity the error's class declares (OpenFn's classes), a default that a report's
    explicit, different severity overrides; unspecified for a name that decides alone."""

    error_type: ErrorType.ValueType
    status: RunStatus.ValueType
    severity: ErrorSeverity.ValueType = ErrorSeverity.ERROR_SEVERITY_UNSPECIFIED


# OpenFn's severity words, as a report's enum and as an alias entry's `severity` spells them.
SEVERITY_WORDS = {
    "fail": ErrorSeverity.ERROR_SEVERITY_FAIL,
    "crash": ErrorSeverity.ERROR_SEVERITY_CRASH,
    "kill": ErrorSeverity.ERROR_SEVERITY_KILL,
    "exception": ErrorSeverity.ERROR_SEVERITY_EXCEPTION,
}


@dataclass
class AliasTable:
    names: dict[str, Target] = field(default_factory=dict)
    languages: dict[str, dict[str, Target]] = field(default_factory=dict)
    messages: list[tuple[str, re.Pattern[str], Target]] = field(default_factory=list)

    def merge(self, data: dict[str, Any], source: str) -> None:
        """Adds a YAML document of the aliases.yaml shape; its entries win."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping at the top")
        unknown = set(data) - {"names", "languages", "messages"}
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}")
        for name, target in (data.get("names") or {}).items():
            self.names[str(name)] = _target(target, f"{source}: names.{name}")
        for language, names in (data.get("languages") or {}).items():
            table = self.languages.setdefault(normalize_language(str(language)), {})
            for name, target in (names or {}).items():
                table[str(name)] = _target(target, f"{source}: languages.{language}.{name}")
        for i, entry in enumerate(data.get("messages") or []):
            where = f"{source}: messages[{i}]"
            try:
                pattern = re.compile(entry["pattern"])
            except (KeyError, TypeError, re.error) as e:
                raise ValueError(f"{where}: a 'pattern' regular expression is required ({e})") from e
            language = normalize_language(str(entry.get("language", "")))
            self.messages.append((language, pattern, _target(entry.get("to"), where)))


def _target(value: object, where: str) -> Target:
    """An entry's target: a name (JOB_ERROR, CRASHED), or {to: NAME, severity: WORD} for a class
    that declares its own severity (OpenFn's), which a report's different severity overrides."""
    if isinstance(value, dict):
        unknown = set(value) - {"to", "severity"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; an entry is a name or {{to, severity}}")
        word = str(value.get("severity", "")).strip().lower()
        if word not in SEVERITY_WORDS:
            raise ValueError(f"{where}: severity {value.get('severity')!r} is not one of {', '.join(SEVERITY_WORDS)}")
        plain = _target(value.get("to"), where)
        return Target(plain.error_type, plain.status, SEVERITY_WORDS[word])
    name = str(value or "")
    if f"ERROR_TYPE_{name}" in ErrorType.keys():
        error_type = ErrorType.Value(f"ERROR_TYPE_{name}")
        return Target(error_type, status_table.status_of(error_type))
    if f"RUN_STATUS_{name}" in RunStatus.keys() and status_table.is_terminal(RunStatus.Value(f"RUN_STATUS_{name}")):
        return Target(ErrorType.ERROR_TYPE_UNSPECIFIED, RunStatus.Value(f"RUN_STATUS_{name}"))
    raise ValueError(f"{where}: {name!r} is neither an error type (JOB_ERROR, ...) nor a terminal status (CRASHED, ...)")


def normalize_language(language: str) -> str:
    language = language.strip().lower()
    return LANGUAGES.get(language, language)


def load_aliases(*paths: pathlib.Path | str) -> AliasTable:
    """The built-in table, then each operator file on top of it."""
    table = AliasTable()
    for path in (DEFAULT_ALIASES, *paths):
        with open(path, encoding="utf-8") as f:
            table.merge(yaml.safe_load(f) or {}, str(path))
    return table


class Classifier:
    def __init__(self, aliases: AliasTable | None = None) -> None:
        self.aliases = aliases or load_aliases()
        self.seed = {row.name: Target(row.error_type, row.status) for row in status_table.error_types().values()}
        # The runtime's own verdict, when no name decides.
        def bare(status: RunStatus.ValueType) -> Target:
            return Target(ErrorType.ERROR_TYPE_UNSPECIFIED, status)

        statuses = {"fail": self.seed["JobError"], "crash": bare(RunStatus.RUN_STATUS_CRASHED),
                    "kill": bare(RunStatus.RUN_STATUS_KILLED), "exception": bare(RunStatus.RUN_STATUS_EXCEPTION)}
        self.severities = {value: (word, statuses[word]) for word, value in SEVERITY_WORDS.items()}

    def classify(self, report: ErrorReport) -> Classification:
        language = normalize_language(report.language)
        # The wrapped error's class first, then the wrapper's: "(subtype)" marks a subtype match.
        names = [(n, "(subtype)") for n in [report.subtype.strip()] if n] + [(report.name.strip(), "")]
        for name, mark in names:
            for candidate in _spellings(name):
                if candidate in self.seed:
                    return self._named(report, self.seed[candidate], f"seed:{candidate}{mark}")
        for name, mark in names:
            found = self._alias(name, language)
            if found is not None:
                target, rule = found[0], f"{found[1]}{mark}"
                if target.severity and report.severity in self.severities and report.severity != target.severity:
                    # An OpenFn class's default, and OpenFn set another severity on this instance.
                    word, hinted = self.severities[report.severity]
                    return _result(hinted, f"severity:{word};over:{rule}")
                return self._named(report, target, rule)
        for pattern_language, pattern, target in self.aliases.messages:
            if pattern_language in ("", language) and pattern.search(report.message):
                return self._named(report, target, f"message:{pattern_language or 'any'}:{pattern.pattern}")
        if report.severity in self.severities:
            word, target = self.severities[report.severity]
            return _result(target, f"severity:{word}")
        if 400 <= report.http_status <= 599:
            return _result(self.seed["JobError"], f"http:{report.http_status}")
        if report.source == ErrorSource.ERROR_SOURCE_RUNTIME:
            return _result(Target(ErrorType.ERROR_TYPE_UNSPECIFIED, RunStatus.RUN_STATUS_EXCEPTION), "unknown:runtime")
        return _result(self.seed["JobError"], "unknown:job")

    def _alias(self, name: str, language: str) -> tuple[Target, str] | None:
        for candidate in _spellings(name):
            if candidate in self.aliases.languages.get(language, {}):
                return self.aliases.languages[language][candidate], f"alias:{language}:{candidate}"
            if candidate in self.aliases.names:
                return self.aliases.names[candidate], f"alias:{candidate}"
            if not language:
                for lang, table in self.aliases.languages.items():
                    if candidate in table:
                        return table[candidate], f"alias:{lang}:{candidate}"
        return None

    def _named(self, report: ErrorReport, target: Target, rule: str) -> Classification:
        """A name decided; if the runtime's severity says another status, the rule says the name won."""
        if report.severity in self.severities:
            word, hinted = self.severities[report.severity]
            if hinted.status != target.status:
                rule = f"{rule};over:severity:{word}"
        return _result(target, rule)


def _spellings(name: str) -> list[str]:
    """The name as thrown, then its last dotted part: java.lang.NullPointerException."""
    last = re.split(r"[.$]|::", name)[-1] if name else ""
    return [name] if last in ("", name) else [name, last]


def _result(target: Target, rule: str) -> Classification:
    return Classification(
        status=target.status,
        error_type=target.error_type,
        aborts_run=status_table.aborts_run(target.status),
        rule=rule,
    )
