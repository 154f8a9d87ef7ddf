//! Benchmark: load and validate every MEDDOCAN split (BRAT → documents, offsets and surface
//! checks), then tokenize and sentence-split everything.
//!
//! cargo run --release -p corpus --example load_benchmark -- ../shared/data/meddocan

use corpus::{read_corpus, ReadOptions};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "../shared/data/meddocan".into()));
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
