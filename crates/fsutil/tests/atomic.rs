use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn writes_replaces_and_creates_the_directory_leaving_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a/b/out.json");
    fsutil::atomic_write(&p, b"one").unwrap();
    fsutil::atomic_write(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    assert_eq!(names(p.parent().unwrap()), ["out.json"]);
}

#[test]
fn atomic_write_with_hands_a_temporary_path_then_renames_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("w.bin");
    fsutil::atomic_write_with(&p, |t| {
        assert_ne!(t, p.as_path());
        assert_eq!(t.parent(), p.parent());
        std::fs::write(t, b"via path")
    })
    .unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"via path");
    // A failing writer: its error comes back naming the temporary path, the target is untouched
    // and no temporary file stays.
    let err = fsutil::atomic_write_with(&p, |t| {
        std::fs::write(t, b"half")?;
        Err(std::io::Error::other("serializer failed"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("serializer failed"), "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), b"via path");
    assert_eq!(names(tmp.path()), ["w.bin"]);
}

/// Issue 25, case 2: files holding PHI in clear are created 0600 whatever the umask (and replace
/// an existing, wider file); case 6: a failed write leaves no temporary copy of the text behind.
#[cfg(unix)]
#[test]
fn issue25_case2_private_files_are_0600_and_failed_writes_leave_no_temporary_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("mapping.jsonl");
    std::fs::write(&p, "old").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    fsutil::atomic_write_private(&p, b"Ana -> Eva\n").unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "Ana -> Eva\n");
    // The rename onto a non-empty directory fails: the error names the path, no .tmp stays.
    let blocked = tmp.path().join("blocked");
    std::fs::create_dir_all(blocked.join("inside")).unwrap();
    let err = fsutil::atomic_write(&blocked, b"SECRET text").unwrap_err();
    assert!(err.path.ends_with("blocked"), "{err}");
    assert!(names(tmp.path()).iter().all(|n| !n.ends_with(".tmp")), "{:?}", names(tmp.path()));
}
