//! The local AWS endpoint that `AWS_ENDPOINT_URL` points the functions to.
//!
//! One HTTP server answers three services in their own wire protocols, told
//! apart as AWS's front ends tell them apart:
//! - CloudFormation `DescribeStacks` and `DescribeChangeSet`: query protocol
//!   (form-encoded `Action=`), XML answers;
//! - Lambda `Invoke`: REST-JSON, `POST /2015-03-31/functions/{name}/invocations`;
//! - CodePipeline `PutJobSuccessResult` (its `outputVariables` kept) /
//!   `PutJobFailureResult`: awsJson1_1,
//!   `X-Amz-Target: CodePipeline_20150709.<Operation>`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::changeset::ChangeAction;
use crate::ids;
use crate::world::{AsyncFailure, ChangeSetRecord, JobReportError, JobResult, StackRecord, World};

/// A running local endpoint; stops when dropped.
pub struct Endpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    /// Serves `world` on a free loopback port.
    pub async fn start(world: Arc<World>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = router(world);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "local AWS endpoint stopped");
            }
        });
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The endpoint's routes (public for tests that serve it themselves).
pub fn router(world: Arc<World>) -> Router {
    Router::new().fallback(dispatch).with_state(world)
}

async fn dispatch(
    State(world): State<Arc<World>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return match target.split_once('.') {
            Some(("CodePipeline_20150709", operation)) => codepipeline(&world, operation, &body),
            _ => json_error(
                "UnknownOperationException",
                &format!("the rehearsal's local endpoint does not serve {target}"),
            ),
        };
    }
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/2015-03-31/functions/")
        && let Some(name) = rest.strip_suffix("/invocations")
        && method == Method::POST
    {
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .into_owned();
        return lambda_invoke(world, &name, &headers, body).await;
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    if method == Method::POST
        && let Some((_, action)) = form.iter().find(|(k, _)| k == "Action")
    {
        return cloudformation(&world, action, &form);
    }
    tracing::warn!(%method, %uri, "local AWS endpoint got a request it does not serve");
    (
        StatusCode::NOT_FOUND,
        format!(
            "The rehearsal's local AWS endpoint serves CloudFormation DescribeStacks and DescribeChangeSet, Lambda Invoke and CodePipeline job results; not {method} {uri}"
        ),
    )
        .into_response()
}

// ---------------------------------------------------------------- CloudFormation

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

const CFN_NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

fn cloudformation_error(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = ids::uuid();
    let body = format!(
        "<ErrorResponse xmlns=\"{CFN_NS}\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        xml_escape(code),
        xml_escape(message)
    );
    (
        status,
        [
            ("content-type", "text/xml"),
            ("x-amzn-requestid", &request_id),
        ],
        body,
    )
        .into_response()
}

fn cloudformation(world: &World, action: &str, form: &[(String, String)]) -> Response {
    if action == "DescribeChangeSet" {
        return describe_change_set(world, form);
    }
    if action != "DescribeStacks" {
        return cloudformation_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!(
                "The action {action} is not valid for this web service (the rehearsal's local endpoint serves DescribeStacks and DescribeChangeSet only)"
            ),
        );
    }
    let wanted = form
        .iter()
        .find(|(k, _)| k == "StackName")
        .map(|(_, v)| v.as_str());
    let stacks = match wanted {
        Some(name) => match world.stack(name) {
            Some(stack) => vec![stack],
            None => {
                return cloudformation_error(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    &format!("Stack with id {name} does not exist"),
                );
            }
        },
        None => world.stacks(),
    };
    let request_id = ids::uuid();
    let members: String = stacks.iter().map(stack_xml).collect();
    let body = format!(
        "<DescribeStacksResponse xmlns=\"{CFN_NS}\">\n  <DescribeStacksResult>\n    <Stacks>\n{members}    </Stacks>\n  </DescribeStacksResult>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</DescribeStacksResponse>\n"
    );
    (
        StatusCode::OK,
        [
            ("content-type", "text/xml"),
            ("x-amzn-requestid", &request_id),
        ],
        body,
    )
        .into_response()
}

fn stack_xml(stack: &StackRecord) -> String {
    let time = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut xml = String::from("      <member>\n");
    xml += &format!(
        "        <StackId>{}</StackId>\n        <StackName>{}</StackName>\n        <CreationTime>{}</CreationTime>\n",
        xml_escape(&stack.stack_id),
        xml_escape(&stack.name),
        time(&stack.created)
    );
    if let Some(updated) = &stack.updated {
        xml += &format!(
            "        <LastUpdatedTime>{}</LastUpdatedTime>\n",
            time(updated)
        );
    }
    xml += &format!(
        "        <StackStatus>{}</StackStatus>\n        <DisableRollback>false</DisableRollback>\n",
        xml_escape(&stack.status)
    );
    xml += "        <Parameters>\n";
    for (key, value) in &stack.parameters {
        xml += &format!(
            "          <member>\n            <ParameterKey>{}</ParameterKey>\n            <ParameterValue>{}</ParameterValue>\n          </member>\n",
            xml_escape(key),
            xml_escape(value)
        );
    }
    xml += "        </Parameters>\n        <Outputs>\n";
    for (key, value) in &stack.outputs {
        xml += &format!(
            "          <member>\n            <OutputKey>{}</OutputKey>\n            <OutputValue>{}</OutputValue>\n          </member>\n",
            xml_escape(key),
            xml_escape(value)
        );
    }
    xml += "        </Outputs>\n        <Tags/>\n      </member>\n";
    xml
}

fn xml_ok(body: String, request_id: &str) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "text/xml"),
            ("x-amzn-requestid", request_id),
        ],
        body,
    )
        .into_response()
}

/// DescribeChangeSet (AWS CloudFormation API Reference): the change set by
/// `ChangeSetName` (a name with `StackName`, or an ARN), every change on one
/// page (no `NextToken`). A change set that does not exist is
/// `ChangeSetNotFound` (HTTP 404), the error code the SDK reads as
/// `ChangeSetNotFoundException`.
fn describe_change_set(world: &World, form: &[(String, String)]) -> Response {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(name) = field("ChangeSetName") else {
        return cloudformation_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "1 validation error detected: Value null at 'changeSetName' failed to satisfy constraint: Member must not be null",
        );
    };
    let stack = field("StackName");
    let Some(record) = world.change_set(stack, name) else {
        return cloudformation_error(
            StatusCode::NOT_FOUND,
            "ChangeSetNotFound",
            &format!("ChangeSet [{name}] does not exist"),
        );
    };
    let request_id = ids::uuid();
    let body = format!(
        "<DescribeChangeSetResponse xmlns=\"{CFN_NS}\">\n  <DescribeChangeSetResult>\n{}  </DescribeChangeSetResult>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n</DescribeChangeSetResponse>\n",
        change_set_xml(&record)
    );
    xml_ok(body, &request_id)
}

fn element(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", xml_escape(value))
}

fn change_set_xml(record: &ChangeSetRecord) -> String {
    let mut xml = String::new();
    for (name, value) in [
        ("ChangeSetName", record.change_set_name.as_str()),
        ("ChangeSetId", record.change_set_id.as_str()),
        ("StackId", record.stack_id.as_str()),
        ("StackName", record.stack_name.as_str()),
        ("ExecutionStatus", record.execution_status.as_str()),
        ("Status", record.status.as_str()),
    ] {
        xml += &format!("    {}\n", element(name, value));
    }
    xml += &format!(
        "    <CreationTime>{}</CreationTime>\n",
        record.created.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
    if let Some(reason) = &record.status_reason {
        xml += &format!("    {}\n", element("StatusReason", reason));
    }
    xml += "    <NotificationARNs/>\n    <Capabilities>\n";
    for capability in &record.capabilities {
        xml += &format!("      {}\n", element("member", capability));
    }
    xml += "    </Capabilities>\n    <Parameters>\n";
    for (key, value) in &record.parameters {
        xml += &format!(
            "      <member>{}{}</member>\n",
            element("ParameterKey", key),
            element("ParameterValue", value)
        );
    }
    xml += "    </Parameters>\n    <Changes>\n";
    for change in &record.changes {
        xml += "      <member>\n        <Type>Resource</Type>\n        <ResourceChange>\n";
        xml += &format!(
            "          {}\n          {}\n          {}\n",
            element("Action", change.action.as_str()),
            element("LogicalResourceId", &change.logical_id),
            element("ResourceType", &change.resource_type)
        );
        if change.action == ChangeAction::Modify {
            let replacement = if change.replaces() { "True" } else { "False" };
            xml += &format!(
                "          {}\n          <Scope><member>Properties</member></Scope>\n          <Details>\n",
                element("Replacement", replacement)
            );
            for property in &change.properties {
                let (source, entity) = match &property.parameter {
                    Some(parameter) => ("ParameterReference", Some(parameter.as_str())),
                    None => ("DirectModification", None),
                };
                xml += &format!(
                    "            <member><Evaluation>Static</Evaluation>{}{}<Target><Attribute>Properties</Attribute>{}<RequiresRecreation>{}</RequiresRecreation></Target></member>\n",
                    element("ChangeSource", source),
                    entity
                        .map(|e| element("CausingEntity", e))
                        .unwrap_or_default(),
                    element("Name", &property.name),
                    if property.replaces { "Always" } else { "Never" },
                );
            }
            xml += "          </Details>\n";
        } else {
            xml += "          <Scope/>\n          <Details/>\n";
        }
        xml += "        </ResourceChange>\n      </member>\n";
    }
    xml += "    </Changes>\n";
    xml
}

// ---------------------------------------------------------------- Lambda

fn lambda_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/json".to_string()),
            ("x-amzn-errortype", code.to_string()),
            ("x-amzn-requestid", ids::uuid()),
        ],
        json!({"Type": "User", "Message": message}).to_string(),
    )
        .into_response()
}

async fn lambda_invoke(
    world: Arc<World>,
    name: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(function) = world.function(name) else {
        let arn = if name.starts_with("arn:") {
            name.to_string()
        } else {
            ids::function_arn(ids::function_name_from(name))
        };
        return lambda_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {arn}"),
        );
    };
    if !body.is_empty() && serde_json::from_slice::<Value>(&body).is_err() {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "Could not parse request body into json: the payload must be a JSON document",
        );
    }
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    let request_id = ids::uuid();
    match invocation_type {
        "Event" => {
            let name = function.name().to_string();
            tracing::info!(function = %name, "asynchronous invocation queued");
            tokio::spawn(async move {
                let _ = function
                    .invoke_async(body, |attempt, error| {
                        tracing::warn!(function = %name, %error, attempt, "asynchronous invocation failed");
                        world.record_async_failure(AsyncFailure {
                            function: name.clone(),
                            error: error.clone(),
                        });
                    })
                    .await;
            });
            (
                StatusCode::ACCEPTED,
                [("x-amzn-requestid", request_id)],
                Bytes::new(),
            )
                .into_response()
        }
        "DryRun" => (StatusCode::NO_CONTENT, [("x-amzn-requestid", request_id)]).into_response(),
        "RequestResponse" => {
            let mut response_headers = vec![
                ("content-type", "application/json".to_string()),
                ("x-amz-executed-version", "$LATEST".to_string()),
                ("x-amzn-requestid", request_id),
            ];
            let payload = match function.invoke(body).await {
                Ok(payload) => payload,
                Err(error) => {
                    response_headers.push(("x-amz-function-error", "Unhandled".to_string()));
                    error.payload
                }
            };
            let mut response = (StatusCode::OK, payload).into_response();
            for (name, value) in response_headers {
                if let Ok(value) = value.parse() {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        other => lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!("Unsupported InvocationType {other}: use RequestResponse, Event or DryRun"),
        ),
    }
}

// ---------------------------------------------------------------- CodePipeline

fn json_error(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            ("content-type", "application/x-amz-json-1.1".to_string()),
            ("x-amzn-requestid", ids::uuid()),
        ],
        json!({"__type": code, "message": message}).to_string(),
    )
        .into_response()
}

const FAILURE_TYPES: [&str; 6] = [
    "JobFailed",
    "ConfigurationError",
    "PermissionError",
    "RevisionOutOfSync",
    "RevisionUnavailable",
    "SystemUnavailable",
];

/// Checks a job result request as CodePipeline validates it; returns the job
/// id and the result.
fn parse_job_result(operation: &str, body: &[u8]) -> Result<(String, JobResult), String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("request body is not JSON: {e}"))?;
    let job_id = doc["jobId"]
        .as_str()
        .ok_or("1 validation error detected: Value null at 'jobId' failed to satisfy constraint: Member must not be null")?
        .to_string();
    let result = if operation == "PutJobSuccessResult" {
        let summary = doc["executionDetails"]["summary"]
            .as_str()
            .map(str::to_string);
        if let Some(summary) = &summary
            && summary.chars().count() > 2048
        {
            return Err(format!(
                "1 validation error detected: Value at 'executionDetails.summary' failed to satisfy constraint: Member must have length less than or equal to 2048 (it has {})",
                summary.chars().count()
            ));
        }
        // outputVariables: a map of names to values ("PutJobSuccessResult",
        // CodePipeline API Reference); a value that is not a string is refused.
        let mut variables = BTreeMap::new();
        if let Some(map) = doc["outputVariables"].as_object() {
            for (name, value) in map {
                let Some(value) = value.as_str() else {
                    return Err(format!(
                        "1 validation error detected: Value at 'outputVariables.{name}' failed to satisfy constraint: Member must be a string"
                    ));
                };
                variables.insert(name.clone(), value.to_string());
            }
        }
        JobResult::Succeeded { summary, variables }
    } else {
        let details = &doc["failureDetails"];
        let kind = details["type"].as_str().ok_or(
            "1 validation error detected: Value null at 'failureDetails.type' failed to satisfy constraint: Member must not be null",
        )?;
        if !FAILURE_TYPES.contains(&kind) {
            return Err(format!(
                "1 validation error detected: Value '{kind}' at 'failureDetails.type' failed to satisfy constraint: Member must satisfy enum value set: {FAILURE_TYPES:?}"
            ));
        }
        let message = details["message"].as_str().ok_or(
            "1 validation error detected: Value null at 'failureDetails.message' failed to satisfy constraint: Member must not be null",
        )?;
        let length = message.chars().count();
        if !(1..=5000).contains(&length) {
            return Err(format!(
                "1 validation error detected: Value at 'failureDetails.message' failed to satisfy constraint: Member must have length between 1 and 5000 (it has {length})"
            ));
        }
        JobResult::Failed {
            kind: kind.to_string(),
            message: message.to_string(),
        }
    };
    Ok((job_id, result))
}

fn codepipeline(world: &World, operation: &str, body: &[u8]) -> Response {
    if !matches!(operation, "PutJobSuccessResult" | "PutJobFailureResult") {
        return json_error(
            "UnknownOperationException",
            &format!(
                "the rehearsal's local endpoint serves CodePipeline PutJobSuccessResult and PutJobFailureResult, not {operation}"
            ),
        );
    }
    let (job_id, result) = match parse_job_result(operation, body) {
        Ok(parsed) => parsed,
        Err(message) => return json_error("ValidationException", &message),
    };
    tracing::info!(job_id, operation, "job result reported");
    match world.report_job(&job_id, result) {
        Ok(()) => (
            StatusCode::OK,
            [
                ("content-type", "application/x-amz-json-1.1".to_string()),
                ("x-amzn-requestid", ids::uuid()),
            ],
            Bytes::new(),
        )
            .into_response(),
        Err(JobReportError::NotFound(id)) => json_error(
            "JobNotFoundException",
            &format!("The job was specified in an invalid format or cannot be found: {id}"),
        ),
        Err(JobReportError::NotInProgress(id)) => json_error(
            "InvalidJobStateException",
            &format!(
                "Job {id} is not in progress; its result was already reported or it timed out"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_variables_are_kept() {
        let body = json!({"jobId": "j", "executionDetails": {"summary": "s"}, "outputVariables": {"ChecksRun": "12", "Stage": "beta"}});
        let (_, result) =
            parse_job_result("PutJobSuccessResult", body.to_string().as_bytes()).unwrap();
        let JobResult::Succeeded { variables, .. } = result else {
            panic!("{result:?}")
        };
        assert_eq!(variables["ChecksRun"], "12");
        assert_eq!(variables["Stage"], "beta");
    }

    #[test]
    fn xml_special_characters_are_escaped() {
        assert_eq!(xml_escape("a<b&\"c\">"), "a&lt;b&amp;&quot;c&quot;&gt;");
    }

    #[test]
    fn failure_messages_longer_than_5000_characters_are_refused() {
        let body = json!({"jobId": "j", "failureDetails": {"type": "JobFailed", "message": "x".repeat(5001)}});
        let err = parse_job_result("PutJobFailureResult", body.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("5000"), "{err}");
    }

    #[test]
    fn failure_types_outside_the_enum_are_refused() {
        let body = json!({"jobId": "j", "failureDetails": {"type": "Oops", "message": "m"}});
        assert!(parse_job_result("PutJobFailureResult", body.to_string().as_bytes()).is_err());
    }

    #[test]
    fn success_summaries_are_kept() {
        let body = json!({"jobId": "j", "executionDetails": {"summary": "12 checks passed"}});
        let (id, result) =
            parse_job_result("PutJobSuccessResult", body.to_string().as_bytes()).unwrap();
        assert_eq!(id, "j");
        assert_eq!(
            result,
            JobResult::Succeeded {
                summary: Some("12 checks passed".into()),
                variables: BTreeMap::new(),
            }
        );
    }
}
