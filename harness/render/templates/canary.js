"use strict";
// The canary dashboard's review: a verdict box on each diverged card (harmless, regression,
// unsure, a comment), kept in this browser across the page's refreshes, exported as
// review.json for `harness canary --import-review`. DOM APIs and textContent only, so no
// served text can become markup or script.
(function () {
  const DATA = JSON.parse(document.getElementById("canary-data").textContent);
  const KEY = "harness-canary-review:" + DATA.run_id;
  const VERDICTS = ["harmless", "regression", "unsure"];
  const REFRESH_MS = 30000;
  const $ = (sel) => document.querySelector(sel);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  function save(id, patch) {
    const all = load();
    const prev = all[id] || { verdict: "", comment: "" };
    all[id] = Object.assign({}, prev, patch, { at: new Date().toISOString() });
    localStorage.setItem(KEY, JSON.stringify(all));
    progress();
  }
  function verdictOf(id) {
    const mine = load()[id];
    if (mine && mine.verdict) return mine;
    return DATA.imported[id] || { verdict: "", comment: "" };
  }

  function box(card) {
    const id = card.dataset.id;
    const current = verdictOf(id);
    const node = el("div", "verdict-box");
    node.appendChild(el("span", "label", "your verdict"));
    VERDICTS.forEach((v, i) => {
      const b = el("button", "verdict-btn" + (current.verdict === v ? " on " + v : ""), (i + 1) + " " + v);
      b.type = "button";
      b.dataset.verdict = v;
      b.addEventListener("click", () => { save(id, { verdict: v }); card.replaceChild(box(card), card.querySelector(".verdict-box")); });
      node.appendChild(b);
    });
    const note = el("input", "comment");
    note.placeholder = "comment (optional)";
    note.value = current.comment || "";
    note.addEventListener("change", () => save(id, { comment: note.value }));
    node.appendChild(note);
    if (current.reviewer) node.appendChild(el("span", "label", "imported from " + current.reviewer));
    return node;
  }
  function progress() {
    const cards = Array.from(document.querySelectorAll("article.card[data-id]"));
    const done = cards.filter((c) => verdictOf(c.dataset.id).verdict).length;
    $("#progress").textContent = done + " of " + cards.length + " diverged requests shown judged in this browser or imported";
  }
  function exportReview() {
    const all = load();
    const verdicts = Object.keys(all).filter((id) => all[id].verdict).map((id) => (
      { candidate: DATA.arm, item: id, verdict: all[id].verdict, comment: all[id].comment || "", at: all[id].at }));
    harnessExportReview(DATA.run_id, null, verdicts);
  }

  document.querySelectorAll("article.card[data-id]").forEach((card) => card.appendChild(box(card)));
  $("#export").addEventListener("click", exportReview);
  $("#reviewer").value = localStorage.getItem("harness-reviewer") || "";
  progress();
  // The page is rewritten every cycle: reload it, but never under a reviewer's typing.
  setInterval(() => {
    const typing = ["INPUT", "TEXTAREA"].indexOf(document.activeElement.tagName) >= 0;
    if (!typing && !document.hidden) location.reload();
  }, REFRESH_MS);
  document.body.dataset.ready = "1";
})();
