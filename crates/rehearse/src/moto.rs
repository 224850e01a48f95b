//! The rehearsal's one moto server (crates/local-resources), started
//! lazily by the first stack that has resources other than functions and
//! APIs (`local_resources::needs_moto`), with IAM enforced from its start.
//! TimeService's stacks never start it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use local_resources::MotoServer;
use tokio::sync::OnceCell;

/// Where `moto_server` is, relative to the pinned tools
/// (`scripts/setup-tools.sh rehearsal`).
pub const MOTO_SERVER: &str = "venv/bin/moto_server";

/// Why moto could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MotoError {
    #[error(
        "the rehearsal has no moto_server (looked for {looked}); install it with scripts/setup-tools.sh rehearsal, or pass --tools-dir"
    )]
    Missing { looked: String },
    #[error("{0}")]
    Start(String),
}

/// The lazily started moto of one rehearsal; moto stops when this is
/// dropped (and, on Linux, when the rehearsal's process dies).
pub struct Moto {
    path: Option<PathBuf>,
    server: OnceCell<Result<MotoServer, MotoError>>,
    startup: std::sync::Mutex<Option<Duration>>,
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto")
            .field("path", &self.path)
            .field("running", &self.running().map(MotoServer::url))
            .finish()
    }
}

impl Moto {
    /// `moto_server` at `path` (none: a stack that needs moto fails to
    /// deploy, saying how to install it).
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            server: OnceCell::new(),
            startup: std::sync::Mutex::new(None),
        }
    }

    /// The pinned `moto_server` under a tools directory.
    pub fn in_tools(tools_dir: Option<&std::path::Path>) -> Self {
        Self::new(tools_dir.map(|t| t.join(MOTO_SERVER)))
    }

    /// The server, if a stack has started it.
    pub fn running(&self) -> Option<&MotoServer> {
        self.server.get().and_then(|r| r.as_ref().ok())
    }

    /// How long starting it took (spawn, first answer, CloudFormation
    /// loaded, IAM enforced), once started.
    pub fn startup(&self) -> Option<Duration> {
        *self.startup.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server, started on first use: spawned, CloudFormation warmed up
    /// and IAM enforced (`MotoServer::enforce_iam`; the rehearsal's own
    /// calls are signed as the administrator from then on). A failed start
    /// is not retried within the rehearsal.
    pub async fn server(&self) -> Result<&MotoServer, MotoError> {
        let result = self
            .server
            .get_or_init(|| async {
                let started = Instant::now();
                let Some(path) = self.path.as_ref().filter(|p| p.is_file()) else {
                    return Err(MotoError::Missing {
                        looked: self
                            .path
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| {
                                format!("<tools>/{MOTO_SERVER}, no tools directory")
                            }),
                    });
                };
                let server = MotoServer::start(path)
                    .await
                    .map_err(|e| MotoError::Start(e.to_string()))?;
                server
                    .warm_up()
                    .await
                    .map_err(|e| MotoError::Start(e.to_string()))?;
                server
                    .enforce_iam()
                    .await
                    .map_err(|e| MotoError::Start(e.to_string()))?;
                let took = started.elapsed();
                *self.startup.lock().unwrap_or_else(|e| e.into_inner()) = Some(took);
                tracing::info!(url = server.url(), ?took, "moto started");
                Ok(server)
            })
            .await;
        result.as_ref().map_err(Clone::clone)
    }
}
