//! Decoder layers that `nn` does not have (yet): rotary embeddings, causal grouped-query
//! attention with a KV cache, GPT-2's `Conv1D`, and LoRA projections. RMSNorm is `nn`'s.
//!
//! Rotary embeddings have two paths: in training (`Mode::Train`) candle primitives with a
//! backward pass; in evaluation candle-nn's fused kernel (no backward, but faster).

pub mod attention;
pub mod proj;
pub mod rope;

pub use attention::{attend, causal_bias, KvCache, LayerCache};
pub use proj::{LoraConfig, LoraWeights, Proj};
pub use nn::RmsNorm;
pub use rope::Rotary;
