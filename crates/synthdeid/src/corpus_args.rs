//! Flags every command that reads a corpus shares.

use anyhow::{anyhow, Result};
use clap::{Args, ValueEnum};
use corpus::{Document, Format, OverlapPolicy, ReadOptions};
use std::path::Path;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Brat,
    Jsonl,
    Conll,
    Text,
    /// i2b2 / n2c2 2014 de-identification XML (a file or a directory of .xml).
    #[value(name = "i2b2-xml", alias = "i2b2")]
    I2b2Xml,
    /// INCEpTION / UIMA CAS JSON 0.4.0 (a file or a directory of .json).
    #[value(alias = "uima", alias = "inception")]
    UimaJson,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Brat => Format::Brat,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Conll => Format::Conll,
            FormatArg::Text => Format::Text,
            FormatArg::I2b2Xml => Format::I2b2Xml,
            FormatArg::UimaJson => Format::UimaJson,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum OverlapArg {
    /// Stop with an error naming the file, line and both spans.
    #[default]
    Error,
    /// Keep the earlier (then longer) span, drop the other, and warn about each dropped span.
    KeepFirst,
    /// Keep every span (scoring only: `evaluate` reads predictions this way).
    Allow,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ReadArgs {
    /// Input format; by default taken from the path: a directory with .ann files is BRAT, a directory of
    /// .txt only is plain text, .jsonl is JSONL, .conll/.bio is CoNLL, .xml (or a directory of them) is
    /// i2b2 2014 XML, .json (or a directory of them) is INCEpTION / UIMA CAS JSON.
    #[arg(long, value_enum)]
    pub from: Option<FormatArg>,
    /// Overlapping spans in one document: BIO tagging cannot hold them, so by default they are an error.
    #[arg(long, value_enum, default_value_t = OverlapArg::Error)]
    pub overlaps: OverlapArg,
    /// Skip BRAT lines other than T (relations, events, attributes, notes) with a warning each,
    /// instead of stopping at the first.
    #[arg(long)]
    pub skip_non_entity_lines: bool,
}

impl ReadArgs {
    pub fn options(&self) -> ReadOptions {
        ReadOptions {
            overlaps: match self.overlaps {
                OverlapArg::Error => OverlapPolicy::Error,
                OverlapArg::KeepFirst => OverlapPolicy::KeepFirst,
                OverlapArg::Allow => OverlapPolicy::Allow,
            },
            skip_non_entity_lines: self.skip_non_entity_lines,
            ann_only: false,
            offsets_only: false,
        }
    }

    pub fn read(&self, path: &Path) -> Result<Vec<Document>> {
        read_with(path, self.from.map(Into::into), &self.options())
    }
}

pub fn read_with(path: &Path, format: Option<Format>, options: &ReadOptions) -> Result<Vec<Document>> {
    corpus::read_corpus(path, format, options).map_err(|e| anyhow!(e))
}
