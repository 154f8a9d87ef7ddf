//! Decoding with packed weights (`Decoder::pack`, `lm generate --precision`): the f32 panels give
//! the training path's logits up to summation order, bf16 weights stay near them, and a bf16
//! generator keeps the sampling guarantees (same seed, same samples; a sample does not depend on
//! its batch). Real Gemma-3-270M and Qwen2.5 against transformers: `tests/pretrained.rs`.

use std::path::PathBuf;

use candle_core::Tensor;
use lm::{Decoder, GenerateConfig, Generator, Precision, Prompt, SamplingConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn logits(model: &Decoder) -> Vec<Vec<f32>> {
    let ids = Tensor::new(&[[1u32, 5, 9, 14, 3, 22, 7, 11]], model.params.device()).unwrap();
    model.forward_logits(&ids, &mut nn::Mode::Eval).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn packed_logits_match_the_training_path() {
    for name in ["gpt2", "llama", "qwen2"] {
        let dev = nn::device();
        let plain = logits(&Decoder::load(&fixture(name), &dev).unwrap());
        let scale = plain.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
        for (precision, tol) in [(Precision::F32, 1e-4), (Precision::Bf16, 5e-2)] {
            let mut m = Decoder::load(&fixture(name), &dev).unwrap();
            m.pack(precision).unwrap();
            let d = max_diff(&plain, &logits(&m));
            eprintln!("{name} {precision:?} (runs as {:?}): max |Δ logit| {d:e}, largest |logit| {scale}", precision.effective());
            assert!(d <= tol * scale.max(1.0), "{name} packed {precision:?}: max |Δ logit| {d} (largest {scale})");
        }
    }
}

#[test]
fn bf16_generation_is_seeded_and_batch_independent() {
    let mut g = Generator::load(&fixture("llama")).unwrap();
    g.set_precision(Precision::Bf16).unwrap();
    let prompts: Vec<Prompt> = ["Paciente de 45", "Se", "Antecedentes: hipertensión"]
        .iter()
        .enumerate()
        .map(|(i, t)| Prompt { id: format!("p{i}"), text: t.to_string() })
        .collect();
    let cfg = GenerateConfig {
        samples_per_prompt: 3,
        max_new_tokens: 12,
        sampling: SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 },
        seed: 9,
        precision: Precision::Bf16,
        ..Default::default()
    };
    let a = g.generate(&prompts, &cfg).unwrap();
    assert_eq!(a.len(), 9);
    assert_eq!(a, g.generate(&prompts, &cfg).unwrap());
    assert_eq!(a, g.generate(&prompts, &GenerateConfig { batch_size: 1, ..cfg.clone() }).unwrap());
    assert_eq!(&a[6..9], &g.generate(&prompts[2..3], &cfg).unwrap()[..]);
    assert!(a.iter().all(|d| d.text.len() > prompts[d.id[1..2].parse::<usize>().unwrap()].text.len()));
}

/// Perplexity with packed weights: equal to the training path's at f32 (up to rounding), near it
/// at bf16.
#[test]
fn perplexity_at_a_precision() {
    let docs: Vec<corpus::Document> = ["Paciente de 45 años con fiebre.", "Se remite a consulta externa."]
        .iter()
        .enumerate()
        .map(|(i, t)| corpus::Document { id: format!("d{i}"), text: t.to_string(), spans: Vec::new() })
        .collect();
    let dir = fixture("llama");
    let plain = lm::perplexity_report(&dir, &docs).unwrap().per_token;
    let f32 = lm::perplexity_report_at(&dir, &docs, Precision::F32).unwrap().per_token;
    let bf16 = lm::perplexity_report_at(&dir, &docs, Precision::Bf16).unwrap().per_token;
    assert_eq!(plain, f32, "f32 keeps the training path");
    assert!((bf16 / plain - 1.0).abs() < 0.05, "bf16 {bf16} vs f32 {plain}");
}

#[test]
fn an_unmerged_adapter_is_not_packed() {
    let mut m = Decoder::load(&fixture("llama"), &nn::device()).unwrap();
    m.add_lora(&lm::LoraConfig { rank: 4, ..Default::default() }, 1).unwrap();
    let e = m.pack(Precision::Bf16).unwrap_err().to_string();
    assert!(e.contains("merge the LoRA adapter"), "{e}");
}
