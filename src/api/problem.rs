//! Errors as HTTP problem responses (RFC 9457, `application/problem+json`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::location::LocationError;

/// A problem report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem, e.g. `urn:stackroom:unknown-box`.
    #[serde(rename = "type", serialize_with = "urn")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// The request field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why a motion was refused, machine-readable: `aisle_occupied`, `estop`, `fault`,
    /// `locked`, `link_down`, `state_unknown`, `obstacle`, `moving`, `no_such_aisle`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Item-by-item errors (import rows, bulk moves).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<Box<serde_json::Value>>,
}

fn urn<S: serde::Serializer>(kind: &&'static str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("urn:stackroom:{kind}"))
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            reason: None,
            errors: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn invalid(field: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", detail).field(field)
    }
}

/// What kind of problem a response carries, for the audit trail (a response extension).
#[derive(Debug, Clone, Copy)]
pub struct ProblemInfo {
    pub kind: &'static str,
    pub reason: Option<&'static str>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        response.extensions_mut().insert(ProblemInfo {
            kind: self.kind,
            reason: self.reason,
        });
        response
    }
}

impl From<crate::intake::IntakeError> for Problem {
    fn from(e: crate::intake::IntakeError) -> Problem {
        use crate::intake::IntakeError as E;
        let detail = e.to_string();
        match e {
            E::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "unknown-transfer", detail),
            E::State { .. } => Problem::new(StatusCode::CONFLICT, "transfer-state", detail),
            E::Location(e) => e.into(),
        }
    }
}

impl From<crate::retention::DisposalError> for Problem {
    fn from(e: crate::retention::DisposalError) -> Problem {
        use crate::retention::DisposalError as E;
        let detail = e.to_string();
        let conflict =
            |kind: &'static str| Problem::new(StatusCode::CONFLICT, kind, detail.clone());
        match e {
            E::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "unknown-disposal", detail),
            E::State { .. } => conflict("disposal-state"),
            E::FourEyes(_) => conflict("four-eyes"),
            E::NotDue { .. } => conflict("not-due").field("boxes"),
            E::OnLoan { .. } => conflict("on-loan").field("boxes"),
            E::InDisposal { .. } => conflict("in-disposal").field("boxes"),
            E::Location(e) => e.into(),
        }
    }
}

impl From<LocationError> for Problem {
    fn from(e: LocationError) -> Problem {
        use LocationError as E;
        let detail = e.to_string();
        match e {
            E::UnknownBox(_) | E::NoMatch { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown-box", detail)
            }
            E::NotOnShelf(_) => Problem::new(StatusCode::NOT_FOUND, "box-not-on-shelf", detail),
            E::Disposed { .. } => Problem::new(StatusCode::GONE, "box-disposed", detail),
            E::InPlace { .. } => Problem::new(StatusCode::NOT_FOUND, "box-in-place", detail),
            E::BadAddress(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-shelf-address",
                detail,
            )
            .field("shelf"),
            E::NoSuchShelf(_) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "no-such-shelf", detail)
                    .field("shelf")
            }
            E::Invalid { field, .. } => Problem::invalid(&field, detail),
            E::Duplicate { field, .. } => {
                Problem::new(StatusCode::CONFLICT, "duplicate", detail).field(field)
            }
            E::ShelfFull { .. } => {
                Problem::new(StatusCode::CONFLICT, "shelf-full", detail).field("shelf")
            }
            E::Import(rows) => Problem {
                errors: serde_json::to_value(rows).ok().map(Box::new),
                ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "import-rejected", detail)
            },
            E::Moves(items) => Problem {
                errors: serde_json::to_value(items).ok().map(Box::new),
                ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "moves-rejected", detail)
            },
            E::LayoutConflict(_) | E::Store(_) => {
                tracing::error!(error = %detail, "request failed in the store");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
            }
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        Problem::new(r.status(), "bad-body", r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-query", r.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Problem {
        Problem::new(r.status(), "bad-path", r.body_text())
    }
}

impl From<crate::access::AccessError> for Problem {
    fn from(e: crate::access::AccessError) -> Problem {
        use crate::access::AccessError as E;
        let detail = e.to_string();
        match e {
            E::NameTaken(_) => {
                Problem::new(StatusCode::CONFLICT, "duplicate", detail).field("name")
            }
            E::NoSuchToken(_) => Problem::not_found(detail),
            E::BadName(_) => Problem::invalid("name", detail),
            E::Store(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail),
        }
    }
}

impl From<crate::shelving::ShelvingError> for Problem {
    fn from(e: crate::shelving::ShelvingError) -> Problem {
        use crate::shelving::ShelvingError as E;
        let detail = e.to_string();
        match e {
            E::NoSuchRange(_) => Problem::new(StatusCode::NOT_FOUND, "no-such-range", detail),
            E::Refused(r) if r.reason == "no_such_aisle" => Problem {
                reason: Some(r.reason),
                ..Problem::new(StatusCode::NOT_FOUND, "no-such-aisle", detail)
            },
            E::Refused(r) => Problem {
                reason: Some(r.reason),
                ..Problem::new(StatusCode::CONFLICT, "refused", detail)
            },
            E::Gone(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "controller-gone", detail),
        }
    }
}
