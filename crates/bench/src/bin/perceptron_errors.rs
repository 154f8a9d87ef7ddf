//! Experiment: the span errors of saved perceptrons on MEDDOCAN dev, classed (missed, spurious,
//! boundary, type) and counted per label, with each error's words in context. Prints corpus text:
//! for error analysis on the public MEDDOCAN corpus only.
//!
//! cargo run --release -p perceptron --example errors -- ../shared/data/meddocan SPLIT MODEL_DIR...

use corpus::{read_corpus, ReadOptions, Span};
use perceptron::Perceptron;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(&args[0]);
    let docs = read_corpus(&root.join(&args[1]), None, &ReadOptions::default()).map_err(anyhow::Error::msg)?;
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for dir in &args[2..] {
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
