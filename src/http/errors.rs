//! The one place where errors become HTTP statuses. A 5xx is opaque to the client; its
//! cause goes to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::app::AppError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    PayloadTooLarge(String),
    Conflict(String),
    UnsupportedMediaType(String),
    /// 429, with the seconds to wait (Retry-After).
    TooManyRequests(String, u64),
    /// The database is down: fail closed, and say it is temporary.
    Unavailable(String),
    Internal(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::PayloadTooLarge(m)
            | ApiError::Conflict(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Unavailable(m)
            | ApiError::TooManyRequests(m, _)
            | ApiError::Internal(m) => f.write_str(m),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        match e {
            AppError::Invalid(m) => ApiError::BadRequest(m),
            AppError::NotFound(m) => ApiError::NotFound(m),
            AppError::Conflict(m) | AppError::NoRequest(m) => ApiError::Conflict(m),
            AppError::Store(e) => ApiError::from(e),
            AppError::Unauthorized(m) => ApiError::Unauthorized(m),
            AppError::Throttled {
                message,
                retry_after,
            } => ApiError::TooManyRequests(message, retry_after),
            AppError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        self.retry_after(&mut response);
        response.json(serde_json::json!({ "error": self.public_message() }))
    }
}

impl ApiError {
    fn retry_after(&self, response: &mut actix_web::HttpResponseBuilder) {
        if let ApiError::TooManyRequests(_, wait) = self {
            response.insert_header(("Retry-After", wait.to_string()));
        }
    }

    /// What the client is told: the message, except for 5xx, whose cause goes to the log.
    fn public_message(&self) -> String {
        match self {
            ApiError::Unavailable(cause) => {
                tracing::error!(%cause, "storage unavailable");
                "the service cannot reach its database; nothing was decided or changed, try again"
                    .to_string()
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "internal error; the cause is in the service log".to_string()
            }
            other => other.to_string(),
        }
    }
}

/// The Puppet CA API answers errors in plain text, as puppetserver does; agents and
/// `puppetserver ca` print the body as it is.
#[derive(Debug)]
pub struct PlainError(pub ApiError);

impl std::fmt::Display for PlainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for PlainError {
    fn from(e: E) -> PlainError {
        PlainError(e.into())
    }
}

impl ResponseError for PlainError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        self.0.retry_after(&mut response);
        response
            .content_type("text/plain; charset=utf-8")
            .body(self.0.public_message())
    }
}

/// The operator's page answers errors as a small HTML page, and sends a browser without
/// a live session to the sign-in form.
#[derive(Debug)]
pub enum PageError {
    /// No live session: 303 to /ui/login.
    SignIn,
    Forbidden(String),
    BadRequest(String),
    Internal(String),
    Api(ApiError),
}

impl PageError {
    fn api(&self) -> ApiError {
        match self {
            PageError::SignIn => ApiError::Unauthorized("sign in first".into()),
            PageError::Forbidden(m) => ApiError::Forbidden(m.clone()),
            PageError::BadRequest(m) => ApiError::BadRequest(m.clone()),
            PageError::Internal(m) => ApiError::Internal(m.clone()),
            PageError::Api(e) => match e {
                ApiError::BadRequest(m) => ApiError::BadRequest(m.clone()),
                ApiError::Unauthorized(m) => ApiError::Unauthorized(m.clone()),
                ApiError::Forbidden(m) => ApiError::Forbidden(m.clone()),
                ApiError::NotFound(m) => ApiError::NotFound(m.clone()),
                ApiError::TooManyRequests(m, wait) => ApiError::TooManyRequests(m.clone(), *wait),
                ApiError::PayloadTooLarge(m) => ApiError::PayloadTooLarge(m.clone()),
                ApiError::Conflict(m) => ApiError::Conflict(m.clone()),
                ApiError::UnsupportedMediaType(m) => ApiError::UnsupportedMediaType(m.clone()),
                ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
                ApiError::Internal(m) => ApiError::Internal(m.clone()),
            },
        }
    }

    /// The status and the message the operator sees (5xx opaque, cause logged).
    pub fn status_and_message(&self) -> (StatusCode, String) {
        let api = self.api();
        (api.status_code(), api.public_message())
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.api().fmt(f)
    }
}

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> PageError {
        PageError::Api(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::SignIn => StatusCode::SEE_OTHER,
            other => other.api().status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PageError::SignIn = self {
            return HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, "/ui/login"))
                .finish();
        }
        let (status, message) = self.status_and_message();
        super::ui::html_response(status, super::ui::error_page(status.as_u16(), &message))
    }
}
