//! `merge`: joins the outputs of a stage run as shards (`--shard 0/N` … `N-1/N`) into the output
//! the unsharded run writes: the documents of each part, parts in shard order
//! ([`corpus::shard::merge_documents`]), written in the output path's format.

use crate::corpus_args::ReadArgs;
use anyhow::{anyhow, bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_long_help = "Example: three shards of a generation, then one corpus equal to the unsharded run's, byte for byte:\n  \
synthdeid lm generate --model M --prompts P --out part0.jsonl --shard 0/3   (and 1/3, 2/3, anywhere)\n  \
synthdeid merge part0.jsonl part1.jsonl part2.jsonl --out all.jsonl")]
pub struct MergeArgs {
    /// The shard outputs, in shard order (0/N first): JSONL files, BRAT or text directories.
    #[arg(required = true, num_args = 1..)]
    pub parts: Vec<PathBuf>,
    /// The merged output: a `.jsonl` file, else a directory (BRAT when the parts have spans, else text).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn merge(a: MergeArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        let empty_dir = a.out.is_dir() && std::fs::read_dir(&a.out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty_dir {
            bail!("--out {} already exists: choose a new path, or pass --force to replace it", a.out.display());
        }
    }
    let mut parts = Vec::with_capacity(a.parts.len());
    let mut formats = Vec::new();
    for p in &a.parts {
        if !p.exists() {
            bail!("{}: no such shard output (did that shard finish?)", p.display());
        }
        formats.push(match a.read.from {
            Some(f) => f.into(),
            None => corpus::Format::detect(p).map_err(|e| anyhow!(e))?,
        });
        parts.push(a.read.read(p)?);
    }
    let sizes: Vec<String> = parts.iter().map(|d| d.len().to_string()).collect();
    let docs = corpus::shard::merge_documents(parts).map_err(|e| anyhow!(e))?;
    // A directory output keeps the parts' kind (text stays text, BRAT stays BRAT).
    let format = match corpus::Format::for_output(&a.out) {
        corpus::Format::Brat if formats.iter().all(|f| *f == corpus::Format::Text) => corpus::Format::Text,
        f => f,
    };
    corpus::write_corpus(&a.out, Some(format), &docs).map_err(|e| anyhow!(e))?;
    eprintln!("merged {} part(s) ({} documents) into {} documents -> {}", a.parts.len(), sizes.join(" + "), docs.len(), a.out.display());
    Ok(())
}
