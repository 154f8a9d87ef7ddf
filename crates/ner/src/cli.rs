//! Command-line arguments of `synthdeid ner ...`, kept here so the binary only adds one enum
//! variant (`Ner { #[command(subcommand)] cmd: ner::cli::NerCommand }`) and does the corpus I/O.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::config::{Metric, Preset, TrainConfig};

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process; boxing would only obscure the API
pub enum NerCommand {
    /// Train a tagger on gold documents; writes a model directory (HF layout).
    Train(TrainArgs),
    /// Annotate documents (annotated or not) with a trained model: the machine annotator.
    Predict(PredictArgs),
    /// Predict and score against gold documents in one go.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Gold training documents (BRAT directory or JSONL).
    #[arg(long)]
    pub train: PathBuf,
    /// Gold dev documents, for model selection only.
    #[arg(long)]
    pub dev: Option<PathBuf>,
    /// Model directory to write (also holds the resumable checkpoint).
    #[arg(long)]
    pub out: PathBuf,
    /// Base settings from a TOML or JSON file (a serialised `TrainConfig`); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model size when training from scratch.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Fine-tune this HF checkpoint directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub init: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Training time budget in minutes (across resumes); the best model so far is kept.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub hidden_size: Option<usize>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    /// Feed-forward (intermediate) size.
    #[arg(long)]
    pub ffn: Option<usize>,
    /// Sub-word vocabulary size trained from scratch.
    #[arg(long)]
    pub vocab_size: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (default 1e-3 from scratch, 5e-5 with --init).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub warmup_ratio: Option<f64>,
    /// Warmup steps at least (at most half of all steps).
    #[arg(long)]
    pub warmup_min_steps: Option<u64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Clip gradients to this global norm (0: off).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Words per window.
    #[arg(long)]
    pub window: Option<usize>,
    /// Step between prediction windows.
    #[arg(long)]
    pub stride: Option<usize>,
    /// Step between training windows.
    #[arg(long)]
    pub train_stride: Option<usize>,
    /// Word-shape embedding buckets (0: off).
    #[arg(long)]
    pub shape_buckets: Option<usize>,
    /// Hash buckets of the lower-cased word added to each sub-word's input (0: off).
    #[arg(long)]
    pub word_buckets: Option<usize>,
    /// Hash buckets of the word's 3-character prefix, and as many of its suffix (0: off).
    #[arg(long)]
    pub affix_buckets: Option<usize>,
    /// Stack on a feature perceptron: its tags become encoder inputs, jackknifed over this many
    /// folds of the training documents (0: off).
    #[arg(long)]
    pub guide_folds: Option<usize>,
    /// Perceptrons (document orders) averaged into the kept guide; more is a stronger guide at
    /// the same prediction cost, trained in parallel.
    #[arg(long)]
    pub guide_members: Option<usize>,
    /// Make the kept guide a stacked perceptron over this many folds (0: off): stronger, at
    /// about 6× the guide's training time.
    #[arg(long)]
    pub guide_stack_folds: Option<usize>,
    /// With --guide-stack-folds: train the encoder on the stacked guide's out-of-fold tags (the
    /// kind it sees at prediction) instead of plain jackknifed perceptrons' tags.
    #[arg(long)]
    pub guide_stacked_inputs: bool,
    /// Feature sets of the kept guide, comma-separated: one perceptron per entry, decoded
    /// together as a committee (e.g. 3,3,1: two on the newest features, one on the first set;
    /// each costs its training time again). Default: one, on the newest set.
    #[arg(long, value_delimiter = ',')]
    pub guide_feature_sets: Option<Vec<u32>>,
    /// Train the kept guide on this many seeds (seed, seed + 1000, …; with a committee, seeds
    /// step by 1000 per feature set) and keep the best on dev token F1; each costs the guide's
    /// training time again. Needs --dev.
    #[arg(long, value_name = "N")]
    pub guide_seed_candidates: Option<usize>,
    /// Dev metric that picks the best epoch.
    #[arg(long, value_parser = ["strict", "token"])]
    pub select: Option<String>,
    /// Decode without an `O` penalty (by default one is picked on dev with the epoch).
    #[arg(long)]
    pub no_o_penalty: bool,
    /// After training, learn to move predicted entities' edges by up to two words (a span-boundary
    /// model trained on the guide's jackknifed tags; needs --guide-folds); kept if dev does not fall.
    /// Given again with the --out of a finished run, it adds one without training again.
    #[arg(long)]
    pub boundaries: bool,
    /// Start over even if OUT/checkpoint exists.
    #[arg(long)]
    pub no_resume: bool,
}

impl TrainArgs {
    /// The settings: the `--config` file (or defaults), then every given flag.
    pub fn to_config(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => {
                let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                if p.extension().is_some_and(|e| e == "json") {
                    serde_json::from_str(&s).with_context(|| format!("parsing {}", p.display()))?
                } else {
                    toml::from_str(&s).with_context(|| format!("parsing {}", p.display()))?
                }
            }
            None => TrainConfig::default(),
        };
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => { $( if let Some(v) = self.$flag.clone() { c.$field = v; } )* };
        }
        macro_rules! set_opt {
            ($($flag:ident => $field:ident),*) => { $( if let Some(v) = self.$flag.clone() { c.$field = Some(v); } )* };
        }
        set!(preset => preset, epochs => epochs, seed => seed, batch_size => batch_size, warmup_ratio => warmup_ratio, warmup_min_steps => warmup_min_steps,
             weight_decay => weight_decay, max_grad_norm => max_grad_norm, window => window,
             stride => predict_stride, train_stride => train_stride, shape_buckets => shape_buckets,
             word_buckets => word_buckets, affix_buckets => affix_buckets,
             guide_folds => guide_folds, guide_members => guide_members, guide_stack_folds => guide_stack_folds,
             guide_feature_sets => guide_feature_sets, guide_seed_candidates => guide_seed_candidates);
        set_opt!(init => init, max_minutes => max_minutes, hidden_size => hidden_size, layers => num_layers,
                 heads => num_heads, ffn => intermediate_size, vocab_size => vocab_size, lr => lr);
        if let Some(d) = self.dropout {
            c.dropout = d;
            c.attention_dropout = d;
        }
        if self.guide_stacked_inputs {
            c.guide_stacked_inputs = true;
        }
        if let Some(s) = &self.select {
            c.select_metric = if s == "token" { Metric::Token } else { Metric::Strict };
        }
        if self.no_o_penalty {
            c.tune_o_penalty = false;
        }
        if self.boundaries {
            c.boundaries = true;
        }
        if self.no_resume {
            c.resume = false;
        }
        Ok(c)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: NerCommand,
    }

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::parse_from([
            "x", "train", "--train", "t", "--out", "o", "--preset", "tiny", "--epochs", "3", "--max-minutes", "1.5",
            "--seed", "9", "--hidden-size", "48", "--layers", "3", "--select", "token",
        ]);
        let NerCommand::Train(a) = cli.cmd else { panic!() };
        let c = a.to_config().unwrap();
        assert_eq!((c.preset, c.epochs, c.max_minutes, c.seed), (Preset::Tiny, 3, Some(1.5), 9));
        assert_eq!((c.dims().hidden_size, c.dims().num_layers, c.dims().num_heads), (48, 3, 2));
        assert_eq!(c.select_metric, Metric::Token);
        // The config round-trips through TOML (it is embedded in pipeline files).
        let back: TrainConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
