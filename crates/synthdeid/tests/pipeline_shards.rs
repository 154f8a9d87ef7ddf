//! `synthdeid run` with the generate and annotate stages as 3 shard processes (`--shards 3`,
//! `run.shards`): the same stage keys, the same synthetic corpus and results as one process,
//! byte for byte; each stage's `provenance.json` says which backend and shards produced its
//! files; a failing shard is named with its log, and the run resumes from what the shards
//! finished. Tiny GPT-2 generator (drawing from its training text's tokens), tiny transformer annotator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CONFIG: &str = r#"
[run]
name = "shards test"
seed = 5

[data]
train = "data/train.jsonl"
dev = "data/dev.jsonl"
test = "data/test.jsonl"
prompt_ratio = 0.2

[models]
synthetic_ner = "perceptron"

[annotator]
encoder.preset = "tiny"
guide.folds = 0
decoding.boundaries = false
augment.copies = 0
ensemble.members = 1
optimizer = { epochs = 8, batch_size = 4, lr = 0.003 }

[generator]
generator = "gpt2"
preset = "tiny"
epochs = 1
block_size = 64
batch_size = 4

[generation]
samples_per_prompt = 3
max_new_tokens = 60
vocabulary = "corpus"   # the cut output layer, in this process and in the shards alike

[perceptron]
epochs = 2
"#;

fn run(config: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synthdeid"))
        .args(["run", config.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("binary runs")
}

fn ok(o: Output) {
    assert!(o.status.success(), "synthdeid run failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

/// The stage directory of `stage` in a run's cache.
fn stage_dir(out: &Path, stage: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out.join("stages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{stage}-")))
        .collect();
    assert_eq!(dirs.len(), 1, "{stage}: {dirs:?}");
    dirs[0].clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// `results.json` without timings (they differ between runs by nature).
fn results(out: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !["timings", "seconds", "minutes", "wall_seconds", "tokens_per_sec", "created"].contains(&k.as_str()));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn provenance(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("provenance.json")).unwrap()).unwrap()
}

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().expect("sha256sum runs");
    String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn three_shard_processes_write_the_one_process_corpus_and_record_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    pipeline::builtin::write_demo(d, 30, 3).unwrap();
    let config = d.join("shards.toml");
    std::fs::write(&config, CONFIG).unwrap();

    // One process.
    let one = d.join("one");
    ok(run(&config, &one, &[]));

    // Three: the trained annotator and generator come along, so that generate and annotate run
    // again, as shards, under the same keys (the shard count is no part of them).
    let three = d.join("three");
    for stage in ["annotator", "generator"] {
        let from = stage_dir(&one, stage);
        copy_dir(&from, &three.join("stages").join(from.file_name().unwrap()));
    }
    ok(run(&config, &three, &["--shards", "3"]));
    for stage in ["generate", "annotate"] {
        assert_eq!(stage_dir(&one, stage).file_name(), stage_dir(&three, stage).file_name(), "{stage}: the key changed with the shards");
        let (a, b) = (std::fs::read(stage_dir(&one, stage).join("synthetic.jsonl")).unwrap(), std::fs::read(stage_dir(&three, stage).join("synthetic.jsonl")).unwrap());
        assert!(a == b, "{stage}: 3 shards wrote other bytes than one process");
    }
    assert!(std::fs::read(one.join("synthetic.jsonl")).unwrap() == std::fs::read(three.join("synthetic.jsonl")).unwrap());
    assert_eq!(results(&one), results(&three));
    // The annotator found spans to agree on (a tagger that finds none would agree trivially).
    assert!(results(&one)["data"]["synthetic_spans"].as_u64().unwrap() >= 20, "{}", results(&one)["data"]);

    // Provenance: backend, shards, parts, and each file's size and hash.
    let documents = std::fs::read_to_string(one.join("synthetic.jsonl")).unwrap().lines().count();
    // Samples longer than max_new_tokens (60; the built-in documents are longer) are counted,
    // by the shards as by one process (results are equal above).
    let cut = results(&one)["data"]["cut_at_max_new_tokens"].as_u64().expect("counted with a decoder") as usize;
    assert!(cut > 0 && cut <= documents, "{cut} of {documents}");
    let one_generate = stage_dir(&one, "generate");
    for stage in ["generate", "annotate"] {
        let (p1, p3) = (provenance(&stage_dir(&one, stage)), provenance(&stage_dir(&three, stage)));
        assert_eq!((p1["stage"].as_str(), p1["shards"].as_u64(), p3["shards"].as_u64()), (Some(stage), Some(1), Some(3)), "{p3}");
        assert_eq!(p1["backend"]["kind"], "local");
        assert_eq!(p1["synthdeid"], env!("CARGO_PKG_VERSION"));
        assert!(p1.get("parts").is_none());
        let parts = p3["parts"].as_array().unwrap();
        let shards: Vec<&str> = parts.iter().map(|p| p["shard"].as_str().unwrap()).collect();
        assert_eq!(shards, ["0/3", "1/3", "2/3"]);
        assert_eq!(parts.iter().map(|p| p["documents"].as_u64().unwrap() as usize).sum::<usize>(), documents);
        for p in parts {
            let log = p["log"].as_str().expect("each shard ran in a process with a log");
            assert!(stage_dir(&three, stage).join(log).exists());
            assert!(p["seconds"].as_f64().is_some());
        }
        let file = &p3["files"]["synthetic.jsonl"];
        let path = stage_dir(&three, stage).join("synthetic.jsonl");
        assert_eq!(file["sha256"].as_str().unwrap(), sha256(&path));
        assert_eq!(file["bytes"].as_u64().unwrap(), std::fs::metadata(&path).unwrap().len());
        assert_eq!(p3["files"]["synthetic.jsonl"], p1["files"]["synthetic.jsonl"]);
        assert!(p3["files"].get("parts/1-of-3.jsonl").is_some());
    }
    for stage in ["annotator", "generator", "evaluate", "audit"] {
        assert_eq!(provenance(&stage_dir(&one, stage))["shards"], 1, "{stage}");
    }
    let report = std::fs::read_to_string(three.join("report.md")).unwrap();
    let row = report.lines().find(|l| l.starts_with("| generate |")).unwrap();
    assert!(row.ends_with("| no | 3 | local |"), "{row}");

    // A failing shard: the prompt document last in shard 2/3 cannot be written (a directory
    // stands in its place). The error names the shard and its log; the run resumes.
    let again = d.join("again");
    for stage in ["annotator", "generator"] {
        let from = stage_dir(&one, stage);
        copy_dir(&from, &again.join("stages").join(from.file_name().unwrap()));
    }
    let generate = again.join("stages").join(stage_dir(&one, "generate").file_name().unwrap());
    let mut prompts: Vec<String> = std::fs::read_dir(stage_dir(&one, "generate").join("shards")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".jsonl")).collect();
    // Prompt order: as in the corpus (ids `PROMPT__sNNN`).
    let order: Vec<String> = std::fs::read_to_string(one.join("synthetic.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().split("__s").next().unwrap().to_string() + ".jsonl")
        .collect();
    prompts.sort_by_key(|p| order.iter().position(|o| o == p).unwrap());
    prompts.dedup();
    let last = prompts.last().unwrap();
    std::fs::create_dir_all(generate.join("shards").join(last).join("in-the-way")).unwrap();
    let o = run(&config, &again, &["--shards", "3"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    let log = generate.join("parts/2-of-3.log");
    assert!(err.contains("shard 2/3 failed") && err.contains(log.to_str().unwrap()), "{err}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("error"));
    // What shard 2/3 finished before it failed stays, and is not generated again.
    let last_shard = corpus::shard::Shard::new(2, 3).unwrap().range(prompts.len());
    let finished: Vec<(PathBuf, std::time::SystemTime)> = prompts[last_shard.start..prompts.len() - 1]
        .iter()
        .map(|p| generate.join("shards").join(p))
        .map(|p| {
            let t = std::fs::metadata(&p).expect("a finished prompt document is kept").modified().unwrap();
            (p, t)
        })
        .collect();
    std::fs::remove_dir_all(generate.join("shards").join(last)).unwrap();
    ok(run(&config, &again, &["--shards", "3"]));
    for (p, t) in finished {
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), t, "{} was generated again", p.display());
    }
    assert!(std::fs::read(one.join("synthetic.jsonl")).unwrap() == std::fs::read(again.join("synthetic.jsonl")).unwrap());

    // A generator whose training its time budget stopped: the run, results.json and the report say so.
    assert_eq!(results(&one)["generator_stopped_by_budget"], false);
    let budget = d.join("budget.toml");
    std::fs::write(&budget, CONFIG.replace("batch_size = 4\n\n[generation]", "batch_size = 4\nmax_minutes = 0.000001\n\n[generation]")).unwrap();
    let cut_run = d.join("cut");
    let o = run(&budget, &cut_run, &["--cache", one.join("stages").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("training stopped at generator.max_minutes"), "{err}");
    assert_eq!(results(&cut_run)["generator_stopped_by_budget"], true);
    assert!(std::fs::read_to_string(cut_run.join("report.md")).unwrap().contains("(training stopped at `generator.max_minutes` before its last epoch ended)"));

    // `generation.unfinished = "drop"`: the same generate stage, a new annotate stage without the
    // samples that stopped at max_new_tokens (sharded, so the shards read the kept ones).
    let ids = |path: &Path| -> std::collections::BTreeSet<String> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string()).collect()
    };
    let all = ids(&one.join("synthetic.jsonl"));
    let mut cut_ids = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(one_generate.join("shards")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".cut.json") {
            cut_ids.extend(serde_json::from_str::<Vec<String>>(&std::fs::read_to_string(&p).unwrap()).unwrap());
        }
    }
    assert_eq!(cut_ids.len(), cut);
    let drop = d.join("drop.toml");
    std::fs::write(&drop, CONFIG.replace("max_new_tokens = 60\n", "max_new_tokens = 60\nunfinished = \"drop\"\n")).unwrap();
    let dropped = d.join("dropped");
    let o = run(&drop, &dropped, &["--cache", one.join("stages").to_str().unwrap(), "--shards", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    // The seeded tiny generator ends some samples within 60 tokens, not all.
    assert!(cut < documents, "{cut} of {documents}");
    assert!(o.status.success(), "{err}");
    let kept = ids(&dropped.join("synthetic.jsonl"));
    assert_eq!(kept, all.difference(&cut_ids).cloned().collect(), "the kept samples are those that ended");
    let r = results(&dropped);
    assert_eq!((r["data"]["dropped_unfinished"].as_u64(), r["data"]["synthetic_documents"].as_u64()), (Some(cut as u64), Some((documents - cut) as u64)));
    assert!(std::fs::read_to_string(dropped.join("report.md")).unwrap().contains(&format!("{cut} more samples stopped at `generation.max_new_tokens` = 60 before they ended and were left out")));
    let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dropped.join("results.json")).unwrap()).unwrap();
    let generate: Vec<bool> = ["generate", "annotate"].iter().map(|s| raw["timings"].as_array().unwrap().iter().find(|t| t["stage"] == *s).unwrap()["cached"].as_bool().unwrap()).collect();
    assert_eq!(generate, [true, false], "generate comes from the cache, annotate runs anew");
}
