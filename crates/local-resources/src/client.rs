//! Signed calls to moto: the AWS query protocol (CloudFormation, IAM, STS,
//! SQS) and JSON protocol (DynamoDB), over reqwest.
//!
//! Every request is signed with Signature Version 4: moto routes a request
//! to a service by the credential scope of its `Authorization` header, and
//! once IAM is enforced it recomputes the signature with the secret of the
//! access key (moto/iam/access_control.py, `IAMRequestBase.check_signature`).

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::Value;

use crate::{Error, REGION, Result};

/// AWS credentials (an access key, and a session token for an assumed
/// role's temporary credentials). `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA...` (an IAM user's key) or `ASIA...` (from AssumeRole).
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Credentials moto accepts while IAM is not enforced (any key does).
    pub fn unchecked() -> Self {
        Credentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        }
    }

    /// The standard environment variables an AWS SDK reads them from
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
        ];
        if let Some(t) = &self.session_token {
            v.push(("AWS_SESSION_TOKEN".to_string(), t.clone()));
        }
        v
    }
}

/// One signed AWS JSON-protocol call (`X-Amz-Target: <prefix>.<action>`)
/// to `endpoint` with `creds`, as a function process's SDK makes it: moto's
/// raw answer (status and body) whatever it is, for tests and tools that
/// want to see a denial ([`crate::iam::Denial::from_body`]).
pub async fn signed_json(
    endpoint: &str,
    creds: &Credentials,
    service: &str,
    target_prefix: &str,
    action: &str,
    body: &Value,
) -> Result<(u16, String)> {
    let client = MotoClient::new(endpoint.trim_end_matches('/').to_string());
    let a = client
        .send(
            creds,
            service,
            action,
            "application/x-amz-json-1.0",
            Some(&format!("{target_prefix}.{action}")),
            body.to_string().into_bytes(),
        )
        .await?;
    Ok((a.status, a.body))
}

/// A client that signs AWS JSON-protocol calls as a function's SDK does and
/// keeps its connections alive (as an SDK client does): for tests and
/// benchmarks that call an endpoint many times (moto, or the rehearsal's
/// AWS proxy in front of it).
#[derive(Clone)]
pub struct SignedClient {
    inner: MotoClient,
}

impl SignedClient {
    /// A client for `endpoint` (`http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str) -> Self {
        SignedClient {
            inner: MotoClient::new(endpoint.trim_end_matches('/').to_string()),
        }
    }

    /// One signed JSON-protocol call (`X-Amz-Target: <prefix>.<action>`):
    /// the raw answer (status and body) whatever it is.
    pub async fn json(
        &self,
        creds: &Credentials,
        service: &str,
        target_prefix: &str,
        action: &str,
        body: &Value,
    ) -> Result<(u16, String)> {
        let a = self
            .inner
            .send(
                creds,
                service,
                action,
                "application/x-amz-json-1.0",
                Some(&format!("{target_prefix}.{action}")),
                body.to_string().into_bytes(),
            )
            .await?;
        Ok((a.status, a.body))
    }
}

/// A client for one moto server, signing with its current credentials.
#[derive(Clone)]
pub(crate) struct MotoClient {
    http: reqwest::Client,
    pub(crate) url: String,
    creds: Arc<RwLock<Credentials>>,
}

/// An answer from moto: status and body.
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

impl MotoClient {
    pub(crate) fn new(url: String) -> Self {
        MotoClient {
            http: reqwest::Client::new(),
            url,
            creds: Arc::new(RwLock::new(Credentials::unchecked())),
        }
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn set_credentials(&self, c: Credentials) {
        *self.creds.write().unwrap_or_else(|e| e.into_inner()) = c;
    }

    pub(crate) fn credentials(&self) -> Credentials {
        self.creds.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A signed POST to moto with these credentials; returns the raw
    /// answer whatever its status.
    pub(crate) async fn send(
        &self,
        creds: &Credentials,
        service: &str,
        action: &str,
        content_type: &str,
        target: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Answer> {
        let url = format!("{}/", self.url);
        let mut headers: Vec<(&str, String)> = vec![("content-type", content_type.to_string())];
        if let Some(t) = target {
            headers.push(("x-amz-target", t.to_string()));
        }
        let identity = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.clone(),
            creds.session_token.clone(),
            None,
            "local-resources",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Error::Sign(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| Error::Sign(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Error::Sign(e.to_string()))?
            .into_parts();
        let mut req = self.http.post(&url).body(body);
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let http_err = |source| Error::Http {
            action: action.to_string(),
            url: self.url.clone(),
            source,
        };
        let resp = req.send().await.map_err(http_err)?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(http_err)?;
        Ok(Answer { status, body })
    }

    /// An AWS query-protocol call (`Action=...&Version=...`); the XML body
    /// of a success, or [`Error::Aws`].
    pub(crate) async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String> {
        let creds = self.credentials();
        self.query_as(&creds, service, version, action, params)
            .await
    }

    pub(crate) async fn query_as(
        &self,
        creds: &Credentials,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String> {
        let mut pairs = vec![("Action", action), ("Version", version)];
        pairs.extend_from_slice(params);
        let body = form_encode(&pairs).into_bytes();
        let a = self
            .send(
                creds,
                service,
                action,
                "application/x-www-form-urlencoded; charset=utf-8",
                None,
                body,
            )
            .await?;
        if (200..300).contains(&a.status) {
            Ok(a.body)
        } else {
            Err(aws_error(action, a.status, &a.body))
        }
    }

    /// An AWS JSON-protocol call (`X-Amz-Target: <prefix>.<action>`).
    pub(crate) async fn json_as(
        &self,
        creds: &Credentials,
        service: &str,
        target_prefix: &str,
        action: &str,
        body: &Value,
    ) -> Result<Value> {
        let target = format!("{target_prefix}.{action}");
        let a = self
            .send(
                creds,
                service,
                action,
                "application/x-amz-json-1.0",
                Some(&target),
                body.to_string().into_bytes(),
            )
            .await?;
        if (200..300).contains(&a.status) {
            serde_json::from_str(&a.body).map_err(|e| Error::Response {
                action: action.to_string(),
                detail: format!("not JSON: {e}"),
            })
        } else {
            Err(aws_error(action, a.status, &a.body))
        }
    }
}

/// `application/x-www-form-urlencoded` as Python's `urllib.parse.urlencode`
/// writes it (only `A-Z a-z 0-9 _ . - ~` kept, space as `+`). moto checks
/// a form request's signature over its parsed parameters encoded again that
/// way (moto/iam/access_control.py builds botocore's `AWSRequest` from
/// them), so a body encoded any other way (`*` kept, as the WHATWG encoder
/// does) fails with SignatureDoesNotMatch once IAM is enforced.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(k, &mut out);
        out.push('=');
        enc(v, &mut out);
    }
    out
}

/// [`Error::Aws`] from an error body: the query protocol's XML
/// (`<Error><Code>..</Code><Message>..</Message>`) or the JSON protocol's
/// (`{"__type": "...#Code", "message": ...}`).
pub(crate) fn aws_error(action: &str, status: u16, body: &str) -> Error {
    let (code, message) = if let Ok(v) = serde_json::from_str::<Value>(body) {
        let code = v
            .get("__type")
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_default();
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .unwrap_or_default()
            .to_string();
        (code, message)
    } else {
        (
            xml_first(body, "Code").unwrap_or_default(),
            xml_first(body, "Message").unwrap_or_else(|| body.chars().take(300).collect()),
        )
    };
    Error::Aws {
        action: action.to_string(),
        status,
        code,
        message,
    }
}

/// The text of every `<tag>...</tag>` in `xml`, unescaped (moto's query
/// answers are flat enough for this; nested same-name tags are not).
pub(crate) fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    out
}

/// The first `<tag>` text.
pub(crate) fn xml_first(xml: &str, tag: &str) -> Option<String> {
    xml_all(xml, tag).into_iter().next()
}

/// The raw (still escaped) inner XML of every `<tag>` block.
pub(crate) fn xml_blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers_read_moto_answers() {
        let xml = "<R><StackResources><member><LogicalResourceId>Q</LogicalResourceId>\
                   <PhysicalResourceId>a&amp;b</PhysicalResourceId></member>\
                   <member><LogicalResourceId>T</LogicalResourceId></member></StackResources></R>";
        assert_eq!(xml_all(xml, "LogicalResourceId"), ["Q", "T"]);
        assert_eq!(xml_first(xml, "PhysicalResourceId").unwrap(), "a&b");
        assert_eq!(xml_blocks(xml, "member").len(), 2);
    }

    #[test]
    fn form_encoding_is_pythons() {
        assert_eq!(
            form_encode(&[("Action", "Put"), ("Doc", r#"{"A": "*", "b~": "x/y"}"#)]),
            "Action=Put&Doc=%7B%22A%22%3A+%22%2A%22%2C+%22b~%22%3A+%22x%2Fy%22%7D"
        );
    }

    #[test]
    fn errors_of_both_protocols() {
        let e = aws_error(
            "CreateStack",
            400,
            "<ErrorResponse><Error><Code>ValidationError</Code><Message>bad &quot;x&quot;</Message></Error></ErrorResponse>",
        );
        assert_eq!(
            e.to_string(),
            "moto refused CreateStack (HTTP 400): ValidationError: bad \"x\""
        );
        let e = aws_error(
            "PutItem",
            400,
            r#"{"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": "Requested resource not found"}"#,
        );
        assert_eq!(
            e.to_string(),
            "moto refused PutItem (HTTP 400): ResourceNotFoundException: Requested resource not found"
        );
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = Credentials {
            access_key_id: "ASIA1".into(),
            secret_access_key: "s3cret".into(),
            session_token: Some("T0KEN-xyz".into()),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret") && !d.contains("T0KEN"), "{d}");
        assert_eq!(c.env_vars().len(), 3);
    }
}
