//! Optimizer, schedule, clipping and checkpoint round-trips.

use candle_core::{DType, Device, Tensor};
use nn::{clip_scale, AdamW, AdamWConfig, EncoderConfig, Init, LinearSchedule, Params};

#[test]
fn adamw_minimises_a_quadratic_and_its_state_round_trips() {
    let params = Params::new(Device::Cpu, DType::F32, 3);
    let w = params.root().get(&[4], "w", Init::Normal(1.0)).unwrap();
    let target = Tensor::new(&[1.0f32, -2.0, 0.5, 3.0], &Device::Cpu).unwrap();
    let cfg = AdamWConfig { lr: 0.1, weight_decay: 0.0, ..Default::default() };
    let mut opt = AdamW::new(params.vars(), cfg, nn::optim::default_decay).unwrap();
    for _ in 0..300 {
        let l = (&w - &target).unwrap().sqr().unwrap().sum_all().unwrap();
        let g = l.backward().unwrap();
        opt.step(&g, 0.05, 1.0).unwrap();
    }
    let got: Vec<f32> = params.get("w").unwrap().as_tensor().to_vec1().unwrap();
    for (a, b) in got.iter().zip([1.0, -2.0, 0.5, 3.0]) {
        assert!((a - b).abs() < 1e-2, "{got:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    opt.save(&dir.path().join("opt.safetensors")).unwrap();
    let mut opt2 = AdamW::new(params.vars(), cfg, nn::optim::default_decay).unwrap();
    opt2.load(&dir.path().join("opt.safetensors")).unwrap();
}

/// A variable's own learning-rate scale: 0 leaves it alone, 3 moves it three times as far as
/// scale 1 (Adam's first step moves each weight by lr · sign(g), up to eps).
#[test]
fn adamw_learning_rate_scales_per_variable() {
    let params = Params::new(Device::Cpu, DType::F32, 3);
    let names = ["head.w", "body.w", "frozen.w"];
    let vars: Vec<_> = names.iter().map(|n| params.root().get(&[2], n, Init::Ones).unwrap()).collect();
    let mut opt = AdamW::new(params.vars(), AdamWConfig { lr: 0.1, weight_decay: 0.0, ..Default::default() }, nn::optim::default_decay).unwrap();
    opt.set_lr_scale(|n| if n.starts_with("head.") { 3.0 } else if n.starts_with("frozen.") { 0.0 } else { 1.0 });
    let l = vars.iter().map(|v| v.sum_all().unwrap()).reduce(|a, b| (a + b).unwrap()).unwrap();
    opt.step(&l.backward().unwrap(), 0.01, 1.0).unwrap();
    let moved: Vec<f32> = names.iter().map(|n| 1.0 - params.get(n).unwrap().as_tensor().to_vec1::<f32>().unwrap()[0]).collect();
    assert!((moved[0] - 0.03).abs() < 1e-5 && (moved[1] - 0.01).abs() < 1e-5 && moved[2] == 0.0, "{moved:?}");
}

#[test]
fn schedule_warms_up_then_decays_to_zero() {
    let s = LinearSchedule { peak: 1.0, warmup: 10, total: 110 };
    assert!((s.lr(0) - 0.1).abs() < 1e-12);
    assert!((s.lr(9) - 1.0).abs() < 1e-12);
    assert!((s.lr(60) - 0.5).abs() < 1e-12);
    assert_eq!(s.lr(110), 0.0);
    assert!(s.lr(200) == 0.0);
}

#[test]
fn clipping_scales_to_max_norm() {
    let params = Params::new(Device::Cpu, DType::F32, 3);
    let w = params.root().get(&[2], "w", Init::Ones).unwrap();
    let l = (w * 3.0).unwrap().sum_all().unwrap(); // gradient (3, 3), norm 3·√2
    let g = l.backward().unwrap();
    let (norm, scale) = clip_scale(&g, &params.vars(), 1.0).unwrap();
    assert!((norm - 18f64.sqrt()).abs() < 1e-5);
    assert!((norm * scale - 1.0).abs() < 1e-4);
    assert_eq!(clip_scale(&g, &params.vars(), 100.0).unwrap().1, 1.0);
}

#[test]
fn params_and_config_round_trip_in_hf_layout() {
    let c = EncoderConfig::bert(30, 8, 1, 2, 16);
    let p = Params::new(Device::Cpu, DType::F32, 5);
    nn::Encoder::new(&p.pp("bert"), &c).unwrap();
    let dir = tempfile::tempdir().unwrap();
    p.save(&dir.path().join("model.safetensors")).unwrap();
    c.save(&dir.path().join("config.json")).unwrap();
    let c2 = EncoderConfig::from_file(&dir.path().join("config.json")).unwrap();
    assert_eq!(c, c2);
    // A model saved without prefix (plain HF BertModel) loads into the prefixed one.
    let q = Params::new(Device::Cpu, DType::F32, 6);
    nn::Encoder::new(&q.root(), &c).unwrap();
    let file = dir.path().join("plain.safetensors");
    q.save(&file).unwrap();
    let report = p.load(&file, |n| nn::hf_rename(n, "bert")).unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty(), "{report:?}");
    let a: Vec<f32> = p.get("bert.encoder.layer.0.intermediate.dense.weight").unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = q.get("encoder.layer.0.intermediate.dense.weight").unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b);
}
