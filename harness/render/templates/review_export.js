"use strict";
// The exported review, the `harness-review/1` file `harness review import` and `harness canary
// --import-review` check: one function both pages (report.js, canary.js) call, inlined before
// each page's own script under the same hash.
function harnessExportReview(runId, resultsSha256, verdicts) {
  const field = document.getElementById("reviewer");
  const note = document.getElementById("export-note");
  const reviewer = field.value.trim();
  if (!reviewer) { field.focus(); note.textContent = "enter your name first"; return; }
  localStorage.setItem("harness-reviewer", reviewer);
  const review = {
    schema: "harness-review/1", run_id: runId, results_sha256: resultsSha256,
    reviewer: reviewer, exported_at: new Date().toISOString(), verdicts: verdicts,
  };
  const blob = new Blob([JSON.stringify(review, null, 2) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "review.json";
  document.body.appendChild(a);
  a.click();
  a.remove();
  note.textContent = verdicts.length + " verdict(s) exported";
}
