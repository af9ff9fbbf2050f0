"""The web UI (`runstatus serve --web-port PORT`): the history page, a work order's runs and
steps, the status table (issue 16), and the notification subscriptions with their deliveries
(issue 27: notifications_page.py), in a browser.

Why it is built this way:

- **Server-rendered HTML with a small script**, not a single-page app. Every view is one page
  of one indexed query (ListWorkOrders, CountWorkOrders, GetWorkOrder/ListRuns/GetRun), so the
  server renders it in one pass and the browser shows it at once, with a URL that can be shared
  (the filter and the page token live in the query string). The script (static/app.js, no
  build step, no dependencies) only adds what HTML cannot: live updates. Nothing is fetched
  from the internet (no CDN, no web fonts), and there is no front-end toolchain to keep green
  beside the TypeScript client.
- **Only through the public gRPC API.** The web server holds an `runstatus.AsyncClient`
  connected over loopback to this server's own gRPC port and makes the calls any client makes,
  with the signed-in user's token on each call (with --auth: a sign-in form that takes an API
  token, kept in an HttpOnly, SameSite=Strict cookie; nothing weaker). So the page never sees
  more than that token may, and every refusal is the server's own, shown as it was worded.
- **aiohttp on the server's own asyncio loop**: started and stopped with the gRPC server
  (server.py), no thread and no second process; with --processes each process serves the web
  port too (SO_REUSEPORT, like the gRPC port).
- **Live updates** are Server-Sent Events (`/events`) fed by WatchWorkOrders: a new watch
  starts `from_now`, and the browser's EventSource resumes after a disconnect with
  Last-Event-ID, which is the watch cursor, so nothing is missed. On an event the script asks
  the server for the same page again and swaps it in: one rendering path, no client templates.
- **Actions are plain form POSTs** (retry, retry from a step, bulk retry, cancel), each
  answered with a redirect to the page it changed, or that page with the server's refusal.
  A POST must carry this server's Origin and its form's CSRF token, an HMAC of the browser's
  session cookie (the sign-in cookie is SameSite=Strict, but without --auth there is no
  cookie to hold back), and a request_id made with the page (AIP-155: a form sent twice is
  one action). Only the server's own Host names are answered (`--web-allowed-hosts` adds a
  proxy's): a DNS-rebinding site, whose own name points at this address, gets nothing. What a token's role may not call the page learns by asking
  the server (GetCallerToken, in `WebServer.refusals`), never from a copy of its rules. A bulk retry's progress
  streams back in the answer to its POST (`WebServer.stream_bulk_retry` says why).
- **TLS**: with the server's certificate the web port is HTTPS, and its client calls the
  gRPC port over TLS, trusting exactly that certificate.
"""

from .app import WebServer

__all__ = ["WebServer"]
