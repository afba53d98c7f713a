//! Building this test makes cargo build the `yiren` binary, which the end-to-end tests in
//! `yiren-testkit` start as a real process.

#[test]
fn the_binary_reports_its_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yiren"))
        .arg("--version")
        .output()
        .expect("run yiren");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("yiren "));
}
