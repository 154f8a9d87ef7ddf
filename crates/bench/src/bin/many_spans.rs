//! Measures surrogate de-identification of one document with N distinct names (issue 25, case 5).
//! BENCHMARKS.md, current results, "`deid`, one document with 100,000 distinct names":
//!
//!     cargo run --release -p bench --bin many_spans -- 2000 8000 100000

use clap::Parser;
use corpus::{Document, Span};
use std::time::Instant;

/// A distinct, name-like word for each index: syllables in base 16.
fn word(mut i: usize, first: bool) -> String {
    const SYL: [&str; 16] = ["ba", "ke", "ri", "lo", "mu", "sa", "te", "vi", "no", "pe", "du", "ga", "fi", "zo", "ca", "ju"];
    let mut s = String::new();
    loop {
        s.push_str(SYL[i % 16]);
        i /= 16;
        if i == 0 {
            break;
        }
    }
    if first {
        s.push('r');
    }
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// One document holding `n` distinct two-part names, one per line.
fn document(n: usize) -> Document {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(n);
    let mut chars = 0;
    for i in 0..n {
        text.push_str("Paciente: ");
        chars += 10;
        let name = format!("{} {}", word(i, true), word(i.wrapping_mul(7919) % (n * 4 + 1), false));
        let len = name.chars().count();
        spans.push(Span::new(chars, chars + len, "NOMBRE_SUJETO_ASISTENCIA"));
        text.push_str(&name);
        text.push_str(".\n");
        chars += len + 2;
    }
    Document { id: "big".into(), text, spans }
}

#[derive(Parser)]
#[command(about = "Time surrogate de-identification of one document with N distinct names")]
struct Cli {
    /// Numbers of distinct names (spans) in the document, one timing each.
    #[arg(default_values_t = [2000, 4000, 8000])]
    spans: Vec<usize>,
}

fn main() {
    for n in Cli::parse().spans {
        let doc = document(n);
        let t = Instant::now();
        let (out, _, stats) = deid::deidentify_corpus(&[doc], deid::Mode::Surrogate, &deid::Options::default().with_key(b"k".to_vec())).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(out[0].spans.len(), n);
        println!("{n} spans in one document: {secs:.2} s ({} surrogate)", stats.by_label.values().map(|l| l.surrogate).sum::<usize>());
    }
}
