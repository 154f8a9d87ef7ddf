//! The inference path (`nn::InferenceEncoder`, ragged batches without padding) gives the
//! hidden states of the training forward in eval mode (padded batch, masked attention).

use candle_core::{DType, Device, Tensor};
use nn::{Encoder, EncoderConfig, InferenceEncoder, Mode, Params};
use rand::{Rng, SeedableRng};

fn check(model_type: &str, act: &str, seed: u64, (hidden, heads, ffn): (usize, usize, usize)) {
    let mut c = EncoderConfig::bert(120, hidden, 3, heads, ffn);
    c.model_type = model_type.into();
    c.hidden_act = act.into();
    c.pad_token_id = 1;
    c.max_position_embeddings = 64;
    // A larger init than BERT's 0.02 so that attention is far from uniform and errors would show.
    c.initializer_range = 0.2;
    let params = Params::new(Device::Cpu, DType::F32, seed);
    let enc = Encoder::new(&params.pp("bert"), &c).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let lens = [17usize, 1, 40, 33, 5, 40];
    let seqs: Vec<Vec<u32>> = lens.iter().map(|&l| (0..l).map(|_| rng.random_range(2..120u32)).collect()).collect();
    let (b, l) = (seqs.len(), *lens.iter().max().unwrap());
    let h = c.hidden_size;
    let extra_rows: Vec<Vec<f32>> = (0..b * l).map(|_| (0..h).map(|_| rng.random_range(-1.0..1.0f32)).collect()).collect();

    let flat: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied().chain(std::iter::repeat(c.pad_token_id)).take(l)).collect();
    let mask: Vec<f32> = seqs.iter().flat_map(|s| (0..l).map(move |i| if i < s.len() { 1.0 } else { 0.0 })).collect();
    let extra = Tensor::from_vec(extra_rows.concat(), (b, l, h), &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(flat, (b, l), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (b, l), &Device::Cpu).unwrap();

    let fast = InferenceEncoder::new(&enc).unwrap();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    for with_extra in [false, true] {
        let want: Vec<Vec<Vec<f32>>> = enc.forward(&ids, &mask, with_extra.then_some(&extra), &mut Mode::Eval).unwrap().to_vec3().unwrap();
        let ragged_extra: Vec<f32> = (0..b).flat_map(|s| (0..lens[s]).flat_map(|i| extra_rows[s * l + i].clone()).collect::<Vec<_>>()).collect();
        let got = fast.forward(&refs, with_extra.then_some(ragged_extra.as_slice())).unwrap();
        assert_eq!(got.len(), lens.iter().sum::<usize>() * h);
        let mut row = 0;
        let mut worst = 0f32;
        for (s, &len) in lens.iter().enumerate() {
            for w in &want[s][..len] {
                for k in 0..h {
                    worst = worst.max((got[row * h + k] - w[k]).abs());
                }
                row += 1;
            }
        }
        eprintln!("{model_type} {act} {hidden} extra {with_extra}: max |diff| {worst:.2e}");
        assert!(worst < 1e-4, "{model_type} {act} extra {with_extra}: inference path differs by {worst:e}");
    }
}

#[test]
fn inference_path_matches_training_forward() {
    // Widths below, at and above the packed kernel's 64-column panels and 128-deep blocks.
    check("bert", "gelu", 1, (48, 4, 96));
    check("roberta", "gelu", 2, (48, 4, 96));
    check("bert", "gelu_new", 3, (64, 4, 128));
    check("bert", "relu", 4, (48, 4, 96));
    check("bert", "gelu", 5, (160, 5, 330));
}

/// A sequence of its own gives the same states as inside a batch (no state leaks between
/// sequences of a ragged batch), and an empty batch is fine.
#[test]
fn sequences_do_not_see_each_other() {
    let c = EncoderConfig::bert(50, 32, 2, 4, 64);
    let params = Params::new(Device::Cpu, DType::F32, 9);
    let enc = Encoder::new(&params.pp("bert"), &c).unwrap();
    let fast = InferenceEncoder::new(&enc).unwrap();
    let a: Vec<u32> = (2..20).collect();
    let b: Vec<u32> = (5..40).rev().collect();
    let both = fast.forward(&[&a, &b], None).unwrap();
    let alone = fast.forward(&[&b], None).unwrap();
    let tail = &both[a.len() * 32..];
    let worst = tail.iter().zip(&alone).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-5, "{worst}");
    assert!(fast.forward(&[], None).unwrap().is_empty());
    assert!(fast.forward(&[&[60]], None).is_err(), "an id outside the vocabulary is an error");
}
