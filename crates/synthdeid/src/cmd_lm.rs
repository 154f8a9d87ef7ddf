//! `synthdeid lm {train, generate, perplexity, convert}`: clap arguments and entry points over
//! the `lm` library (which does not depend on clap).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use corpus::shard::Shard;
use corpus::{Document, Format, ReadOptions};

use lm::{Backend, GenerateConfig, OpenAiConfig, Preset, SamplingConfig, TrainConfig};

#[derive(Subcommand)]
pub enum LmCmd {
    /// Domain-adapt a causal LM on gold text: from scratch, full fine-tuning or LoRA of a local HF checkpoint, or the word n-gram baseline.
    Train(TrainArgs),
    /// Sample synthetic documents from the first words of prompt documents (nucleus sampling, many samples per prompt).
    Generate(GenerateArgs),
    /// Perplexity of documents under a model, per model token and per word.
    Perplexity(PerplexityArgs),
    /// Convert a GGUF checkpoint into an HF directory (f32 safetensors, config, tokenizer.json).
    Convert(ConvertArgs),
}

pub fn lm(cmd: LmCmd) -> Result<()> {
    match cmd {
        LmCmd::Train(a) => run_train(&a),
        LmCmd::Generate(a) => run_generate(&a),
        LmCmd::Perplexity(a) => run_perplexity(&a),
        LmCmd::Convert(a) => run_convert(&a),
    }
}

/// Size presets of [`Preset`] as clap values (the library does not depend on clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// 2 layers × 64, vocabulary 1000: for tests.
    Tiny,
    /// 4 layers × 256, vocabulary 8000: minutes on a laptop CPU.
    Small,
    /// 6 layers × 384, vocabulary 32000 (the speed benchmark's shape).
    Base,
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Preset {
        match p {
            PresetArg::Tiny => Preset::Tiny,
            PresetArg::Small => Preset::Small,
            PresetArg::Base => Preset::Base,
        }
    }
}

fn read_docs(path: &Path) -> Result<Vec<Document>> {
    corpus::read_corpus(path, None, &ReadOptions::default()).with_context(|| format!("reading {}", path.display()))
}

/// `synthdeid lm train`: domain-adapt a generator.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Training corpus (BRAT directory, JSONL, or text directory).
    #[arg(long)]
    pub train: PathBuf,
    /// Development corpus (perplexity each epoch; the best epoch is kept).
    #[arg(long)]
    pub dev: PathBuf,
    /// Output model directory (HF layout; a checkpoint inside allows resuming).
    #[arg(long)]
    pub out: PathBuf,
    /// gpt2 or llama (transformer decoders), or ngram (word 4-gram baseline).
    #[arg(long, default_value = "gpt2")]
    pub generator: String,
    /// Size preset of a model trained from scratch.
    #[arg(long, value_enum, default_value = "small")]
    pub preset: PresetArg,
    /// Pretrained model to fine-tune (fully, or with LoRA when --lora-rank > 0): an HF directory or a GGUF file / directory.
    #[arg(long)]
    pub init: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.05)]
    pub lora_dropout: f64,
    /// Comma-separated module names (default: c_attn for GPT-2, q_proj,v_proj for Llama).
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Training time budget in minutes, across resumes (a stopped run saves a checkpoint and
    /// resumes when run again with a larger budget).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 256)]
    pub block_size: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.05)]
    pub warmup_ratio: f64,
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long)]
    pub vocab_size: Option<usize>,
    #[arg(long)]
    pub hidden: Option<usize>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub kv_heads: Option<usize>,
    #[arg(long)]
    pub ffn: Option<usize>,
    #[arg(long)]
    pub max_positions: Option<usize>,
    #[arg(long)]
    pub dropout: Option<f64>,
    /// n of the n-gram baseline.
    #[arg(long, default_value_t = 4)]
    pub ngram_order: usize,
    #[arg(long)]
    pub no_progress: bool,
}

impl TrainArgs {
    pub fn to_config(&self) -> TrainConfig {
        let mut c = TrainConfig {
            generator: self.generator.clone(),
            preset: self.preset.into(),
            init: self.init.clone(),
            epochs: self.epochs,
            max_minutes: self.max_minutes,
            seed: self.seed,
            block_size: self.block_size,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            warmup_ratio: self.warmup_ratio,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            ..Default::default()
        };
        c.lora.rank = self.lora_rank;
        c.lora.alpha = self.lora_alpha;
        c.lora.dropout = self.lora_dropout;
        c.lora.target_modules = self.lora_targets.clone();
        c.ngram.order = self.ngram_order;
        let d = &mut c.dims;
        (d.vocab_size, d.hidden, d.layers, d.heads, d.kv_heads, d.ffn, d.max_positions, d.dropout) =
            (self.vocab_size, self.hidden, self.layers, self.heads, self.kv_heads, self.ffn, self.max_positions, self.dropout);
        c
    }
}

pub fn run_train(args: &TrainArgs) -> Result<()> {
    let train = read_docs(&args.train)?;
    let dev = read_docs(&args.dev)?;
    let report = lm::train(&args.to_config(), &train, &dev, &args.out, crate::bars::Bars::or_silent(!args.no_progress).as_ref())?;
    println!("best dev perplexity: {:.4}", report.best_dev_perplexity);
    if !report.finished {
        println!("stopped by --max-minutes after {} steps; run the same command again to resume", report.steps);
    }
    Ok(())
}

/// `synthdeid lm generate`: sample synthetic documents from prompts.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Model directory written by `lm train`, a local HF GPT-2 / Llama / Mistral / Qwen2 / Gemma 3 directory, or a GGUF file (or a directory holding one, as `models fetch` leaves it).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Corpus whose documents' first words are the prompts.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Output: a `.jsonl` file, else a directory of `.txt` files.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub prompt_words: usize,
    #[arg(long, default_value_t = 1)]
    pub samples_per_prompt: usize,
    /// New subword tokens per sample (words for the n-gram baseline).
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f64,
    /// 0: no top-k cut.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// 0: greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Decoding weights: f32, or bf16 (half the bytes a step reads; CPUs with AVX-512 BF16, else f32).
    #[arg(long, default_value = "f32")]
    pub precision: lm::Precision,
    /// Draw only the tokens of this corpus (the generator's training text): a smaller output layer.
    #[arg(long, value_name = "CORPUS")]
    pub vocabulary_from: Option<PathBuf>,
    #[arg(long)]
    pub no_progress: bool,
    /// Only shard I of N (I from 0) of the prompt documents: N contiguous runs; `synthdeid merge` joins the N outputs.
    #[arg(long, value_name = "I/N", help_heading = "Scaling out")]
    pub shard: Option<Shard>,
    /// Where samples come from: this process, or an OpenAI-compatible server (vLLM, llama.cpp's, TGI).
    #[arg(long, value_enum, default_value_t = BackendArg::Local, help_heading = "Scaling out")]
    pub backend: BackendArg,
    /// The server's root URL (openai backend).
    #[arg(long, default_value = "http://127.0.0.1:8000", help_heading = "Scaling out")]
    pub base_url: String,
    /// Model name sent to the server (default: the one it lists).
    #[arg(long, help_heading = "Scaling out")]
    pub served_model: Option<String>,
    /// Environment variable holding the API key.
    #[arg(long, default_value = "OPENAI_API_KEY", help_heading = "Scaling out")]
    pub api_key_env: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, help_heading = "Scaling out")]
    pub concurrency: usize,
    /// Retries of a request that may pass (connection lost, timeout, HTTP 429/5xx), with backoff.
    #[arg(long, default_value_t = 5, help_heading = "Scaling out")]
    pub retries: usize,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 600.0, help_heading = "Scaling out")]
    pub timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Local,
    Openai,
}

impl GenerateArgs {
    /// The server's settings (openai backend).
    pub fn openai(&self) -> Option<OpenAiConfig> {
        (self.backend == BackendArg::Openai).then(|| OpenAiConfig {
            base_url: self.base_url.clone(),
            model: self.served_model.clone().unwrap_or_default(),
            api_key_env: self.api_key_env.clone(),
            concurrency: self.concurrency,
            retries: self.retries,
            timeout_s: self.timeout,
            ..OpenAiConfig::default()
        })
    }

    pub fn to_config(&self) -> GenerateConfig {
        GenerateConfig {
            prompt_words: self.prompt_words,
            samples_per_prompt: self.samples_per_prompt,
            max_new_tokens: self.max_new_tokens,
            sampling: SamplingConfig { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p },
            seed: self.seed,
            batch_size: self.batch_size,
            precision: self.precision,
            vocabulary: if self.vocabulary_from.is_some() { lm::Vocabulary::Corpus } else { lm::Vocabulary::Full },
        }
    }
}

/// Writes documents as JSONL (`.jsonl` path) or as a text directory.
pub fn write_docs(path: &Path, docs: &[Document]) -> Result<()> {
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    corpus::write_corpus(path, if jsonl { Some(Format::Jsonl) } else { Some(Format::Text) }, docs)
        .with_context(|| format!("writing {}", path.display()))
}

/// Generates into `--out`, resumably: each finished sample is appended to `OUT.partial.jsonl`
/// (flushed to disk), which a run with the same settings picks up; the output is written (one
/// atomic write) when every sample is there, and the journal is then removed.
pub fn run_generate(args: &GenerateArgs) -> Result<()> {
    let cfg = args.to_config();
    let openai = args.openai();
    let mut backend = match (&openai, &args.model) {
        (Some(o), _) => Backend::open(Path::new(""), Some(o), cfg.precision)?,
        (None, Some(m)) => Backend::open(m, None, cfg.precision)?,
        (None, None) => bail!("--model: give the model to generate with (or --backend openai to use a server)"),
    };
    let vocabulary = match &args.vocabulary_from {
        Some(path) => Some(backend.vocabulary_of(&read_docs(path)?)?),
        None => None,
    };
    if let Some(ids) = &vocabulary {
        backend.restrict_vocabulary(ids)?;
    }
    let shard = args.shard.unwrap_or_default();
    let all = lm::prompts_from_docs(&read_docs(&args.prompts)?, cfg.prompt_words);
    let prompts = shard.select(&all);
    let mut settings = serde_json::json!({
        "source": backend.identity(args.model.as_deref()),
        "prompts": prompts,
        "samples_per_prompt": cfg.samples_per_prompt,
        "max_new_tokens": cfg.max_new_tokens,
        "sampling": cfg.sampling,
        "seed": cfg.seed,
    });
    // bf16 samples differ from f32 ones: a journal keeps to one precision (f32 journals as before).
    if !cfg.precision.is_f32() {
        settings["precision"] = serde_json::to_value(cfg.precision)?;
    }
    // Samples from a cut vocabulary differ too: the journal records the tokens kept.
    if let Some(ids) = &vocabulary {
        settings["vocabulary"] = serde_json::json!(ids);
    }
    let journal_path = lm::journal_path(&args.out);
    let (mut journal, done) = lm::Journal::open(&journal_path, &settings)?;
    if !done.is_empty() {
        eprintln!("resuming: {} finished sample(s) in {}", done.len(), journal_path.display());
    }
    let t = std::time::Instant::now();
    let (docs, stats) = backend.generate_resuming(prompts, &cfg, done, |d| journal.append(d), crate::bars::Bars::or_silent(!args.no_progress).as_ref())?;
    write_docs(&args.out, &docs)?;
    journal.finish()?;
    let secs = t.elapsed().as_secs_f64();
    let tokens = stats.new_tokens.map(|n| format!(", {n} new tokens, {:.1} tokens/s", n as f64 / secs.max(1e-9))).unwrap_or_default();
    let of = if shard.is_whole() { String::new() } else { format!(" (shard {shard} of {} prompts)", all.len()) };
    eprintln!(
        "{} documents from {} prompts{of}: {} generated, {} resumed, in {secs:.1}s{tokens} -> {}",
        docs.len(),
        prompts.len(),
        stats.samples,
        stats.resumed,
        args.out.display()
    );
    if !stats.cut.is_empty() {
        eprintln!(
            "{} of the {} generated samples stopped at --max-new-tokens {} before their document ended; a larger value lets them finish",
            stats.cut.len(),
            stats.samples,
            cfg.max_new_tokens
        );
    }
    Ok(())
}

/// `synthdeid lm convert`: a GGUF checkpoint as an HF directory.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// GGUF file, or a directory holding one (as `models fetch` leaves it).
    #[arg(long)]
    pub model: PathBuf,
    /// Output HF directory: config.json, model.safetensors (f32), tokenizer.json.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_convert(args: &ConvertArgs) -> Result<()> {
    let file = lm::gguf::find(&args.model)?.with_context(|| format!("{}: no .gguf file there", args.model.display()))?;
    lm::gguf::write_hf_dir(&file, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// `synthdeid lm perplexity`.
#[derive(Debug, Clone, Args)]
pub struct PerplexityArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Corpus to score.
    #[arg(long)]
    pub input: PathBuf,
    /// The weights as `lm generate --precision` runs them: f32 or bf16.
    #[arg(long, default_value = "f32")]
    pub precision: lm::Precision,
}

pub fn run_perplexity(args: &PerplexityArgs) -> Result<()> {
    let p = lm::perplexity_report_at(&args.model, &read_docs(&args.input)?, args.precision)?;
    println!("perplexity: {:.4}", p.per_token);
    println!("perplexity per word: {:.4} ({} tokens, {} words)", p.per_word, p.tokens, p.words);
    Ok(())
}
