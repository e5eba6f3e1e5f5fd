// coreclean review page: the panel shown when a round closes (its numbers and a per-round chart).
// Plain JS, no build step; loaded before review.js, which calls window.corecleanRound.render(result, rounds).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  function percent(p) { return p === null || p === undefined ? "?" : `${Math.round(100 * p)}%`; }
  function formatNumber(x) { return x === null || x === undefined ? "?" : Number(x).toFixed(3); }

  function renderRound(result, rounds) {
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
    renderChart(rounds || []);
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

  window.corecleanRound = { render: renderRound };
})();
