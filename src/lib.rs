//! scimgate: a SCIM 2.0 gateway in front of legacy REST applications.
#![forbid(unsafe_code)]

pub mod mapping;
pub mod scim;
