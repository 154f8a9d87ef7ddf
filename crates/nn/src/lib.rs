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
pub mod layers;
pub mod optim;
pub mod params;

pub use bert::{hf_rename, Encoder, EncoderConfig};
pub use layers::{Activation, Embedding, LayerNorm, Linear, Mode, Rng};
pub use optim::{clip_scale, AdamW, AdamWConfig, LinearSchedule};
pub use params::{Init, LoadReport, ParamBuilder, Params};

pub use candle_core;
