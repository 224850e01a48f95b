//! scripts/build.sh, the build buildspec.yml runs in CodeBuild, run here up
//! to (not including) the S3 upload: `--arch arm64 --out DIR` must leave an
//! aarch64 Linux `bootstrap` for every function of every packaged template.
//!
//! The release arm64 build takes minutes, so every test here shares one
//! build (the first test to need it runs it; the others wait).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cfn_template::Template;
use serde_json::json;

const KINDS: [(&str, &str); 3] = [
    ("app", "app-sam.yaml"),
    ("test", "test-sam.yaml"),
    ("pipeline", "pipeline.yaml"),
];

/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;

fn build_script() -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(e2e::repo_root().join("scripts/build.sh"))
        .env("PATH", e2e::tools_path());
    cmd
}

/// The output directory of the one shared `--arch arm64` build.
fn arm64_build() -> &'static Path {
    static OUT: OnceLock<tempfile::TempDir> = OnceLock::new();
    OUT.get_or_init(|| {
        // Kept under target/ (git-ignored) rather than /tmp: it holds release
        // binaries and lives as long as the test process. A static is never
        // dropped, so earlier runs' directories are removed here once they
        // are old enough that no run can still be using them.
        let parent = e2e::repo_root().join("target");
        std::fs::create_dir_all(&parent).unwrap();
        remove_stale_outputs(&parent);
        let out = tempfile::Builder::new()
            .prefix("build-script-test-")
            .tempdir_in(parent)
            .unwrap();
        e2e::tool("cargo-lambda"); // panics with the setup command if missing
        let (ok, log) = e2e::run(
            build_script()
                .args(["--arch", "arm64", "--out"])
                .arg(out.path()),
        );
        assert!(ok, "scripts/build.sh --arch arm64 failed:\n{log}");
        out
    })
    .path()
}

fn remove_stale_outputs(parent: &Path) {
    let stale = std::time::Duration::from_secs(3 * 3600);
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > stale);
        if old
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with("build-script-test-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn packaged(kind: &str) -> Template {
    let path = arm64_build().join(format!("packaged-{kind}.yaml"));
    Template::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn source(file: &str) -> Template {
    Template::from_path(e2e::repo_root().join(file)).unwrap()
}

fn functions(t: &Template) -> Vec<String> {
    t.resources_of_type("AWS::Serverless::Function")
        .map(|r| r.logical_id().to_string())
        .collect()
}

/// Every (template kind, function logical id, bootstrap path) of the build.
fn bootstraps() -> Vec<(String, String, PathBuf)> {
    let mut all = Vec::new();
    for (kind, _) in KINDS {
        let t = packaged(kind);
        for f in t.resources_of_type("AWS::Serverless::Function") {
            let code_uri = f
                .property("CodeUri")
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| panic!("{kind}: {} has a CodeUri string", f.logical_id()));
            all.push((
                kind.to_string(),
                f.logical_id().to_string(),
                arm64_build().join(code_uri).join("bootstrap"),
            ));
        }
    }
    all
}

fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is an ELF file", path.display());
    assert_eq!(bytes[4], 2, "{} is a 64-bit ELF", path.display());
    assert_eq!(bytes[5], 1, "{} is little-endian", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn writes_the_three_packaged_templates() {
    for (kind, _) in KINDS {
        assert!(
            arm64_build()
                .join(format!("packaged-{kind}.yaml"))
                .is_file(),
            "packaged-{kind}.yaml"
        );
    }
}

#[test]
fn every_function_of_the_sources_is_in_its_packaged_template() {
    for (kind, file) in KINDS {
        let expected = functions(&source(file));
        assert!(!expected.is_empty(), "{file} defines functions");
        assert_eq!(functions(&packaged(kind)), expected, "{kind}");
    }
}

#[test]
fn every_function_has_an_aarch64_linux_bootstrap() {
    let all = bootstraps();
    assert!(all.len() >= 3, "app, test and pipeline functions: {all:?}");
    for (kind, id, bootstrap) in all {
        assert_eq!(
            elf_machine(&bootstrap),
            EM_AARCH64,
            "{kind}/{id}: {} is built for aarch64",
            bootstrap.display()
        );
    }
}

#[test]
fn code_uris_are_directories_inside_the_output_directory() {
    for (kind, id, bootstrap) in bootstraps() {
        let dir = bootstrap.parent().unwrap();
        assert!(
            dir.starts_with(arm64_build()) && dir != arm64_build(),
            "{kind}/{id}: CodeUri {} is relative to the output directory",
            dir.display()
        );
    }
}

#[test]
fn packaged_functions_declare_arm64() {
    for (kind, _) in KINDS {
        for f in packaged(kind).resources_of_type("AWS::Serverless::Function") {
            assert_eq!(
                f.property("Architectures"),
                Some(&json!(["arm64"])),
                "{kind}/{}",
                f.logical_id()
            );
        }
    }
}

#[test]
fn packaged_templates_keep_everything_but_code_and_architecture() {
    for (kind, file) in KINDS {
        let src = source(file);
        let out = packaged(kind);
        assert_eq!(
            out.parameters().map(|p| p.name()).collect::<Vec<_>>(),
            src.parameters().map(|p| p.name()).collect::<Vec<_>>(),
            "{kind}"
        );
        assert_eq!(
            out.outputs().map(|o| o.name()).collect::<Vec<_>>(),
            src.outputs().map(|o| o.name()).collect::<Vec<_>>(),
            "{kind}"
        );
        for r in src.resources() {
            let built = out.resource(r.logical_id()).unwrap();
            for (key, value) in r.properties() {
                if key != "CodeUri" && key != "Architectures" {
                    assert_eq!(
                        built.property(key),
                        Some(value),
                        "{kind}/{}.{key}",
                        r.logical_id()
                    );
                }
            }
        }
    }
}

#[test]
fn rejects_an_unknown_architecture_before_building() {
    let out = tempfile::tempdir().unwrap();
    let (ok, log) = e2e::run(
        build_script()
            .args(["--arch", "sparc", "--out"])
            .arg(out.path()),
    );
    assert!(!ok);
    assert!(log.contains("usage:"), "{log}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn rejects_an_s3_prefix_without_a_bucket() {
    let out = tempfile::tempdir().unwrap();
    let (ok, log) = e2e::run(
        build_script()
            .args(["--arch", "arm64", "--s3-prefix", "p", "--out"])
            .arg(out.path()),
    );
    assert!(!ok);
    assert!(log.contains("--s3-prefix needs --s3-bucket"), "{log}");
}

#[test]
fn rejects_a_kms_key_without_a_bucket() {
    let out = tempfile::tempdir().unwrap();
    let (ok, log) = e2e::run(
        build_script()
            .args(["--arch", "arm64", "--kms-key-id", KMS_KEY, "--out"])
            .arg(out.path()),
    );
    assert!(!ok);
    assert!(log.contains("--kms-key-id needs --s3-bucket"), "{log}");
}

#[test]
fn rejects_an_app_directory_outside_the_repository_before_building() {
    for dir in ["../elsewhere", "/etc", "examples/../.."] {
        let out = tempfile::tempdir().unwrap();
        let (ok, log) = e2e::run(
            build_script()
                .env("APP_DIR", dir)
                .args(["--arch", "arm64", "--out"])
                .arg(out.path()),
        );
        assert!(!ok, "{dir}");
        assert!(
            log.contains(&format!(
                "APP_DIR '{dir}' is not a directory inside the repository"
            )),
            "{log}"
        );
        assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    }
}

#[test]
fn rejects_an_app_directory_that_does_not_exist() {
    let out = tempfile::tempdir().unwrap();
    let (ok, log) = e2e::run(
        build_script()
            .env("APP_DIR", "examples/no-such-app")
            .args(["--arch", "arm64", "--out"])
            .arg(out.path()),
    );
    assert!(!ok);
    assert!(
        log.contains("APP_DIR 'examples/no-such-app' does not exist"),
        "{log}"
    );
}

/// The KMS key the packaging test encrypts with (moto does not check that
/// the key exists; S3 records the id as given).
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// What buildspec.yml runs in CodeBuild, against moto's S3: every packaged
/// function's CodeUri points at an object that `sam package` uploaded,
/// encrypted with SSE-KMS under the `--kms-key-id` key.
#[test]
fn packaging_to_s3_uploads_every_function_and_points_code_uris_at_it() {
    arm64_build(); // compile once, shared with the other tests
    let rt = tokio::runtime::Runtime::new().unwrap();
    let moto = rt.block_on(e2e::MotoServer::start());
    let http = reqwest::Client::new();
    let created = rt
        .block_on(http.put(format!("{}/artifacts", moto.url)).send())
        .unwrap();
    assert!(created.status().is_success(), "bucket created: {created:?}");

    let out = tempfile::tempdir().unwrap();
    let (ok, log) = e2e::run(
        build_script()
            .args([
                "--arch",
                "arm64",
                "--s3-bucket",
                "artifacts",
                "--s3-prefix",
                "builds/42",
                "--kms-key-id",
                KMS_KEY,
                "--out",
            ])
            .arg(out.path())
            .envs(moto_env(&moto.url)),
    );
    assert!(ok, "scripts/build.sh --s3-bucket failed:\n{log}");

    let listing = rt
        .block_on(async {
            http.get(format!("{}/artifacts?list-type=2", moto.url))
                .send()
                .await?
                .text()
                .await
        })
        .unwrap();
    let mut keys = Vec::new();
    for (kind, _) in KINDS {
        let path = out.path().join(format!("packaged-{kind}.yaml"));
        let t = Template::from_path(&path).unwrap();
        for f in t.resources_of_type("AWS::Serverless::Function") {
            let uri = f.property("CodeUri").and_then(|v| v.as_str()).unwrap();
            let key = uri.strip_prefix("s3://artifacts/").unwrap_or_else(|| {
                panic!("{kind}/{}: CodeUri {uri} is in the bucket", f.logical_id())
            });
            assert!(
                key.starts_with("builds/42/"),
                "{kind}/{}: {key} under the prefix",
                f.logical_id()
            );
            assert!(
                listing.contains(&format!("<Key>{key}</Key>")),
                "{kind}/{}: {key} was uploaded; bucket holds:\n{listing}",
                f.logical_id()
            );
            keys.push(key.to_string());
        }
    }
    assert!(keys.len() >= 3, "app, test and pipeline functions checked");

    // HeadObject through boto3 (the SAM CLI's own S3 client, in the tool
    // venv): moto answers it with the object's ServerSideEncryption and
    // SSEKMSKeyId, as S3 does.
    let (ok, heads) = e2e::run(
        e2e::tool_command("python")
            .args(["-c", HEAD_OBJECTS, "artifacts"])
            .args(&keys)
            .envs(moto_env(&moto.url)),
    );
    assert!(ok, "head_object failed:\n{heads}");
    let heads: serde_json::Value = serde_json::from_str(&heads).unwrap();
    for key in &keys {
        assert_eq!(
            heads[key],
            json!({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY}),
            "{key} is encrypted with SSE-KMS under the --kms-key-id key"
        );
    }
}

/// Prints `{key: {"ServerSideEncryption", "SSEKMSKeyId"}}` for the keys of
/// bucket `argv[1]` given after it.
const HEAD_OBJECTS: &str = r#"
import json, sys, boto3
s3 = boto3.client("s3")
heads = {}
for key in sys.argv[2:]:
    h = s3.head_object(Bucket=sys.argv[1], Key=key)
    heads[key] = {k: h.get(k) for k in ("ServerSideEncryption", "SSEKMSKeyId")}
print(json.dumps(heads))
"#;

/// The environment that points the SAM CLI and boto3 at moto.
fn moto_env(url: &str) -> [(&'static str, &str); 6] {
    [
        ("AWS_ENDPOINT_URL", url),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_REGION", "us-east-1"),
        ("SAM_CLI_TELEMETRY", "0"),
    ]
}
