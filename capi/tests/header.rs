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
