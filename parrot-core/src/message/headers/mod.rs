//! Header fields: names, the raw list, and typed views.

pub mod name;

pub use name::HeaderName;
