//! A stage run as N shards in parallel processes on one machine (`[run] shards = N`, or
//! `synthdeid run --shards N`): the generate and annotate stages write what their shards need to
//! `parts/task.json` in the stage directory, start N worker processes (the binary's hidden
//! `synthdeid stage-shard parts/task.json --shard I/N`), each writing its part
//! `parts/I-of-N.jsonl` and its log `parts/I-of-N.log`, wait for all, and join the parts in shard
//! order with [`corpus::shard::merge_documents`], as `synthdeid merge` does. A shard's output
//! depends only on its own documents (generation: on each prompt document and seeds derived from
//! its id; annotation: on each document), so the merged output is the unsharded one byte for
//! byte, and stage keys do not hold the shard count.
//!
//! Resume: a part already written is kept; the generate stage's shards also keep each finished
//! prompt document's samples (`shards/ID.jsonl`, the files the unsharded stage writes), so a
//! killed run resumes mid-shard, with any shard count. A shard that fails stops the others (what
//! they finished stays) and the error names it and its log.
//!
//! Hardening is not sharded: its surrogates are consistent across the whole corpus, and it runs
//! in seconds.

use anyhow::{anyhow, bail, Context, Result};
use corpus::shard::Shard;
use corpus::{Document, Format};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary's hidden subcommand that runs one shard of a task: `EXE stage-shard TASK --shard I/N`.
pub const WORKER_COMMAND: &str = "stage-shard";

/// Environment variable a worker gets with the pid of the run that started it (a worker whose run
/// is gone stops: see the binary's `stage-shard`).
pub const PARENT_ENV: &str = "SYNTHDEID_SHARD_PARENT";

/// What the shards of a stage do.
// One task a stage, written to a file: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case", deny_unknown_fields)]
pub enum Task {
    /// Samples for each prompt, one `docs_dir/ID.jsonl` per prompt document.
    Generate {
        /// The generator stage's model directory (unused with `openai`).
        model: PathBuf,
        /// The server's settings (its key's variable name, never the key).
        openai: Option<lm::OpenAiConfig>,
        prompts: Vec<lm::Prompt>,
        settings: lm::GenerateConfig,
        docs_dir: PathBuf,
        /// Other generate stages' `shards` directories whose samples this one may take
        /// ([`crate::cache::sample_siblings`]).
        #[serde(default)]
        reuse_from: Vec<PathBuf>,
        /// Stop with an error after this many prompt documents (the resume test's simulated kill).
        #[serde(default)]
        stop_after_prompts: Option<usize>,
        /// The token ids samples draw from (`generation.vocabulary = "corpus"`); all when absent.
        #[serde(default)]
        vocabulary: Option<Vec<u32>>,
    },
    /// Machine annotation of `input` with the annotator in `model`, in windows of `window` words.
    Annotate { model: PathBuf, window: usize, input: PathBuf },
}

/// One part of a sharded stage's output, as `provenance.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartRecord {
    /// `I/N`.
    pub shard: String,
    /// The part, relative to the stage directory.
    pub file: String,
    /// The worker's log, relative to the stage directory (absent when the shard ran in the run's
    /// own process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    pub documents: usize,
    /// Wall time of the shard's process; absent for a part kept from an earlier, killed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

fn part_name(shard: Shard) -> String {
    format!("{}-of-{}", shard.index, shard.count)
}

fn read(path: &Path) -> Result<Vec<Document>> {
    corpus::read_corpus(path, None, &corpus::ReadOptions::default()).map_err(|e| anyhow!(e))
}

fn write(path: &Path, docs: &[Document]) -> Result<()> {
    corpus::write_corpus(path, Some(Format::Jsonl), docs).map_err(|e| anyhow!(e))
}

/// Samples for each of `prompts`, resumably: a prompt document's samples go to
/// `docs_dir/ID.jsonl` when finished, and a prompt whose file is there is not generated again.
/// `on_prompt(i, generated)` follows each prompt. Returns the samples of all `prompts`, in order.
/// Samples a sibling stage already drew (same ids, in `reuse_from`'s `ID.jsonl`) are taken, not
/// drawn again: a sample's text depends on its id and the family's settings only.
/// The generate stage's one code path, sharded or not.
pub(crate) fn generate_prompts(
    backend: &lm::Backend,
    prompts: &[lm::Prompt],
    settings: &lm::GenerateConfig,
    docs_dir: &Path,
    reuse_from: &[PathBuf],
    stop_after: Option<usize>,
    mut on_prompt: impl FnMut(usize, bool),
) -> Result<Vec<Document>> {
    std::fs::create_dir_all(docs_dir).with_context(|| docs_dir.display().to_string())?;
    let file = |p: &lm::Prompt| docs_dir.join(format!("{}.jsonl", p.id));
    let mut made = 0;
    for (i, p) in prompts.iter().enumerate() {
        let f = file(p);
        let generated = !f.is_file();
        if generated {
            if stop_after.is_some_and(|n| made >= n) {
                bail!("interrupted after {made} prompt documents (simulated kill)");
            }
            let mut drawn = std::collections::HashMap::new();
            // Which of the taken samples stopped at max_new_tokens: None if a sibling did not say.
            let mut cut_before: Option<Vec<String>> = Some(Vec::new());
            for sibling in reuse_from {
                let g = sibling.join(format!("{}.jsonl", p.id));
                if g.is_file() {
                    drawn.extend(read(&g)?.into_iter().map(|d| (d.id.clone(), d)));
                    match (&mut cut_before, read_cut(&sibling.join(cut_name(p)))) {
                        (Some(cut), Some(ids)) => cut.extend(ids),
                        _ => cut_before = None,
                    }
                }
            }
            let (samples, stats) = backend.generate_resuming(std::slice::from_ref(p), settings, drawn, |_| Ok(()), &progress::Silent)?;
            // Without token counts (a server that reports none) nobody knows which samples were cut.
            let cut_known = cut_before.filter(|_| stats.samples == 0 || stats.new_tokens.is_some());
            if let Some(mut cut) = cut_known {
                cut.extend(stats.cut);
                cut.retain(|id| samples.iter().any(|d| &d.id == id));
                cut.sort();
                cut.dedup();
                fsutil::atomic_write_private(&docs_dir.join(cut_name(p)), serde_json::to_string(&cut)?.as_bytes()).map_err(|e| anyhow!(e))?;
            }
            write(&f, &samples)?;
            made += 1;
        }
        on_prompt(i, generated);
    }
    let mut all = Vec::new();
    for p in prompts {
        all.extend(read(&file(p))?);
    }
    Ok(all)
}

/// The record beside a prompt document's samples of those that stopped at `max_new_tokens`.
fn cut_name(p: &lm::Prompt) -> String {
    format!("{}.cut.json", p.id)
}

fn read_cut(path: &Path) -> Option<Vec<String>> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The ids of the samples of the generate stage in `docs_dir` that stopped at `max_new_tokens` before their
/// document ended; None where a prompt document has no record (a stage written before they were
/// kept, or a generator that does not count tokens).
pub(crate) fn cut_samples(docs_dir: &Path, prompts: &[lm::Prompt]) -> Option<std::collections::BTreeSet<String>> {
    let mut all = std::collections::BTreeSet::new();
    for p in prompts {
        all.extend(read_cut(&docs_dir.join(cut_name(p)))?);
    }
    Some(all)
}

/// Runs shard `shard` of `task` in this process and returns its documents.
fn run_shard(task: &Task, shard: Shard, log_lines: bool) -> Result<Vec<Document>> {
    match task {
        Task::Generate { model, openai, prompts, settings, docs_dir, reuse_from, stop_after_prompts, vocabulary } => {
            let mut backend = lm::Backend::open(model, openai.as_ref(), settings.precision)?;
            if let Some(ids) = vocabulary {
                backend.restrict_vocabulary(ids)?;
            }
            let mine = shard.select(prompts);
            let started = Instant::now();
            let mut made = 0usize;
            generate_prompts(&backend, mine, settings, docs_dir, reuse_from, *stop_after_prompts, |i, generated| {
                made += generated as usize;
                if log_lines && generated {
                    let left = started.elapsed().as_secs_f64() / made as f64 * (mine.len() - i - 1) as f64;
                    eprintln!("generate shard {shard}: {}/{} prompt documents, about {:.0} min left", i + 1, mine.len(), left / 60.0);
                }
            })
        }
        Task::Annotate { model, window, input } => {
            let docs = read(input)?;
            let mine = shard.select(&docs);
            let annotated = ner::load_tagger(model, Some(*window))?.predict(mine)?;
            if log_lines {
                eprintln!("annotate shard {shard}: {} documents, {} spans", annotated.len(), annotated.iter().map(|d| d.spans.len()).sum::<usize>());
            }
            Ok(annotated)
        }
    }
}

/// The worker's job (`synthdeid stage-shard TASK --shard I/N`): runs its shard of the task in
/// `TASK` and writes the part beside it (`I-of-N.jsonl`, one atomic write).
pub fn work(task_file: &Path, shard: Shard) -> Result<()> {
    let text = std::fs::read_to_string(task_file).with_context(|| format!("reading the shard task {}", task_file.display()))?;
    let task: Task = serde_json::from_str(&text).with_context(|| format!("{}: not a shard task of this synthdeid version", task_file.display()))?;
    let parts = task_file.parent().unwrap_or(Path::new("."));
    let docs = run_shard(&task, shard, true)?;
    write(&parts.join(format!("{}.jsonl", part_name(shard))), &docs)?;
    eprintln!("shard {shard}: wrote {} documents", docs.len());
    Ok(())
}

/// Worker threads per shard process: the run's (`RAYON_NUM_THREADS`, else the cores) shared out,
/// so that N shards do not oversubscribe the cores.
fn threads_per_shard(count: usize) -> usize {
    let total = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    (total / count).max(1)
}

/// Worker processes still running: killed when dropped (an error or a panic in the run leaves
/// none behind; what they finished stays on disk).
struct Workers(Vec<(Shard, Child, Instant)>);

impl Drop for Workers {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last lines of a worker's log, for its error message (synthdeid's own messages, which never
/// quote document text).
fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let kept: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    kept[kept.len().saturating_sub(lines)..].iter().map(|l| format!("\n    {l}")).collect()
}

/// Runs `task` as `count` shards: worker processes of `worker` (the synthdeid binary) in
/// parallel, or, without a worker (the library used on its own), one after another in this
/// process. Parts already written (an earlier, killed run) are kept. `poll` is called about five
/// times a second while workers run (progress). Returns the merged documents and a record of
/// each part.
pub(crate) fn run_sharded(dir: &Path, task: &Task, count: usize, worker: Option<&Path>, verbose: bool, mut poll: impl FnMut()) -> Result<(Vec<Document>, Vec<PartRecord>)> {
    let parts_dir = dir.join("parts");
    std::fs::create_dir_all(&parts_dir).with_context(|| parts_dir.display().to_string())?;
    let task_file = parts_dir.join("task.json");
    fsutil::atomic_write(&task_file, serde_json::to_string_pretty(task)?.as_bytes()).map_err(|e| anyhow!(e))?;
    let part = |s: Shard| parts_dir.join(format!("{}.jsonl", part_name(s)));
    let log = |s: Shard| parts_dir.join(format!("{}.log", part_name(s)));
    let rel = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    let mut seconds: Vec<Option<f64>> = vec![None; count];
    let todo: Vec<Shard> = Shard::all(count).filter(|s| !part(*s).exists()).collect();
    if verbose && todo.len() < count {
        eprintln!("   {} of {count} shards kept from an earlier run", count - todo.len());
    }
    match worker {
        None => {
            for s in &todo {
                let t = Instant::now();
                let docs = run_shard(task, *s, false).with_context(|| format!("shard {s}"))?;
                write(&part(*s), &docs)?;
                seconds[s.index] = Some(t.elapsed().as_secs_f64());
            }
        }
        Some(exe) if !todo.is_empty() => {
            if verbose {
                eprintln!("   {} shard processes of {count}, logs in {}", todo.len(), parts_dir.display());
            }
            let threads = threads_per_shard(count).to_string();
            let mut running = Workers(Vec::new());
            for s in &todo {
                let log_file = std::fs::File::create(log(*s)).with_context(|| log(*s).display().to_string())?;
                let child = Command::new(exe)
                    .arg(WORKER_COMMAND)
                    .arg(&task_file)
                    .arg("--shard")
                    .arg(s.to_string())
                    .env(PARENT_ENV, std::process::id().to_string())
                    .env("RAYON_NUM_THREADS", &threads)
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone()?)
                    .stderr(log_file)
                    .spawn()
                    .with_context(|| format!("starting shard {s} ({} {WORKER_COMMAND})", exe.display()))?;
                running.0.push((*s, child, Instant::now()));
            }
            while !running.0.is_empty() {
                let mut i = 0;
                while i < running.0.len() {
                    let (s, child, started) = &mut running.0[i];
                    let (s, took) = (*s, started.elapsed().as_secs_f64());
                    match child.try_wait()? {
                        None => i += 1,
                        Some(status) => {
                            running.0.swap_remove(i);
                            if !status.success() || !part(s).exists() {
                                let others = running.0.len();
                                drop(std::mem::replace(&mut running, Workers(Vec::new())));
                                let what = if status.success() { "ended without writing its part".to_string() } else { format!("failed ({status})") };
                                bail!(
                                    "shard {s} {what}{}; its log: {}; last lines:{}\nRerun the same command to resume: finished shards and prompt documents are kept.",
                                    if others > 0 { format!(" ({others} other shard process(es) stopped)") } else { String::new() },
                                    log(s).display(),
                                    log_tail(&log(s), 5)
                                );
                            }
                            seconds[s.index] = Some(took);
                        }
                    }
                }
                poll();
                if !running.0.is_empty() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        Some(_) => {}
    }
    let mut parts = Vec::with_capacity(count);
    let mut records = Vec::with_capacity(count);
    for s in Shard::all(count) {
        let docs = read(&part(s)).with_context(|| format!("shard {s}'s part"))?;
        records.push(PartRecord {
            shard: s.to_string(),
            file: rel(&part(s)),
            log: log(s).exists().then(|| rel(&log(s))),
            documents: docs.len(),
            seconds: seconds[s.index],
        });
        parts.push(docs);
    }
    // The join `synthdeid merge` does.
    let docs = corpus::shard::merge_documents(parts).map_err(|e| anyhow!("merging the shards in {}: {e}", parts_dir.display()))?;
    Ok((docs, records))
}
