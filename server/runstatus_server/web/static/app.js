// runstatus web UI: the one script. Pages are rendered by the server; this only
//  - submits the project picker when it changes, and
//  - keeps a page live: it listens to /events (WatchWorkOrders as Server-Sent Events; the
//    browser resumes after a disconnect with Last-Event-ID, the watch cursor) and, on an
//    event, fetches the same page again and swaps in its [data-live-region].
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  const live = document.querySelector("[data-live]");
  const region = document.querySelector("[data-live-region]");
  if (!live || !region || !window.EventSource) return;

  let pending = null;
  let refreshing = false;
  const say = (text, state) => { live.textContent = text; live.dataset.state = state; };

  async function refresh() {
    pending = null;
    if (refreshing) { pending = setTimeout(refresh, 300); return; }
    refreshing = true;
    try {
      const answer = await fetch(location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } });
      if (!answer.ok) return;
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.querySelector("[data-live-region]");
      const current = document.querySelector("[data-live-region]");
      if (fresh && current) current.replaceWith(document.adoptNode(fresh));
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } finally {
      refreshing = false;
    }
  }

  const events = new EventSource(live.dataset.live);
  // The watch starts a moment after the stream opens (from now, or after the last event id):
  // one refresh a second after each opening covers what changed since the page was made.
  events.onopen = () => { say("● live", "open"); setTimeout(() => { if (!pending) pending = setTimeout(refresh, 0); }, 1000); };
  events.onerror = () => say("○ reconnecting…", "reconnecting");
  events.onmessage = () => { if (!pending) pending = setTimeout(refresh, 250); };
  events.addEventListener("failure", (e) => {
    say("live updates stopped: " + JSON.parse(e.data), "failed");
    events.close();
  });
});
