//! The run config: one TOML file declares every setting and seed of a run. Unknown keys, missing
//! paths and impossible values stop the run before any work, with an error naming the key.

use anyhow::{anyhow, bail, Context, Result};
use corpus::Document;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub run: RunSection,
    pub data: DataSection,
    /// Which NER model each NER stage trains.
    #[serde(default)]
    pub models: ModelsSection,
    /// Settings of the transformer annotator (`models.annotator = "transformer"`).
    #[serde(default)]
    pub annotator: ner::TrainConfig,
    #[serde(default)]
    pub generator: lm::TrainConfig,
    #[serde(default)]
    pub generation: GenerationSection,
    /// Settings of the transformer synthetic NER (`models.synthetic_ner = "transformer"`).
    #[serde(default)]
    pub synthetic_ner: ner::TrainConfig,
    /// Settings of the perceptron floor, for whichever NER stage uses it.
    #[serde(default)]
    pub perceptron: perceptron::PerceptronConfig,
    #[serde(default)]
    pub hardening: HardeningSection,
    #[serde(default)]
    pub audit: audit::AuditConfig,
    #[serde(default)]
    pub ablation: AblationSection,
    /// Made-up records planted in the generator's training documents, for the audit.
    #[serde(default)]
    pub canaries: crate::canary::CanarySection,
    /// Published numbers shown beside the run's in the report.
    #[serde(default)]
    pub reference: ReferenceSection,
}

/// Published results to set beside a run's (the report's "reference" columns), keyed by the
/// ablated setting as the config writes it (`"0.05"` for a ratio, `"20"` samples per prompt, a
/// generator's name) or `"main"` for a run without an ablation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceSection {
    /// Where the numbers come from (shown with them).
    pub source: String,
    pub gold_token_f1: std::collections::BTreeMap<String, f64>,
    pub synthetic_token_f1: std::collections::BTreeMap<String, f64>,
}

/// A kind of NER model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NerKind {
    /// The transformer encoder of the `ner` crate (settings: `[annotator]` / `[synthetic_ner]`).
    #[default]
    Transformer,
    /// The feature-based structured perceptron (settings: `[perceptron]`): the CPU floor.
    Perceptron,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSection {
    pub annotator: NerKind,
    pub synthetic_ner: NerKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// A name for the report.
    pub name: String,
    /// The seed of every random choice not seeded in its own section (splits, generation).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The generate and annotate stages run as this many shard processes in parallel, merged
    /// into the output one process writes, byte for byte (not part of any stage key;
    /// `synthdeid run --shards N` overrides it).
    #[serde(default = "default_shards")]
    pub shards: usize,
}

fn default_seed() -> u64 {
    13
}

fn default_shards() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Gold training documents (BRAT directory, JSONL, CoNLL). Relative paths are relative to the
    /// config file.
    pub train: PathBuf,
    /// Gold development documents (model selection for both NER models). Optional.
    #[serde(default)]
    pub dev: Option<PathBuf>,
    /// Gold test documents (scoring only). Without it, `ablation.folds` must be set.
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Share of the training documents held out as the prompt set (the paper: 0.05).
    #[serde(default = "default_prompt_ratio")]
    pub prompt_ratio: f64,
    /// Share of all training documents the generator adapts on (at most 1 − prompt_ratio).
    #[serde(default)]
    pub generator_ratio: Option<f64>,
    /// Share of all training documents the annotator trains on (at most 1 − prompt_ratio).
    #[serde(default)]
    pub annotator_ratio: Option<f64>,
}

fn default_prompt_ratio() -> f64 {
    0.05
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationSection {
    /// Words of each held-out document that prompt the generator (the paper: 3).
    pub prompt_words: usize,
    /// Samples per prompt (the paper: 80).
    pub samples_per_prompt: usize,
    pub max_new_tokens: usize,
    pub top_p: f64,
    pub top_k: Option<usize>,
    pub temperature: f64,
    /// Sequences decoded together.
    pub batch_size: usize,
    /// Words per machine-annotation window (the paper: 128).
    pub annotate_window: usize,
    /// The decoding GEMMs' weights (`lm generate --precision`). Always written: the unknown-key
    /// check takes a key the round trip drops for a misspelt one.
    pub precision: lm::Precision,
    /// Samples that reach `max_new_tokens` before they end: kept as they are (the paper), or
    /// dropped before the machine annotation.
    pub unfinished: Unfinished,
    /// The tokens samples draw from: the generator's whole vocabulary (`full`, the default), or the
    /// tokens of its training text (`corpus`; `lm::Vocabulary`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<lm::Vocabulary>,
}

/// What becomes of a generated sample that stopped at `generation.max_new_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unfinished {
    /// Into the synthetic corpus as it is, its end (often the sign-off) missing.
    #[default]
    Keep,
    /// Left out of the synthetic corpus; the generator must record which samples were cut.
    Drop,
}

impl Default for GenerationSection {
    fn default() -> Self {
        GenerationSection {
            prompt_words: 3,
            samples_per_prompt: 80,
            max_new_tokens: 1024,
            top_p: 0.95,
            top_k: None,
            temperature: 1.0,
            batch_size: 16,
            annotate_window: 128,
            precision: lm::Precision::F32,
            unfinished: Unfinished::Keep,
            vocabulary: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HardeningSection {
    /// Replace every machine-annotated PHI span of the synthetic corpus with a surrogate before
    /// the synthetic NER trains on it, so no memorised real PHI string survives in those spans.
    pub enabled: bool,
    /// Key of the surrogate HMAC (consistent surrogates across documents); default: from the seed.
    pub key: Option<String>,
    /// Kinds left as they are (besides sex and kinship words, which `deid` keeps by default).
    /// Countries by default: HIPAA Safe Harbor does not count a country as an identifier, and
    /// replacing `España` (in most MEDDOCAN documents) by random countries teaches the synthetic
    /// NER a distribution the real text does not have. `keep = []` replaces them too.
    pub keep: Vec<deid::Kind>,
    /// Leave a span as written when its text is PHI in at least this many different training
    /// documents (0: off, every span is replaced). Such a string (`Madrid`, `70 años`) is shared
    /// by that many patients, so it cannot single one out (k-anonymity), while replacing it
    /// takes the commonest real values out of the synthetic corpus. Rare strings, the ones that
    /// identify, are always replaced.
    pub keep_common_min_documents: usize,
    /// The surrogates' language: es, en, de or sv. Default: detected from the training text
    /// (a language without its own surrogates gets English's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// A label map file (as `deid --labels`: each label's surrogate kind), relative to the config.
    /// Default: MEDDOCAN's map, other labels' kinds guessed from their names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<PathBuf>,
    /// Where surrogate names, places and hospital names are drawn from: `lists` (the language's
    /// built-in lists) or `corpus` (those lists widened with the synthetic corpus's own strings that
    /// share no rare word with a training PHI string: written by the generator, not copied, and each
    /// moved away from the place it was written).
    #[serde(skip_serializing_if = "deid::SurrogateSource::is_lists")]
    pub surrogates: deid::SurrogateSource,
}

impl Default for HardeningSection {
    fn default() -> Self {
        HardeningSection {
            enabled: false,
            key: None,
            keep: vec![deid::Kind::Country],
            keep_common_min_documents: 0,
            language: None,
            labels: None,
            surrogates: deid::SurrogateSource::Lists,
        }
    }
}

impl HardeningSection {
    /// The surrogates' language: the configured one, else the one `training` is written in.
    pub fn surrogate_language(&self, training: &[Document]) -> Result<deid::Language> {
        match &self.language {
            Some(l) => l.parse().map_err(|e| anyhow!("hardening.language: {e}")),
            None => Ok(deid::augment::surrogate_language_of(training)),
        }
    }

    /// The label map: `labels`, else MEDDOCAN's (with kinds guessed for other labels).
    pub fn label_map(&self) -> Result<deid::LabelMap> {
        deid::LabelMap::from_path_or_meddocan(self.labels.as_deref()).map_err(|e| anyhow!("hardening.labels: {e}"))
    }
}

/// Grids: every combination is a cell; cells that share a stage share its cached output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AblationSection {
    pub generator_ratio: Vec<f64>,
    pub annotator_ratio: Vec<f64>,
    pub samples_per_prompt: Vec<usize>,
    /// Generator size presets (for transformer generators).
    pub generator_preset: Vec<String>,
    /// Generators compared, by name: each a whole `[generator]` section (`[ablation.generators.NAME]`,
    /// e.g. a word 4-gram, a GPT-2 from scratch, a pretrained model with LoRA, or one with
    /// `epochs = 0`: not adapted). With it, the file has no `[generator]` section.
    pub generators: std::collections::BTreeMap<String, lm::TrainConfig>,
    /// With `generators`: the one whose cell the report's headline tables show (gold against
    /// synthetic, per label, the privacy audit); by default the first by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub main_generator: Option<String>,
    /// Hardening off and on (`[false, true]`): both synthetic corpora from the same generated
    /// text, side by side in one report.
    pub hardening: Vec<bool>,
    /// Repeat every cell with these seeds (mean ± standard deviation over them).
    pub seeds: Vec<u64>,
    /// The first stage those seeds reach; the stages before it keep `run.seed` and so are shared
    /// by every seed's cell (one annotator and one generator for `generate`).
    pub reseed_from: Reseed,
    /// k-fold cross-validation over the training documents instead of the test split (0: off).
    pub folds: usize,
}

/// Where `ablation.seeds` start to draw anew, in stage order: what the spread over seeds measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reseed {
    /// Everything: the prompt split, subsets and folds, the annotator, the generator, the rest.
    #[default]
    Split,
    /// The generation, the hardening and the synthetic NER, from one annotator and generator.
    Generate,
    /// The synthetic NER's training only, on one synthetic corpus.
    SyntheticNer,
}

impl Reseed {
    /// The seed of a stage that lies at `stage` in this order, in a cell of seed `cell_seed`.
    pub fn seed(self, stage: Reseed, cell_seed: u64, run_seed: u64) -> u64 {
        if stage >= self {
            cell_seed
        } else {
            run_seed
        }
    }
}

impl RunConfig {
    /// Reads, parses and checks a config; relative data paths become relative to its directory.
    pub fn load(path: &Path) -> Result<RunConfig> {
        let (given, text) = read_with_base(path, 0)?;
        let mut cfg: RunConfig = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}{}", path.display(), e, key_hint(&e)))?;
        // Some settings types take flattened fields and so cannot deny unknown ones themselves:
        // every key of the file must survive a parse → serialize round trip, or it was ignored.
        let understood = toml::Value::try_from(&cfg)?;
        if let Some(key) = first_unknown_key(&given, &understood, "") {
            bail!("{}: unknown key `{key}` (check the spelling; `synthdeid run --help` lists the sections)", path.display());
        }
        // Each stage takes its seed from run.seed (and ablation.seeds): a section's own `seed`
        // would be replaced without a word, so it is refused.
        let generators = given.get("ablation").and_then(|a| a.get("generators")).and_then(|g| g.as_table());
        let sections = ["annotator", "synthetic_ner", "perceptron", "generator"].into_iter().filter_map(|s| Some((s.to_string(), given.get(s)?)));
        let variants = generators.into_iter().flatten().map(|(n, g)| (format!("ablation.generators.{n}"), g));
        if let Some((section, _)) = sections.chain(variants).find(|(_, v)| v.get("seed").is_some()) {
            bail!("{}: `{section}.seed`: every stage of a run is seeded from run.seed (repeat cells over seeds with ablation.seeds, and redraw only the later stages with ablation.reseed_from); remove it", path.display());
        }
        if !cfg.ablation.generators.is_empty() && given.get("generator").is_some() {
            bail!("{}: [generator] and [ablation.generators] both given: with generators to compare, each is a section [ablation.generators.NAME] and there is no [generator]", path.display());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.check().with_context(|| format!("{}", path.display()))?;
        Ok(cfg)
    }

    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data.train);
        if let Some(p) = self.hardening.labels.as_mut() {
            fix(p);
        }
        if let Some(p) = self.data.dev.as_mut() {
            fix(p);
        }
        if let Some(p) = self.data.test.as_mut() {
            fix(p);
        }
        // `init`: a path (relative to the config) or a registry model name, fetched when run.
        let variants = self.ablation.generators.values_mut().map(|g| &mut g.init);
        for init in [&mut self.generator.init, &mut self.annotator.encoder.init, &mut self.synthetic_ner.encoder.init].into_iter().chain(variants).flatten() {
            let is_name = init.to_str().is_some_and(models::is_registry_name);
            // A registry name stays a name unless a file of that name sits beside the config.
            if init.is_relative() && (!is_name || base.join(&*init).exists()) {
                *init = base.join(&*init);
            }
        }
    }

    /// Checks before any work: paths exist, ratios are possible, grids make sense, and the training
    /// data (read here) has documents and spans enough for them.
    pub fn check(&self) -> Result<()> {
        let exists = |key: &str, p: &Path| -> Result<()> {
            if !p.exists() {
                bail!("{key} = {:?}: no such file or directory", p.display().to_string());
            }
            Ok(())
        };
        exists("data.train", &self.data.train)?;
        self.annotator.augment.check("annotator").map_err(anyhow::Error::msg)?;
        self.synthetic_ner.augment.check("synthetic_ner").map_err(anyhow::Error::msg)?;
        if let Some(p) = &self.data.dev {
            exists("data.dev", p)?;
        }
        if let Some(p) = &self.data.test {
            exists("data.test", p)?;
        }
        // Hardening's settings fail here, not after hours of generation.
        if let Some(l) = &self.hardening.language {
            l.parse::<deid::Language>().map_err(|e| anyhow!("hardening.language: {e}"))?;
        }
        self.hardening.label_map()?;
        let mut inits = vec![("generator.init".to_string(), &self.generator.init), ("annotator.encoder.init".into(), &self.annotator.encoder.init), ("synthetic_ner.encoder.init".into(), &self.synthetic_ner.encoder.init)];
        inits.extend(self.ablation.generators.iter().map(|(n, g)| (format!("ablation.generators.{n}.init"), &g.init)));
        for (key, init) in inits {
            if let Some(p) = init.as_deref().filter(|p| !p.to_str().is_some_and(models::is_registry_name)) {
                exists(&key, p).context("give a model directory or a name from `synthdeid models list`")?;
            }
        }
        if let Some(m) = &self.ablation.main_generator {
            if !self.ablation.generators.contains_key(m) {
                let names: Vec<&str> = self.ablation.generators.keys().map(String::as_str).collect();
                bail!("ablation.main_generator = {m:?} names no generator of [ablation.generators] (given: {}); name one of them or leave it out", if names.is_empty() { "none".to_string() } else { names.join(", ") });
            }
        }
        for name in self.ablation.generators.keys() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                bail!("ablation.generators.{name:?}: a generator name may hold letters, digits, '-', '_' and '.' only");
            }
        }
        if self.ablation.reseed_from != Reseed::Split && self.ablation.seeds.is_empty() {
            bail!("ablation.reseed_from is given but ablation.seeds is not: list the seeds to draw the later stages with");
        }
        if !self.ablation.generators.is_empty() && !self.ablation.generator_preset.is_empty() {
            bail!("ablation.generator_preset and ablation.generators: give one (a preset is a setting of a generator section)");
        }
        let pr = self.data.prompt_ratio;
        if !(pr > 0.0 && pr < 1.0) {
            bail!("data.prompt_ratio = {pr}: impossible, it must lie strictly between 0 and 1");
        }
        let ratio_ok = |key: &str, r: f64| -> Result<()> {
            if !(r > 0.0 && r <= 1.0 - pr + 1e-9) {
                bail!("{key} = {r}: impossible, it must be greater than 0 and at most 1 − data.prompt_ratio = {}", 1.0 - pr);
            }
            Ok(())
        };
        if let Some(r) = self.data.generator_ratio {
            ratio_ok("data.generator_ratio", r)?;
        }
        if let Some(r) = self.data.annotator_ratio {
            ratio_ok("data.annotator_ratio", r)?;
        }
        for &r in &self.ablation.generator_ratio {
            ratio_ok("ablation.generator_ratio", r)?;
        }
        for &r in &self.ablation.annotator_ratio {
            ratio_ok("ablation.annotator_ratio", r)?;
        }
        if self.ablation.samples_per_prompt.contains(&0) || self.generation.samples_per_prompt == 0 {
            bail!("generation.samples_per_prompt / ablation.samples_per_prompt: must be at least 1");
        }
        let g = &self.generation;
        if !(g.top_p > 0.0 && g.top_p <= 1.0) {
            bail!("generation.top_p = {}: must be greater than 0 and at most 1", g.top_p);
        }
        if g.temperature <= 0.0 {
            bail!("generation.temperature = {}: must be greater than 0", g.temperature);
        }
        if g.prompt_words == 0 || g.annotate_window == 0 || g.batch_size == 0 || g.max_new_tokens == 0 {
            bail!("generation.prompt_words, annotate_window, batch_size and max_new_tokens must be at least 1");
        }
        if g.vocabulary == Some(lm::Vocabulary::Corpus) {
            let mut generators = vec![("generator".to_string(), &self.generator)];
            generators.extend(self.ablation.generators.iter().map(|(n, g)| (format!("ablation.generators.{n}"), g)));
            if let Some((name, _)) = generators.iter().find(|(_, g)| g.openai.is_some()) {
                bail!("generation.vocabulary = \"corpus\" and {name}.openai: a server samples from its whole vocabulary; use \"full\" or a local generator");
            }
        }
        if self.canaries.count > 0 && (self.canaries.repetitions.is_empty() || self.canaries.repetitions.contains(&0)) {
            bail!("canaries.repetitions = {:?}: give one or more counts, each at least 1", self.canaries.repetitions);
        }
        if self.run.shards == 0 {
            bail!("run.shards = 0: must be at least 1 (1: no shards)");
        }
        if self.ablation.folds == 1 {
            bail!("ablation.folds = 1: use 0 (off) or at least 2");
        }
        if self.data.test.is_none() && self.ablation.folds == 0 {
            bail!("data.test is missing: give a test split, or set ablation.folds to cross-validate on data.train");
        }
        for p in &self.ablation.generator_preset {
            if !["tiny", "small", "base"].contains(&p.as_str()) {
                bail!("ablation.generator_preset: {p:?} is not one of tiny, small, base");
            }
        }
        if self.audit.ngram == 0 {
            bail!("audit.ngram = 0: the n-gram order must be at least 1 (the paper uses 5)");
        }
        // What the data allows, known before any stage runs (and so refused by --dry-run): documents
        // for the folds, the prompt hold-out and the training pool; annotated spans for the annotator.
        let train = corpus::read_corpus(&self.data.train, None, &corpus::ReadOptions::default()).map_err(|e| anyhow::anyhow!("data.train: {e}"))?;
        let n = train.len();
        let k = self.ablation.folds;
        if k >= 2 && k > n {
            bail!("ablation.folds = {k}: data.train ({}) holds {n} document(s), and {k} folds need at least {k}; lower ablation.folds or give more documents", self.data.train.display());
        }
        // The smallest training part: all of data.train, or data.train less its largest test fold.
        let part = if k >= 2 { n - n.div_ceil(k) } else { n };
        let prompts = if part == 0 { 0 } else { corpus::split::count_for_ratio(part, pr).map_err(|e| anyhow::anyhow!("data.prompt_ratio: {e}"))? };
        if part - prompts == 0 {
            bail!(
                "data.train ({}) holds {n} document(s){}: after the prompt hold-out (data.prompt_ratio = {pr}: {prompts} document(s)) none is left to train the annotator and the generator; give at least 2 documents (the paper: hundreds)",
                self.data.train.display(),
                if k >= 2 { format!(", {part} per fold's training part") } else { String::new() }
            );
        }
        if train.iter().all(|d| d.spans.is_empty()) {
            bail!(
                "data.train ({}): none of its {n} document(s) has an annotated span, so the annotator cannot learn PHI; give annotated documents (BRAT .ann files, JSONL \"spans\", CoNLL tags)",
                self.data.train.display()
            );
        }
        Ok(())
    }
}

/// A config file as a TOML table, with `extends = "BASE.toml"` (a top-level key, relative to the
/// file) resolved: the base's tables, overridden key by key by the file's. A file comparing
/// generators (`[ablation.generators]`) drops an inherited `[generator]`. Also returns TOML text
/// of that table: the file itself when it has no base, so that parse errors point at its lines.
fn read_with_base(path: &Path, depth: usize) -> Result<(toml::Value, String)> {
    if depth > 8 {
        bail!("{}: `extends` nests more than 8 deep (a cycle?)", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
    let mut v: toml::Value = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}{}", path.display(), e, key_hint(&e)))?;
    let Some(table) = v.as_table_mut() else { bail!("{}: not a TOML table", path.display()) };
    let Some(base) = table.remove("extends") else { return Ok((v, text)) };
    let base = base.as_str().with_context(|| format!("{}: `extends` must be a file name", path.display()))?.to_string();
    let base_path = path.parent().unwrap_or(Path::new(".")).join(&base);
    let (mut merged, _) = read_with_base(&base_path, depth + 1).with_context(|| format!("{}: extends = {base:?}", path.display()))?;
    let compares = table.get("ablation").and_then(|a| a.get("generators")).is_some();
    if compares && !table.contains_key("generator") {
        merged.as_table_mut().expect("a table").remove("generator");
    }
    merge(&mut merged, v);
    let text = toml::to_string(&merged)?;
    Ok((merged, text))
}

/// `over` onto `base`: tables merge key by key, any other value replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) if bv.is_table() && v.is_table() => merge(bv, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The first key path of `given` that `understood` lacks.
fn first_unknown_key(given: &toml::Value, understood: &toml::Value, prefix: &str) -> Option<String> {
    let (toml::Value::Table(g), toml::Value::Table(u)) = (given, understood) else { return None };
    for (k, v) in g {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match u.get(k) {
            None => return Some(path),
            Some(uv) => {
                if let Some(p) = first_unknown_key(v, uv, &path) {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// toml's message names the key for unknown fields; add what to do.
fn key_hint(e: &toml::de::Error) -> String {
    if e.message().contains("unknown field") {
        " (check the spelling; `synthdeid run --help` lists the sections)".into()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hardening writes surrogates in the corpus's language (German letters get German names, not
    /// MEDDOCAN's Spanish ones) unless the config names one, and takes a user's label map.
    #[test]
    fn hardening_follows_the_corpus_language_and_label_map() {
        let german = [Document::new("a", "Sehr geehrte Frau Kollegin, wir berichten über die Patientin, die sich am 3.4.2019 in unserer Klinik vorstellte. Die Untersuchung ergab keinen pathologischen Befund und wir empfehlen eine Kontrolle nach drei Monaten.")];
        let spanish = [Document::new("b", "Paciente de 45 años que acude a urgencias por dolor abdominal de tres días de evolución. Se le realiza una ecografía y se decide su ingreso en el servicio de cirugía del hospital.")];
        let h = HardeningSection::default();
        assert_eq!(h.surrogate_language(&german).unwrap(), deid::Language::De);
        assert_eq!(h.surrogate_language(&spanish).unwrap(), deid::Language::Es);
        let sv = HardeningSection { language: Some("sv".into()), ..Default::default() };
        assert_eq!(sv.surrogate_language(&german).unwrap(), deid::Language::Sv);
        let bad = HardeningSection { language: Some("xx".into()), ..Default::default() };
        assert!(bad.surrogate_language(&german).unwrap_err().to_string().contains("hardening.language"));

        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("labels.toml");
        std::fs::write(&map, "[labels]\nPATIENT = \"name\"\n").unwrap();
        let with_map = HardeningSection { labels: Some(map), ..Default::default() };
        assert_eq!(with_map.label_map().unwrap().kind_of("PATIENT"), Some(deid::Kind::Name));
        let missing = HardeningSection { labels: Some(dir.path().join("none.toml")), ..Default::default() };
        let err = missing.label_map().unwrap_err().to_string();
        assert!(err.contains("hardening.labels") && err.contains("none.toml"), "{err}");
    }
}
