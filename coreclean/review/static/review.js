// coreclean review page: plain JS, no build step, no dependencies.
// The server is the source of truth, and keys never wait for it: a decision key lands at once on the
// card focused when it was pressed (shown as pending), focus moves on, and the request joins a queue
// that is sent strictly in order, one at a time. Each answer is the server's new state; decisions
// still queued are drawn over it until their own answer arrives. Nothing typed is dropped: a key the
// page cannot apply (while a round is re-scored) says so.
"use strict";

(function () {
  const TOKEN = document.querySelector('meta[name="coreclean-token"]').content;
  const THUMB = 256;
  const REF_THUMB = 128;

  const state = {
    data: null,          // last /api/state answer
    focus: 0,            // index into data.batch
    queue: [],           // operations not yet answered, oldest first: {kind: "decide"|"undo", id, action, new_label}
    sending: false,      // queue[0] is in flight
    pending: new Map(),  // id -> the newest queued operation on that sample (drawn over the server's state)
    history: [],         // ids in the order they were decided in this round (an undo takes back the last)
    loading: false,      // the page or the next batch is being fetched
    closing: null,       // time the round close was sent, while the server re-scores
    round: null,         // last close_round result, while the round panel shows
    density: null,       // "compact" or "comfortable"; null: chosen from the image size
    relabelId: null,     // sample the relabel dialog is for
    options: [],         // relabel completion matches
    active: 0,           // selected completion
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

  function busy() { return state.loading || state.closing !== null || state.queue.length > 0; }

  // The busy line stays until the server has answered everything: saving, loading or re-scoring.
  function renderBusy() {
    const el = $("busy");
    let text = "";
    if (state.closing !== null) {
      const seconds = Math.round((Date.now() - state.closing) / 1000);
      text = `re-scoring the round… ${seconds} s (keys wait until it is done)`;
    } else if (state.queue.length > 0) {
      text = `saving ${state.queue.length} decision${state.queue.length > 1 ? "s" : ""}…`;
    } else if (state.loading) {
      text = "loading…";
    }
    el.textContent = text;
    el.hidden = !text;
    document.body.classList.toggle("busy", busy());
  }
  setInterval(() => { if (state.closing !== null) renderBusy(); }, 1000);

  // ---------------------------------------------------------------- the queue
  function rowIndex(id) { return batch().findIndex((r) => r.id === id); }

  // The decision drawn on a card: a queued one first, else the server's.
  function shown(row) {
    const op = state.pending.get(row.id);
    if (!op) return row.decision;
    return op.kind === "undo" ? null : { action: op.action, new_label: op.new_label || null, pending: true };
  }

  function refuse() {
    if (state.closing !== null) { toast("the round is being re-scored: wait for its result, then press n", true); return true; }
    if (state.loading) { toast("the batch is loading: press the key again in a moment", true); return true; }
    if (state.round !== null) { toast("this round is closed: press n for the next batch (u reopens it)", true); return true; }
    return false;
  }

  function decide(action, newLabel, id) {
    if (refuse()) return;
    const row = id !== undefined ? batch()[rowIndex(id)] : batch()[state.focus];
    if (!row) return;
    const op = { kind: "decide", id: row.id, action };
    if (action === "relabel") op.new_label = newLabel;
    state.queue.push(op);
    state.pending.set(row.id, op);
    state.history.push(row.id);
    state.focus = firstUndecided(rowIndex(row.id) + 1);
    render();
    send();
  }

  function undo() {
    if (state.round !== null && state.closing === null) { undoRound(); return; }  // the batch is closed: reopen it
    if (refuse()) return;
    const last = state.queue[state.queue.length - 1];
    if (last && last.kind === "decide" && !(state.sending && state.queue.length === 1)) {
      // Not sent yet: take it off the queue; the server never hears of it.
      state.queue.pop();
      forget(last);
      state.focus = rowIndex(last.id);
      render();
      return;
    }
    const id = state.history.pop();
    const op = { kind: "undo", id };
    state.queue.push(op);
    if (id !== undefined) { state.pending.set(id, op); state.focus = rowIndex(id); }
    render();
    send();
  }

  // Remove a decision from the pending drawing and the history (it was cancelled or refused).
  function forget(op) {
    const history = state.history.lastIndexOf(op.id);
    if (history >= 0) state.history.splice(history, 1);
    if (state.pending.get(op.id) !== op) return;
    const earlier = [...state.queue].reverse().find((other) => other.id === op.id);
    if (earlier) state.pending.set(op.id, earlier); else state.pending.delete(op.id);
  }

  async function send() {
    if (state.sending) return;
    state.sending = true;
    try {
      while (state.queue.length > 0) {
        const op = state.queue[0];
        renderBusy();
        try {
          if (op.kind === "undo") {
            state.data = await api("POST", "/api/undo", { scope: "decision" });
          } else {
            const body = { id: op.id, action: op.action };
            if (op.action === "relabel") body.new_label = op.new_label;
            state.data = await api("POST", "/api/decide", body);
          }
        } catch (err) {
          toast(op.kind === "undo" ? `undo: ${err.message}` : `sample ${op.id}: ${err.message}`, true);
          if (op.kind === "undo") { if (op.id !== undefined) state.history.push(op.id); } else forget(op);
        }
        state.queue.shift();
        if (state.pending.get(op.id) === op) state.pending.delete(op.id);
        render();
      }
    } finally {
      state.sending = false;
      renderBusy();
    }
    await maybeCloseRound();
  }

  // When every image of the batch is decided and saved, close the round: re-score, AUROC, hit rate, verdict.
  async function maybeCloseRound() {
    const data = state.data;
    if (!data || data.n_batch === 0 || data.n_decided < data.n_batch || state.round !== null) return;
    if (state.queue.length > 0 || state.closing !== null) return;
    state.closing = Date.now();
    renderBusy();
    try {
      const answer = await api("POST", "/api/round", {});
      state.round = answer.result || {};
      // Keep the finished batch on screen until the reviewer asks for the next one.
      state.data = Object.assign({}, state.data, { rounds: answer.state.rounds, status: answer.state.status });
    } catch (err) {
      toast(`closing the round: ${err.message}`, true);
    } finally {
      state.closing = null;
      renderBusy();
    }
    render();
    if (state.round !== null) {
      window.corecleanRound.render(state.round, state.data.rounds);
      $("round-panel").scrollIntoView({ block: "nearest" });
    }
  }

  async function fetchState(after) {
    state.loading = true;
    renderBusy();
    try {
      state.data = await api("GET", "/api/state");
      state.history = batch().filter((r) => r.decision).sort((a, b) => a.decision.order - b.decision.order).map((r) => r.id);
      after();
    } catch (err) {
      toast(err.message, true);
    } finally {
      state.loading = false;
      renderBusy();
    }
    render();
  }

  function load() {
    return fetchState(() => { state.focus = firstUndecided(0); }).then(maybeCloseRound);
  }

  function nextBatch() {
    if (state.round === null || state.closing !== null || state.loading) return;
    fetchState(() => { state.round = null; state.focus = firstUndecided(0); window.scrollTo(0, 0); });
  }

  async function undoRound() {
    if (state.loading) return;
    state.loading = true;
    renderBusy();
    try {
      state.data = await api("POST", "/api/undo", { scope: "round" });
      state.round = null;
      state.history = [];
      state.focus = firstUndecided(0);
      toast("round reopened");
    } catch (err) {
      toast(err.message, true);
    } finally {
      state.loading = false;
      renderBusy();
    }
    render();
  }

  function firstUndecided(from) {
    const rows = batch();
    for (let k = 0; k < rows.length; k++) {
      const i = (from + k) % rows.length;
      if (!shown(rows[i])) return i;
    }
    return Math.min(Math.max(from - 1, 0), Math.max(0, rows.length - 1));
  }

  // ---------------------------------------------------------------- rendering
  function batch() { return state.data ? state.data.batch : []; }

  function render() {
    const data = state.data;
    if (!data) return;
    const rows = batch();
    if (state.focus >= rows.length) state.focus = Math.max(0, rows.length - 1);
    renderInfo(data);
    renderProgress(rows);
    const view = viewOf(rows);
    window.corecleanCards.renderBatch(view);
    window.corecleanCards.renderDetail(view);
    renderBusy();
    $("round-panel").hidden = state.round === null;
    document.querySelectorAll(".toolbar button").forEach((b) => { b.disabled = rows.length === 0 || state.round !== null; });
    document.querySelector('.toolbar [data-action="undo"]').disabled = false;
  }

  // What the drawing code (cards.js) needs to know; it never touches the state itself.
  function viewOf(rows) {
    return {
      rows, focus: state.focus, shown, thumb: THUMB, refThumb: REF_THUMB, imageUrl,
      undoing: (id) => state.pending.has(id) && state.pending.get(id).kind === "undo",
      density: () => state.density,
      typical: (className) => {
        const ids = (state.data.typical || {})[className];
        if (ids === undefined) loadTypical(className);
        return ids;
      },
      onSelect: (id) => { const index = rowIndex(id); if (index >= 0) { state.focus = index; render(); } },
    };
  }

  function renderInfo(data) {
    const status = data.status || {};
    const parts = [];
    if (data.round !== undefined) parts.push(`round ${data.round}`);
    if (status.classes) parts.push(`cleaning ${status.classes.join(", ")}`);
    if (status.reviewed_total !== undefined) parts.push(`${status.reviewed_total} reviewed`);
    if (status.errors_found_total !== undefined) parts.push(`${status.errors_found_total} errors found`);
    $("session-info").textContent = parts.join(" · ");
    $("session-info").title = status.path || "";
    const verdict = $("verdict");
    verdict.textContent = status.last_verdict ? `Last round: ${status.last_verdict}` : "";
    verdict.hidden = !status.last_verdict;
  }

  function renderProgress(rows) {
    const total = rows.length, done = rows.filter(shown).length;
    const fraction = total ? done / total : 1;
    $("progress-fill").style.width = `${(100 * fraction).toFixed(1)}%`;
    $("progress-text").textContent = total ? `${done} / ${total} decided` : "nothing left to review";
  }

  const pendingTypical = new Set();
  async function loadTypical(className) {
    if (className === undefined || className === null || pendingTypical.has(className)) return;
    pendingTypical.add(className);
    try {
      const answer = await api("GET", `/api/typical?class=${encodeURIComponent(className)}`);
      state.data.typical[className] = answer.ids;
    } catch (err) {
      state.data.typical[className] = [];
    } finally {
      pendingTypical.delete(className);
    }
    if (state.data) window.corecleanCards.renderDetail(viewOf(batch()));
  }

  function toast(message, isError) {
    const el = $("toast");
    el.textContent = message;
    el.classList.toggle("error", Boolean(isError));
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, isError ? 5000 : 1800);
  }

  // ---------------------------------------------------------------- relabel to any class
  function openRelabel() {
    if (refuse()) return;
    const row = batch()[state.focus];
    if (!row) return;
    state.relabelId = row.id;  // the card focused now, whatever the queue does meanwhile
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
    decide("relabel", chosen, state.relabelId);
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

  function toggleDensity() {
    state.density = $("batch").classList.contains("compact") ? "comfortable" : "compact";
    window.corecleanCards.applyDensity(state.density);
    const focused = $("batch").querySelector(".card.focused");
    if (focused) focused.scrollIntoView({ block: "nearest" });
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
      case "g": toggleDensity(); break;
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
  // The sticky header's height, so a card scrolled into view is never hidden under it.
  const header = document.querySelector(".topbar");
  const fitHeader = () => document.documentElement.style.setProperty("--header-h", `${header.offsetHeight}px`);
  new ResizeObserver(fitHeader).observe(header);
  fitHeader();

  // A read-only view for tests and debugging; ready: loaded, nothing queued, loading or re-scoring.
  window.corecleanReview = { state: () => state, ready: () => state.data !== null && !busy() };

  load();
})();
