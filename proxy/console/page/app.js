"use strict";
// scopegate operator page. Every string from the server is rendered with
// textContent or as an SVG text node: never as markup.
(function () {
  const REFRESH_MS = 5000;
  const TAIL_MAX = 100;
  const TOKEN_KEY = "scopegate-admin-token";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers (text only) ----
  function el(tag, cls, ...kids) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text != null) e.textContent = String(text);
    return e;
  }
  function setText(id, s) { $(id).textContent = s == null ? "" : String(s); }
  function empty(msg) { return el("p", "empty", msg); }
  function table(headers, rows) {
    if (!rows.length) return null;
    const t = el("table");
    const hr = el("tr");
    for (const h of headers) hr.append(el("th", h.num ? "num" : (h.narrow ? "hide-narrow" : ""), h.label));
    t.append(el("thead", "", hr));
    const tb = el("tbody");
    for (const r of rows) tb.append(r);
    t.append(tb);
    return t;
  }
  function td(text, cls) { return el("td", cls || "", text); }
  function fill(id, node, emptyMsg) {
    const box = $(id);
    box.replaceChildren(node || empty(emptyMsg));
  }

  // ---- formatting ----
  const nf = new Intl.NumberFormat();
  const num = (n) => nf.format(n || 0);
  function ms(v) {
    if (v == null) return "–";
    if (v < 1) return (v * 1000).toFixed(0) + " µs";
    if (v < 100) return v.toFixed(v < 10 ? 2 : 1) + " ms";
    return v.toFixed(0) + " ms";
  }
  function ago(iso) {
    if (!iso) return "never";
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (s < 0) return "in " + dur(-s);
    if (s < 45) return "just now";
    return dur(s) + " ago";
  }
  function dur(s) {
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  function hhmm(iso) {
    const d = new Date(iso);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }
  function localTime(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }
  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

  // Reason colours: stable per reason name.
  const PALETTE = ["#d64545", "#c77c02", "#8e44ad", "#d35400", "#16a085", "#2c3e50", "#e84393", "#7f8c8d", "#b7950b", "#1abc9c", "#5d6d7e", "#a04000"];
  const reasonColour = {};
  function colourOf(reason) {
    if (!reasonColour[reason]) {
      let h = 0;
      for (const c of reason) h = (h * 31 + c.charCodeAt(0)) >>> 0;
      reasonColour[reason] = PALETTE[h % PALETTE.length];
    }
    return reasonColour[reason];
  }
  function reasonTag(reason, n) {
    const s = el("span", "reason", n == null ? reason : reason + " " + num(n));
    s.style.setProperty("--c", colourOf(reason));
    return s;
  }

  // ---- API ----
  class Unauthorized extends Error {}
  function authHeaders() {
    const t = sessionStorage.getItem(TOKEN_KEY);
    return t ? { Authorization: "Bearer " + t } : {};
  }
  async function api(path) {
    const r = await fetch(path, { headers: authHeaders(), cache: "no-store" });
    if (r.status === 401) throw new Unauthorized();
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  let tokenWaiters = [];
  function askToken(refused) {
    $("main").hidden = true;
    $("token-form").hidden = false;
    $("token-error").hidden = !refused;
    $("token-input").focus();
    return new Promise((res) => tokenWaiters.push(res));
  }
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    $("token-form").hidden = true;
    $("main").hidden = false;
    const w = tokenWaiters;
    tokenWaiters = [];
    w.forEach((f) => f());
    refresh();
  });

  // ---- rendering ----
  function renderOverview(o) {
    setText("version", o.version ? "v" + o.version : "");
    const st = o.store || {};
    const pill = $("store-pill");
    pill.textContent = "store " + (st.kind || "?") + ": " + (st.state || "?");
    pill.className = "pill " + (st.state === "ok" ? "ok" : st.state === "stale" ? "warn" : "bad");
    const banner = $("banner");
    if (st.state === "down") {
      banner.textContent = "The credential store is down: requests that need it are refused (503 store_unavailable).";
      banner.className = "banner";
      banner.hidden = false;
    } else if (st.state === "stale") {
      banner.textContent = "The database is unreachable: serving what was known, within the stale TTL.";
      banner.className = "banner warn";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }

    let allowed = 0, denied = 0;
    for (const m of o.minutes) { allowed += m.allowed; denied += m.denied; }
    setText("t-total", num(allowed + denied));
    setText("t-allowed", num(allowed));
    setText("t-denied", num(denied));
    setText("t-rate", allowed + denied ? ((100 * denied) / (allowed + denied)).toFixed(1) + "% denied" : "");
    setText("t-p50", ms(o.latency_ms && o.latency_ms.p50));
    setText("t-p99", ms(o.latency_ms && o.latency_ms.p99));
    const c = o.clients || {};
    setText("t-clients", num(c.active));
    setText("t-clients-sub", "active · " + num(c.suspended) + " suspended · " + num(c.revoked) + " revoked");

    const kv = [
      ["Version", o.version],
      ["Up for", dur(o.uptime_seconds) + " (since " + localTime(o.started_at) + ")"],
      ["Store", (st.kind || "?") + ", " + (st.state || "?")],
      ["Last full load", st.last_reload ? localTime(st.last_reload) + " (" + ago(st.last_reload) + ")" : "never"],
      ["Routes", o.routes ? num(o.routes) + " rules" : "no routes file"],
      ["Rate limit", (o.rate_limit || {}).backend + ", " + (o.rate_limit || {}).state],
      ["Since start", num((o.totals || {}).allowed) + " allowed, " + num((o.totals || {}).denied) + " denied"],
      ["Live tail", num((o.stream || {}).subscribers) + " open, " + num((o.stream || {}).dropped) + " events dropped"],
    ];
    $("health").replaceChildren(...kv.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", v)]));
    $("settings").replaceChildren(...(o.settings || []).flatMap((s) => [el("dt", "mono", s.name), el("dd", "mono", s.value)]));

    drawDecisions(o.minutes);
    drawLatency(o.minutes);
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function frame(W, H, L, B, max, fmt, minutes) {
    const g = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img" });
    const ih = H - B - 8;
    for (let i = 0; i <= 4; i++) {
      const y = 8 + ih - (ih * i) / 4;
      g.append(svg("line", { x1: L, x2: W - 4, y1: y, y2: y, class: "gridline" }));
      g.append(svg("text", { x: L - 6, y: y + 3, "text-anchor": "end" }, fmt((max * i) / 4)));
    }
    const bw = (W - L - 4) / minutes.length;
    minutes.forEach((m, i) => {
      const every = W < 500 ? 20 : 10;
      if (i % every === 0 || i === minutes.length - 1) {
        g.append(svg("text", { x: L + i * bw + bw / 2, y: H - 4, "text-anchor": "middle" }, hhmm(m.t)));
      }
    });
    return { g, ih, bw };
  }

  // Charts are drawn at their box's width (text stays legible on a phone)
  // and again when the window is resized.
  const chartWidth = (id, min) => Math.max(min, Math.round($(id).clientWidth || min));
  let lastMinutes = null;
  window.addEventListener("resize", () => {
    if (lastMinutes) { drawDecisions(lastMinutes); drawLatency(lastMinutes); }
  });

  function drawDecisions(minutes) {
    lastMinutes = minutes;
    const W = chartWidth("chart-decisions", 300), H = 230, L = 40, B = 18;
    let max = 0;
    const seen = new Set();
    for (const m of minutes) {
      max = Math.max(max, m.allowed + m.denied);
      for (const r of Object.keys(m.reasons)) seen.add(r);
    }
    max = niceMax(max);
    const { g, ih, bw } = frame(W, H, L, B, max, (v) => (Number.isInteger(v) ? num(v) : v.toFixed(1)), minutes);
    g.setAttribute("id", "decisions-chart");
    g.setAttribute("aria-label", "Decisions per minute over the last hour, allowed and denied by reason");
    const reasons = [...seen].sort();
    minutes.forEach((m, i) => {
      const x = L + i * bw + 1;
      let y = 8 + ih;
      const grp = svg("g", { class: "bar" });
      const parts = [["allowed", m.allowed, "var(--ok)"]].concat(reasons.map((r) => [r, m.reasons[r] || 0, colourOf(r)]));
      for (const [name, n, colour] of parts) {
        if (!n) continue;
        const h = (ih * n) / max;
        y -= h;
        const rect = svg("rect", { x, y, width: Math.max(bw - 2, 1), height: h, "data-series": name });
        rect.style.setProperty("fill", colour);
        grp.append(rect);
      }
      const tip = [hhmm(m.t), num(m.allowed) + " allowed"].concat(reasons.filter((r) => m.reasons[r]).map((r) => num(m.reasons[r]) + " " + r));
      grp.append(svg("title", {}, tip.join("\n")));
      g.append(grp);
    });
    if (!minutes.some((m) => m.allowed + m.denied)) {
      g.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "now" }, "No decisions in the last hour yet"));
    }
    $("chart-decisions").replaceChildren(g);
    const legend = [["allowed", "var(--ok)"]].concat(reasons.map((r) => [r, colourOf(r)]));
    $("legend-decisions").replaceChildren(...legend.map(([name, c]) => {
      const sw = el("span", "swatch");
      sw.style.setProperty("--c", c);
      return el("li", "", sw, name);
    }));
  }

  function drawLatency(minutes) {
    const W = chartWidth("chart-latency", 300), H = 200, L = 48, B = 18;
    let max = 0;
    for (const m of minutes) if (m.latency_ms && m.latency_ms.p99 != null) max = Math.max(max, m.latency_ms.p99);
    max = niceMax(max);
    const { g, ih, bw } = frame(W, H, L, B, max, (v) => ms(v).replace(" ", ""), minutes);
    g.setAttribute("id", "latency-chart");
    g.setAttribute("aria-label", "Decision latency p50 and p99 per minute");
    for (const [key, colour] of [["p99", "var(--p99)"], ["p50", "var(--p50)"]]) {
      let d = "";
      let pen = false;
      minutes.forEach((m, i) => {
        const v = m.latency_ms ? m.latency_ms[key] : null;
        if (v == null) { pen = false; return; }
        const x = L + i * bw + bw / 2, y = 8 + ih - (ih * v) / max;
        d += (pen ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
        pen = true;
        const dot = svg("circle", { cx: x, cy: y, r: 2 });
        dot.style.setProperty("fill", colour);
        dot.append(svg("title", {}, hhmm(m.t) + " " + key + " " + ms(v)));
        g.append(dot);
      });
      if (d) {
        const p = svg("path", { d, fill: "none", "stroke-width": 1.5 });
        p.style.setProperty("stroke", colour);
        g.append(p);
      }
    }
    if (!minutes.some((m) => m.latency_ms && m.latency_ms.p50 != null)) {
      g.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "now" }, "No decisions in the last hour yet"));
    }
    $("chart-latency").replaceChildren(g);
  }

  function clientCell(c) {
    return [td(c.client_key, "key"), td(c.name, "name hide-narrow")];
  }
  function reasonsCell(denials) {
    const cell = el("td");
    const entries = Object.entries(denials || {}).sort((a, b) => b[1] - a[1]);
    for (const [r, n] of entries) cell.append(reasonTag(r, n));
    return cell;
  }
  const H = (label, extra) => Object.assign({ label }, extra || {});

  function renderClients(clients) {
    const byReq = clients.filter((c) => c.requests > 0).sort((a, b) => b.requests - a.requests).slice(0, 10);
    fill("top-requests", table([H("Client"), H("Name", { narrow: 1 }), H("Requests", { num: 1 }), H("Denied", { num: 1 }), H("Last use")],
      byReq.map((c) => el("tr", "", ...clientCell(c), td(num(c.requests), "num"), td(num(sum(c.denials)), "num"), td(ago(c.last_used_at))))),
      "No client has sent a request since the gateway started.");

    const byDen = clients.filter((c) => sum(c.denials) > 0).sort((a, b) => sum(b.denials) - sum(a.denials)).slice(0, 10);
    fill("top-denials", table([H("Client"), H("Name", { narrow: 1 }), H("Denied", { num: 1 }), H("Reasons"), H("Last use")],
      byDen.map((c) => el("tr", "", ...clientCell(c), td(num(sum(c.denials)), "num"), reasonsCell(c.denials), td(ago(c.last_used_at))))),
      "No client has been denied since the gateway started.");

    const near = clients.filter((c) => c.rate_limit_per_min && c.remaining != null && c.remaining <= 0.2 * c.rate_limit_per_min)
      .sort((a, b) => a.remaining / a.rate_limit_per_min - b.remaining / b.rate_limit_per_min);
    fill("near-limit", table([H("Client"), H("Name", { narrow: 1 }), H("Left / limit per min"), H("Rate limited", { num: 1 })],
      near.map((c) => {
        const used = el("td", "", num(c.remaining) + " / " + num(c.rate_limit_per_min));
        const bar = el("div", "bar");
        const fillSpan = el("span");
        fillSpan.style.setProperty("width", Math.min(100, 100 * (1 - c.remaining / c.rate_limit_per_min)) + "%");
        bar.append(fillSpan);
        used.append(bar);
        return el("tr", "", ...clientCell(c), used, td(num((c.denials || {}).rate_limited), "num"));
      })),
      "No client is within 20% of its rate limit.");

    renderHygiene(clients);
  }

  function renderHygiene(clients) {
    const now = Date.now(), day = 86400000;
    const active = clients.filter((c) => c.status === "active");
    const groups = [
      ["Expired", "bad", active.filter((c) => c.expires_at && Date.parse(c.expires_at) <= now), (c) => "expired " + ago(c.expires_at)],
      ["Expiring within 7 days", "warn", active.filter((c) => c.expires_at && Date.parse(c.expires_at) > now && Date.parse(c.expires_at) <= now + 7 * day), (c) => "expires " + ago(c.expires_at)],
      ["Never used", "warn", active.filter((c) => !c.last_used_at), () => ""],
      ["Unused for 30 days", "warn", active.filter((c) => c.last_used_at && Date.parse(c.last_used_at) < now - 30 * day), (c) => "last used " + ago(c.last_used_at)],
      ["Suspended", "warn", clients.filter((c) => c.status === "suspended"), () => ""],
    ];
    const box = el("div", "hyg");
    for (const [title, level, list, note] of groups) {
      const g = el("div", "group", el("div", "muted", title), el("div", "count " + (list.length ? level : "ok"), num(list.length)));
      if (list.length) {
        const ul = el("ul");
        for (const c of list.slice(0, 8)) {
          const li = el("li", "", el("span", "mono", c.client_key));
          const n = note(c);
          if (n) li.append(" · " + n);
          li.title = c.name;
          ul.append(li);
        }
        if (list.length > 8) ul.append(el("li", "muted", "and " + (list.length - 8) + " more"));
        g.append(ul);
      }
      box.append(g);
    }
    if (!clients.length) {
      $("hygiene").replaceChildren(empty("The store holds no API clients."));
      return;
    }
    $("hygiene").replaceChildren(box);
  }

  function renderRoutes(routes) {
    fill("routes", table([H("#", { num: 1 }), H("Path"), H("Methods", { narrow: 1 }), H("Module", { narrow: 1 }), H("Auth", { narrow: 1 }), H("Hits", { num: 1 }), H("Denied", { num: 1 }), H("Reasons")],
      routes.map((r) => el("tr", "", td(r.index, "num"), td(r.path, "path"), td(r.methods.length ? r.methods.join(", ") : "any", "hide-narrow"),
        td(r.module || "–", "hide-narrow"), td(r.auth.join(", "), "hide-narrow"), td(num(r.hits), "num"), td(num(sum(r.denials)), "num"), reasonsCell(r.denials)))),
      "No routes file: every request needs a valid credential, and nothing else is checked.");
  }

  // ---- live denial tail ----
  const tail = [];
  const tailIDs = new Set();
  function tailRow(d, fresh) {
    const who = d.client_key != null ? d.client_key : d.user_sub != null ? "user " + d.user_sub : "–";
    const cell = el("td");
    cell.append(reasonTag(d.reason));
    const tr = el("tr", fresh ? "fresh" : "", td(new Date(d.time).toLocaleTimeString(), "nowrap"), td(d.status, "num"), cell,
      td(d.method), td(d.path, "path"), td(who, "key"), td(d.request_id, "key hide-narrow"));
    return tr;
  }
  function renderTail(freshKey) {
    fill("tail", table([H("Time"), H("Status", { num: 1 }), H("Reason"), H("Method"), H("Path"), H("Client or user"), H("Request id", { narrow: 1 })],
      tail.map((d) => tailRow(d, d._key === freshKey))), "No denial since the gateway started.");
  }
  const keyOf = (d) => d.time + "|" + d.request_id;
  function addDenial(d, fresh) {
    const k = keyOf(d);
    if (tailIDs.has(k)) return;
    d._key = k;
    tailIDs.add(k);
    tail.unshift(d);
    while (tail.length > TAIL_MAX) tailIDs.delete(tail.pop()._key);
    if (fresh) renderTail(k);
  }
  async function loadTail() {
    const r = await api("/api/v1/decisions");
    for (const d of r.decisions.slice().reverse()) addDenial(d, false);
    renderTail(null);
  }
  function setLive(on) {
    const p = $("live-pill");
    p.textContent = on ? "live tail on" : "live tail reconnecting";
    p.className = "pill " + (on ? "ok" : "warn");
    setText("tail-note", on ? "newest first, as they happen" : "newest first, refreshed every 5 s");
  }
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  let streaming = false;
  // The stream is read with fetch, not EventSource, so the admin token goes
  // in the Authorization header (EventSource cannot send headers).
  async function stream() {
    for (;;) {
      try {
        const r = await fetch("/api/v1/decisions/stream", { headers: authHeaders(), cache: "no-store" });
        if (r.status === 401) { await askToken(!!sessionStorage.getItem(TOKEN_KEY)); continue; }
        if (!r.ok || !r.body) throw new Error("stream: HTTP " + r.status);
        streaming = true;
        setLive(true);
        await loadTail().catch(() => {});
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            for (const line of block.split("\n")) {
              if (line.startsWith("data: ")) addDenial(JSON.parse(line.slice(6)), true);
            }
          }
        }
      } catch (e) {
        // fall through: retry below
      }
      streaming = false;
      setLive(false);
      await sleep(3000);
    }
  }

  // ---- refresh loop ----
  let refreshing = false;
  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const [o, c, r] = await Promise.all([api("/api/v1/overview"), api("/api/v1/clients"), api("/api/v1/routes")]);
      renderOverview(o);
      renderClients(c.clients);
      renderRoutes(r.routes);
      if (!streaming) await loadTail();
      setText("updated", "updated " + new Date().toLocaleTimeString());
      document.body.dataset.loaded = "true";
    } catch (e) {
      if (e instanceof Unauthorized) {
        refreshing = false;
        await askToken(!!sessionStorage.getItem(TOKEN_KEY));
        return;
      }
      setText("updated", "update failed: " + e.message);
    } finally {
      refreshing = false;
    }
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
  stream();
})();
