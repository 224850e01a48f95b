//! The rehearsal's one moto server (crates/local-resources), started
//! lazily by the first stack that has resources other than functions and
//! APIs (`local_resources::needs_moto`), with IAM enforced from its start,
//! and the rehearsal's AWS proxy in front of it ([`proxy`]: functions call
//! moto through it, so that a denied call is named in their log).
//! TimeService's stacks never start it. [`Moto::warm_up`] starts it in
//! the background (while the Build stage runs); the first deploy awaits
//! the same start.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use local_resources::MotoServer;
use tokio::sync::OnceCell;

use crate::aws_proxy::AwsProxy;

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

/// moto and the proxy in front of it.
struct Running {
    server: MotoServer,
    proxy: AwsProxy,
}

/// The lazily started moto of one rehearsal; moto stops when this is
/// dropped (and, on Linux, when the rehearsal's process dies).
pub struct Moto {
    path: Option<PathBuf>,
    running: OnceCell<Result<Running, MotoError>>,
    startup: std::sync::Mutex<Option<Duration>>,
    /// When [`Moto::warm_up`] started it, if it did.
    warm_up: std::sync::Mutex<Option<Instant>>,
    warming: AtomicBool,
    /// Whether a deploy has noted the start.
    noted: AtomicBool,
}

impl std::fmt::Debug for Moto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moto")
            .field("path", &self.path)
            .field("running", &self.running().map(MotoServer::url))
            .finish()
    }
}

/// How a deploy got moto: what the notes say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StartReport {
    /// Spawn, first answer, CloudFormation loaded, IAM enforced.
    pub took: Duration,
    /// Whether [`Moto::warm_up`] had started it (during the build).
    pub warmed_up: bool,
    /// Whether this is the first deploy to get it (the one that notes the
    /// start).
    pub first: bool,
    /// How long the deploy waited for it.
    pub waited: Duration,
}

impl Moto {
    /// `moto_server` at `path` (none: a stack that needs moto fails to
    /// deploy, saying how to install it).
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            running: OnceCell::new(),
            startup: std::sync::Mutex::new(None),
            warm_up: std::sync::Mutex::new(None),
            warming: AtomicBool::new(false),
            noted: AtomicBool::new(false),
        }
    }

    /// The pinned `moto_server` under a tools directory.
    pub fn in_tools(tools_dir: Option<&std::path::Path>) -> Self {
        Self::new(tools_dir.map(|t| t.join(MOTO_SERVER)))
    }

    /// The server, if a stack (or the warm-up) has started it.
    pub fn running(&self) -> Option<&MotoServer> {
        self.started().map(|r| &r.server)
    }

    /// The AWS proxy in front of moto, once started.
    pub fn proxy(&self) -> Option<&AwsProxy> {
        self.started().map(|r| &r.proxy)
    }

    fn started(&self) -> Option<&Running> {
        self.running.get().and_then(|r| r.as_ref().ok())
    }

    /// How long starting it took (spawn, first answer, CloudFormation
    /// loaded, IAM enforced), once started.
    pub fn startup(&self) -> Option<Duration> {
        *self.startup.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts moto in the background now (the rehearsal calls it when the
    /// Build stage starts and the app's templates need moto), so that its
    /// start-up overlaps the build. Idempotent: later calls, and the
    /// first deploy's [`Moto::server`], share this one start. Returns
    /// whether this call started it.
    pub fn warm_up(self: &Arc<Self>) -> bool {
        if self.running.initialized() || self.warming.swap(true, Ordering::SeqCst) {
            return false;
        }
        *self.warm_up.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(error) = me.server().await {
                tracing::warn!(%error, "moto's warm-up failed; the first stack that needs it will say why");
            }
        });
        true
    }

    /// The server, started on first use: spawned, CloudFormation warmed up
    /// and IAM enforced (`MotoServer::enforce_iam`; the rehearsal's own
    /// calls are signed as the administrator from then on), the proxy in
    /// front. A failed start is not retried within the rehearsal.
    pub async fn server(&self) -> Result<&MotoServer, MotoError> {
        self.start().await.map(|r| &r.server)
    }

    /// [`Moto::server`], with how this caller got it (for the deploy's
    /// notes: started now, or by the warm-up, and how long it waited).
    pub async fn server_reporting(&self) -> Result<(&MotoServer, StartReport), MotoError> {
        let waiting = Instant::now();
        let running = self.start().await?;
        let warmed_up = self
            .warm_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        Ok((
            &running.server,
            StartReport {
                took: self.startup().unwrap_or_default(),
                warmed_up,
                first: !self.noted.swap(true, Ordering::SeqCst),
                waited: waiting.elapsed(),
            },
        ))
    }

    async fn start(&self) -> Result<&Running, MotoError> {
        let result = self
            .running
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
                let proxy = AwsProxy::start(server.url()).await.map_err(|e| {
                    MotoError::Start(format!(
                        "cannot serve the rehearsal's AWS proxy on 127.0.0.1: {e}"
                    ))
                })?;
                let took = started.elapsed();
                *self.startup.lock().unwrap_or_else(|e| e.into_inner()) = Some(took);
                tracing::info!(
                    url = server.url(),
                    proxy = proxy.url(),
                    ?took,
                    "moto started"
                );
                Ok(Running { server, proxy })
            })
            .await;
        result.as_ref().map_err(Clone::clone)
    }
}
