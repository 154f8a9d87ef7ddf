//! `ner`: the NER model commands (`lm` is in `cmd_lm`).

use crate::corpus_args::read_with;
use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use corpus::{write_corpus, ReadOptions};
use std::path::PathBuf;

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum NerCmd {
    /// Train a tagger on gold documents; writes a model directory (HF layout).
    Train(TrainArgs),
    /// Annotate documents (annotated or not) with a trained model: the machine annotator.
    Predict(PredictArgs),
    /// Predict and score against gold documents in one go.
    Eval(EvalArgs),
    /// Train the feature-based perceptron tagger (the fast CPU floor) on gold documents.
    TrainPerceptron(PerceptronArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Gold training documents (BRAT directory, JSONL, CoNLL, i2b2 XML, UIMA JSON).
    #[arg(long, help_heading = "Data")]
    pub train: PathBuf,
    /// Gold dev documents: they pick the epoch and the decoding settings.
    #[arg(long, help_heading = "Data")]
    pub dev: Option<PathBuf>,
    /// Model directory to write (also holds the resumable checkpoint).
    #[arg(long, help_heading = "Data")]
    pub out: PathBuf,
    /// Settings file (TOML or JSON) in the shape of configs/ner-meddocan.toml. Without it: the
    /// recipe of record (stacked perceptron guide, boundary model), plus surrogate copies of
    /// small corpora (augment.copies) and, up to 50 documents, a majority vote of 3 models
    /// (ensemble.members). Flags and --set override it.
    #[arg(long, help_heading = "Recipe")]
    pub config: Option<PathBuf>,
    /// Override one setting: SECTION.KEY=VALUE, e.g. guide.folds=5, optimizer.lr=0.0008,
    /// decoding.boundaries=true, checkpoint.resume=false (repeatable; sections: encoder, guide,
    /// guide.perceptron, optimizer, windows, decoding, augment, ensemble, checkpoint).
    #[arg(long = "set", value_name = "KEY=VALUE", help_heading = "Recipe")]
    pub set: Vec<String>,
    /// Fine-tune this encoder: an HF directory or a registry name (multilingual-e5-small).
    #[arg(long, help_heading = "Recipe")]
    pub init: Option<PathBuf>,
    /// Encoder size when training from scratch: tiny, small, base.
    #[arg(long, help_heading = "Recipe")]
    pub preset: Option<ner::Preset>,
    /// Passes over the training windows (dev picks the best).
    #[arg(long, help_heading = "Budget")]
    pub epochs: Option<usize>,
    /// Training time budget in minutes (across resumes); the best model so far is kept.
    #[arg(long, help_heading = "Budget")]
    pub max_minutes: Option<f64>,
    /// Seeds every random choice (same seed, same model).
    #[arg(long, help_heading = "Budget")]
    pub seed: Option<u64>,
    /// A label map file for the surrogate copies (as `deid --labels`: each label's surrogate
    /// kind); default: MEDDOCAN's, other labels' kinds guessed from their names (augment.labels).
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    pub labels: Option<PathBuf>,
    /// Self-training: a first model trained on the gold documents labels these (their own spans
    /// are ignored), and the final model trains on gold and these together.
    #[arg(long, value_name = "PATH", help_heading = "Data")]
    pub unlabelled: Option<PathBuf>,
}

impl TrainArgs {
    /// The settings: the `--config` file (or defaults), then the flags, then `--set`.
    pub fn to_config(&self) -> Result<ner::TrainConfig> {
        let mut c: ner::TrainConfig = match &self.config {
            Some(p) => {
                let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                if p.extension().is_some_and(|e| e == "json") {
                    serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))?
                } else {
                    toml::from_str(&s).with_context(|| format!("parsing {}", p.display()))?
                }
            }
            None => ner::TrainConfig::default(),
        };
        if let Some(p) = self.preset {
            c.encoder.preset = p;
        }
        if let Some(i) = &self.init {
            c.encoder.init = Some(i.clone());
        }
        if let Some(e) = self.epochs {
            c.optimizer.epochs = e;
        }
        if let Some(m) = self.max_minutes {
            c.optimizer.max_minutes = Some(m);
        }
        if let Some(s) = self.seed {
            c.seed = s;
        }
        if let Some(l) = &self.labels {
            c.augment.labels = Some(l.clone());
        }
        c.with_overrides(&self.set).map_err(|e| anyhow!(e))
    }
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model directory written by `ner train` (or by `ner train-perceptron`).
    #[arg(long)]
    pub model: PathBuf,
    /// Documents to annotate (BRAT directory, JSONL or text).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the annotated documents (BRAT directory or .jsonl).
    #[arg(long)]
    pub out: PathBuf,
    /// Only shard I of N (I from 0) of the input documents; `synthdeid merge` joins the N outputs
    /// into the unsharded one (each document is annotated on its own, so the merge is exact).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<corpus::shard::Shard>,
    /// Documents predicted at a time (default: one per core). Each gets the same spans whatever
    /// the count; 1 gives the latency of a single note arriving alone.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Number format of the encoder's weights in prediction: f32, or bf16 (faster on CPUs with
    /// AVX-512 BF16, else f32; spans can differ slightly: BENCHMARKS.md).
    #[arg(long, default_value = "f32", value_name = "P")]
    pub precision: ner::Precision,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model directory written by `ner train` (or by `ner train-perceptron`).
    #[arg(long)]
    pub model: PathBuf,
    /// Gold documents to predict and score.
    #[arg(long)]
    pub gold: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PerceptronArgs {
    /// Gold training documents (BRAT directory or JSONL).
    #[arg(long)]
    pub train: PathBuf,
    /// Gold dev documents: the epoch with the best dev token F1 is kept.
    #[arg(long)]
    pub dev: Option<PathBuf>,
    /// Model directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training documents (the best on dev is kept).
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Perceptrons trained on different document orders (in parallel) and averaged into one:
    /// steadier, at the same prediction cost.
    #[arg(long, default_value_t = 1)]
    pub members: usize,
    /// Stack two taggers: the second also sees the first one's tags (around each token, of the
    /// same word elsewhere in the document, of the entities before and after on its line),
    /// learnt from the tags of K taggers each trained without one of K folds. 0 is off; about
    /// 6× the training time of one tagger.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub stack_folds: usize,
    /// Token feature sets, comma-separated: one tagger per entry (each on its own seed), decoded
    /// together as a committee; e.g. 3,3,1. Taggers on different features err in different
    /// places. Each costs its training time again. Default: one tagger on the newest set.
    #[arg(long, value_delimiter = ',', value_name = "SETS")]
    pub feature_sets: Option<Vec<u32>>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Train on this many seeds (SEED, SEED + 1000·n, SEED + 2000·n, …; n: the feature sets) and
    /// keep the tagger (or committee) with the best dev token F1. Stacked taggers move with their
    /// seed by ±0.003 token F1 on MEDDOCAN, and dev ranks seeds as test does; each candidate costs
    /// its training time again. Needs --dev.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed_candidates: usize,
    /// How tags mark an entity's tokens: bio (B-, I-), or bilou (also L- on an entity's last
    /// token and U- on a one-token entity). BILOU gave +0.002 entity-strict F1 in 5-fold
    /// cross-validation of one tagger on MEDDOCAN, nothing for a stacked one, at 2× the training time.
    #[arg(long, default_value = "bio", value_name = "SCHEME", value_parser = ["bio", "bilou"])]
    pub tag_scheme: String,
    /// The language whose word lists the features read: es, en, de, sv or other (default: detected
    /// from the training documents; see the `lang` crate for the lists and SYNTHDEID_LANG_DIR).
    #[arg(long, value_name = "LANG")]
    pub language: Option<String>,
    /// After training, learn to move predicted entities' edges by up to two words (a
    /// span-boundary model learned from 5 jackknifed plain taggers' tags); kept if dev
    /// entity-strict F1 does not fall. MEDDOCAN test: +0.0020 strict F1 for a plain tagger,
    /// +0.0013 for a stacked one. Costs 5 plain taggers' training (in parallel).
    #[arg(long)]
    pub boundaries: bool,
    /// Also train on N surrogate copies of each training document (other names, dates, places;
    /// spans kept). Default: chosen by the number of training documents.
    #[arg(long, value_name = "N")]
    pub augment: Option<usize>,
    /// Self-training: a first tagger trained on the gold documents labels these (their own spans
    /// are ignored), and the final tagger trains on gold and these together.
    #[arg(long, value_name = "PATH")]
    pub unlabelled: Option<PathBuf>,
    /// A label map file for the surrogate copies (as `deid --labels`); default: MEDDOCAN's, other
    /// labels' kinds guessed from their names.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Where the copies' names and places come from: lists (the language's) or corpus (those
    /// widened with the training documents' own, each copy taking other documents').
    #[arg(long, value_name = "FROM", default_value = "lists", value_parser = ["lists", "corpus"])]
    pub surrogates: String,
}

fn read(p: &std::path::Path) -> Result<Vec<corpus::Document>> {
    read_with(p, None, &ReadOptions::default())
}

pub fn ner(cmd: NerCmd) -> Result<()> {
    match cmd {
        NerCmd::Train(a) => {
            let cfg = a.to_config()?;
            let train = read(&a.train)?;
            let dev = a.dev.as_deref().map(read).transpose()?.unwrap_or_default();
            let s = match &a.unlabelled {
                Some(path) => {
                    let unlabelled = read(path)?;
                    ner::self_train(&cfg, &train, &dev, &unlabelled, &a.out, &crate::bars::Bars::new()).with_context(|| format!("self-training on {}", path.display()))?
                }
                None => ner::train(&cfg, &train, &dev, &a.out, &crate::bars::Bars::new())?,
            };
            if let Some(f) = &s.first_tagger {
                eprintln!("first tagger (gold only): {:.1} min, dev {:?}; {} self-training documents", f.minutes, f.best_dev, s.silver_documents);
            }
            if s.members.is_empty() {
                eprintln!(
                    "trained {} epochs in {:.1} min ({:.0} tokens/s); best epoch {:?}, dev {:?}; model: {}",
                    s.epochs_completed, s.minutes, s.tokens_per_sec, s.best_epoch, s.best_dev, a.out.display()
                );
            } else {
                let dev = s.best_dev.map_or("no dev set".to_string(), |d| format!("dev token F1 {:.4}, strict F1 {:.4}", d.token_f1, d.strict_f1));
                eprintln!("trained an ensemble of {} models in {:.1} min; their majority vote: {dev}; model: {}", s.members.len(), s.minutes, a.out.display());
            }
            Ok(())
        }
        NerCmd::Predict(a) => {
            let started = std::time::Instant::now();
            let docs = read(&a.input)?;
            let docs = a.shard.unwrap_or_default().select(&docs);
            let tagger = ner::load_tagger_at(&a.model, None, a.precision)?;
            let jobs = a.jobs.unwrap_or_else(ner::default_jobs).max(1);
            let (pred, latencies) = ner::predict_each(tagger.as_ref(), docs, jobs, &crate::bars::Bars::new())?;
            write_corpus(&a.out, None, &pred).map_err(|e| anyhow!(e))?;
            eprintln!("annotated {} documents, {} spans → {}", pred.len(), pred.iter().map(|d| d.spans.len()).sum::<usize>(), a.out.display());
            eprintln!("speed: {}", latencies.line("documents", &crate::cmd_deid::at_a_time("prediction", jobs), started.elapsed()));
            Ok(())
        }
        NerCmd::Eval(a) => {
            let gold = read(&a.gold)?;
            let pred = ner::load_tagger(&a.model, None)?.predict(&gold)?;
            let report = eval::evaluate(&gold, &pred).map_err(|e| anyhow!(e))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", eval::render_table(&report));
            }
            Ok(())
        }
        NerCmd::TrainPerceptron(a) => {
            let mut train = read(&a.train)?;
            let dev = a.dev.as_deref().map(read).transpose()?.unwrap_or_default();
            let mut cfg = perceptron::PerceptronConfig { epochs: a.epochs, members: a.members, stack_folds: a.stack_folds, seed: a.seed, seed_candidates: a.seed_candidates, tag_scheme: a.tag_scheme.parse()?, boundaries: a.boundaries, language: a.language.as_deref().map(str::parse).transpose().map_err(|e: String| anyhow!(e))?, ..Default::default() };
            if let Some(sets) = &a.feature_sets {
                cfg.feature_sets = sets.clone();
            }
            let surrogates = if a.surrogates == "corpus" { deid::SurrogateSource::Corpus } else { deid::SurrogateSource::Lists };
            let augment = ner::config::AugmentSection { copies: a.augment, labels: a.labels.clone(), surrogates, ..Default::default() };
            let copies = augment.copies_for(train.len());
            if copies > 0 {
                let labels = augment.label_map()?;
                eprintln!("{} surrogate copies of each of the {} training documents", copies, train.len());
                train = ner::augmented(&train, copies, cfg.seed, cfg.language, &labels, augment.surrogates)?;
            }
            if let Some(path) = &a.unlabelled {
                let unlabelled = read(path)?;
                eprintln!("self-training: a first tagger labels {} unlabelled documents…", unlabelled.len());
                let silver = perceptron::self_training_documents(&cfg, &train, &dev, &unlabelled, &progress::Silent).with_context(|| format!("self-training on {}", path.display()))?;
                train.extend(silver);
            }
            // Training prints nothing until it ends (a stacked tagger takes minutes, a committee
            // one such time per tagger): say what is being trained.
            eprintln!(
                "training {} perceptron tagger(s) on feature sets {:?}{}{}{}, {} epochs each, on {} documents{}…",
                cfg.feature_sets.len(),
                cfg.feature_sets,
                if cfg.tag_scheme == perceptron::TagScheme::Bilou { ", BILOU tags" } else { "" },
                if cfg.stack_folds > 0 { format!(", each stacked on {} folds", cfg.stack_folds) } else { String::new() },
                if cfg.seed_candidates > 1 { format!(", on {} seeds (the best on dev is kept)", cfg.seed_candidates) } else { String::new() },
                cfg.epochs,
                train.len(),
                if cfg.boundaries { format!(", then a boundary model on {} jackknifed taggers", perceptron::BOUNDARY_FOLDS) } else { String::new() }
            );
            let bars = crate::bars::Bars::new();
            progress::Progress::start(&bars, "perceptron epochs", perceptron::planned_epochs(&cfg));
            let trained = perceptron::train(&cfg, &train, &dev, Some(&a.out), &bars);
            progress::Progress::finish(&bars);
            let (_, s) = trained?;
            let kept = s.kept_seed();
            for (seed, f1) in &s.seed_candidates {
                eprintln!("seed {seed}: dev token F1 {f1:.4}{}", if kept == Some(*seed) { " (kept)" } else { "" });
            }
            if let Some(b) = &s.boundaries {
                let dev = match (b.dev_strict_f1_without, b.dev_strict_f1_with) {
                    (Some(x), Some(y)) => format!("dev strict F1 {x:.4} → {y:.4}: {}", if b.kept { "kept" } else { "not kept" }),
                    _ => "no dev set: kept".into(),
                };
                eprintln!("boundary model: learned from {} entities, {} of them misplaced; {dev}", b.training.examples, b.training.misplaced);
            }
            eprintln!("trained in {:.1} s ({} features), best epoch {}; model: {}", s.seconds, s.features, s.best_epoch, a.out.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: NerCmd,
    }

    #[test]
    fn flags_and_set_override_defaults() {
        let cli = Cli::parse_from([
            "x", "train", "--train", "t", "--out", "o", "--preset", "tiny", "--epochs", "3", "--max-minutes", "1.5", "--seed", "9",
            "--set", "encoder.hidden_size=48", "--set", "encoder.num_layers=3", "--set", "select_metric=\"token\"", "--set", "guide.folds=4",
        ]);
        let NerCmd::Train(a) = cli.cmd else { panic!() };
        let c = a.to_config().unwrap();
        assert_eq!((c.encoder.preset, c.optimizer.epochs, c.optimizer.max_minutes, c.seed), (ner::Preset::Tiny, 3, Some(1.5), 9));
        assert_eq!((c.dims().hidden_size, c.dims().num_layers, c.dims().num_heads), (48, 3, 2));
        assert_eq!(c.select_metric, ner::Metric::Token);
        assert_eq!(c.guide.folds, 4);
        // The config round-trips through TOML (it is embedded in pipeline files).
        let back: ner::TrainConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn the_recipe_file_and_overrides_compose() {
        let cli = Cli::parse_from(["x", "train", "--train", "t", "--out", "o", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/ner-meddocan.toml"), "--set", "guide.perceptron.seed_candidates=3"]);
        let NerCmd::Train(a) = cli.cmd else { panic!() };
        let c = a.to_config().unwrap();
        assert_eq!((c.guide.folds, c.guide.perceptron.stack_folds, c.guide.perceptron.seed_candidates, c.seed), (5, 5, 3, 7));
        let bad = Cli::parse_from(["x", "train", "--train", "t", "--out", "o", "--set", "guide.fold=5"]);
        let NerCmd::Train(a) = bad.cmd else { panic!() };
        assert!(format!("{:#}", a.to_config().unwrap_err()).contains("fold"));
    }
}
