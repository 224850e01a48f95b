//! The Source action: a commit of a local git repository, checked out clean.
//!
//! The commit's tree comes from `git archive` (so never an uncommitted file;
//! `--working-tree` rehearses a [`snapshot_working_tree`] commit instead)
//! and is synchronised into a checkout directory that is reused between
//! runs: files whose content did not change are left alone, keeping their
//! timestamps, so cargo's incremental build of the checkout stays warm;
//! changed files are rewritten and files not in the commit are removed.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot run git: {0}; is git installed?")]
    Git(std::io::Error),
    #[error("cannot write the checkout {0}: {1}")]
    Io(String, std::io::Error),
    #[error("git {args} failed in {dir}: {stderr}")]
    Failed {
        args: String,
        dir: String,
        stderr: String,
    },
    #[error(
        "{rev} is not a commit of {repo}; pass --rev with a commit, tag or branch that exists there"
    )]
    UnknownRevision { repo: String, rev: String },
    #[error(
        "cannot snapshot the working tree of {repo}: {stderr}; commit the changes and rehearse without --working-tree"
    )]
    Snapshot { repo: String, stderr: String },
    #[error("{file} is not in commit {commit} of {repo}")]
    MissingFile {
        repo: String,
        commit: String,
        file: String,
    },
}

fn git(dir: &Path, args: &[&str]) -> Result<String, SourceError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(SourceError::Git)?;
    if !output.status.success() {
        return Err(SourceError::Failed {
            args: args.join(" "),
            dir: dir.display().to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The full commit id `rev` names in `repo`.
pub fn resolve_commit(repo: &Path, rev: &str) -> Result<String, SourceError> {
    git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| SourceError::UnknownRevision {
        repo: repo.display().to_string(),
        rev: rev.to_string(),
    })
}

/// A file's content at a commit.
pub fn show_file(repo: &Path, commit: &str, file: &str) -> Result<String, SourceError> {
    git(repo, &["show", &format!("{commit}:{file}")]).map_err(|_| SourceError::MissingFile {
        repo: repo.display().to_string(),
        commit: commit.to_string(),
        file: file.to_string(),
    })
}

/// The pathspecs of the whole working tree but `excluded` (a directory
/// relative to `repo`, such as a work directory inside it).
fn pathspecs(excluded: Option<&Path>) -> Vec<String> {
    let mut specs = vec![":/".to_string()];
    if let Some(dir) = excluded {
        specs.push(format!(":(exclude){}", dir.display()));
    }
    specs
}

/// How many files of `repo`'s working tree differ from HEAD: tracked files
/// modified or staged, and untracked files that are not ignored; files
/// under `excluded` (relative to `repo`) do not count.
pub fn changed_files(repo: &Path, excluded: Option<&Path>) -> Result<usize, SourceError> {
    let mut args = vec![
        "status".to_string(),
        "--porcelain=v1".to_string(),
        "-z".to_string(),
        "--untracked-files=all".to_string(),
        "--".to_string(),
    ];
    args.extend(pathspecs(excluded));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = git(repo, &args)?;
    // -z: one NUL-terminated entry per file; a rename adds its old path as
    // a second entry, which is not another changed file.
    let mut count = 0;
    let mut entries = status.split('\0').filter(|e| !e.is_empty());
    while let Some(entry) = entries.next() {
        count += 1;
        if entry.starts_with('R') || entry.starts_with('C') {
            entries.next();
        }
    }
    Ok(count)
}

/// A commit holding `repo`'s working tree as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot commit (HEAD itself when nothing is changed).
    pub commit: String,
    /// The commit the working tree is checked out from.
    pub head: String,
    /// Files that differ from HEAD (see [`changed_files`]).
    pub changed_files: usize,
}

/// Commits `repo`'s working tree as it is (tracked files with their
/// uncommitted changes, and untracked files that are not ignored) on top of
/// HEAD, like `git stash create`: through a temporary index, so no branch,
/// index, stash or file of the user's changes. The commit is reachable from
/// no ref; git collects it eventually. When nothing differs from HEAD, the
/// snapshot is HEAD. Files under `excluded` (relative to `repo`) are left
/// out.
pub fn snapshot_working_tree(
    repo: &Path,
    excluded: Option<&Path>,
) -> Result<Snapshot, SourceError> {
    let head = resolve_commit(repo, "HEAD")?;
    let changed_files = changed_files(repo, excluded)?;
    if changed_files == 0 {
        return Ok(Snapshot {
            commit: head.clone(),
            head,
            changed_files,
        });
    }
    let index = std::env::temp_dir().join(format!("rehearse-index-{}", crate::ids::uuid()));
    let result = snapshot_with_index(repo, &head, &index, excluded);
    let _ = std::fs::remove_file(&index);
    let commit = result.map_err(|e| SourceError::Snapshot {
        repo: repo.display().to_string(),
        stderr: e.to_string(),
    })?;
    // Changes that cancel out (a staged edit undone in the file) leave
    // HEAD's tree: nothing to snapshot.
    let Some(commit) = commit else {
        return Ok(Snapshot {
            commit: head.clone(),
            head,
            changed_files: 0,
        });
    };
    Ok(Snapshot {
        commit,
        head,
        changed_files,
    })
}

fn snapshot_with_index(
    repo: &Path,
    head: &str,
    index: &Path,
    excluded: Option<&Path>,
) -> Result<Option<String>, SourceError> {
    let run = |args: &[&str]| {
        let output = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .env("GIT_INDEX_FILE", index)
            // The snapshot's author is the rehearsal, whatever git's
            // configuration holds (or lacks).
            .env("GIT_AUTHOR_NAME", "cargo rehearse")
            .env("GIT_AUTHOR_EMAIL", "rehearse@localhost")
            .env("GIT_COMMITTER_NAME", "cargo rehearse")
            .env("GIT_COMMITTER_EMAIL", "rehearse@localhost")
            .output()
            .map_err(SourceError::Git)?;
        if !output.status.success() {
            return Err(SourceError::Failed {
                args: args.join(" "),
                dir: repo.display().to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    run(&["read-tree", head])?;
    let mut add = vec!["add".to_string(), "--all".to_string(), "--".to_string()];
    add.extend(pathspecs(excluded));
    run(&add.iter().map(String::as_str).collect::<Vec<_>>())?;
    let tree = run(&["write-tree"])?;
    if tree == run(&["rev-parse", &format!("{head}^{{tree}}")])? {
        return Ok(None);
    }
    run(&[
        "commit-tree",
        &tree,
        "-p",
        head,
        "-m",
        "cargo rehearse: snapshot of the working tree",
    ])
    .map(Some)
}

/// The first line of a commit's message, for the report.
pub fn subject(repo: &Path, commit: &str) -> String {
    git(repo, &["log", "-1", "--format=%s", commit]).unwrap_or_default()
}

/// Checks `commit` of `repo` out into `dir`, clean. `tools` (the
/// repository's git-ignored `.tools/`) is linked into the checkout so the
/// build script finds the pinned tools.
pub fn checkout(
    repo: &Path,
    commit: &str,
    dir: &Path,
    tools: Option<&Path>,
) -> Result<PathBuf, SourceError> {
    let io = |e: std::io::Error| SourceError::Io(dir.display().to_string(), e);
    let staging = dir.with_extension("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io)?;
    }
    std::fs::create_dir_all(&staging).map_err(io)?;
    std::fs::create_dir_all(dir).map_err(io)?;
    let archive = Command::new("sh")
        .arg("-c")
        .arg("git -C \"$1\" archive --format=tar \"$2\" | tar -x -C \"$3\"")
        .args(["sh"])
        .arg(repo)
        .arg(commit)
        .arg(&staging)
        .output()
        .map_err(SourceError::Git)?;
    if !archive.status.success() {
        return Err(SourceError::Failed {
            args: format!("archive {commit}"),
            dir: repo.display().to_string(),
            stderr: String::from_utf8_lossy(&archive.stderr).trim().to_string(),
        });
    }
    sync(&staging, dir).map_err(io)?;
    std::fs::remove_dir_all(&staging).map_err(io)?;
    if let Some(tools) = tools {
        let link = dir.join(".tools");
        if std::fs::symlink_metadata(&link).is_err() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(tools, &link).map_err(io)?;
        }
    }
    Ok(dir.to_path_buf())
}

/// Makes `dest` hold exactly the files of `src` (except a top-level `.tools`
/// link), rewriting only files whose content or mode differs.
fn sync(src: &Path, dest: &Path) -> std::io::Result<()> {
    sync_dir(src, dest, true)
}

fn sync_dir(src: &Path, dest: &Path, top: bool) -> std::io::Result<()> {
    let mut wanted = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        wanted.insert(name.clone());
        let from = entry.path();
        let to = dest.join(&name);
        let kind = entry.file_type()?;
        let existing = std::fs::symlink_metadata(&to).ok();
        if kind.is_dir() {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                std::fs::remove_file(&to)?;
            }
            std::fs::create_dir_all(&to)?;
            sync_dir(&from, &to, false)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&from)?;
            if std::fs::read_link(&to).ok().as_ref() != Some(&target) {
                remove_any(&to)?;
                #[cfg(unix)]
                std::os::unix::fs::symlink(&target, &to)?;
            }
        } else {
            let same = existing.as_ref().is_some_and(|m| m.is_file())
                && std::fs::metadata(&from)?.permissions() == std::fs::metadata(&to)?.permissions()
                && std::fs::read(&from)? == std::fs::read(&to)?;
            if !same {
                if existing.is_some() {
                    remove_any(&to)?;
                }
                std::fs::copy(&from, &to)?;
            }
        }
    }
    for entry in std::fs::read_dir(dest)? {
        let entry = entry?;
        let name = entry.file_name();
        if wanted.contains(&name) || (top && name == ".tools") {
            continue;
        }
        remove_any(&entry.path())?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with_commit() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .output()
                .unwrap();
            assert!(ok.status.success(), "{ok:?}");
        };
        run(&["init", "-q", "-b", "main"]);
        run(&["config", "user.email", "t@example.com"]);
        run(&["config", "user.name", "t"]);
        std::fs::write(dir.path().join("a.txt"), "committed").unwrap();
        run(&["add", "a.txt"]);
        run(&["commit", "-qm", "one"]);
        let commit = resolve_commit(dir.path(), "main").unwrap();
        (dir, commit)
    }

    #[test]
    fn the_checkout_holds_committed_files_only() {
        let (repo, commit) = repo_with_commit();
        std::fs::write(repo.path().join("a.txt"), "uncommitted edit").unwrap();
        std::fs::write(repo.path().join("new.txt"), "untracked").unwrap();
        let out = repo.path().join(".rehearsal/checkout");
        checkout(repo.path(), &commit, &out, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("a.txt")).unwrap(),
            "committed"
        );
        assert!(!out.join("new.txt").exists());
    }

    #[test]
    fn a_second_checkout_removes_stray_files() {
        let (repo, commit) = repo_with_commit();
        let out = repo.path().join(".rehearsal/checkout");
        checkout(repo.path(), &commit, &out, None).unwrap();
        std::fs::write(out.join("stray.txt"), "x").unwrap();
        checkout(repo.path(), &commit, &out, None).unwrap();
        assert!(!out.join("stray.txt").exists());
    }

    #[test]
    fn unchanged_files_keep_their_timestamps() {
        let (repo, commit) = repo_with_commit();
        let out = repo.path().join(".rehearsal/checkout");
        checkout(repo.path(), &commit, &out, None).unwrap();
        let before = std::fs::metadata(out.join("a.txt"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        checkout(repo.path(), &commit, &out, None).unwrap();
        let after = std::fs::metadata(out.join("a.txt"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn an_unknown_revision_is_named_in_the_error() {
        let (repo, _) = repo_with_commit();
        let err = resolve_commit(repo.path(), "nope").unwrap_err();
        assert!(err.to_string().contains("nope is not a commit"), "{err}");
    }

    #[test]
    fn changed_files_counts_modified_staged_and_untracked_files_but_not_ignored_ones() {
        let (repo, _) = repo_with_commit();
        let root = repo.path();
        std::fs::write(root.join("a.txt"), "edited").unwrap();
        std::fs::write(root.join("staged.txt"), "staged").unwrap();
        git(root, &["add", "staged.txt"]).unwrap();
        std::fs::create_dir_all(root.join("new")).unwrap();
        std::fs::write(root.join("new/one.txt"), "1").unwrap();
        std::fs::write(root.join("new/two.txt"), "2").unwrap();
        std::fs::write(root.join(".gitignore"), "ignored.txt\n").unwrap();
        std::fs::write(root.join("ignored.txt"), "ignored").unwrap();
        // a.txt, staged.txt, new/one.txt, new/two.txt, .gitignore
        assert_eq!(changed_files(root, None).unwrap(), 5);
    }

    #[test]
    fn changed_files_leaves_out_the_excluded_directory() {
        let (repo, _) = repo_with_commit();
        std::fs::create_dir_all(repo.path().join(".rehearsal")).unwrap();
        std::fs::write(repo.path().join(".rehearsal/rehearsal.lock"), "").unwrap();
        assert_eq!(
            changed_files(repo.path(), Some(Path::new(".rehearsal"))).unwrap(),
            0
        );
    }

    #[test]
    fn a_snapshot_of_an_unchanged_working_tree_is_head() {
        let (repo, commit) = repo_with_commit();
        let snapshot = snapshot_working_tree(repo.path(), None).unwrap();
        assert_eq!(
            snapshot,
            Snapshot {
                commit: commit.clone(),
                head: commit,
                changed_files: 0
            }
        );
    }

    #[test]
    fn a_snapshot_holds_the_working_tree_on_top_of_head() {
        let (repo, commit) = repo_with_commit();
        std::fs::write(repo.path().join("a.txt"), "uncommitted edit").unwrap();
        let snapshot = snapshot_working_tree(repo.path(), None).unwrap();
        assert_eq!(snapshot.changed_files, 1);
        assert_eq!(
            show_file(repo.path(), &snapshot.commit, "a.txt").unwrap(),
            "uncommitted edit"
        );
        assert_eq!(
            resolve_commit(repo.path(), &format!("{}^", snapshot.commit)).unwrap(),
            commit
        );
    }
}
