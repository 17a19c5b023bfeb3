// Steadfast dashboard: live refresh of the part marked data-live (only
// when its version changed, patched in place so scroll positions, open
// details and typed text survive), the current source line kept in view,
// relative times, JSON copy buttons, timeline <-> source links, and forms
// marked data-fetch submitted without leaving the page.
"use strict";
(function () {
  const meta = (name) => {
    const m = document.querySelector(`meta[name="${name}"]`);
    return m ? m.getAttribute("content") : "";
  };
  const csrf = meta("csrf-token");
  const pollMs = Math.max(100, parseInt(meta("poll-ms"), 10) || 1000);
  let live = null;
  let etag = null;
  let busy = false;
  let shownAt = "";
  // For tests and the curious: how many polls ran and how many changed the page.
  window.steadfastLive = { polls: 0, patches: 0 };

  function setState(state) {
    document.body.dataset.live = state;
    const label = document.getElementById("live-state");
    if (label) {
      label.textContent = state === "live" ? "live" : state === "offline" ? "offline: retrying" : "paused";
      label.title = state === "live"
        ? `this page refreshes itself every ${pollMs} ms`
        : state === "offline" ? "the dashboard does not answer; the page keeps trying" : "the tab is hidden";
    }
  }

  async function refresh() {
    if (!live || busy) return;
    if (document.hidden) { setState("paused"); return; }
    busy = true;
    try {
      const headers = { Accept: "text/html" };
      if (etag) headers["If-None-Match"] = etag;
      const res = await fetch(live.dataset.live, { headers, credentials: "same-origin", cache: "no-store" });
      window.steadfastLive.polls += 1;
      if (res.status === 304) { setState("live"); return; }
      if (!res.ok) { setState("offline"); return; }
      setState("live");
      const version = res.headers.get("ETag");
      const html = await res.text();
      if (version && version === etag) return;
      etag = version;
      const next = document.createElement("template");
      next.innerHTML = html;
      morphChildren(live, next.content);
      window.steadfastLive.patches += 1;
      decorate();
    } catch (e) {
      setState("offline");
    } finally {
      busy = false;
    }
  }

  // Patches `old` to look like `fresh`, keeping every node that stays.
  function morphChildren(old, fresh) {
    const oldKids = Array.from(old.childNodes);
    const newKids = Array.from(fresh.childNodes);
    for (let i = 0; i < newKids.length; i++) {
      const o = oldKids[i];
      const n = newKids[i];
      if (!o) { old.appendChild(n); continue; }
      if (o.nodeType !== n.nodeType || o.nodeName !== n.nodeName || keyOf(o) !== keyOf(n)) {
        old.replaceChild(n, o);
        continue;
      }
      if (o.nodeType === Node.TEXT_NODE || o.nodeType === Node.COMMENT_NODE) {
        if (o.nodeValue !== n.nodeValue) o.nodeValue = n.nodeValue;
        continue;
      }
      if (o.nodeType !== Node.ELEMENT_NODE) continue;
      // What the user set stays: details opened or closed, typed text.
      if (o.dataset.version && o.dataset.version === n.dataset.version) continue;
      morphAttributes(o, n);
      if (o === document.activeElement && (o.matches("input, textarea, select"))) continue;
      morphChildren(o, n);
    }
    for (let i = oldKids.length - 1; i >= newKids.length; i--) old.removeChild(oldKids[i]);
  }

  const keyOf = (node) => (node.nodeType === Node.ELEMENT_NODE ? node.id || node.dataset.key || "" : "");

  function morphAttributes(o, n) {
    for (const a of Array.from(o.attributes)) {
      if (a.name === "open" && o.tagName === "DETAILS") continue;
      if (!n.hasAttribute(a.name)) o.removeAttribute(a.name);
    }
    for (const a of Array.from(n.attributes)) {
      if (a.name === "open" && o.tagName === "DETAILS") continue;
      if (o.getAttribute(a.name) !== a.value) o.setAttribute(a.name, a.value);
    }
  }

  // Scrolls each source box so `row` is in its upper third.
  function scrollBoxTo(row) {
    const box = row && row.closest(".source");
    if (!box) return;
    const rowRect = row.getBoundingClientRect();
    const boxRect = box.getBoundingClientRect();
    const head = box.querySelector(".source-head");
    const top = boxRect.top + (head ? head.offsetHeight : 0);
    const visible = rowRect.top >= top && rowRect.bottom <= boxRect.bottom;
    if (!visible) box.scrollTop += rowRect.top - top - (box.clientHeight - rowRect.height) / 3;
  }

  // The current line (or, on a kind page, the busiest), in view whenever it moves.
  function followCurrent(initial) {
    const rows = Array.from(document.querySelectorAll(".source tr.current, .source tr.busiest"));
    const at = rows.map((r) => `${r.closest(".source").dataset.file}:${r.dataset.line}`).join(" ");
    if (at === shownAt && !initial) return;
    shownAt = at;
    rows.forEach(scrollBoxTo);
    // And in the window: on load, and when the line moves.
    if (rows[0]) {
      const r = rows[0].getBoundingClientRect();
      if (r.top < 0 || r.bottom > window.innerHeight) {
        rows[0].scrollIntoView({ block: initial ? "center" : "nearest" });
        scrollBoxTo(rows[0]);
      }
    }
  }

  const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  function relative(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return null;
    let secs = Math.round((Date.now() - then) / 1000);
    const future = secs < 0;
    secs = Math.abs(secs);
    if (secs < 5) return "just now";
    for (const [unit, size] of units) {
      if (secs >= size) {
        const n = Math.floor(secs / size);
        return future ? `in ${n} ${unit}` : `${n} ${unit} ago`;
      }
    }
    return "just now";
  }

  function decorate() {
    for (const bar of document.querySelectorAll(".axis .bar[data-left]")) {
      bar.style.left = `${bar.dataset.left}%`;
      bar.style.width = `${bar.dataset.width}%`;
    }
    for (const t of document.querySelectorAll("time[data-rel]")) {
      const text = relative(t.getAttribute("datetime"));
      if (text && t.textContent !== text) t.textContent = text;
    }
    followCurrent(false);
  }

  // Clicking a timeline entry highlights its line; clicking a line marks its entries.
  function pick(event) {
    const copy = event.target.closest("button.copy");
    if (copy) {
      const src = document.getElementById(copy.dataset.copy);
      const text = src ? (src.dataset.full || src.textContent) : "";
      const done = () => { copy.textContent = "copied"; setTimeout(() => { copy.textContent = "copy"; }, 1200); };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, () => {});
      else {
        const area = document.createElement("textarea");
        area.value = text;
        document.body.appendChild(area);
        area.select();
        try { document.execCommand("copy"); done(); } catch (e) { /* nothing to do */ }
        area.remove();
      }
      return;
    }
    const entry = event.target.closest("[data-at]");
    if (entry && !event.target.closest("a, button, form, summary")) {
      select(entry.dataset.at);
      return;
    }
    const row = event.target.closest(".source tr[data-line]");
    if (row) {
      const file = row.closest(".source").dataset.file;
      select(`${file}:${row.dataset.line}`);
    }
  }

  function select(at) {
    document.querySelectorAll(".picked").forEach((e) => e.classList.remove("picked"));
    const cut = at.lastIndexOf(":");
    const file = at.slice(0, cut);
    const line = at.slice(cut + 1);
    for (const box of document.querySelectorAll(".source")) {
      if (box.dataset.file !== file) continue;
      const row = box.querySelector(`tr[data-line="${line}"]`);
      if (row) { row.classList.add("picked"); scrollBoxTo(row); }
    }
    const entries = Array.from(document.querySelectorAll("[data-at]")).filter((e) => e.dataset.at === at);
    entries.forEach((e) => e.classList.add("picked"));
    if (entries[0]) entries[0].scrollIntoView({ block: "nearest" });
  }

  async function submit(event) {
    const form = event.target;
    if (!form.matches) return;
    if (form.matches("form[data-confirm]:not([data-fetch])")) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      return;
    }
    if (!form.matches("form[data-fetch]")) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const out = form.querySelector("output.result");
    const body = new URLSearchParams(new FormData(form));
    try {
      const res = await fetch(form.action, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      });
      let data = {};
      try { data = await res.json(); } catch (e) { data = { error: `HTTP ${res.status}` }; }
      if (out) {
        out.textContent = data.ok ? data.message : (data.error || `HTTP ${res.status}`);
        out.className = "result " + (data.ok ? "ok" : "err");
      }
      refresh();
    } catch (e) {
      if (out) { out.textContent = String(e); out.className = "result err"; }
    }
  }

  document.addEventListener("submit", submit);
  document.addEventListener("click", pick);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  document.addEventListener("DOMContentLoaded", () => {
    live = document.getElementById("live");
    if (live) {
      etag = live.dataset.version ? `"${live.dataset.version}"` : null;
      setState("live");
      setInterval(refresh, pollMs);
    }
    decorate();
    followCurrent(true);
  });
})();
