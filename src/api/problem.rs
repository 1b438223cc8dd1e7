//! Errors as HTTP problem responses (RFC 9457, `application/problem+json`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::location::LocationError;

/// The kinds of problem the API answers with: a stable code for each, which the staff page
/// words in the reader's language (`problem_<code>` in its catalogue, with the problem's
/// `params`); a unit test there fails when a kind has no words.
macro_rules! kinds {
    ($($kind:ident = $code:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Kind { $($kind,)* }

        impl Kind {
            pub const ALL: &[Kind] = &[$(Kind::$kind,)*];

            /// The stable code, the last part of the problem's `type` URN.
            pub fn code(self) -> &'static str {
                match self { $(Kind::$kind => $code,)* }
            }
        }
    };
}

kinds! {
    AlarmNotActive = "alarm-not-active",
    Ambiguous = "ambiguous",
    BadBody = "bad-body",
    BadHeader = "bad-header",
    BadPath = "bad-path",
    BadQuery = "bad-query",
    BadShelfAddress = "bad-shelf-address",
    BorrowerLimit = "borrower-limit",
    BoxDisposed = "box-disposed",
    BoxInPlace = "box-in-place",
    BoxLost = "box-lost",
    BoxNotOnShelf = "box-not-on-shelf",
    BoxOnLoan = "box-on-loan",
    Busy = "busy",
    ControllerGone = "controller-gone",
    DisposalState = "disposal-state",
    Duplicate = "duplicate",
    Forbidden = "forbidden",
    FourEyes = "four-eyes",
    ImportRejected = "import-rejected",
    InDisposal = "in-disposal",
    InPlace = "in-place",
    Internal = "internal",
    InvalidField = "invalid-field",
    LoanState = "loan-state",
    MethodNotAllowed = "method-not-allowed",
    MovesRejected = "moves-rejected",
    NoBoxes = "no-boxes",
    NoReaders = "no-readers",
    NoSuchAisle = "no-such-aisle",
    NoSuchRange = "no-such-range",
    NoSuchShelf = "no-such-shelf",
    NoSuchSweep = "no-such-sweep",
    NotDue = "not-due",
    NotFound = "not-found",
    OnLoan = "on-loan",
    Refused = "refused",
    RoomUnreachable = "room-unreachable",
    ShelfFull = "shelf-full",
    SweepNotRunning = "sweep-not-running",
    SweepRunning = "sweep-running",
    TagNotHeard = "tag-not-heard",
    TokenExpired = "token-expired",
    TransferState = "transfer-state",
    Unprintable = "unprintable",
    Unauthorized = "unauthorized",
    UnknownBox = "unknown-box",
    UnknownDisposal = "unknown-disposal",
    UnknownTransfer = "unknown-transfer",
}

/// A problem report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem, e.g. `urn:stackroom:unknown-box`.
    #[serde(rename = "type", serialize_with = "urn")]
    #[schema(value_type = String)]
    pub kind: Kind,
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
    /// The numbers and names of the problem (`box`, `loan`, `state`, `max`, …), so that
    /// the page can say it in its own words; `detail` says the same in English.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

fn urn<S: serde::Serializer>(kind: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("urn:stackroom:{}", kind.code()))
}

impl Problem {
    pub fn new(status: StatusCode, kind: Kind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            reason: None,
            errors: None,
            params: serde_json::Map::new(),
        }
    }

    /// Adds a parameter the page's words for this kind use.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Problem {
        if let Ok(v) = serde_json::to_value(value) {
            self.params.insert(name.to_owned(), v);
        }
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, Kind::NotFound, detail)
    }

    pub fn invalid(field: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, Kind::InvalidField, detail).field(field)
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
            kind: self.kind.code(),
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
            E::NotFound(id) => Problem::new(StatusCode::NOT_FOUND, Kind::UnknownTransfer, detail)
                .with("transfer", id),
            E::State { id, state, wanted } => {
                Problem::new(StatusCode::CONFLICT, Kind::TransferState, detail)
                    .with("transfer", id)
                    .with("state", state.as_str())
                    .with("wanted", wanted.as_str())
            }
            E::Location(e) => e.into(),
        }
    }
}

impl From<crate::retention::DisposalError> for Problem {
    fn from(e: crate::retention::DisposalError) -> Problem {
        use crate::retention::DisposalError as E;
        let detail = e.to_string();
        let conflict = |kind: Kind| Problem::new(StatusCode::CONFLICT, kind, detail.clone());
        match e {
            E::NotFound(id) => Problem::new(StatusCode::NOT_FOUND, Kind::UnknownDisposal, detail)
                .with("disposal", id),
            E::State { id, state, wanted } => conflict(Kind::DisposalState)
                .with("disposal", id)
                .with("state", state.as_str())
                .with("wanted", wanted.as_str()),
            E::FourEyes(who) => conflict(Kind::FourEyes).with("who", who),
            E::NotDue { archive_no, .. } => conflict(Kind::NotDue)
                .field("boxes")
                .with("box", archive_no),
            E::OnLoan { archive_no, loan } => conflict(Kind::OnLoan)
                .field("boxes")
                .with("box", archive_no)
                .with("loan", loan),
            E::InDisposal { archive_no, id } => conflict(Kind::InDisposal)
                .field("boxes")
                .with("box", archive_no)
                .with("disposal", id),
            E::Location(e) => e.into(),
        }
    }
}

impl From<LocationError> for Problem {
    fn from(e: LocationError) -> Problem {
        use LocationError as E;
        let detail = e.to_string();
        let problem = |status, kind| Problem::new(status, kind, detail.clone());
        match e {
            E::UnknownBox(b) => problem(StatusCode::NOT_FOUND, Kind::UnknownBox).with("box", b),
            E::NoMatch { key, value } => problem(StatusCode::NOT_FOUND, Kind::UnknownBox)
                .with("key", key)
                .with("box", value),
            E::NotOnShelf(b) => problem(StatusCode::NOT_FOUND, Kind::BoxNotOnShelf).with("box", b),
            E::Disposed {
                archive_no,
                disposal,
                on,
            } => problem(StatusCode::GONE, Kind::BoxDisposed)
                .with("box", archive_no)
                .with("disposal", disposal)
                .with("on", on),
            E::InPlace { archive_no, place } => problem(StatusCode::NOT_FOUND, Kind::BoxInPlace)
                .with("box", archive_no)
                .with("place", place),
            E::BadAddress(_) => {
                problem(StatusCode::UNPROCESSABLE_ENTITY, Kind::BadShelfAddress).field("shelf")
            }
            E::NoSuchShelf(_) => {
                problem(StatusCode::UNPROCESSABLE_ENTITY, Kind::NoSuchShelf).field("shelf")
            }
            E::Invalid { field, .. } => Problem::invalid(&field, detail),
            E::Duplicate { field, value } => problem(StatusCode::CONFLICT, Kind::Duplicate)
                .field(field)
                .with("value", value),
            E::ShelfFull {
                shelf,
                used,
                capacity,
            } => problem(StatusCode::CONFLICT, Kind::ShelfFull)
                .field("shelf")
                .with("shelf", shelf.to_string())
                .with("used", used)
                .with("capacity", capacity),
            E::Import(rows) => Problem {
                errors: serde_json::to_value(&rows).ok().map(Box::new),
                ..problem(StatusCode::UNPROCESSABLE_ENTITY, Kind::ImportRejected)
                    .with("count", rows.len())
            },
            E::Moves(items) => Problem {
                errors: serde_json::to_value(&items).ok().map(Box::new),
                ..problem(StatusCode::UNPROCESSABLE_ENTITY, Kind::MovesRejected)
                    .with("count", items.len())
            },
            E::LayoutConflict(_) | E::Store(_) => {
                tracing::error!(error = %detail, "request failed in the store");
                problem(StatusCode::INTERNAL_SERVER_ERROR, Kind::Internal)
            }
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        Problem::new(r.status(), Kind::BadBody, r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Kind::BadQuery,
            r.body_text(),
        )
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Problem {
        Problem::new(r.status(), Kind::BadPath, r.body_text())
    }
}

impl From<crate::access::AccessError> for Problem {
    fn from(e: crate::access::AccessError) -> Problem {
        use crate::access::AccessError as E;
        let detail = e.to_string();
        match e {
            E::NameTaken(name) => Problem::new(StatusCode::CONFLICT, Kind::Duplicate, detail)
                .field("name")
                .with("value", name),
            E::NoSuchToken(_) => Problem::not_found(detail),
            E::BadName(_) => Problem::invalid("name", detail),
            E::Store(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, Kind::Internal, detail),
        }
    }
}

impl From<crate::shelving::ShelvingError> for Problem {
    fn from(e: crate::shelving::ShelvingError) -> Problem {
        use crate::shelving::ShelvingError as E;
        let detail = e.to_string();
        match e {
            E::NoSuchRange(range) => {
                Problem::new(StatusCode::NOT_FOUND, Kind::NoSuchRange, detail).with("range", range)
            }
            E::Refused(r) if r.reason == "no_such_aisle" => Problem {
                reason: Some(r.reason),
                ..Problem::new(StatusCode::NOT_FOUND, Kind::NoSuchAisle, detail)
            },
            E::Refused(r) => Problem {
                reason: Some(r.reason),
                ..Problem::new(StatusCode::CONFLICT, Kind::Refused, detail)
            },
            E::Gone(range) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Kind::ControllerGone,
                detail,
            )
            .with("range", range),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Staff read problems in the page's words, not the English `detail`: every kind the
    /// API answers with, and every rule a loan request can break, needs its text in both
    /// languages.
    #[test]
    fn every_problem_the_api_can_answer_has_its_words_in_both_languages() {
        let all: serde_json::Value = serde_json::from_str(crate::page::I18N).unwrap();
        let keys = Kind::ALL
            .iter()
            .map(|k| format!("problem_{}", k.code()))
            .chain(
                crate::loans::Unfit::CODES
                    .iter()
                    .map(|rule| format!("rule_{rule}")),
            );
        for key in keys {
            for lang in ["en", "zh"] {
                assert!(all[lang][&key].is_string(), "{lang} has no {key}");
            }
        }
    }

    #[test]
    fn a_problem_carries_its_params_beside_the_english() {
        let p = Problem::new(
            StatusCode::CONFLICT,
            Kind::SweepRunning,
            "sweep 2 is running",
        )
        .with("sweep", 2);
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(body["type"], "urn:stackroom:sweep-running");
        assert_eq!(body["params"]["sweep"], 2);
        assert_eq!(body["detail"], "sweep 2 is running");
        let bare = serde_json::to_value(Problem::not_found("no")).unwrap();
        assert!(bare.get("params").is_none(), "{bare}");
    }
}
