//! The embedded list of types moto's CloudFormation creates is the
//! installed moto's (regenerated here, so it cannot go stale).

mod common;

#[test]
fn moto_types_match_installed_moto() {
    let script = common::repo_root().join("crates/local-resources/gen/moto_cfn_types.py");
    let out = std::process::Command::new(common::venv_tool("python"))
        .arg(&script)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let embedded = include_str!("../data/moto-cfn-types.txt");
    assert_eq!(
        generated, embedded,
        "moto changed: run .tools/venv/bin/python crates/local-resources/gen/moto_cfn_types.py > crates/local-resources/data/moto-cfn-types.txt and update MOTO_VERSION"
    );
}
