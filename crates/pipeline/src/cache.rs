//! Stage cache: a stage's output directory is named by a hash of its name, its config section and
//! the keys of its inputs. A finished stage leaves `done.json`; a rerun with the same key skips it,
//! a changed setting changes the key of that stage and of everything downstream, and a stage
//! killed halfway resumes from what its directory holds (checkpoints, finished shards).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The identity of a stage's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageKey {
    pub stage: &'static str,
    pub hash: String,
}

impl StageKey {
    /// Hash of the stage name, its settings (as canonical JSON) and its inputs' keys.
    pub fn new(stage: &'static str, settings: &impl Serialize, inputs: &[&str]) -> StageKey {
        let mut h = Sha256::new();
        h.update(stage.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(&serde_json::to_value(settings).expect("settings serialize")).expect("json"));
        for i in inputs {
            h.update([0]);
            h.update(i.as_bytes());
        }
        StageKey { stage, hash: hex(&h.finalize()) }
    }

    /// Like [`StageKey::new`], hashing only the settings that differ from `defaults`: a setting
    /// added in a later version (at its default) leaves the keys of finished stages as they
    /// were, so an upgraded synthdeid resumes a run instead of redoing it.
    pub fn of_settings<T: Serialize>(stage: &'static str, settings: &T, defaults: &T, inputs: &[&str]) -> StageKey {
        let v = serde_json::to_value(settings).expect("settings serialize");
        let d = serde_json::to_value(defaults).expect("settings serialize");
        StageKey::new(stage, &sparse(v, &d), inputs)
    }

    pub fn dir(&self, stages_root: &Path) -> PathBuf {
        stages_root.join(format!("{}-{}", self.stage, &self.hash[..12]))
    }
}

/// `v` without the object entries equal to those of `d` (recursively).
fn sparse(v: serde_json::Value, d: &serde_json::Value) -> serde_json::Value {
    match (v, d) {
        (serde_json::Value::Object(m), serde_json::Value::Object(dm)) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(k, x)| dm.get(k) != Some(x))
                .map(|(k, x)| {
                    let x = match dm.get(&k) {
                        Some(dx) => sparse(x, dx),
                        None => x,
                    };
                    (k, x)
                })
                .collect(),
        ),
        (v, _) => v,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash of a document set (ids, texts, spans): the key of data inputs.
pub fn docs_hash(docs: &[corpus::Document]) -> String {
    let mut h = Sha256::new();
    for d in docs {
        h.update(serde_json::to_vec(d).expect("documents serialize"));
        h.update([b'\n']);
    }
    hex(&h.finalize())
}

/// What `done.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoneMarker {
    pub stage: String,
    pub key: String,
    pub seconds: f64,
}

/// Whether a stage ran or came from the cache, and how long it took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub key: String,
    pub cached: bool,
    pub seconds: f64,
}

/// Runs `work(dir)` unless `dir/done.json` exists (and `force` is false). `work` must leave its
/// outputs in `dir` and may find a partial earlier attempt there to resume from.
pub fn run_stage(stages_root: &Path, key: &StageKey, force: bool, work: impl FnOnce(&Path) -> Result<()>) -> Result<(PathBuf, StageTiming)> {
    let dir = key.dir(stages_root);
    let marker = dir.join("done.json");
    if force && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {} for --force", dir.display()))?;
    }
    if marker.exists() {
        let done: DoneMarker = serde_json::from_str(&std::fs::read_to_string(&marker)?).with_context(|| marker.display().to_string())?;
        return Ok((dir, StageTiming { stage: key.stage.into(), key: key.hash.clone(), cached: true, seconds: done.seconds }));
    }
    std::fs::create_dir_all(&dir)?;
    let t0 = Instant::now();
    work(&dir).with_context(|| format!("stage {} ({})", key.stage, dir.display()))?;
    let seconds = t0.elapsed().as_secs_f64();
    let done = DoneMarker { stage: key.stage.into(), key: key.hash.clone(), seconds };
    fsutil::atomic_write(&marker, serde_json::to_string_pretty(&done)?.as_bytes()).map_err(anyhow::Error::msg)?;
    Ok((dir, StageTiming { stage: key.stage.into(), key: key.hash.clone(), cached: false, seconds }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Default)]
    struct Old {
        a: u32,
        inner: Inner,
    }
    #[derive(Serialize, Default)]
    struct Inner {
        x: f64,
    }
    #[derive(Serialize, Default)]
    struct New {
        a: u32,
        inner: InnerNew,
        added: bool,
    }
    #[derive(Serialize, Default)]
    struct InnerNew {
        x: f64,
        y: Option<u8>,
    }

    #[test]
    fn keys_ignore_settings_left_at_their_defaults() {
        let old = Old { a: 3, inner: Inner { x: 0.5 } };
        let new = New { a: 3, inner: InnerNew { x: 0.5, y: None }, added: false };
        let k_old = StageKey::of_settings("s", &old, &Old::default(), &["in"]);
        assert_eq!(k_old, StageKey::of_settings("s", &new, &New::default(), &["in"]));
        // A setting that matters still changes the key, as do the inputs.
        let changed = New { added: true, ..new };
        assert_ne!(k_old, StageKey::of_settings("s", &changed, &New::default(), &["in"]));
        let nested = New { inner: InnerNew { x: 0.5, y: Some(1) }, ..Default::default() };
        assert_ne!(StageKey::of_settings("s", &nested, &New::default(), &["in"]), StageKey::of_settings("s", &New::default(), &New::default(), &["in"]));
        assert_ne!(k_old, StageKey::of_settings("s", &old, &Old::default(), &["other"]));
    }
}
