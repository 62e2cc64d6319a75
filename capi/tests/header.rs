//! The checked-in `include/rtm.h` is what cbindgen makes of the crate now.

/// Catches a header left stale by a change to the exported calls, types or
/// constants: C code would compile against declarations the library no
/// longer has. `RTM_BLESS=1` rewrites the header instead.
#[test]
fn header_is_fresh() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml"))
        .expect("capi/cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = format!("{dir}/include/rtm.h");
    if std::env::var_os("RTM_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writes include/rtm.h");
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "capi/include/rtm.h is stale: regenerate it with `RTM_BLESS=1 cargo test -p rtm-capi --test header` and commit it"
    );
}

/// The README's C excerpt, as trimmed lines.
fn readme_c_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.trim()) {
            (None, "```c") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), l) if !l.is_empty() => block.push(l.to_string()),
            _ => {}
        }
    }
    blocks
}

/// Catches documentation whose C does not compile or does not do what it
/// says (the crate docs once showed a route of type 0 "returning
/// NO_ERROR"; RtmAddRoute refuses it): the README's C excerpt must be
/// lines of `examples/quickstart.c`, in order, which CI compiles with
/// `-Werror` and runs (the crate docs include that file whole).
#[test]
fn the_readmes_c_is_the_quickstart_that_ci_runs() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{dir}/../README.md")).unwrap();
    let quickstart = std::fs::read_to_string(format!("{dir}/examples/quickstart.c")).unwrap();
    let lines: Vec<&str> = quickstart
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let blocks = readme_c_blocks(&readme);
    assert!(!blocks.is_empty(), "the README shows C");
    for block in blocks {
        assert!(
            lines
                .windows(block.len())
                .any(|w| w.iter().zip(&block).all(|(a, b)| a == b)),
            "a README C block is not an excerpt of capi/examples/quickstart.c:\n{}",
            block.join("\n")
        );
    }
}
