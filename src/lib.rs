//! scimgate: a SCIM 2.0 gateway in front of legacy REST applications.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod backend;
pub mod config;
pub mod demo;
pub mod fuzz_targets;
pub mod json;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod reload;
pub mod scim;
pub mod server;
pub mod store;
pub mod throttle;
