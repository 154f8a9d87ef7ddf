//! The pipeline on the built-in corpus with tiny models and the n-gram generator: config errors,
//! cache hits, reruns of what a changed setting touches, and resume after a kill during generation.

use pipeline::{run, RunConfig, RunOptions};
use std::path::Path;

const CONFIG: &str = r#"
[run]
name = "test"
seed = 5

[data]
train = "data/train.jsonl"
dev = "data/dev.jsonl"
test = "data/test.jsonl"
prompt_ratio = 0.2

[annotator]
encoder.preset = "tiny"
guide.folds = 0
decoding.boundaries = false
augment.copies = 0
ensemble.members = 1
optimizer = { epochs = 4, batch_size = 4, lr = 0.003 }

[generator]
generator = "ngram"

[generation]
samples_per_prompt = 2
max_new_tokens = 80

[synthetic_ner]
encoder.preset = "tiny"
guide.folds = 0
decoding.boundaries = false
augment.copies = 0
ensemble.members = 1
optimizer = { epochs = 1, batch_size = 8 }
"#;

/// Writes the built-in corpus (30 documents) and a config into `dir`.
fn setup(dir: &Path, config: &str) -> RunConfig {
    pipeline::builtin::write_demo(dir, 30, 3).unwrap();
    std::fs::write(dir.join("test.toml"), config).unwrap();
    RunConfig::load(&dir.join("test.toml")).unwrap()
}

fn load_err(dir: &Path, config: &str) -> String {
    std::fs::write(dir.join("bad.toml"), config).unwrap();
    format!("{:#}", RunConfig::load(&dir.join("bad.toml")).unwrap_err())
}

/// Every run config shipped in `configs/` loads (its data: `../shared`, present in CI), and the
/// Gemma configs' NER stages are the annotator of record (`configs/ner-meddocan.toml`).
#[test]
fn shipped_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_some_and(|e| e == "toml") && text.contains("[run]") {
            RunConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 10, "{n} run configs");
    let recipe: ner::TrainConfig = toml::from_str(&std::fs::read_to_string(dir.join("ner-meddocan.toml")).unwrap()).unwrap();
    let main = RunConfig::load(&dir.join("meddocan-gemma.toml")).unwrap();
    for name in ["meddocan-gemma.toml", "meddocan-gemma-hardened.toml", "meddocan-gemma-ablation-folds.toml", "meddocan-gemma-qv.toml"] {
        let cfg = RunConfig::load(&dir.join(name)).unwrap();
        assert_eq!(cfg.generator.init.as_deref(), Some(Path::new("gemma-3-270m")), "{name}: a registry name stays a name");
        // The pipeline sets the seed per cell.
        assert_eq!(ner::TrainConfig { seed: recipe.seed, ..cfg.annotator.clone() }, recipe, "{name}: [annotator] is not the recipe of record");
        // The synthetic NER: the recipe on the synthetic corpus filled with surrogate copies towards 2,000
        // documents, 2 encoder and 10 guide epochs for the passes 8 and 20 give 500 documents without copies (the
        // q/v recipe's results were made without).
        let want = if name == "meddocan-gemma-qv.toml" {
            recipe.clone()
        } else {
            let mut guide = recipe.guide.clone();
            guide.perceptron.epochs = 10;
            assert_eq!([500, 1000, 2000].map(|n| cfg.synthetic_ner.augment.copies_for(n)), [3, 1, 0], "{name}");
            ner::TrainConfig {
                augment: ner::config::AugmentSection { target_documents: Some(2000), ..recipe.augment.clone() },
                optimizer: ner::config::OptimizerSection { epochs: 2, ..recipe.optimizer.clone() },
                guide,
                ..recipe.clone()
            }
        };
        assert_eq!(ner::TrainConfig { seed: recipe.seed, ..cfg.synthetic_ner.clone() }, want, "{name}: [synthetic_ner]");
    }
    // The current recipe: adapters on every linear layer, bf16 decoding; the first one (q and v, f32) stays loadable
    // for the results made with it.
    let qv = RunConfig::load(&dir.join("meddocan-gemma-qv.toml")).unwrap();
    assert_eq!((main.generator.lora.target_modules.len(), main.generation.precision), (7, lm::Precision::Bf16));
    assert_eq!((qv.generator.lora.target_modules.len(), qv.generation.precision), (0, lm::Precision::F32));
    assert_eq!(
        RunConfig { generator: main.generator.clone(), generation: main.generation.clone(), synthetic_ner: main.synthetic_ner.clone(), run: main.run.clone(), ..qv.clone() },
        main
    );
    // The ablations extend the main config: its cell is one of theirs, with the same generator.
    let hardened = RunConfig::load(&dir.join("meddocan-gemma-hardened.toml")).unwrap();
    assert_eq!(hardened.ablation.hardening, [false, true]);
    assert_eq!(RunConfig { hardening: main.hardening.clone(), run: main.run.clone(), ablation: main.ablation.clone(), ..hardened.clone() }, main);
    let cells = pipeline::cells(&hardened);
    assert_eq!(cells.iter().map(|c| c.hardened).collect::<Vec<_>>(), [Some(false), Some(true)]);
    let generators = RunConfig::load(&dir.join("meddocan-gemma-ablation-generators.toml")).unwrap();
    assert_eq!(generators.ablation.generators["gemma-lora"], main.generator, "the main generator, so its stages are shared");
    assert_eq!(generators.ablation.generators.len(), 5);
    // One cell of the grid by name (`run --cell`); an unknown name lists the cells there are.
    let all = pipeline::cells(&generators);
    let one = pipeline::select_cells(all.clone(), &["gen95-ann95-spp20-ngram4-seed13".into()]).unwrap();
    assert_eq!((one.len(), one[0].generator.as_deref()), (1, Some("ngram4")));
    assert_eq!(pipeline::select_cells(all.clone(), &[]).unwrap(), all);
    let e = pipeline::select_cells(all, &["ngram4".into()]).unwrap_err().to_string();
    assert!(e.contains("--cell ngram4: no such cell") && e.contains("gen95-ann95-spp20-ngram4-seed13"), "{e}");
    let cells = pipeline::cells(&RunConfig::load(&dir.join("meddocan-gemma-ablation-volume.toml")).unwrap());
    assert_eq!(cells.iter().map(|c| c.samples_per_prompt).collect::<Vec<_>>(), [20, 40, 80]);
    // The main config drawing from its generator's training tokens: nothing else differs.
    let vocabulary = RunConfig::load(&dir.join("meddocan-gemma-vocabulary.toml")).unwrap();
    assert_eq!(vocabulary.generation.vocabulary, Some(lm::Vocabulary::Corpus));
    assert_eq!(RunConfig { run: main.run.clone(), generation: main.generation.clone(), ..vocabulary.clone() }, main);
    // The seed spread: the main config redrawn from the generation on, its first seed the main cell's.
    let seeds = RunConfig::load(&dir.join("meddocan-gemma-ablation-seeds.toml")).unwrap();
    assert_eq!(RunConfig { run: main.run.clone(), ablation: main.ablation.clone(), ..seeds.clone() }, main);
    assert_eq!((seeds.ablation.seeds[0], seeds.ablation.reseed_from), (main.run.seed, pipeline::config::Reseed::Generate));
}

/// Each committed result directory holds the config it was made with (`config.resolved.toml`); the command at the
/// top of its report must still resolve to that config, so that it reproduces. Directories made with an older config
/// format say so on that line ("as of commit …") and are left out.
#[test]
fn committed_results_reproduce_with_the_command_in_their_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Data paths are written as the run resolved them (relative to where it ran): compare from `shared/` on.
    let normalise = |mut c: RunConfig| {
        fn tail(p: &Path) -> std::path::PathBuf {
            let s = p.to_string_lossy().replace('\\', "/");
            std::path::PathBuf::from(s.find("shared/").map_or(s.clone(), |i| s[i..].to_string()))
        }
        c.data.train = tail(&c.data.train);
        c.data.dev = c.data.dev.as_deref().map(tail);
        c.data.test = c.data.test.as_deref().map(tail);
        // Settings of a model kind the run does not train are not part of what it made.
        let perceptron = pipeline::NerKind::Perceptron;
        if c.models.annotator == perceptron {
            c.annotator = Default::default();
        }
        if c.models.synthetic_ner == perceptron {
            c.synthetic_ner = Default::default();
        }
        if c.models.annotator != perceptron && c.models.synthetic_ner != perceptron {
            c.perceptron = Default::default();
        }
        c
    };
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("results")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(report) = std::fs::read_to_string(dir.join("report.md")) else { continue };
        let Some(line) = report.lines().find(|l| l.starts_with("Reproduce: `synthdeid run ")) else { continue };
        if line.contains("as of commit") {
            continue;
        }
        let config = line.trim_start_matches("Reproduce: `synthdeid run ").split_whitespace().next().unwrap();
        let current = RunConfig::load(&root.join(config)).unwrap_or_else(|e| panic!("{}: {config}: {e:#}", dir.display()));
        let mut made: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("config.resolved.toml")).unwrap()).unwrap();
        // A perceptron stage's transformer section may be in an older format: not part of what the run made.
        for stage in ["annotator", "synthetic_ner"] {
            if made.get("models").and_then(|m| m.get(stage)).and_then(|k| k.as_str()) == Some("perceptron") {
                made.remove(stage);
            }
        }
        let made: RunConfig = made
            .try_into()
            .unwrap_or_else(|e| panic!("{}: config.resolved.toml no longer parses ({e}); mark its Reproduce line \"as of commit …\"", dir.display()));
        let (current, made) = (normalise(current), normalise(made));
        if current != made {
            // The settings that differ, as `section.key = value` lines of each side.
            let flat = |c: &RunConfig| {
                let mut lines = std::collections::BTreeSet::new();
                let mut section = String::new();
                for l in toml::to_string(c).unwrap().lines() {
                    if l.starts_with('[') {
                        section = l.to_string();
                    } else if !l.trim().is_empty() {
                        lines.insert(format!("{section} {l}"));
                    }
                }
                lines
            };
            let (a, b) = (flat(&current), flat(&made));
            panic!("{}: `{config}` no longer resolves to the config the results were made with: now {:?}, then {:?}", dir.display(), a.difference(&b).collect::<Vec<_>>(), b.difference(&a).collect::<Vec<_>>());
        }
        checked.push(dir.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    assert!(["meddocan-gemma", "meddocan-gemma-canaries", "meddocan-gemma-hardened"].iter().all(|r| checked.iter().any(|d| d == r)) && checked.len() >= 6, "{checked:?}");
}

/// The main config's committed results are, stage key for stage key, the ablations' cell of the
/// same settings: `--cell … --results-from results/meddocan-gemma` reports it without rerunning
/// its 2.7 hours (data: `../shared`, present in CI).
#[test]
fn committed_main_cell_is_the_ablations_cell_of_its_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let taken = |config: &str, run_cell: &str| {
        let cfg = RunConfig::load(&root.join("configs").join(config)).unwrap();
        let opts = RunOptions { out: root.join("target/no-such-run"), cells: vec![run_cell.into()], results_from: vec![root.join("results/meddocan-gemma")], ..Default::default() };
        pipeline::earlier_cells(&cfg, &opts).unwrap().into_iter().map(|e| e.cell).collect::<Vec<_>>()
    };
    assert_eq!(taken("meddocan-gemma-ablation-generator-data.toml", "gen5-ann95-spp20-seed13"), ["gen95-ann95-spp20-seed13"]);
    assert_eq!(taken("meddocan-gemma-ablation-generators.toml", "gen95-ann95-spp20-ngram4-seed13"), ["gen95-ann95-spp20-gemma-lora-seed13"]);
    // The q/v recipe's results are another generator's: no cell of the current grid.
    let cfg = RunConfig::load(&root.join("configs/meddocan-gemma-ablation-generator-data.toml")).unwrap();
    let opts = RunOptions { out: root.join("target/no-such-run"), cells: vec!["gen5-ann95-spp20-seed13".into()], results_from: vec![root.join("results/meddocan-gemma-qv")], ..Default::default() };
    assert!(pipeline::earlier_cells(&cfg, &opts).unwrap().is_empty());
}

#[test]
fn bad_configs_stop_before_any_work_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path(), CONFIG);
    let e = load_err(tmp.path(), &CONFIG.replace("max_new_tokens = 80", "max_new_tokens = 80\ntop_q = 0.9"));
    assert!(e.contains("unknown field `top_q`"), "{e}");
    let e = load_err(tmp.path(), &CONFIG.replace("max_new_tokens = 80", "max_new_tokens = 80\nprecision = \"fp8\""));
    assert!(e.contains("fp8") && e.contains("bf16"), "{e}");
    std::fs::write(tmp.path().join("bf16.toml"), CONFIG.replace("max_new_tokens = 80", "max_new_tokens = 80\nprecision = \"bf16\"")).unwrap();
    assert_eq!(RunConfig::load(&tmp.path().join("bf16.toml")).unwrap().generation.precision, lm::Precision::Bf16);
    // A key written with its default value is known, not taken for a misspelt one.
    std::fs::write(tmp.path().join("defaults.toml"), CONFIG.replace("max_new_tokens = 80", "max_new_tokens = 80\nprecision = \"f32\"\nunfinished = \"keep\"")).unwrap();
    let cfg = RunConfig::load(&tmp.path().join("defaults.toml")).unwrap();
    assert_eq!((cfg.generation.precision, cfg.generation.unfinished), (lm::Precision::F32, pipeline::config::Unfinished::Keep));
    for (v, want) in [("full", lm::Vocabulary::Full), ("corpus", lm::Vocabulary::Corpus)] {
        std::fs::write(tmp.path().join("v.toml"), CONFIG.replace("max_new_tokens = 80", &format!("max_new_tokens = 80\nvocabulary = \"{v}\""))).unwrap();
        assert_eq!(RunConfig::load(&tmp.path().join("v.toml")).unwrap().generation.vocabulary, Some(want));
    }
    let e = load_err(tmp.path(), &CONFIG.replace("max_new_tokens = 80", "max_new_tokens = 80\nvocabulary = \"train\""));
    assert!(e.contains("train") && e.contains("corpus"), "{e}");
    // A server's vocabulary cannot be cut: refused before any work, naming the generator.
    let served = CONFIG.replace("max_new_tokens = 80", "max_new_tokens = 80\nvocabulary = \"corpus\"").replace("generator = \"ngram\"", "generator = \"ngram\"\nopenai = { base_url = \"http://127.0.0.1:9\" }");
    let e = load_err(tmp.path(), &served);
    assert!(e.contains("generation.vocabulary = \"corpus\" and generator.openai"), "{e}");
    let e = load_err(tmp.path(), &CONFIG.replace("data/train.jsonl", "data/nope.jsonl"));
    assert!(e.contains("data.train") && e.contains("no such file"), "{e}");
    let e = load_err(tmp.path(), &CONFIG.replace("prompt_ratio = 0.2", "prompt_ratio = 0.2\ngenerator_ratio = 0.95"));
    assert!(e.contains("data.generator_ratio = 0.95: impossible"), "{e}");
    let e = load_err(tmp.path(), &CONFIG.replace("[run]", "[ablation]\ngenerator_ratio = [0.0]\n[run]"));
    assert!(e.contains("ablation.generator_ratio = 0: impossible"), "{e}");
    let e = load_err(tmp.path(), &CONFIG.replace("[synthetic_ner]\n", "[synthetic_ner]\nepochz = 3\n"));
    assert!(e.contains("epochz"), "{e}");
    // Sections whose settings type cannot deny unknown fields itself (flattened fields) are checked too.
    let e = load_err(tmp.path(), &CONFIG.replace("generator = \"ngram\"", "generator = \"ngram\"\nlayerz = 3"));
    assert!(e.contains("unknown key `generator.layerz`"), "{e}");
    // Two ways of saying how many surrogate copies: refused, naming both.
    let e = load_err(tmp.path(), &CONFIG.replace("[synthetic_ner]\n", "[synthetic_ner]\naugment.target_documents = 100\n"));
    assert!(e.contains("synthetic_ner.augment: copies = 0 and target_documents = 100 both given"), "{e}");
    // A stage's own seed would be overridden by run.seed: refused, not ignored.
    let e = load_err(tmp.path(), &CONFIG.replace("[synthetic_ner]\n", "[synthetic_ner]\nseed = 14\n"));
    assert!(e.contains("`synthetic_ner.seed`") && e.contains("run.seed"), "{e}");
    let e = load_err(tmp.path(), &CONFIG.replace("generator = \"ngram\"", "generator = \"ngram\"\nseed = 2"));
    assert!(e.contains("`generator.seed`"), "{e}");
    // Nothing ran: no run directory was made.
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn cache_resume_and_reruns() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), CONFIG);
    let a = tmp.path().join("a");
    let opts = |out: &Path| RunOptions { out: out.to_path_buf(), ..Default::default() };

    // Uninterrupted run.
    let first = run(&cfg, &opts(&a)).unwrap();
    let cell = &first.cells[0];
    assert!(cell.timings.iter().all(|t| !t.cached));
    assert_eq!(cell.data.synthetic_documents, cell.data.prompt_documents * 2);
    for f in ["results.json", "report.md", "report.html", "config.resolved.toml", "synthetic.jsonl", "synthetic-brat", "plots/per_label_f1.svg"] {
        assert!(a.join(f).exists(), "{f} missing");
    }
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("results.json")).unwrap()).unwrap();
    for k in ["gold_ner", "synthetic_ner", "audit"] {
        assert!(results.get(k).is_some(), "results.json lacks {k}");
    }
    assert!(results["gold_ner"]["token"]["micro"]["f1"].as_f64().unwrap() > 0.3, "the annotator learned something");
    // Each label's spans per 1,000 words, imitated and written, in results.json and the report.
    let rates = &cell.data.label_rates;
    assert!(!rates.is_empty() && rates.values().any(|r| r.gold > 0.0 && r.synthetic > 0.0), "{rates:?}");
    let (label, r) = rates.iter().find(|(_, r)| r.gold > 0.0).unwrap();
    assert!(results["data"]["label_rates"][label]["gold"].as_f64().unwrap() == r.gold);
    let md = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(md.contains("| written / imitated |"), "report lacks the label rates");
    // The n-gram generator's tokens are words: the samples cut at max_new_tokens are recorded.
    let cut = cell.data.cut_at_max_new_tokens.expect("the n-gram generator records its cut samples");
    assert!(cut > 0 && cut < cell.data.synthetic_documents, "{cut} of {} cut: the test wants both kinds", cell.data.synthetic_documents);
    assert_eq!((cell.annotator_stopped_by_budget, cell.synthetic_ner_stopped_by_budget), (Some(false), Some(false)));
    let w = cell.data.words_per_document;
    assert!(w.gold > 10.0 && w.synthetic > 10.0 && md.contains(&format!("{:.0} words per synthetic document", w.synthetic)), "{w:?}");
    let first_results = std::fs::read_to_string(a.join("results.json")).unwrap();
    // Leaving out the unfinished samples: the rest go on, from the same generate stage.
    let mut drop = cfg.clone();
    drop.generation.unfinished = pipeline::config::Unfinished::Drop;
    let dropped = run(&drop, &opts(&a)).unwrap();
    assert_eq!(dropped.cells[0].data.dropped_unfinished, Some(cut));
    assert_eq!(dropped.cells[0].data.synthetic_documents, cell.data.synthetic_documents - cut);
    assert!(dropped.cells[0].timings.iter().find(|t| t.stage == "generate").unwrap().cached);
    // It needs a generate stage that recorded them; one from an earlier synthdeid did not.
    for stage in std::fs::read_dir(a.join("stages")).unwrap().map(|e| e.unwrap().path()) {
        if stage.file_name().unwrap().to_string_lossy().starts_with("generate-") {
            for f in std::fs::read_dir(stage.join("shards")).unwrap().map(|e| e.unwrap().path()) {
                if f.to_string_lossy().ends_with(".cut.json") {
                    std::fs::remove_file(f).unwrap();
                }
            }
        }
    }
    let e = format!("{:#}", run(&drop, &opts(&a)).unwrap_err());
    assert!(e.contains("generation.unfinished = \"drop\"") && e.contains("does not record") && e.contains("\"keep\""), "{e}");

    // Same config again: everything comes from the cache.
    let again = run(&cfg, &opts(&a)).unwrap();
    assert!(again.cells[0].timings.iter().all(|t| t.cached));

    // A changed synthetic-NER setting reruns only that stage and what follows it; a time budget
    // that stops the training is said in results.json and the report.
    let mut changed = cfg.clone();
    changed.synthetic_ner.optimizer.epochs = 2;
    changed.synthetic_ner.optimizer.max_minutes = Some(1e-6);
    let third = run(&changed, &opts(&a)).unwrap();
    assert_eq!(third.cells[0].synthetic_ner_stopped_by_budget, Some(true));
    assert!(std::fs::read_to_string(a.join("report.md")).unwrap().contains("Training stopped at `optimizer.max_minutes` before its last epoch, or had its learning-rate schedule shortened to fit it: 1 time(s) (synthetic NER of "));
    let cached: Vec<(String, bool)> = third.cells[0].timings.iter().map(|t| (t.stage.clone(), t.cached)).collect();
    assert_eq!(
        cached,
        [("annotator", true), ("generator", true), ("generate", true), ("annotate", true), ("synthetic_ner", false), ("evaluate", false), ("audit", true)]
            .map(|(s, c)| (s.to_string(), c))
    );

    // A run killed during generation resumes and ends with the same outputs.
    let b = tmp.path().join("b");
    let killed = run(&cfg, &RunOptions { stop_after_prompts: Some(1), ..opts(&b) });
    assert!(format!("{:#}", killed.unwrap_err()).contains("interrupted after 1 prompt"));
    run(&cfg, &opts(&b)).unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    assert_eq!(read(&a.join("synthetic.jsonl")), read(&b.join("synthetic.jsonl")));
    let ra: serde_json::Value = serde_json::from_str(&first_results).unwrap();
    let rb: serde_json::Value = serde_json::from_str(&read(&b.join("results.json"))).unwrap();
    for k in ["gold_ner", "synthetic_ner", "audit"] {
        assert_eq!(ra[k], rb[k], "{k} differs after resume");
    }

    // Shards without a worker binary (the library on its own) run one after another in this
    // process: the same stage keys and bytes, and provenance.json says 3 shards.
    let sharded = run(&cfg, &RunOptions { shards: Some(3), force: vec!["generate".into(), "annotate".into()], ..opts(&a) }).unwrap();
    let by_stage = |s: &str| sharded.cells[0].timings.iter().find(|t| t.stage == s).unwrap().clone();
    for s in ["generate", "annotate"] {
        assert_eq!((by_stage(s).cached, by_stage(s).shards), (false, Some(3)), "{s}");
        assert_eq!(by_stage(s).key, first.cells[0].timings.iter().find(|t| t.stage == s).unwrap().key, "{s}: the shard count changed the key");
    }
    // What reads a forced stage reruns too, under the same key.
    let syn = by_stage("synthetic_ner");
    assert!(!syn.cached && syn.key == first.cells[0].timings.iter().find(|t| t.stage == "synthetic_ner").unwrap().key, "{syn:?}");
    assert_eq!(read(&a.join("synthetic.jsonl")), read(&b.join("synthetic.jsonl")));

    // Hardening: a new stage after `annotate`; replaced spans never hold a training PHI string
    // (only kinds kept on purpose may).
    let mut hardened = cfg.clone();
    hardened.hardening.enabled = true;
    let h = run(&hardened, &opts(&a)).unwrap();
    let c = &h.cells[0];
    let stages: Vec<(String, bool)> = c.timings.iter().map(|t| (t.stage.clone(), t.cached)).collect();
    assert_eq!(stages[3], ("annotate".to_string(), true));
    assert_eq!(stages[4], ("harden".to_string(), false));
    let report = c.hardening.as_ref().unwrap();
    assert!(report.stats.spans > 0);
    for (label, n) in &report.replaced_spans_still_training_phi {
        // Kept kinds: sex, kinship words, and countries (`hardening.keep` default).
        if !["SEXO_SUJETO_ASISTENCIA", "FAMILIARES_SUJETO_ASISTENCIA", "PAIS"].contains(&label.as_str()) {
            assert_eq!(*n, 0, "{label}: a replaced span still holds a training PHI string");
        }
    }
    assert!(std::fs::read_to_string(a.join("report.md")).unwrap().contains("## Hardening"));

    // Keeping strings common to ≥ 2 training documents: they stay as written, and every span of
    // the output still lies on its text (kept spans move with the replacements before them).
    let mut common = hardened.clone();
    common.hardening.keep_common_min_documents = 2;
    let k = run(&common, &opts(&a)).unwrap();
    let kept_common = k.cells[0].hardening.as_ref().unwrap().kept_common;
    assert!(kept_common > 0);
    let out: Vec<corpus::Document> = corpus::read_corpus(&a.join("synthetic.jsonl"), None, &corpus::ReadOptions::default()).unwrap();
    let annotate_key = &k.cells[0].timings.iter().find(|t| t.stage == "annotate").unwrap().key;
    let annotated_dir = a.join("stages").join(format!("annotate-{}", &annotate_key[..12]));
    let before: Vec<corpus::Document> = corpus::read_corpus(&annotated_dir.join("synthetic.jsonl"), None, &corpus::ReadOptions::default()).unwrap();
    let mut verbatim = 0;
    for (o, b) in out.iter().zip(&before) {
        assert_eq!(o.spans.len(), b.spans.len(), "{}: every span is kept or replaced", o.id);
        for (so, sb) in o.spans.iter().zip(&b.spans) {
            assert_eq!(so.label, sb.label);
            assert!(so.end <= o.char_len());
            // A kept span sits, shifted, on the very text it had: a wrong shift would cut elsewhere.
            verbatim += (o.slice(so.start, so.end) == b.slice(sb.start, sb.end)) as usize;
        }
    }
    assert!(verbatim >= kept_common, "{verbatim} spans verbatim, {kept_common} kept");

    // Surrogates from the corpus's own strings: a new harden key (the lists' key is unchanged, so
    // cached hardened corpora stay valid), the widened lists counted, and still no replaced span
    // holding a training PHI string.
    let mut widened = common.clone();
    widened.hardening.surrogates = deid::SurrogateSource::Corpus;
    let w = run(&widened, &opts(&a)).unwrap();
    let key = |s: &pipeline::RunSummary| s.cells[0].timings.iter().find(|t| t.stage == "harden").unwrap().key.clone();
    assert_ne!(key(&w), key(&k));
    let report = w.cells[0].hardening.as_ref().unwrap();
    assert!(report.corpus_vocab.as_ref().is_some_and(|c| c.values().sum::<usize>() > 0), "{:?}", report.corpus_vocab);
    for (label, n) in &report.replaced_spans_still_training_phi {
        if !["SEXO_SUJETO_ASISTENCIA", "FAMILIARES_SUJETO_ASISTENCIA", "PAIS"].contains(&label.as_str()) {
            assert!(*n <= report_common(&k, label), "{label}: {n} replaced spans hold a training PHI string");
        }
    }
    assert!(std::fs::read_to_string(a.join("report.md")).unwrap().contains("hardening.surrogates = \"corpus\""));
}

/// Spans of `label` still a training PHI string in a run with common strings kept (those are kept
/// on purpose: the bound for a run that keeps the same ones).
fn report_common(s: &pipeline::RunSummary, label: &str) -> usize {
    s.cells[0].hardening.as_ref().unwrap().replaced_spans_still_training_phi.get(label).copied().unwrap_or(0)
}

/// A cell with more samples per prompt takes the samples a cell with fewer already drew (same
/// generator, prompts and settings), and draws only the rest: its corpus is the one it would
/// draw alone.
#[test]
fn more_samples_per_prompt_take_a_smaller_cells_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let two = setup(tmp.path(), CONFIG);
    let mut three = two.clone();
    three.generation.samples_per_prompt = 3;
    let opts = |out: &Path| RunOptions { out: out.to_path_buf(), ..Default::default() };
    let texts = |out: &Path| -> Vec<(String, String)> {
        corpus::read_corpus(&out.join("synthetic.jsonl"), None, &corpus::ReadOptions::default()).unwrap().into_iter().map(|d| (d.id, d.text)).collect()
    };
    let alone = tmp.path().join("alone");
    run(&three, &opts(&alone)).unwrap();
    let drawn_alone = texts(&alone);

    // Two samples per prompt first; then their text is marked, so that taking them shows.
    let a = tmp.path().join("a");
    run(&two, &opts(&a)).unwrap();
    let mut marked = 0;
    for stage in std::fs::read_dir(a.join("stages")).unwrap().map(|e| e.unwrap().path()) {
        if !stage.file_name().unwrap().to_string_lossy().starts_with("generate-") {
            continue;
        }
        for f in std::fs::read_dir(stage.join("shards")).unwrap().map(|e| e.unwrap().path()).filter(|f| !f.to_string_lossy().ends_with(".cut.json")) {
            let mut docs = corpus::read_corpus(&f, None, &corpus::ReadOptions::default()).unwrap();
            for d in &mut docs {
                d.text.push_str(" MARK");
                marked += 1;
            }
            corpus::write_corpus(&f, Some(corpus::Format::Jsonl), &docs).unwrap();
        }
    }
    assert_eq!(marked, drawn_alone.len() / 3 * 2);
    let summary = run(&three, &opts(&a)).unwrap();
    assert!(!summary.cells[0].timings.iter().find(|t| t.stage == "generate").unwrap().cached);
    let taken = texts(&a);
    assert_eq!(taken.len(), drawn_alone.len());
    for ((id, text), (id_alone, text_alone)) in taken.iter().zip(&drawn_alone) {
        assert_eq!(id, id_alone);
        if id.ends_with("__s002") {
            assert_eq!(text, text_alone, "{id}: the new sample is the one drawn alone");
        } else {
            assert_eq!(text.strip_suffix(" MARK"), Some(text_alone.as_str()), "{id}: taken from the 2-sample cell");
        }
    }
    // The batch size is not in the generate stage's key (a sample's text does not depend on its batch): another
    // batch size reuses every stage.
    let mut batched = three.clone();
    batched.generation.batch_size = three.generation.batch_size + 1;
    let summary = run(&batched, &opts(&a)).unwrap();
    for stage in ["generate", "annotate", "synthetic_ner"] {
        assert!(summary.cells[0].timings.iter().find(|t| t.stage == stage).unwrap().cached, "{stage} ran again for another batch size");
    }
    // --force generate draws every sample anew, none taken from the sibling.
    run(&three, &RunOptions { force: vec!["generate".into()], ..opts(&a) }).unwrap();
    assert_eq!(texts(&a), drawn_alone);
}

/// `[ablation.generators]`: one cell per named generator, each trained from its own section; the
/// NER stages they share come from the cache; the report compares them in a table and a plot.
#[test]
fn generators_are_compared_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let two = CONFIG.replace(
        "[generator]\ngenerator = \"ngram\"\n",
        "[ablation.generators.ngram4]\ngenerator = \"ngram\"\n\n[ablation.generators.ngram2]\ngenerator = \"ngram\"\nngram = { order = 2 }\n\n\
         [reference]\nsource = \"a paper\"\nsynthetic_token_f1 = { ngram2 = 0.123 }\n",
    );
    let cfg = setup(tmp.path(), &two);
    let out = tmp.path().join("g");
    let summary = run(&cfg, &RunOptions { out: out.clone(), command: Some("synthdeid run g.toml --out g".into()), ..Default::default() }).unwrap();
    let names: Vec<&str> = summary.cells.iter().map(|c| c.cell.name.as_str()).collect();
    assert_eq!(names, ["gen80-ann80-spp2-ngram2-seed5", "gen80-ann80-spp2-ngram4-seed5"]);
    assert!(summary.cells[1].timings.iter().find(|t| t.stage == "annotator").unwrap().cached);
    assert!(!summary.cells[1].timings.iter().find(|t| t.stage == "generator").unwrap().cached);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.lines().nth(2) == Some("Reproduce: `synthdeid run g.toml --out g`"), "{report}");
    assert!(report.contains("| generator |") && report.contains("| ngram2 |") && report.contains("plots/generators.svg"), "{report}");
    assert!(out.join("plots/generators.svg").exists());
    // Published numbers sit beside ours, in the row of their setting.
    let row = report.lines().find(|l| l.contains("| ngram2 |")).unwrap();
    assert!(report.contains("Reference columns: a paper.") && row.contains("| - | 0.123 |"), "{row}");
    assert!(report.lines().find(|l| l.contains("| ngram4 |")).unwrap().contains("| - | - |"));
    // Each row says how well its generator models the notes and how many samples it cut.
    assert!(report.contains("| runs | generator dev perplexity | samples cut at max_new_tokens |"), "{report}");
    let ppl = format!("| {:.2} | {} |", summary.cells[0].generator_dev_perplexity.unwrap(), summary.cells[0].data.cut_at_max_new_tokens.unwrap());
    assert!(row.contains(&ppl), "{row} lacks {ppl}");
    assert!(report.contains("Perplexity is per token of each generator's own vocabulary"), "{report}");
    // The headline tables are the first generator's by name, or `ablation.main_generator`'s.
    let main = |m: Option<&str>| pipeline::report::main_cell(&summary, m).unwrap().cell.name.clone();
    assert_eq!((main(None), main(Some("ngram4"))), ("gen80-ann80-spp2-ngram2-seed5".to_string(), "gen80-ann80-spp2-ngram4-seed5".to_string()));
    let e = load_err(tmp.path(), &two.replace("[ablation.generators.ngram4]", "[ablation]\nmain_generator = \"gemma\"\n\n[ablation.generators.ngram4]"));
    assert!(e.contains("ablation.main_generator = \"gemma\"") && e.contains("ngram2, ngram4"), "{e}");
    // A grid grows a cell at a time: a `--cell` run also reports the cells whose results are
    // recorded with the same stage keys (in its directory, or with --results-from), and its
    // Reproduce line says how to get the same report.
    let grown = tmp.path().join("c");
    let by_cell = |cfg: &RunConfig, out: &Path, name: &str, from: &[&Path]| {
        let opts = RunOptions {
            out: out.to_path_buf(),
            cache: Some(tmp.path().join("g/stages")),
            cells: vec![name.into()],
            results_from: from.iter().map(|p| p.to_path_buf()).collect(),
            command: Some(format!("synthdeid run g.toml --out {}", out.file_name().unwrap().to_string_lossy())),
            ..Default::default()
        };
        run(cfg, &opts)
    };
    let reproduce = |out: &Path| std::fs::read_to_string(out.join("report.md")).unwrap().lines().nth(2).unwrap().to_string();
    let first = by_cell(&cfg, &grown, "gen80-ann80-spp2-ngram4-seed5", &[]).unwrap();
    assert!(first.cells.len() == 1 && first.earlier_cells.is_empty() && grown.join("results.json").exists());
    assert_eq!(reproduce(&grown), "Reproduce: `synthdeid run g.toml --out c --cell gen80-ann80-spp2-ngram4-seed5`");
    let both = by_cell(&cfg, &grown, "gen80-ann80-spp2-ngram2-seed5", &[]).unwrap();
    let names: Vec<&str> = both.cells.iter().map(|c| c.cell.name.as_str()).collect();
    assert_eq!(names, ["gen80-ann80-spp2-ngram2-seed5", "gen80-ann80-spp2-ngram4-seed5"]);
    assert_eq!(both.earlier_cells, [pipeline::EarlierCell { cell: "gen80-ann80-spp2-ngram4-seed5".into(), from: grown.display().to_string() }]);
    assert_eq!(both.cells[1].synthetic_ner.token.micro.f1, summary.cells[1].synthetic_ner.token.micro.f1);
    assert_eq!(reproduce(&grown), "Reproduce: `synthdeid run g.toml --out c`", "both cells ran in c: the whole grid");
    let report = std::fs::read_to_string(grown.join("report.md")).unwrap();
    assert!(report.contains("taken, as recorded then, from results whose stages have the same keys") && report.contains("| ngram4 |"), "{report}");
    assert!(!grown.join("results.json").exists(), "a one-cell results.json no longer describes the directory");
    // From another directory, whatever the config is called; the Reproduce line names it.
    let mut renamed = cfg.clone();
    renamed.run.name = "another".into();
    let other = tmp.path().join("d");
    let taken = by_cell(&renamed, &other, "gen80-ann80-spp2-ngram2-seed5", &[&out]).unwrap();
    assert_eq!(taken.earlier_cells, [pipeline::EarlierCell { cell: "gen80-ann80-spp2-ngram4-seed5".into(), from: out.display().to_string() }]);
    assert_eq!(reproduce(&other), format!("Reproduce: `synthdeid run g.toml --out d --cell gen80-ann80-spp2-ngram2-seed5 --results-from {}`", out.display()));
    // A cell whose stages differ (another n-gram order) is not the one recorded.
    std::fs::write(tmp.path().join("test.toml"), two.replace("[ablation.generators.ngram4]\ngenerator = \"ngram\"\n", "[ablation.generators.ngram4]\ngenerator = \"ngram\"\nngram = { order = 3 }\n")).unwrap();
    let order3 = RunConfig::load(&tmp.path().join("test.toml")).unwrap();
    let alone = by_cell(&order3, &tmp.path().join("e"), "gen80-ann80-spp2-ngram2-seed5", &[&out]).unwrap();
    assert!(alone.cells.len() == 1 && alone.earlier_cells.is_empty());
    let e = run(&cfg, &RunOptions { out: tmp.path().join("f"), results_from: vec![out.clone()], ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("--results-from") && e.contains("only with --cell"), "{e}");
    let e = format!("{:#}", by_cell(&cfg, &tmp.path().join("f"), "gen80-ann80-spp2-ngram2-seed5", &[&tmp.path().join("nothing")]).unwrap_err());
    assert!(e.contains("no summary.json or results.json"), "{e}");
    // With generators to compare there is no [generator] section.
    let both = two.replace("[generation]", "[generator]\ngenerator = \"ngram\"\n\n[generation]");
    let e = load_err(tmp.path(), &both);
    assert!(e.contains("[generator] and [ablation.generators]"), "{e}");
}

/// `ablation.seeds` with `ablation.reseed_from`: the stages before it run once, on run.seed, and
/// every seed's cell shares them; the seed equal to run.seed is the plain run's cell.
#[test]
fn seeds_redraw_from_the_stage_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let with = |seeds: &str, from: &str| CONFIG.replace("[run]", &format!("[ablation]\nseeds = {seeds}\nreseed_from = \"{from}\"\n\n[run]"));
    let cfg = setup(tmp.path(), &with("[5, 6]", "generate"));
    let out = tmp.path().join("g");
    let summary = run(&cfg, &RunOptions { out: out.clone(), cache: Some(cache.clone()), ..Default::default() }).unwrap();
    let names: Vec<&str> = summary.cells.iter().map(|c| c.cell.name.as_str()).collect();
    assert_eq!(names, ["gen80-ann80-spp2-seed5", "gen80-ann80-spp2-seed6"]);
    let cached = |c: &pipeline::run::CellResult| c.timings.iter().take(5).map(|t| (t.stage.clone(), t.cached)).collect::<Vec<_>>();
    let stages = |c: &[bool]| ["annotator", "generator", "generate", "annotate", "synthetic_ner"].iter().map(|s| s.to_string()).zip(c.iter().copied()).collect::<Vec<_>>();
    assert_eq!(cached(&summary.cells[1]), stages(&[true, true, false, false, false]));
    assert_eq!(summary.cells[0].gold_ner.token.micro.f1, summary.cells[1].gold_ner.token.micro.f1, "one annotator for both seeds");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Seeds [5, 6] redraw the generation") && report.contains("| gap (token) |"), "{report}");

    // Only the synthetic NER: seed 5's cell is the one above, seed 7 trains one model more.
    std::fs::write(tmp.path().join("test.toml"), with("[5, 7]", "synthetic_ner")).unwrap();
    let cfg = RunConfig::load(&tmp.path().join("test.toml")).unwrap();
    let summary = run(&cfg, &RunOptions { out: tmp.path().join("n"), cache: Some(cache), ..Default::default() }).unwrap();
    assert_eq!(cached(&summary.cells[0]), stages(&[true; 5]));
    assert_eq!(cached(&summary.cells[1]), stages(&[true, true, true, true, false]));

    let e = load_err(tmp.path(), &CONFIG.replace("[run]", "[ablation]\nreseed_from = \"generate\"\n\n[run]"));
    assert!(e.contains("ablation.reseed_from") && e.contains("ablation.seeds"), "{e}");
    let e = load_err(tmp.path(), &with("[5, 6]", "annotate"));
    assert!(e.contains("annotate") && e.contains("synthetic_ner"), "{e}");
}

/// The built-in demo's config loads, with the fast models it promises.
#[test]
fn demo_config_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = RunConfig::load(&pipeline::builtin::write_demo(tmp.path(), 30, 3).unwrap()).unwrap();
    assert_eq!((cfg.models.annotator, cfg.models.synthetic_ner), (pipeline::NerKind::Perceptron, pipeline::NerKind::Perceptron));
    assert_eq!(cfg.generation.samples_per_prompt, 30);
}

/// `[canaries]`: planted records join the generator's training documents (recorded owner-only),
/// and the audit reports their exposure per number of repetitions and a membership attack.
#[test]
fn canaries_are_planted_recorded_and_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), &CONFIG.replace("[generation]", "[canaries]\ncount = 2\nrepetitions = [1, 8]\n\n[generation]"));
    let out = tmp.path().join("c");
    let summary = run(&cfg, &RunOptions { out: out.clone(), ..Default::default() }).unwrap();
    let c = summary.cells[0].canaries.as_ref().unwrap();
    assert_eq!(c.canaries.len(), 4);
    let levels: Vec<(usize, usize)> = c.by_repetitions.iter().map(|r| (r.repetitions, r.canaries)).collect();
    assert_eq!(levels, [(0, 2), (1, 1), (8, 1)]);
    assert_eq!(c.membership.members, 2);
    // Under the generator (an n-gram model, which stores what it saw), a planted code is the
    // likeliest of its candidates, and a reference code ranks among unseen ones, near the middle.
    let bits: Vec<(usize, f64)> = c.canaries.iter().map(|k| (k.repetitions, k.exposure_bits.expect("scored under the generator"))).collect();
    let max = pipeline::canary::exposure_bits(1.0);
    for (rep, b) in &bits {
        if *rep > 0 {
            assert!((b - max).abs() < 1e-9, "{bits:?}");
        } else {
            assert!(*b < 2.0, "{bits:?}");
        }
    }
    let record = std::fs::read_dir(out.join("stages")).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().unwrap().to_string_lossy().starts_with("generator-")).unwrap().join("canaries.jsonl");
    let canaries: Vec<pipeline::canary::Canary> = std::fs::read_to_string(&record).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(canaries.len(), 4);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&record).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Made-up identifiers: no name, ID, street, e-mail or number of a canary is a PHI string of the
    // training documents. (Ages and dates come from small spaces a corpus covers; sex and kinship
    // words are kept as `deid` keeps them; hospitals: `deid` can compose one equal to a training
    // hospital, noted on issue 25.)
    let train: Vec<corpus::Document> = corpus::read_corpus(&tmp.path().join("data/train.jsonl"), None, &corpus::ReadOptions::default()).unwrap();
    let real: std::collections::HashSet<String> = train.iter().flat_map(|d| d.spans.iter().map(|s| d.slice(s.start, s.end).to_string()).collect::<Vec<_>>()).collect();
    for k in &canaries {
        assert!(k.doc.text.ends_with(&format!("Ref. {}", k.secret)));
        let identifying = |l: &str| ["NOMBRE", "ID_", "CALLE", "CORREO", "NUMERO"].iter().any(|p| l.starts_with(p));
        for s in k.doc.spans.iter().filter(|s| identifying(&s.label)) {
            let t = k.doc.slice(s.start, s.end);
            assert!(t.chars().count() <= 1 || !real.contains(t), "{}: a real PHI string {t:?}", s.label);
        }
    }
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("## Canaries"));
    // The same seed plants the same canaries.
    assert_eq!(pipeline::canary::make(&train, &cfg.canaries, 5).unwrap(), pipeline::canary::make(&train, &cfg.canaries, 5).unwrap());
}

/// `ablation.hardening = [false, true]`: the plain and the hardened corpus from the same generated
/// text, side by side (the stages before hardening run once).
#[test]
fn plain_and_hardened_corpora_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), &CONFIG.replace("[run]", "[ablation]\nhardening = [false, true]\n\n[run]"));
    let summary = run(&cfg, &RunOptions { out: tmp.path().join("h"), ..Default::default() }).unwrap();
    let names: Vec<&str> = summary.cells.iter().map(|c| c.cell.name.as_str()).collect();
    assert_eq!(names, ["gen80-ann80-spp2-plain-seed5", "gen80-ann80-spp2-hardened-seed5"]);
    assert!(summary.cells[0].hardening.is_none() && summary.cells[1].hardening.is_some());
    let cached: Vec<(String, bool)> = summary.cells[1].timings.iter().map(|t| (t.stage.clone(), t.cached)).collect();
    assert!(cached.iter().take(4).all(|(_, c)| *c) && cached[4] == ("harden".to_string(), false), "{cached:?}");
    let report = std::fs::read_to_string(tmp.path().join("h/report.md")).unwrap();
    assert!(report.contains("| plain |") && report.contains("| hardened |") && report.contains("membership AUC"), "{report}");
    // The headline tables are the plain corpus's (the paper's setting); the audit puts the hardened one beside it.
    assert_eq!(pipeline::report::main_cell(&summary, None).unwrap().cell.name, "gen80-ann80-spp2-plain-seed5");
    assert_eq!(pipeline::report::hardening_twin(&summary, &summary.cells[0]).unwrap().cell.name, "gen80-ann80-spp2-hardened-seed5");
    assert!(report.contains("| measure | synthetic corpus | hardened synthetic corpus | real held-out documents (baseline) |"), "{report}");
    let recall = format!("| 5-gram recall vs the generator's training text | {:.4} | {:.4} |", summary.cells[0].audit.ngram_recall.recall, summary.cells[1].audit.ngram_recall.recall);
    assert!(report.contains(&recall), "{recall}");
    assert!(report.contains("## Hardening"), "the hardened twin's hardening table");
}
