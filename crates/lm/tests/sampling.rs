//! Seeded sampling: same seed, same samples; a sample does not depend on its batch.

use std::path::PathBuf;

use lm::{GenerateConfig, Generator, Prompt, SamplingConfig};

fn generator() -> Generator {
    Generator::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/llama")).unwrap()
}

fn prompts() -> Vec<Prompt> {
    ["Paciente de 45", "Se", "Antecedentes: hipertensión", "Antecedentes: hipertensión arterial, diabetes mellitus tipo 2."]
        .iter()
        .enumerate()
        .map(|(i, t)| Prompt { id: format!("p{i}"), text: t.to_string() })
        .collect()
}

#[test]
fn same_seed_same_samples_and_batch_independence() {
    let g = generator();
    let cfg = GenerateConfig {
        samples_per_prompt: 3,
        max_new_tokens: 12,
        sampling: SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 },
        seed: 9,
        batch_size: 16,
        ..Default::default()
    };
    let a = g.generate(&prompts(), &cfg).unwrap();
    assert_eq!(a, g.generate(&prompts(), &cfg).unwrap());
    assert_eq!(a.len(), 12);
    // The last prompt fills the tiny model's 32 positions: no continuation, and no harm to others.
    assert!(a[9..].iter().all(|d| d.text == prompts()[3].text));
    assert!(a[..9].iter().all(|d| d.text.len() > prompts()[d.id[1..2].parse::<usize>().unwrap()].text.len()));
    assert_eq!(a[4].id, "p1__s001");
    // One at a time (batch 1), and each prompt alone: the same texts.
    let single = g.generate(&prompts(), &GenerateConfig { batch_size: 1, ..cfg.clone() }).unwrap();
    assert_eq!(a, single);
    let alone = g.generate(&prompts()[2..3], &cfg).unwrap();
    assert_eq!(&a[6..9], &alone[..]);
    // Another seed gives other samples, and samples of one prompt differ.
    let b = g.generate(&prompts(), &GenerateConfig { seed: 10, ..cfg.clone() }).unwrap();
    assert_ne!(a, b);
    assert!(a[0].text != a[1].text || a[1].text != a[2].text);
    for d in &a {
        let p = &prompts()[d.id[1..2].parse::<usize>().unwrap()];
        assert!(d.text.starts_with(&p.text));
    }
}

#[test]
fn top_k_one_is_greedy() {
    let g = generator();
    let k1 = GenerateConfig { max_new_tokens: 8, sampling: SamplingConfig { temperature: 1.0, top_k: 1, top_p: 1.0 }, seed: 1, ..Default::default() };
    let greedy = GenerateConfig { sampling: SamplingConfig { temperature: 0.0, top_k: 0, top_p: 1.0 }, seed: 2, ..k1.clone() };
    assert_eq!(g.generate(&prompts(), &k1).unwrap(), g.generate(&prompts(), &greedy).unwrap());
}
