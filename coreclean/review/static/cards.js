// coreclean review page: drawing the batch's cards and the focused card's detail (typical images).
// Plain JS, no build step; loaded before review.js, which owns the state and passes a `view`:
// {rows, focus, shown(row) -> decision drawn, undoing(id), density() -> "compact"|"comfortable"|null,
//  imageUrl(id, size), thumb, refThumb, typical(className) -> ids or undefined (loading), onSelect(id)}.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SMALL_IMAGE = 64;  // images no larger than this (CIFAR: 32 px) get the compact grid
  let scrolledTo = null;   // id of the card last scrolled into view

  function decisionText(decision) {
    if (!decision) return "";
    if (decision.action === "relabel") return `relabel → ${decision.new_label}`;
    return decision.action;
  }

  function renderBatch(view) {
    const rows = view.rows;
    const grid = $("batch");
    const existing = new Map([...grid.querySelectorAll(".card")].map((card) => [card.dataset.id, card]));
    const keep = new Set(rows.map((row) => row.id));
    existing.forEach((card, id) => { if (!keep.has(id)) card.remove(); });
    grid.querySelectorAll(".empty").forEach((el) => el.remove());
    rows.forEach((row, index) => {
      let card = existing.get(row.id);
      if (!card) card = newCard(row, view);
      grid.append(card);  // keeps display order
      card.dataset.index = String(index);
      card.classList.toggle("focused", index === view.focus);
      const decision = view.shown(row);
      card.classList.toggle("decided", Boolean(decision));
      const caption = card.querySelector("figcaption");
      const same = row.suggested_label === row.label;
      caption.replaceChildren(
        line("given", row.label),
        line(same ? "agrees" : "suggested", same ? `agrees ${percent(row.suggested_prob)}` : `→ ${row.suggested_label} ${percent(row.suggested_prob)}`),
      );
      card.title = `${row.id}: given ${row.label}, suggested ${row.suggested_label} (${percent(row.suggested_prob)}), score ${formatNumber(row.score)}${row.audit ? " (a random audit: drawn by chance, not by score)" : ""}`;
      let badge = card.querySelector(".badge");
      const undoing = view.undoing(row.id);
      if (decision || undoing) {
        if (!badge) { badge = document.createElement("span"); card.append(badge); }
        badge.className = `badge ${undoing ? "undoing" : decision.action}${decision && decision.pending ? " pending" : ""}`;
        badge.textContent = undoing ? "undoing…" : decisionText(decision);
      } else if (badge) {
        badge.remove();
      }
    });
    if (rows.length === 0) grid.replaceChildren(line("empty", "No batch to review: every sample worth a look has been decided."));
    applyDensity(view.density());
    // Scroll only when the focus moved: an answer from the server must not undo the reader's own scrolling.
    const focused = grid.querySelector(".card.focused");
    if (focused && focused.dataset.id !== scrolledTo) focused.scrollIntoView({ block: "nearest" });
    scrolledTo = focused ? focused.dataset.id : null;
  }

  function newCard(row, view) {
    const card = document.createElement("figure");
    card.className = "card";
    card.dataset.id = row.id;
    const img = document.createElement("img");
    img.alt = `sample ${row.id}`;
    img.src = view.imageUrl(row.id, view.thumb);
    img.addEventListener("load", () => applyDensity(view.density()));
    card.append(img, document.createElement("figcaption"));
    card.addEventListener("click", () => view.onSelect(row.id));
    return card;
  }

  // Small images (CIFAR's 32 px) get many cards per row; `g` switches by hand.
  function applyDensity(density) {
    let compact = density === "compact";
    if (density === null) {
      const sizes = [...$("batch").querySelectorAll(".card img")].filter((img) => img.naturalWidth > 0)
        .map((img) => Math.max(img.naturalWidth, img.naturalHeight));
      compact = sizes.length > 0 && Math.max(...sizes) <= SMALL_IMAGE;
    }
    $("batch").classList.toggle("compact", compact);
  }

  function renderDetail(view) {
    const row = view.rows[view.focus];
    const detail = $("detail");
    if (!row) {
      detail.replaceChildren();
      ["ref-given", "ref-suggested", "ref-given-title", "ref-suggested-title"].forEach((id) => $(id).replaceChildren());
      return;
    }
    const decision = view.shown(row);
    detail.replaceChildren(
      line("", `Sample ${row.id} (${view.focus + 1} of ${view.rows.length})`),
      line("", `given “${row.label}”, suggested “${row.suggested_label}” ${percent(row.suggested_prob)}, score ${formatNumber(row.score)}`),
      line("", decision ? `decided: ${decisionText(decision)}${decision.pending ? " (saving…)" : ""}` : "not decided yet"),
    );
    $("ref-given-title").textContent = `Typical of the given class “${row.label}”`;
    renderStrip("ref-given", row.label, view);
    if (row.suggested_label === row.label) {
      // Same class: do not show the same strip twice; say why there is nothing else to compare.
      $("ref-suggested-title").textContent =
        `The ranker suggests the given class itself (${percent(row.suggested_prob)}): compare with the strip above`;
      $("ref-suggested").replaceChildren();
    } else {
      $("ref-suggested-title").textContent = `Typical of the suggested class “${row.suggested_label}”`;
      renderStrip("ref-suggested", row.suggested_label, view);
    }
  }

  function renderStrip(stripId, className, view) {
    const ids = view.typical(className);
    const strip = $(stripId);
    if (ids === undefined) { strip.replaceChildren(line("empty", "loading…")); return; }
    if (ids.length === 0) { strip.replaceChildren(line("empty", "none")); return; }
    const current = [...strip.querySelectorAll("img")].map((img) => img.dataset.id).join("|");
    if (current === ids.join("|")) return;
    strip.replaceChildren(...ids.map((id) => {
      const img = document.createElement("img");
      img.dataset.id = id;
      img.alt = `typical ${className}`;
      img.src = view.imageUrl(id, view.refThumb);
      return img;
    }));
  }

  function line(cls, text) {
    const el = document.createElement("div");
    if (cls) el.className = cls;
    el.textContent = text;
    return el;
  }

  function percent(p) { return p === null || p === undefined ? "?" : `${Math.round(100 * p)}%`; }
  function formatNumber(x) { return x === null || x === undefined ? "?" : Number(x).toFixed(3); }

  window.corecleanCards = { renderBatch, renderDetail, applyDensity };
})();
