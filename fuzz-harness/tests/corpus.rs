//! Replays every committed input in `fuzz/corpus/<target>/` through its target on the ordinary
//! toolchain (no libFuzzer, no sanitizer), so CI covers the corpus and every input that once
//! crashed a target (`regression-*`) without nightly; part of `cargo test --workspace`:
//!
//! ```sh
//! cargo test -p aula-fuzz
//! ```

use std::fs;
use std::path::{Path, PathBuf};

/// `fuzz/`: the libFuzzer binaries' manifest and the committed corpus.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn every_corpus_input_runs_without_a_panic() {
    let root = fuzz_dir().join("corpus");
    let mut replayed = 0;
    for (name, run) in aula_fuzz::targets::ALL {
        let dir = root.join(name);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.expect("a corpus entry").path()).collect();
        paths.sort();
        for path in paths {
            let input = fs::read(&path).expect("a corpus file");
            eprintln!("{}", path.display());
            run(&input);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no corpus under {}", root.display());
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    let root = fuzz_dir();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    for (name, _) in aula_fuzz::targets::ALL {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "{name} has no [[bin]] in fuzz/Cargo.toml"
        );
        let corpus = root.join("corpus").join(name);
        let count = fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        assert!(count > 0, "{} is empty", corpus.display());
    }
}
