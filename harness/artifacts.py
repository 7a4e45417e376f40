"""The run folder on disk. `compare` writes `run.json` (inputs) and `generations/`;
`build_artifacts(run_dir)` derives everything else from them with no model loaded:
results.json, items.csv, junit.xml, summary.md and report.html. `harness report RUN_DIR`
is exactly that second step."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.compare import PairedItem, pair, pair_samples
from harness.config import CompareConfig, GateConfig, StatsConfig
from harness.distribution import TokenStats
from harness.evalset import parse_item
from harness.gate import GateResult, gate
from harness.lmeval import Sample, read_samples
from harness.records import SCHEMA_VERSION, EvalItem, Source
from harness.review import load_merged, run_id, summarize_review
from harness.runner import Generation, ReadyCandidate
from harness.summary import CandidateMetrics, summarize

RUN_FILE = "run.json"
ARTIFACTS = ("results.json", "items.csv", "junit.xml", "summary.md", "report.html")


class RunFolderError(Exception):
    """The run folder is missing a file or holds one this version cannot read."""


def item_to_json(item: EvalItem) -> dict[str, Any]:
    """An item in the eval-set contract's own form (plus where it came from)."""
    row: dict[str, Any] = {"id": item.id}
    if item.prompt is not None:
        row["prompt"] = item.prompt
    else:
        row["messages"] = [
            {"role": m.role.value, "content": m.content} for m in item.messages or ()
        ]
    if item.reference:
        row["reference"] = list(item.reference)
    row |= {"scorer": item.scorer.value, "difficulty": item.difficulty.value, "weight": item.weight,
            "tags": list(item.tags)}  # fmt: skip
    if item.max_new_tokens is not None:
        row["max_new_tokens"] = item.max_new_tokens
    return row


def item_from_json(row: dict[str, Any], source: str) -> EvalItem:
    path, _, line = source.rpartition(":")
    return parse_item(row, Source(path, int(line)))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(
            f"{path}: missing; is this a run folder written by `harness compare`?"
        ) from None
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None


def read_generations(run_dir: Path, name: str) -> list[Generation]:
    """A model's generations, with its reference NLLs where the run measured them."""
    path = run_dir / "generations" / f"{name}.jsonl"
    if not path.is_file():
        raise RunFolderError(f"{path}: missing generations file")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    ref_path = run_dir / "distribution" / f"{name}.reference.json"
    nll = read_json(ref_path) if ref_path.is_file() else {}
    return [
        Generation(r["id"], r["output"], tuple(r["output_ids"]), tuple(r["output_tokens"]),
                   nll.get(r["id"]))
        for r in rows
    ]  # fmt: skip


def read_token_stats(path: Path, items: list[EvalItem]) -> list[TokenStats] | None:
    """A candidate's per-token distances, or None when the run did not measure them."""
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if [r["id"] for r in rows] != [i.id for i in items]:
        raise RunFolderError(f"{path}: items do not match run.json")
    fields = ("kld", "top1_agree", "delta_p", "nll_base", "nll_cand")
    return [TokenStats(*(tuple(r[f]) for f in fields)) for r in rows]


def read_samples_file(run_dir: Path, name: str) -> list[Sample]:
    path = run_dir / "lm_eval" / f"{name}.jsonl"
    if not path.is_file():
        raise RunFolderError(f"{path}: missing lm-eval samples")
    return read_samples(path)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[EvalItem], dict[str, list[Generation]]]:
    run = read_json(run_dir / RUN_FILE)
    if run.get("schema_version") != SCHEMA_VERSION:
        found = run.get("schema_version")
        raise RunFolderError(
            f"{run_dir / RUN_FILE}: schema_version {found} is not {SCHEMA_VERSION}"
        )
    items = [item_from_json(r["item"], r["source"]) for r in run["items"]]
    names = [run["baseline"]["name"]] + [c["name"] for c in run["candidates"]]
    gens = {n: read_generations(run_dir, n) for n in names}
    for name, rows in gens.items():
        if [g.item_id for g in rows] != [i.id for i in items]:
            raise RunFolderError(f"{run_dir}/generations/{name}.jsonl: items do not match run.json")
    return run, items, gens


def metrics_json(m: CandidateMetrics) -> dict[str, Any]:
    d = asdict(m)
    d.pop("slices")
    d.pop("distribution")
    return d


def candidate_result(
    cand: dict[str, Any], metrics: CandidateMetrics, result: GateResult
) -> dict[str, Any]:
    return cand | {
        "verdict": result.verdict,
        "reasons": result.reasons,
        "rules": [asdict(r) for r in result.rules],
        "metrics": metrics_json(metrics),
        "distribution": None if metrics.distribution is None else asdict(metrics.distribution),
        "slices": [asdict(s) for s in metrics.slices],
    }


def ppl(nll: float | None) -> float | None:
    return None if nll is None else math.exp(nll)


def item_rows(
    paired: dict[str, list[PairedItem]], verdicts: dict[str, dict[str, dict[str, str]]]
) -> list[dict[str, Any]]:
    rows = []
    first = next(iter(paired.values()))
    for i, any_pair in enumerate(first):
        item = any_pair.item
        rows.append(
            {
                "id": item.id, "source": str(item.source), "difficulty": item.difficulty.value,
                "weight": item.weight, "tags": list(item.tags), "scorer": item.scorer.value,
                "prompt": item.prompt,
                "messages": item_to_json(item).get("messages"),
                "reference": list(item.reference),
                "baseline": {"output": any_pair.baseline.output, "score": any_pair.baseline.score,
                             "reference_ppl": ppl(any_pair.baseline.reference_nll)},
                "candidates": {
                    name: {
                        "output": p[i].candidate.output, "score": p[i].candidate.score,
                        "outcome": p[i].outcome.value, "similarity": p[i].similarity,
                        "first_divergence": p[i].first_divergence,
                        "kld_mean": p[i].kld_mean, "kld_max": p[i].kld_max,
                        "reference_ppl": ppl(p[i].candidate.reference_nll),
                        "first_top1_divergence": p[i].first_top1_divergence,
                        "options": [asdict(o) for o in p[i].options] or None,
                        "review": verdicts.get(name, {}).get(item.id),
                    }
                    for name, p in paired.items()
                },
            }
        )  # fmt: skip
    return rows


NOISE_KLD = 1e-6


def determinism(candidates: list[dict[str, Any]]) -> list[str]:
    """Sentences about the noise floor run, if there is one, for the top of the report."""
    notes = []
    for c in candidates:
        if not c["noise_floor"]:
            continue
        m = c["metrics"]
        changed = round((1 - m["identical_share"]) * m["items"])
        dist = c["distribution"]
        max_kld = None if dist is None else dist["max_kld"]
        if changed or (max_kld is not None and max_kld > NOISE_KLD):
            notes.append(
                "The baseline is NOT deterministic: a second run with the same settings changed "
                f"{changed} of {m['items']} outputs (max per-token KLD {max_kld}; "
                f"{m['regressions']} regressions, {m['improvements']} improvements). Differences "
                "of this size between baseline and candidates are noise, not quantization damage."
            )
        else:
            notes.append(
                f"The baseline is deterministic: a second run gave the same {m['items']} outputs"
                + ("" if max_kld is None else f" and a max per-token KLD of {max_kld:.2g}")
                + "."
            )
    return notes


def build_results(run_dir: Path) -> tuple[dict[str, Any], dict[str, list[PairedItem]]]:
    """results.json's content, and the paired items the report renders."""
    run, items, gens = load_run(run_dir)
    stats = StatsConfig(**run["config"]["stats"])
    gate_cfg = GateConfig(**run["config"]["gate"])
    base = gens[run["baseline"]["name"]]
    lm_base = (
        read_samples_file(run_dir, run["baseline"]["name"]) if run["config"]["lm_eval"] else None
    )
    paired: dict[str, list[PairedItem]] = {}
    merged = load_merged(run_dir)
    verdicts = merged["verdicts"]
    candidates = []
    for cand in run["candidates"]:
        tokens = read_token_stats(run_dir / "distribution" / f"{cand['name']}.jsonl", items)
        paired[cand["name"]] = pair(items, base, gens[cand["name"]], tokens)
        if lm_base is not None:
            lm_cand = read_samples_file(run_dir, cand["name"])
            paired[cand["name"]] += pair_samples(lm_base, lm_cand)
        metrics = summarize(paired[cand["name"]], stats)
        review = summarize_review(paired[cand["name"]], verdicts.get(cand["name"], {}))
        result = gate(metrics, gate_cfg, review)
        candidates.append(candidate_result(cand, metrics, result) | {"review": asdict(review)})
    results = {
        k: run[k]
        for k in (
            "schema_version",
            "created_at",
            "name",
            "config",
            "evalsets",
            "libraries",
            "durations",
        )
    }
    results |= {
        "baseline": run["baseline"],
        "determinism": determinism(candidates),
        "candidates": candidates,
        "items": item_rows(paired, verdicts),
        "review_imports": merged["imports"],
    }
    return results, paired


def build_artifacts(run_dir: Path) -> dict[str, Any]:
    """Write every derived artifact into `run_dir`; returns results.json's content."""
    from harness.report import render_csv, render_html, render_junit, render_summary

    results, paired = build_results(run_dir)
    text = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    write_atomic(run_dir / "results.json", text)
    run = read_json(run_dir / RUN_FILE)
    if "results_sha256" not in run:
        # The run's identity for reviews: results.json as compare wrote it (before any verdict).
        run["results_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        write_atomic(run_dir / RUN_FILE, json.dumps(run, indent=2, ensure_ascii=False) + "\n")
    write_atomic(run_dir / "items.csv", render_csv(results))
    write_atomic(run_dir / "junit.xml", render_junit(results))
    write_atomic(run_dir / "summary.md", render_summary(results))
    identity = {"run_id": run_id(run), "results_sha256": run["results_sha256"]}
    write_atomic(run_dir / "report.html", render_html(results, paired, identity))
    return results


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for package in (
        "harness",
        "torch",
        "transformers",
        "llmcompressor",
        "compressed-tensors",
        "lm-eval",
    ):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def evalset_info(items: list[EvalItem]) -> list[dict[str, Any]]:
    from harness.quantize import sha256_file

    counts: dict[str, int] = {}
    for item in items:
        counts[item.source.path] = counts.get(item.source.path, 0) + 1
    return [{"path": p, "sha256": sha256_file(p), "items": n} for p, n in counts.items()]


def config_json(cfg: CompareConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["path"] = str(cfg.path)
    return d


def write_run(
    folder: Path, cfg: CompareConfig, items: list[EvalItem], baseline_fp: str,
    candidates: list[ReadyCandidate], created_at: str,
) -> None:  # fmt: skip
    """run.json: everything the later stages need besides the generations."""
    run = {
        "schema_version": SCHEMA_VERSION,
        "created_at": created_at,
        "name": cfg.name,
        "config": config_json(cfg),
        "evalsets": evalset_info(items),
        "libraries": library_versions(),
        "durations": {
            "quantize_seconds": {c.spec.name: round(c.quantize_seconds, 1) for c in candidates},
            "quantize_cached": {c.spec.name: c.quantize_cached for c in candidates},
        },
        "baseline": {
            "name": cfg.baseline.name,
            "path": cfg.baseline.path,
            "fingerprint": baseline_fp,
            "dtype": cfg.baseline.dtype,
            "device": cfg.baseline.device,
        },
        "candidates": [
            {
                "name": c.spec.name,
                "path": c.spec.path,
                "fingerprint": c.fingerprint,
                "gated": c.gated,
                "quantize": None if c.quantize is None else asdict(c.quantize),
                "calibration_sha256": c.calibration_sha256,
                "noise_floor": c.noise_floor,
            }
            for c in candidates
        ],
        "items": [{"source": str(i.source), "item": item_to_json(i)} for i in items],
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / RUN_FILE, json.dumps(run, indent=2, ensure_ascii=False) + "\n")


def record_generation_seconds(folder: Path, seconds: dict[str, float]) -> None:
    run = read_json(folder / RUN_FILE)
    run["durations"]["generation_seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    write_atomic(folder / RUN_FILE, json.dumps(run, indent=2, ensure_ascii=False) + "\n")
