// runstatus web UI: the one script. Pages are rendered by the server; this only
//  - submits the project picker when it changes,
//  - shows a bulk retry's progress (form[data-progress]: the server streams a line of JSON
//    with how far it got as the pages of retries commit, then the result), and
//  - keeps a page live: it listens to /events (WatchWorkOrders as Server-Sent Events; the
//    browser resumes after a disconnect with Last-Event-ID, the watch cursor) and, on an
//    event, fetches the same page again and swaps in its [data-live-region].
"use strict";

// Posts the form asking for progress, and shows each line of the answer as it comes.
function followProgress(form) {
  const button = form.querySelector("button");
  const bar = form.querySelector("progress");
  const output = form.querySelector("output");
  const show = (line) => {
    if (line.html !== undefined) {  // the end: the server's answer or its refusal (rendered, escaped, by the server)
      if (line.retried !== undefined) { bar.max = Math.max(line.total || 0, 1); bar.value = bar.max; }
      output.innerHTML = line.html;
      form.elements.request_id.value = line.request_id;  // the next click is a new bulk retry
      form.dataset.state = line.retried !== undefined ? "done" : "refused";
    } else if (line.total === null) {
      bar.removeAttribute("value");  // cannot count: an indeterminate bar
    } else {
      bar.max = Math.max(line.total, 1);
      bar.value = line.done;
      output.textContent = `${line.done} of ${line.total}`;
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    bar.hidden = false;
    bar.removeAttribute("value");
    form.dataset.state = "running";
    output.textContent = "starting…";
    try {
      const answer = await fetch(form.action, {
        method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
        headers: { Accept: "application/x-ndjson" },
      });
      if (!(answer.headers.get("Content-Type") || "").startsWith("application/x-ndjson")) {
        output.textContent = `${answer.status} ${answer.statusText}: ${await answer.text()}`;
        form.dataset.state = "refused";
        return;
      }
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const lines = (rest + value).split("\n");
        rest = lines.pop();
        for (const line of lines) if (line) show(JSON.parse(line));
      }
    } catch (error) {
      output.textContent = `lost the answer (${error}); the retry goes on at the server: reload to see it`;
      form.dataset.state = "lost";
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }
  for (const form of document.querySelectorAll("form[data-progress]")) followProgress(form);
  // An action's refusal is shown at the action's URL: the address bar gets the page's own, so
  // that reloading and the live refreshes read the page and never post again.
  const here = document.querySelector("[data-page]");
  if (here && location.pathname + location.search !== here.dataset.page) history.replaceState(null, "", here.dataset.page);

  const live = document.querySelector("[data-live]");
  const region = document.querySelector("[data-live-region]");
  if (!live || !region || !window.EventSource) return;

  let pending = null;
  let refreshing = false;
  const say = (text, state) => { live.textContent = text; live.dataset.state = state; };

  async function refresh() {
    pending = null;
    if (refreshing) { pending = setTimeout(refresh, 300); return; }
    // Someone is filling in an action's form (a cancel's reason, a step to retry from): the
    // swap would lose it, so it waits until they leave the form.
    const editing = document.activeElement;
    if (editing && editing.form && editing.form.closest("[data-live-region]")) { pending = setTimeout(refresh, 1000); return; }
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
  // A page with data-calm (the dashboard) refreshes at most once in that many milliseconds.
  const calm = Math.max(250, Number(live.dataset.calm || 0));
  events.onmessage = () => { if (!pending) pending = setTimeout(refresh, calm); };
  events.addEventListener("failure", (e) => {
    say("live updates stopped: " + JSON.parse(e.data), "failed");
    events.close();
  });
});
