//! Experiment: the span errors of saved perceptrons on a MEDDOCAN split, classed (missed,
//! spurious, boundary, type) and counted per label, with each error's words in context. Prints
//! corpus text: for error analysis on the public MEDDOCAN corpus only. BENCHMARKS.md › Lexical
//! inputs and stacking on the perceptron (the guides' errors on dev):
//!
//!     cargo run --release -p bench --bin perceptron_errors -- --data ../shared/data/meddocan --split dev MODEL_DIR...

use clap::Parser;
use corpus::{read_corpus, ReadOptions, Span};
use perceptron::Perceptron;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Span errors of saved perceptrons on a MEDDOCAN split, classed and counted per label (prints corpus text)")]
struct Cli {
    /// The MEDDOCAN directory.
    #[arg(long, default_value = "../shared/data/meddocan")]
    data: PathBuf,
    /// The split under it to tag (train, dev or test).
    #[arg(long, default_value = "dev")]
    split: String,
    /// Saved perceptron directories.
    #[arg(required = true)]
    models: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let docs = read_corpus(&cli.data.join(&cli.split), None, &ReadOptions::default()).map_err(anyhow::Error::msg)?;
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for dir in &cli.models {
        let p = Perceptron::load(&PathBuf::from(dir))?;
        let pred = p.predict(&docs);
        for (g, q) in docs.iter().zip(&pred) {
            let chars: Vec<char> = g.text.chars().collect();
            let show = |s: &Span| -> String {
                let a = s.start.saturating_sub(30);
                let b = (s.end + 30).min(chars.len());
                let pre: String = chars[a..s.start].iter().collect();
                let mid: String = chars[s.start..s.end].iter().collect();
                let post: String = chars[s.end..b].iter().collect();
                format!("{}[[{}]]{}", pre, mid, post).replace('\n', "⏎")
            };
            let overlaps = |a: &Span, b: &Span| a.start < b.end && b.start < a.end;
            for s in &g.spans {
                if q.spans.iter().any(|t| t.start == s.start && t.end == s.end && t.label == s.label) {
                    continue;
                }
                let kind = match q.spans.iter().find(|t| overlaps(s, t)) {
                    None => "missed".to_string(),
                    Some(t) if t.label == s.label => format!("boundary (pred [[{}]])", chars[t.start..t.end].iter().collect::<String>()),
                    Some(t) if t.start == s.start && t.end == s.end => format!("type (pred {})", t.label),
                    Some(t) => format!("type+boundary (pred {} [[{}]])", t.label, chars[t.start..t.end].iter().collect::<String>()),
                };
                *counts.entry((s.label.clone(), kind.split(' ').next().unwrap().to_string())).or_default() += 1;
                println!("{dir} {} {}: {} :: {}", g.id, s.label, kind, show(s));
            }
            for t in &q.spans {
                if !g.spans.iter().any(|s| overlaps(s, t)) {
                    *counts.entry((t.label.clone(), "spurious".into())).or_default() += 1;
                    println!("{dir} {} {}: spurious :: {}", g.id, t.label, show(t));
                }
            }
        }
    }
    for ((l, k), n) in &counts {
        println!("COUNT {l} {k} {n}");
    }
    Ok(())
}
