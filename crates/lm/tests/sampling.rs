//! Seeded sampling: same seed, same samples; a sample does not depend on its batch.

use std::path::PathBuf;

use lm::sampling::Walk;
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

/// Seeded logits for the sampler pins: `n` scores, some tied, some −∞.
fn pin_logits(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| match i % 17 {
            5 => f32::NEG_INFINITY,
            9 => 1.5,
            _ => rng.random::<f32>() * 8.0 - 4.0,
        })
        .collect()
}

/// The settings the pins draw with: the generators' default (top-p 0.95), top-k with top-p,
/// a high temperature without truncation, and top-k alone.
fn pin_settings() -> [SamplingConfig; 4] {
    [
        SamplingConfig::default(),
        SamplingConfig { temperature: 0.7, top_k: 40, top_p: 0.9 },
        SamplingConfig { temperature: 1.3, top_k: 0, top_p: 1.0 },
        SamplingConfig { temperature: 1.0, top_k: 5, top_p: 1.0 },
    ]
}

/// FNV-1a of a sequence of numbers: a short fingerprint of many draws.
fn fingerprint(xs: impl IntoIterator<Item = u64>) -> u64 {
    xs.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, x| (h ^ x).wrapping_mul(0x100_0000_01b3))
}

fn fingerprint_text(docs: &[corpus::Document]) -> u64 {
    fingerprint(docs.iter().flat_map(|d| d.id.bytes().chain(d.text.bytes())).map(u64::from))
}

/// Draws of both sampler walks (most likely first: the n-gram model's; id order: a decoder's) on
/// seeded logits, pinned to what the samplers drew before they were merged into one.
#[test]
#[allow(clippy::type_complexity)] // a table of pinned tuples, read once
fn sampler_draws_are_pinned() {
    use rand::SeedableRng;
    // (vocabulary, setting, first draws and fingerprint of 64 draws most likely first, the same in
    // id order), as drawn by `sampling::sample_logits` and `generate::sample` before the merge.
    #[rustfmt::skip]
    let pinned: [(usize, usize, [u64; 4], u64, [u64; 4], u64); 16] = [
        (3, 0, [2, 2, 2, 2], 4265641259394183973, [2, 2, 2, 2], 4265641259394183973),
        (3, 1, [2, 2, 2, 2], 4265641259394183973, [2, 2, 2, 2], 4265641259394183973),
        (3, 2, [2, 2, 2, 2], 11252438974275977229, [0, 2, 2, 2], 18322893491645823629),
        (3, 3, [2, 2, 2, 2], 5807845572293170911, [2, 2, 2, 2], 16900701126484232754),
        (50, 0, [31, 1, 44, 48], 13585237104307251986, [41, 32, 37, 43], 1900368434702977873),
        (50, 1, [15, 32, 27, 27], 9979955189291035619, [31, 38, 6, 12], 2785958958121793977),
        (50, 2, [31, 41, 31, 27], 15753775550857252600, [40, 9, 40, 1], 2335692321264726096),
        (50, 3, [38, 27, 41, 15], 995036624911063111, [32, 27, 27, 41], 2788696478993219341),
        (1000, 0, [993, 316, 334, 864], 13371832338874869553, [545, 157, 383, 208], 16097275727122422292),
        (1000, 1, [32, 626, 368, 530], 2427122011084281155, [970, 754, 541, 830], 7108086999934877079),
        (1000, 2, [130, 531, 587, 93], 10103172866459150213, [669, 33, 830, 452], 13278807386998329662),
        (1000, 3, [85, 499, 751, 242], 8812506955519089624, [242, 751, 499, 85], 15298700424139523637),
        (40000, 0, [13930, 12244, 36527, 12216], 12547680890703646706, [16272, 11269, 21926, 35850], 16739857694403905460),
        (40000, 1, [14907, 38227, 11702, 21693], 18134595062336064080, [21693, 645, 21861, 14907], 2938187286035086995),
        (40000, 2, [32323, 21275, 33548, 25544], 4647163631110417617, [27399, 38074, 17330, 25251], 8006408304280786447),
        (40000, 3, [38227, 22506, 22506, 6845], 5374868560989799670, [645, 23025, 23025, 22506], 12681819248733880655),
    ];
    for (n, k, rank_first, rank_all, id_first, id_all) in pinned {
        let seed = [3, 50, 1000, 40_000].iter().position(|&m| m == n).unwrap() as u64 + 1;
        let logits = pin_logits(n, seed);
        let cfg = &pin_settings()[k];
        let draws = |walk| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed * 10 + k as u64);
            (0..64).map(|_| lm::sampling::sample(&logits, cfg, walk, &mut rng) as u64).collect::<Vec<_>>()
        };
        let rank = draws(Walk::MostLikelyFirst);
        assert_eq!((&rank[..4], fingerprint(rank.iter().copied())), (&rank_first[..], rank_all), "most likely first: {n} tokens, {cfg:?}");
        let id = draws(Walk::IdOrder);
        assert_eq!((&id[..4], fingerprint(id.iter().copied())), (&id_first[..], id_all), "id order: {n} tokens, {cfg:?}");
    }
}

/// A small corpus with shared words, so that n-gram contexts have several followers.
fn pin_corpus() -> Vec<corpus::Document> {
    [
        "Paciente de 45 años con dolor torácico. Se realiza analítica y radiografía de tórax.",
        "Paciente de 62 años con fiebre y tos. Se realiza radiografía sin hallazgos.",
        "Mujer de 45 años con dolor abdominal. Se pauta analgesia y control en consulta.",
        "Varón de 70 años con disnea. Antecedentes: hipertensión arterial, diabetes mellitus tipo 2.",
        "Antecedentes: hipertensión arterial. Se realiza ecografía abdominal con hallazgos normales.",
        "Paciente con dolor lumbar irradiado a la pierna izquierda. Se pauta reposo y control.",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| corpus::Document { id: format!("d{i}"), text: t.to_string(), spans: Vec::new() })
    .collect()
}

/// Seeded samples of the n-gram model (the floor pipeline's generator) and of a decoder, pinned
/// to what they were before the samplers were merged.
#[test]
fn seeded_ngram_and_decoder_samples_are_pinned() {
    let ngram = lm::NgramModel::train(&pin_corpus(), &lm::NgramConfig::default()).unwrap();
    let prompts: Vec<Prompt> = ["Paciente de 45", "Se realiza", "Antecedentes: hipertensión"]
        .iter()
        .enumerate()
        .map(|(i, t)| Prompt { id: format!("q{i}"), text: t.to_string() })
        .collect();
    // Per setting: the n-gram model's first sample and fingerprint of all 12, the decoder's the
    // same (9 samples), as generated before the merge.
    let pinned: [(&str, u64, &str, u64); 4] = [
        (
            "Paciente de 45 años con dolor lumbar irradiado a la pierna izquierda. Se realiza radiografía de 70 años con disnea.",
            10069987728568343913,
            "Paciente de 45#/aci\u{fffd}r\u{fffd}{M\u{17}\u{3}\u{fffd}\u{fffd}",
            17662819010249735697,
        ),
        ("Paciente de 45 años con dolor abdominal. Se pauta reposo y control.", 11772122071368690515, "Paciente de 45$4 abdom\u{1c}\u{fffd}¤M\u{11}\u{fffd}\u{12}\u{13}", 11794023972647607748),
        (
            "Paciente de 45 años con disnea. Se realiza ecografía abdominal con disnea. Se realiza ecografía abdominal con disnea. Antecedentes: hipertensión arterial, diabetes mellitus tipo 2.",
            8958210887329902824,
            "Paciente de 45#-aci\u{fffd}t\u{fffd}yM\u{1a}\u{2}\u{fffd}\u{fffd}",
            17373746283686992154,
        ),
        ("Paciente de 45 años con fiebre y control.", 7302401188653662097, "Paciente de 45(#\u{13}\u{1b}9٤\u{fffd}\u{fffd}\u{fffd}\u{fffd}al", 17649976033708648813),
    ];
    for (cfg, (ngram_first, ngram_all, decoder_first, decoder_all)) in pin_settings().into_iter().zip(pinned) {
        let docs = ngram.generate(&prompts, 4, 40, &cfg, 13);
        assert_eq!((docs[0].text.as_str(), fingerprint_text(&docs)), (ngram_first, ngram_all), "n-gram, {cfg:?}");
        let g = GenerateConfig { samples_per_prompt: 3, max_new_tokens: 12, sampling: cfg, seed: 9, batch_size: 4, ..Default::default() };
        let docs = generator().generate(&prompts, &g).unwrap();
        assert_eq!((docs[0].text.as_str(), fingerprint_text(&docs)), (decoder_first, decoder_all), "decoder, {cfg:?}");
    }
}
