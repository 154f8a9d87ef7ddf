//! Trainable neural-network building blocks on candle, shared by the NER annotator and the
//! language models: differentiable layers with Hugging Face parameter names, fused CPU kernels
//! with their own backward (attention, linear, norms, activations, dropout), BERT-family encoders,
//! AdamW with saveable state, schedules, gradient clipping and crash-safe checkpoint writing.
//!
//! All randomness (initialisation, dropout) comes from seeded ChaCha streams, because candle's
//! CPU device RNG cannot be seeded.

pub mod attention;
pub mod bert;
pub mod checkpoint;
pub mod fused;
pub mod infer;
pub mod layers;
pub mod linear_ce;
pub mod optim;
pub mod params;

pub use bert::{hf_rename, Encoder, EncoderConfig};
pub use infer::{InferenceEncoder, Precision};
pub use layers::{Activation, Embedding, LayerNorm, Linear, Mode, Rng, RmsNorm};
pub use optim::{clip_scale, AdamW, AdamWConfig, LinearSchedule};
pub use params::{Init, LoadReport, ParamBuilder, Params};

pub use candle_core;

/// The compute device for training and prediction: the first CUDA device when the crate is built
/// with the `cuda` feature and one is present, else the CPU. `SYNTHDEID_DEVICE=cpu` forces the CPU
/// (e.g. to compare the two on one machine). Only the CPU runs the fused kernels of [`fused`] and
/// [`attention`]; on CUDA every op falls back to candle's differentiable primitives.
pub fn device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if std::env::var("SYNTHDEID_DEVICE").map(|v| v != "cpu").unwrap_or(true) {
        if let Ok(d) = candle_core::Device::cuda_if_available(0) {
            return d;
        }
    }
    candle_core::Device::Cpu
}
