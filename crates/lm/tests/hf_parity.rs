//! Tiny randomly initialised HF checkpoints (made by `fixtures/make_fixtures.py` with PyTorch +
//! transformers) load and give the reference logits and greedy continuations.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use lm::{Decoder, Generator, SamplingConfig};
use nn::Mode;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

struct Expected {
    input_ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
    greedy_prompt: Vec<u32>,
    greedy_new: Vec<u32>,
}

fn expected(name: &str) -> Expected {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture(name).join("expected.json")).unwrap()).unwrap();
    let ids = |k: &str| v[k].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect::<Vec<_>>();
    Expected {
        input_ids: ids("input_ids"),
        logits: v["logits"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()).collect(),
        greedy_prompt: ids("greedy_prompt"),
        greedy_new: ids("greedy_new"),
    }
}

fn check_logits(name: &str) {
    let model = Decoder::load(&fixture(name), &Device::Cpu).unwrap();
    let e = expected(name);
    let ids = Tensor::new(e.input_ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let logits: Vec<Vec<f32>> = model.forward_logits(&ids, &mut Mode::Eval).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
    let mut worst = 0f32;
    for (a, b) in logits.iter().zip(&e.logits) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(worst < 1e-4, "{name}: max |logit - reference| = {worst}");
}

fn check_greedy(name: &str) {
    let Generator::Decoder(g) = Generator::load(&fixture(name)).unwrap() else { panic!("not a decoder") };
    let e = expected(name);
    let greedy = SamplingConfig { temperature: 0.0, top_k: 0, top_p: 1.0 };
    // The reference prompt starts with the ids themselves (no document-start token).
    let out = g.generate_ids(&[(e.greedy_prompt.as_slice(), 0)], e.greedy_new.len(), &greedy).unwrap();
    let stop = e.greedy_new.iter().position(|t| g.stop.contains(t)).unwrap_or(e.greedy_new.len());
    assert_eq!(out[0], e.greedy_new[..stop], "{name}: greedy continuation");
}

#[test]
fn gpt2_logits_match_transformers() {
    check_logits("gpt2");
}

#[test]
fn llama_gqa_logits_match_transformers() {
    check_logits("llama");
}

#[test]
fn qwen2_biases_and_tied_head_match_transformers() {
    check_logits("qwen2");
}

#[test]
fn greedy_generation_matches_transformers_token_for_token() {
    for name in ["gpt2", "llama", "qwen2"] {
        check_greedy(name);
    }
}

#[test]
fn train_path_equals_eval_path_without_dropout() {
    // Training composes primitives (RMSNorm, rope, softmax with backward); evaluation uses fused
    // kernels. Without dropout they must agree.
    for name in ["gpt2", "llama"] {
        let model = Decoder::load_with(&fixture(name), &Device::Cpu, |c| c.set_dropout(0.0)).unwrap();
        let e = expected(name);
        let ids = Tensor::new(e.input_ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let a = model.forward_logits(&ids, &mut Mode::Eval).unwrap();
        let mut rng = <nn::Rng as rand::SeedableRng>::seed_from_u64(0);
        let b = model.forward_logits(&ids, &mut Mode::Train(&mut rng)).unwrap();
        let d: f32 = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-4, "{name}: {d}");
    }
}
