//! Resumable local generation: samples already finished (as a journal holds them after a kill)
//! are not generated again, and the corpus equals an uninterrupted run's.

use std::collections::HashMap;

use corpus::Document;
use lm::{Backend, GenerateConfig, Generator, Journal, TrainConfig};

fn docs(n: usize, from: usize) -> Vec<Document> {
    let words = ["paciente", "dolor", "fiebre", "Nombre:", "Edad:", "años", "varón", "mujer", "tratamiento", "alta"];
    (from..from + n)
        .map(|i| {
            let text: Vec<&str> = (0..40).map(|j| words[(i * 7 + j * j + j) % words.len()]).collect();
            Document { id: format!("d{i}"), text: format!("Nombre: X{i}\n{}", text.join(" ")), spans: vec![] }
        })
        .collect()
}

#[test]
fn a_resumed_run_generates_only_the_missing_samples_and_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = TrainConfig { generator: "gpt2".into(), preset: lm::Preset::Tiny, epochs: 1, block_size: 32, batch_size: 4, ..Default::default() };
    c.dims.vocab_size = Some(300);
    c.dims.hidden = Some(32);
    c.dims.max_positions = Some(128);
    lm::train(&c, &docs(12, 0), &docs(3, 12), dir.path(), &progress::Silent).unwrap();
    let backend = Backend::Local(Box::new(Generator::load(dir.path()).unwrap()));
    let prompts = lm::prompts_from_docs(&docs(4, 20), 3);
    let cfg = GenerateConfig { samples_per_prompt: 3, max_new_tokens: 20, batch_size: 5, seed: 9, ..Default::default() };
    let (whole, stats) = backend.generate_resuming(&prompts, &cfg, HashMap::new(), |_| Ok(()), &progress::Silent).unwrap();
    assert_eq!((whole.len(), stats.samples, stats.resumed), (12, 12, 0));
    assert!(stats.new_tokens.is_some_and(|t| t > 0));
    // An untrained model rarely ends a document within 20 tokens: samples stopped there are named.
    assert!(!stats.cut.is_empty() && stats.cut.iter().all(|id| whole.iter().any(|d| &d.id == id)), "{:?}", stats.cut);

    // A run "killed" after 5 samples: its journal, reopened, hands them to the resumed run.
    let journal = dir.path().join("out.jsonl.partial.jsonl");
    let settings = serde_json::json!({"seed": cfg.seed});
    let (mut j, done) = Journal::open(&journal, &settings).unwrap();
    assert!(done.is_empty());
    for d in [&whole[0], &whole[4], &whole[5], &whole[7], &whole[11]] {
        j.append(d).unwrap();
    }
    drop(j);
    let (mut j, done) = Journal::open(&journal, &settings).unwrap();
    let mut asked = Vec::new();
    let (resumed, stats) = backend
        .generate_resuming(&prompts, &cfg, done, |d| {
            asked.push(d.id.clone());
            j.append(d)
        }, &progress::Silent)
        .unwrap();
    assert_eq!((stats.samples, stats.resumed), (7, 5));
    assert!(!asked.contains(&whole[4].id) && asked.len() == 7, "{asked:?}");
    assert_eq!(resumed, whole);
    j.finish().unwrap();
}
