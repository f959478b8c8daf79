//! SIP messages: model, parser and serializer (RFC 3261 §7, §20, §25).

pub mod error;
pub mod framing;
pub mod headers;
pub mod text;

pub use error::{ErrorKind, ParseError};
pub use framing::{Frame, frame};
pub use text::Text;
