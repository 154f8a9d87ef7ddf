//! Gradients, overfitting, LoRA, and the training loop (end to end, with resume).

use candle_core::{Device, Tensor};
use corpus::Document;
use lm::layers::LoraConfig;
use lm::models::{Gpt2Config, LlamaConfig};
use lm::{Decoder, Generator, ModelConfig, TrainConfig};
use nn::{AdamW, AdamWConfig, Mode};
use rand::SeedableRng;

fn gpt2() -> ModelConfig {
    let mut c = Gpt2Config::new(50, 32, 16, 2, 4);
    c.eos_token_id = Some(serde_json::json!(0));
    ModelConfig::Gpt2(c)
}

fn llama() -> ModelConfig {
    ModelConfig::Llama(LlamaConfig::new(50, 32, 16, 2, 4, 2, 24))
}

/// Gemma 3 with a sliding window (4) shorter than the test sequences, so both layer kinds and
/// the window mask are exercised.
fn gemma3() -> ModelConfig {
    ModelConfig::from_value(serde_json::json!({
        "model_type": "gemma3_text", "vocab_size": 50, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
        "max_position_embeddings": 64, "query_pre_attn_scalar": 8, "sliding_window": 4,
        "sliding_window_pattern": 2, "eos_token_id": 1, "bos_token_id": 2
    }))
    .unwrap()
}

fn batch() -> Vec<Vec<u32>> {
    vec![vec![0, 5, 9, 13, 7, 2, 44, 21, 3], vec![1, 17, 3, 8, 49, 11, 30, 6, 1]]
}

fn loss(model: &Decoder, mode: &mut Mode) -> Tensor {
    let b = batch();
    let rows: Vec<&Vec<u32>> = b.iter().collect();
    lm::train::batch_loss(model, &rows, &Device::Cpu, mode).unwrap()
}

fn assert_grads(params: &nn::Params, grads: &candle_core::backprop::GradStore, what: &str) {
    for (name, v) in params.vars() {
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
        let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(g.iter().all(|x| x.is_finite()), "{what}: non-finite gradient for {name}");
        assert!(g.iter().any(|&x| x != 0.0), "{what}: zero gradient for {name}");
    }
}

#[test]
fn every_parameter_gets_a_finite_nonzero_gradient() {
    for (what, cfg) in [("gpt2", gpt2()), ("llama", llama()), ("gemma3", gemma3())] {
        let model = Decoder::new(&cfg, &Device::Cpu, 3).unwrap();
        let mut rng = nn::Rng::seed_from_u64(0);
        let grads = loss(&model, &mut Mode::Train(&mut rng)).backward().unwrap();
        assert_grads(&model.params, &grads, what);
        // Without dropout too: the eval path's fused kernels must not cut q and k off.
        let grads = loss(&model, &mut Mode::Eval).backward().unwrap();
        assert_grads(&model.params, &grads, &format!("{what}, eval mode"));
        let expected = match what {
            "gpt2" => 4 + 2 * 12,
            "gemma3" => 2 + 2 * 13,
            _ => 3 + 2 * 9,
        };
        assert_eq!(model.params.vars().len(), expected, "{what}: parameter count");
    }
}

/// The output layer fused with the loss (never holding the batch's logits) gives the loss and
/// every gradient of the materialised logits, for tied and untied heads, trainable and frozen
/// (LoRA), with Gemma 2's final soft cap and without.
#[test]
fn the_fused_output_layer_and_loss_equal_the_materialised_ones() {
    let mut capped = gemma3();
    if let ModelConfig::Gemma3(c) = &mut capped {
        c.final_logit_softcapping = Some(2.0);
    }
    let mut untied = llama();
    if let ModelConfig::Llama(c) = &mut untied {
        c.tie_word_embeddings = !c.tie_word_embeddings;
    }
    for (what, cfg, lora) in [("gpt2", gpt2(), false), ("llama", llama(), false), ("llama, other head", untied, false), ("gemma3", gemma3(), false), ("gemma3, soft cap", capped, false), ("gemma3 + LoRA", gemma3(), true)] {
        let mut model = Decoder::new(&cfg, &Device::Cpu, 3).unwrap();
        let params = if lora {
            let adapters = model.add_lora(&LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, target_modules: vec![] }, 5).unwrap();
            for (_, v) in adapters.vars() {
                v.set(&Tensor::randn(0f32, 0.2, v.shape(), &Device::Cpu).unwrap()).unwrap();
            }
            adapters
        } else {
            model.params.clone()
        };
        assert!(model.head_weight().is_some(), "{what}: the head is one product");
        let b = batch();
        let rows: Vec<&Vec<u32>> = b.iter().collect();
        // Training mode (Eval runs rotary embeddings without backward); the same seed, the same dropout.
        let (mut r1, mut r2) = (nn::Rng::seed_from_u64(0), nn::Rng::seed_from_u64(0));
        let fused = lm::train::batch_loss(&model, &rows, &Device::Cpu, &mut Mode::Train(&mut r1)).unwrap();
        let plain = lm::train::batch_loss_materialized(&model, &rows, &Device::Cpu, &mut Mode::Train(&mut r2)).unwrap();
        let (a, p) = (fused.to_scalar::<f32>().unwrap(), plain.to_scalar::<f32>().unwrap());
        assert!((a - p).abs() < 1e-5 * p.abs(), "{what}: loss {a} vs {p}");
        // Each row's summed NLL past its first prediction (the audit's path), against the logits.
        let nlls = lm::train::row_nlls_from(&model, &rows, 1, &Device::Cpu).unwrap();
        for (r, got) in rows.iter().zip(&nlls) {
            let ids = Tensor::new(&r[..r.len() - 1], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            let logits = model.forward_logits(&ids, &mut Mode::Eval).unwrap().squeeze(0).unwrap();
            let lp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1).unwrap().to_vec2::<f32>().unwrap();
            let want: f64 = (1..r.len() - 1).map(|i| -(lp[i][r[i + 1] as usize] as f64)).sum();
            assert!((got - want).abs() < 1e-4 * want.abs(), "{what}: row NLL {got} vs {want}");
        }
        let (ga, gp) = (fused.backward().unwrap(), plain.backward().unwrap());
        for (name, v) in params.vars() {
            let x: Vec<f32> = ga.get(v.as_tensor()).unwrap_or_else(|| panic!("{what}: no gradient for {name}")).flatten_all().unwrap().to_vec1().unwrap();
            let y: Vec<f32> = gp.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{what}: {name} has a zero gradient");
            for (x, y) in x.iter().zip(&y) {
                assert!((x - y).abs() <= 1e-4 * scale, "{what}: gradient of {name}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn lora_trains_only_adapters() {
    for (what, cfg, targets) in [
        ("gpt2", gpt2(), vec![]),
        ("llama", llama(), vec!["q_proj".into(), "v_proj".into(), "down_proj".into()]),
        ("gemma3", gemma3(), vec!["q_proj".into(), "v_proj".into(), "down_proj".into()]),
    ] {
        let mut model = Decoder::new(&cfg, &Device::Cpu, 3).unwrap();
        let adapters = model.add_lora(&LoraConfig { rank: 2, alpha: 4.0, dropout: 0.1, target_modules: targets }, 5).unwrap();
        // B starts at zero (so A's gradient would be zero): give it values first.
        for (name, v) in adapters.vars() {
            if name.contains("lora_B") {
                v.set(&Tensor::randn(0f32, 0.1, v.shape(), &Device::Cpu).unwrap()).unwrap();
            }
        }
        let mut rng = nn::Rng::seed_from_u64(0);
        let grads = loss(&model, &mut Mode::Train(&mut rng)).backward().unwrap();
        assert_grads(&adapters, &grads, what);
        for (name, v) in model.params.vars() {
            assert!(grads.get(v.as_tensor()).is_none(), "{what}: frozen base parameter {name} got a gradient");
        }
        assert!(adapters.vars().iter().all(|(n, _)| n.starts_with("base_model.model.") && (n.ends_with("lora_A.weight") || n.ends_with("lora_B.weight"))));
    }
}

#[test]
fn merged_lora_gives_the_same_logits_and_saves_in_peft_layout() {
    for cfg in [gpt2(), llama(), gemma3()] {
        let mut model = Decoder::new(&cfg, &Device::Cpu, 3).unwrap();
        let lcfg = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, target_modules: vec![] };
        let adapters = model.add_lora(&lcfg, 5).unwrap();
        for (_, v) in adapters.vars() {
            v.set(&Tensor::randn(0f32, 0.2, v.shape(), &Device::Cpu).unwrap()).unwrap();
        }
        let ids = Tensor::new(&[[0u32, 5, 9, 13, 7, 2]], &Device::Cpu).unwrap();
        let before = model.forward_logits(&ids, &mut Mode::Eval).unwrap();
        let base_dir = tempfile::tempdir().unwrap();
        let ad_dir = tempfile::tempdir().unwrap();
        lm::Decoder::new(&cfg, &Device::Cpu, 3).unwrap().save(base_dir.path()).unwrap();
        lm::lora::save_adapter(ad_dir.path(), &adapters, &lcfg, &cfg, base_dir.path()).unwrap();
        model.merge_lora().unwrap();
        let merged = model.forward_logits(&ids, &mut Mode::Eval).unwrap();
        let d: f32 = (&before - &merged).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-5, "merged vs unmerged: {d}");
        // Reloading base + adapters from disk gives the same model again.
        let (reloaded, _) = lm::lora::load_adapted(ad_dir.path(), &Device::Cpu, true).unwrap();
        let again = reloaded.forward_logits(&ids, &mut Mode::Eval).unwrap();
        let d: f32 = (&before - &again).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-5, "reloaded adapters: {d}");
    }
}

#[test]
fn a_tiny_model_overfits_a_short_text() {
    for cfg in [gpt2(), llama(), gemma3()] {
        let mut cfg = cfg;
        cfg.set_dropout(0.0);
        let model = Decoder::new(&cfg, &Device::Cpu, 1).unwrap();
        let mut opt = AdamW::new(model.params.vars(), AdamWConfig { lr: 1e-2, weight_decay: 0.0, ..Default::default() }, |_| false).unwrap();
        let mut last = f32::MAX;
        for _ in 0..200 {
            let l = loss(&model, &mut Mode::Eval);
            last = l.to_scalar().unwrap();
            opt.step(&l.backward().unwrap(), 1e-2, 1.0).unwrap();
        }
        assert!(last < 0.05, "final loss {last}");
    }
}

fn docs(n: usize) -> Vec<Document> {
    let words = ["paciente", "dolor", "fiebre", "Nombre:", "Edad:", "años", "varón", "mujer", "tratamiento", "alta"];
    (0..n)
        .map(|i| {
            let text: Vec<&str> = (0..40).map(|j| words[(i * 7 + j * j + j) % words.len()]).collect();
            Document { id: format!("d{i}"), text: format!("Nombre: X{i}\n{}", text.join(" ")), spans: vec![] }
        })
        .collect()
}

fn tiny_train_config(generator: &str) -> TrainConfig {
    let mut c = TrainConfig { generator: generator.into(), preset: lm::Preset::Tiny, epochs: 2, block_size: 32, batch_size: 4, ..Default::default() };
    c.dims.vocab_size = Some(300);
    c.dims.hidden = Some(32);
    c.dims.max_positions = Some(128);
    c.lr = 3e-3;
    c
}

#[test]
fn train_from_scratch_saves_hf_layout_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    let (train, dev) = (docs(12), docs(3));
    let report = lm::train(&tiny_train_config("llama"), &train, &dev, dir.path(), &progress::Silent).unwrap();
    assert!(report.finished && report.epochs.len() == 2);
    assert!(report.epochs[1].dev_perplexity < report.epochs[0].dev_perplexity * 1.5);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "lm_train.json"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    assert!(!dir.path().join("checkpoint").exists());
    let ppl = lm::perplexity(dir.path(), &dev).unwrap();
    assert!((ppl - report.best_dev_perplexity).abs() < 1e-3 * ppl, "{ppl} vs {}", report.best_dev_perplexity);
    let g = Generator::load(dir.path()).unwrap();
    let prompts = lm::prompts_from_docs(&dev, 3);
    let cfg = lm::GenerateConfig { samples_per_prompt: 2, max_new_tokens: 20, ..Default::default() };
    let out = g.generate(&prompts, &cfg).unwrap();
    assert_eq!(out.len(), 6);
    assert_eq!(out[1].id, "d0__s001");
    assert!(out.iter().all(|d| d.text.starts_with("Nombre: X")));
}

#[test]
fn a_run_stopped_by_the_time_budget_resumes_only_with_a_larger_one_to_the_same_model() {
    let (train, dev) = (docs(12), docs(3));
    let full = tempfile::tempdir().unwrap();
    let cfg = tiny_train_config("gpt2");
    lm::train(&cfg, &train, &dev, full.path(), &progress::Silent).unwrap();
    // Stop after the first optimizer step (budget 0), then resume with no budget.
    let split = tempfile::tempdir().unwrap();
    let mut stop = cfg.clone();
    stop.max_minutes = Some(0.0);
    let r = lm::train(&stop, &train, &dev, split.path(), &progress::Silent).unwrap();
    assert!(!r.finished && split.path().join("checkpoint/state.json").exists());
    // The budget counts across resumes: the same budget again trains no further.
    let state = std::fs::read(split.path().join("checkpoint/state.json")).unwrap();
    let again = lm::train(&stop, &train, &dev, split.path(), &progress::Silent).unwrap();
    assert!(!again.finished && again.steps == r.steps, "{} steps after {}", again.steps, r.steps);
    assert_eq!(std::fs::read(split.path().join("checkpoint/state.json")).unwrap(), state);
    let r2 = lm::train(&cfg, &train, &dev, split.path(), &progress::Silent).unwrap();
    assert!(r2.finished);
    let a = std::fs::read(full.path().join("model.safetensors")).unwrap();
    let b = std::fs::read(split.path().join("model.safetensors")).unwrap();
    assert!(a == b, "resumed training differs from an uninterrupted run");
}

#[test]
fn lora_fine_tuning_writes_peft_adapters() {
    let (train, dev) = (docs(12), docs(3));
    let base = tempfile::tempdir().unwrap();
    lm::train(&tiny_train_config("gpt2"), &train, &dev, base.path(), &progress::Silent).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = tiny_train_config("gpt2");
    cfg.init = Some(base.path().to_path_buf());
    cfg.lora.rank = 4;
    cfg.epochs = 1;
    lm::train(&cfg, &train, &dev, out.path(), &progress::Silent).unwrap();
    assert!(out.path().join("adapter_model.safetensors").exists() && out.path().join("adapter_config.json").exists());
    assert!(!out.path().join("model.safetensors").exists());
    let ppl = lm::perplexity(out.path(), &dev).unwrap();
    assert!(ppl.is_finite());
    // `epochs = 0`: not adapted; the adapters at zero give the base model's perplexity and text.
    let none = tempfile::tempdir().unwrap();
    cfg.epochs = 0;
    let r = lm::train(&cfg, &train, &dev, none.path(), &progress::Silent).unwrap();
    assert!(r.finished && r.steps == 0 && none.path().join("adapter_config.json").exists());
    let (p0, pb) = (lm::perplexity(none.path(), &dev).unwrap(), lm::perplexity(base.path(), &dev).unwrap());
    assert!((p0 - pb).abs() < 1e-4 * pb, "{p0} vs {pb}");
    let prompts = lm::prompts_from_docs(&dev, 3);
    let g = lm::GenerateConfig { samples_per_prompt: 2, max_new_tokens: 12, ..Default::default() };
    assert_eq!(Generator::load(none.path()).unwrap().generate(&prompts, &g).unwrap(), Generator::load(base.path()).unwrap().generate(&prompts, &g).unwrap());
}

#[test]
fn ngram_generator_trains_through_the_same_api() {
    let dir = tempfile::tempdir().unwrap();
    let (train, dev) = (docs(12), docs(3));
    lm::train(&TrainConfig { generator: "ngram".into(), ..Default::default() }, &train, &dev, dir.path(), &progress::Silent).unwrap();
    let g = Generator::load(dir.path()).unwrap();
    assert!(matches!(g, Generator::Ngram(_)));
    let prompts = lm::prompts_from_docs(&dev, 3);
    let cfg = lm::GenerateConfig { samples_per_prompt: 2, max_new_tokens: 30, ..Default::default() };
    assert_eq!(g.generate(&prompts, &cfg).unwrap(), g.generate(&prompts, &cfg).unwrap());
    assert!(lm::perplexity(dir.path(), &dev).unwrap().is_finite());
}

/// Batched, left-padded generation with the KV cache past Gemma's sliding window gives the
/// tokens of a plain full forward per step (where the window is a mask over all keys at once).
#[test]
fn gemma3_cached_generation_equals_full_forward_past_the_window() {
    let model = Decoder::new(&gemma3(), &Device::Cpu, 7).unwrap();
    let greedy = |prompt: &[u32], n: usize| -> Vec<u32> {
        let mut seq = prompt.to_vec();
        for _ in 0..n {
            let ids = Tensor::new(seq.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            let logits = model.forward_logits(&ids, &mut Mode::Eval).unwrap().squeeze(0).unwrap();
            let row: Vec<f32> = logits.get(seq.len() - 1).unwrap().to_vec1().unwrap();
            let mut best = 0;
            for (i, &x) in row.iter().enumerate() {
                if x > row[best] && i != 1 {
                    best = i;
                }
            }
            seq.push(best as u32);
        }
        seq[prompt.len()..].to_vec()
    };
    let prompts: [&[u32]; 2] = [&[2, 7, 9, 11, 13, 17], &[2, 30]];
    let want: Vec<Vec<u32>> = prompts.iter().map(|p| greedy(p, 10)).collect();
    let tok = lm::LmTokenizer::train_bpe(["ab ba"].into_iter(), 60).unwrap();
    let mut gen = lm::DecoderGenerator::new(Decoder::new(&gemma3(), &Device::Cpu, 7).unwrap(), tok, lm::Boundaries { start: Some(2), end: 1 }).unwrap();
    gen.min_new = 10;
    let seqs: Vec<(&[u32], u64)> = prompts.iter().map(|p| (*p, 0)).collect();
    let got = gen.generate_ids(&seqs, 10, &lm::SamplingConfig { temperature: 0.0, top_k: 0, top_p: 1.0 }).unwrap();
    assert_eq!(got, want);
}

/// `generation.vocabulary = "corpus"`'s mechanism: greedy decoding whose tokens all lie in the kept
/// set gives the tokens of the whole vocabulary (at f32 and bf16), and sampling draws only ids of
/// the set; a stop token stays drawable (samples still end).
#[test]
fn restricted_vocabulary_keeps_greedy_tokens_and_draws_only_its_ids() {
    let tok = lm::LmTokenizer::train_bpe(["ab ba"].into_iter(), 60).unwrap();
    let make = || lm::DecoderGenerator::new(Decoder::new(&gemma3(), &Device::Cpu, 7).unwrap(), tok.clone(), lm::Boundaries { start: Some(2), end: 1 }).unwrap();
    let prompts: [&[u32]; 2] = [&[2, 7, 9, 11], &[2, 30]];
    let seqs: Vec<(&[u32], u64)> = prompts.iter().enumerate().map(|(i, p)| (*p, i as u64)).collect();
    let greedy = lm::SamplingConfig { temperature: 0.0, top_k: 0, top_p: 1.0 };
    for precision in [lm::Precision::F32, lm::Precision::Bf16] {
        let mut whole = make();
        whole.set_precision(precision).unwrap();
        whole.min_new = 12;
        let want = whole.generate_ids(&seqs, 12, &greedy).unwrap();
        let mut kept: Vec<u32> = want.iter().flatten().copied().collect();
        kept.extend([3, 40, 41]);
        let mut cut = make();
        cut.restrict_vocabulary(&kept).unwrap();
        cut.set_precision(precision).unwrap();
        cut.min_new = 12;
        assert!(cut.vocabulary_size() < whole.vocabulary_size());
        assert_eq!(cut.generate_ids(&seqs, 12, &greedy).unwrap(), want, "{precision:?}");
    }
    let set = [5u32, 9, 14, 20];
    let mut cut = make();
    cut.restrict_vocabulary(&set).unwrap();
    assert_eq!(cut.vocabulary_size(), set.len() + cut.stop.len());
    let many: Vec<(&[u32], u64)> = (0..16).map(|i| (prompts[0], i)).collect();
    let drawn = cut.generate_ids(&many, 40, &lm::SamplingConfig { temperature: 1.0, top_k: 0, top_p: 1.0 }).unwrap();
    assert!(drawn.iter().flatten().all(|t| set.contains(t)), "only kept ids drawn");
    assert!(drawn.iter().any(|d| d.len() < 40), "stop tokens still end samples");
    assert!(cut.restrict_vocabulary(&[1_000_000]).is_err());
}

/// `document_nlls`: per document, the NLL that perplexity sums (one document: the same total);
/// a text the model was trained on is likelier than the same text with another last word.
/// The cached shared start scores as the whole rows do, for both architectures trained from
/// scratch, with rows of three lengths in batches of two.
#[test]
fn shared_prefix_scoring_with_a_cache_equals_whole_rows() {
    let (train, dev) = (docs(8), docs(2));
    for arch in ["gpt2", "llama"] {
        let dir = tempfile::tempdir().unwrap();
        lm::train(&tiny_train_config(arch), &train, &dev, dir.path(), &progress::Silent).unwrap();
        let model = lm::Decoder::load(dir.path(), &nn::device()).unwrap();
        let start: Vec<u32> = (5..25).collect();
        let rows: Vec<Vec<u32>> = [vec![40, 41], vec![42], vec![43, 44, 45], vec![46, 47], vec![48]]
            .into_iter()
            .map(|end| start.iter().copied().chain(end).collect())
            .collect();
        let refs: Vec<&Vec<u32>> = rows.iter().collect();
        let cached = lm::train::shared_prefix_row_nlls(&model, &refs, start.len(), 2, &nn::device()).unwrap();
        for (r, c) in refs.iter().zip(&cached) {
            let whole = lm::train::row_nlls_from(&model, &[*r], start.len() - 1, &nn::device()).unwrap()[0];
            assert!((whole - c).abs() < 1e-4 * (1.0 + whole.abs()), "{arch}: {whole} vs {c}");
        }
        assert!(lm::train::shared_prefix_row_nlls(&model, &[&start], start.len(), 2, &nn::device()).is_err(), "a row with nothing past the start");
    }
}

#[test]
fn document_nlls_match_perplexity_and_rank_seen_endings_first() {
    let dir = tempfile::tempdir().unwrap();
    let (train, dev) = (docs(12), docs(3));
    let mut cfg = tiny_train_config("llama");
    cfg.epochs = 6;
    lm::train(&cfg, &train, &dev, dir.path(), &progress::Silent).unwrap();
    for d in &dev {
        let one = std::slice::from_ref(d);
        let nll = lm::document_nlls(dir.path(), one).unwrap()[0];
        let r = lm::perplexity_report(dir.path(), one).unwrap();
        assert!((nll - r.per_token.ln() * r.tokens as f64).abs() < 1e-3 * nll, "{nll} vs {r:?}");
    }
    let seen = train[0].clone();
    let mut other = seen.clone();
    // The same text but for its last word, which becomes one only ever seen at a document's start.
    let (start, _) = seen.text.rsplit_once(' ').unwrap();
    other.text = format!("{start} Nombre:");
    let nlls = lm::document_nlls(dir.path(), &[seen.clone(), other]).unwrap();
    assert!(nlls[0] < nlls[1], "{nlls:?}");
    // A group that fits one block (32 tokens): a document's first words with three endings.
    let head: Vec<&str> = seen.text.split(' ').take(4).collect();
    let group: Vec<Document> = ["tiene", "Nombre:", "y"].iter().enumerate().map(|(i, w)| Document::new(format!("g{i}"), format!("{} {w}", head.join(" ")))).collect();
    let nlls = lm::document_nlls(dir.path(), &group).unwrap();
    // Scoring only past the shared start keeps the differences (so the ranks) within a group.
    let shared = lm::shared_start_nlls(dir.path(), &[group.clone(), dev.clone()]).unwrap();
    assert!(shared[0][0] < nlls[0], "the shared start is not scored: {shared:?} vs {nlls:?}");
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let (a, b) = (nlls[i] - nlls[j], shared[0][i] - shared[0][j]);
        assert!((a - b).abs() < 1e-3 * (1.0 + a.abs()), "{i} {j}: {a} vs {b}");
    }
    // Documents with nothing in common are scored whole.
    let whole = lm::document_nlls(dir.path(), &dev).unwrap();
    for (a, b) in whole.iter().zip(&shared[1]) {
        assert!((a - b).abs() < 1e-3 * a, "{a} vs {b}");
    }
    let ngram_dir = tempfile::tempdir().unwrap();
    lm::train(&TrainConfig { generator: "ngram".into(), ..Default::default() }, &train, &dev, ngram_dir.path(), &progress::Silent).unwrap();
    let ng = lm::document_nlls(ngram_dir.path(), &dev).unwrap();
    assert!(ng.iter().all(|x| x.is_finite() && *x > 0.0), "{ng:?}");
}
