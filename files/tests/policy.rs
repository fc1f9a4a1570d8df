//! The output policy: every way of naming an input again is refused, regular files are
//! replaced atomically and keep their permissions, device nodes are written in place,
//! and no temporary file is left behind.

use std::fs;
use std::path::{Path, PathBuf};

use fqc_files::{write, FileError, Guard};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fqc-files-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn refused(r: Result<(), FileError>, words: &[&str]) {
    let e = r.expect_err("the output must be refused");
    assert!(matches!(e, FileError::Refused { .. }), "{e}");
    let msg = e.to_string();
    for w in words {
        assert!(msg.contains(w), "`{w}` missing from: {msg}");
    }
}

/// Files in `dir` whose name marks them as fqc's temporary files.
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("fqc-tmp"))
        .collect()
}

#[test]
fn other_spellings_of_an_input_are_refused() {
    let dir = scratch("spellings");
    let x = dir.join("x.npy");
    fs::write(&x, b"input").unwrap();
    fs::create_dir_all(dir.join("d")).unwrap();
    let mut g = Guard::new();
    g.input("--input", &x);
    refused(
        g.output("--output", &x),
        &["--output", "same file", "--input"],
    );
    refused(
        g.output("--output", &dir.join("./x.npy")),
        &["same file as --input"],
    );
    refused(
        g.output("--output", &dir.join("d/../x.npy")),
        &["same file"],
    );
    let cwd_relative = std::env::current_dir().unwrap();
    let rel = pathdiff(&x, &cwd_relative);
    refused(g.output("--output", &rel), &["same file"]);
    assert_eq!(fs::read(&x).unwrap(), b"input");
}

/// `to` as a path relative to `base` (both absolute), through `..` steps.
fn pathdiff(to: &Path, base: &Path) -> PathBuf {
    let up = base.components().count() - 1;
    let mut p = PathBuf::new();
    for _ in 0..up {
        p.push("..");
    }
    p.join(to.strip_prefix("/").unwrap())
}

#[cfg(unix)]
#[test]
fn links_to_an_input_are_refused() {
    let dir = scratch("links");
    let x = dir.join("model.fqc");
    fs::write(&x, b"model").unwrap();
    std::os::unix::fs::symlink(&x, dir.join("soft.fqc")).unwrap();
    fs::hard_link(&x, dir.join("hard.fqc")).unwrap();
    let mut g = Guard::new();
    g.input("the model", &x);
    refused(
        g.output("-o", &dir.join("soft.fqc")),
        &["same file as the model"],
    );
    refused(
        g.output("-o", &dir.join("hard.fqc")),
        &["same file as the model"],
    );
    // And the other way round: the input named through the link.
    let mut g = Guard::new();
    g.input("the model", &dir.join("hard.fqc"));
    refused(g.output("-o", &x), &["same file"]);
}

#[test]
fn two_outputs_may_not_be_one_file() {
    let dir = scratch("outputs");
    let mut g = Guard::new();
    g.output("-o", &dir.join("m.fqc")).unwrap();
    refused(
        g.output("--summary-json", &dir.join("./m.fqc")),
        &["--summary-json", "same file as -o"],
    );
    g.output("--summary-json", &dir.join("s.json")).unwrap();
}

#[test]
fn existing_files_in_an_input_folder_are_refused() {
    let dir = scratch("folder");
    let data = dir.join("data");
    fs::create_dir_all(data.join("cat")).unwrap();
    fs::write(data.join("cat/1.png"), b"png").unwrap();
    let mut g = Guard::new();
    g.input("--train", &data);
    refused(g.output("-o", &data.join("cat/1.png")), &["inside --train"]);
    g.output("-o", &data.join("model.fqc")).unwrap();
    refused(g.output("-o2", &data), &["is a folder"]);
}

#[cfg(unix)]
#[test]
fn read_only_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("readonly");
    let p = dir.join("keep.npy");
    fs::write(&p, b"keep").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o444)).unwrap();
    refused(Guard::new().output("--output", &p), &["read-only"]);
}

#[test]
fn missing_folder_is_refused_before_any_work() {
    let dir = scratch("nofolder");
    refused(
        Guard::new().output("-o", &dir.join("no/such/m.fqc")),
        &["not in an existing folder"],
    );
}

#[cfg(unix)]
#[test]
fn replacing_keeps_permissions_and_leaves_no_temporaries() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("replace");
    let p = dir.join("out.npy");
    fs::write(&p, b"old").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    write(&p, b"new contents").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"new contents");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert!(temporaries(&dir).is_empty());
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_is_kept_and_its_target_written() {
    let dir = scratch("symlink");
    let target = dir.join("real.npy");
    fs::write(&target, b"old").unwrap();
    let link = dir.join("link.npy");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    write(&link, b"new").unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&target).unwrap(), b"new");
    std::os::unix::fs::symlink(dir.join("nothing"), dir.join("dangling")).unwrap();
    refused(
        Guard::new().output("-o", &dir.join("dangling")),
        &["symbolic link to nothing"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn device_nodes_are_written_in_place() {
    write(Path::new("/dev/null"), b"discarded").unwrap();
    let meta = fs::metadata("/dev/null").unwrap();
    assert!(!meta.is_file(), "/dev/null must stay a device");
    let e = write(Path::new("/dev/full"), b"no room").expect_err("/dev/full is full");
    assert!(e.to_string().contains("/dev/full"), "{e}");
    assert!(!fs::metadata("/dev/full").unwrap().is_file());
    assert!(temporaries(Path::new("/dev")).is_empty());
}

#[cfg(unix)]
#[test]
fn a_fifo_is_written_not_replaced() {
    let dir = scratch("fifo");
    let fifo = dir.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success());
    if made.ok() != Some(true) {
        assert!(std::env::var_os("CI").is_none(), "mkfifo is missing on CI");
        return;
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(&fifo).unwrap())
    };
    write(&fifo, b"through the pipe").unwrap();
    assert_eq!(reader.join().unwrap(), b"through the pipe");
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}
