//! `--shard I/N` + `synthdeid merge`: the shards of a stage, merged, equal the unsharded output
//! byte for byte: `lm generate` with a tiny GPT-2 trained here (JSONL and text-directory
//! outputs), and `deid` with surrogates and with redaction (BRAT and JSONL outputs).

use std::path::Path;
use std::process::{Command, Output};

fn synthdeid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synthdeid")).args(args).output().expect("binary runs")
}

fn ok(args: &[&str]) -> Output {
    let o = synthdeid(args);
    assert!(o.status.success(), "synthdeid {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    o
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file under a directory (name → bytes), or the file itself.
fn contents(path: &Path) -> Vec<(String, Vec<u8>)> {
    if path.is_file() {
        return vec![(String::new(), std::fs::read(path).unwrap())];
    }
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|f| (f.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&f).unwrap()))
        .collect();
    files.sort();
    files
}

/// Runs `args ++ [--out OUT_k, --shard k/3]` for k in 0..3, merges, and compares with `whole`.
fn check_shards_merge_to(dir: &Path, name: &str, ext: &str, args: &[&str], whole: &Path) {
    let mut parts = Vec::new();
    for k in 0..3 {
        let out = dir.join(format!("{name}-{k}{ext}"));
        let shard = format!("{k}/3");
        let mut a = args.to_vec();
        a.extend(["--out", p(&out), "--shard", &shard]);
        ok(&a);
        parts.push(out);
    }
    let merged = dir.join(format!("{name}-merged{ext}"));
    let mut a = vec!["merge"];
    a.extend(parts.iter().map(|x| p(x)));
    a.extend(["--out", p(&merged)]);
    ok(&a);
    let (w, m) = (contents(whole), contents(&merged));
    assert!(!w.is_empty());
    assert_eq!(w.len(), m.len(), "{name}: merged output has other files");
    for ((wn, wb), (mn, mb)) in w.iter().zip(&m) {
        assert_eq!(wn, mn, "{name}: file names differ");
        assert!(wb == mb, "{name}: {wn} differs between the sharded+merged and the unsharded run");
    }
    // Parts given out of order, or twice, are not a silent success.
    let twice = dir.join(format!("{name}-twice{ext}"));
    let o = synthdeid(&["merge", p(&parts[0]), p(&parts[0]), "--out", p(&twice)]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("each document must come from one shard"));
}

fn jsonl(docs: &[serde_json::Value]) -> String {
    docs.iter().map(|d| d.to_string() + "\n").collect()
}

#[test]
fn sharded_generation_merges_to_the_unsharded_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let words = ["paciente", "dolor", "fiebre", "Nombre:", "Edad:", "años", "varón", "mujer", "tratamiento", "alta"];
    let doc = |i: usize| {
        let text: Vec<&str> = (0..40).map(|j| words[(i * 7 + j * j + j) % words.len()]).collect();
        serde_json::json!({"id": format!("d{i}"), "text": format!("Nombre: X{i}\n{}", text.join(" ")), "spans": []})
    };
    std::fs::write(d.join("train.jsonl"), jsonl(&(0..12).map(doc).collect::<Vec<_>>())).unwrap();
    std::fs::write(d.join("dev.jsonl"), jsonl(&(12..15).map(doc).collect::<Vec<_>>())).unwrap();
    // 7 prompt documents: shards of 2, 2 and 3.
    std::fs::write(d.join("prompts.jsonl"), jsonl(&(20..27).map(doc).collect::<Vec<_>>())).unwrap();
    let model = d.join("model");
    ok(&[
        "lm", "train", "--train", p(&d.join("train.jsonl")), "--dev", p(&d.join("dev.jsonl")), "--out", p(&model), "--generator", "gpt2",
        "--preset", "tiny", "--vocab-size", "300", "--hidden", "32", "--max-positions", "128", "--epochs", "1", "--block-size", "32",
        "--batch-size", "4", "--lr", "3e-3", "--no-progress",
    ]);
    let prompts = d.join("prompts.jsonl");
    let gen = ["lm", "generate", "--model", p(&model), "--prompts", p(&prompts), "--samples-per-prompt", "3", "--max-new-tokens", "24", "--batch-size", "5", "--seed", "11", "--no-progress"];
    for (name, ext) in [("gen", ".jsonl"), ("gentxt", "")] {
        let whole = d.join(format!("{name}-whole{ext}"));
        let mut a = gen.to_vec();
        a.extend(["--out", p(&whole)]);
        ok(&a);
        check_shards_merge_to(d, name, ext, &gen, &whole);
    }
    let lines = std::fs::read_to_string(d.join("gen-whole.jsonl")).unwrap().lines().count();
    assert_eq!(lines, 21);
    let o = synthdeid(&["lm", "generate", "--model", p(&model), "--prompts", p(&prompts), "--out", p(&d.join("x.jsonl")), "--shard", "3/3"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("below N"));
}

#[test]
fn sharded_deid_merges_to_the_unsharded_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Made-up notes with the same names in several documents (consistent surrogates across shards).
    let names = ["Juan Pérez", "María López", "Ana García", "Luis Martín"];
    let docs: Vec<serde_json::Value> = (0..8)
        .map(|i| {
            let (a, b) = (names[i % 4], names[(i + 1) % 4]);
            let text = format!("Paciente: {a}. Acompañado de {b}. Fecha de ingreso: 0{}/03/2019.", 1 + i % 9);
            let (sa, sb) = (10, 10 + a.chars().count() + 16);
            let sd = text.chars().count() - 11;
            serde_json::json!({"id": format!("n{i}"), "text": text, "spans": [
                {"start": sa, "end": sa + a.chars().count(), "label": "NOMBRE_SUJETO_ASISTENCIA"},
                {"start": sb, "end": sb + b.chars().count(), "label": "NOMBRE_PERSONAL_SANITARIO"},
                {"start": sd, "end": sd + 10, "label": "FECHAS"},
            ]})
        })
        .collect();
    let input = d.join("notes.jsonl");
    std::fs::write(&input, jsonl(&docs)).unwrap();
    for (mode, ext) in [("surrogate", ""), ("surrogate", ".jsonl"), ("redact", ".jsonl")] {
        let name = format!("deid-{mode}{}", if ext.is_empty() { "-brat" } else { "" });
        let args = ["deid", "--spans-from-input", "--input", p(&input), "--mode", mode, "--seed", "3"];
        let whole = d.join(format!("{name}-whole{ext}"));
        let mut a = args.to_vec();
        a.extend(["--out", p(&whole)]);
        ok(&a);
        check_shards_merge_to(d, &name, ext, &args, &whole);
    }
    // Surrogates found by a model need every document's spans: refused with the way to do it.
    let o = synthdeid(&["deid", "--model", p(&d.join("no-model")), "--input", p(&input), "--out", p(&d.join("m.jsonl")), "--shard", "0/2"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--spans-from-input --shard 0/2"), "{e}");
}

#[test]
fn sharded_annotation_merges_to_the_unsharded_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = ["Juan Pérez", "María López", "Ana García", "Luis Martín", "Eva Ruiz"];
    let docs: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            let a = names[i % 5];
            let text = format!("Paciente: {a}. Edad: {} años.", 30 + i);
            serde_json::json!({"id": format!("n{i}"), "text": text, "spans": [
                {"start": 10, "end": 10 + a.chars().count(), "label": "NOMBRE_SUJETO_ASISTENCIA"},
            ]})
        })
        .collect();
    let input = d.join("notes.jsonl");
    std::fs::write(&input, jsonl(&docs)).unwrap();
    let model = d.join("model");
    ok(&["ner", "train-perceptron", "--train", p(&input), "--out", p(&model), "--epochs", "3"]);
    for ext in ["", ".jsonl"] {
        let name = format!("annotate{}", if ext.is_empty() { "-brat" } else { "" });
        let args = ["ner", "predict", "--model", p(&model), "--input", p(&input)];
        let whole = d.join(format!("{name}-whole{ext}"));
        let mut a = args.to_vec();
        a.extend(["--out", p(&whole)]);
        ok(&a);
        check_shards_merge_to(d, &name, ext, &args, &whole);
    }
}
