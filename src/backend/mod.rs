//! The legacy API client: declared endpoints, path and body templates, JSONPath extraction,
//! paging styles, auth to the backend, timeouts, one retry, and error classification.
//!
//! The profile declares what the legacy API looks like ([`Endpoint`], [`ListEndpoint`]);
//! [`Backend`] makes the calls. Mapping scripts never call it directly: they return plans
//! that the request pipeline executes through this module.

mod client;
mod endpoint;
mod error;
mod jsonpath;
mod paging;
mod pool;
mod record;
mod template;
#[cfg(test)]
mod tests;

pub use client::{
    Backend, BackendInitError, BackendRequest, BackendResponse, CallerAuth, check_auth,
    check_base_url, with_caller,
};
pub(crate) use client::{not_json, parse_body};
pub use endpoint::{Endpoint, ListEndpoint, Paging, PagingStyle};
pub use error::BackendError;
pub use jsonpath::{JsonPath, as_count};
pub use paging::{ListItem, ListRecord, Page};
pub use record::{CallLog, note_label};
pub use template::{BodyTemplate, PathTemplate, TemplateError, encode_into};
