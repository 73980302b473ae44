// kiln's pages are server-rendered; this only follows build logs and
// sends the actions (trigger, GC) to the API, which checks the login.
"use strict";

function say(text, bad) {
  const m = document.getElementById("message");
  if (!m) return;
  m.textContent = text;
  m.classList.toggle("bad", !!bad);
}

async function post(url) {
  const r = await fetch(url, { method: "POST", credentials: "same-origin" });
  let body = {};
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const why = (body.errors && body.errors[0] && body.errors[0].message) || body.error || r.statusText;
    throw new Error(r.status === 401 ? "Log in first (" + why + ")" : why);
  }
  return body;
}

// Trigger buttons: queue the rule's build, then open it to watch its log.
document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-trigger]");
  if (!b) return;
  b.disabled = true;
  try {
    const q = b.dataset.force ? "?force=true" : "";
    const res = await post("/kiln/v1/rules/" + encodeURIComponent(b.dataset.trigger).replace(/%2F/g, "/") + "/trigger" + q);
    // The record is written just after the answer: wait for it.
    const rec = "/kiln/v1/builds/" + encodeURIComponent(res.id);
    for (let i = 0; i < 50 && !(await fetch(rec, { credentials: "same-origin" })).ok; i++) await pause(100);
    location.assign("/ui/build?id=" + encodeURIComponent(res.id));
  } catch (e) {
    say("Trigger failed: " + e.message, true);
    b.disabled = false;
  }
});

// GC buttons: a dry run, or a collection after a confirmation.
document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-gc]");
  if (!b) return;
  const dry = b.dataset.gc === "dry";
  if (!dry && !confirm("Collect garbage now? Unreferenced blobs are removed.")) return;
  b.disabled = true;
  say(dry ? "Running a dry run…" : "Collecting…");
  try {
    const res = await post("/kiln/v1/gc" + (dry ? "?dry_run=1" : ""));
    const pre = document.getElementById("gc-report");
    pre.textContent = JSON.stringify(res, null, 2);
    pre.hidden = false;
    say(dry ? "Dry run done: nothing was removed." : "Collection done.");
  } catch (e) {
    say("GC failed: " + e.message, true);
  } finally {
    b.disabled = false;
  }
});

const pause = (ms) => new Promise((ok) => setTimeout(ok, ms));

// A build's page follows its log as it grows, then shows how it ended. A
// queued build has no log yet: the stream ends at once, so it is asked
// again (from the start) until the record says the build is done.
async function followLog() {
  const rec = document.getElementById("record");
  const pre = document.getElementById("log");
  if (!rec || !pre) return;
  const base = "/kiln/v1/builds/" + encodeURIComponent(rec.dataset.build);
  try {
    for (;;) {
      const r = await fetch(base + "/log?follow=1", { credentials: "same-origin" });
      if (!r.ok) throw new Error(r.statusText);
      pre.textContent = "";
      const reader = r.body.getReader();
      const text = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(text.decode(value, { stream: true }));
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
      pre.append(text.decode());
      if (rec.dataset.done === "true") return;
      const b = await (await fetch(base, { credentials: "same-origin" })).json();
      const st = document.getElementById("status");
      st.textContent = b.status;
      st.className = "status st-" + b.status;
      if (["succeeded", "failed", "unchanged"].includes(b.status)) {
        rec.dataset.done = "true";
        return;
      }
      await pause(1000);
    }
  } catch (e) {
    pre.append("\n[log unavailable: " + e.message + "]");
  }
}

followLog();
