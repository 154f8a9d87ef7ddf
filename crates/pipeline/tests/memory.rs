//! A finished stage hands the memory it freed back to the system: glibc keeps freed blocks in its
//! arenas, and a pipeline process kept gigabytes of the LoRA stage through every later stage.
//! Its own test binary: the resident size of a process is what it measures.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_finished_stage_returns_what_it_freed() {
    use pipeline::cache::{run_stage, StageKey};
    let rss_kb = || -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let key = StageKey::new("annotator", &serde_json::json!({"test": "memory"}), &[]);
    let mut kept = Vec::new();
    let before = rss_kb();
    run_stage(dir.path(), &key, false, |_| {
        // 1 GiB in 64 KiB blocks (below glibc's mmap threshold: from an arena), every 16th kept
        // past the stage, so no whole heap or arena top comes free on its own.
        let mut blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![(i % 255 + 1) as u8; 65_536]).collect();
        kept = blocks.iter_mut().step_by(16).map(std::mem::take).collect();
        drop(std::hint::black_box(blocks));
        Ok(())
    })
    .unwrap();
    let after = rss_kb();
    assert_eq!(kept.len(), 1024);
    // 64 MiB kept; without the trim about 1 GiB stays resident.
    assert!(after < before + 256 * 1024, "resident {before} kB before the stage, {after} kB after it");
}
