//! Measures corpus loading: every MEDDOCAN split read and validated (BRAT → documents, offsets and
//! surface checks), then tokenized and sentence-split (best of 5). BENCHMARKS.md › corpus loading:
//!
//!     cargo run --release -p bench --bin corpus_load -- --data ../shared/data/meddocan

use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Load, validate, tokenize and sentence-split every MEDDOCAN split (best of 5)")]
struct Cli {
    /// The MEDDOCAN directory (holding train/, dev/, test/).
    #[arg(long, default_value = "../shared/data/meddocan")]
    data: PathBuf,
}

fn main() {
    let root = Cli::parse().data;
    let mut best_load = f64::MAX;
    let mut best_all = f64::MAX;
    let (mut docs_n, mut spans_n, mut tokens_n) = (0, 0, 0);
    for _ in 0..5 {
        let t0 = Instant::now();
        let mut all = Vec::new();
        for split in ["train", "dev", "test"] {
            all.extend(read_corpus(&root.join(split), None, &ReadOptions::default()).expect("MEDDOCAN loads"));
        }
        let load = t0.elapsed().as_secs_f64();
        let st = corpus::stats::stats(&all);
        let total = t0.elapsed().as_secs_f64();
        best_load = best_load.min(load);
        best_all = best_all.min(total);
        (docs_n, spans_n, tokens_n) = (st.documents, st.spans, st.tokens);
    }
    println!("documents {docs_n}, spans {spans_n}, word tokens {tokens_n}");
    println!("load + validate: {:.1} ms (best of 5)", best_load * 1e3);
    println!("load + validate + tokenize + sentences + alignment stats: {:.1} ms (best of 5)", best_all * 1e3);
}
