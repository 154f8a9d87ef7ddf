//! The binary end to end: flags, outputs, exit codes and messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn synthdeid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synthdeid")).args(args).output().expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn meddocan(split: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/meddocan").join(split);
    assert!(p.is_dir(), "{} not found: this test reads MEDDOCAN there (`../shared` beside the repository, as in CI)", p.display());
    p
}

fn write_brat(dir: &Path, id: &str, text: &str, ann: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{id}.txt")), text).unwrap();
    std::fs::write(dir.join(format!("{id}.ann")), ann).unwrap();
}

#[test]
fn every_command_has_help() {
    for cmd in [
        &["stats"][..], &["convert"], &["split"], &["evaluate"], &["run"], &["demo"], &["deid"], &["audit"],
        &["ner", "train"], &["ner", "predict"], &["ner", "eval"], &["ner", "train-perceptron"],
        &["lm", "train"], &["lm", "generate"], &["lm", "perplexity"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let o = synthdeid(&args);
        assert!(o.status.success(), "{cmd:?}");
        assert!(stdout(&o).contains("Usage: synthdeid"), "{cmd:?}");
        // `-h` is the one-screen summary; the explanations after the options are in `--help` only.
        let mut args = cmd.to_vec();
        args.push("-h");
        let short = stdout(&synthdeid(&args));
        assert!(short.lines().count() <= 60, "{cmd:?} -h: {} lines", short.lines().count());
    }
}

#[test]
fn evaluate_json_has_every_metric_and_names_missing_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let gold = tmp.path().join("gold");
    let pred = tmp.path().join("pred");
    write_brat(&gold, "a", "Ana vive en Madrid.", "T1\tNOMBRE 0 3\tAna\nT2\tTERRITORIO 12 18\tMadrid\n");
    write_brat(&gold, "b", "Eva.", "T1\tNOMBRE 0 3\tEva\n");
    // Prediction for `a` only, as an .ann without its .txt; `b` is missing.
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::write(pred.join("a.ann"), "T1\tNOMBRE 0 3\tAna\n").unwrap();
    let o = synthdeid(&["evaluate", "--gold", gold.to_str().unwrap(), "--pred", pred.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 gold document(s) have no prediction and count as all misses: b"));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for k in ["entity_strict", "span_strict", "span_merged", "token", "entity_overlap"] {
        let micro = &v[k]["micro"];
        for f in ["precision", "recall", "f1", "tp", "fp", "fn"] {
            assert!(micro.get(f).is_some(), "{k}.micro.{f}");
        }
        assert!(v[k].get("macro_f1").is_some() && v[k].get("per_label").is_some());
    }
    assert_eq!(v["entity_strict"]["micro"]["tp"], 1);
    assert_eq!(v["entity_strict"]["micro"]["fn"], 2);
    assert_eq!(v["documents"], 2);
    assert_eq!(v["missing_predictions"], serde_json::json!(["b"]));
}

#[test]
fn bad_input_fails_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let gold = tmp.path().join("gold");
    write_brat(&gold, "a", "Ana", "T1\tNOMBRE 0 3\tAna\nT2\tNOMBRE 1 9\tna\n");
    let o = synthdeid(&["stats", gold.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("a.ann:2: T2: span NOMBRE 1..9 ends after the text"), "{err}");
}

#[test]
fn meddocan_stats_convert_and_self_score() {
    let test = meddocan("test");
    let o = synthdeid(&["stats", test.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["documents"], 250);
    assert_eq!(v["spans"], 5661);
    assert_eq!(v["spans_not_token_aligned"].as_array().unwrap().len(), 0);
    assert_eq!(v["spans_cut_by_sentences"].as_array().unwrap().len(), 0);

    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("test.jsonl");
    let o = synthdeid(&["convert", test.to_str().unwrap(), jsonl.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = synthdeid(&["evaluate", "--gold", test.to_str().unwrap(), "--pred", jsonl.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for k in ["entity_strict", "span_strict", "span_merged", "token", "entity_overlap"] {
        assert_eq!(v[k]["micro"]["f1"], 1.0, "{k}");
        assert_eq!(v[k]["macro_f1"], 1.0, "{k}");
    }

    let out = tmp.path().join("split");
    let o = synthdeid(&["split", jsonl.to_str().unwrap(), "--out", out.to_str().unwrap(), "--kind", "prompts", "--ratio", "0.05", "--seed", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let count = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!((count(&out.join("prompts.jsonl")), count(&out.join("train.jsonl"))), (13, 237));
}

/// Every command that writes documents writes them owner-only, as `run` does: a converted or
/// split gold corpus holds PHI in clear (`lm generate` and `ner predict` go through the same start).
#[cfg(unix)]
#[test]
fn corpora_written_by_any_command_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("gold.jsonl");
    let docs: String = (0..4).map(|i| format!("{{\"id\":\"d{i}\",\"text\":\"Ana vive en Soria.\",\"spans\":[{{\"start\":0,\"end\":3,\"label\":\"NOMBRE\"}}]}}\n")).collect();
    std::fs::write(&jsonl, docs).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let brat = tmp.path().join("brat");
    let o = synthdeid(&["convert", jsonl.to_str().unwrap(), brat.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!((mode(&brat), mode(&brat.join("d0.txt")), mode(&brat.join("d0.ann"))), (0o700, 0o600, 0o600));
    let split = tmp.path().join("split");
    let o = synthdeid(&["split", jsonl.to_str().unwrap(), "--out", split.to_str().unwrap(), "--kind", "prompts", "--ratio", "0.5", "--seed", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!((mode(&split.join("prompts.jsonl")), mode(&split.join("train.jsonl"))), (0o600, 0o600));
}

#[test]
fn deid_spans_from_input_writes_an_aligned_annotated_corpus_without_leaking_to_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let gold = tmp.path().join("gold");
    let text = "\u{feff}Nombre: Ana García. DNI: 12345678Z. Ingreso: 03/03/2015; alta: 13/03/2015.";
    let chars: Vec<char> = text.chars().collect();
    let find = |s: &str| -> (usize, usize) {
        let sc: Vec<char> = s.chars().collect();
        let start = (0..chars.len()).find(|&i| chars[i..].starts_with(&sc)).unwrap();
        (start, start + sc.len())
    };
    let mut ann = String::new();
    for (i, (s, label)) in [("Ana García", "NOMBRE_SUJETO_ASISTENCIA"), ("12345678Z", "ID_SUJETO_ASISTENCIA"), ("03/03/2015", "FECHAS"), ("13/03/2015", "FECHAS")].iter().enumerate() {
        let (a, b) = find(s);
        ann.push_str(&format!("T{}\t{label} {a} {b}\t{s}\n", i + 1));
    }
    write_brat(&gold, "doc", text, &ann);
    let out = tmp.path().join("out.jsonl");
    // Too few words to detect the language from: Spanish is given.
    let o = synthdeid(&["deid", "--spans-from-input", "--input", gold.to_str().unwrap(), "--out", out.to_str().unwrap(), "--key", "k1", "--language", "es"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("Ana") && !stderr(&o).contains("12345678Z"));
    assert!(!tmp.path().join("mapping.jsonl").exists());
    let doc: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&out).unwrap().lines().next().unwrap()).unwrap();
    let new_text: Vec<char> = doc["text"].as_str().unwrap().chars().collect();
    assert_eq!(new_text[0], '\u{feff}', "the BOM is kept");
    let spans = doc["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 4);
    let surface = |i: usize| -> String {
        let s = &spans[i];
        new_text[s["start"].as_u64().unwrap() as usize..s["end"].as_u64().unwrap() as usize].iter().collect()
    };
    assert_ne!(surface(0), "Ana García");
    let id = surface(1);
    assert_eq!(id.len(), 9);
    assert!(id[..8].chars().all(|c| c.is_ascii_digit()));
    assert_eq!(id.chars().nth(8).unwrap(), "TRWAGMYFPDXBNJZSQVHLCKE".chars().nth(id[..8].parse::<usize>().unwrap() % 23).unwrap());
    // Dates: same format, still 10 days apart.
    let day = |s: &str| -> i64 {
        let p: Vec<i64> = s.split('/').map(|x| x.parse().unwrap()).collect();
        let (d, m, y) = (p[0], p[1], p[2]);
        // days from civil (proleptic Gregorian)
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy
    };
    assert_ne!(surface(2), "03/03/2015");
    assert_eq!(day(&surface(3)) - day(&surface(2)), 10);
    // The output is itself an annotated corpus the scorer reads.
    let o = synthdeid(&["evaluate", "--gold", out.to_str().unwrap(), "--pred", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `deid` takes its surrogates' language from the text when `--language` is not given (it was Spanish for every text),
/// and says which it used, without any document text.
#[test]
fn deid_detects_the_surrogate_language_of_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = |id: &str, text: &str, name: &str| {
        let start = text.chars().collect::<Vec<_>>().windows(name.chars().count()).position(|w| w.iter().collect::<String>() == name).unwrap();
        let end = start + name.chars().count();
        format!("{}\n", serde_json::json!({"id": id, "text": text, "spans": [{"start": start, "end": end, "label": "NAME_PATIENT"}]}))
    };
    let german = tmp.path().join("de.jsonl");
    std::fs::write(&german, doc("a", "Der Patient Lukas Brandhuber wurde in die Klinik aufgenommen, weil er seit einer Woche über Schmerzen in der Brust und Atemnot klagt. Die Ehefrau ist mit ihm gekommen und nicht zu Hause.", "Lukas Brandhuber")).unwrap();
    let spanish = tmp.path().join("es.jsonl");
    std::fs::write(&spanish, doc("b", "El paciente Lucas Brandhuber ingresó en el hospital por dolor en el pecho y disnea de una semana de evolución, con su esposa y sin antecedentes de interés.", "Lucas Brandhuber")).unwrap();
    let out = tmp.path().join("o.jsonl");
    let run = |input: &Path, extra: &[&str]| {
        let o = synthdeid(&[&["deid", "--spans-from-input", "--force", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()][..], extra].concat());
        let err = stderr(&o);
        assert!(o.status.success() && !err.contains("Brandhuber"), "{err}");
        err
    };
    assert!(run(&german, &[]).contains("surrogate language: de (detected"), "{}", run(&german, &[]));
    assert!(run(&spanish, &[]).contains("surrogate language: es (detected"), "{}", run(&spanish, &[]));
    assert!(run(&german, &["--language", "sv"]).contains("surrogate language: sv;"), "{}", run(&german, &["--language", "sv"]));
    let short = tmp.path().join("short.jsonl");
    std::fs::write(&short, doc("c", "Nombre: Lucas Brandhuber.", "Lucas Brandhuber")).unwrap();
    assert!(run(&short, &[]).contains("surrogate language: en (not detected"), "{}", run(&short, &[]));
    assert!(!run(&german, &["--mode", "redact"]).contains("surrogate language"), "redaction writes no surrogate");
}

/// 40 built-in demo documents, 30 written to `dir/train.jsonl` and 10 to `dir/test.jsonl`, and a
/// perceptron trained on the 30 for `epochs` in `dir/model`: (documents, train, test, model).
fn demo_perceptron(dir: &Path, epochs: usize) -> (Vec<corpus::Document>, PathBuf, PathBuf, PathBuf) {
    let docs = pipeline::builtin::demo_corpus(40, 9);
    let (train, test, model) = (dir.join("train.jsonl"), dir.join("test.jsonl"), dir.join("model"));
    corpus::write_corpus(&train, None, &docs[..30]).unwrap();
    corpus::write_corpus(&test, None, &docs[30..]).unwrap();
    let o = synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--epochs", &epochs.to_string()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (docs, train, test, model)
}

/// `--unlabelled`: self-training on text without spans; the training documents themselves are refused.
#[test]
fn train_perceptron_self_trains_on_unlabelled_text() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, train, test, _) = demo_perceptron(tmp.path(), 2);
    let model = tmp.path().join("st");
    let args = |unlabelled: &Path| synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--epochs", "2", "--augment", "0", "--unlabelled", unlabelled.to_str().unwrap()]);
    let o = args(&test);
    assert!(o.status.success() && stderr(&o).contains("a first tagger labels 10 unlabelled documents") && stderr(&o).contains("on 40 documents"), "{}", stderr(&o));
    let o = args(&train);
    assert!(!o.status.success() && stderr(&o).contains("is also a training document"), "{}", stderr(&o));
}

/// `--labels` gives the surrogate copies a label map; a file that is not there stops training
/// with the setting and the path named.
#[test]
fn train_perceptron_reads_a_label_map_for_its_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, train, _, _) = demo_perceptron(tmp.path(), 1);
    let model = tmp.path().join("lm");
    let map = tmp.path().join("labels.toml");
    std::fs::write(&map, "[labels]\nNOMBRE_SUJETO_ASISTENCIA = \"name\"\n").unwrap();
    let args = |labels: &Path| synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--epochs", "1", "--augment", "1", "--labels", labels.to_str().unwrap()]);
    let o = args(&map);
    assert!(o.status.success() && stderr(&o).contains("1 surrogate copies"), "{}", stderr(&o));
    let o = args(&tmp.path().join("missing.toml"));
    assert!(!o.status.success() && stderr(&o).contains("augment.labels") && stderr(&o).contains("missing.toml"), "{}", stderr(&o));
}

#[test]
fn ner_perceptron_train_eval_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, train, test, model) = demo_perceptron(tmp.path(), 5);
    let o = synthdeid(&["ner", "eval", "--model", model.to_str().unwrap(), "--gold", test.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["token"]["micro"]["f1"].as_f64().unwrap() > 0.9, "{}", v["token"]["micro"]);
    let out = tmp.path().join("pred");
    let o = synthdeid(&["ner", "predict", "--model", model.to_str().unwrap(), "--input", test.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = synthdeid(&["evaluate", "--gold", test.to_str().unwrap(), "--pred", out.to_str().unwrap(), "--json"]);
    let w: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(w["token"], v["token"], "ner eval and evaluate on ner predict agree");
    // A committee of two taggers (feature sets 3 and 1) trains and tags as one model.
    let committee = tmp.path().join("committee");
    let o = synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", committee.to_str().unwrap(), "--epochs", "5", "--feature-sets", "3,1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = synthdeid(&["ner", "eval", "--model", committee.to_str().unwrap(), "--gold", test.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(c["token"]["micro"]["f1"].as_f64().unwrap() > 0.9, "{}", c["token"]["micro"]);
    let o = synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", committee.to_str().unwrap(), "--feature-sets", "3,9"]);
    assert!(!o.status.success() && stderr(&o).contains("feature set 9 does not exist"), "{}", stderr(&o));
    // Seed candidates: each seed's dev score is printed, the kept one marked; without --dev, refused.
    let picked = tmp.path().join("picked");
    let args = ["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", picked.to_str().unwrap(), "--epochs", "2", "--seed-candidates", "2", "--seed", "3"];
    let o = synthdeid(&[&args[..], &["--dev", test.to_str().unwrap()]].concat());
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("seed 3: dev token F1") && err.contains("seed 1003: dev token F1") && err.matches("(kept)").count() == 1, "{err}");
    let o = synthdeid(&args);
    assert!(!o.status.success() && stderr(&o).contains("picks a seed on dev documents"), "{}", stderr(&o));    // BILOU tags: said at the start, and the model tags as well as the BIO one.
    let bilou = tmp.path().join("bilou");
    let o = synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", bilou.to_str().unwrap(), "--epochs", "5", "--tag-scheme", "bilou"]);
    assert!(o.status.success() && stderr(&o).contains("BILOU tags"), "{}", stderr(&o));
    let o = synthdeid(&["ner", "eval", "--model", bilou.to_str().unwrap(), "--gold", test.to_str().unwrap(), "--json"]);
    let b: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(b["token"]["micro"]["f1"].as_f64().unwrap() > 0.9, "{}", b["token"]["micro"]);
    let o = synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", bilou.to_str().unwrap(), "--tag-scheme", "bioes"]);
    assert!(!o.status.success() && stderr(&o).contains("bilou"), "{}", stderr(&o));
}

/// Issue 25, case 1: `deid --spans-from-input` on text without spans exited 0 with the text unchanged.
#[test]
fn issue25_case1_deid_spans_from_input_refuses_input_without_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let txt_dir = tmp.path().join("txt");
    std::fs::create_dir_all(&txt_dir).unwrap();
    std::fs::write(txt_dir.join("a.txt"), "Paciente Ana García SECRET.").unwrap();
    let out = tmp.path().join("o.jsonl");
    for input in [txt_dir.clone(), txt_dir.join("a.txt")] {
        let o = synthdeid(&["deid", "--spans-from-input", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains("plain text without spans") && err.contains(input.to_str().unwrap()), "{err}");
        assert!(!err.contains("SECRET") && !out.exists(), "{err}");
    }
    // A BRAT directory whose .ann files are all empty, and a JSONL without any span: refused as well.
    let brat = tmp.path().join("brat");
    write_brat(&brat, "a", "Paciente Ana García SECRET.", "");
    let jsonl = tmp.path().join("in.jsonl");
    std::fs::write(&jsonl, "{\"id\":\"a\",\"text\":\"Paciente Ana SECRET.\"}\n").unwrap();
    for input in [brat, jsonl] {
        let o = synthdeid(&["deid", "--spans-from-input", "--input", input.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(!o.status.success() && err.contains("found no span"), "{err}");
        assert!(!err.contains("SECRET") && !out.exists(), "{err}");
    }
    // A misspelt key is refused by the reader, naming file:line and the key.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\":\"a\",\"text\":\"Ana SECRET\",\"span\":[{\"start\":0,\"end\":3,\"label\":\"NOMBRE\"}]}\n").unwrap();
    let o = synthdeid(&["deid", "--spans-from-input", "--input", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("bad.jsonl:1:") && err.contains("unknown field `span`"), "{err}");
    assert!(!err.contains("SECRET") && !out.exists(), "{err}");
}

/// Issue 25, case 2: `--mapping-out` equal to `--out` left only the mapping (originals in clear) where the
/// clean corpus was expected; `--out` equal to `--input` overwrote the input; an existing BRAT `--out`
/// mixed old and new documents silently; the mapping followed the umask.
#[test]
fn issue25_case2_deid_refuses_outputs_that_overwrite_or_mix_and_writes_the_mapping_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let gold = tmp.path().join("gold");
    write_brat(&gold, "a", "Ana vive.", "T1\tNOMBRE_SUJETO_ASISTENCIA 0 3\tAna\n");
    let g = gold.to_str().unwrap();
    let run = |extra: &[&str]| synthdeid(&[&["deid", "--spans-from-input", "--input", g][..], extra].concat());
    let o_jsonl = tmp.path().join("o.jsonl");
    let o = run(&["--out", o_jsonl.to_str().unwrap(), "--mapping-out", tmp.path().join("./o.jsonl").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("is the --out path"), "{}", stderr(&o));
    assert!(!o_jsonl.exists());
    // --out equal to --input (spelt differently), with or without --force.
    for force in [&[][..], &["--force"]] {
        let o = run(&[&["--out", &format!("{}/../gold/", g)][..], force].concat());
        assert!(!o.status.success() && stderr(&o).contains("is the --input"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(gold.join("a.txt")).unwrap(), "Ana vive.");
    // The mapping inside a BRAT --out directory would travel with the corpus.
    let out = tmp.path().join("out");
    let o = run(&["--out", out.to_str().unwrap(), "--mapping-out", out.join("map.jsonl").to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("inside the --out directory"), "{}", stderr(&o));
    // A fresh directory: written; the mapping outside it, mode 0600.
    let map = tmp.path().join("map.jsonl");
    let o = run(&["--out", out.to_str().unwrap(), "--mapping-out", map.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&map).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Again into the now non-empty directory, with an older document there: refused without --force ...
    write_brat(&out, "old", "Eva.", "T1\tNOMBRE_SUJETO_ASISTENCIA 0 3\tEva\n");
    let o = run(&["--out", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("already holds documents") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(out.join("old.txt").exists());
    // ... and with --force the directory holds exactly the new corpus.
    let o = run(&["--out", out.to_str().unwrap(), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["a.ann", "a.txt"]);
    // An existing non-empty .jsonl output: refused without --force.
    std::fs::write(&o_jsonl, "{}\n").unwrap();
    let o = run(&["--out", o_jsonl.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(run(&["--out", o_jsonl.to_str().unwrap(), "--force"]).status.success());
}

/// Issue 25, case 3: `run` with `[data] train` an empty directory or a single document panicked in the
/// n-gram generator after `--dry-run` said the config was fine; `[audit] ngram = 0` and `audit --ngram 0`
/// panicked in the audit. All are now refused up front, by `--dry-run` too, with the key and what to do.
#[test]
fn issue25_case3_run_and_audit_refuse_impossible_settings_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    pipeline::builtin::write_demo(&data, 12, 3).unwrap();
    let (empty, one) = (tmp.path().join("empty"), tmp.path().join("one"));
    std::fs::create_dir_all(&empty).unwrap();
    let docs = corpus::read_corpus(&data.join("data/train.jsonl"), None, &corpus::ReadOptions::default()).unwrap();
    corpus::write_corpus(&one.join("train.jsonl"), None, &docs[..1]).unwrap();
    let mut unannotated = docs.clone();
    unannotated.iter_mut().for_each(|d| d.spans.clear());
    corpus::write_corpus(&tmp.path().join("plain.jsonl"), None, &unannotated).unwrap();
    let n = std::cell::Cell::new(0);
    let config = |train: &Path, extra: &str| -> PathBuf {
        n.set(n.get() + 1);
        let p = tmp.path().join(format!("c{}.toml", n.get()));
        let text = format!(
            "[run]\nname = \"t\"\nseed = 1\n[data]\ntrain = {:?}\ntest = {:?}\nprompt_ratio = 0.2\n[generator]\ngenerator = \"ngram\"\n{extra}",
            train.to_str().unwrap(),
            data.join("data/test.jsonl").to_str().unwrap()
        );
        std::fs::write(&p, text).unwrap();
        p
    };
    let out = tmp.path().join("out");
    let dry = |cfg: &Path| synthdeid(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--dry-run"]);
    let ok = dry(&config(&data.join("data/train.jsonl"), ""));
    assert!(ok.status.success(), "{}", stderr(&ok));
    // `--cell` picks cells of the grid by name; an unknown one is refused with the names there are.
    let grid = config(&data.join("data/train.jsonl"), "[ablation]\nseeds = [1, 2]\n");
    let cell = |name: &str| synthdeid(&["run", grid.to_str().unwrap(), "--out", out.to_str().unwrap(), "--dry-run", "--cell", name]);
    let picked = cell("gen80-ann80-spp80-seed2");
    assert!(picked.status.success() && String::from_utf8_lossy(&picked.stdout).contains("1 cell(s)\n  gen80-ann80-spp80-seed2\n"), "{}{}", String::from_utf8_lossy(&picked.stdout), stderr(&picked));
    let bad = cell("seed2");
    assert!(!bad.status.success() && stderr(&bad).contains("--cell seed2: no such cell") && stderr(&bad).contains("gen80-ann80-spp80-seed1"), "{}", stderr(&bad));
    // --results-from supplies the cells a --cell run does not run: alone it is refused.
    let alone = synthdeid(&["run", grid.to_str().unwrap(), "--out", out.to_str().unwrap(), "--dry-run", "--results-from", out.to_str().unwrap()]);
    assert!(!alone.status.success() && stderr(&alone).contains("only with --cell"), "{}", stderr(&alone));
    for (cfg, expected) in [
        (config(&empty, ""), "holds 0 document(s)"),
        (config(&one.join("train.jsonl"), ""), "holds 1 document(s): after the prompt hold-out"),
        (config(&data.join("data/train.jsonl"), "[ablation]\nfolds = 50\n"), "ablation.folds = 50"),
        (config(&tmp.path().join("plain.jsonl"), ""), "has an annotated span"),
        (config(&data.join("data/train.jsonl"), "[audit]\nngram = 0\n"), "audit.ngram = 0"),
    ] {
        for o in [dry(&cfg), synthdeid(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()])] {
            let err = stderr(&o);
            assert!(!o.status.success() && err.contains(expected), "{expected}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
        assert!(!out.exists(), "refused before any work");
    }
    let train = data.join("data/train.jsonl");
    let o = synthdeid(&["audit", "--synthetic", train.to_str().unwrap(), "--train", train.to_str().unwrap(), "--ngram", "0"]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("--ngram") && err.contains("at least 1") && !err.contains("panicked"), "{err}");
}

/// Issue 25, case 4: `ner train-perceptron` on documents without spans exited 0 and wrote a model
/// with `"o_penalty": null` that `ner eval` could not load.
#[test]
fn issue25_case4_train_perceptron_refuses_documents_without_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let mut docs = pipeline::builtin::demo_corpus(10, 9);
    docs.iter_mut().for_each(|d| d.spans.clear());
    let train = tmp.path().join("train.jsonl");
    corpus::write_corpus(&train, None, &docs).unwrap();
    let model = tmp.path().join("model");
    let o = synthdeid(&["ner", "train-perceptron", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--epochs", "2"]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("has an annotated span"), "{err}");
    assert!(!model.join("perceptron.json").exists() && !model.join("config.json").exists(), "no model written");
}

/// Issue 25, case 6: an empty `--key ""` (or SYNTHDEID_KEY, or key file) was accepted as a secret; the help
/// said a surrogate never equals an original, while sex markers and kinship words are kept by design.
#[test]
fn issue25_case6_deid_refuses_an_empty_key_and_its_help_names_the_kept_values() {
    let tmp = tempfile::tempdir().unwrap();
    let gold = tmp.path().join("gold");
    write_brat(&gold, "a", "Ana, mujer.", "T1\tNOMBRE_SUJETO_ASISTENCIA 0 3\tAna\nT2\tSEXO_SUJETO_ASISTENCIA 5 10\tmujer\n");
    let out = tmp.path().join("o.jsonl");
    let args = ["deid", "--spans-from-input", "--input", gold.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let o = synthdeid(&[&args[..], &["--key", ""]].concat());
    assert!(!o.status.success() && stderr(&o).contains("--key (or SYNTHDEID_KEY) is empty"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_synthdeid")).args(args).env("SYNTHDEID_KEY", "").output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains("is empty"), "{}", stderr(&o));
    let key_file = tmp.path().join("key");
    std::fs::write(&key_file, "\n").unwrap();
    let o = synthdeid(&[&args[..], &["--key-file", key_file.to_str().unwrap()]].concat());
    assert!(!o.status.success() && stderr(&o).contains("the file is empty"), "{}", stderr(&o));
    assert!(!out.exists());
    // The help no longer promises what the keep kinds break: the kept sex marker is there in the output.
    let help = stdout(&synthdeid(&["deid", "--help"]));
    assert!(!help.contains("never equals an original"), "{help}");
    assert!(help.contains("sex markers") && help.contains("kinship words"), "{help}");
    let o = synthdeid(&[&args[..], &["--key", "a-long-secret"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&out).unwrap().contains("mujer"), "kept by design, as the help says");
}

/// Issue 25, case 7: `evaluate` refused predictions that the official MEDDOCAN script scores: an .ann whose
/// surface text does not match the text at its offsets (systems normalise whitespace) and zero-length
/// spans. They are now scored by their offsets, as the official script does, with a warning naming file
/// and line (and no text).
#[test]
fn issue25_case7_evaluate_scores_predictions_by_offsets_as_the_official_script_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (gold, pred) = (tmp.path().join("gold"), tmp.path().join("pred"));
    let text = "Ana  García vive en Madrid.";
    write_brat(&gold, "a", text, "T1\tNOMBRE_SUJETO_ASISTENCIA 0 11\tAna  García\nT2\tTERRITORIO 20 26\tMadrid\n");
    // The system wrote its .ann with normalised whitespace, and one zero-length span.
    write_brat(&pred, "a", text, "T1\tNOMBRE_SUJETO_ASISTENCIA 0 11\tAna García\nT2\tTERRITORIO 20 26\tMadrid\nT3\tFECHAS 12 12\t\n");
    let o = synthdeid(&["evaluate", "--gold", gold.to_str().unwrap(), "--pred", pred.to_str().unwrap(), "--json"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let strict = &v["entity_strict"]["micro"];
    assert_eq!((strict["tp"].as_u64(), strict["fp"].as_u64(), strict["fn"].as_u64()), (Some(2), Some(1), Some(0)), "{v}");
    assert!(err.contains("a.ann:1: T1: the .ann text") && err.contains("scored by its offsets"), "{err}");
    assert!(err.contains("a.ann:3: T3: span FECHAS 12..12 is empty"), "{err}");
    assert!(!err.contains("García") && !err.contains("Madrid"), "{err}");
    // Gold stays strict: the same file as gold is refused.
    let o = synthdeid(&["evaluate", "--gold", pred.to_str().unwrap(), "--pred", gold.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("a.ann:1:"), "{}", stderr(&o));
}

/// A run's files are owner-only: stages hold gold text and models, and the synthetic corpus may
/// hold memorised PHI until it is audited.
#[cfg(unix)]
#[test]
fn run_outputs_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    pipeline::builtin::write_demo(&data, 30, 3).unwrap();
    let cfg = tmp.path().join("c.toml");
    let d = data.join("data");
    std::fs::write(
        &cfg,
        format!(
            "[run]\nname = \"t\"\nseed = 1\n[data]\ntrain = {:?}\ndev = {:?}\ntest = {:?}\nprompt_ratio = 0.2\n[models]\nannotator = \"perceptron\"\nsynthetic_ner = \"perceptron\"\n[perceptron]\nepochs = 2\n[generator]\ngenerator = \"ngram\"\n[generation]\nsamples_per_prompt = 2\nmax_new_tokens = 60\n",
            d.join("train.jsonl"),
            d.join("dev.jsonl"),
            d.join("test.jsonl")
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = synthdeid(&["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out.join("synthetic.jsonl")), 0o600);
    assert_eq!(mode(&out.join("stages")), 0o700);
    let generate = std::fs::read_dir(out.join("stages")).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().unwrap().to_string_lossy().starts_with("generate-")).unwrap();
    for f in std::fs::read_dir(generate.join("shards")).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
}

/// Issue 29: `ner predict` and `deid --model` end with one line of documents, documents/s and
/// per-document latency, and no document text in it (nor anywhere on stderr).
#[test]
fn predict_and_deid_print_a_speed_line_without_document_text() {
    let tmp = tempfile::tempdir().unwrap();
    let (docs, _, test, model) = demo_perceptron(tmp.path(), 3);
    let (m, t) = (model.to_str().unwrap(), test.to_str().unwrap());
    let predict = tmp.path().join("pred.jsonl");
    let deid = tmp.path().join("deid.jsonl");
    let runs = [
        (synthdeid(&["ner", "predict", "--model", m, "--input", t, "--out", predict.to_str().unwrap(), "--jobs", "2"]), "prediction, 2 documents at a time"),
        (synthdeid(&["deid", "--model", m, "--input", t, "--out", deid.to_str().unwrap(), "--jobs", "1"]), "prediction + rewrite"),
    ];
    // Words of the documents (their PHI among them) that stderr must not hold; the paths it names are left out.
    // (Numbers only as part of a span: a rate on stderr could be any number.)
    let words: std::collections::BTreeSet<String> = docs[30..]
        .iter()
        .flat_map(|d| d.text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().any(char::is_alphabetic)).map(str::to_string).collect::<Vec<_>>())
        .chain(docs[30..].iter().flat_map(|d| d.spans.iter().map(|s| d.text.chars().skip(s.start).take(s.end - s.start).collect::<String>())))
        .filter(|w| w.chars().count() >= 5)
        .collect();
    assert!(words.len() > 20, "the check has words to look for");
    for (o, what) in &runs {
        assert!(o.status.success(), "{}", stderr(o));
        let err = stderr(o).replace(tmp.path().to_str().unwrap(), "");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("speed: ")).collect();
        assert_eq!(lines.len(), 1, "one speed line: {err}");
        let line = lines[0];
        assert!(line.starts_with("speed: 10 documents in ") && line.contains(" documents/s)"), "{line}");
        assert!(line.contains(&format!("per document ({what}): p50 ")) && line.contains(" ms, p95 ") && line.contains(" ms, max "), "{line}");
        for w in &words {
            assert!(!err.contains(w.as_str()), "stderr holds document text ({} chars)", w.chars().count());
        }
    }
    // Predicting one document at a time gives the spans of one call for all (`ner eval`'s path).
    let pred = corpus::read_corpus(&predict, None, &corpus::ReadOptions::default()).unwrap();
    let tagger = ner::load_tagger(&model, None).unwrap();
    let all = ner::Tagger::predict(tagger.as_ref(), &docs[30..]).unwrap();
    assert_eq!(pred.iter().map(|d| &d.spans).collect::<Vec<_>>(), all.iter().map(|d| &d.spans).collect::<Vec<_>>());
}
