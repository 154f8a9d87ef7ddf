//! `report.md` and a self-contained `report.html` (tables, inline SVG plots, the settings).

use crate::config::RunConfig;
use crate::plots;
use crate::run::{CellResult, RunSummary};
use anyhow::{anyhow, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Mean and (sample) standard deviation.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, 0.0);
    }
    let m = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// The mean of `xs` with `digits` decimals, ± their standard deviation where there are several.
fn mean_pm(xs: &[f64], digits: usize) -> String {
    let (m, s) = mean_std(xs);
    if xs.len() > 1 {
        format!("{m:.digits$} ± {s:.digits$}")
    } else {
        format!("{m:.digits$}")
    }
}

fn pm(xs: &[f64]) -> String {
    mean_pm(xs, 4)
}

/// [`pm`] for counts: whole numbers for one run.
fn pm_count(xs: &[f64]) -> String {
    mean_pm(xs, if xs.len() > 1 { 1 } else { 0 })
}

/// [`mean_pm`] over the runs that have the value (not NaN), or `-` where none has.
fn pm_known(xs: &[f64], digits: usize) -> String {
    let known: Vec<f64> = xs.iter().copied().filter(|x| !x.is_nan()).collect();
    if known.is_empty() {
        "-".into()
    } else {
        mean_pm(&known, digits)
    }
}

/// Cells that differ only by seed or fold, grouped: the rows of the ablation table.
pub struct Group<'a> {
    pub generator_ratio: f64,
    pub annotator_ratio: f64,
    pub samples_per_prompt: usize,
    pub generator_preset: Option<String>,
    /// The generator's name in `ablation.generators`.
    pub generator: Option<String>,
    pub hardened: Option<bool>,
    pub cells: Vec<&'a CellResult>,
}

pub fn groups(summary: &RunSummary) -> Vec<Group<'_>> {
    let mut map: BTreeMap<String, Group> = BTreeMap::new();
    for c in &summary.cells {
        let k = format!(
            "{:08.4}|{:08.4}|{:06}|{:?}|{:?}|{:?}",
            c.cell.generator_ratio, c.cell.annotator_ratio, c.cell.samples_per_prompt, c.cell.generator_preset, c.cell.generator, c.cell.hardened
        );
        map.entry(k)
            .or_insert_with(|| Group {
                generator_ratio: c.cell.generator_ratio,
                annotator_ratio: c.cell.annotator_ratio,
                samples_per_prompt: c.cell.samples_per_prompt,
                generator_preset: c.cell.generator_preset.clone(),
                generator: c.cell.generator.clone(),
                hardened: c.cell.hardened,
                cells: vec![],
            })
            .cells
            .push(c);
    }
    map.into_values().collect()
}

/// The key of `g` in `[reference]`: the value of the one setting that varies between groups,
/// written as in the config, or `"main"`.
pub fn reference_key(g: &Group, all: &[Group]) -> String {
    let varies = |f: &dyn Fn(&Group) -> String| all.iter().any(|o| f(o) != f(all.first().unwrap_or(g)));
    let settings: [&dyn Fn(&Group) -> String; 5] = [
        &|g| format!("{}", g.generator_ratio),
        &|g| format!("{}", g.annotator_ratio),
        &|g| g.samples_per_prompt.to_string(),
        &|g| g.generator.clone().or(g.generator_preset.clone()).unwrap_or_default(),
        &|g| hardened_label(g.hardened).to_string(),
    ];
    settings.iter().find(|f| varies(*f)).map_or("main".to_string(), |f| f(g))
}

fn hardened_label(h: Option<bool>) -> &'static str {
    match h {
        Some(true) => "hardened",
        Some(false) => "plain",
        None => "-",
    }
}

fn reference_cell(map: &BTreeMap<String, f64>, key: &str) -> String {
    map.get(key).map_or("-".to_string(), |v| format!("{v:.3}"))
}

fn col(g: &Group, f: impl Fn(&CellResult) -> f64) -> Vec<f64> {
    g.cells.iter().map(|c| f(c)).collect()
}

struct Svgs {
    per_label: String,
    ratio_f1: Option<String>,
    ratio_recall: Option<String>,
    /// Token F1 and n-gram recall per generator, when generators are compared.
    generators: Option<String>,
}

/// The cell the headline tables show: the one with the most data (highest generator ratio, then
/// annotator ratio, then samples per prompt), i.e. the paper's main setting in a ratio ablation;
/// among generators compared, `main_generator` (`ablation.main_generator`) where given.
pub fn main_cell<'a>(summary: &'a RunSummary, main_generator: Option<&str>) -> Option<&'a CellResult> {
    let is_main = |c: &CellResult| main_generator.is_some() && c.cell.generator.as_deref() == main_generator;
    summary.cells.iter().max_by(|a, b| {
        let key = |c: &CellResult| (c.cell.generator_ratio, c.cell.annotator_ratio, c.cell.samples_per_prompt as f64);
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
            // In a hardening ablation the plain corpus is the paper's setting; the hardened one stands beside it.
            .then(b.cell.hardened.unwrap_or(false).cmp(&a.cell.hardened.unwrap_or(false)))
            .then(is_main(a).cmp(&is_main(b)))
            .then(b.cell.name.cmp(&a.cell.name))
    })
}

/// The cell that differs from `c` in hardening only: the other corpus of the same generation.
pub fn hardening_twin<'a>(summary: &'a RunSummary, c: &CellResult) -> Option<&'a CellResult> {
    let h = c.cell.hardened?;
    summary.cells.iter().find(|o| {
        let (x, y) = (&o.cell, &c.cell);
        x.hardened == Some(!h)
            && (x.generator_ratio, x.annotator_ratio, x.samples_per_prompt, x.seed, x.fold) == (y.generator_ratio, y.annotator_ratio, y.samples_per_prompt, y.seed, y.fold)
            && (&x.generator_preset, &x.generator) == (&y.generator_preset, &y.generator)
    })
}

/// Writes `report.md`, `report.html` and the SVG plots into `out`.
pub fn write_report(out: &Path, cfg: &RunConfig, summary: &RunSummary, command: Option<&str>) -> Result<()> {
    let first = main_cell(summary, cfg.ablation.main_generator.as_deref()).ok_or_else(|| anyhow!("no cells to report"))?;
    let svgs = make_plots(first, summary);
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    let save = |name: &str, svg: &str| fsutil::atomic_write(&plots_dir.join(name), svg.as_bytes()).map_err(|e| anyhow!(e));
    save("per_label_f1.svg", &svgs.per_label)?;
    if let Some(s) = &svgs.ratio_f1 {
        save("f1_vs_generator_ratio.svg", s)?;
    }
    if let Some(s) = &svgs.ratio_recall {
        save("ngram_recall_vs_generator_ratio.svg", s)?;
    }
    if let Some(s) = &svgs.generators {
        save("generators.svg", s)?;
    }
    let mut md = markdown(cfg, summary, &svgs);
    // Right under the title: how to get this very report again, and which cells it did not run.
    let mut head = command.map_or(String::new(), |c| format!("Reproduce: `{c}`\n\n"));
    if !summary.earlier_cells.is_empty() {
        head.push_str(&format!(
            "Not run in this run but taken, as recorded then, from results whose stages have the same keys (the same computation): {}.\n\n",
            summary.earlier_cells.iter().map(|e| format!("{} (from `{}`)", e.cell, e.from)).collect::<Vec<_>>().join(", ")
        ));
    }
    let at = md.find("\n\n").map_or(md.len(), |i| i + 2);
    md.insert_str(at, &head);
    fsutil::atomic_write(&out.join("report.md"), md.as_bytes()).map_err(|e| anyhow!(e))?;
    let html = html(&md, &svgs, &summary.name);
    fsutil::atomic_write(&out.join("report.html"), html.as_bytes()).map_err(|e| anyhow!(e))?;
    Ok(())
}

fn make_plots(first: &CellResult, summary: &RunSummary) -> Svgs {
    let labels: Vec<String> = first.gold_ner.entity_strict.per_label.keys().cloned().collect();
    let f1 = |r: &eval::Report| labels.iter().map(|l| r.entity_strict.per_label.get(l).map_or(0.0, |s| s.f1)).collect::<Vec<_>>();
    let per_label = plots::grouped_bars(
        "Entity-strict F1 per label on the gold test set",
        &labels,
        &[("gold-trained NER", f1(&first.gold_ner)), ("synthetic-trained NER", f1(&first.synthetic_ner))],
    );
    let gs = groups(summary);
    let ratios: Vec<f64> = gs.iter().map(|g| g.generator_ratio).collect();
    let varied = ratios.iter().any(|r| (r - ratios[0]).abs() > 1e-9);
    let (ratio_f1, ratio_recall) = if varied {
        let line = |f: &dyn Fn(&CellResult) -> f64| -> Vec<(f64, f64, f64)> {
            gs.iter().map(|g| {
                let (m, s) = mean_std(&col(g, f));
                (g.generator_ratio * 100.0, m, s)
            }).collect()
        };
        let f1_plot = plots::lines(
            "Token F1 on the gold test set against the generator's data ratio",
            "generator data ratio (% of training documents)",
            "token F1",
            &[
                ("gold-trained NER".into(), line(&|c| c.gold_ner.token.micro.f1)),
                ("synthetic-trained NER".into(), line(&|c| c.synthetic_ner.token.micro.f1)),
            ],
            Some(1.0),
        );
        let mut recall_series = vec![("synthetic corpus".to_string(), line(&|c| c.audit.ngram_recall.recall))];
        if first.audit.ngram_recall_heldout.is_some() {
            recall_series.push(("real held-out documents".into(), line(&|c| c.audit.ngram_recall_heldout.as_ref().map_or(f64::NAN, |h| h.recall))));
        }
        let recall_plot = plots::lines("5-gram recall against the generator's data ratio", "generator data ratio (% of training documents)", "n-gram recall", &recall_series, None);
        (Some(f1_plot), Some(recall_plot))
    } else {
        (None, None)
    };
    let named: Vec<&Group> = gs.iter().filter(|g| g.generator.is_some()).collect();
    let generators = (named.len() > 1).then(|| {
        let labels: Vec<String> = named.iter().map(|g| g.generator.clone().unwrap_or_default()).collect();
        let mean = |f: &dyn Fn(&CellResult) -> f64| named.iter().map(|g| mean_std(&col(g, f)).0).collect::<Vec<_>>();
        plots::grouped_bars(
            "Token F1 on the gold test set and n-gram recall, per generator",
            &labels,
            &[
                ("gold-trained NER, token F1", mean(&|c| c.gold_ner.token.micro.f1)),
                ("synthetic-trained NER, token F1", mean(&|c| c.synthetic_ner.token.micro.f1)),
                ("n-gram recall of the synthetic corpus", mean(&|c| c.audit.ngram_recall.recall)),
            ],
        )
    });
    Svgs { per_label, ratio_f1, ratio_recall, generators }
}

fn markdown(cfg: &RunConfig, summary: &RunSummary, svgs: &Svgs) -> String {
    let mut md = String::new();
    let first = main_cell(summary, cfg.ablation.main_generator.as_deref()).expect("at least one cell");
    let _ = writeln!(md, "# synthdeid run: {}\n", summary.name);
    let _ = writeln!(
        md,
        "A gold-trained NER model (the *annotator*) and a generator were trained on gold documents; the generator wrote \
a synthetic corpus from {}-word prompts of held-out documents; the annotator labelled it; a second NER model was trained \
on the synthetic corpus only. Both NER models are scored on the real gold test set.\n",
        cfg.generation.prompt_words
    );
    let d = &first.data;
    let _ = writeln!(
        md,
        "Data (main setting): {} training documents ({} held out as prompts; generator on {}, annotator on {}), {} dev, {} test; \
{} synthetic documents with {} machine-annotated spans{}{}.\n",
        d.train_documents,
        d.prompt_documents,
        d.generator_documents,
        d.annotator_documents,
        d.dev_documents,
        d.test_documents,
        d.synthetic_documents,
        d.synthetic_spans,
        if d.words_per_document.synthetic > 0.0 {
            format!(
                "; {:.0} words per synthetic document, {:.0} per document the generator imitates",
                d.words_per_document.synthetic, d.words_per_document.gold
            )
        } else {
            String::new()
        },
        match (d.cut_at_max_new_tokens, d.dropped_unfinished) {
            (_, Some(n)) => format!(
                "; {n} more samples stopped at `generation.max_new_tokens` = {} before they ended and were left out (`generation.unfinished = \"drop\"`)",
                cfg.generation.max_new_tokens
            ),
            (Some(n), None) => format!(
                "; {n} of them ({:.1}%) stopped at `generation.max_new_tokens` = {} before they ended",
                100.0 * n as f64 / d.synthetic_documents.max(1) as f64,
                cfg.generation.max_new_tokens
            ),
            (None, None) => String::new(),
        }
    );

    let _ = writeln!(md, "## Gold-trained vs synthetic-trained NER (gold test set)\n");
    let gs = groups(summary);
    let main_group = gs.iter().find(|g| g.cells.iter().any(|c| c.cell.name == first.cell.name));
    if summary.cells.len() > 1 {
        let _ = writeln!(md, "Main setting: generator on {:.0}%, annotator on {:.0}% of the training documents, {} samples per prompt.\n", first.cell.generator_ratio * 100.0, first.cell.annotator_ratio * 100.0, first.cell.samples_per_prompt);
    }
    let reference = &cfg.reference;
    let main_key = main_group.map_or("main".to_string(), |g| reference_key(g, &gs));
    let has_ref = reference.gold_token_f1.contains_key(&main_key) || reference.synthetic_token_f1.contains_key(&main_key);
    if has_ref {
        let _ = writeln!(
            md,
            "Reference (token F1, {}): gold-trained {}, synthetic-trained {}.\n",
            reference.source,
            reference_cell(&reference.gold_token_f1, &main_key),
            reference_cell(&reference.synthetic_token_f1, &main_key)
        );
    }
    let _ = writeln!(md, "| metric | gold-trained | synthetic-trained | difference |\n|---|---:|---:|---:|");
    for g in main_group.iter() {
        for (name, f) in [
            ("token F1 (the paper's)", (|r: &eval::Report| r.token.micro.f1) as fn(&eval::Report) -> f64),
            ("entity-strict F1", |r: &eval::Report| r.entity_strict.micro.f1),
            ("span-merged F1", |r: &eval::Report| r.span_merged.micro.f1),
            ("entity-strict macro F1", |r: &eval::Report| r.entity_strict.macro_f1),
        ] {
            let gold = col(g, |c| f(&c.gold_ner));
            let syn = col(g, |c| f(&c.synthetic_ner));
            let diff: Vec<f64> = gold.iter().zip(&syn).map(|(a, b)| b - a).collect();
            let _ = writeln!(md, "| {name} | {} | {} | {} |", pm(&gold), pm(&syn), pm(&diff));
        }
    }
    let _ = writeln!(md, "\n### Per label (entity-strict F1, main setting)\n");
    let rates = &first.data.label_rates;
    if !rates.is_empty() {
        let _ = writeln!(
            md,
            "Spans per 1,000 words: in the generator's training documents (*imitated*) and in the synthetic corpus \
(*written*); a label the corpus under-represents gives the synthetic NER fewer examples.\n"
        );
    }
    let _ = writeln!(md, "| label | gold spans | gold-trained | synthetic-trained | difference | imitated | written | written / imitated |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, s) in &first.gold_ner.entity_strict.per_label {
        let syn = first.synthetic_ner.entity_strict.per_label.get(label).map_or(0.0, |x| x.f1);
        let (imitated, written, ratio) = match rates.get(label) {
            Some(r) if r.gold > 0.0 => (format!("{:.2}", r.gold), format!("{:.2}", r.synthetic), format!("{:.2}", r.synthetic / r.gold)),
            Some(r) => ("0".to_string(), format!("{:.2}", r.synthetic), "-".to_string()),
            None => ("-".to_string(), "-".to_string(), "-".to_string()),
        };
        let _ = writeln!(md, "| {label} | {} | {:.4} | {:.4} | {:+.4} | {imitated} | {written} | {ratio} |", s.tp + s.fn_, s.f1, syn, syn - s.f1);
    }
    let _ = writeln!(md, "\n![per-label F1](plots/per_label_f1.svg)\n");

    if summary.cells.len() > 1 {
        let _ = writeln!(md, "## Ablation ({} cells; mean ± standard deviation over seeds/folds)\n", summary.cells.len());
        if cfg.ablation.seeds.len() > 1 {
            let what = match cfg.ablation.reseed_from {
                crate::config::Reseed::Split => "every stage, from the prompt split on,",
                crate::config::Reseed::Generate => "the generation, hardening and synthetic NER; one annotator and one generator, on run.seed,",
                crate::config::Reseed::SyntheticNer => "the synthetic NER's training only; one synthetic corpus, on run.seed,",
            };
            let _ = writeln!(md, "Seeds {:?} redraw {what} as `ablation.reseed_from` asks. The gap is gold − synthetic token F1 in each run, then averaged.\n", cfg.ablation.seeds);
        }
        let refs = !cfg.reference.gold_token_f1.is_empty() || !cfg.reference.synthetic_token_f1.is_empty();
        if refs {
            let _ = writeln!(md, "Reference columns: {}.\n", cfg.reference.source);
        }
        let _ = writeln!(
            md,
            "| generator ratio | annotator ratio | samples/prompt | generator | corpus | runs | generator dev perplexity | samples cut at max_new_tokens | gold token F1 | synthetic token F1 | gap (token) |{} gold strict F1 | synthetic strict F1 | 5-gram recall | PHI strings leaked | membership AUC (n-gram coverage) | documents re-identifiable (≥ 2 own PHI strings) |",
            if refs { " reference gold token F1 | reference synthetic token F1 |" } else { "" }
        );
        let _ = writeln!(md, "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|{}---:|---:|---:|---:|---:|---:|", if refs { "---:|---:|" } else { "" });
        for g in &gs {
            let key = reference_key(g, &gs);
            let ref_cols = if refs {
                format!(" {} | {} |", reference_cell(&cfg.reference.gold_token_f1, &key), reference_cell(&cfg.reference.synthetic_token_f1, &key))
            } else {
                String::new()
            };
            let _ = writeln!(
                md,
                "| {:.0}% | {:.0}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |{ref_cols} {} | {} | {} | {} | {} | {} |",
                g.generator_ratio * 100.0,
                g.annotator_ratio * 100.0,
                g.samples_per_prompt,
                g.generator.as_deref().or(g.generator_preset.as_deref()).unwrap_or("-"),
                hardened_label(g.hardened),
                g.cells.len(),
                // Why a generator's corpus trains better or worse: how well it models the notes, and how
                // many samples ran past max_new_tokens (their sign-offs are missing).
                pm_known(&col(g, |c| c.generator_dev_perplexity.unwrap_or(f64::NAN)), 2),
                pm_known(&col(g, |c| c.data.cut_at_max_new_tokens.map_or(f64::NAN, |n| n as f64)), 0),
                pm(&col(g, |c| c.gold_ner.token.micro.f1)),
                pm(&col(g, |c| c.synthetic_ner.token.micro.f1)),
                pm(&col(g, |c| c.gold_ner.token.micro.f1 - c.synthetic_ner.token.micro.f1)),
                pm(&col(g, |c| c.gold_ner.entity_strict.micro.f1)),
                pm(&col(g, |c| c.synthetic_ner.entity_strict.micro.f1)),
                pm(&col(g, |c| c.audit.ngram_recall.recall)),
                pm(&col(g, |c| c.audit.leakage.share)),
                pm(&col(g, |c| c.audit.membership.as_ref().and_then(|m| m.attacks.first()).map_or(f64::NAN, |a| a.auc))),
                pm_count(&col(g, |c| c.audit.reidentification.as_ref().map_or(f64::NAN, |r| r.linked_2 as f64))),
            );
        }
        // A blank line ends the table before whatever follows.
        let _ = writeln!(md);
        if gs.iter().map(|g| g.generator.as_deref()).collect::<std::collections::BTreeSet<_>>().len() > 1 {
            let _ = writeln!(md, "Perplexity is per token of each generator's own vocabulary (a word for an n-gram): compare it between cells of one generator only.\n");
        }
        if svgs.ratio_f1.is_some() {
            let _ = writeln!(md, "![F1 against data ratio](plots/f1_vs_generator_ratio.svg)\n");
            let _ = writeln!(md, "![n-gram recall against data ratio](plots/ngram_recall_vs_generator_ratio.svg)\n");
        }
        if svgs.generators.is_some() {
            let _ = writeln!(md, "![per generator](plots/generators.svg)\n");
        }
    }

    let a = &first.audit;
    // The plain and the hardened corpus of one generation side by side, where the run made both.
    let twin = hardening_twin(summary, first);
    let corpora: Vec<&CellResult> = std::iter::once(first).chain(twin).collect();
    let corpus_name = |c: &CellResult| if c.cell.hardened == Some(true) { "hardened synthetic corpus" } else { "synthetic corpus" };
    let _ = writeln!(md, "## Privacy audit (main setting)\n");
    let names: Vec<&str> = corpora.iter().map(|c| corpus_name(c)).collect();
    let _ = writeln!(md, "| measure | {} | real held-out documents (baseline) |\n|---|{}---:|", names.join(" | "), "---:|".repeat(names.len()));
    let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    let cells = |f: &dyn Fn(&audit::AuditReport) -> String| corpora.iter().map(|c| f(&c.audit)).collect::<Vec<_>>().join(" | ");
    let held = a.ngram_recall_heldout.as_ref().map_or("-".into(), |h| format!("{:.4}", h.recall));
    let _ = writeln!(md, "| {}-gram recall vs the generator's training text | {} | {held} |", a.ngram_recall.n, cells(&|x| format!("{:.4}", x.ngram_recall.recall)));
    let held_leak = a.leakage_heldout.as_ref().map_or("-".into(), |h| format!("{} of {} ({:.1}%)", h.leaked, h.distinct, 100.0 * h.share));
    let _ = writeln!(
        md,
        "| distinct training PHI strings found verbatim | {} | {held_leak} |",
        cells(&|x| format!("{} of {} ({:.1}%)", x.leakage.leaked, x.leakage.distinct, 100.0 * x.leakage.share))
    );
    let held_unique = a.leakage_heldout.as_ref().map_or("-".into(), |h| format!("{} of {} ({:.1}%)", h.unique_leaked, h.unique, pct(h.unique_leaked, h.unique)));
    let _ = writeln!(
        md,
        "| … of them unique to one training document (the identifying ones) | {} | {held_unique} |",
        cells(&|x| format!("{} of {} ({:.1}%)", x.leakage.unique_leaked, x.leakage.unique, pct(x.leakage.unique_leaked, x.leakage.unique)))
    );
    let rows = a.evidence_rows();
    let others: Vec<Vec<audit::Row>> = corpora[1..].iter().map(|c| c.audit.evidence_rows()).collect();
    for (i, r) in rows.iter().enumerate() {
        let more: String = others.iter().map(|o| format!(" | {}", o.get(i).filter(|x| x.measure == r.measure).map_or("-", |x| x.synthetic.as_str()))).collect();
        let _ = writeln!(md, "| {} | {}{more} | {} |", r.measure, r.synthetic, r.baseline);
    }
    if !rows.is_empty() {
        let _ = writeln!(md, "\nWhat the measures mean:\n");
        let _ = writeln!(md, "- n-gram recall (the paper's measure): the share of the synthetic corpus's word n-grams found in the generator's training text.");
        for r in &rows {
            let _ = writeln!(md, "- {}: {}", r.measure, r.meaning);
        }
    }
    let _ = writeln!(
        md,
        "\nn-gram recall alone hides memorisation: a generator can write text whose n-grams look no more copied than real \
unseen documents while reproducing the training set's PHI strings verbatim. Per label:\n"
    );
    let _ = writeln!(md, "| label | distinct training strings | in synthetic | in held-out |\n|---|---:|---:|---:|");
    for (label, e) in &a.leakage.per_label {
        let h = a.leakage_heldout.as_ref().and_then(|h| h.per_label.get(label)).map_or("-".into(), |x| format!("{} ({:.1}%)", x.leaked, 100.0 * x.share));
        let _ = writeln!(md, "| {label} | {} | {} ({:.1}%) | {h} |", e.distinct, e.leaked, 100.0 * e.share);
    }
    if !a.nearest.is_empty() {
        let _ = writeln!(md, "\nSynthetic documents closest to a training document (longest shared substring):\n");
        let _ = writeln!(md, "| synthetic | training | shared characters | share of the synthetic document |\n|---|---|---:|---:|");
        for m in &a.nearest {
            let _ = writeln!(md, "| {} | {} | {} | {:.1}% |", m.synthetic_id, m.training_id, m.length, 100.0 * m.share_of_document);
        }
    }
    if let Some(c) = &first.canaries {
        let _ = writeln!(
            md,
            "\n## Canaries\n\nMade-up records (a training note's wording with surrogate PHI and a random reference code) were planted \
in the generator's training documents, each 1 or more times; as many reference canaries were made the same way and never planted \
(repetitions 0). What the synthetic corpus gives away of them:\n"
        );
        // With the hardened twin: each corpus's figure, "plain / hardened" (the generator, hence the exposure, is one).
        let twin_c = twin.and_then(|t| t.canaries.as_ref());
        if twin_c.is_some() {
            let _ = writeln!(md, "Two figures in a cell: the {} / the {}.\n", names[0], names[1]);
        }
        let _ = writeln!(md, "| times planted | canaries | their PHI strings found verbatim (mean share) | secret codes found | longest passage shared with one synthetic document (mean share of the canary) | secret's exposure under the generator (mean bits) |\n|---:|---:|---:|---:|---:|---:|");
        for r in &c.by_repetitions {
            let bits = r.mean_exposure_bits.map_or("–".to_string(), |b| format!("{b:.2}"));
            let t = twin_c.and_then(|t| t.by_repetitions.iter().find(|x| x.repetitions == r.repetitions));
            let (phi, secrets, longest) = match t {
                Some(t) => (
                    format!("{:.3} / {:.3}", r.phi_found_share, t.phi_found_share),
                    format!("{} / {}", r.secrets_found, t.secrets_found),
                    format!("{:.3} / {:.3}", r.longest_shared_share, t.longest_shared_share),
                ),
                None => (format!("{:.3}", r.phi_found_share), r.secrets_found.to_string(), format!("{:.3}", r.longest_shared_share)),
            };
            let _ = writeln!(md, "| {} | {} | {phi} | {secrets} | {longest} | {bits} |", r.repetitions, r.canaries);
        }
        if c.by_repetitions.iter().any(|r| r.mean_exposure_bits.is_some()) {
            let _ = writeln!(
                md,
                "\nExposure: the rank of a canary's secret code among {} random codes of its form by the generator's likelihood after the canary's \
last words, log2({}) − log2(rank) bits: about 1 for a code the generator never saw (the reference canaries), {:.1} for one it gives away.",
                crate::canary::LIKELIHOOD_CANDIDATES,
                crate::canary::LIKELIHOOD_CANDIDATES + 1,
                crate::canary::exposure_bits(1.0)
            );
        }
        let attacks = c.membership.attacks.iter().map(|a| (names[0], a)).chain(twin_c.into_iter().flat_map(|t| t.membership.attacks.iter().map(|a| (names[1], a))));
        for (corpus, a) in attacks {
            let _ = writeln!(
                md,
                "\nMembership inference, planted against reference canaries, {corpus} ({}): AUC {:.3} [{:.3}, {:.3}], TPR at 1% FPR {:.3} (0.5 and 0.01: the planted ones cannot be told apart).",
                a.name.replace('_', " "),
                a.auc,
                a.auc_low,
                a.auc_high,
                a.tpr_at_1pct_fpr
            );
        }
    }
    if let Some(h) = first.hardening.as_ref().or(twin.and_then(|t| t.hardening.as_ref())) {
        let _ = writeln!(
            md,
            "\n## Hardening\n\nEvery machine-annotated span of the synthetic corpus was replaced by a surrogate (never a training PHI \
string) before the synthetic NER trained on it. What remains comes from PHI the annotator missed, and from kinds kept on \
purpose (sex, kinship words, `hardening.keep`) or as common (`hardening.keep_common_min_documents`: {} spans). {} spans \
replaced; {} dates did not parse (digits replaced). \"Unique\" strings occur in one training document only: those are the \
ones that can point at a patient.\n",
            h.kept_common, h.stats.spans, h.stats.dates_unparsed
        );
        if let Some(w) = &h.corpus_vocab {
            let lists: Vec<String> = w.iter().map(|(list, n)| format!("{n} {list}")).collect();
            let _ = writeln!(
                md,
                "Surrogates were drawn from the language's lists widened with the synthetic corpus's own strings (`hardening.surrogates = \"corpus\"`), none sharing a word with the PHI of fewer training documents than `hardening.keep_common_min_documents` (of any, where it is 0): {}.\n",
                lists.join(", ")
            );
        }
        let _ = writeln!(md, "| label | training strings | leaked before | leaked after | unique strings | unique leaked before | unique leaked after | spans still a training string |\n|---|---:|---:|---:|---:|---:|---:|---:|");
        for (label, before) in &h.leakage_before.per_label {
            let after = h.leakage_after.per_label.get(label).cloned().unwrap_or_default();
            let still = h.replaced_spans_still_training_phi.get(label).copied().unwrap_or(0);
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} | {} | {} | {} | {still} |",
                before.distinct, before.leaked, after.leaked, before.unique, before.unique_leaked, after.unique_leaked
            );
        }
        let (b, a) = (&h.leakage_before, &h.leakage_after);
        let _ = writeln!(
            md,
            "| all | {} | {} | {} | {} | {} | {} | {} |",
            b.distinct, b.leaked, a.leaked, b.unique, b.unique_leaked, a.unique_leaked, h.replaced_spans_still_training_phi.values().sum::<usize>()
        );
    }

    // Shards and backend: what produced each stage's files (its provenance.json; "-" for a stage
    // finished by a synthdeid that did not record it).
    let _ = writeln!(md, "\n## Timings (main setting)\n\n| stage | seconds | cached | shards | backend |\n|---|---:|---|---:|---|");
    for t in &first.timings {
        let shards = t.shards.map_or("-".to_string(), |n| n.to_string());
        let backend = t.backend.as_deref().unwrap_or("-");
        let _ = writeln!(md, "| {} | {:.1} | {} | {shards} | {backend} |", t.stage, t.seconds, if t.cached { "yes" } else { "no" });
    }
    let budget_stopped: Vec<String> = summary
        .cells
        .iter()
        .flat_map(|c| {
            [(c.annotator_stopped_by_budget, "annotator"), (c.synthetic_ner_stopped_by_budget, "synthetic NER")]
                .into_iter()
                .filter(|(s, _)| *s == Some(true))
                .map(move |(_, n)| format!("{n} of {}", c.cell.name))
        })
        .collect();
    if !budget_stopped.is_empty() {
        let _ = writeln!(md, "\nTraining stopped at `optimizer.max_minutes` before its last epoch, or had its learning-rate schedule shortened to fit it: {} time(s) ({}); those scores depend on the machine's speed and load.", budget_stopped.len(), budget_stopped.join(", "));
    }
    if let Some(p) = first.generator_dev_perplexity {
        let cut = if first.generator_stopped_by_budget == Some(true) { " (training stopped at `generator.max_minutes` before its last epoch ended)" } else { "" };
        let _ = writeln!(md, "\nGenerator dev perplexity: {p:.2}{cut}");
    }
    let _ = writeln!(md, "\n## Settings\n\n```toml\n{}```", toml::to_string_pretty(cfg).unwrap_or_default());
    md
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A small Markdown-to-HTML for what `markdown` writes: headings, tables, code blocks, images
/// (inlined SVG), paragraphs.
/// Markdown emphasis in escaped text: `**x**` → `<strong>`, `*x*` → `<em>`, `` `x` `` → `<code>`;
/// a marker without its closing twin stays as written.
fn inline(text: &str) -> String {
    let mut out = text.to_string();
    for (mark, tag) in [("**", "strong"), ("*", "em"), ("`", "code")] {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(a) = rest.find(mark) {
            let after = &rest[a + mark.len()..];
            match after.find(mark) {
                Some(b) if b > 0 => {
                    result.push_str(&rest[..a]);
                    let _ = write!(result, "<{tag}>{}</{tag}>", &after[..b]);
                    rest = &after[b + mark.len()..];
                }
                _ => break,
            }
        }
        result.push_str(rest);
        out = result;
    }
    out
}

fn html(md: &str, svgs: &Svgs, title: &str) -> String {
    let mut body = String::new();
    let mut in_code = false;
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with("```") {
            body.push_str(if in_code { "</pre>\n" } else { "<pre>" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            body.push_str(&escape(line));
            body.push('\n');
            continue;
        }
        if line.starts_with('|') {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')) {
                continue;
            }
            if !in_table {
                body.push_str("<table><tr>");
                for c in &cells {
                    let _ = write!(body, "<th>{}</th>", escape(c));
                }
                body.push_str("</tr>\n");
                in_table = true;
            } else {
                body.push_str("<tr>");
                for c in &cells {
                    let _ = write!(body, "<td>{}</td>", escape(c));
                }
                body.push_str("</tr>\n");
            }
            continue;
        }
        if in_table {
            body.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("### ") {
            let _ = writeln!(body, "<h3>{}</h3>", escape(h));
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(body, "<h2>{}</h2>", escape(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(body, "<h1>{}</h1>", escape(h));
        } else if line.starts_with("![") {
            let svg = if line.contains("per_label") {
                Some(&svgs.per_label)
            } else if line.contains("f1_vs") {
                svgs.ratio_f1.as_ref()
            } else if line.contains("generators.svg") {
                svgs.generators.as_ref()
            } else {
                svgs.ratio_recall.as_ref()
            };
            if let Some(svg) = svg {
                let _ = writeln!(body, "<figure>{svg}</figure>");
            }
        } else if !line.trim().is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(&escape(line)));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>synthdeid: {}</title>\n<style>\
body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
td:first-child,th:first-child{{text-align:left}}th{{background:#f3f3f3}}pre{{background:#f7f7f7;padding:1em;overflow:auto}}\
figure{{margin:1em 0}}</style></head><body>\n{}</body></html>\n",
        escape(title),
        body
    )
}
