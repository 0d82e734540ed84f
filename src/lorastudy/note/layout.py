"""The note's tables and figures, laid out from the same artifacts the findings read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lorastudy.measure import deployment
from lorastudy.note.figures import FigureSpec
from lorastudy.note.findings import DEC, ENC, Findings
from lorastudy.note.formatting import (
    METRIC_NAMES, ci_f1, ci_pp, code, count, esc, f1, inline, metric_ci, metric_diff, metric_value, model_name, money, ms, name,
    params, pct, pp, rate, seconds, sf1,
)
from lorastudy.note.tables import CANDIDATE_NAMES, CLASS_ROWS, evidence, finding_ci, table
from lorastudy.study.arms import arm_spec
from lorastudy.study.config import ARMS, StudyConfig


# an arm's standing in a context's decision (deployment.decide's statuses), as the contexts table words it
STANDING = {"leader": "best", "equivalent": "equivalent", "unranked": "cannot be ranked",
            "below_floor": "may be under the floor", "clearly_below": "clearly below",
            "misses_target": "misses the target", "no_quality": "no quality value"}


@dataclass

class Layout:
    """The note's tables and figures, from the same artifacts the findings read."""

    results: dict
    latency: dict | None
    runs: list[dict]
    config: StudyConfig
    findings: Findings

    @property
    def arms(self) -> list[str]:
        return [arm for arm in ARMS if arm in self.results["arms"]]

    @property
    def tiers(self) -> list[str]:
        return self.results["data"]["tier_names"]

    @property
    def has_tail(self) -> bool:
        sizes = self.results["data"]["tier_sizes"]
        return sum(1 for tier in self.tiers if sizes.get(tier, 0) > 0) >= 2

    def model_name(self, family: str) -> str:
        """The family's model by its human name (`formatting.model_name`): the model card's title where a run's
        resolved model folder has one, else derived from the configured source."""
        source = getattr(self.config.models, family).source
        for run in self.runs:
            model = run.get("model") or {}
            if run.get("family") != family or model.get("source") != source or not model.get("resolved_path"):
                continue
            readme = Path(model["resolved_path"]) / "README.md"
            try:
                heading = next((line[2:].strip() for line in readme.read_text(encoding="utf-8").splitlines()
                                if line.startswith("# ")), None) if readme.is_file() else None
            except (OSError, UnicodeDecodeError):
                heading = None
            if heading:
                return model_name(source, heading)
        return model_name(source)

    def first_run(self, arm: str) -> dict:
        return self.results["runs"][f"{arm}__seed{self.results['arms'][arm]['seeds'][0]}"]

    def level(self, arm: str, metric: str, fmt) -> tuple[str, str]:
        """(point estimate, interval) of one arm from one source (results.arms[arm].ci): seed mean ± std with seeds."""
        entry = self.results["arms"][arm].get("ci", {}).get(metric)
        if entry is None:
            return "–", ""
        stat = self.results["arms"][arm]["test"].get(metric)
        spread = f" ± {fmt(stat['std'])}" if stat and stat.get("std") is not None else ""
        return f"{fmt(entry['mean'])}{spread}", f"[{fmt(entry['ci'][0])}, {fmt(entry['ci'][1])}]"

    def systems(self) -> str:
        data = self.results["data"]
        majority = data["majority_class"]
        rows = [[f"Majority class ({esc(majority['label'])})", pct(majority["test_accuracy"]), "",
                 f1(majority["test_macro_f1"]) if "test_macro_f1" in majority else "–", "",
                 count(majority["test_zero_f1_count"]) if "test_zero_f1_count" in majority else "–", "–", "–"]]
        for arm in self.arms:
            p = self.first_run(arm)["parameters"] or {}
            zero = self.results["arms"][arm]["test"]["zero_f1_count"]
            collapsed = " **(collapsed)**" if (self.first_run(arm).get("collapse") or {}).get("collapsed") else ""
            rows.append([name(arm) + collapsed, *self.level(arm, "accuracy", pct), *self.level(arm, "macro_f1", f1),
                         count(zero["mean"]) + (f" ± {count(zero['std'])}" if zero.get("std") is not None else ""),
                         params(p["trainable"]) if p.get("trainable") else "–", pct(p.get("trainable_share"))])
        external = self.results.get("external_reference") or {}
        for row in external.get("rows", []):
            zero = row.get("zero_f1_count")
            # the course's own name for the model, quoted as code: its numbers ("50k" features) are not results
            rows.append([f"*External: {code(row['model'])} (course, {esc(row.get('split', 'validation'))})*",
                         pct(row.get("accuracy")), "", f1(row.get("macro_f1")), "", count(zero), "", ""])
        return table(["Arm", "Accuracy", "95% CI", "Macro F1", "95% CI", f"Zero-F1 (of {data['num_classes']})",
                      "Trainable params", "Trainable share"], rows)

    def weighting(self) -> str | None:
        effects = [f for f in self.findings.of_kind("effect")]
        if not effects:
            return None
        rows = []
        for f in effects:
            verdicts = f.facts["verdicts"]
            rows.append([name(f.subjects[0]), f"{pct(f.q('acc_before'))} → {pct(f.q('acc_after'))}",
                         f"{pp(f.q('accuracy_delta'))} {ci_pp(finding_ci(f, 'accuracy_delta'))}",
                         f"{f1(f.q('f1_before'))} → {f1(f.q('f1_after'))}",
                         f"{sf1(f.q('macro_f1_delta'))} {ci_f1(finding_ci(f, 'macro_f1_delta'))}",
                         f"{count(f.q('zero_before'))} → {count(f.q('zero_after'))}",
                         f"{pp(f.q('rare_recall_delta'))} {ci_pp(finding_ci(f, 'rare_recall_delta'))}"
                         if "rare_recall" in verdicts else "–"])
        rare = esc(self.tiers[0])
        return table(["Unweighted arm", "Accuracy", "Δ accuracy [95% CI]", "Macro F1", "Δ macro F1 [95% CI]",
                      "Zero-F1", f"Δ {rare}-tier recall [95% CI]"], rows)

    def decomposition(self) -> str | None:
        effects = {f.subjects[0]: f for f in self.findings.of_kind("effect") if f.subjects[0] in (ENC, DEC)}
        if len(effects) < 2 or len(self.tiers) < 2:
            return None
        rows = []
        for tier in self.tiers:
            row = [esc(tier), pct(effects[ENC].q(f"{tier}.class_share"))]
            for arm in (ENC, DEC):
                row += [sf1(effects[arm].q(f"{tier}.delta_mean_f1")), sf1(effects[arm].q(f"{tier}.contribution")),
                        pp(effects[arm].q(f"{tier}.accuracy_change_from_tier"))]
            rows.append(row)
        rows.append(["all (= Δ macro F1, Δ accuracy)", "100.0%", "", sf1(effects[ENC].q("macro_f1_delta")),
                     pp(effects[ENC].q("accuracy_delta")), "", sf1(effects[DEC].q("macro_f1_delta")),
                     pp(effects[DEC].q("accuracy_delta"))])
        per_arm = [f"{name(arm)}: {column}" for arm in (ENC, DEC)
                   for column in ("Δ tier mean F1", "Δ macro F1 from tier", "Δ accuracy from tier")]
        return table(["Tier (weighted − unweighted)", "Class share", *per_arm], rows)

    def tiers_table(self) -> str:
        header = ["Arm"]
        for tier in self.tiers:
            n = self.results["data"]["tier_sizes"][tier]
            header += [f"{esc(tier)} mean F1", f"{esc(tier)} classes above zero (of {n})", f"{esc(tier)} zero-F1 (of {n})",
                       f"{esc(tier)} recall"]
        rows = []
        for arm in self.arms:
            per_tier = self.results["arms"][arm]["per_tier"]  # seed means, as in Sections 1 and 2
            row = [name(arm)]
            for index, tier in enumerate(self.tiers):
                t = {key: stat["mean"] for key, stat in per_tier[tier].items()}
                recall = pct(t["recall"])
                if index == 0 and self.results["arms"][arm].get("ci", {}).get("rare_recall"):
                    recall = " ".join(self.level(arm, "rare_recall", pct))
                row += [f1(t["mean_f1"]), count(t["n_nonzero"]), count(t["zero_f1_count"]), recall]
            rows.append(row)
        return table(header, rows)

    def classes_table(self) -> str | None:
        classes = (self.results.get("class_differences") or {}).get("classes", [])
        if not classes:
            return None
        classes = [c for c in classes if f1(c["f1_a"]) != f1(c["f1_b"])]  # a class both models score alike is no difference
        if not classes:
            return None
        rare = [c for c in classes if c["tier"] == self.tiers[0]][:CLASS_ROWS]
        others = [c for c in classes if c["tier"] != self.tiers[0]][:max(CLASS_ROWS - len(rare), 4)]
        return table(["Class", "Tier", "Train count", "Test support", "Encoder LoRA F1", "Decoder LoRA F1",
                      "Decoder − encoder"],
                     [[esc(c["label"]), esc(c["tier"]), count(c["train_count"]), count(c["test_support"]), f1(c["f1_a"]),
                       f1(c["f1_b"]), sf1(c["diff"])] for c in rare + others])

    def confusions(self) -> str | None:
        finding = self.findings.get("tier.confusions")
        if finding is None:
            return None
        rows = []
        for arm in (ENC, DEC):
            flow = finding.facts["flows"].get(arm)
            if not flow:
                continue
            tops = ", ".join(f"{esc(t['label'])} ({count(t['count'])})" for t in flow["top_absorbers"][:3]) or "–"
            rows.append([name(arm), count(flow["n_examples"]), count(flow["correct"])]
                        + [count(flow["to_tier"][tier]) for tier in self.tiers] + [tops])
        return table(["Model", f"{esc(self.tiers[0])}-tier test examples", "Correct"]
                     + [f"Wrong, into {esc(tier)} classes" for tier in self.tiers] + ["Top absorbers (examples)"], rows)

    def latency_table(self) -> str | None:
        models = (self.latency or {}).get("models", {})
        if not models:
            return None
        rows = []
        for arm, entry in models.items():
            v = entry["variants"]["merged"]
            best = max(v["batched"], key=lambda b: b["examples_per_s"])
            rows.append([name(arm), ms(v["single"]["p50_ms"]), ms(v["single"]["p95_ms"]),
                         f"{ms(best['ms_per_example'])} (batch {best['batch_size']})", rate(best['examples_per_s']),
                         f"{v.get('memory_added_mb', v['peak_memory_mb']):,.0f} MB"])
        return table(["Model as served", "Single p50", "Single p95", "Batched, per example", "Examples/s",
                      "Memory added"], rows)

    def serving_setup(self) -> str:
        """The serving threads and the networks' precision, as the latency table was measured (", 2 threads, ...")."""
        latency = self.latency or {}
        threads = (latency.get("environment") or {}).get("torch_threads")
        precisions = sorted({p for model in (latency.get("models") or {}).values()
                             if (p := ((model.get("variants") or {}).get("merged") or {}).get("precision"))})
        return ((f", {count(threads)} threads" if threads else "")
                + (f", networks in {', '.join(esc(p) for p in precisions)}" if precisions else ""))

    def _standing(self, decision, arm: str, entry: dict) -> str:
        """An arm's standing. A clear difference (or a reach under the floor) from a best arm that trained one seed,
        for an arm that trained several, holds for that one run of the best: the best's own training variance is in
        no interval, so the difference is "below on test-set noise", not "clearly below"."""
        status = entry.get("status")
        leader = decision.facts["decision"].get("leader")
        seeds = {a: self.results["arms"].get(a, {}).get("n_seeds", 1) for a in (leader, arm) if a}
        if status in ("clearly_below", "below_floor") and leader is not None and seeds.get(leader) == 1 and \
                seeds.get(arm, 1) > 1:
            return ("below on test-set noise" if status == "clearly_below" else STANDING[status]) + " (best: one seed)"
        return STANDING.get(status, "–")

    def contexts_table(self, decisions, verdicts) -> str:
        """One row per context and arm the rule weighed; the last column marks the recommendation, or why the rule's
        pick is none. Arms that meet the target with a point estimate under the floor are out by their own interval
        too (it reaches lower still), add nothing to the decision, and are named under the table instead of filling
        it."""
        out, hidden = [], []
        for decision, verdict in zip(decisions, verdicts):
            context, metric = decision.facts["context"], decision.facts["metric"]
            realtime = context["kind"] == "realtime"
            standing = decision.facts["decision"].get("standing") or {}
            mark = ("best, not fit" if verdict.misses_most else "rule's pick, withheld" if verdict.withheld
                    else "**chosen**")
            floor = decision.facts["decision"].get("floor")
            under = {row["arm"] for row in decision.facts["rows"] if floor is not None and row["meets"]
                     and (standing.get(row["arm"]) or {}).get("status") in ("below_floor", "clearly_below")
                     and row["quality"] is not None and row["quality"] < floor}
            below = [inline(row["arm"]) for row in decision.facts["rows"] if row["arm"] in under]
            if below:
                hidden.append(f"{esc(context['name'])}: {', '.join(below)}")
            for row in decision.facts["rows"]:
                chosen = mark if row["arm"] == decision.facts["decision"]["choice"] else ""
                target = f"p95 {ms(row['p95_at_rate_ms'])}" if realtime else f"job {seconds(row['time_s'])}"
                entry = standing.get(row["arm"]) or {}
                if row["arm"] in under:
                    continue
                versus = (f"{metric_diff(entry['diff'], metric)} {metric_ci([entry['lo'], entry['hi']], metric)}"
                          if entry.get("diff") is not None else "–")
                out.append([esc(context["name"]), name(row["arm"]),
                            f"{METRIC_NAMES[metric]} {metric_value(row['quality'], metric)}", versus,
                            self._standing(decision, row["arm"], entry),
                            "yes" if row["meets"] else "**no**", target, count(row["instances"]),
                            pct(row.get("busy_instances")) if realtime else "–", pct(row["headroom"]),
                            money(row["monthly_cost"]), money(row.get("compute_cost")), chosen])
        notes = []
        if hidden:
            notes.append(f"*Not shown, each meeting the target with a point estimate under the floor, so out: "
                         f"{'; '.join(hidden)}.*")
        if priced := self._priced_from():
            notes.append(f"*Priced alike per network, from the slower of its timings on each measure: single requests of "
                         f"{'; of '.join(priced)}; batched throughput and memory, the network's lowest and highest "
                         f"(two timings of one network differ only by the machine's noise, which must not favour an "
                         f"arm).*")
        return "\n\n".join([table(["Context", "Arm", "Deciding metric", "Against the best", "Standing", "Meets speed target",
                                     "Against the target", "Instances", "One instance busy at peak", "Headroom",
                                     "Monthly cost", "Raw compute", ""], out), *notes])

    def _priced_from(self) -> list[str]:
        """Arms priced from another arm's timing of the same network (deployment.served_models)."""
        served = deployment.served_models(self.latency or {}, self.arms)
        by_source: dict[str, list[str]] = {}
        for arm, entry in served.items():
            if entry.measured_as != arm:
                by_source.setdefault(entry.measured_as, []).append(inline(arm))
        return [f"{', '.join(arms)} from {inline(source)}'s" for source, arms in by_source.items()]

    def candidates_table(self) -> str | None:
        finding = self.findings.get("bottleneck")
        if finding is None:
            return None

        def unmeasured(c: dict) -> str:
            """A supported candidate without a size: what the run does show, never another arm's gain as this one's;
            only the favoured candidate is the next experiment's test."""
            facts = c.get("facts") or {}
            if c["name"] == "training_budget" and facts.get("other_gain") is not None:
                return f"unmeasured ({inline(facts['other'])} gained {sf1(facts['other_gain'])} past the matched budget)"
            return "unmeasured: the next experiment is its test" if c["name"] == finding.verdict else "unmeasured"

        rows = [[CANDIDATE_NAMES[c["name"]], evidence(c), {True: "yes", False: "not detected"}.get(c["supported"], "not testable here"),
                 sf1(c["macro_f1_size"]) if c["macro_f1_size"] is not None else unmeasured(c) if c["supported"] else "–"]
                for c in finding.facts["candidates"]]
        return table(["Candidate bottleneck", "Evidence in this run", "Consistent with the evidence", "Macro F1 it accounts for"], rows)

    def experiment_log(self) -> str:
        order = {arm: i for i, arm in enumerate(ARMS)}
        rows = []
        for r in sorted(self.runs, key=lambda r: (order.get(r.get("arm"), 99), r.get("seed", 0))):
            model = r.get("model") or {}
            env = r.get("environment") or {}
            libs = env.get("libraries") or env
            versions = ", ".join(f"{k} {libs[k]}" for k in ("torch", "transformers", "peft") if libs.get(k))
            identity = model.get("revision") or (model.get("sha256") or "")[:16]
            hardware = f"{r.get('device', '')}, {r.get('threads', '')} threads, {r.get('precision', '')}; {env.get('cpu', '')}"
            at_start = r.get("memory_at_start_mb")
            memory = f"{r.get('peak_memory_mb', 0):.1f} MB" + ("" if at_start is None else f" ({at_start:.1f} MB)")
            rows.append([name(r["arm"]), self.recipe(r), code(r["seed"]), code(r.get("config_hash", "")),
                         code(model.get("source", "none")),
                         code(identity or "–"), count(r.get("epochs", 0)), count(r.get("steps", 0)),
                         f"{r.get('wall_time_s', 0):.1f} s", memory, code(hardware), code(versions),
                         code((env.get("git_commit") or "")[:12])])
        return table(["Arm", "Recipe", "Seed", "Config hash", "Model source", "sha256 / revision", "Epochs", "Steps", "Wall time",
                      "Peak memory (at start)", "Hardware", "Libraries", "Git commit"], rows)

    def recipe(self, run: dict) -> str:
        """What a reader needs to reproduce the run: adapter, pooling, rates, batch (resolved as the run trained)."""
        spec = arm_spec(self.config, run["arm"], run.get("seed", 0), "")
        if spec.train is None:
            return "TF-IDF features, logistic regression"
        parts = [f"LoRA r {spec.model.lora.r}, alpha {spec.model.lora.alpha} on "
                 + ", ".join(code(m) for m in run.get("lora_target_modules") or []) if spec.method == "lora"
                 else "all weights"]
        parts += [f"{esc(spec.model.pooling)} pooling", f"lr {spec.train.learning_rate:g}"
                  + (f" (head {spec.train.head_learning_rate:g})" if spec.train.head_learning_rate else ""),
                  f"batch {spec.train.batch_size}"]
        return "; ".join(parts)

    # --- figures ---

    def _points(self, arms) -> str:
        """What one point of a per-arm curve is: the mean of the arm's seeds, or the one seed it has."""
        seeds = {arm: self.results["arms"][arm]["seeds"] for arm in arms}
        counts = {len(s) for s in seeds.values()}
        if counts == {1}:
            return "one training run (" + ", ".join(f"{name(a)} seed {s[0]}" for a, s in seeds.items()) + ")"
        if len(counts) == 1:
            return f"the mean of {counts.pop()} seeds"
        return "the mean of the arm's seeds (" + ", ".join(f"{name(a)} {len(s)}" for a, s in seeds.items()) + ")"

    def figures(self) -> dict[str, FigureSpec]:
        out = {}
        budget = self.findings.get("architecture.matched_budget")
        if budget:
            out["budget"] = FigureSpec(
                "validation_curves", "val_curves",
                f"Validation macro F1 against training examples seen; each point is {self._points(budget.facts['curves'])}"
                "; bars: ± one standard deviation over seeds; the dotted line is the largest budget both LoRA arms "
                "reached, where Section 1's matched-budget comparison reads them.",
                {"series": {name(arm): [(p["examples"], p["val_macro_f1"], p.get("sd")) for p in curve]
                            for arm, curve in budget.facts["curves"].items()},
                 "matched": budget.facts["examples"]})
        effects = {f.subjects[0]: f for f in self.findings.of_kind("effect")}
        if effects and self.has_tail:
            out["weighting"] = FigureSpec(
                "weighting_by_tier", "weighting_tiers",
                "Where class weighting changed macro F1: each tier's contribution (share of classes × change in the "
                "tier's mean F1); the bars of an arm add up to its Δ macro F1; point estimates, without intervals (Section "
                "2's table gives the totals' intervals).",
                {"tiers": self.tiers, "series": {name(arm): [f.q(f"{t}.contribution") or 0.0 for t in self.tiers]
                                                 for arm, f in effects.items()}})
        classes = (self.results.get("class_differences") or {}).get("classes", [])
        seed = (self.results.get("class_differences") or {}).get("seed")
        one_run = (f" (seed {seed} of each model, not the seed means of the tier table)" if seed is not None else
                   " (first seed)") if self.results["uncertainty"]["n_seeds"] > 1 else ""
        if classes:
            out["scatter"] = FigureSpec(
                "f1_encoder_vs_decoder", "f1_scatter",
                f"Per-class test F1{one_run}, encoder LoRA (x) vs decoder LoRA (y), by tier; a larger marker is several classes "
                "at the same point (count printed); the dashed line is equal F1.",
                {"x": [c["f1_a"] for c in classes], "y": [c["f1_b"] for c in classes],
                 "tiers": [c["tier"] for c in classes], "tier_names": self.tiers,
                 "x_label": "Encoder LoRA", "y_label": "Decoder LoRA"})
            out["by_count"] = FigureSpec(
                "f1_vs_train_count", "f1_vs_count", f"Per-class test F1{one_run} against training examples (log scale), with each model's least-squares "
                "line on log2(count) (describes the cross-class trend; not a causal effect) and the tier cut.",
                {"counts": [c["train_count"] for c in classes],
                 "thresholds": list(self.results["data"].get("tier_thresholds") or []) if self.has_tail else [],
                 "series": {"Encoder LoRA": [c["f1_a"] for c in classes], "Decoder LoRA": [c["f1_b"] for c in classes]}})
        models = (self.latency or {}).get("models", {})
        if models:
            merged = {arm: entry["variants"]["merged"] for arm, entry in models.items()}
            out["latency"] = FigureSpec(
                "latency", "latency", "Served models (LoRA merged): single-request p50 and p95, and batched throughput; "
                                      "both axes are logarithmic.",
                {"models": [name(arm) for arm in merged], "p50": [v["single"]["p50_ms"] for v in merged.values()],
                 "p95": [v["single"]["p95_ms"] for v in merged.values()],
                 "throughput": [max(b["examples_per_s"] for b in v["batched"]) for v in merged.values()]})
        return out
