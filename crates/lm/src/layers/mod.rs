//! Decoder layers that `nn` does not have (yet): RMSNorm with a backward pass, rotary embeddings,
//! causal grouped-query attention with a KV cache, GPT-2's `Conv1D`, and LoRA projections.
//!
//! Every layer has two paths: in training (`Mode::Train`) only candle primitives with a backward
//! pass are used; in evaluation the fused candle-nn kernels (no backward, but faster) are used.

pub mod attention;
pub mod proj;
pub mod rms_norm;
pub mod rope;

pub use attention::{attend, causal_bias, KvCache, LayerCache};
pub use proj::{LoraConfig, LoraWeights, Proj};
pub use rms_norm::RmsNorm;
pub use rope::Rotary;
