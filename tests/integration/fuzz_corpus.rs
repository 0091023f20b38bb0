//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the same entry points the fuzz
//! targets use, so every input a fuzzer ever kept stays a regression test.

#[test]
fn fuzz_corpus_replays_without_panics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (name, target) in edge::fuzzing::TARGETS {
        let dir = root.join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            target(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "the corpus in {} is empty", root.display());
}
