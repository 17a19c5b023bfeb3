// Steadfast dashboard: live refresh of the part marked data-live, and
// forms marked data-fetch submitted without leaving the page.
"use strict";
(function () {
  const meta = (name) => {
    const m = document.querySelector(`meta[name="${name}"]`);
    return m ? m.getAttribute("content") : "";
  };
  const csrf = meta("csrf-token");
  const pollMs = Math.max(100, parseInt(meta("poll-ms"), 10) || 1000);
  let live = null;
  let last = null;
  let busy = false;

  async function refresh() {
    if (!live || busy || document.hidden) return;
    busy = true;
    try {
      const res = await fetch(live.dataset.live, {
        headers: { Accept: "text/html" },
        credentials: "same-origin",
      });
      document.body.classList.toggle("offline", !res.ok);
      if (res.ok) {
        const html = await res.text();
        if (html !== last) {
          const keep = live.querySelector("tr.current");
          live.innerHTML = html;
          last = html;
          if (!keep) scrollToCurrent();
        }
      }
    } catch (e) {
      document.body.classList.add("offline");
    } finally {
      busy = false;
    }
  }

  function scrollToCurrent() {
    const row = document.querySelector(".sources tr.current");
    const box = row && row.closest(".source");
    if (row && box) box.scrollTop = row.offsetTop - box.clientHeight / 3;
  }

  async function submit(event) {
    const form = event.target;
    if (!form.matches || !form.matches("form[data-fetch]")) return;
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
  document.addEventListener("DOMContentLoaded", () => {
    live = document.getElementById("live");
    if (live) {
      last = live.innerHTML;
      setInterval(refresh, pollMs);
    }
    scrollToCurrent();
  });
})();
