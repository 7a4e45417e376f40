"use strict";
// The review page: every card is built from the JSON data island with DOM APIs and
// textContent only (no innerHTML), so no item text can become markup or script.
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const STORE_KEY = "harness-review:" + DATA.run_id;
  const PAGE = 40; // cards rendered per step; more render as the reader scrolls
  const SEVERITY = { regression: 0, diverged: 1, changed: 2, equivalent: 2.5, improvement: 3, unscorable: 4, identical: 5 };
  const VERDICTS = ["harmless", "regression", "unsure"];
  const $ = (sel) => document.querySelector(sel);

  let state = defaults();
  let shown = [];
  let rendered = 0;
  let focus = -1;

  function defaults() {
    return { cand: DATA.first || DATA.candidates[0].name, outcome: "flagged", difficulty: "", tag: "", q: "", sort: "severity" };
  }

  // --- verdicts in localStorage -------------------------------------------------------
  function loadReview() {
    try { return JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch (e) { return {}; }
  }
  function saveVerdict(cand, id, patch) {
    const all = loadReview();
    all[cand] = all[cand] || {};
    const prev = all[cand][id] || { verdict: "", comment: "" };
    all[cand][id] = Object.assign({}, prev, patch, { at: new Date().toISOString() });
    localStorage.setItem(STORE_KEY, JSON.stringify(all));
    progress();
  }
  function verdictOf(cand, id) {
    const mine = (loadReview()[cand] || {})[id];
    if (mine && mine.verdict) return mine;
    const imported = (DATA.imported[cand] || {})[id];
    return imported || { verdict: "", comment: "" };
  }

  // --- filter state in the URL fragment ---------------------------------------------
  function readHash() {
    const h = decodeURIComponent(location.hash.slice(1));
    if (h.startsWith("item-")) {
      const id = h.slice(5);
      state = Object.assign(defaults(), { cand: state.cand, outcome: "all" });
      return id;
    }
    const next = defaults();
    for (const part of location.hash.slice(1).split("&")) {
      const [k, v] = part.split("=");
      if (k in next && v !== undefined) next[k] = decodeURIComponent(v);
    }
    if (!DATA.candidates.some((c) => c.name === next.cand)) next.cand = DATA.first || DATA.candidates[0].name;
    state = next;
    return null;
  }
  function writeHash() {
    const parts = Object.keys(state).filter((k) => state[k] !== defaults()[k] || k === "cand")
      .map((k) => k + "=" + encodeURIComponent(state[k]));
    history.replaceState(null, "", "#" + parts.join("&"));
  }

  // --- selection ------------------------------------------------------------------------
  // What the scorer compared, when extraction changed it ("extracted: 11").
  function extractedNote(side) {
    return (side.extracted == null ? "" : " · extracted: " + side.extracted) +
      (side.cut_off ? " · cut off (no final answer yet)" : "") +
      (side.broken ? " · breaks its declaration: " + side.broken : "");
  }
  function answerNote(e) {
    if (!e.answer_change) return null;
    const show = (a) => (a === null ? "none" : a);
    const what = { tool: "call changed: ", fields: "fields changed: " }[e.answer_kind] || "answer changed: ";
    return what + show(e.answer_change[0]) + " \u2192 " + show(e.answer_change[1]);
  }
  function entry(item) { return item.candidates[state.cand]; }
  function outcomeOf(item) {
    const e = entry(item);
    return e.outcome === "regression" && item.difficulty === "hard" ? "hard-regression" : e.outcome;
  }
  function matches(item) {
    const e = entry(item);
    if (!e) return false; // a sequential run's candidate stopped before this item
    if (state.outcome === "flagged" && (e.outcome === "identical")) return false;
    if (state.outcome !== "flagged" && state.outcome !== "all" && e.outcome !== state.outcome) return false;
    if (state.difficulty && item.difficulty !== state.difficulty) return false;
    if (state.tag && item.tags.indexOf(state.tag) < 0) return false;
    if (state.q) {
      const q = state.q.toLowerCase();
      const hay = [item.id, item.prompt_text, item.reference.join(" "), item.baseline.output, e.output, item.tags.join(" ")]
        .join("\n").toLowerCase();
      if (hay.indexOf(q) < 0) return false;
    }
    return true;
  }
  function severity(item) {
    const e = entry(item);
    const hard = e.outcome === "regression" && item.difficulty === "hard" ? -1 : 0;
    return SEVERITY[e.outcome] + hard;
  }
  const SORTS = {
    severity: (a, b) => severity(a) - severity(b) || b.weight - a.weight || (entry(b).kld_mean || 0) - (entry(a).kld_mean || 0),
    weight: (a, b) => b.weight - a.weight || severity(a) - severity(b),
    kld: (a, b) => (entry(b).kld_mean || 0) - (entry(a).kld_mean || 0),
    similarity: (a, b) => entry(a).similarity - entry(b).similarity,
  };

  // --- rendering --------------------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function fmt(x, d) { return x === null || x === undefined ? "n/a" : Number(x).toPrecision(d || 3); }
  function diffPre(ops) {
    const pre = el("pre", "out");
    ops.forEach(([op, text], i) => {
      if (i) pre.appendChild(document.createTextNode(" "));
      pre.appendChild(op === "=" ? document.createTextNode(text) : el(op === "-" ? "del" : "ins", null, text));
    });
    return pre;
  }
  // KLDs from top-k log-probs (a server's, a top-k baseline store) are lower bounds.
  function bound(e) { return e.kld_bound ? "≥ " : ""; }
  function tokensPre(item, e) {
    const pre = el("pre", "tokens");
    item.baseline.tokens.forEach((t, i) => {
      const span = el("span", i === e.first_top1_divergence ? "tok diverge" : "tok", t);
      if (e.kld && e.kld[i] !== undefined) span.title = "KLD " + bound(e) + fmt(e.kld[i]);
      pre.appendChild(span);
    });
    return pre;
  }
  function field(label, node) {
    const div = el("div", "field");
    div.appendChild(el("span", "label", label));
    div.appendChild(node);
    return div;
  }
  function card(item, index) {
    const e = entry(item);
    const art = el("article", "card " + outcomeOf(item));
    art.id = "item-" + item.id;
    art.dataset.index = index;
    art.tabIndex = -1;
    const head = el("div", "card-head");
    const link = el("a", "mono id", item.id);
    link.href = "#item-" + encodeURIComponent(item.id);
    head.appendChild(link);
    head.appendChild(el("span", "pill outcome " + outcomeOf(item), outcomeOf(item).replace("-", " ")));
    head.appendChild(el("span", "pill " + item.difficulty, item.difficulty));
    head.appendChild(el("span", "pill", "weight " + item.weight));
    head.appendChild(el("span", "pill", item.scorer));
    item.tags.forEach((t) => head.appendChild(el("span", "pill tag", t)));
    head.appendChild(el("span", "src mono", item.source));
    art.appendChild(head);
    art.appendChild(field("prompt", el("pre", null, item.prompt_text)));
    if (item.reference.length) art.appendChild(field("reference", el("pre", null, item.reference.join("\n"))));
    const sides = el("div", "sides");
    const left = el("div", "side");
    left.appendChild(el("span", "label", "baseline · score " + fmt(item.baseline.score) + extractedNote(item.baseline)));
    left.appendChild(diffPre(e.diff[0]));
    const right = el("div", "side");
    right.appendChild(el("span", "label", state.cand + " · score " + fmt(e.score) + extractedNote(e)));
    right.appendChild(diffPre(e.diff[1]));
    sides.appendChild(left);
    sides.appendChild(right);
    art.appendChild(sides);
    const changed = answerNote(e);
    if (changed) art.appendChild(el("div", "answer-change", changed));
    if (e.options) art.appendChild(field("options (lm-eval log-likelihoods; each model's choice in bold)", optionsTable(item, e)));
    if (e.kld) art.appendChild(field("baseline tokens · first top-1 disagreement highlighted", tokensPre(item, e)));
    const foot = "word similarity " + fmt(e.similarity) +
      (e.meaning !== null && e.meaning !== undefined ? " · meaning similarity " + fmt(e.meaning) : "") +
      (e.first_divergence !== null ? " · first divergent output token at " + e.first_divergence : "") +
      (e.kld_mean !== null ? " · KLD mean " + bound(e) + fmt(e.kld_mean) + ", max " + bound(e) + fmt(e.kld_max) +
        (e.kld_bound ? " (lower bounds: top-" + e.kld_bound + " + tail)" : "") : "") +
      (e.first_top1_divergence !== null ? " · top-1 tokens first differ at " + e.first_top1_divergence : "");
    art.appendChild(el("div", "card-foot", foot));
    art.appendChild(verdictBox(item));
    return art;
  }
  function optionsTable(item, e) {
    const table = el("table", "options");
    const head = el("tr");
    ["option", "gold", "baseline", state.cand].forEach((h) => head.appendChild(el("th", null, h)));
    table.appendChild(head);
    e.options.forEach((o) => {
      const tr = el("tr");
      tr.appendChild(el("td", "mono", o.text));
      tr.appendChild(el("td", null, o.gold ? "✓" : ""));
      tr.appendChild(el("td", "num" + (o.text === item.baseline.output ? " chosen" : ""), o.baseline_loglikelihood.toFixed(3)));
      tr.appendChild(el("td", "num" + (o.text === e.output ? " chosen" : ""), o.candidate_loglikelihood.toFixed(3)));
      table.appendChild(tr);
    });
    return table;
  }
  function verdictBox(item) {
    const box = el("div", "verdict-box");
    const current = verdictOf(state.cand, item.id);
    box.appendChild(el("span", "label", "your verdict"));
    VERDICTS.forEach((v, i) => {
      const b = el("button", "verdict-btn" + (current.verdict === v ? " on " + v : ""), (i + 1) + " " + v);
      b.type = "button";
      b.dataset.verdict = v;
      b.addEventListener("click", () => setVerdict(item, v));
      box.appendChild(b);
    });
    const note = el("input", "comment");
    note.placeholder = "comment (optional)";
    note.value = current.comment || "";
    note.addEventListener("change", () => saveVerdict(state.cand, item.id, { comment: note.value }));
    box.appendChild(note);
    if (current.reviewer) box.appendChild(el("span", "label", "imported from " + current.reviewer));
    return box;
  }
  function setVerdict(item, v) {
    saveVerdict(state.cand, item.id, { verdict: v });
    const art = document.getElementById("item-" + item.id);
    if (art) art.replaceChild(verdictBox(item), art.querySelector(".verdict-box"));
  }

  function render(targetId) {
    shown = DATA.items.filter(matches).sort(SORTS[state.sort] || SORTS.severity);
    const list = $("#cards");
    list.textContent = "";
    rendered = 0;
    focus = -1;
    const hidden = state.outcome === "flagged" ? DATA.items.filter((it) => entry(it) && entry(it).outcome === "identical").length : 0;
    $("#count").textContent = shown.length + " item(s) shown" + (hidden ? " · " + hidden + " identical item(s) collapsed" : "");
    $("#show-identical").hidden = !hidden;
    let want = PAGE;
    if (targetId) {
      const at = shown.findIndex((it) => it.id === targetId);
      if (at >= 0) want = at + 1;
    }
    more(want);
    syncControls();
    progress();
    if (targetId) {
      const node = document.getElementById("item-" + targetId);
      if (node) { node.scrollIntoView(); node.focus(); focus = Number(node.dataset.index); }
    }
  }
  function more(n) {
    const list = $("#cards");
    const stop = Math.min(shown.length, rendered + n);
    for (; rendered < stop; rendered++) list.appendChild(card(shown[rendered], rendered));
    $("#more").hidden = rendered >= shown.length;
  }
  function progress() {
    const cand = state.cand;
    const flagged = DATA.items.filter((it) => it.candidates[cand] && it.candidates[cand].outcome !== "identical");
    const done = flagged.filter((it) => verdictOf(cand, it.id).verdict).length;
    $("#progress").textContent = done + " of " + flagged.length + " flagged items reviewed for " + cand;
  }
  function syncControls() {
    for (const k of ["cand", "outcome", "difficulty", "tag", "q", "sort"]) {
      const input = document.getElementById("f-" + k);
      if (input && input.value !== state[k]) input.value = state[k];
    }
  }

  // --- keyboard -----------------------------------------------------------------------------
  function move(step) {
    const next = Math.max(0, Math.min(shown.length - 1, focus + step));
    if (next >= rendered) more(PAGE);
    const node = $("#cards").children[next];
    if (!node) return;
    focus = next;
    node.focus();
    node.scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", (ev) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].indexOf(document.activeElement.tagName) >= 0;
    if (typing) { if (ev.key === "Escape") document.activeElement.blur(); return; }
    if (ev.key === "j") move(1);
    else if (ev.key === "k") move(-1);
    else if (ev.key === "/") { ev.preventDefault(); $("#f-q").focus(); }
    else if (["1", "2", "3"].indexOf(ev.key) >= 0 && focus >= 0) setVerdict(shown[focus], VERDICTS[Number(ev.key) - 1]);
  });

  // --- export -----------------------------------------------------------------------------
  function exportReview() {
    const verdicts = [];
    const all = loadReview();
    for (const cand of Object.keys(all)) {
      for (const id of Object.keys(all[cand])) {
        const v = all[cand][id];
        if (v.verdict) verdicts.push({ candidate: cand, item: id, verdict: v.verdict, comment: v.comment || "", at: v.at });
      }
    }
    harnessExportReview(DATA.run_id, DATA.results_sha256, verdicts);
  }

  // --- wiring -----------------------------------------------------------------------------
  function init() {
    const cand = $("#f-cand");
    DATA.candidates.forEach((c) => cand.appendChild(el("option", null, c.name)));
    const tags = $("#f-tag");
    DATA.tags.forEach((t) => { const o = el("option", null, t); o.value = t; tags.appendChild(o); });
    for (const k of ["cand", "outcome", "difficulty", "tag", "sort"]) {
      document.getElementById("f-" + k).addEventListener("change", (ev) => { state[k] = ev.target.value; writeHash(); render(); });
    }
    $("#f-q").addEventListener("input", (ev) => { state.q = ev.target.value; writeHash(); render(); });
    $("#more").addEventListener("click", () => more(PAGE));
    $("#show-identical").addEventListener("click", () => { state.outcome = "all"; writeHash(); render(); });
    $("#export").addEventListener("click", exportReview);
    $("#reviewer").value = localStorage.getItem("harness-reviewer") || "";
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((es) => { if (es.some((e) => e.isIntersecting) && rendered < shown.length) more(PAGE); })
        .observe($("#more"));
    }
    window.addEventListener("hashchange", () => {
      const focus = readHash();
      render(focus);
      // A link to a candidate's queue (the ladder's points and table) lands on the queue.
      if (focus === null) $("#review").scrollIntoView();
    });
    render(readHash());
    document.body.dataset.ready = "1";
  }
  init();
})();
