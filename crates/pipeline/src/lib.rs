//! The end-to-end pipeline: one TOML config declares a run (data, splits, seeds, annotator,
//! generator, generation, synthetic NER, hardening, audit, ablation grid); [`run`] executes its
//! stages through a content-hash cache, so reruns skip what is done and killed runs resume; the
//! report (`report.md`, `report.html` with SVG plots) shows gold against synthetic NER, the
//! audit and the settings.

pub mod builtin;
pub mod canary;
pub mod cache;
pub mod config;
mod plots;
pub mod report;
pub mod run;
pub mod shards;

pub use config::{NerKind, RunConfig};
pub use run::{cells, earlier_cells, run, select_cells, Cell, CellResult, EarlierCell, RunOptions, RunSummary, STAGES};
