use super::run;

/// The checked-in man page is generated: regenerate with `cronwarden man > man/cronwarden.1`.
#[test]
fn man_page_matches_the_command_line() {
    let (code, out, _) = run(&["man"]);
    assert_eq!(code, 0);
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/cronwarden.1"))
        .expect("man/cronwarden.1 exists");
    assert!(
        out == checked_in,
        "man/cronwarden.1 is out of date: run `cargo run -- man > man/cronwarden.1`"
    );
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("cronwarden"), "{shell}");
        assert!(out.contains("next"), "{shell}");
    }
}
