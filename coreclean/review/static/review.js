// coreclean review page: plain JS, no build step, no dependencies.
// The server is the source of truth: every key press that decides sends one request, the server
// commits it to the session file and answers with the new state, which is rendered as is.
"use strict";

(function () {
  const TOKEN = document.querySelector('meta[name="coreclean-token"]').content;
  const THUMB = 384;
  const REF_THUMB = 128;

  const state = {
    data: null,        // last /api/state answer
    focus: 0,          // index into data.batch
    busy: false,       // a request is in flight: ignore decision keys
    round: null,       // last close_round result, while the round panel shows
    options: [],       // relabel completion matches
    active: 0,         // selected completion
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- server
  async function api(method, path, body) {
    const init = { method, headers: { "X-Coreclean-Token": TOKEN } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let payload = null;
    try { payload = await response.json(); } catch (err) { payload = null; }
    if (!response.ok) {
      const message = payload && payload.error ? payload.error : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return payload;
  }

  function imageUrl(id, size) {
    return `/api/image?id=${encodeURIComponent(id)}&size=${size}&token=${encodeURIComponent(TOKEN)}`;
  }

  async function run(task) {
    if (state.busy) return;
    state.busy = true;
    document.body.classList.add("busy");
    try {
      await task();
    } catch (err) {
      toast(err.message, true);
    } finally {
      state.busy = false;
      document.body.classList.remove("busy");
    }
  }

  // ---------------------------------------------------------------- rendering
  function batch() { return state.data ? state.data.batch : []; }

  function render() {
    const data = state.data;
    if (!data) return;
    const rows = batch();
    if (state.focus >= rows.length) state.focus = Math.max(0, rows.length - 1);
    renderInfo(data);
    renderProgress(data);
    renderBatch(rows);
    renderDetail();
    $("round-panel").hidden = state.round === null;
    document.querySelectorAll(".toolbar button").forEach((b) => { b.disabled = rows.length === 0 || state.round !== null; });
    document.querySelector('.toolbar [data-action="undo"]').disabled = false;
  }

  function renderInfo(data) {
    const status = data.status || {};
    const parts = [];
    if (data.round !== undefined) parts.push(`round ${data.round}`);
    if (status.classes) parts.push(`cleaning ${status.classes.join(", ")}`);
    if (status.reviewed_total !== undefined) parts.push(`${status.reviewed_total} reviewed`);
    if (status.errors_found_total !== undefined) parts.push(`${status.errors_found_total} errors found`);
    if (status.last_verdict) parts.push(`last round: ${status.last_verdict}`);
    $("session-info").textContent = parts.join(" · ");
    $("session-info").title = status.path || "";
  }

  function renderProgress(data) {
    const total = data.n_batch, done = data.n_decided;
    const fraction = total ? done / total : 1;
    $("progress-fill").style.width = `${(100 * fraction).toFixed(1)}%`;
    $("progress-text").textContent = total ? `${done} / ${total} decided` : "nothing left to review";
  }

  function decisionText(decision) {
    if (!decision) return "";
    if (decision.action === "relabel") return `relabel → ${decision.new_label}`;
    return decision.action;
  }

  function renderBatch(rows) {
    const grid = $("batch");
    const existing = new Map([...grid.children].map((card) => [card.dataset.id, card]));
    const keep = new Set(rows.map((row) => row.id));
    existing.forEach((card, id) => { if (!keep.has(id)) card.remove(); });
    rows.forEach((row, index) => {
      let card = existing.get(row.id);
      if (!card) {
        card = document.createElement("figure");
        card.className = "card";
        card.dataset.id = row.id;
        card.tabIndex = -1;
        const img = document.createElement("img");
        img.alt = `sample ${row.id}`;
        img.loading = "lazy";
        img.src = imageUrl(row.id, THUMB);
        card.append(img, document.createElement("figcaption"));
        card.addEventListener("click", () => { state.focus = rows.findIndex((r) => r.id === row.id); render(); });
      }
      grid.append(card);  // keeps display order
      card.dataset.index = String(index);
      card.classList.toggle("focused", index === state.focus);
      card.classList.toggle("decided", Boolean(row.decision));
      const caption = card.querySelector("figcaption");
      caption.replaceChildren(
        line("given", `given: ${row.label}`),
        line("suggested", `suggested: ${row.suggested_label} (${percent(row.suggested_prob)})`),
        line("score", `score ${formatNumber(row.score)}`),
      );
      let badge = card.querySelector(".badge");
      if (row.decision) {
        if (!badge) { badge = document.createElement("span"); card.append(badge); }
        badge.className = `badge ${row.decision.action}`;
        badge.textContent = decisionText(row.decision);
      } else if (badge) {
        badge.remove();
      }
    });
    if (rows.length === 0) {
      grid.replaceChildren(line("empty", "No batch to review: every sample worth a look has been decided."));
    }
    const focused = grid.querySelector(".card.focused");
    if (focused) focused.scrollIntoView({ block: "nearest" });
  }

  function renderDetail() {
    const row = batch()[state.focus];
    const detail = $("detail");
    if (!row) {
      detail.replaceChildren();
      ["ref-given", "ref-suggested", "ref-given-name", "ref-suggested-name"].forEach((id) => $(id).replaceChildren());
      return;
    }
    detail.replaceChildren(
      line("", `Sample ${row.id} (${state.focus + 1} of ${batch().length})`),
      line("", decisionText(row.decision) ? `decided: ${decisionText(row.decision)}` : "not decided yet"),
    );
    renderStrip("ref-given", "ref-given-name", row.label);
    renderStrip("ref-suggested", "ref-suggested-name", row.suggested_label);
  }

  function renderStrip(stripId, nameId, className) {
    $(nameId).textContent = className === undefined || className === null ? "" : `“${className}”`;
    const ids = (state.data.typical || {})[className];
    const strip = $(stripId);
    if (ids === undefined) {
      strip.replaceChildren(line("empty", "loading…"));
      loadTypical(className);
      return;
    }
    if (ids.length === 0) { strip.replaceChildren(line("empty", "none")); return; }
    const current = [...strip.querySelectorAll("img")].map((img) => img.dataset.id).join("|");
    if (current === ids.join("|")) return;
    strip.replaceChildren(...ids.map((id) => {
      const img = document.createElement("img");
      img.dataset.id = id;
      img.alt = `typical ${className}`;
      img.src = imageUrl(id, REF_THUMB);
      return img;
    }));
  }

  const pendingTypical = new Set();
  async function loadTypical(className) {
    if (className === undefined || className === null || pendingTypical.has(className)) return;
    pendingTypical.add(className);
    try {
      const answer = await api("GET", `/api/typical?class=${encodeURIComponent(className)}`);
      state.data.typical[className] = answer.ids;
      renderDetail();
    } catch (err) {
      state.data.typical[className] = [];
    } finally {
      pendingTypical.delete(className);
    }
  }

  function line(cls, text) {
    const el = document.createElement("div");
    if (cls) el.className = cls;
    el.textContent = text;
    return el;
  }

  function percent(p) { return p === null || p === undefined ? "?" : `${Math.round(100 * p)}%`; }
  function formatNumber(x) { return x === null || x === undefined ? "?" : Number(x).toFixed(3); }

  function toast(message, isError) {
    const el = $("toast");
    el.textContent = message;
    el.classList.toggle("error", Boolean(isError));
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, isError ? 5000 : 1800);
  }

  // ---------------------------------------------------------------- round panel and chart
  function renderRound(result) {
    const r = result || {};
    $("round-title").textContent = r.round !== undefined ? `Round ${r.round} closed` : "Round closed";
    const verdict = $("round-verdict");
    verdict.textContent = r.verdict || (r.plateau ? "plateau: further rounds find few errors" : "");
    verdict.classList.toggle("plateau", Boolean(r.plateau));
    const metrics = [
      ["reviewed", r.n_reviewed], ["errors found", r.n_errors_found], ["skipped", r.n_skipped],
      ["hit rate", r.hit_rate === undefined || r.hit_rate === null ? undefined : percent(r.hit_rate)],
      ["AUROC", r.auroc === undefined || r.auroc === null ? undefined : formatNumber(r.auroc)],
      ["AUROC change", r.auroc_change === undefined || r.auroc_change === null ? undefined : formatSigned(r.auroc_change)],
      ["errors left (est.)", r.errors_left === undefined || r.errors_left === null ? undefined : Math.round(r.errors_left)],
    ];
    $("round-metrics").replaceChildren(...metrics.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = String(v);
      div.append(dt, dd);
      return div;
    }));
    renderChart(state.data ? state.data.rounds : []);
  }

  function formatSigned(x) { const v = Number(x); return `${v >= 0 ? "+" : ""}${v.toFixed(3)}`; }

  function renderChart(rounds) {
    const box = $("round-chart");
    const rows = (rounds || []).filter((r) => r.round !== undefined);
    if (rows.length === 0) { box.replaceChildren(); return; }
    const W = 560, H = 220, L = 40, R = 110, T = 12, B = 28;
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "hit rate and AUROC per round");
    const xs = rows.map((r) => Number(r.round));
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const x = (v) => L + (x1 === x0 ? (W - L - R) / 2 : ((v - x0) / (x1 - x0)) * (W - L - R));
    const y = (v) => T + (1 - v) * (H - T - B);
    const el = (name, attrs, text) => {
      const node = document.createElementNS(NS, name);
      Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, String(v)));
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    [0, 0.25, 0.5, 0.75, 1].forEach((t) => {
      el("line", { x1: L, x2: W - R, y1: y(t), y2: y(t), class: "axis" });
      el("text", { x: L - 6, y: y(t) + 4, "text-anchor": "end" }, t.toFixed(2));
    });
    rows.forEach((r) => el("text", { x: x(Number(r.round)), y: H - 8, "text-anchor": "middle" }, `round ${r.round}`));
    const band = rows.filter((r) => isNum(r.auroc_low) && isNum(r.auroc_high));
    if (band.length > 1) {
      const top = band.map((r) => `${x(Number(r.round))},${y(r.auroc_high)}`);
      const bottom = band.slice().reverse().map((r) => `${x(Number(r.round))},${y(r.auroc_low)}`);
      el("polygon", { points: [...top, ...bottom].join(" "), class: "band" });
    }
    const series = [["auroc", "AUROC"], ["hit_rate", "hit rate"]];
    series.forEach(([key, label], k) => {
      const pts = rows.filter((r) => isNum(r[key]));
      const cls = key === "auroc" ? "auroc" : "hit";
      if (pts.length > 1) el("polyline", { points: pts.map((r) => `${x(Number(r.round))},${y(r[key])}`).join(" "), class: cls });
      pts.forEach((r) => el("circle", { cx: x(Number(r.round)), cy: y(r[key]), r: 3.5, class: `dot-${cls}` }));
      el("circle", { cx: W - R + 16, cy: T + 10 + 18 * k, r: 4, class: `dot-${cls}` });
      el("text", { x: W - R + 26, y: T + 14 + 18 * k }, label);
    });
    box.replaceChildren(svg);
  }

  function isNum(v) { return typeof v === "number" && Number.isFinite(v); }

  // ---------------------------------------------------------------- actions
  async function load() {
    await run(async () => {
      state.data = await api("GET", "/api/state");
      state.focus = firstUndecided(0);
      render();
      await maybeCloseRound();
    });
  }

  function firstUndecided(from) {
    const rows = batch();
    for (let k = 0; k < rows.length; k++) {
      const i = (from + k) % rows.length;
      if (!rows[i].decision) return i;
    }
    return Math.min(from, Math.max(0, rows.length - 1));
  }

  async function decide(action, newLabel) {
    const row = batch()[state.focus];
    if (!row || state.round !== null) return;
    await run(async () => {
      const body = { id: row.id, action };
      if (action === "relabel") body.new_label = newLabel;
      state.data = await api("POST", "/api/decide", body);
      const index = batch().findIndex((r) => r.id === row.id);
      state.focus = firstUndecided(index >= 0 ? index + 1 : state.focus);
      render();
      await maybeCloseRound();
    });
  }

  async function undo() {
    if (state.round !== null) { await undoRound(); return; }  // the batch is closed: undo its round
    await run(async () => {
      const before = new Map(batch().map((r) => [r.id, decisionText(r.decision)]));
      state.data = await api("POST", "/api/undo", { scope: "decision" });
      state.round = null;
      const changed = batch().findIndex((r) => before.get(r.id) !== decisionText(r.decision));
      if (changed >= 0) state.focus = changed;
      render();
      toast("undone");
    });
  }

  async function undoRound() {
    await run(async () => {
      state.data = await api("POST", "/api/undo", { scope: "round" });
      state.round = null;
      state.focus = firstUndecided(0);
      render();
      toast("round reopened");
    });
  }

  // When every image of the batch is decided, close the round: re-score, AUROC, hit rate, plateau.
  async function maybeCloseRound() {
    const data = state.data;
    if (!data || data.n_batch === 0 || data.n_decided < data.n_batch || state.round !== null) return;
    toast("batch done: re-scoring…");
    const answer = await api("POST", "/api/round", {});
    state.round = answer.result || {};
    // Keep the finished batch on screen until the reviewer asks for the next one.
    state.data = Object.assign({}, state.data, { rounds: answer.state.rounds, status: answer.state.status });
    $("toast").hidden = true;
    render();
    renderRound(state.round);
    $("round-panel").scrollIntoView({ block: "nearest" });
  }

  async function nextBatch() {
    if (state.round === null) return;
    await run(async () => {
      state.data = await api("GET", "/api/state");
      state.round = null;
      state.focus = firstUndecided(0);
      render();
      window.scrollTo(0, 0);
    });
  }

  // ---------------------------------------------------------------- relabel to any class
  function openRelabel() {
    const row = batch()[state.focus];
    if (!row || state.round !== null) return;
    $("relabel-what").textContent = `sample ${row.id} (given “${row.label}”)`;
    $("relabel").hidden = false;
    const input = $("relabel-input");
    input.value = "";
    updateOptions();
    input.focus();
  }

  function closeRelabel() {
    $("relabel").hidden = true;
    $("relabel-input").blur();
  }

  function matches(text) {
    const names = state.data ? state.data.class_names : [];
    const q = text.trim().toLowerCase();
    if (!q) return names.slice(0, 50);
    const prefix = names.filter((n) => n.toLowerCase().startsWith(q));
    const inner = names.filter((n) => !n.toLowerCase().startsWith(q) && n.toLowerCase().includes(q));
    return [...prefix, ...inner].slice(0, 50);
  }

  function updateOptions() {
    state.options = matches($("relabel-input").value);
    state.active = 0;
    renderOptions();
  }

  function renderOptions() {
    const list = $("relabel-options");
    list.replaceChildren(...state.options.map((name, i) => {
      const li = document.createElement("li");
      li.textContent = name;
      li.setAttribute("role", "option");
      li.classList.toggle("active", i === state.active);
      li.addEventListener("mousedown", (event) => { event.preventDefault(); applyRelabel(name); });
      return li;
    }));
    const active = list.querySelector(".active");
    if (active) active.scrollIntoView({ block: "nearest" });
  }

  function applyRelabel(name) {
    const names = state.data.class_names;
    const exact = names.find((n) => n === name) || names.find((n) => n.toLowerCase() === name.trim().toLowerCase());
    const chosen = exact || state.options[state.active];
    if (!chosen) { toast(`no class matches “${name}”`, true); return; }
    closeRelabel();
    decide("relabel", chosen);
  }

  $("relabel-input").addEventListener("input", updateOptions);
  $("relabel-input").addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { state.active = Math.min(state.active + 1, state.options.length - 1); renderOptions(); }
    else if (event.key === "ArrowUp") { state.active = Math.max(state.active - 1, 0); renderOptions(); }
    else if (event.key === "Tab") { if (state.options[state.active]) { $("relabel-input").value = state.options[state.active]; updateOptions(); } }
    else if (event.key === "Enter") {
      const typed = $("relabel-input").value;
      const exact = state.data.class_names.find((n) => n.toLowerCase() === typed.trim().toLowerCase());
      applyRelabel(exact || state.options[state.active] || typed);
    }
    else if (event.key === "Escape") closeRelabel();
    else return;
    event.preventDefault();
    event.stopPropagation();
  });
  $("relabel").addEventListener("click", (event) => { if (event.target === $("relabel")) closeRelabel(); });

  // ---------------------------------------------------------------- keyboard and mouse
  function move(delta) {
    const rows = batch();
    if (!rows.length) return;
    state.focus = Math.min(Math.max(state.focus + delta, 0), rows.length - 1);
    render();
  }

  function columns() {
    const cards = [...$("batch").querySelectorAll(".card")];
    if (cards.length < 2) return 1;
    const top = cards[0].offsetTop;
    const n = cards.findIndex((c) => c.offsetTop !== top);
    return n < 0 ? cards.length : n;
  }

  function doAction(name) {
    const row = batch()[state.focus];
    switch (name) {
      case "keep": case "drop": case "skip": case "downweight": return decide(name);
      case "relabel-suggested":
        if (row && row.suggested_label === row.label) { toast("the suggested class is the given one: use keep", true); return undefined; }
        return row ? decide("relabel", row.suggested_label) : undefined;
      case "relabel-any": return openRelabel();
      case "undo": return undo();
      default: return undefined;
    }
  }

  const KEYS = { k: "keep", d: "drop", s: "skip", w: "downweight", r: "relabel-suggested", l: "relabel-any", "/": "relabel-any", u: "undo" };

  document.addEventListener("keydown", (event) => {
    if (!$("relabel").hidden) return;  // the dialog's input handles its own keys
    if (event.altKey || event.metaKey) return;
    if (event.ctrlKey) {
      if (event.key === "z") { event.preventDefault(); undo(); }
      return;
    }
    const help = $("help");
    if (event.key === "?") { help.hidden = !help.hidden; event.preventDefault(); return; }
    if (event.key === "Escape") { help.hidden = true; return; }
    if (!help.hidden) return;
    switch (event.key) {
      case "ArrowRight": move(1); break;
      case "ArrowLeft": move(-1); break;
      case "ArrowDown": move(columns()); break;
      case "ArrowUp": move(-columns()); break;
      case "Home": move(-batch().length); break;
      case "End": move(batch().length); break;
      case "n": case "Enter":
        if (state.round === null) return;
        nextBatch(); break;
      default: {
        const name = KEYS[event.key];
        if (!name) return;
        doAction(name);
      }
    }
    event.preventDefault();
  });

  document.querySelectorAll(".toolbar button").forEach((button) => {
    button.addEventListener("click", () => { button.blur(); doAction(button.dataset.action); });
  });
  $("next-batch").addEventListener("click", nextBatch);
  $("undo-round").addEventListener("click", undoRound);
  $("help-button").addEventListener("click", () => { $("help").hidden = !$("help").hidden; });
  $("help").addEventListener("click", () => { $("help").hidden = true; });

  // Expose a read-only view for tests and debugging.
  window.corecleanReview = { state: () => state, ready: () => state.data !== null && !state.busy };

  load();
})();
