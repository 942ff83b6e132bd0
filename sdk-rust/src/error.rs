//! Errors of the Engram client.
//!
//! Every fallible call returns [`Result<T>`](crate::Result), whose error is the one root type
//! [`Error`]:
//!
//! ```text
//! Error
//! ├── Status { code, message, details, from_server }   the call failed with a gRPC status
//! │     code: Code (NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, ...)
//! ├── Transport { message, source }                     the connection could not be made (connect())
//! ├── InvalidConfig(String)                             the client was configured wrongly
//! ├── InvalidArgument(String)                           the client refused a request before sending it
//! └── Protocol(String)                                  the server's answer broke the API contract
//! ```
//!
//! [`Code`] names are the gRPC code names (`"NOT_FOUND"`), the same strings every Engram SDK and
//! the REST error body (`{"code": "NOT_FOUND", ...}`) use.

use std::fmt;
use std::time::Duration;

use prost::Message as _;

use crate::pb::google::rpc;

// The `Code` enum and its names (`CODES`), generated from google/rpc/code.proto.
mod codes;
use codes::CODES;
pub use codes::Code;

impl Code {
    /// The canonical gRPC name of the code, e.g. `"NOT_FOUND"`.
    ///
    /// ```
    /// assert_eq!(engram_client::Code::Unauthenticated.name(), "UNAUTHENTICATED");
    /// ```
    pub fn name(self) -> &'static str {
        CODES[self.value() as usize].1
    }

    /// The numeric value of the code (`NOT_FOUND` is 5).
    ///
    /// ```
    /// assert_eq!(engram_client::Code::NotFound.value(), 5);
    /// ```
    pub fn value(self) -> i32 {
        self as i32
    }

    /// Parses a canonical name such as `"NOT_FOUND"`; `None` for anything else.
    ///
    /// ```
    /// use engram_client::Code;
    /// assert_eq!(Code::from_name("UNAVAILABLE"), Some(Code::Unavailable));
    /// assert_eq!(Code::from_name("not_found"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Code> {
        CODES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }
}

impl From<i32> for Code {
    /// Converts a numeric gRPC code; unknown values become [`Code::Unknown`].
    fn from(value: i32) -> Self {
        usize::try_from(value)
            .ok()
            .and_then(|i| CODES.get(i))
            .map_or(Code::Unknown, |(c, _)| *c)
    }
}

impl From<tonic::Code> for Code {
    fn from(code: tonic::Code) -> Self {
        Code::from(code as i32)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of every fallible call of this crate.
///
/// ```text
/// Error
/// ├── Status { code, message, details, from_server }   the call failed with a gRPC status
/// ├── Transport { message, source }                     the connection could not be made (connect())
/// ├── InvalidConfig(String)                             the client was configured wrongly
/// ├── InvalidArgument(String)                           the client refused a request before sending it
/// └── Protocol(String)                                  the server's answer broke the API contract
/// ```
///
/// [`Error::code`] gives a [`Code`] for every variant, and [`Error::code_name`] its name
/// (`"NOT_FOUND"`), the same string in every Engram SDK and in REST error bodies.
///
/// ```no_run
/// # async fn run(client: engram_client::Client) {
/// use engram_client::{Code, Error};
///
/// match client.get("no-such-id").await {
///     Ok(memory) => println!("{}", memory.content),
///     Err(err) if err.is_not_found() => println!("gone"),
///     Err(Error::Status { code: Code::PermissionDenied, message, .. }) => eprintln!("{message}"),
///     Err(err) => eprintln!("{} {err}", err.code_name()),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call failed with a gRPC status (sent by the server, or made up by the client's
    /// transport for a timeout or a broken connection: see `from_server`).
    #[error("{code}: {message}")]
    Status {
        /// The status code.
        code: Code,
        /// The human-readable message; for `INVALID_ARGUMENT` it names the field.
        message: String,
        /// The rich error details (`google.rpc.Status.details`), decoded from the
        /// `grpc-status-details-bin` trailer; empty when the server sent none. Read typed ones
        /// with [`Error::error_info`], [`Error::bad_request`] and [`Error::retry_after`].
        details: Vec<pbjson_types::Any>,
        /// True when the status came from the server, false when the client's transport made it
        /// up (a timeout, a reset connection).
        from_server: bool,
    },
    /// A connection to the server could not be established ([`ClientBuilder::connect`](crate::ClientBuilder::connect));
    /// its code is `UNAVAILABLE`. A call of a lazily connected client fails with an
    /// [`Error::Status`] `UNAVAILABLE` of the same message instead.
    #[error("UNAVAILABLE: {message}")]
    Transport {
        /// What failed, naming the address and the cause: `cannot connect to
        /// http://127.0.0.1:3300 (connection refused): is the Engram server running? ...`.
        message: String,
        /// The transport's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The client was configured wrongly (a bad endpoint URL, an API key that is not a valid
    /// header value, no tokio runtime...).
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
    /// The client refused a request before sending it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server's answer broke the API contract (e.g. a required field was missing).
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl Error {
    /// The status code. Errors made by the client map to the code a server would have used:
    /// `InvalidConfig` and `InvalidArgument` to [`Code::InvalidArgument`], `Transport` to
    /// [`Code::Unavailable`], `Protocol` to [`Code::Internal`].
    pub fn code(&self) -> Code {
        match self {
            Error::Status { code, .. } => *code,
            Error::Transport { .. } => Code::Unavailable,
            Error::InvalidConfig(_) | Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Protocol(_) => Code::Internal,
        }
    }

    /// The canonical name of [`Error::code`], e.g. `"NOT_FOUND"`: the same string in every SDK.
    pub fn code_name(&self) -> &'static str {
        self.code().name()
    }

    /// The message without the code prefix.
    pub fn message(&self) -> String {
        match self {
            Error::Status { message, .. } => message.clone(),
            Error::Transport { message, .. } => message.clone(),
            Error::InvalidConfig(m) | Error::InvalidArgument(m) | Error::Protocol(m) => m.clone(),
        }
    }

    /// True when the server sent this error (a [`Error::Status`] with `from_server`).
    pub fn is_from_server(&self) -> bool {
        matches!(
            self,
            Error::Status {
                from_server: true,
                ..
            }
        )
    }

    /// True for `NOT_FOUND`.
    pub fn is_not_found(&self) -> bool {
        self.code() == Code::NotFound
    }

    /// True for `INVALID_ARGUMENT`, including requests the client refused itself.
    pub fn is_invalid_argument(&self) -> bool {
        self.code() == Code::InvalidArgument
    }

    /// True for `ALREADY_EXISTS`.
    pub fn is_already_exists(&self) -> bool {
        self.code() == Code::AlreadyExists
    }

    /// True for `UNAUTHENTICATED`: no, a wrong, expired or revoked API key.
    pub fn is_unauthenticated(&self) -> bool {
        self.code() == Code::Unauthenticated
    }

    /// True for `PERMISSION_DENIED`: the key's role or agent scope does not allow the call.
    pub fn is_permission_denied(&self) -> bool {
        self.code() == Code::PermissionDenied
    }

    /// True for `RESOURCE_EXHAUSTED`: a limit was hit.
    pub fn is_resource_exhausted(&self) -> bool {
        self.code() == Code::ResourceExhausted
    }

    /// True for `UNAVAILABLE` (including connection failures): the call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        self.code() == Code::Unavailable
    }

    /// True for `DEADLINE_EXCEEDED`: the call's timeout passed.
    pub fn is_deadline_exceeded(&self) -> bool {
        self.code() == Code::DeadlineExceeded
    }

    /// The rich error details sent with a status; empty for other errors.
    pub fn details(&self) -> &[pbjson_types::Any] {
        match self {
            Error::Status { details, .. } => details,
            _ => &[],
        }
    }

    /// How long the server asked the client to wait before retrying (`google.rpc.RetryInfo`).
    pub fn retry_after(&self) -> Option<Duration> {
        let info: rpc::RetryInfo = self.detail("google.rpc.RetryInfo")?;
        let d = info.retry_delay?;
        let secs = u64::try_from(d.seconds).ok()?;
        let nanos = u32::try_from(d.nanos).ok()?;
        Some(Duration::new(secs, nanos))
    }

    /// The `google.rpc.ErrorInfo` detail (a machine-readable reason), when the server sent one.
    pub fn error_info(&self) -> Option<rpc::ErrorInfo> {
        self.detail("google.rpc.ErrorInfo")
    }

    /// The `google.rpc.BadRequest` detail (the offending fields), when the server sent one.
    pub fn bad_request(&self) -> Option<rpc::BadRequest> {
        self.detail("google.rpc.BadRequest")
    }

    fn detail<M: prost::Message + Default>(&self, name: &str) -> Option<M> {
        self.details()
            .iter()
            .find(|any| any.type_url.rsplit('/').next() == Some(name))
            .and_then(|any| M::decode(&any.value[..]).ok())
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        let details = if status.details().is_empty() {
            Vec::new()
        } else {
            rpc::Status::decode(status.details())
                .map(|s| s.details)
                .unwrap_or_default()
        };
        // tonic attaches a source only to statuses it makes up itself (timeouts, I/O errors).
        let source = std::error::Error::source(&status);
        let from_server = source.is_none();
        let mut code = Code::from(status.code());
        // tonic reports its own deadline as CANCELLED; gRPC (and every Engram SDK) says
        // DEADLINE_EXCEEDED.
        if code == Code::Cancelled && chain_has::<tonic::TimeoutExpired>(source) {
            code = Code::DeadlineExceeded;
        }
        Error::Status {
            code,
            message: status.message().to_owned(),
            details,
            from_server,
        }
    }
}

/// The advice every Engram SDK gives when it cannot connect.
pub(crate) const START_HINT: &str =
    "is the Engram server running? Start it with `make serve` or `engram-server serve`";

/// `cannot connect to <address> (<cause>): is the Engram server running? ...`, the same text in
/// every Engram SDK.
pub(crate) fn cannot_connect(address: &str, cause: &str) -> String {
    format!("cannot connect to {address} ({cause}): {START_HINT}")
}

/// The cause of a connection that could not be opened, from an error's source chain (an
/// `io::Error` under hyper's connect error): `connection refused`, `connection timed out`,
/// `DNS lookup failed: ...`; `None` when the chain is not about opening a connection.
pub(crate) fn connect_cause(
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> Option<String> {
    use std::io::ErrorKind;
    // hyper-util's connector says "dns error", "tcp connect error", "tcp open error", ...
    let mut connecting = false;
    let mut dns = false;
    let mut innermost = None;
    while let Some(err) = source {
        let text = err.to_string();
        dns |= text == "dns error";
        connecting |= dns || (text.starts_with("tcp ") && text.ends_with(" error"));
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            let cause = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::NetworkUnreachable => Some("network unreachable"),
                ErrorKind::HostUnreachable => Some("host unreachable"),
                ErrorKind::AddrNotAvailable => Some("address not available"),
                ErrorKind::TimedOut if connecting => Some("connection timed out"),
                _ => None,
            };
            if let Some(cause) = cause {
                return Some(cause.to_owned());
            }
            if dns {
                let detail = text.trim_start_matches("failed to lookup address information: ");
                return Some(format!("DNS lookup failed: {detail}"));
            }
        }
        innermost = Some(text);
        source = err.source();
    }
    if dns {
        Some("DNS lookup failed".to_owned())
    } else if connecting {
        innermost
    } else {
        None
    }
}

impl Error {
    /// The error of a call that failed with `status`, sent to `address`: a connection that
    /// could not be opened becomes `UNAVAILABLE` naming the address and the cause.
    pub(crate) fn from_call(status: tonic::Status, address: &str) -> Self {
        if status.code() == tonic::Code::Unavailable
            && let Some(cause) = connect_cause(std::error::Error::source(&status))
        {
            return Error::Status {
                code: Code::Unavailable,
                message: cannot_connect(address, &cause),
                details: Vec::new(),
                from_server: false,
            };
        }
        Error::from(status)
    }

    /// The error of [`ClientBuilder::connect`](crate::ClientBuilder::connect) to `address`.
    pub(crate) fn connect_failed(source: tonic::transport::Error, address: &str) -> Self {
        let cause = connect_cause(Some(&source)).unwrap_or_else(|| {
            let mut text = source.to_string();
            let mut inner = std::error::Error::source(&source);
            while let Some(err) = inner {
                text = err.to_string();
                inner = err.source();
            }
            text
        });
        Error::Transport {
            message: cannot_connect(address, &cause),
            source,
        }
    }
}

fn chain_has<E: std::error::Error + 'static>(
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> bool {
    while let Some(err) = source {
        if err.is::<E>() {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_by_name_and_value() {
        for (i, (code, name)) in CODES.iter().enumerate() {
            assert_eq!(code.value(), i as i32);
            assert_eq!(code.name(), *name);
            assert_eq!(Code::from_name(name), Some(*code));
            assert_eq!(Code::from(tonic::Code::from(i as i32)), *code);
        }
        assert_eq!(Code::from(99), Code::Unknown);
        assert_eq!(Code::from(-1), Code::Unknown);
    }

    #[test]
    fn status_keeps_code_message_and_details() {
        let retry = rpc::RetryInfo {
            retry_delay: Some(pbjson_types::Duration {
                seconds: 2,
                nanos: 500_000_000,
            }),
        };
        let info = rpc::ErrorInfo {
            reason: "RATE_LIMITED".into(),
            domain: "engram".into(),
            metadata: Default::default(),
        };
        let st = rpc::Status {
            code: 8,
            message: "slow down".into(),
            details: vec![
                pbjson_types::Any {
                    type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                    value: retry.encode_to_vec().into(),
                },
                pbjson_types::Any {
                    type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                    value: info.encode_to_vec().into(),
                },
            ],
        };
        let status = tonic::Status::with_details(
            tonic::Code::ResourceExhausted,
            "slow down",
            st.encode_to_vec().into(),
        );
        let err = Error::from(status);
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(err.code_name(), "RESOURCE_EXHAUSTED");
        assert!(err.is_resource_exhausted());
        assert!(err.is_from_server());
        assert_eq!(err.message(), "slow down");
        assert_eq!(err.to_string(), "RESOURCE_EXHAUSTED: slow down");
        assert_eq!(err.retry_after(), Some(Duration::from_millis(2500)));
        assert_eq!(err.error_info().unwrap().reason, "RATE_LIMITED");
        assert!(err.bad_request().is_none());
    }

    #[test]
    fn client_made_errors_have_codes() {
        assert!(Error::InvalidArgument("x".into()).is_invalid_argument());
        assert_eq!(Error::Protocol("x".into()).code_name(), "INTERNAL");
        assert!(!Error::InvalidConfig("x".into()).is_from_server());
        let status = tonic::Status::not_found("nope");
        assert!(Error::from(status).is_not_found());
        let timeout = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        let err = Error::from(timeout);
        assert!(err.is_deadline_exceeded(), "{err:?}");
        assert!(!err.is_from_server());
    }
}
