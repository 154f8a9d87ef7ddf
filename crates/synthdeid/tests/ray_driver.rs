//! scripts/ray/driver.py: the shards of `lm generate` (a tiny GPT-2 trained here) and of `deid`
//! run as Ray tasks on a local Ray cluster of 2 workers, merged, give the bytes one process
//! writes. Ray comes from PyPI into the venv `scripts/ray/env.sh` makes once and caches; without
//! python3 + venv (or PyPI on the first run) the test FAILS, naming what is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_synthdeid")
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn synthdeid(args: &[&str]) -> Output {
    ok(Command::new(bin()).args(args).output().unwrap(), &format!("synthdeid {}", args.join(" ")))
}

fn ray_python() -> PathBuf {
    let script = repo().join("scripts/ray/env.sh");
    let o = Command::new("bash").arg(&script).output().unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        o.status.success(),
        "{} failed: Ray's Python environment could not be made (needs python3 with venv and PyPI):\n{}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("bin/python")
}

/// The driver with 2 workers and 3 shards; returns its stderr.
fn driver(py: &Path, out: &Path, cmd: &[&str]) -> String {
    let mut c = Command::new(py);
    c.arg(repo().join("scripts/ray/driver.py"))
        .args(["--workers", "2", "--shards", "3", "--threads", "1", "--synthdeid", bin(), "--out", out.to_str().unwrap(), "--"])
        .args(cmd)
        // A local cluster of this test's own: no dashboard, no usage report.
        .env("RAY_USAGE_STATS_ENABLED", "0");
    let o = ok(c.output().unwrap(), "scripts/ray/driver.py");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn files(path: &Path) -> Vec<(String, Vec<u8>)> {
    if path.is_file() {
        return vec![(String::new(), std::fs::read(path).unwrap())];
    }
    let mut v: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|f| (f.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&f).unwrap()))
        .collect();
    v.sort();
    v
}

fn jsonl(docs: &[serde_json::Value]) -> String {
    docs.iter().map(|d| d.to_string() + "\n").collect()
}

#[test]
fn ray_driver_with_two_workers_writes_what_one_process_writes() {
    let py = ray_python();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let words = ["paciente", "dolor", "fiebre", "Nombre:", "Edad:", "años", "varón", "mujer", "tratamiento", "alta"];
    let doc = |i: usize| {
        let text: Vec<&str> = (0..40).map(|j| words[(i * 7 + j * j + j) % words.len()]).collect();
        let text = format!("Nombre: X{i}\n{}", text.join(" "));
        serde_json::json!({"id": format!("d{i}"), "text": text, "spans": [{"start": 8, "end": 8 + format!("X{i}").len(), "label": "NOMBRE_SUJETO_ASISTENCIA"}]})
    };
    std::fs::write(d.join("train.jsonl"), jsonl(&(0..12).map(doc).collect::<Vec<_>>())).unwrap();
    std::fs::write(d.join("dev.jsonl"), jsonl(&(12..15).map(doc).collect::<Vec<_>>())).unwrap();
    std::fs::write(d.join("prompts.jsonl"), jsonl(&(20..28).map(doc).collect::<Vec<_>>())).unwrap();
    let model = d.join("model");
    let (train, dev, prompts) = (p(&d.join("train.jsonl")), p(&d.join("dev.jsonl")), p(&d.join("prompts.jsonl")));
    synthdeid(&[
        "lm", "train", "--train", &train, "--dev", &dev, "--out", &p(&model), "--generator", "gpt2", "--preset", "tiny", "--vocab-size", "300",
        "--hidden", "32", "--max-positions", "128", "--epochs", "1", "--block-size", "32", "--batch-size", "4", "--lr", "3e-3", "--no-progress",
    ]);

    // Generation.
    let gen = ["lm", "generate", "--model", &p(&model), "--prompts", &prompts, "--samples-per-prompt", "3", "--max-new-tokens", "24", "--seed", "11", "--no-progress"];
    let one = d.join("one.jsonl");
    let mut a = gen.to_vec();
    let one_s = p(&one);
    a.extend(["--out", &one_s]);
    synthdeid(&a);
    let ray = d.join("ray.jsonl");
    let log = driver(&py, &ray, &gen);
    assert!(log.contains("3 shards (0 already done) on 2 workers"), "{log}");
    assert_eq!(files(&ray), files(&one), "2 Ray workers generated another corpus than one process");
    assert!(!d.join("ray.jsonl.shards").exists(), "parts left behind");

    // De-identification (surrogates: consistent across the shards), BRAT output.
    let deid = ["deid", "--spans-from-input", "--input", &train, "--mode", "surrogate", "--seed", "5"];
    let one = d.join("deid-one");
    let mut a = deid.to_vec();
    let one_s = p(&one);
    a.extend(["--out", &one_s]);
    synthdeid(&a);
    let ray = d.join("deid-ray");
    driver(&py, &ray, &deid);
    assert_eq!(files(&ray), files(&one), "2 Ray workers de-identified otherwise than one process");
}
