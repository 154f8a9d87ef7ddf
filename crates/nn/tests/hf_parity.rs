//! Tiny randomly initialised HF checkpoints (made by `fixtures/make_fixtures.py` with PyTorch
//! 2.15 + transformers 5.24) give transformers' hidden states within 1e-4, padding included.

use candle_core::{DType, Device, Tensor};
use nn::{hf_rename, Encoder, EncoderConfig, Mode, Params};
use std::path::PathBuf;

fn check(name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    let config = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let params = Params::new(Device::Cpu, DType::F32, 0);
    let prefix = config.hf_prefix();
    let encoder = Encoder::new(&params.pp(prefix), &config).unwrap();
    let report = params.load(&dir.join("model.safetensors"), |n| hf_rename(n, prefix)).unwrap();
    assert!(report.missing.is_empty(), "{name}: parameters missing from the checkpoint: {:?}", report.missing);

    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let rows = |k: &str| -> Vec<Vec<u32>> {
        expected[k].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()).collect()
    };
    let (ids, mask) = (rows("input_ids"), rows("attention_mask"));
    let (b, l) = (ids.len(), ids[0].len());
    let ids_t = Tensor::from_vec(ids.concat(), (b, l), &Device::Cpu).unwrap();
    let mask_t = Tensor::from_vec(mask.concat(), (b, l), &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
    let hidden: Vec<Vec<Vec<f32>>> = encoder.forward(&ids_t, &mask_t, None, &mut Mode::Eval).unwrap().to_vec3().unwrap();
    let mut worst = 0f64;
    for bi in 0..b {
        for li in 0..l {
            if mask[bi][li] == 0 {
                continue; // padding positions are never read
            }
            for (h, want) in expected["last_hidden_state"][bi][li].as_array().unwrap().iter().enumerate() {
                worst = worst.max((hidden[bi][li][h] as f64 - want.as_f64().unwrap()).abs());
            }
        }
    }
    assert!(worst < 1e-4, "{name}: largest difference from transformers {worst:e}");
}

#[test]
fn tiny_bert_matches_transformers() {
    check("tiny-bert");
}

#[test]
fn tiny_xlmr_matches_transformers() {
    check("tiny-xlmr");
}
