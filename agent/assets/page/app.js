// Warden's status page: renders /v1/page (every check) at `/` and
// /v1/page/{check} at `/checks/{check}`, and refreshes in place. Every
// text from the agent is set as text (never parsed as HTML).
"use strict";
(() => {
  const REFRESH_MS = 10000;
  const TOKEN_KEY = "warden-token";
  const main = document.getElementById("main");
  const updated = document.getElementById("updated");
  const announce = document.getElementById("announce");
  let thresholds = [99.9, 99.0, 95.0];
  let lastStatuses = null;
  let timer = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAll(e, attrs, children);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAll(e, attrs, children);
    return e;
  }

  function setAll(e, attrs, children) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.setAttribute("class", v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const resp = await fetch(path, { headers, cache: "no-store" });
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      body = null;
    }
    if (!resp.ok) {
      const err = new Error((body && body.error && body.error.message) || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  // An uptime ratio as a percentage, never rounded up to 100%.
  function pct(u) {
    if (u === null || u === undefined) return "–";
    if (u >= 1) return "100%";
    return (Math.floor(u * 10000 + 1e-9) / 100).toFixed(2) + "%";
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    return Math.round(s / 60) + " min";
  }

  function ago(ms, now) {
    if (!ms) return "never";
    const d = Math.round((now - ms) / 1000);
    const span = (x) =>
      x < 60 ? x + " s" : x < 3600 ? Math.round(x / 60) + " min" : x < 86400 ? Math.round(x / 3600) + " h" : Math.round(x / 86400) + " d";
    return d >= 0 ? span(d) + " ago" : "in " + span(-d);
  }

  // A time, without its date when that is today.
  function when(ms) {
    if (!ms) return "–";
    const d = new Date(ms);
    return d.toDateString() === new Date().toDateString()
      ? d.toLocaleTimeString()
      : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function statusOf(c) {
    return c.status || "pending";
  }

  function statusText(s) {
    return s === "pending" ? "PENDING" : s.toUpperCase();
  }

  function pill(status, extra) {
    return el("span", { class: "pill s-" + status, "data-status": status }, statusText(status) + (extra || ""));
  }

  function uptimeClass(u) {
    if (u === null || u === undefined) return "s-none";
    if (u * 100 >= thresholds[1]) return "s-ok";
    if (u * 100 >= thresholds[2]) return "s-warning";
    return "s-critical";
  }

  function checkHref(name) {
    return "/checks/" + encodeURIComponent(name);
  }

  function tags(c) {
    const out = [];
    if (c.state_type === "soft" && c.last_status && c.last_status !== c.status)
      out.push(el("span", { class: "tag", "data-tag": "soft" }, "soft " + c.last_status));
    if (c.flapping) out.push(el("span", { class: "tag", "data-tag": "flapping" }, "flapping"));
    if (c.quiet) out.push(el("span", { class: "tag", "data-tag": "quiet", title: c.quiet }, quietLabel(c.quiet)));
    if (!c.enabled) out.push(el("span", { class: "tag", "data-tag": "disabled" }, "disabled"));
    if (c.running) out.push(el("span", { class: "tag", "data-tag": "running" }, "running"));
    return out;
  }

  function quietLabel(q) {
    return /maintenance/i.test(q) ? "in maintenance" : /silence/i.test(q) ? "silenced" : "quiet";
  }

  function bars(days) {
    const withRuns = days.filter((d) => d && d.uptime !== null);
    let label = "Daily uptime over the last " + days.length + " days: ";
    if (withRuns.length === 0) label += "no runs.";
    else {
      const low = withRuns.reduce((a, b) => (b.uptime < a.uptime ? b : a));
      label += withRuns.length + (withRuns.length === 1 ? " day" : " days") + " with runs, lowest " + pct(low.uptime) + " on " + new Date(low.start_unix_ms).toISOString().slice(0, 10) + ".";
    }
    const box = el("div", { class: "bars", role: "img", "aria-label": label });
    for (const d of days) {
      const u = d ? d.uptime : null;
      const title = d
        ? new Date(d.start_unix_ms).toISOString().slice(0, 10) + ": " + pct(u) + " of " + runsOf(d) + " runs"
        : "no runs";
      box.append(el("span", { class: "bar " + uptimeClass(u), title, "data-uptime": u === null ? null : u }));
    }
    return [box, el("div", { class: "bars-legend", "aria-hidden": "true" }, el("span", {}, days.length + " days ago"), el("span", {}, "today"))];
  }

  function runsOf(b) {
    const r = b.runs || {};
    return (r.ok || 0) + (r.warning || 0) + (r.critical || 0) + (r.unknown || 0);
  }

  function chart(hours) {
    const values = hours.map((h) => (h ? (h.latency_p95 ?? h.duration_p95) : null));
    const known = values.filter((v) => v !== null);
    const max = Math.max(...known, 0) || 1;
    const w = 240, h = 40, step = w / Math.max(values.length, 1);
    const segments = [];
    let current = [];
    values.forEach((v, i) => {
      if (v === null) {
        if (current.length) segments.push(current);
        current = [];
      } else current.push((i * step + step / 2).toFixed(1) + "," + (h - 3 - (v / max) * (h - 8)).toFixed(1));
    });
    if (current.length) segments.push(current);
    const label = known.length
      ? "Response time (p95) over the last 24 hours: from " + seconds(Math.min(...known)) + " to " + seconds(Math.max(...known)) + "."
      : "Response time over the last 24 hours: no runs.";
    const s = svg("svg", { class: "chart", viewBox: "0 0 " + w + " " + h, preserveAspectRatio: "none", role: "img", "aria-label": label });
    s.append(svg("title", {}, label));
    s.append(svg("line", { class: "base", x1: 0, y1: h - 2, x2: w, y2: h - 2 }));
    for (let seg of segments) {
      if (seg.length === 1) {
        // One hour alone: a short level line, so it shows.
        const [x, y] = seg[0].split(",").map(Number);
        seg = [(x - step / 2).toFixed(1) + "," + y, (x + step / 2).toFixed(1) + "," + y];
      }
      s.append(svg("polyline", { points: seg.join(" ") }));
    }
    return s;
  }

  function uptimeList(c) {
    const dl = el("dl", { class: "uptime" });
    for (const [w, label] of [["24h", "24 h"], ["7d", "7 d"], ["30d", "30 d"], ["90d", "90 d"]]) {
      const v = c.uptime[w];
      const u = v ? v.uptime : null;
      dl.append(el("div", {}, el("dt", {}, label), el("dd", { "data-window": w, "data-uptime": u === null ? null : u }, pct(u))));
    }
    return dl;
  }

  function card(c, now, linked) {
    const status = statusOf(c);
    const name = linked
      ? el("a", { class: "name", href: checkHref(c.name), id: "link-" + c.name }, c.name)
      : el("span", { class: "name" }, c.name);
    const left = el(
      "div",
      {},
      el("div", { class: "head" }, name, pill(status), tags(c)),
      uptimeList(c),
      el(
        "div",
        { class: "times" },
        el("span", {}, "Last run ", el("span", { "data-field": "last-run" }, ago(c.last_finished_unix_ms, now)), c.last_duration_seconds !== null && c.last_duration_seconds !== undefined ? " (" + seconds(c.last_duration_seconds) + ")" : ""),
        el("span", {}, "Next ", el("span", { "data-field": "next-due" }, c.enabled ? ago(c.next_due_unix_ms, now) : "never")),
      ),
    );
    const latest = [...c.hours].reverse().find((h) => h);
    const right = el(
      "div",
      {},
      bars(c.days),
      chart(c.hours),
      el(
        "div",
        { class: "bars-legend", "aria-hidden": "true" },
        el("span", {}, "response time (p95), 24 h"),
        el("span", {}, latest ? seconds(latest.latency_p95 ?? latest.duration_p95) + " this hour" : "no runs"),
      ),
    );
    return el(
      "li",
      { class: "check", "data-check": c.name, "data-status": status },
      left,
      right,
      c.last_summary ? el("p", { class: "summary muted" }, c.last_summary) : null,
    );
  }

  function overall(checks) {
    const order = ["critical", "warning", "unknown", "pending", "ok"];
    const count = {};
    for (const c of checks) count[statusOf(c)] = (count[statusOf(c)] || 0) + 1;
    const worst = order.find((s) => count[s]) || "ok";
    const parts = order.filter((s) => count[s]).map((s) => count[s] + " " + s);
    const text =
      checks.length === 0
        ? "No checks configured"
        : worst === "ok"
          ? "All " + checks.length + " checks OK"
          : parts.join(", ");
    document.title = "Warden: " + (checks.length ? parts.join(", ") : "no checks");
    return el("p", { class: "overall s-" + worst, "data-overall": worst }, text);
  }

  function announceChanges(checks) {
    const now = new Map(checks.map((c) => [c.name, statusOf(c)]));
    if (lastStatuses) {
      const changed = [...now].filter(([n, s]) => lastStatuses.has(n) && lastStatuses.get(n) !== s);
      if (changed.length) announce.textContent = changed.map(([n, s]) => n + " is now " + statusText(s)).join("; ");
    }
    lastStatuses = now;
  }

  function renderOverview(data) {
    const view = [el("h1", {}, "Status")];
    if (data.public_only) view.push(el("p", { class: "muted" }, "Showing the public checks. ", tokenLink()));
    view.push(overall(data.checks));
    const waiting = data.actions_waiting || [];
    if (waiting.length) {
      view.push(el("h2", { id: "actions-waiting" }, "Actions waiting for approval"));
      view.push(
        el(
          "ul",
          { class: "waiting", "aria-labelledby": "actions-waiting" },
          waiting.map((w) =>
            el(
              "li",
              {},
              el("strong", {}, w.action + (w.dry_run ? " (dry run)" : "")),
              " for ",
              el("a", { href: "/checks/" + encodeURIComponent(w.check) }, w.check),
              ": " + w.trigger_summary + " ",
              el("span", { class: "muted" }, "expires " + ago(w.expires_unix_ms, data.now_unix_ms) + "; approve with POST /v1/actions/" + w.id + "/approve"),
            ),
          ),
        ),
      );
    }
    view.push(el("ul", { class: "checks", "aria-label": "Checks" }, data.checks.map((c) => card(c, data.now_unix_ms, true))));
    announceChanges(data.checks);
    return view;
  }

  function table(caption, headers, rows) {
    return el(
      "div",
      { class: "scroll" },
      el(
        "table",
        {},
        el("caption", { class: "sr-only" }, caption),
        el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows),
      ),
    );
  }

  function renderCheck(data) {
    const c = data.check;
    const now = data.now_unix_ms;
    document.title = "Warden: " + c.name + " " + statusText(statusOf(c));
    const view = [
      el("p", {}, el("a", { href: "/" }, "← All checks")),
      el("h1", {}, c.name),
      el("ul", { class: "checks", "aria-label": "Check" }, card(c, now, false)),
      el("h2", { id: "runs" }, "Recent runs"),
      data.runs.length === 0
        ? el("p", { class: "muted" }, "No runs yet.")
        : table(
            "Recent runs, newest first",
            ["Started", "Status", "Duration", "Summary"],
            data.runs.map((r) =>
              el(
                "tr",
                { "data-run": r.id, "data-status": r.status },
                el("td", { class: "num", "data-label": "Started" }, when(r.started_unix_ms)),
                el("td", { "data-label": "Status" }, pill(r.status), r.manual ? el("span", { class: "tag" }, "manual") : null),
                el("td", { class: "num", "data-label": "Duration" }, seconds(r.duration_seconds)),
                el("td", { class: "text", "data-label": "Summary" }, r.summary),
              ),
            ),
          ),
      el("h2", { id: "findings" }, "Open findings"),
    ];
    if (data.findings === null) view.push(el("p", { class: "muted" }, "Findings and outputs need a token. ", tokenLink()));
    else if (data.findings.length === 0) view.push(el("p", { class: "muted" }, "None."));
    else
      view.push(
        table(
          "Open findings",
          ["Rule", "Severity", "Location", "Message", "Last seen"],
          data.findings.map((f) =>
            el(
              "tr",
              { "data-finding": f.fingerprint },
              el("td", { "data-label": "Rule" }, f.rule),
              el("td", { "data-label": "Severity" }, f.severity),
              el("td", { class: "text", "data-label": "Location" }, f.location || ""),
              el("td", { class: "text", "data-label": "Message" }, f.message),
              el("td", { class: "num", "data-label": "Last seen" }, ago(f.last_seen_unix_ms, now)),
            ),
          ),
        ),
      );
    if (data.outputs !== null) {
      view.push(el("h2", { id: "outputs" }, "Outputs"));
      view.push(
        data.outputs.length === 0
          ? el("p", { class: "muted" }, "None.")
          : table(
              "Outputs",
              ["Key", "Value", "Updated"],
              data.outputs.map((o) =>
                el(
                  "tr",
                  { "data-output": o.key },
                  el("td", { "data-label": "Key" }, o.key),
                  el("td", { class: "text", "data-label": "Value" }, o.value),
                  el("td", { class: "num", "data-label": "Updated" }, ago(o.updated_unix_ms, now)),
                ),
              ),
            ),
      );
    }
    view.push(el("h2", { id: "incidents" }, "Incidents"));
    if (data.incidents.length === 0) view.push(el("p", { class: "muted" }, "None."));
    for (const { incident: i, timeline } of data.incidents) {
      const open = i.ended_unix_ms === null || i.ended_unix_ms === undefined;
      view.push(
        el(
          "section",
          { class: "incident" + (open ? " open" : ""), "data-incident": i.id, "aria-label": "Incident " + i.id },
          el(
            "h3",
            {},
            open
              ? "Open: " + i.worst + " since " + when(i.started_unix_ms)
              : "Resolved: " + i.worst + ", " + when(i.started_unix_ms) + " to " + when(i.ended_unix_ms),
          ),
          el("p", { class: "text" }, i.summary),
          el(
            "ol",
            { class: "timeline", "aria-label": "Timeline" },
            timeline.map((e) => el("li", { "data-kind": e.kind }, el("span", { class: "muted" }, when(e.at_unix_ms) + " · " + e.kind + ": "), e.text)),
          ),
        ),
      );
    }
    announceChanges([c]);
    return view;
  }

  function tokenLink() {
    return el("a", { href: "#token", id: "token-link" }, "Enter a token");
  }

  function tokenForm(message) {
    const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
    const form = el(
      "form",
      { class: "token", id: "token-form" },
      el("label", { for: "token" }, "API token"),
      input,
      el("button", { type: "submit" }, "Show status"),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      history.replaceState(null, "", location.pathname);
      load();
    });
    return [el("h1", {}, "Status"), message ? el("p", { class: "error", role: "alert" }, message) : null, el("p", {}, "This agent needs a token to read its status."), form];
  }

  function route() {
    const m = location.pathname.match(/^\/checks\/(.+)$/);
    return m ? { check: decodeURIComponent(m[1]) } : {};
  }

  // The timer's refresh: never while someone is at the token form.
  function refresh() {
    if (location.hash === "#token" || document.getElementById("token-form")) return;
    load();
  }

  async function load() {
    clearTimeout(timer);
    const r = route();
    try {
      const data = await api(r.check ? "/v1/page/" + encodeURIComponent(r.check) : "/v1/page");
      if (data.uptime_thresholds) thresholds = data.uptime_thresholds;
      replace(r.check ? renderCheck(data) : renderOverview(data));
      updated.textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        sessionStorage.removeItem(TOKEN_KEY);
        replace(tokenForm(e.status === 403 ? e.message : null));
        const field = document.getElementById("token");
        if (e.status === 403 && field) field.focus();
        return;
      }
      if (e.status === 404) {
        replace([el("h1", {}, "Not found"), el("p", {}, e.message), el("p", {}, el("a", { href: "/" }, "All checks"))]);
        return;
      }
      updated.textContent = "Update failed: " + e.message + " (retrying)";
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  // Replaces the page's content, keeping keyboard focus where it was.
  function replace(nodes) {
    const focused = document.activeElement && document.activeElement.id;
    main.replaceChildren(...nodes.flat().filter(Boolean));
    const again = focused && document.getElementById(focused);
    if (again) again.focus();
  }

  window.addEventListener("hashchange", () => {
    if (location.hash === "#token") {
      clearTimeout(timer);
      replace(tokenForm(null));
      document.getElementById("token").focus();
    }
  });
  load();
})();
