//! An order, the request that creates one, and its validation.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::ApiError;

/// Longest `item`, in characters.
pub const MAX_ITEM_CHARS: usize = 100;
/// Largest `quantity`.
pub const MAX_QUANTITY: u64 = 1000;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written by the API; its message is on the queue.
    Received,
    /// Marked by `orders-worker` after it consumed the message.
    Processed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Processed => "processed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "received" => Some(Self::Received),
            "processed" => Some(Self::Processed),
            _ => None,
        }
    }
}

/// An order as the API answers it (and as the table stores it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// A UUID v4, lower case with hyphens: the table's key.
    pub id: String,
    pub item: String,
    pub quantity: u32,
    pub status: Status,
    /// RFC 3339, UTC, milliseconds.
    pub created_at: String,
    /// When the worker processed it (RFC 3339), absent before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<String>,
}

impl Order {
    /// A new order with a fresh id, received at `now`.
    pub fn received(new: NewOrder, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::new_v4().hyphenated().to_string(),
            item: new.item,
            quantity: new.quantity,
            status: Status::Received,
            created_at: rfc3339(now),
            processed_at: None,
        }
    }
}

/// A timestamp as orders carry it: `2026-11-30T18:49:03.123Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A valid `POST /orders` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub item: String,
    pub quantity: u32,
}

impl NewOrder {
    /// Parses and validates a request body: a JSON object with exactly
    /// `item` (1 to 100 characters, not blank) and `quantity` (a whole
    /// number from 1 to 1000). The error names the first wrong field.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::InvalidBody(format!("the body is not valid JSON ({e})")))?;
        let Value::Object(fields) = value else {
            return Err(ApiError::InvalidBody(
                "the body must be a JSON object: {\"item\": \"...\", \"quantity\": 1}".into(),
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "item" | "quantity"))
        {
            return Err(ApiError::invalid_field(
                unknown,
                format!(
                    "unknown field {:?}: an order has only \"item\" and \"quantity\"",
                    crate::error::cap(unknown)
                ),
            ));
        }
        Ok(Self {
            item: item(&fields)?,
            quantity: quantity(&fields)?,
        })
    }
}

fn item(fields: &Map<String, Value>) -> Result<String, ApiError> {
    let rule = format!("item must be a string of 1 to {MAX_ITEM_CHARS} characters, not blank");
    match fields.get("item") {
        None => Err(ApiError::invalid_field(
            "item",
            format!("item is required: {rule}"),
        )),
        Some(Value::String(item)) => {
            let chars = item.chars().count();
            if item.trim().is_empty() || chars > MAX_ITEM_CHARS {
                Err(ApiError::invalid_field(
                    "item",
                    format!("{rule}; got {chars} characters"),
                ))
            } else {
                Ok(item.clone())
            }
        }
        Some(other) => Err(ApiError::invalid_field(
            "item",
            format!("{rule}; got {}", json_type(other)),
        )),
    }
}

fn quantity(fields: &Map<String, Value>) -> Result<u32, ApiError> {
    let rule = format!("quantity must be a whole number from 1 to {MAX_QUANTITY}");
    match fields.get("quantity") {
        None => Err(ApiError::invalid_field(
            "quantity",
            format!("quantity is required: {rule}"),
        )),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(q @ 1..=MAX_QUANTITY) => Ok(q as u32),
            _ => Err(ApiError::invalid_field(
                "quantity",
                format!("{rule}; got {}", crate::error::cap(&n.to_string())),
            )),
        },
        Some(other) => Err(ApiError::invalid_field(
            "quantity",
            format!("{rule}; got {}", json_type(other)),
        )),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
