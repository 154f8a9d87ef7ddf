//! Executes a run config: for every ablation cell, the stages in order, each through the stage
//! cache; then the report.

use crate::cache::{docs_hash, run_stage, run_stage_recorded, Produced, StageKey, StageTiming};
use crate::config::{Reseed, RunConfig};
use crate::report;
use anyhow::{anyhow, bail, Context, Result};
use corpus::split::{k_fold, prompt_split, take_fraction, Purpose};
use corpus::{read_corpus, write_corpus, Document, Format, ReadOptions};
use ner::TaggerSpec;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The stages, in order.
pub const STAGES: [&str; 9] = ["annotator", "generator", "generate", "annotate", "harden", "synthetic_ner", "evaluate", "audit", "report"];

/// How to run (not what: that is the config).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub out: PathBuf,
    /// Stages to rerun even if cached.
    pub force: Vec<String>,
    /// Stop with an error after this many prompt documents were generated (simulates a kill,
    /// for the resume test).
    pub stop_after_prompts: Option<usize>,
    /// Print stage progress lines on stderr.
    pub verbose: bool,
    /// Where training and generation report how far they are (silent by default).
    pub progress: progress::Handle,
    /// Where finished stages are kept (default `OUT/stages`): runs of different configs that
    /// share it reuse each other's stages with the same settings and inputs.
    pub cache: Option<PathBuf>,
    /// The command that reproduces the run, written at the top of its report, without `--cell`:
    /// [`run`] adds one per reported cell when the report covers part of the grid.
    pub command: Option<String>,
    /// Shard processes of the generate and annotate stages (None: `run.shards` of the config).
    pub shards: Option<usize>,
    /// The synthdeid binary, which runs a shard as `EXE stage-shard TASK --shard I/N`
    /// ([`crate::shards`]); without it (the library on its own) the shards run one after another
    /// in this process, with the same output.
    pub worker: Option<PathBuf>,
    /// Run only the cells of these names (empty: every cell of the grid). The others are reported
    /// from results recorded with the same stage keys: `OUT`'s earlier run, then `results_from`.
    pub cells: Vec<String>,
    /// Result directories (`summary.json` or `results.json`) to take cells from that this run
    /// does not run; only with `cells`.
    pub results_from: Vec<PathBuf>,
}

/// One cell of an ablation grid (a plain run is one cell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub name: String,
    pub generator_ratio: f64,
    pub annotator_ratio: f64,
    pub samples_per_prompt: usize,
    pub generator_preset: Option<String>,
    /// The generator's name in `ablation.generators` (None: the `[generator]` section).
    #[serde(default)]
    pub generator: Option<String>,
    /// Hardening on or off by `ablation.hardening` (None: as `[hardening]` says).
    #[serde(default)]
    pub hardened: Option<bool>,
    pub seed: u64,
    /// k-fold: (fold index, k).
    pub fold: Option<(usize, usize)>,
}

/// Sizes of the data a cell used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CellData {
    pub train_documents: usize,
    pub prompt_documents: usize,
    pub generator_documents: usize,
    pub annotator_documents: usize,
    pub dev_documents: usize,
    pub test_documents: usize,
    pub synthetic_documents: usize,
    pub synthetic_spans: usize,
    /// Per label, how often the generator's training documents and the synthetic corpus hold
    /// one: what a synthetic NER can learn of each label (empty in results written before it).
    #[serde(default)]
    pub label_rates: BTreeMap<String, LabelRate>,
    /// Mean words (whitespace-separated) per document: the generator's training documents and
    /// the synthetic corpus (samples cut at `max_new_tokens` come out short; 0 in older results).
    #[serde(default)]
    pub words_per_document: LabelRate,
    /// Synthetic documents that stopped at `generation.max_new_tokens` before they ended (None:
    /// not known, e.g. a stage from an earlier synthdeid; the n-gram generator counts words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_at_max_new_tokens: Option<usize>,
    /// Of those, the ones left out of the synthetic corpus (`generation.unfinished = "drop"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_unfinished: Option<usize>,
}

/// Spans of one label per 1,000 words (whitespace-separated) in two corpora; also a pair of any
/// measure of the two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelRate {
    /// In the generator's training documents (what it imitates).
    pub gold: f64,
    /// In the machine-annotated synthetic corpus.
    pub synthetic: f64,
}

/// [`LabelRate`]s of every label in either corpus.
pub fn label_rates(gold: &[Document], synthetic: &[Document]) -> BTreeMap<String, LabelRate> {
    fn rates(docs: &[Document]) -> BTreeMap<String, f64> {
        let words: usize = docs.iter().map(|d| d.text.split_whitespace().count()).sum();
        let mut n: BTreeMap<String, f64> = BTreeMap::new();
        for s in docs.iter().flat_map(|d| &d.spans) {
            *n.entry(s.label.clone()).or_default() += 1.0;
        }
        n.values_mut().for_each(|v| *v *= 1000.0 / words.max(1) as f64);
        n
    }
    let (g, s) = (rates(gold), rates(synthetic));
    g.keys()
        .chain(s.keys())
        .map(|l| (l.clone(), LabelRate { gold: g.get(l).copied().unwrap_or(0.0), synthetic: s.get(l).copied().unwrap_or(0.0) }))
        .collect()
}

fn mean_words(docs: &[Document]) -> f64 {
    docs.iter().map(|d| d.text.split_whitespace().count()).sum::<usize>() as f64 / docs.len().max(1) as f64
}

/// `results.json` of a cell: the two NER entries have the shape of `synthdeid evaluate --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: Cell,
    pub gold_ner: eval::Report,
    pub synthetic_ner: eval::Report,
    pub audit: audit::AuditReport,
    /// With hardening: what the surrogates replaced, and what real PHI still remains.
    pub hardening: Option<HardeningReport>,
    pub data: CellData,
    pub generator_dev_perplexity: Option<f64>,
    /// Whether `generator.max_minutes` stopped the generator's training before its last epoch ended
    /// (None: no training, or results from before this was recorded).
    #[serde(default)]
    pub generator_stopped_by_budget: Option<bool>,
    /// Whether `optimizer.max_minutes` stopped the annotator's / the synthetic NER's training
    /// before its last epoch, or shortened its learning-rate schedule (None: no record, e.g. a
    /// perceptron): then its score depends on the machine's speed and load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotator_stopped_by_budget: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_ner_stopped_by_budget: Option<bool>,
    pub timings: Vec<StageTiming>,
    /// With `[canaries]`: what the synthetic corpus gives away of the planted records.
    #[serde(default)]
    pub canaries: Option<crate::canary::CanaryReport>,
}

/// What `synthdeid run` returns and writes to `OUT/summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub cells: Vec<CellResult>,
    /// Cells of `cells` that this run did not run: taken, as recorded then, from results with
    /// the same stage keys (an earlier run in the same directory, or `--results-from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_cells: Vec<EarlierCell>,
}

/// A cell a run reports without running it, and the directory whose results it was taken from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlierCell {
    pub cell: String,
    pub from: String,
}

struct Data {
    train: Vec<Document>,
    dev: Vec<Document>,
    test: Vec<Document>,
}

fn read_data(cfg: &RunConfig) -> Result<Data> {
    Ok(Data {
        train: read(&cfg.data.train)?,
        dev: cfg.data.dev.as_deref().map(read).transpose()?.unwrap_or_default(),
        test: cfg.data.test.as_deref().map(read).transpose()?.unwrap_or_default(),
    })
}

fn read(path: &Path) -> Result<Vec<Document>> {
    read_corpus(path, None, &ReadOptions::default()).map_err(|e| anyhow!(e))
}

fn write(path: &Path, format: Option<Format>, docs: &[Document]) -> Result<()> {
    write_corpus(path, format, docs).map_err(|e| anyhow!(e))
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    fsutil::atomic_write(path, serde_json::to_string_pretty(value)?.as_bytes()).map_err(|e| anyhow!(e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    serde_json::from_str(&std::fs::read_to_string(path).with_context(|| path.display().to_string())?).with_context(|| path.display().to_string())
}

/// The cells of the config's ablation grid (one cell without a grid).
pub fn cells(cfg: &RunConfig) -> Vec<Cell> {
    let a = &cfg.ablation;
    let max_ratio = 1.0 - cfg.data.prompt_ratio;
    let or = |v: &Vec<f64>, d: Option<f64>| if v.is_empty() { vec![d.unwrap_or(max_ratio)] } else { v.clone() };
    let gen_ratios = or(&a.generator_ratio, cfg.data.generator_ratio);
    let ann_ratios = or(&a.annotator_ratio, cfg.data.annotator_ratio);
    let samples = if a.samples_per_prompt.is_empty() { vec![cfg.generation.samples_per_prompt] } else { a.samples_per_prompt.clone() };
    let presets: Vec<Option<String>> = if a.generator_preset.is_empty() { vec![None] } else { a.generator_preset.iter().cloned().map(Some).collect() };
    let generators: Vec<Option<String>> = if a.generators.is_empty() { vec![None] } else { a.generators.keys().cloned().map(Some).collect() };
    let hardening: Vec<Option<bool>> = if a.hardening.is_empty() { vec![None] } else { a.hardening.iter().copied().map(Some).collect() };
    let seeds = if a.seeds.is_empty() { vec![cfg.run.seed] } else { a.seeds.clone() };
    let folds: Vec<Option<(usize, usize)>> = if a.folds >= 2 { (0..a.folds).map(|f| Some((f, a.folds))).collect() } else { vec![None] };
    let mut out = Vec::new();
    for &g in &gen_ratios {
        for &r in &ann_ratios {
            for &s in &samples {
                for p in &presets {
                    for generator in &generators {
                        for &hardened in &hardening {
                            for &seed in &seeds {
                                for &fold in &folds {
                                    let mut name = format!("gen{:.0}-ann{:.0}-spp{s}", g * 100.0, r * 100.0);
                                    if let Some(p) = p.as_ref().or(generator.as_ref()) {
                                        name.push_str(&format!("-{p}"));
                                    }
                                    if let Some(h) = hardened {
                                        name.push_str(if h { "-hardened" } else { "-plain" });
                                    }
                                    name.push_str(&format!("-seed{seed}"));
                                    if let Some((f, k)) = fold {
                                        name.push_str(&format!("-fold{}of{k}", f + 1));
                                    }
                                    out.push(Cell {
                                        name,
                                        generator_ratio: g,
                                        annotator_ratio: r,
                                        samples_per_prompt: s,
                                        generator_preset: p.clone(),
                                        generator: generator.clone(),
                                        hardened,
                                        seed,
                                        fold,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// Runs every cell of `cfg` and writes the report. The first cell's synthetic corpus, models and
/// `results.json` are also placed at the top of `OUT` when the grid has one cell.
pub fn run(cfg: &RunConfig, opts: &RunOptions) -> Result<RunSummary> {
    for f in &opts.force {
        if !STAGES.contains(&f.as_str()) {
            bail!("--force {f}: no such stage; stages are {}", STAGES.join(", "));
        }
    }
    let out = &opts.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let recorded = recorded_elsewhere(opts)?;
    fsutil::atomic_write(&out.join("config.resolved.toml"), toml::to_string_pretty(cfg)?.as_bytes()).map_err(|e| anyhow!(e))?;
    write_json(&out.join("versions.json"), &versions())?;
    let data = read_data(cfg)?;
    let all = select_cells(cells(cfg), &opts.cells)?;
    let stages_root = opts.cache.clone().unwrap_or_else(|| out.join("stages"));
    let mut results = Vec::new();
    for (i, cell) in all.iter().enumerate() {
        if opts.verbose {
            eprintln!("== cell {}/{}: {}", i + 1, all.len(), cell.name);
        }
        let (result, synthetic) = run_cell(cfg, cell, &data, &stages_root, opts)?;
        let cell_dir = out.join("cells").join(&cell.name);
        std::fs::create_dir_all(&cell_dir)?;
        write_json(&cell_dir.join("results.json"), &result)?;
        export_synthetic(&cell_dir, &synthetic)?;
        if all.len() == 1 {
            export_synthetic(out, &synthetic)?;
        }
        results.push(result);
    }
    // In grid order: this run's cells, and recorded results of the others.
    let taken = taken_cells(cfg, &data, &all, &recorded)?;
    let (mut reported, mut earlier_cells) = (Vec::new(), Vec::new());
    for c in cells(cfg) {
        if let Some(r) = results.iter().find(|r| r.cell == c) {
            reported.push(r.clone());
        } else if let Some((_, (r, from))) = taken.iter().find(|(t, _)| *t == c) {
            reported.push(CellResult { cell: c.clone(), ..r.clone() });
            earlier_cells.push(EarlierCell { cell: c.name.clone(), from: from.clone() });
        }
    }
    if opts.verbose && !earlier_cells.is_empty() {
        eprintln!("the report also holds {} cell(s) from earlier results with the same stage keys:", earlier_cells.len());
        for e in &earlier_cells {
            eprintln!("   {} (from {})", e.cell, e.from);
        }
    }
    let summary = RunSummary { name: cfg.run.name.clone(), cells: reported, earlier_cells };
    if let [only] = summary.cells.as_slice() {
        write_json(&out.join("results.json"), only)?;
    } else {
        // A one-cell run's results.json left in OUT no longer describes it.
        let _ = std::fs::remove_file(out.join("results.json"));
    }
    write_json(&out.join("summary.json"), &summary)?;
    let names: Vec<&str> = summary.cells.iter().map(|r| r.cell.name.as_str()).collect();
    let command = opts.command.as_ref().map(|c| reproduce_command(c, &opts.out.display().to_string(), &names, &summary.earlier_cells, cells(cfg).len()));
    report::write_report(out, cfg, &summary, command.as_deref())?;
    Ok(summary)
}

/// Results a `--cell` run may report for the cells it does not run, each with the directory it
/// was made in: `OUT`'s earlier run (its cells that came from elsewhere keep their origin), then
/// each of `opts.results_from`.
fn recorded_elsewhere(opts: &RunOptions) -> Result<Vec<(CellResult, String)>> {
    if opts.cells.is_empty() {
        if let Some(d) = opts.results_from.first() {
            bail!("--results-from {}: only with --cell (the cells not named are taken from there)", d.display());
        }
        return Ok(Vec::new());
    }
    let mut recorded = Vec::new();
    let out = opts.out.display().to_string();
    match read_recorded(&opts.out) {
        Ok(Some(s)) => recorded.extend(s.cells.into_iter().map(|r| {
            let from = s.earlier_cells.iter().find(|e| e.cell == r.cell.name).map_or(out.clone(), |e| e.from.clone());
            (r, from)
        })),
        Ok(None) => {}
        // Only what this run adds to: the run goes on and reports its own cells.
        Err(e) => eprintln!("note: {e:#}: the report leaves out the cells recorded there"),
    }
    for dir in &opts.results_from {
        let s = read_recorded(dir)?.with_context(|| format!("--results-from {}: no summary.json or results.json there", dir.display()))?;
        recorded.extend(s.cells.into_iter().map(|r| (r, dir.display().to_string())));
    }
    Ok(recorded)
}

/// The results recorded in a run directory: its `summary.json`, else its one-cell `results.json`.
fn read_recorded(dir: &Path) -> Result<Option<RunSummary>> {
    let (summary, single) = (dir.join("summary.json"), dir.join("results.json"));
    if summary.is_file() {
        return read_json(&summary).map(Some);
    }
    if single.is_file() {
        let r: CellResult = read_json(&single)?;
        return Ok(Some(RunSummary { name: String::new(), cells: vec![r], earlier_cells: Vec::new() }));
    }
    Ok(None)
}

/// The grid's cells other than `chosen` that `recorded` holds, in grid order, each with the
/// recorded result whose stages have the keys the cell's stages have here: the same computation,
/// whatever the config or the cell was called when it ran.
fn taken_cells<'a>(cfg: &RunConfig, data: &Data, chosen: &[Cell], recorded: &'a [(CellResult, String)]) -> Result<Vec<(Cell, &'a (CellResult, String))>> {
    let mut taken = Vec::new();
    if recorded.is_empty() {
        return Ok(taken);
    }
    for c in cells(cfg).into_iter().filter(|c| !chosen.contains(c)) {
        let keys = plan_cell(cfg, &c, data)?.keys();
        if let Some(r) = recorded.iter().find(|(r, _)| r.timings.iter().map(|t| (t.stage.clone(), t.key.clone())).collect::<BTreeMap<_, _>>() == keys) {
            taken.push((c, r));
        }
    }
    Ok(taken)
}

/// The cells of `cfg` a run with `opts` would take from recorded results, and from where
/// (`--dry-run`).
pub fn earlier_cells(cfg: &RunConfig, opts: &RunOptions) -> Result<Vec<EarlierCell>> {
    let recorded = recorded_elsewhere(opts)?;
    if recorded.is_empty() {
        return Ok(Vec::new());
    }
    let chosen = select_cells(cells(cfg), &opts.cells)?;
    let taken = taken_cells(cfg, &read_data(cfg)?, &chosen, &recorded)?;
    Ok(taken.into_iter().map(|(c, (_, from))| EarlierCell { cell: c.name, from: from.clone() }).collect())
}

/// `command` (without `--cell`) with what reproduces a report of the cells `reported`, of which
/// `earlier` were taken from recorded results: a `--cell` for each cell run in `out` (none when
/// they are the whole grid), a `--results-from` for each other directory used, once each.
fn reproduce_command(command: &str, out: &str, reported: &[&str], earlier: &[EarlierCell], grid: usize) -> String {
    let from = |name: &str| earlier.iter().find(|e| e.cell == name).map(|e| e.from.as_str());
    let here: Vec<&str> = reported.iter().copied().filter(|n| from(n).is_none_or(|f| f == out)).collect();
    let mut elsewhere: Vec<&str> = Vec::new();
    for e in earlier.iter().filter(|e| e.from != out) {
        if !elsewhere.contains(&e.from.as_str()) {
            elsewhere.push(&e.from);
        }
    }
    let mut c = command.to_string();
    if here.len() < grid {
        for n in here {
            c.push_str(&format!(" --cell {n}"));
        }
    }
    for d in elsewhere {
        c.push_str(&format!(" --results-from {d}"));
    }
    c
}

fn versions() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("synthdeid", env!("CARGO_PKG_VERSION").to_string()),
        ("target", std::env::consts::ARCH.to_string()),
        ("os", std::env::consts::OS.to_string()),
    ])
}

/// The cells named in `names` (all of them when it is empty), in grid order; a name that is no
/// cell of the grid is an error listing those that are.
pub fn select_cells(all: Vec<Cell>, names: &[String]) -> Result<Vec<Cell>> {
    if let Some(n) = names.iter().find(|n| !all.iter().any(|c| &c.name == *n)) {
        bail!("--cell {n}: no such cell; the config's cells are {}", all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "));
    }
    Ok(all.into_iter().filter(|c| names.is_empty() || names.contains(&c.name)).collect())
}

/// Share of the whole training set → share of the non-prompt pool.
fn pool_ratio(ratio: f64, prompt_ratio: f64) -> f64 {
    (ratio / (1.0 - prompt_ratio)).min(1.0)
}

/// Each cached stage and the stages whose output it reads.
const STAGE_INPUTS: [(&str, &[&str]); 8] = [
    ("annotator", &[]),
    ("generator", &[]),
    ("generate", &["generator"]),
    ("annotate", &["annotator", "generate"]),
    ("harden", &["annotate"]),
    ("synthetic_ner", &["annotate", "harden"]),
    ("evaluate", &["annotator", "synthetic_ner"]),
    ("audit", &["generator", "annotate", "harden"]),
];

/// The stages `--force` reruns: those named and every stage that reads their output, since a
/// stage's cache key names its inputs' settings, not their content.
fn forced_stages(named: &[String]) -> std::collections::BTreeSet<&'static str> {
    let mut forced: std::collections::BTreeSet<&'static str> = STAGE_INPUTS.iter().map(|(s, _)| *s).filter(|s| named.iter().any(|n| n == s)).collect();
    // STAGE_INPUTS is in pipeline order, so one pass reaches every dependent.
    for (stage, inputs) in STAGE_INPUTS {
        if inputs.iter().any(|i| forced.contains(i)) {
            forced.insert(stage);
        }
    }
    forced
}

/// A cell's inputs and its stages' keys, worked out before any stage runs. The keys say which
/// computation the cell is: results recorded with the same keys are this cell's results.
struct Plan {
    train_all: Vec<Document>,
    test: Vec<Document>,
    prompts: Vec<Document>,
    gen_train: Vec<Document>,
    ann_train: Vec<Document>,
    canaries: Vec<crate::canary::Canary>,
    gen_input: Vec<Document>,
    gen_cfg: lm::TrainConfig,
    gen_settings: lm::GenerateConfig,
    ann_spec: TaggerSpec,
    syn_spec: TaggerSpec,
    generate_seed: u64,
    drop_unfinished: bool,
    ann_key: StageKey,
    gen_key: StageKey,
    generate_key: StageKey,
    /// Generate stages that differ from this one only in samples per prompt and batch size.
    family: StageKey,
    annotate_key: StageKey,
    harden_key: Option<StageKey>,
    syn_key: StageKey,
    eval_key: StageKey,
    audit_key: StageKey,
}

impl Plan {
    /// Each stage the cell runs and its key, as [`StageTiming`]s record them.
    fn keys(&self) -> BTreeMap<String, String> {
        let keys = [&self.ann_key, &self.gen_key, &self.generate_key, &self.annotate_key, &self.syn_key, &self.eval_key, &self.audit_key];
        keys.into_iter().chain(&self.harden_key).map(|k| (k.stage.to_string(), k.hash.clone())).collect()
    }
}

fn plan_cell(cfg: &RunConfig, cell: &Cell, data: &Data) -> Result<Plan> {
    // With ablation.reseed_from, the stages before it keep run.seed: every seed's cell shares them.
    let seed_of = |stage: Reseed| cfg.ablation.reseed_from.seed(stage, cell.seed, cfg.run.seed);
    let (split_seed, generate_seed, ner_seed) = (seed_of(Reseed::Split), seed_of(Reseed::Generate), seed_of(Reseed::SyntheticNer));

    // Split: train/test (or a fold), then prompts, then the generator's and annotator's subsets.
    let (train_all, test) = match cell.fold {
        Some((f, k)) => k_fold(&data.train, k, split_seed).map_err(|e| anyhow!("ablation.folds: {e}"))?.swap_remove(f),
        None => (data.train.clone(), data.test.clone()),
    };
    let (pool, prompts) = prompt_split(&train_all, cfg.data.prompt_ratio, split_seed).map_err(|e| anyhow!("data.prompt_ratio: {e}"))?;
    let subset = |ratio: f64, key: &str| -> Result<Vec<Document>> {
        let r = pool_ratio(ratio, cfg.data.prompt_ratio);
        if r >= 1.0 {
            return Ok(pool.clone());
        }
        Ok(take_fraction(&pool, r, split_seed, Purpose::Subset).map_err(|e| anyhow!("{key}: {e}"))?.0)
    };
    let gen_train = subset(cell.generator_ratio, "generator_ratio")?;
    let ann_train = subset(cell.annotator_ratio, "annotator_ratio")?;
    let (dev_h, test_h, prompts_h) = (docs_hash(&data.dev), docs_hash(&test), docs_hash(&prompts));

    let ann_spec = tagger_spec(cfg.models.annotator, &cfg.annotator, &cfg.perceptron, split_seed);
    let ann_key = StageKey::of_settings("annotator", &ann_spec, &ann_spec.defaults(), &[&docs_hash(&ann_train), &dev_h]);

    let mut gen_cfg = match &cell.generator {
        Some(name) => cfg.ablation.generators.get(name).with_context(|| format!("ablation.generators.{name}: not in the config"))?.clone(),
        None => cfg.generator.clone(),
    };
    gen_cfg.seed = split_seed;
    if let Some(p) = &cell.generator_preset {
        gen_cfg.preset = serde_json::from_value(serde_json::Value::String(p.clone()))?;
    }
    // Canaries (none unless configured) join the generator's training documents.
    let canaries = crate::canary::make(&gen_train, &cfg.canaries, split_seed)?;
    let gen_input = if canaries.is_empty() { gen_train.clone() } else { crate::canary::plant(&gen_train, &canaries, split_seed) };
    let gen_key = StageKey::of_settings("generator", &gen_cfg.key_settings(), &lm::TrainConfig::default(), &[&docs_hash(&gen_input), &dev_h]);


    let g = &cfg.generation;
    let gen_settings = lm::GenerateConfig {
        prompt_words: g.prompt_words,
        samples_per_prompt: cell.samples_per_prompt,
        max_new_tokens: g.max_new_tokens,
        sampling: lm::SamplingConfig { temperature: g.temperature, top_k: g.top_k.unwrap_or(0), top_p: g.top_p },
        seed: generate_seed,
        batch_size: g.batch_size,
        precision: g.precision,
        vocabulary: g.vocabulary.unwrap_or_default(),
    };
    // A sample's text does not depend on its batch (lm's sampling tests), so the key leaves the batch size out
    // (as the default's, which the key omits): a faster batch size keeps every stage's cache.
    let key_settings = lm::GenerateConfig { batch_size: lm::GenerateConfig::default().batch_size, ..gen_settings.clone() };
    let generate_key = StageKey::of_settings("generate", &key_settings, &lm::GenerateConfig::default(), &[&gen_key.hash, &prompts_h]);
    // Stages differing only in these two draw the same sample for the same id (see sample_siblings).
    let family_settings = lm::GenerateConfig { samples_per_prompt: 0, batch_size: 0, ..gen_settings.clone() };
    let family_defaults = lm::GenerateConfig { samples_per_prompt: 0, batch_size: 0, ..lm::GenerateConfig::default() };
    let family = StageKey::of_settings("generate-samples", &family_settings, &family_defaults, &[&gen_key.hash, &prompts_h]);

    let drop_unfinished = g.unfinished == crate::config::Unfinished::Drop;
    let mut annotate_inputs = vec![ann_key.hash.as_str(), generate_key.hash.as_str()];
    if drop_unfinished {
        annotate_inputs.push("drop-unfinished");
    }
    let annotate_key = StageKey::new("annotate", &g.annotate_window, &annotate_inputs);
    let harden_key = cell
        .hardened
        .unwrap_or(cfg.hardening.enabled)
        .then(|| StageKey::of_settings("harden", &cfg.hardening, &Default::default(), &[&annotate_key.hash, &generate_seed.to_string()]));
    let synthetic_key = harden_key.as_ref().unwrap_or(&annotate_key);

    let syn_spec = tagger_spec(cfg.models.synthetic_ner, &cfg.synthetic_ner, &cfg.perceptron, ner_seed);
    let syn_key = StageKey::of_settings("synthetic_ner", &syn_spec, &syn_spec.defaults(), &[&synthetic_key.hash, &dev_h]);
    let eval_key = StageKey::new("evaluate", &"v1", &[&ann_key.hash, &syn_key.hash, &test_h]);

    let canary_docs: Vec<Document> = canaries.iter().map(|c| c.doc.clone()).collect();
    let canary_h = docs_hash(&canary_docs);
    let gen_train_h = docs_hash(&gen_train);
    let mut audit_inputs = vec![synthetic_key.hash.as_str(), gen_train_h.as_str(), test_h.as_str()];
    if !canaries.is_empty() {
        // The canaries' likelihood exposure is measured under the generator.
        audit_inputs.push(&canary_h);
        audit_inputs.push(&gen_key.hash);
    }
    let audit_key = StageKey::of_settings("audit", &cfg.audit, &Default::default(), &audit_inputs);
    Ok(Plan {
        train_all,
        test,
        prompts,
        gen_train,
        ann_train,
        canaries,
        gen_input,
        gen_cfg,
        gen_settings,
        ann_spec,
        syn_spec,
        generate_seed,
        drop_unfinished,
        ann_key,
        gen_key,
        generate_key,
        family,
        annotate_key,
        harden_key,
        syn_key,
        eval_key,
        audit_key,
    })
}

fn run_cell(cfg: &RunConfig, cell: &Cell, data: &Data, stages: &Path, opts: &RunOptions) -> Result<(CellResult, Vec<Document>)> {
    let forced = forced_stages(&opts.force);
    let force = |s: &str| forced.contains(s);
    let say = |s: &str, t: &StageTiming| {
        if opts.verbose {
            let shards = t.shards.filter(|&n| n > 1).map(|n| format!(" ({n} shards)")).unwrap_or_default();
            eprintln!("   {s:<14} {}{shards}", if t.cached { "cached".to_string() } else { format!("{:.1} s", t.seconds) });
        }
    };
    let mut timings = Vec::new();
    let plan = plan_cell(cfg, cell, data)?;
    let Plan { train_all, test, prompts, gen_train, ann_train, canaries, gen_input, gen_cfg, gen_settings, ann_spec, syn_spec, generate_seed, drop_unfinished, .. } = &plan;
    let (ann_key, gen_key, generate_key, annotate_key) = (&plan.ann_key, &plan.gen_key, &plan.generate_key, &plan.annotate_key);
    let dev = &data.dev;

    // 1. Annotator: NER on gold.
    let (ann_dir, t) = run_stage(stages, ann_key, force("annotator"), |dir| train_tagger(ann_spec, ann_train, dev, &dir.join("model"), opts))?;
    say("annotator", &t);
    timings.push(t);

    // 2. Generator: domain-adapted LM.
    // Which backend produces the samples (recorded in provenance.json; never a key).
    let backend = match &gen_cfg.openai {
        Some(o) => serde_json::json!({ "kind": "openai", "base_url": o.base_url, "model": o.model }),
        None => serde_json::json!({ "kind": "local" }),
    };
    let produced = |shards: usize, parts: Vec<crate::shards::PartRecord>| Produced { backend: backend.clone(), shards, parts };
    let (gen_dir, t) = run_stage_recorded(stages, gen_key, force("generator"), |dir| {
        if !canaries.is_empty() {
            // The record of what was planted: template text of real notes, so owner-only.
            let lines: Vec<String> = canaries.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
            fsutil::atomic_write_private(&dir.join("canaries.jsonl"), (lines.join("\n") + "\n").as_bytes()).map_err(|e| anyhow!(e))?;
        }
        // An OpenAI-compatible server generates: nothing to train here; the stage records where.
        if let Some(o) = &gen_cfg.openai {
            write_json(&dir.join("server.json"), &serde_json::json!({ "backend": "openai", "base_url": o.base_url, "model": o.model }))?;
            return Ok(produced(1, Vec::new()));
        }
        // A run stopped by `generator.max_minutes` is what the config asked for: its best
        // checkpoint is the stage's output (`finished: false` in train_report.json says so).
        let report = lm::train(gen_cfg, gen_input, dev, &dir.join("model"), &*opts.progress)?;
        write_json(&dir.join("train_report.json"), &report)?;
        Ok(produced(1, Vec::new()))
    })?;
    say("generator", &t);
    timings.push(t);
    let train_report = read_json::<serde_json::Value>(&gen_dir.join("train_report.json")).ok();
    let generator_dev_perplexity = train_report.as_ref().and_then(|v| v.get("best_dev_perplexity").and_then(|p| p.as_f64())).filter(|p| p.is_finite());
    // A generator cut by its time budget is a weaker one: say so rather than leave it to the numbers.
    let generator_stopped_by_budget = train_report.as_ref().and_then(|v| v.get("finished")).and_then(|f| f.as_bool()).map(|f| !f);
    if generator_stopped_by_budget == Some(true) {
        eprintln!(
            "   note: the generator's training stopped at generator.max_minutes = {} before the end of its {} epoch(s) (train_report.json); a larger budget trains a new generator",
            gen_cfg.max_minutes.unwrap_or(0.0),
            gen_cfg.epochs
        );
    }

    // 3. Generate: prompts are the first words of the held-out prompt documents; one file per
    // prompt document (`shards/ID.jsonl`), so a killed run resumes where it stopped with the same
    // samples. With `run.shards` N > 1, N processes share the prompt documents ([`crate::shards`]).
    let g = &cfg.generation;
    let shards = opts.shards.unwrap_or(cfg.run.shards).max(1);
    let mut reuse_from = crate::cache::sample_siblings(stages, &plan.family.hash, &generate_key.dir(stages))?;
    // --force generate redraws every sample: a sibling's samples may lack what this synthdeid records.
    if force("generate") {
        reuse_from.clear();
    }
    let prompt_list = lm::prompts_from_docs(prompts, g.prompt_words);
    let (generate_dir, t) = run_stage_recorded(stages, generate_key, force("generate"), |dir| {
        let docs_dir = dir.join("shards");
        opts.progress.start("prompt documents", prompts.len() as u64);
        // N shard processes: no more than there are prompt documents.
        let n = shards.min(prompts.len()).max(1);
        // generation.vocabulary = "corpus": the tokens of the text the generator was trained on.
        let corpus_vocabulary = gen_settings.vocabulary == lm::Vocabulary::Corpus;
        let (all, parts) = if n > 1 {
            // The shard processes get the ids from here (the generator loaded once more, for its tokenizer).
            let vocabulary = if corpus_vocabulary { Some(lm::Generator::load(&gen_dir.join("model"))?.vocabulary_of(gen_input)?) } else { None };
            let task = crate::shards::Task::Generate {
                model: gen_dir.join("model"),
                openai: gen_cfg.openai.clone(),
                prompts: prompt_list.clone(),
                settings: gen_settings.clone(),
                docs_dir: docs_dir.clone(),
                reuse_from: reuse_from.clone(),
                stop_after_prompts: opts.stop_after_prompts,
                vocabulary,
            };
            // Progress: the prompt documents finished by all shards.
            let mut shown = 0;
            crate::shards::run_sharded(dir, &task, n, opts.worker.as_deref(), opts.verbose, || {
                let finished = prompt_list.iter().filter(|p| docs_dir.join(format!("{}.jsonl", p.id)).is_file()).count() as u64;
                opts.progress.inc(finished.saturating_sub(shown));
                shown = shown.max(finished);
            })?
        } else {
            let mut generator = lm::Backend::open(&gen_dir.join("model"), gen_cfg.openai.as_ref(), gen_settings.precision)?;
            if corpus_vocabulary {
                let ids = generator.vocabulary_of(gen_input)?;
                generator.restrict_vocabulary(&ids)?;
            }
            let docs = crate::shards::generate_prompts(&generator, &prompt_list, gen_settings, &docs_dir, &reuse_from, opts.stop_after_prompts, |_, generated| {
                // Prompt documents a killed run finished take no time now: not the pace.
                if generated {
                    opts.progress.inc(1)
                } else {
                    opts.progress.skip(1)
                }
            })?;
            (docs, Vec::new())
        };
        opts.progress.finish();
        write(&dir.join("synthetic.jsonl"), Some(Format::Jsonl), &all)?;
        Ok(produced(n, parts))
    })?;
    say("generate", &t);
    timings.push(t);
    let cut_ids = crate::shards::cut_samples(&generate_dir.join("shards"), &prompt_list);
    let cut = cut_ids.as_ref().map(|c| c.len());
    if let Some(n) = cut.filter(|&n| !drop_unfinished && n * 20 > prompts.len() * cell.samples_per_prompt) {
        eprintln!(
            "   note: {n} of {} synthetic documents stopped at generation.max_new_tokens = {} before they ended (their last part, often the sign-off, is missing); they stay in the corpus (generation.unfinished = \"keep\", the paper's way)",
            prompts.len() * cell.samples_per_prompt,
            g.max_new_tokens
        );
    }
    let dropped = match cut_ids {
        _ if !*drop_unfinished => None,
        Some(ids) => Some(ids),
        None => bail!(
            "generation.unfinished = \"drop\": the generate stage ({}) does not record which samples stopped at max_new_tokens (a stage from an earlier synthdeid, or a server that reports no token counts, kept no record). Use \"keep\", or redo the stage with --force generate",
            generate_dir.display()
        ),
    };

    // 4. Machine-annotate the synthetic text with the annotator (128-word windows), without the
    // unfinished samples when asked.
    let window = g.annotate_window;
    let (annotate_dir, t) = run_stage_recorded(stages, annotate_key, force("annotate"), |dir| {
        let mut input = generate_dir.join("synthetic.jsonl");
        let mut texts = read(&input)?;
        if let Some(ids) = &dropped {
            texts.retain(|d| !ids.contains(&d.id));
            if texts.is_empty() {
                bail!("every synthetic document stopped at generation.max_new_tokens = {}: raise it, or set generation.unfinished = \"keep\"", g.max_new_tokens);
            }
        }
        let n = shards.min(texts.len()).max(1);
        let (annotated, parts) = if n > 1 {
            if dropped.is_some() {
                // The shard processes read their input from a file: the finished samples only.
                input = dir.join("finished.jsonl");
                write(&input, Some(Format::Jsonl), &texts)?;
            }
            let task = crate::shards::Task::Annotate { model: ann_dir.join("model"), window, input };
            crate::shards::run_sharded(dir, &task, n, opts.worker.as_deref(), opts.verbose, || {})?
        } else {
            (ner::load_tagger(&ann_dir.join("model"), Some(window))?.predict(&texts)?, Vec::new())
        };
        write(&dir.join("synthetic.jsonl"), Some(Format::Jsonl), &annotated)?;
        Ok(Produced { shards: n, parts, ..Produced::default() })
    })?;
    say("annotate", &t);
    timings.push(t);

    // 5. Optional hardening: surrogates replace every machine-annotated span.
    let (synthetic_dir, hardening) = if let Some(harden_key) = &plan.harden_key {
        let key_material = cfg.hardening.key.clone().unwrap_or_else(|| format!("synthdeid-seed-{generate_seed}"));
        let (dir, t) = run_stage(stages, harden_key, force("harden"), |dir| {
            let docs = read(&annotate_dir.join("synthetic.jsonl"))?;
            let report = harden(&docs, gen_train, key_material.as_bytes(), &cfg.hardening, dir)?;
            write_json(&dir.join("hardening.json"), &report)?;
            Ok(())
        })?;
        say("harden", &t);
        timings.push(t);
        let stats: HardeningReport = read_json(&dir.join("hardening.json"))?;
        (dir, Some(stats))
    } else {
        (annotate_dir.clone(), None)
    };
    let synthetic = read(&synthetic_dir.join("synthetic.jsonl"))?;

    // 6. Synthetic NER: trained on the synthetic corpus only.
    let (syn_dir, t) = run_stage(stages, &plan.syn_key, force("synthetic_ner"), |dir| train_tagger(syn_spec, &synthetic, dev, &dir.join("model"), opts))?;
    say("synthetic_ner", &t);
    timings.push(t);

    // 7. Evaluate both on the gold test set.
    let (eval_dir, t) = run_stage(stages, &plan.eval_key, force("evaluate"), |dir| {
        for (name, model_dir) in [("gold_ner", &ann_dir), ("synthetic_ner", &syn_dir)] {
            let predicted = ner::load_tagger(&model_dir.join("model"), None)?.predict(test)?;
            write(&dir.join(format!("{name}.predictions.jsonl")), Some(Format::Jsonl), &predicted)?;
            let report = eval::evaluate(test, &predicted).map_err(|e| anyhow!(e))?;
            write_json(&dir.join(format!("{name}.json")), &report)?;
        }
        Ok(())
    })?;
    say("evaluate", &t);
    timings.push(t);

    // 8. Audit the synthetic corpus against the generator's training documents.
    let (audit_dir, t) = run_stage(stages, &plan.audit_key, force("audit"), |dir| {
        let report = audit::try_audit(&synthetic, gen_train, Some(test), &cfg.audit).map_err(|e| anyhow!("audit.{e}"))?;
        write_json(&dir.join("audit.json"), &report)?;
        if !canaries.is_empty() {
            // A local generator (not a server) can score the canaries' secrets.
            let model = gen_dir.join("model");
            let ranks = if model.is_dir() { Some(crate::canary::likelihood_ranks(canaries, &model, cfg.audit.seed)?) } else { None };
            let exposure = crate::canary::expose(canaries, &synthetic, cfg.audit.ngram, cfg.audit.bootstrap, cfg.audit.seed, ranks.as_deref());
            write_json(&dir.join("canaries.json"), &exposure)?;
        }
        Ok(())
    })?;
    let canary_report: Option<crate::canary::CanaryReport> = if canaries.is_empty() { None } else { Some(read_json(&audit_dir.join("canaries.json"))?) };
    say("audit", &t);
    timings.push(t);

    let data = CellData {
        train_documents: train_all.len(),
        prompt_documents: prompts.len(),
        generator_documents: gen_train.len(),
        annotator_documents: ann_train.len(),
        dev_documents: dev.len(),
        test_documents: test.len(),
        synthetic_documents: synthetic.len(),
        synthetic_spans: synthetic.iter().map(|d| d.spans.len()).sum(),
        label_rates: label_rates(gen_train, &synthetic),
        words_per_document: LabelRate { gold: mean_words(gen_train), synthetic: mean_words(&synthetic) },
        cut_at_max_new_tokens: cut,
        dropped_unfinished: dropped.as_ref().map(|d| d.len()),
    };
    let result = CellResult {
        cell: cell.clone(),
        gold_ner: read_json(&eval_dir.join("gold_ner.json"))?,
        synthetic_ner: read_json(&eval_dir.join("synthetic_ner.json"))?,
        audit: read_json(&audit_dir.join("audit.json"))?,
        hardening,
        data,
        generator_dev_perplexity,
        generator_stopped_by_budget,
        annotator_stopped_by_budget: ner_stopped_by_budget(&ann_dir.join("model"), "annotator"),
        synthetic_ner_stopped_by_budget: ner_stopped_by_budget(&syn_dir.join("model"), "synthetic_ner"),
        timings,
        canaries: canary_report,
    };
    Ok((result, synthetic))
}

/// Whether the NER model in `model` stopped at its time budget before its last epoch, or had its
/// learning-rate schedule shortened to fit it (its `training.json`; None without one), with a note
/// on stderr when it did: either way its score depends on the machine's speed and load.
fn ner_stopped_by_budget(model: &Path, section: &str) -> Option<bool> {
    let training = read_json::<serde_json::Value>(&model.join("training.json")).ok()?;
    let summary = training.get("summary")?;
    let stopped = summary.get("budget_exhausted")?.as_bool()?;
    let fitted = summary.get("schedule_fitted_to_budget").and_then(|v| v.as_bool()).unwrap_or(false);
    if stopped || fitted {
        let what = if stopped { "stopped at" } else { "had its learning-rate schedule shortened to fit" };
        eprintln!("   note: the {section} training {what} {section}.optimizer.max_minutes ({}): its score depends on the machine's speed and load", model.join("training.json").display());
    }
    Some(stopped || fitted)
}

/// A NER stage's tagger: the config's kind with that kind's settings, on the cell's seed.
fn tagger_spec(kind: crate::config::NerKind, transformer: &ner::TrainConfig, perceptron: &perceptron::PerceptronConfig, seed: u64) -> TaggerSpec {
    match kind {
        crate::config::NerKind::Transformer => TaggerSpec::Transformer(ner::TrainConfig { seed, ..transformer.clone() }),
        crate::config::NerKind::Perceptron => TaggerSpec::Perceptron(perceptron::PerceptronConfig { seed, ..perceptron.clone() }),
    }
}

/// Trains a NER stage's tagger into `out`.
fn train_tagger(spec: &TaggerSpec, train: &[Document], dev: &[Document], out: &Path, opts: &RunOptions) -> Result<()> {
    let summary = spec.train(train, dev, out, &*opts.progress)?;
    if opts.verbose {
        eprintln!("   {summary}");
    }
    Ok(())
}

/// What hardening did and what it could not do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HardeningReport {
    pub stats: deid::Stats,
    /// Spans left as written because their text is PHI in at least
    /// `hardening.keep_common_min_documents` training documents.
    #[serde(default)]
    pub kept_common: usize,
    /// Training PHI strings (distinct, per label) found verbatim anywhere in the synthetic text,
    /// before and after hardening: what remains after comes from spans the annotator missed (or
    /// kinds kept on purpose, such as sex markers).
    pub leakage_before: audit::Leakage,
    pub leakage_after: audit::Leakage,
    /// Per label: spans whose new text is still a training PHI string (of any label). 0 for every
    /// kind that is replaced (the surrogate generator is forbidden to produce training PHI
    /// strings) but for one-letter coincidences (a name initial `F` → `H`, a sex marker);
    /// non-zero for kept kinds (sex, kinship words, `hardening.keep`).
    pub replaced_spans_still_training_phi: BTreeMap<String, usize>,
    /// With `hardening.surrogates = "corpus"`: how many of the synthetic corpus's strings joined
    /// each surrogate list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_vocab: Option<BTreeMap<String, usize>>,
}

/// Replaces every annotated span of `docs` with a surrogate that is neither an original string
/// of the synthetic corpus nor a PHI string of the generator's training documents.
fn harden(docs: &[Document], training: &[Document], key: &[u8], settings: &crate::config::HardeningSection, dir: &Path) -> Result<HardeningReport> {
    let mut labels = settings.label_map()?;
    for k in &settings.keep {
        labels.set_keep(*k, true);
    }
    // Training PHI strings and the number of training documents each occurs in (its keys are
    // also the set the report checks output spans against).
    let mut doc_freq: HashMap<String, usize> = HashMap::new();
    for d in training {
        let chars: Vec<char> = d.text.chars().collect();
        let strings: std::collections::HashSet<String> = d.spans.iter().map(|s| chars[s.start..s.end].iter().collect()).collect();
        for s in strings {
            *doc_freq.entry(s).or_default() += 1;
        }
    }
    let k = settings.keep_common_min_documents;
    let common = |s: &str| k > 0 && doc_freq.get(s).is_some_and(|&n| n >= k);
    // Strict: dates and ages are also held to the forbidden set (a shifted date may otherwise
    // land on a training date); hardening prefers no leak to exact intervals.
    let options = deid::Options { strict: true, ..deid::Options::default().with_key(key.to_vec()).with_labels(labels).with_language(settings.surrogate_language(training)?) };
    let mut ctx = deid::Surrogator::new(options);
    let widened = match settings.surrogates {
        deid::SurrogateSource::Lists => {
            for d in docs {
                ctx.forbid_document_originals(d);
            }
            None
        }
        deid::SurrogateSource::Corpus => {
            // The synthetic corpus's own strings join the lists, minus any that shares a word with
            // the PHI of fewer than `k` training documents (k = 0: with any training PHI).
            let phi = deid::PhiWords::of(training);
            let o = ctx.options();
            let extra = deid::CorpusVocab::from_documents(docs, &o.labels, o.language, |s| !phi.points_at(s, k));
            ctx.widen_vocab(&extra);
            Some(BTreeMap::from([
                ("surnames".to_string(), extra.surnames.len()),
                ("cities".to_string(), extra.cities.len()),
                ("hospital names".to_string(), extra.hospital_names.len()),
            ]))
        }
    };
    for d in training {
        ctx.forbid_document_originals(d);
    }
    // No surrogate may spell out an identifying training string around a kept part ("Hospital" +
    // a drawn "Virgen de la Salud"): multi-word PHI of fewer than max(k, 2) training documents.
    let identifying = k.max(2);
    ctx.forbid_within(doc_freq.iter().filter(|(s, &n)| n < identifying && s.split_whitespace().nth(1).is_some()).map(|(s, _)| s));
    let mut out = Vec::with_capacity(docs.len());
    let mut stats = deid::Stats::default();
    let mut kept_common = 0usize;
    for d in docs {
        // Spans whose text is common in the training documents stay; the rest are replaced.
        let chars: Vec<char> = d.text.chars().collect();
        let (kept, replaced): (Vec<corpus::Span>, Vec<corpus::Span>) =
            d.spans.iter().cloned().partition(|s| common(&chars[s.start..s.end].iter().collect::<String>()));
        kept_common += kept.len();
        let input = Document { spans: replaced, ..d.clone() };
        let r = deid::deidentify(&input, deid::Mode::Surrogate, &mut ctx).map_err(|e| anyhow!("document {}: {e}", d.id))?;
        stats.merge(&r.stats);
        let mut doc = r.doc;
        // A kept span moves by the length changes of the replacements before it.
        for s in kept {
            let shift: isize = r
                .mapping
                .iter()
                .filter(|m| m.end <= s.start)
                .map(|m| (m.new_end - m.new_start) as isize - (m.end - m.start) as isize)
                .sum();
            let start = (s.start as isize + shift) as usize;
            doc.spans.push(corpus::Span::new(start, start + s.len(), s.label));
        }
        doc.spans.sort();
        out.push(doc);
    }
    let mut still = BTreeMap::new();
    for d in &out {
        let chars: Vec<char> = d.text.chars().collect();
        for s in &d.spans {
            let surface: String = chars[s.start..s.end].iter().collect();
            let e = still.entry(s.label.clone()).or_insert(0);
            *e += doc_freq.contains_key(&surface) as usize;
        }
    }
    let report = HardeningReport {
        stats,
        kept_common,
        leakage_before: audit::leaked_phi(training, docs),
        leakage_after: audit::leaked_phi(training, &out),
        replaced_spans_still_training_phi: still,
        corpus_vocab: widened,
    };
    write(&dir.join("synthetic.jsonl"), Some(Format::Jsonl), &out)?;
    Ok(report)
}

/// Writes a synthetic corpus to `dir/synthetic.jsonl` and `dir/synthetic-brat/`.
fn export_synthetic(dir: &Path, docs: &[Document]) -> Result<()> {
    write(&dir.join("synthetic.jsonl"), Some(Format::Jsonl), docs)?;
    let brat = dir.join("synthetic-brat");
    if brat.exists() {
        std::fs::remove_dir_all(&brat)?;
    }
    write(&brat, Some(Format::Brat), docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduce_command_names_cells_run_here_and_each_other_directory_once() {
        let e = |cell: &str, from: &str| EarlierCell { cell: cell.into(), from: from.into() };
        // Cells from two other directories, interleaved in grid order: each directory once.
        let earlier = [e("a", "r1"), e("b", "r2"), e("c", "r1"), e("d", "out")];
        let cmd = reproduce_command("synthdeid run x.toml --out out", "out", &["a", "b", "c", "d", "e"], &earlier, 6);
        assert_eq!(cmd, "synthdeid run x.toml --out out --cell d --cell e --results-from r1 --results-from r2");
        // Every cell of the grid run in `out`: no --cell.
        assert_eq!(reproduce_command("c", "out", &["d", "e"], &[e("d", "out")], 2), "c");
    }

    fn doc(text: &str, labels: &[&str]) -> Document {
        Document { id: "d".into(), text: text.into(), spans: labels.iter().map(|l| corpus::Span { start: 0, end: 1, label: l.to_string() }).collect() }
    }

    #[test]
    fn force_reruns_the_stages_that_read_a_forced_output() {
        let f = |named: &[&str]| forced_stages(&named.iter().map(|s| s.to_string()).collect::<Vec<_>>()).into_iter().collect::<Vec<_>>();
        assert_eq!(f(&["generate"]), ["annotate", "audit", "evaluate", "generate", "harden", "synthetic_ner"]);
        assert_eq!(f(&["annotator"]), ["annotate", "annotator", "audit", "evaluate", "harden", "synthetic_ner"]);
        assert_eq!(f(&["synthetic_ner"]), ["evaluate", "synthetic_ner"]);
        assert_eq!(f(&["audit", "report"]), ["audit"]);
        assert!(f(&[]).is_empty());
        // Every cached stage is in the table, in pipeline order.
        let order: Vec<&str> = STAGES.iter().copied().filter(|s| *s != "report").collect();
        assert_eq!(STAGE_INPUTS.iter().map(|(s, _)| *s).collect::<Vec<_>>(), order);
    }

    #[test]
    fn label_rates_count_spans_per_thousand_words_in_both_corpora() {
        let gold = [doc("a b c d", &["NAME", "DATE"]), doc("e f g h i j", &["NAME"])];
        let synthetic = [doc("a b c d e", &["NAME", "CITY"])];
        let r = label_rates(&gold, &synthetic);
        assert_eq!(r.keys().collect::<Vec<_>>(), ["CITY", "DATE", "NAME"]);
        assert_eq!(r["NAME"], LabelRate { gold: 200.0, synthetic: 200.0 });
        assert_eq!(r["DATE"], LabelRate { gold: 100.0, synthetic: 0.0 });
        assert_eq!(r["CITY"], LabelRate { gold: 0.0, synthetic: 200.0 });
        assert!(label_rates(&[], &[]).is_empty());
    }
}
