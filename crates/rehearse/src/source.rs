//! The Source action: a commit of a local git repository, checked out clean.
//!
//! The checkout is a detached `git worktree` that every run moves to its
//! commit with `git checkout --force` and `git clean -ffdx`: exactly the
//! commit's files, never uncommitted ones, while files that did not change
//! keep their timestamps so cargo's incremental build stays warm.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot run git: {0}; is git installed?")]
    Git(std::io::Error),
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

/// The first line of a commit's message, for the report.
pub fn subject(repo: &Path, commit: &str) -> String {
    git(repo, &["log", "-1", "--format=%s", commit]).unwrap_or_default()
}

/// Checks `commit` out into `dir` (a worktree of `repo`), clean. `tools`
/// (the repository's git-ignored `.tools/`) is linked into the checkout so
/// the build script finds the pinned tools.
pub fn checkout(
    repo: &Path,
    commit: &str,
    dir: &Path,
    tools: Option<&Path>,
) -> Result<PathBuf, SourceError> {
    let usable = dir.join(".git").exists() && git(dir, &["rev-parse", "--git-dir"]).is_ok();
    if !usable {
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
        git(repo, &["worktree", "prune"])?;
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(SourceError::Git)?;
        }
        let path = dir.display().to_string();
        git(
            repo,
            &["worktree", "add", "--force", "--detach", &path, commit],
        )?;
    } else {
        git(dir, &["checkout", "--force", "--detach", commit])?;
    }
    git(dir, &["clean", "-ffdx", "-e", "/.tools"])?;
    if let Some(tools) = tools {
        let link = dir.join(".tools");
        if !link.exists() {
            #[cfg(unix)]
            std::os::unix::fs::symlink(tools, &link).map_err(SourceError::Git)?;
        }
    }
    Ok(dir.to_path_buf())
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
    fn an_unknown_revision_is_named_in_the_error() {
        let (repo, _) = repo_with_commit();
        let err = resolve_commit(repo.path(), "nope").unwrap_err();
        assert!(err.to_string().contains("nope is not a commit"), "{err}");
    }
}
