"""The history page's web security (issue 26), over raw HTTP so that odd bytes get through as
sent: only the server's own Host names are answered (DNS rebinding), every POST carries its
session's CSRF token, a sign-in never sends the browser off-site, a person's or a browser's
mistake is never a 500, and a hypothesis sweep of the whole web surface, with and without
--auth, finds no 500, no traceback and no Location off-site. (The browser's side of the
same: tests/test_web.py.)"""

from __future__ import annotations

import pathlib
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import Client, ServerProcess, free_port, offline_admin_token
from runstatus.v1 import work_order_service_pb2 as wo_pb

PROXY = "status.example.org"  # a proxy's name, allowed with --web-allowed-hosts


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names; the last of each
    cookies: list[str]  # every Set-Cookie
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def http(port: int, method: bytes = b"GET", target: bytes = b"/", headers: list[tuple[bytes, bytes]] | None = None,
         body: bytes = b"") -> Answer:
    """One request over a raw socket with its bytes as given (no client library tidies them);
    a Host of 127.0.0.1:port unless `headers` has one. An event stream is read to the end of
    its headers only."""
    given = list(headers or [])
    if not any(name.lower() == b"host" for name, _ in given):
        given.insert(0, (b"Host", b"127.0.0.1:%d" % port))
    lines = [method + b" " + target + b" HTTP/1.1", *(name + b": " + value for name, value in given),
             b"Connection: close"]
    if body or method == b"POST":
        lines.append(b"Content-Length: %d" % len(body))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        if b"text/event-stream" not in head.lower():
            while chunk := s.recv(65536):
                rest += chunk
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ")
    names = [line.partition(":") for line in header_lines]
    return Answer(int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0,
                  {name.strip().lower(): value.strip() for name, _, value in names},
                  [value.strip() for name, _, value in names if name.strip().lower() == "set-cookie"], rest)


@dataclass
class Site:
    """A server with a web port, and one retryable work order of its own."""

    server: ServerProcess
    port: int
    work_order: str = ""
    run: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> bytes:
        return b"http://127.0.0.1:%d" % self.port

    def session(self, path: str = "/") -> tuple[str, str]:
        """A browser's session as the page makes it: the session cookie it sets and the CSRF
        token its forms carry."""
        answer = http(self.port, target=path.encode())
        made = re.search(r"runstatus_session=([^;]+)", " ".join(answer.cookies))
        csrf = re.search(rb'name="csrf_token" value="([0-9a-f]+)"', answer.body)
        assert made and csrf, (answer.status, answer.cookies, answer.text[:2000])
        return made.group(1), csrf.group(1).decode()

    def post(self, path: str, fields: dict[str, str], session: str = "", token: str = "",
             host: bytes | None = None, origin: bytes = b"") -> Answer:
        headers = [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Origin", origin or self.origin)]
        if host is not None:
            headers.append((b"Host", host))
        if session or token:
            headers.append((b"Cookie", cookie(session, token)))
        return http(self.port, b"POST", path.encode(), headers, urlencode(fields).encode())

    def runs(self) -> int:
        c = Client(self.server.address)
        try:
            request = wo_pb.GetWorkOrderRequest(work_order_id=self.work_order)
            metadata = (("authorization", f"Bearer {self.tokens['admin']}"),) if self.tokens else ()
            return int(c.work_orders.GetWorkOrder(request, metadata=metadata).work_order.run_count)
        finally:
            c.close()


def cookie(session: str = "", token: str | bytes = "") -> bytes:
    parts = [f"runstatus_session={session}".encode()] if session else []
    if token:
        parts.append(b"runstatus_token=" + (token if isinstance(token, bytes) else token.encode()))
    return b"; ".join(parts)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """As `make serve` runs it: no --auth; and a proxy's names."""
    tmp = tmp_path_factory.mktemp("web-plain")
    port = free_port()
    server = ServerProcess(tmp / "runstatus.db", "--web-port", str(port),
                           "--web-allowed-hosts", f"{PROXY}, {PROXY}:8443").start()
    c = Client(server.address)
    try:
        c.new_project()
        created = c.work_order(c.workflow(["only"]))
        c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=created.run.id))
        yield Site(server, port, created.work_order.id, created.run.id)
    finally:
        c.close()
        server.stop()


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """With --auth; a proxy's name from RUNSTATUS_WEB_ALLOWED_HOSTS."""
    from runstatus import Client as RsClient

    tmp = tmp_path_factory.mktemp("web-auth")
    admin = offline_admin_token(tmp / "runstatus.db")
    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RUNSTATUS_WEB_ALLOWED_HOSTS", f"{PROXY}:8443")
        server = ServerProcess(tmp / "runstatus.db", "--auth", "--web-port", str(port)).start()
    try:
        with RsClient(server.address, token=admin) as rs:
            rs.create_project("clinic")
            rs.create_workflow("intake", ["fetch"], project_id="clinic")
            created = rs.create_work_order("intake", project_id="clinic")
            rs.cancel_run(created.latest_run_id)
        yield Site(server, port, created.id, created.latest_run_id, {"admin": admin})
    finally:
        server.stop()


def signed_out(answer: Answer) -> bool:
    """The sign-in form, and the token cookie dropped."""
    return 'class="sign-in"' in answer.text and any(
        c.startswith("runstatus_token=") and ("Max-Age=0" in c or "1970" in c) for c in answer.cookies)


# 1. DNS rebinding; CSRF

def test_only_the_servers_own_names_are_answered(plain: Site) -> None:
    """A rebinding site's pages reach this port with its own name as Host and Origin: the
    history page with its work orders was served to them, and their POSTs acted."""
    own = [b"127.0.0.1:%d" % plain.port, b"localhost:%d" % plain.port, b"[::1]:%d" % plain.port,
           b"LOCALHOST:%d" % plain.port, PROXY.encode(), f"{PROXY}:8443".encode()]
    for host in own:
        assert http(plain.port, target=b"/statuses", headers=[(b"Host", host)]).status == 200, host
    session, csrf = plain.session()
    runs = plain.runs()
    for host in (b"evil.example:%d" % plain.port, b"evil.example", b"127.0.0.1:%d" % (plain.port + 1), b"127.0.0.1",
                 f"{PROXY}:1".encode(), b""):
        page = http(plain.port, headers=[(b"Host", host), (b"Origin", b"http://" + host)])
        assert page.status == 421, (host, page.status)
        assert page.headers["content-type"].startswith("text/plain") and len(page.body) < 300
        assert "not a name of this server" in page.text and plain.work_order not in page.text
        retry = plain.post(f"/work-orders/{plain.work_order}/retry", {"csrf_token": csrf, "request_id": str(uuid.uuid4())},
                           session=session, host=host, origin=b"http://" + host)
        assert retry.status == 421, (host, retry.status)
    assert plain.runs() == runs


def test_a_proxys_name_is_served_and_its_forms_act(plain: Site, authed: Site) -> None:
    """--web-allowed-hosts (and RUNSTATUS_WEB_ALLOWED_HOSTS): a proxy's name, as its Host header
    gives it. A POST through it acts (its Origin is the proxy's)."""
    session, csrf = plain.session()
    runs = plain.runs()
    retry = plain.post(f"/work-orders/{plain.work_order}/retry", {"csrf_token": csrf, "request_id": str(uuid.uuid4())},
                       session=session, host=PROXY.encode(), origin=f"https://{PROXY}".encode())
    assert retry.status == 303, (retry.status, retry.text)
    assert plain.runs() == runs + 1
    c = Client(plain.server.address)
    try:  # ended again, for the other tests' retries
        latest = c.work_orders.GetWorkOrder(wo_pb.GetWorkOrderRequest(work_order_id=plain.work_order)).work_order
        c.work_orders.CancelRun(wo_pb.CancelRunRequest(run_id=latest.latest_run_id))
    finally:
        c.close()
    assert http(authed.port, target=b"/sign-in", headers=[(b"Host", f"{PROXY}:8443".encode())]).status == 200
    assert http(authed.port, target=b"/sign-in", headers=[(b"Host", PROXY.encode())]).status == 421


def test_web_allowed_hosts_takes_host_names_not_urls(tmp_path: pathlib.Path) -> None:
    with pytest.raises(RuntimeError, match="not a URL"):
        ServerProcess(tmp_path / "hosts.db", "--web-port", str(free_port()),
                      "--web-allowed-hosts", f"https://{PROXY}/").start()


def test_every_post_needs_its_sessions_csrf_token(plain: Site, authed: Site) -> None:
    retry = f"/work-orders/{plain.work_order}/retry"
    session, csrf = plain.session()
    other_session, other_csrf = plain.session()
    assert session != other_session and csrf != other_csrf
    runs = plain.runs()
    for fields, cookie_session, words in (
            ({}, session, "without its csrf_token"),
            ({"csrf_token": "0" * 64}, session, "not this browser session's"),
            ({"csrf_token": other_csrf}, session, "not this browser session's"),  # another browser's
            ({"csrf_token": csrf}, "", "not this browser session's"),  # no session cookie
            ({"csrf_token": csrf}, "x" * 43, "not this browser session's")):  # a session cookie planted
        answer = plain.post(retry, {**fields, "request_id": str(uuid.uuid4())}, session=cookie_session)
        assert answer.status == 403 and words in answer.text, (fields, cookie_session, answer.status, answer.text)
    assert plain.runs() == runs
    # Signing in and out are forms too (a sign-in forged by another site would sign the browser in as it).
    session, csrf = authed.session("/sign-in")
    refused = authed.post("/sign-in", {"token": authed.tokens["admin"]}, session=session)
    assert refused.status == 403 and not any(c.startswith("runstatus_token=") for c in refused.cookies)
    assert authed.post("/sign-out", {}, session=session, token=authed.tokens["admin"]).status == 403
    signed_in = authed.post("/sign-in", {"token": authed.tokens["admin"], "csrf_token": csrf}, session=session)
    assert signed_in.status == 303 and any(c.startswith("runstatus_token=rs_") for c in signed_in.cookies)


def test_the_processes_of_one_server_take_each_others_csrf_tokens(tmp_path: pathlib.Path) -> None:
    """With --processes each process serves the web port, and a form made by one may be posted
    to another: they share the secret (cli.py hands it to them)."""
    port = free_port()
    server = ServerProcess(tmp_path / "processes.db", "--processes", "2", "--web-port", str(port)).start()
    c = Client(server.address)
    try:
        c.new_project()
        created = c.work_order(c.workflow(["only"]))
        site = Site(server, port, created.work_order.id, created.run.id)
        for _ in range(10):  # each on a connection of its own, which the kernel gives either process
            session, csrf = site.session()
            answer = site.post(f"/work-orders/{site.work_order}/runs/{site.run}/cancel",
                               {"csrf_token": csrf, "request_id": str(uuid.uuid4())}, session=session)
            assert answer.status in (303, 409), (answer.status, answer.text[:300])  # done, or done already
    finally:
        c.close()
        server.stop()


# 2. After signing in, this site only

def test_sign_in_sends_the_browser_to_this_site_only(authed: Site) -> None:
    session, csrf = authed.session("/sign-in")
    for next_path in ("/\t/evil.example/", "/\n/evil.example/", "/\r\n/evil.example/", "//evil.example",
                      "/\\evil.example", "\\\\evil.example", "/\x00/evil.example", "https://evil.example",
                      "http:evil.example", " //evil.example", "evil.example"):
        answer = authed.post("/sign-in", {"token": authed.tokens["admin"], "next": next_path, "csrf_token": csrf},
                             session=session)
        assert answer.status == 303 and answer.headers["location"] == "/", (next_path, answer.headers.get("location"))
        shown = http(authed.port, target=b"/sign-in?" + urlencode({"next": next_path}).encode())
        assert 'name="next" value="/"' in shown.text, next_path
    answer = authed.post("/sign-in", {"token": authed.tokens["admin"], "next": "/statuses?project=clinic",
                                      "csrf_token": csrf}, session=session)
    assert answer.headers["location"] == "/statuses?project=clinic"


# 3. A mistake is never a 500

def test_a_cookie_token_the_server_does_not_take_goes_back_to_the_sign_in_form(authed: Site) -> None:
    """A made-up token, and a revoked one: the sign-in form with the server's words (401),
    whatever page was asked for. (A revoked one was a 500 once the page's memory of what the
    token may call, a minute, ran out: GetCallerToken's UNAUTHENTICATED went unhandled; a
    made-up token took that path at once.)"""
    from runstatus import Client as RsClient

    made_up = "rs_0123456789abcdef_made-up"
    for path in ("/", "/statuses", f"/work-orders/{authed.work_order}", "/events"):
        answer = http(authed.port, target=path.encode(), headers=[(b"Cookie", cookie(token=made_up))])
        assert answer.status == 401 and signed_out(answer), (path, answer.status, answer.text[:500])
        assert "UNAUTHENTICATED" in answer.text and f'name="next" value="{path}"' in answer.text
    with RsClient(authed.server.address, token=authed.tokens["admin"]) as rs:
        made, secret = rs.create_token("client", project_id="clinic")
        first = http(authed.port, headers=[(b"Cookie", cookie(token=secret))])
        assert first.status == 200 and authed.work_order in first.text
        rs.revoke_token(made.id)
    for path in ("/", "/statuses"):
        answer = http(authed.port, target=path.encode(), headers=[(b"Cookie", cookie(token=secret))])
        assert answer.status == 401 and signed_out(answer) and "revoked" in answer.text, (path, answer.status)


@pytest.mark.parametrize("token, words", [
    ("rs_é".encode(), "characters an API token has not"),
    (b"rs_\xff\xfe", "characters an API token has not"),  # not UTF-8
    (b'"rs_a b c"', "characters an API token has not"),  # spaces (a quoted cookie value)
    (b"rs_" + b"a" * 7000, "7,003 characters long"),
])
def test_a_mangled_cookie_token_is_a_400_that_says_what_is_wrong(authed: Site, token: bytes, words: str) -> None:
    answer = http(authed.port, target=b"/statuses", headers=[(b"Cookie", cookie(token=token))])
    assert answer.status == 400 and signed_out(answer), (answer.status, answer.text[:500])
    assert "The sign-in cookie holds no API token" in answer.text and words in answer.text


@pytest.mark.parametrize("token, words", [
    ("rs_é", "characters an API token has not"), ("rs_a\x00b", "characters an API token has not"),
    ("rs_a\r\nb", "characters an API token has not"), ("rs_" + "x" * 19_997, "20,000 characters long"),
    ("rs_" + "x" * 8_997, "9,000 characters long"),
])
def test_a_sign_in_token_that_is_no_token_is_refused_at_the_form(authed: Site, token: str, words: str) -> None:
    """Refused with the form again; a 20,000-character one was taken into a cookie that made
    every later request too large for the web port (400)."""
    session, csrf = authed.session("/sign-in")
    answer = authed.post("/sign-in", {"token": token, "csrf_token": csrf}, session=session)
    assert answer.status == 400 and 'class="sign-in"' in answer.text, (answer.status, answer.text[:500])
    assert "That is no API token" in answer.text and words in answer.text
    assert not any(c.startswith("runstatus_token=") for c in answer.cookies)


def test_a_last_event_id_that_is_not_utf8_is_a_400(plain: Site) -> None:
    answer = http(plain.port, target=b"/events", headers=[(b"Last-Event-ID", b"\xff")])
    assert answer.status == 400 and "Last-Event-ID is not UTF-8" in answer.text, (answer.status, answer.text)


# 4. The sweep

ROUTES = ("/", "/work-orders/{}", "/work-orders/{}/retry", "/work-orders/{}/runs/{}/cancel", "/retry-matching",
          "/statuses", "/events", "/sign-in", "/sign-out", "/static/{}", "/{}", "/notifications",
          "/notifications/subscriptions/{}/test", "/notifications/deliveries/{}/redeliver", "/retention",
          "/dashboard")
NAMES = ("project", "status", "workflow", "size", "page", "id", "run", "runs_page", "after", "work_order",
         "created_after", "created_before", "changed_after", "changed_before", "next", "window", "bucket", "from",
         "to")
ODD = ("", "x", "%", "%ff", "%00", "%0d%0a", "é", "\x00", "\t", " ", "/", "\\", "//evil.example", "/\t/evil.example",
       "/\\evil.example", "https://evil.example", "../..", "FAILED", "CANCELLED", "0", "-1", "9" * 30, "1e9",
       "0001-01-01T00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30", "[", "x" * 9000, "rs_0123456789abcdef_x")
BYTES = st.one_of(st.sampled_from([o.encode() for o in ODD]), st.text(max_size=24).map(str.encode), st.binary(max_size=24))


def one_line(value: bytes) -> bytes:
    return value.replace(b"\r", b"").replace(b"\n", b"")


def in_header(value: bytes) -> bytes:
    """What a header value may hold (aiohttp answers 400 to other control characters)."""
    return bytes(b for b in value if b == 9 or 32 <= b != 127)


def in_url(value: bytes, raw: bool) -> bytes:
    """Percent-encoded, or raw (but a space, which would end the request line)."""
    return one_line(value).replace(b" ", b"") if raw else quote(value, safe="/").encode()


def pick(draw: Any, common: list[Any], odds: int = 4) -> Any:
    """One of `common`, or one time in `odds` odd bytes (mostly ones aiohttp reads as a header):
    so that most requests get past the Host and Origin checks to the handlers."""
    if draw(st.integers(1, odds)) > 1:
        return draw(st.sampled_from(common))
    return draw(st.one_of(*[BYTES.map(in_header)] * 3, BYTES.map(one_line)))


@st.composite
def web_requests(draw: Any, site: Site, session: tuple[str, str]) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    """A request of any method to any route, with odd path segments, query strings, headers,
    cookies and form bodies; mostly from the page's own site with a real session, sometimes
    with the real CSRF token and (with --auth) a real token, so that the handlers see them."""
    method = draw(st.sampled_from([b"GET", b"GET", b"POST", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"DELETE"]))
    raw = draw(st.integers(1, 6)) == 1  # else a URL aiohttp reads
    known = st.sampled_from([site.work_order, site.run, "app.js", "style.css"]).map(str.encode)
    path = draw(st.sampled_from(ROUTES)).encode()
    while b"{}" in path:
        path = path.replace(b"{}", in_url(draw(st.one_of(known, BYTES)), raw), 1)
    query = draw(st.lists(st.tuples(st.one_of(st.sampled_from(NAMES).map(str.encode), BYTES), BYTES), max_size=4))
    target = path + (b"?" + b"&".join(in_url(k, raw) + b"=" + in_url(v, raw) for k, v in query) if query else b"")
    own = b"127.0.0.1:%d" % site.port
    headers = [(b"Host", pick(draw, [own] * 8 + [b"evil.example:%d" % site.port, b"localhost:%d" % site.port], 10))]
    if origin := pick(draw, [b"http://" + own] * 4 + [b"", b"null", b"http://[x"]):
        headers.append((b"Origin", origin))
    session_cookie, csrf = session
    token = site.tokens.get("admin", "").encode()
    cookies = [name + b"=" + pick(draw, [value, value, b""]) for name, value in (
        (b"runstatus_session", session_cookie.encode()), (b"runstatus_token", token)) if draw(st.booleans())]
    if cookies:
        headers.append((b"Cookie", b"; ".join(cookies)))
    for name, common in ((b"Last-Event-ID", b"1"), (b"Accept", b"application/x-ndjson"),
                         (b"Content-Type", b"application/x-www-form-urlencoded")):
        if (value := pick(draw, [None, None, common])) is not None:
            headers.append((name, value))
    fields = draw(st.dictionaries(st.sampled_from(["csrf_token", "token", "next", "request_id", "start_step_id", "reason",
                                                   "SUCCESS", "payloads", "archive"]),
                                  BYTES, max_size=4))
    if "csrf_token" in fields and draw(st.booleans()):
        fields["csrf_token"] = csrf.encode()
    if "token" in fields and draw(st.booleans()):
        fields["token"] = token
    body = draw(st.sampled_from([b"&".join(quote(k).encode() + b"=" + quote(v).encode() for k, v in fields.items())])
                | st.binary(max_size=64))
    return method, target, headers, body


def off_site(location: str) -> bool:
    """A Location a browser follows to another site: read as it reads one (control characters
    dropped, backslashes as slashes)."""
    seen = re.sub(r"[\x00-\x20\x7f]", "", location).replace("\\", "/")
    return not seen.startswith("/") or seen.startswith("//") or bool(urlsplit(seen).scheme)


def sweep(site: Site, session: tuple[str, str]) -> None:
    start = len(site.server.log_entries())

    @settings(max_examples=600, deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                     HealthCheck.function_scoped_fixture])
    @given(web_requests(site, session))
    def one(request: tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]) -> None:
        answer = http(site.port, *request)
        assert 100 <= answer.status < 500, (answer.status, answer.text[:1000])
        assert b"Traceback" not in answer.body
        assert not off_site(answer.headers.get("location", "/")), answer.headers["location"]

    one()
    # No exception escaped a handler (aiohttp logs those; it logs the requests its parser
    # refuses with 400 as errors too, which are not this server's).
    # (Those are summed up in one warning line a minute: logs.UnparsableRequests.)
    unhandled = [e for e in site.server.log_entries()[start:] if str(e.get("logger", "")).startswith("aiohttp")
                 and "aiohttp.http_exceptions." not in str(e.get("exception", ""))
                 and e.get("message") != "unparsable HTTP requests on the web port"]
    assert not unhandled, unhandled[:3]


def test_a_sweep_of_the_web_surface_without_auth(plain: Site) -> None:
    sweep(plain, plain.session())


def test_a_sweep_of_the_web_surface_with_auth(authed: Site) -> None:
    sweep(authed, authed.session("/sign-in"))


def test_the_sweep_covers_every_route_the_web_server_serves() -> None:
    from runstatus_server.server import Settings
    from runstatus_server.web import WebServer

    app = WebServer(Settings(web_port=1), 1).application()
    served = {re.sub(r"\{[^}]*\}", "{}", route.resource.canonical) for route in app.router.routes()
              if route.resource is not None}
    swept = {path.removesuffix("/{}") if path.startswith("/static") else path for path in ROUTES}
    assert served <= swept, served - swept


def test_requests_that_are_not_http_do_not_fill_the_log(plain: Site) -> None:
    """aiohttp logs each request it cannot parse with a traceback at error level: anyone could fill
    the log. Now: one warning line a minute saying how many, without the traceback."""
    import socket

    before = len(plain.server.log_entries())
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", plain.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n")
            s.recv(1000)
    answered = http(plain.port)  # and the site still answers
    assert answered.status == 200
    new = [e for e in plain.server.log_entries()[before:] if e.get("logger") == "aiohttp.server"]
    assert len(new) <= 1 and all("exception" not in e and e["level"] == "warning" for e in new), new
