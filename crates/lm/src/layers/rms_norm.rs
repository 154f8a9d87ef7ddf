//! Root-mean-square layer norm (Llama, Mistral, Qwen2): `nn`'s layer, with a fused CPU kernel
//! and its own backward (candle-nn's fused `rms_norm` has none).

pub use nn::layers::rms_norm_reference;
pub use nn::RmsNorm;
