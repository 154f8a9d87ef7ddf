//! An ensemble: models trained alike on other seeds (`ensemble.members`), kept in `member-0`,
//! `member-1`, … of one model directory, their spans decided by majority vote (`tagging::vote`).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use corpus::Document;
use serde::{Deserialize, Serialize};
use tagging::Tagger;

/// The file that makes a model directory an ensemble's: its members' directories.
pub const ENSEMBLE_FILE: &str = "ensemble.json";

#[derive(Serialize, Deserialize)]
struct Manifest {
    members: Vec<String>,
}

fn member_name(i: usize) -> String {
    format!("member-{i}")
}

pub struct Ensemble {
    pub members: Vec<Box<dyn Tagger>>,
}

impl Ensemble {
    pub fn is_model_dir(dir: &Path) -> bool {
        dir.join(ENSEMBLE_FILE).is_file()
    }

    /// Where member `i` of the ensemble in `dir` lives.
    pub fn member_dir(dir: &Path, i: usize) -> PathBuf {
        dir.join(member_name(i))
    }

    /// Marks `dir` as an ensemble of its first `members` member directories.
    pub fn write_manifest(dir: &Path, members: usize) -> Result<()> {
        let m = Manifest { members: (0..members).map(member_name).collect() };
        fsutil::atomic_write(&dir.join(ENSEMBLE_FILE), serde_json::to_string_pretty(&m)?.as_bytes())?;
        Ok(())
    }

    /// Loads the ensemble in `dir`, each member as `crate::load_tagger_at` would.
    pub fn load(dir: &Path, window: Option<usize>, precision: nn::Precision) -> Result<Self> {
        let path = dir.join(ENSEMBLE_FILE);
        let m: Manifest = serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("parsing {}", path.display()))?;
        ensure!(!m.members.is_empty(), "{} lists no member", path.display());
        let members = m
            .members
            .iter()
            .map(|name| crate::tagger::load_tagger_at(&dir.join(name), window, precision).with_context(|| format!("ensemble member {name} of {}", dir.display())))
            .collect::<Result<_>>()?;
        Ok(Ensemble { members })
    }
}

impl Tagger for Ensemble {
    fn predict(&self, docs: &[Document]) -> Result<Vec<Document>> {
        let each = self.members.iter().map(|m| m.predict(docs)).collect::<Result<Vec<_>>>()?;
        tagging::vote::majority(&each)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        for (i, m) in self.members.iter().enumerate() {
            m.save(&Self::member_dir(dir, i))?;
        }
        Self::write_manifest(dir, self.members.len())
    }

    fn kind(&self) -> &'static str {
        "ensemble"
    }

    fn labels(&self) -> Vec<String> {
        let mut l: Vec<String> = self.members.iter().flat_map(|m| m.labels()).collect();
        l.sort();
        l.dedup();
        l
    }
}
