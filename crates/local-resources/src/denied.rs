//! A call moto denied, as the rehearsal's AWS proxy sees it: the request
//! (method, path, query, headers, body) and moto's answer. moto's
//! AccessDenied message names the principal and the action but never the
//! resource (moto/core/exceptions.py `AccessDeniedError`: "User: P is not
//! authorized to perform: A"; S3's is only "Access Denied"), so the
//! resource comes from the request: DynamoDB's `TableName`, SQS's
//! `QueueUrl`, S3's bucket and key, SNS's `TopicArn`, ...
//!
//! What moto 5.2.5 answers a denied call, whatever the service's protocol
//! (checked with boto3 against moto_server, IAM enforced): HTTP 403 and the
//! query protocol's XML `<ErrorResponse><Errors><Error><Code>AccessDenied`
//! (DynamoDB, SQS JSON and query, SNS, Secrets Manager, SSM, Kinesis,
//! EventBridge, Step Functions, KMS alike); S3: 403 and
//! `<Error><Code>AccessDenied</Code><Message>Access Denied`. AWS itself
//! answers JSON-protocol services with `{"__type": "...#AccessDeniedException"}`
//! (DynamoDB, SQS JSON), which is recognised too.

use serde_json::{Map, Value};

use crate::{ACCOUNT_ID, REGION};

/// What the proxy knows of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The URL path, still percent-encoded (`/bucket/a%20key`).
    pub path: &'a str,
    /// The URL query, without `?` (empty when none).
    pub query: &'a str,
    /// The `Host` header.
    pub host: &'a str,
    /// The `Authorization` header (SigV4), if any.
    pub authorization: Option<&'a str>,
    /// `X-Amz-Target` (JSON protocols: `DynamoDB_20120810.PutItem`).
    pub target: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The body, unchanged.
    pub body: &'a [u8],
}

/// The SigV4 credential scope of a request: `Credential=AKID/DATE/REGION/SERVICE/aws4_request`
/// in the `Authorization` header, or `X-Amz-Credential` in a presigned URL's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The access key id that signed the request (who calls).
    pub access_key_id: String,
    /// The region signed for.
    pub region: String,
    /// The signing name (`dynamodb`, `sqs`, `s3`, `states`, `monitoring`, ...).
    pub service: String,
}

impl Request<'_> {
    /// The request's credential scope, if it is signed.
    pub fn scope(&self) -> Option<Scope> {
        let credential = match self.authorization {
            Some(auth) => {
                let start = auth.find("Credential=")? + "Credential=".len();
                let rest = &auth[start..];
                rest[..rest.find([',', ' ']).unwrap_or(rest.len())].to_string()
            }
            None => {
                form_pairs(self.query)
                    .into_iter()
                    .find(|(k, _)| k == "X-Amz-Credential")?
                    .1
            }
        };
        let mut parts = credential.split('/');
        let access_key_id = parts.next()?.to_string();
        let _date = parts.next()?;
        let region = parts.next()?.to_string();
        let service = parts.next()?.to_string();
        Some(Scope {
            access_key_id,
            region,
            service,
        })
    }

    /// The caller's access key id.
    pub fn access_key_id(&self) -> Option<String> {
        self.scope().map(|s| s.access_key_id)
    }
}

/// Whether an answer is an AccessDenied error, in any protocol: a 403 (or
/// 400, as AWS's JSON protocols answer it) whose body has the code
/// `AccessDenied` or `AccessDeniedException` (XML `<Code>`, JSON `__type`
/// or `code`).
pub fn is_access_denied(status: u16, body: &[u8]) -> bool {
    if status != 403 && status != 400 {
        return false;
    }
    let text = String::from_utf8_lossy(body);
    if text.contains("<Code>AccessDenied</Code>")
        || text.contains("<Code>AccessDeniedException</Code>")
    {
        return true;
    }
    serde_json::from_str::<Value>(&text).is_ok_and(|v| {
        ["__type", "code", "Code"].iter().any(|k| {
            v.get(*k).and_then(Value::as_str).is_some_and(|t| {
                let code = t.rsplit('#').next().unwrap_or(t);
                code == "AccessDenied" || code == "AccessDeniedException"
            })
        })
    })
}

/// A denied call: the IAM action and, when the request names it, the
/// resource's ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedCall {
    /// The service's IAM prefix (`dynamodb`, `sqs`, `s3`, `states`, ...).
    pub service: String,
    /// The IAM action (`dynamodb:PutItem`).
    pub action: String,
    /// The resource's ARN, when the request names it.
    pub resource: Option<String>,
}

impl DeniedCall {
    /// Works out the action and the resource of a denied request. The
    /// action is the one moto's message names when it does (the one moto
    /// checked), else the request's: `X-Amz-Target` (JSON protocols),
    /// `Action=` (query protocol), method and path (S3).
    pub fn from_request(request: &Request<'_>, answer: &[u8]) -> DeniedCall {
        let scope = request.scope();
        let region = scope
            .as_ref()
            .map(|s| s.region.clone())
            .unwrap_or_else(|| REGION.to_string());
        let signing = scope.as_ref().map(|s| s.service.as_str()).unwrap_or("");
        let service = iam_prefix(signing).to_string();
        let from_moto = crate::iam::Denial::from_body(&String::from_utf8_lossy(answer));
        if service == "s3" {
            let (action, resource) = s3_action(request);
            return DeniedCall {
                action: from_moto
                    .map(|d| d.action)
                    .unwrap_or_else(|| format!("s3:{action}")),
                service,
                resource,
            };
        }
        let params = parameters(request);
        let action = request
            .target
            .and_then(|t| t.rsplit('.').next())
            .map(str::to_string)
            .or_else(|| {
                params
                    .get("Action")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_else(|| "(unknown action)".to_string());
        let action = match from_moto {
            Some(d) if d.action.contains(':') => d.action,
            _ => format!("{service}:{action}"),
        };
        let resource = resource_arn(&service, &region, &params, request.path);
        DeniedCall {
            service,
            action,
            resource,
        }
    }

    /// The line for the calling function's log (after the `[rehearsal]`
    /// prefix): `AccessDenied: role R may not A on ARN; add the permission
    /// to the function's Policies`.
    pub fn line(&self, role: &str) -> String {
        let on = match &self.resource {
            Some(arn) => format!("on {arn}"),
            None => format!(
                "on its {} resource (resource not known to the rehearsal)",
                self.service
            ),
        };
        format!(
            "AccessDenied: role {role} may not {} {on}; add the permission to the function's Policies",
            self.action
        )
    }
}

/// The IAM prefix of a SigV4 signing name (they differ for a few).
fn iam_prefix(signing: &str) -> &str {
    match signing {
        "monitoring" => "cloudwatch",
        "email" => "ses",
        "" => "unknown",
        other => other,
    }
}

/// The request's parameters: a JSON body's top-level members, or a form
/// body's and the URL query's pairs.
fn parameters(request: &Request<'_>) -> Map<String, Value> {
    let json = request.content_type.is_some_and(|c| c.contains("json")) || request.target.is_some();
    if json && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(request.body) {
        return m;
    }
    let mut out = Map::new();
    let body = String::from_utf8_lossy(request.body);
    let form = request
        .content_type
        .is_some_and(|c| c.contains("x-www-form-urlencoded"));
    let mut pairs = form_pairs(request.query);
    if form {
        pairs.extend(form_pairs(&body));
    }
    for (k, v) in pairs {
        out.insert(k, Value::String(v));
    }
    out
}

/// The ARN a request's parameters name, by service.
fn resource_arn(
    service: &str,
    region: &str,
    params: &Map<String, Value>,
    path: &str,
) -> Option<String> {
    let text = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let arn_or = |name: &str, make: &dyn Fn(&str) -> String| {
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            make(name)
        }
    };
    let named = match service {
        "dynamodb" => {
            let table = text("TableName")
                .map(str::to_string)
                .or_else(|| {
                    params
                        .get("RequestItems")
                        .and_then(Value::as_object)
                        .and_then(|m| m.keys().next().cloned())
                })
                .or_else(|| {
                    params
                        .get("TransactItems")?
                        .as_array()?
                        .iter()
                        .find_map(|item| {
                            item.as_object()?
                                .values()
                                .find_map(|op| op.get("TableName")?.as_str().map(String::from))
                        })
                });
            table.map(|t| {
                arn_or(&t, &|t| {
                    format!("arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{t}")
                })
            })
        }
        "sqs" => {
            // The query protocol may also post to the queue's URL.
            let url = text("QueueUrl").map(str::to_string).or_else(|| {
                let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
                (segments.len() == 2 && segments[0].chars().all(|c| c.is_ascii_digit()))
                    .then(|| format!("/{}/{}", segments[0], segments[1]))
            });
            match url {
                Some(url) => {
                    let mut parts = url.trim_end_matches('/').rsplit('/');
                    let name = parts.next()?;
                    let account = parts
                        .next()
                        .filter(|a| a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()))
                        .unwrap_or(ACCOUNT_ID);
                    Some(format!("arn:aws:sqs:{region}:{account}:{name}"))
                }
                None => text("QueueName").map(|n| format!("arn:aws:sqs:{region}:{ACCOUNT_ID}:{n}")),
            }
        }
        "ssm" => text("Name").map(|n| {
            arn_or(n, &|n| {
                format!(
                    "arn:aws:ssm:{region}:{ACCOUNT_ID}:parameter/{}",
                    n.trim_start_matches('/')
                )
            })
        }),
        "kinesis" => text("StreamARN").map(String::from).or_else(|| {
            text("StreamName").map(|n| format!("arn:aws:kinesis:{region}:{ACCOUNT_ID}:stream/{n}"))
        }),
        "logs" => text("logGroupName")
            .map(|n| format!("arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{n}")),
        "events" => {
            let bus = text("EventBusName").or_else(|| {
                params
                    .get("Entries")?
                    .as_array()?
                    .iter()
                    .find_map(|e| e.get("EventBusName")?.as_str())
            });
            let bus = bus.unwrap_or("default");
            Some(arn_or(bus, &|b| {
                format!("arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{b}")
            }))
        }
        "kms" => text("KeyId").map(|k| {
            arn_or(k, &|k| {
                if k.starts_with("alias/") {
                    format!("arn:aws:kms:{region}:{ACCOUNT_ID}:{k}")
                } else {
                    format!("arn:aws:kms:{region}:{ACCOUNT_ID}:key/{k}")
                }
            })
        }),
        // A Secrets Manager ARN ends in a random suffix the name alone
        // does not give; only an ARN is named.
        "secretsmanager" => text("SecretId")
            .filter(|s| s.starts_with("arn:"))
            .map(String::from),
        _ => None,
    };
    // Otherwise any parameter that is an ARN (SNS TopicArn/TargetArn, Step
    // Functions stateMachineArn, ...).
    named.or_else(|| {
        params.iter().find_map(|(k, v)| {
            let v = v.as_str()?;
            (k.to_ascii_lowercase().ends_with("arn") && v.starts_with("arn:"))
                .then(|| v.to_string())
        })
    })
}

/// S3's IAM action and resource from method, path, query and host (S3
/// API reference, each operation's HTTP request; the actions as the
/// Service Authorization Reference names the permissions: HeadObject needs
/// s3:GetObject, ListObjects(V2) and HeadBucket s3:ListBucket).
fn s3_action(request: &Request<'_>) -> (String, Option<String>) {
    let host = request
        .host
        .rsplit_once(':')
        .map_or(request.host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                request.host
            }
        });
    let path = percent_decode(request.path);
    let path = path.trim_start_matches('/');
    // Virtual-hosted style: bucket.s3.amazonaws.com, bucket.localhost.
    let virtual_bucket = host
        .split_once('.')
        .filter(|(first, rest)| {
            host.parse::<std::net::IpAddr>().is_err()
                && !first.starts_with("s3")
                && (rest.starts_with("s3") || *rest == "localhost")
        })
        .map(|(first, _)| first.to_string());
    let (bucket, key) = match virtual_bucket {
        Some(b) => (b, path.to_string()),
        None => match path.split_once('/') {
            Some((b, k)) => (b.to_string(), k.to_string()),
            None => (path.to_string(), String::new()),
        },
    };
    let query: Vec<String> = form_pairs(request.query)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let has = |q: &str| query.iter().any(|k| k == q);
    let method = request.method.to_ascii_uppercase();
    if bucket.is_empty() {
        return ("ListAllMyBuckets".into(), None);
    }
    if key.is_empty() {
        let action = match method.as_str() {
            "GET" | "HEAD" if has("versions") => "ListBucketVersions",
            "GET" if has("uploads") => "ListBucketMultipartUploads",
            "GET" if has("location") => "GetBucketLocation",
            "GET" if has("policy") => "GetBucketPolicy",
            "GET" if has("tagging") => "GetBucketTagging",
            "GET" | "HEAD" => "ListBucket",
            "PUT" if has("policy") => "PutBucketPolicy",
            "PUT" if has("tagging") => "PutBucketTagging",
            "PUT" => "CreateBucket",
            "DELETE" => "DeleteBucket",
            "POST" if has("delete") => "DeleteObject",
            _ => "ListBucket",
        };
        return (action.into(), Some(format!("arn:aws:s3:::{bucket}")));
    }
    let action = match method.as_str() {
        "GET" if has("tagging") => "GetObjectTagging",
        "GET" if has("acl") => "GetObjectAcl",
        "GET" if has("uploadId") => "ListMultipartUploadParts",
        "GET" | "HEAD" => "GetObject",
        "PUT" if has("tagging") => "PutObjectTagging",
        "PUT" if has("acl") => "PutObjectAcl",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        _ => "PutObject",
    };
    (action.into(), Some(format!("arn:aws:s3:::{bucket}/{key}")))
}

/// `a=1&b=x%2Fy` as pairs, decoded (`+` as a space).
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=ASIAROLE123/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
    const MOTO_DENIED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/R/sess is not authorized to perform: dynamodb:PutItem</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;

    #[test]
    fn the_scope_names_the_caller() {
        let r = Request {
            authorization: Some(AUTH),
            ..Default::default()
        };
        assert_eq!(
            r.scope().unwrap(),
            Scope {
                access_key_id: "ASIAROLE123".into(),
                region: "us-east-1".into(),
                service: "dynamodb".into()
            }
        );
        let presigned = Request {
            query: "X-Amz-Credential=ASIAX%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=1",
            ..Default::default()
        };
        assert_eq!(presigned.access_key_id().as_deref(), Some("ASIAX"));
        assert!(Request::default().scope().is_none());
    }

    #[test]
    fn access_denied_in_every_protocol() {
        assert!(is_access_denied(403, MOTO_DENIED.as_bytes()));
        assert!(is_access_denied(
            403,
            b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        ));
        assert!(is_access_denied(
            400,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"x"}"#
        ));
        assert!(is_access_denied(
            400,
            br#"{"__type":"com.amazon.coral.service#AccessDeniedException"}"#
        ));
        assert!(!is_access_denied(
            400,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}"#
        ));
        assert!(!is_access_denied(200, MOTO_DENIED.as_bytes()));
    }

    #[test]
    fn dynamodb_json_names_the_table() {
        let r = Request {
            method: "POST",
            path: "/",
            authorization: Some(AUTH),
            target: Some("DynamoDB_20120810.PutItem"),
            content_type: Some("application/x-amz-json-1.0"),
            body: br#"{"TableName":"items","Item":{}}"#,
            ..Default::default()
        };
        let d = DeniedCall::from_request(&r, MOTO_DENIED.as_bytes());
        assert_eq!(d.action, "dynamodb:PutItem");
        assert_eq!(
            d.line("app-ApiRole"),
            "AccessDenied: role app-ApiRole may not dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/items; add the permission to the function's Policies"
        );
        let batch = Request {
            target: Some("DynamoDB_20120810.BatchWriteItem"),
            body: br#"{"RequestItems":{"orders":[]}}"#,
            ..r
        };
        let d = DeniedCall::from_request(&batch, b"");
        assert_eq!(d.action, "dynamodb:BatchWriteItem");
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:dynamodb:us-east-1:123456789012:table/orders")
        );
    }

    #[test]
    fn sqs_json_and_query_name_the_queue() {
        let auth = AUTH.replace("/dynamodb/", "/sqs/");
        let json = Request {
            method: "POST",
            path: "/",
            authorization: Some(&auth),
            target: Some("AmazonSQS.SendMessage"),
            content_type: Some("application/x-amz-json-1.0"),
            body: br#"{"QueueUrl":"http://127.0.0.1:5000/123456789012/jobs","MessageBody":"x"}"#,
            ..Default::default()
        };
        let d = DeniedCall::from_request(&json, b"");
        assert_eq!(d.action, "sqs:SendMessage");
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:jobs")
        );
        let query = Request {
            target: None,
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
            body: b"Action=ReceiveMessage&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F123456789012%2Fwork&Version=2012-11-05",
            ..json
        };
        let d = DeniedCall::from_request(&query, b"");
        assert_eq!(d.action, "sqs:ReceiveMessage");
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:work")
        );
        let to_queue_url = Request {
            path: "/123456789012/other",
            body: b"Action=DeleteMessage&ReceiptHandle=x",
            ..query
        };
        let d = DeniedCall::from_request(&to_queue_url, b"");
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:other")
        );
    }

    #[test]
    fn s3_names_bucket_and_key() {
        let auth = AUTH.replace("/dynamodb/", "/s3/");
        let get = Request {
            method: "GET",
            path: "/photos/2026/a%20b.jpg",
            host: "127.0.0.1:4566",
            authorization: Some(&auth),
            ..Default::default()
        };
        let d = DeniedCall::from_request(
            &get,
            b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        );
        assert_eq!(d.action, "s3:GetObject");
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:s3:::photos/2026/a b.jpg")
        );
        let put = Request {
            method: "PUT",
            ..get
        };
        assert_eq!(DeniedCall::from_request(&put, b"").action, "s3:PutObject");
        let list = Request {
            method: "GET",
            path: "/photos",
            query: "list-type=2&prefix=a",
            ..get
        };
        let d = DeniedCall::from_request(&list, b"");
        assert_eq!(d.action, "s3:ListBucket");
        assert_eq!(d.resource.as_deref(), Some("arn:aws:s3:::photos"));
        let virtual_host = Request {
            method: "DELETE",
            path: "/k",
            host: "photos.s3.amazonaws.com",
            ..get
        };
        let d = DeniedCall::from_request(&virtual_host, b"");
        assert_eq!(d.action, "s3:DeleteObject");
        assert_eq!(d.resource.as_deref(), Some("arn:aws:s3:::photos/k"));
    }

    #[test]
    fn other_services_name_an_arn_parameter_or_say_it_is_not_known() {
        let auth = AUTH.replace("/dynamodb/", "/sns/");
        let sns = Request {
            method: "POST",
            path: "/",
            authorization: Some(&auth),
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Aevents&Message=x",
            ..Default::default()
        };
        let d = DeniedCall::from_request(&sns, b"");
        assert_eq!(d.action, "sns:Publish");
        assert_eq!(
            d.resource.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:events")
        );
        let auth = AUTH.replace("/dynamodb/", "/secretsmanager/");
        let secret = Request {
            authorization: Some(&auth),
            target: Some("secretsmanager.GetSecretValue"),
            content_type: Some("application/x-amz-json-1.1"),
            body: br#"{"SecretId":"db-password"}"#,
            ..sns
        };
        let d = DeniedCall::from_request(&secret, b"");
        assert_eq!(d.action, "secretsmanager:GetSecretValue");
        assert_eq!(d.resource, None);
        assert_eq!(
            d.line("R"),
            "AccessDenied: role R may not secretsmanager:GetSecretValue on its secretsmanager resource (resource not known to the rehearsal); add the permission to the function's Policies"
        );
    }
}
