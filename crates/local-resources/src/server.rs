//! The moto server process and the stack it creates.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{Answer, Credentials, MotoClient, xml_blocks, xml_first};
use crate::stack::{MotoTemplate, StackResources, collect};
use crate::{Error, Result};

/// How long [`MotoServer::start`] waits for moto to answer. Measured
/// start-up is about a second (bench/local-resources.sh); the bound covers a
/// loaded machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// moto_server's entry point (`moto.server:main`, what the venv's
/// `moto_server` script runs), preceded by `prctl(PR_SET_PDEATHSIG,
/// SIGKILL)` where the C library has it: moto dies with the process that
/// started it (strictly, with the thread that spawned it: a tokio worker,
/// which lives as long as the runtime).
const DIE_WITH_PARENT: &str = "import sys\ntry:\n    import ctypes, signal\n    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\nexcept Exception:\n    pass\nfrom moto.server import main\nsys.exit(main())";

/// A running `moto_server` on a free loopback port, with its own working
/// directory; killed when dropped.
pub struct MotoServer {
    child: Child,
    client: MotoClient,
    startup: Duration,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for MotoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoServer")
            .field("url", &self.client.url)
            .field("pid", &self.child.id())
            .finish()
    }
}

impl MotoServer {
    /// Starts `moto_server` (the pinned one: `<tools>/venv/bin/moto_server`)
    /// on `127.0.0.1` and a free port, and waits until it answers (at most
    /// [`START_TIMEOUT`]).
    ///
    /// AWS managed policies are loaded (`MOTO_IAM_LOAD_MANAGED_POLICIES`,
    /// moto/settings.py) so that execution roles can attach
    /// `AWSLambdaBasicExecutionRole` and the like, as SAM does.
    pub async fn start(moto_server: &Path) -> Result<Self> {
        Self::start_with_timeout(moto_server, START_TIMEOUT).await
    }

    /// [`MotoServer::start`] with another bound on the wait.
    pub async fn start_with_timeout(moto_server: &Path, timeout: Duration) -> Result<Self> {
        let started = Instant::now();
        let start_err = |source| Error::Start {
            path: moto_server.to_path_buf(),
            source,
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(start_err)?
            .port();
        let dir = tempfile::tempdir().map_err(start_err)?;
        // moto runs in its own directory: a relative path would be looked
        // up there.
        let program = std::path::absolute(moto_server).map_err(start_err)?;
        let mut command = match program.parent().map(|bin| bin.join("python")) {
            // The venv's python runs moto's entry point after asking the
            // kernel to kill it when its parent dies (prctl
            // PR_SET_PDEATHSIG, Linux), so a rehearsal killed outright
            // does not leave moto running; elsewhere it just runs moto.
            Some(python) if python.is_file() => {
                let mut c = Command::new(python);
                c.args(["-c", DIE_WITH_PARENT]);
                c
            }
            _ => Command::new(&program),
        };
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            // One recording file per server (moto's default is shared by
            // every server started in the same directory).
            .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(start_err)?;
        let mut server = MotoServer {
            child,
            client: MotoClient::new(format!("http://127.0.0.1:{port}")),
            startup: Duration::ZERO,
            _dir: dir,
        };
        loop {
            let ok = server
                .client
                .http()
                .get(format!("{}/moto-api/", server.client.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            let exited = server.child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > timeout {
                return Err(Error::StartTimeout {
                    url: server.client.url.clone(),
                    waited_secs: started.elapsed().as_secs(),
                    detail: match exited {
                        Some(status) => format!("it exited: {status}"),
                        None => "still running, not answering".to_string(),
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.startup = started.elapsed();
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.client.url
    }

    /// From spawning the process to its first answer.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    pub(crate) fn client(&self) -> &MotoClient {
        &self.client
    }

    /// Makes moto load its CloudFormation support (on its first
    /// CloudFormation request moto imports the models of every service it
    /// can create, moto/cloudformation/parsing.py: about 2 s here, most of
    /// a first [`MotoServer::create_stack`]). The rehearsal can run this
    /// right after [`MotoServer::start`], while it builds. Returns how long
    /// it took.
    pub async fn warm_up(&self) -> Result<Duration> {
        let t = Instant::now();
        self.client
            .query("cloudformation", "2010-05-15", "ListStacks", &[])
            .await?;
        Ok(t.elapsed())
    }

    /// Creates the sub-template's resources in moto as stack `stack_name`
    /// (CloudFormation CreateStack, query protocol; moto resolves `Ref`,
    /// `Fn::GetAtt`, `Fn::Sub`, conditions and parameters itself), then
    /// reads each resource's physical id (DescribeStackResources) and the
    /// outputs that carry its `Ref` and attributes (DescribeStacks).
    pub async fn create_stack(
        &self,
        stack_name: &str,
        template: &MotoTemplate,
    ) -> Result<StackResources> {
        if template.is_empty() {
            return Ok(StackResources {
                stack_name: stack_name.to_string(),
                ..Default::default()
            });
        }
        const V: &str = "2010-05-15";
        let body = template.body.to_string();
        let mut params: Vec<(String, String)> = vec![
            ("StackName".into(), stack_name.into()),
            ("TemplateBody".into(), body),
        ];
        for (i, (k, v)) in template.parameters.iter().enumerate() {
            params.push((
                format!("Parameters.member.{}.ParameterKey", i + 1),
                k.clone(),
            ));
            params.push((
                format!("Parameters.member.{}.ParameterValue", i + 1),
                v.clone(),
            ));
        }
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.client
            .query("cloudformation", V, "CreateStack", &refs)
            .await?;

        let stacks = self
            .client
            .query(
                "cloudformation",
                V,
                "DescribeStacks",
                &[("StackName", stack_name)],
            )
            .await?;
        let status = xml_first(&stacks, "StackStatus").unwrap_or_default();
        if status != "CREATE_COMPLETE" {
            return Err(Error::StackFailed {
                stack: stack_name.to_string(),
                status,
                reason: xml_first(&stacks, "StackStatusReason"),
            });
        }
        let mut outputs = BTreeMap::new();
        for block in xml_blocks(&stacks, "Outputs") {
            for member in xml_blocks(block, "member") {
                if let (Some(k), Some(v)) = (
                    xml_first(member, "OutputKey"),
                    xml_first(member, "OutputValue"),
                ) {
                    outputs.insert(k, v);
                }
            }
        }

        let described = self
            .client
            .query(
                "cloudformation",
                V,
                "DescribeStackResources",
                &[("StackName", stack_name)],
            )
            .await?;
        let mut rows = Vec::new();
        for member in xml_blocks(&described, "member") {
            let get = |t| xml_first(member, t).unwrap_or_default();
            rows.push((
                get("LogicalResourceId"),
                get("PhysicalResourceId"),
                get("ResourceType"),
            ));
        }
        Ok(collect(stack_name, template, &rows, &outputs))
    }

    /// Deletes a stack moto created (its resources go with it).
    pub async fn delete_stack(&self, stack_name: &str) -> Result<()> {
        self.client
            .query(
                "cloudformation",
                "2010-05-15",
                "DeleteStack",
                &[("StackName", stack_name)],
            )
            .await
            .map(|_| ())
    }

    /// A query-protocol call to moto (`service` is the signing name:
    /// `sqs`, `sns`, `iam`, ...), signed with `creds` or, when `None`, the
    /// server's own (the administrator's once IAM is enforced). The XML
    /// answer, or [`Error::Aws`].
    pub async fn query(
        &self,
        creds: Option<&Credentials>,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String> {
        let own = self.client.credentials();
        self.client
            .query_as(creds.unwrap_or(&own), service, version, action, params)
            .await
    }

    /// A JSON-protocol call (DynamoDB: `service` `dynamodb`, target prefix
    /// `DynamoDB_20120810`), signed as [`MotoServer::query`] is.
    pub async fn json(
        &self,
        creds: Option<&Credentials>,
        service: &str,
        target_prefix: &str,
        action: &str,
        body: &Value,
    ) -> Result<Value> {
        let own = self.client.credentials();
        self.client
            .json_as(creds.unwrap_or(&own), service, target_prefix, action, body)
            .await
    }

    /// A JSON-protocol call returning moto's raw answer (status and body)
    /// whatever it is: for a caller that wants the error body itself, as a
    /// function's SDK sees it ([`crate::iam::Denial::from_body`]).
    pub async fn json_raw(
        &self,
        creds: &Credentials,
        service: &str,
        target_prefix: &str,
        action: &str,
        body: &Value,
    ) -> Result<(u16, String)> {
        let Answer { status, body } = self
            .client
            .send(
                creds,
                service,
                action,
                "application/x-amz-json-1.0",
                Some(&format!("{target_prefix}.{action}")),
                body.to_string().into_bytes(),
            )
            .await?;
        Ok((status, body))
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
