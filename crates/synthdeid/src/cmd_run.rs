//! `run` and `demo`: the end-to-end pipeline.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use pipeline::{RunConfig, RunOptions};
use std::path::PathBuf;

#[derive(Args)]
#[command(after_long_help = "Stages, in order: annotator (NER on gold) → generator (LM adaptation) → generate (prompts: the \
first words of held-out documents) → annotate (the annotator labels the synthetic text in 128-word windows) → \
harden (optional surrogates) → synthetic_ner (NER on the synthetic corpus only) → evaluate (both NER models on the \
gold test set) → audit (n-gram recall, leaked PHI strings, nearest documents) → report.\n\n\
Each stage's output lives in OUT/stages/STAGE-HASH (or --cache), keyed by its settings and inputs: a rerun skips \
finished stages, a changed setting reruns what depends on it, and a killed run resumes (training checkpoints, \
generation shards); a cell with more samples per prompt takes those a cell with fewer already drew.\n\n\
Config: a top-level `extends = \"BASE.toml\"` starts from another config. Sections: [run] name, seed, shards (generate and annotate as N parallel processes); [data] train, dev, test, prompt_ratio, generator_ratio, annotator_ratio; \
[annotator] and [synthetic_ner] (NER training settings, see `synthdeid ner train --help`); [generator] (LM training \
settings, see `synthdeid lm train --help`); [generation] prompt_words, samples_per_prompt, max_new_tokens, top_p, top_k, \
temperature, batch_size, precision (f32 or bf16), annotate_window, unfinished (keep or drop: samples cut at max_new_tokens), vocabulary (full or corpus: the tokens of the generator's training text); [hardening] enabled, key, keep, keep_common_min_documents, language (default: detected), labels (a label map), surrogates (lists, or corpus: widened with the synthetic corpus's own strings); [audit] ngram, nearest, show_examples, \
template_share, bootstrap; [canaries] count, repetitions; [reference] source, gold_token_f1, synthetic_token_f1; \
[ablation] generator_ratio, annotator_ratio, samples_per_prompt, generator_preset, generators.NAME (a generator \
section each), hardening ([false, true]), seeds, reseed_from (split, generate or synthetic_ner: where the seeds start to redraw), folds. See configs/meddocan-gemma.toml. Unknown keys, missing paths and impossible ratios stop the run before any work.")]
pub struct RunArgs {
    /// The run's TOML config.
    pub config: PathBuf,
    /// Run directory (outputs, cache, report).
    #[arg(long)]
    pub out: PathBuf,
    /// Rerun this stage even if cached, and the stages that read its output (repeatable).
    #[arg(long)]
    pub force: Vec<String>,
    /// Stage cache shared between runs (default OUT/stages): runs of an ablation and of its
    /// main config reuse each other's finished stages.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Run only this cell of the ablation grid (repeatable; names as --dry-run prints them). The
    /// report adds the other cells where results with the same stage keys are recorded: in OUT
    /// by an earlier run, or in a --results-from directory.
    #[arg(long, value_name = "NAME")]
    pub cell: Vec<String>,
    /// With --cell: a run or results directory (summary.json or results.json) whose cells with
    /// the same stage keys the report takes for the cells not run (repeatable).
    #[arg(long, value_name = "DIR")]
    pub results_from: Vec<PathBuf>,
    /// Only check the config and print the ablation cells; do no work.
    #[arg(long)]
    pub dry_run: bool,
    /// Run the generate and annotate stages as N processes in parallel (default: `run.shards` of
    /// the config, else 1); the same output as one process, byte for byte.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
}

pub fn run(a: RunArgs) -> Result<()> {
    let cfg = RunConfig::load(&a.config)?;
    let cells = pipeline::select_cells(pipeline::cells(&cfg), &a.cell)?;
    if a.dry_run {
        println!("config ok: {} cell(s)", cells.len());
        for c in &cells {
            println!("  {}", c.name);
        }
        let opts = RunOptions { out: a.out.clone(), cells: a.cell, results_from: a.results_from, ..Default::default() };
        let kept = pipeline::earlier_cells(&cfg, &opts)?;
        if !kept.is_empty() {
            println!("the report will also hold {} cell(s) from recorded results with the same stage keys:", kept.len());
            for e in kept {
                println!("  {} (from {})", e.cell, e.from);
            }
        }
        return Ok(());
    }
    if a.shards == Some(0) {
        bail!("--shards 0: give at least 1");
    }
    let mut command = format!("synthdeid run {} --out {}", a.config.display(), a.out.display());
    if let Some(c) = &a.cache {
        command.push_str(&format!(" --cache {}", c.display()));
    }
    if let Some(n) = a.shards {
        command.push_str(&format!(" --shards {n}"));
    }
    let opts = RunOptions {
        out: a.out.clone(),
        force: a.force,
        verbose: true,
        progress: progress::Handle::new(crate::bars::Bars::new()),
        cache: a.cache,
        command: Some(command),
        shards: a.shards,
        worker: worker(),
        cells: a.cell,
        results_from: a.results_from,
        ..Default::default()
    };
    let summary = pipeline::run(&cfg, &opts)?;
    print_headline(&summary, &a.out);
    Ok(())
}

fn print_headline(summary: &pipeline::RunSummary, out: &std::path::Path) {
    for c in &summary.cells {
        println!(
            "{}: token F1 gold {:.4} / synthetic {:.4}; strict F1 gold {:.4} / synthetic {:.4}; 5-gram recall {:.3}; training PHI strings leaked {:.1}%",
            c.cell.name,
            c.gold_ner.token.micro.f1,
            c.synthetic_ner.token.micro.f1,
            c.gold_ner.entity_strict.micro.f1,
            c.synthetic_ner.entity_strict.micro.f1,
            c.audit.ngram_recall.recall,
            100.0 * c.audit.leakage.share
        );
    }
    println!("report: {}", out.join("report.html").display());
}

#[derive(Args)]
pub struct DemoArgs {
    /// Run directory.
    #[arg(long, default_value = "demo-run")]
    pub out: PathBuf,
    /// Documents in the built-in corpus (split 60/20/20 into train/dev/test).
    #[arg(long, default_value_t = 100)]
    pub documents: usize,
    #[arg(long, default_value_t = 13)]
    pub seed: u64,
}

pub fn demo(a: DemoArgs) -> Result<()> {
    eprintln!(
        "synthdeid demo: the whole pipeline on a built-in corpus of {} synthetic clinical notes (made by this program, \
no real data), with fast models, in a few minutes:\n  \
1. train a feature-perceptron NER annotator on the gold notes\n  \
2. adapt a tiny GPT-2 generator on them\n  \
3. sample synthetic notes from 3-word prompts of held-out notes (top-p 0.95)\n  \
4. machine-annotate the synthetic notes, train a second perceptron on them only\n  \
5. score both on the gold test notes, audit the synthetic corpus for copied PHI, write the report\n\
Output: {}\n",
        a.documents,
        a.out.display()
    );
    let config = pipeline::builtin::write_demo(&a.out, a.documents, a.seed).map_err(|e| anyhow!("{e:#}"))?;
    let cfg = RunConfig::load(&config)?;
    let command = format!("synthdeid demo --out {} --documents {} --seed {}", a.out.display(), a.documents, a.seed);
    let opts = RunOptions { out: a.out.clone(), verbose: true, progress: progress::Handle::new(crate::bars::Bars::new()), command: Some(command), worker: worker(), ..Default::default() };
    let summary = pipeline::run(&cfg, &opts)?;
    print_headline(&summary, &a.out);
    Ok(())
}

/// This binary, which runs the shards of a stage (`stage-shard`).
fn worker() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

#[derive(Args)]
pub struct StageShardArgs {
    /// The stage's `parts/task.json`.
    pub task: PathBuf,
    #[arg(long, value_name = "I/N")]
    pub shard: corpus::shard::Shard,
}

/// One shard of a stage, in a process of its own: ends with the run that started it (a killed run
/// leaves no shard running on; it resumes from what the shards finished).
pub fn stage_shard(a: StageShardArgs) -> Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(parent) = std::env::var(pipeline::shards::PARENT_ENV).ok().and_then(|p| p.parse::<i32>().ok()) {
        // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid only read or set this process's own state.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                bail!("shard {}: the run that started it (pid {parent}) is gone", a.shard);
            }
        }
    }
    pipeline::shards::work(&a.task, a.shard)
}
