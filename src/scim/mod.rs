//! The SCIM 2.0 protocol layer: pure logic, no I/O.
//!
//! Everything the server, the mapping layer and the store need to speak SCIM lives here:
//! schemas and attribute paths, the filter language, the PATCH engine (with Entra's dialects
//! normalised at the edge), list parameters and responses, resource validation and projection,
//! and the RFC 7644 §3.12 error type.

pub mod error;
pub mod filter;
pub mod list;
pub mod meta;
pub mod patch;
pub mod path;
pub mod resource;
pub mod response;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
pub use path::AttrPath;
pub use schema::{AttrType, AttributeDef, ResourceType, Schema, SchemaContext, SchemaRegistry};
